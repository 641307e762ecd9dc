# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TLS endpoints serve what the fleet says is bound, at every handshake (real TLS clients)."""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import smtplib
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.lab.daemon import Lab
from tests.lab.tests._fake_fleet import FakeFleet, issue


def client_context() -> ssl.SSLContext:
    """A client that accepts any certificate: the tests compare the served certificate themselves."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served(port: int) -> x509.Certificate:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_context().wrap_socket(raw) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
            assert tls.recv(1024).startswith(b"HTTP/1.1 200 OK")
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def bound(fleet: FakeFleet, server: str, endpoint: str) -> x509.Certificate:
    pair = fleet.served_certificate(server, endpoint)
    assert pair is not None
    return x509.load_pem_x509_certificate(pair[0])


@pytest.mark.parametrize("endpoint", ["https", "back_end"])
def test_https_endpoints_serve_the_bound_certificate_and_follow_a_rebind(
    lab: Lab, fake_fleet: FakeFleet, endpoint: str
) -> None:
    port = lab.ports["ex2"][endpoint]
    assert served(port) == bound(fake_fleet, "ex2", endpoint)

    fake_fleet.bind("ex2", endpoint, issue("renewed.contoso.lab", ["renewed.contoso.lab"], fake_fleet.ca))
    assert served(port).subject.rfc4514_string() == "CN=renewed.contoso.lab"


def test_a_binding_without_certificate_fails_the_handshake(lab: Lab, fake_fleet: FakeFleet) -> None:
    fake_fleet.bind("ex1", "https", None)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        served(lab.ports["ex1"]["https"])


def test_smtp_starttls_serves_the_smtp_certificate(lab: Lab, fake_fleet: FakeFleet) -> None:
    with smtplib.SMTP("127.0.0.1", lab.ports["ex1"]["smtp"], timeout=10) as smtp:
        code, banner = smtp.ehlo()
        assert code == 250 and banner.startswith(b"ex1.contoso.lab Hello")
        assert smtp.has_extn("starttls")
        assert smtp.starttls(context=client_context())[0] == 220
        der = smtp.sock.getpeercert(binary_form=True)
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
    assert der == bound(fake_fleet, "ex1", "smtp").public_bytes(serialization.Encoding.DER)


def test_smtp_rejects_unknown_commands_and_quits(lab: Lab) -> None:
    with smtplib.SMTP("127.0.0.1", lab.ports["ex1"]["smtp"], timeout=10) as smtp:
        assert smtp.docmd("VRFY", "someone")[0] == 500
        assert smtp.noop()[0] == 250


def test_imap_starttls_serves_the_imap_certificate_and_follows_a_rebind(lab: Lab, fake_fleet: FakeFleet) -> None:
    def imap_served() -> bytes:
        with imaplib.IMAP4("127.0.0.1", lab.ports["ex1"]["imap"], timeout=10) as imap:
            assert imap.welcome.startswith(b"* OK The Microsoft Exchange IMAP4 service")
            assert "STARTTLS" in imap.capabilities and "LOGINDISABLED" in imap.capabilities
            assert imap.starttls(ssl_context=client_context())[0] == "OK"
            der = imap.sock.getpeercert(binary_form=True)
            assert "STARTTLS" not in imap.capabilities  # asked again over TLS
            assert imap.noop()[0] == "OK"
        assert der is not None
        return der

    assert imap_served() == bound(fake_fleet, "ex1", "imap").public_bytes(serialization.Encoding.DER)
    fake_fleet.bind("ex1", "imap", issue("imap.renewed.contoso.lab", ["imap.renewed.contoso.lab"], fake_fleet.ca))
    assert x509.load_der_x509_certificate(imap_served()).subject.rfc4514_string() == "CN=imap.renewed.contoso.lab"


def test_pop3_stls_serves_the_pop_certificate(lab: Lab, fake_fleet: FakeFleet) -> None:
    pop = poplib.POP3("127.0.0.1", lab.ports["ex2"]["pop"], timeout=10)
    try:
        assert pop.getwelcome().startswith(b"+OK The Microsoft Exchange POP3 service")
        assert "STLS" in pop.capa()
        assert pop.stls(context=client_context()).startswith(b"+OK")
        der = pop.sock.getpeercert(binary_form=True)
        assert "STLS" not in pop.capa()
        assert pop.noop().startswith(b"+OK")
    finally:
        pop.quit()
    assert der == bound(fake_fleet, "ex2", "pop").public_bytes(serialization.Encoding.DER)


def test_imap_without_a_certificate_fails_the_handshake(lab: Lab, fake_fleet: FakeFleet) -> None:
    fake_fleet.bind("ex1", "imap", None)
    imap = imaplib.IMAP4("127.0.0.1", lab.ports["ex1"]["imap"], timeout=10)
    try:
        with pytest.raises((ssl.SSLError, ConnectionError, imaplib.IMAP4.abort, OSError)):
            imap.starttls(ssl_context=client_context())
    finally:
        with contextlib.suppress(OSError):
            imap.shutdown()


def _http_get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(f"GET {path} HTTP/1.1\r\nHost: mail.contoso.lab\r\n\r\n".encode())
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    return answer


def test_plain_http_serves_only_the_acme_token_files_of_its_server(lab: Lab, fake_fleet: FakeFleet) -> None:
    fake_fleet.acme_files[("ex1", "tok_1")] = "tok_1.key-auth"
    answer = _http_get(lab.ports["ex1"]["http"], "/.well-known/acme-challenge/tok_1")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\ntok_1.key-auth")
    assert _http_get(lab.ports["ex2"]["http"], "/.well-known/acme-challenge/tok_1").startswith(b"HTTP/1.1 404")
    assert _http_get(lab.ports["ex1"]["http"], "/.well-known/acme-challenge/other").startswith(b"HTTP/1.1 404")
    assert _http_get(lab.ports["ex1"]["http"], "/").startswith(b"HTTP/1.1 404")
    assert lab.inventory()["all"]["children"]["exchange"]["hosts"]["ex1"]["exchange_pki_lab_ports"]["http"] == \
        lab.ports["ex1"]["http"]
