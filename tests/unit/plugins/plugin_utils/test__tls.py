# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the TLS probe: real handshakes with servers on 127.0.0.1 (threads and openssl s_server)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils import _tls
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import parse_certificate
from ansible_collections.exchange.pki.plugins.plugin_utils._tls import (
    Handshake,
    ProbeRequest,
    TlsProbeError,
    covers,
    describe,
    handshake,
)

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


# --- certificates ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def thumbprint(self) -> str:
        return hashlib.sha1(self.der).hexdigest().upper()


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    ca: bool = False,
    not_before: datetime.datetime = NOW - 10 * DAY,
    not_after: datetime.datetime = NOW + 90 * DAY,
) -> Issued:
    """A certificate made with cryptography: a CA (``ca``) or a server certificate, signed by ``issuer``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    names = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(signing_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    mail: Issued  # mail.contoso.test + autodiscover, issued by the intermediate
    expired: Issued
    wildcard: Issued
    other: Issued  # served for another SNI name by openssl s_server


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = issue("Contoso Test Root", ca=True)
    intermediate = issue("Contoso Test Issuing CA", issuer=root, ca=True)
    return Pki(
        root=root,
        intermediate=intermediate,
        mail=issue(
            "mail.contoso.test",
            issuer=intermediate,
            dns_names=["mail.contoso.test", "autodiscover.contoso.test"],
            ip_addresses=["127.0.0.1"],
        ),
        expired=issue(
            "old.contoso.test",
            issuer=intermediate,
            dns_names=["old.contoso.test"],
            not_before=NOW - 400 * DAY,
            not_after=NOW - 3 * DAY - datetime.timedelta(hours=1),
        ),
        wildcard=issue("*.contoso.test", issuer=intermediate, dns_names=["*.contoso.test"]),
        other=issue("other.contoso.test", issuer=intermediate, dns_names=["other.contoso.test"]),
    )


def write_identity(directory: Path, name: str, leaf: Issued, *chain: Issued) -> tuple[Path, Path]:
    """PEM files for a server: the certificate chain (leaf first) and the unencrypted key."""
    certificates = directory / f"{name}.pem"
    certificates.write_bytes(b"".join(item.pem for item in (leaf, *chain)))
    key = directory / f"{name}.key"
    key.write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)
    return certificates, key


def server_context(directory: Path, leaf: Issued, *chain: Issued) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*write_identity(directory, leaf.certificate.subject.rfc4514_string(), leaf, *chain))
    return context


# --- servers on 127.0.0.1 -------------------------------------------------------------------------------
def recv_line(conn: socket.socket) -> str:
    """One CRLF line, byte by byte so nothing after it (the TLS ClientHello) is consumed."""
    data = b""
    while not data.endswith(b"\n"):
        byte = conn.recv(1)
        if not byte:
            raise ConnectionError("client closed")
        data += byte
    return data.decode().rstrip("\r\n")


Script = Sequence[tuple[str, str]]


@dataclass
class FakeServer:
    """Accepts connections in a thread; plays ``script`` (("send", text) / ("expect", prefix)), then TLS.

    ``context`` None closes the connection after the script: a server that cannot complete a handshake.
    """

    context: ssl.SSLContext | None
    script: Script = ()
    received: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _address = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                try:
                    self._converse(conn)
                except (OSError, AssertionError) as exc:
                    self.errors.append(str(exc))

    def _converse(self, conn: socket.socket) -> None:
        for action, text in self.script:
            if action == "send":
                conn.sendall(text.encode() + b"\r\n")
            else:
                line = recv_line(conn)
                self.received.append(line)
                assert line.startswith(text), f"expected {text!r}, got {line!r}"
        if self.context is not None:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # until the client closes

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        self.listener.close()
        self.thread.join()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., FakeServer]]:
    """``serve(leaf, *chain, script=...)`` starts a FakeServer; ``serve(None)`` one without TLS."""
    servers: list[FakeServer] = []

    def start(leaf: Issued | None, *chain: Issued, script: Script = ()) -> FakeServer:
        context = server_context(tmp_path, leaf, *chain) if leaf is not None else None
        servers.append(FakeServer(context, script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


SMTP: Script = (
    ("send", "220 mx.contoso.test Microsoft ESMTP MAIL Service ready"),
    ("expect", "EHLO "),
    ("send", "250-mx.contoso.test Hello [127.0.0.1]\r\n250-SIZE 37748736\r\n250-STARTTLS\r\n250 CHUNKING"),
    ("expect", "STARTTLS"),
    ("send", "220 2.0.0 SMTP server ready"),
)
IMAP: Script = (
    ("send", "* OK The Microsoft Exchange IMAP4 service is ready."),
    ("expect", "a1 CAPABILITY"),
    ("send", "* CAPABILITY IMAP4 IMAP4rev1 AUTH=NTLM STARTTLS UIDPLUS\r\na1 OK CAPABILITY completed."),
    ("expect", "a2 STARTTLS"),
    ("send", "a2 OK Begin TLS negotiation now."),
)
POP3: Script = (
    ("send", "+OK The Microsoft Exchange POP3 service is ready."),
    ("expect", "CAPA"),
    ("send", "+OK\r\nTOP\r\nUIDL\r\nSTLS\r\nUSER\r\n."),
    ("expect", "STLS"),
    ("send", "+OK Begin TLS negotiation"),
)
DIALOGUES = {"smtp": SMTP, "imap": IMAP, "pop3": POP3}


def probe(port: int, *, starttls: str = "none", server_name: str | None = "mail.contoso.test", **kw) -> Handshake:
    return handshake(ProbeRequest("127.0.0.1", port, starttls, server_name, **kw))  # type: ignore[arg-type]


def facts(served: Handshake, **kw) -> dict:
    options = {"expected_names": ["mail.contoso.test"], "expected_thumbprint": None, "trust_anchors": None}
    return describe(served, **{**options, **kw}, now=NOW)


# --- handshakes -----------------------------------------------------------------------------------------
def test_plain_tls_reports_the_served_chain_and_leaf(pki: Pki, serve) -> None:
    server = serve(pki.mail, pki.intermediate)
    result = facts(probe(server.port), expected_thumbprint=pki.mail.thumbprint)

    assert result["thumbprint"] == pki.mail.thumbprint
    assert result["sha256_fingerprint"] == hashlib.sha256(pki.mail.der).hexdigest().upper()
    assert result["subject"] == "CN=mail.contoso.test"
    assert result["issuer"] == "CN=Contoso Test Issuing CA"
    assert result["dns_names"] == ["mail.contoso.test", "autodiscover.contoso.test"]
    assert result["ip_addresses"] == ["127.0.0.1"]
    assert result["not_after"] == pki.mail.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result["days_remaining"] == (pki.mail.certificate.not_valid_after_utc - NOW).days
    assert result["protocol"] in ("TLSv1.2", "TLSv1.3")
    assert result["cipher"]
    assert result["name_matches"] is True
    assert result["expected_thumbprint_matches"] is True
    assert result["chain_complete"] is True
    assert [x509.load_pem_x509_certificate(pem.encode()) for pem in result["chain"]] == [
        pki.mail.certificate,
        pki.intermediate.certificate,
    ]
    assert (result["chain_valid"], result["chain_error"]) == (None, None)


@pytest.mark.parametrize("starttls", sorted(DIALOGUES))
def test_starttls_dialogues_reach_the_certificate(pki: Pki, serve, starttls: str) -> None:
    server = serve(pki.mail, script=DIALOGUES[starttls])
    served = probe(server.port, starttls=starttls, smtp_helo="probe.contoso.test")

    assert served.leaf == pki.mail.der
    assert server.errors == []
    if starttls == "smtp":
        assert server.received[0] == "EHLO probe.contoso.test"


@pytest.mark.parametrize(
    ("starttls", "script", "message"),
    [
        ("smtp", [SMTP[0], SMTP[1], ("send", "250-mx.contoso.test\r\n250 SIZE 1000")],
         "does not advertise STARTTLS in its EHLO reply"),
        ("smtp", [("send", "554 5.7.1 go away")], "the greeting is 554"),
        ("smtp", [*SMTP[:4], ("send", "454 4.7.0 TLS not available")], "STARTTLS was answered 454"),
        ("smtp", [*SMTP[:4], ("send", "220 2.0.0 ready\r\n250 injected")], "sent data after accepting STARTTLS"),
        ("smtp", [("send", "hello")], "expected an SMTP reply"),
        ("imap", [IMAP[0], IMAP[1], ("send", "* CAPABILITY IMAP4rev1\r\na1 OK done")],
         "does not advertise STARTTLS in its CAPABILITY reply"),
        ("imap", [("send", "* BYE shutting down")], "expected an '* OK' greeting"),
        ("imap", [*IMAP[:4], ("send", "a2 BAD not now")], "STARTTLS was answered 'BAD not now'"),
        ("pop3", [POP3[0], POP3[1], ("send", "+OK\r\nUSER\r\n.")], "does not advertise STLS in its CAPA reply"),
        ("pop3", [*POP3[:4], ("send", "-ERR not now")], "expected '+OK' to STLS"),
        ("pop3", [("send", "+OK ready"), ("expect", "CAPA")], "the server closed the connection"),
    ],
)
def test_starttls_failures_name_the_stage_and_the_problem(serve, starttls: str, script: Script, message: str) -> None:
    server = serve(None, script=script)
    with pytest.raises(TlsProbeError) as error:
        probe(server.port, starttls=starttls)
    assert error.value.stage == "starttls"
    assert f"STARTTLS with 127.0.0.1:{server.port} failed: {starttls}: " in str(error.value)
    assert message in str(error.value)


def test_a_refused_connection_fails_at_connect() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    refused = rf"^connecting to 127\.0\.0\.1:{port} failed: Connection refused$"
    with pytest.raises(TlsProbeError, match=refused) as error:
        probe(port)
    assert error.value.stage == "connect"


@pytest.mark.parametrize(("starttls", "stage"), [("none", "handshake"), ("smtp", "starttls")])
def test_a_silent_server_times_out_in_the_stage_it_was_in(starttls: str, stage: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel completes the TCP handshake; nobody talks
        with pytest.raises(TlsProbeError, match=r"no answer within 0\.2 seconds") as error:
            probe(silent.getsockname()[1], starttls=starttls, timeout=0.2)
    assert error.value.stage == stage


def test_a_server_that_drops_the_handshake_fails_at_handshake(serve) -> None:
    server = serve(None)
    with pytest.raises(TlsProbeError, match=rf"^TLS handshake with 127\.0\.0\.1:{server.port} failed: ") as error:
        probe(server.port)
    assert error.value.stage == "handshake"


def test_an_expired_certificate_is_still_inspected(pki: Pki, serve) -> None:
    server = serve(pki.expired, pki.intermediate)
    result = facts(probe(server.port, server_name="old.contoso.test"), expected_names=["old.contoso.test"],
                   trust_anchors=[pki.root.certificate])

    assert result["thumbprint"] == pki.expired.thumbprint
    assert result["days_remaining"] == -4  # 3 days and 1 hour ago: floor
    assert result["name_matches"] is True
    assert result["chain_valid"] is False
    assert "not valid at validation time" in result["chain_error"]


def test_a_wrong_name_and_an_unexpected_certificate_are_reported(pki: Pki, serve) -> None:
    server = serve(pki.mail, pki.intermediate)
    result = facts(
        probe(server.port, server_name="owa.fabrikam.test"),
        expected_names=["owa.fabrikam.test", "autodiscover.contoso.test"],
        expected_thumbprint=pki.other.thumbprint,
        trust_anchors=[pki.root.certificate],
    )

    assert result["name_matches"] is False
    assert result["matched_names"] == ["autodiscover.contoso.test"]
    assert result["unmatched_names"] == ["owa.fabrikam.test"]
    assert result["expected_thumbprint_matches"] is False
    assert result["chain_valid"] is False
    assert "no matching subjectAltName" in result["chain_error"]


@pytest.mark.parametrize(
    ("reference", "matches"),
    [("owa.contoso.test", True), ("MAIL.Contoso.Test.", True), ("contoso.test", False), ("a.b.contoso.test", False)],
)
def test_a_wildcard_certificate_covers_one_label(pki: Pki, serve, reference: str, matches: bool) -> None:
    server = serve(pki.wildcard, pki.intermediate)
    result = facts(probe(server.port, server_name="owa.contoso.test"), expected_names=[reference])
    assert result["dns_names"] == ["*.contoso.test"]
    assert result["name_matches"] is matches


def test_the_chain_verifies_against_its_root(pki: Pki, serve) -> None:
    server = serve(pki.mail, pki.intermediate)
    result = facts(probe(server.port), trust_anchors=[pki.root.certificate])
    assert (result["chain_valid"], result["chain_error"]) == (True, None)


def test_the_chain_does_not_verify_against_another_root(pki: Pki, serve) -> None:
    server = serve(pki.mail, pki.intermediate)
    result = facts(probe(server.port), trust_anchors=[issue("Fabrikam Root", ca=True).certificate])
    assert result["chain_valid"] is False
    assert "candidates exhausted" in result["chain_error"]


def test_an_ip_address_host_is_verified_against_ip_sans(pki: Pki, serve) -> None:
    server = serve(pki.mail, pki.intermediate)
    result = facts(probe(server.port, server_name=None), expected_names=["127.0.0.1"],
                   trust_anchors=[pki.root.certificate])
    assert result["server_name"] is None
    assert result["name_matches"] is True
    assert result["chain_valid"] is True


def test_no_expected_names_gives_no_verdict(pki: Pki, serve) -> None:
    server = serve(pki.mail)
    result = facts(probe(server.port), expected_names=[])
    assert (result["name_matches"], result["matched_names"], result["unmatched_names"]) == (None, [], [])


# --- openssl s_server ----------------------------------------------------------------------------------
@pytest.fixture
def openssl_server(pki: Pki, tmp_path: Path) -> Iterator[int]:
    """A real ``openssl s_server``: mail.contoso.test by default, other.contoso.test for that SNI name."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    cert, key = write_identity(tmp_path, "mail", pki.mail)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(pki.intermediate.pem)
    cert2, key2 = write_identity(tmp_path, "other", pki.other, pki.intermediate)
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    process = subprocess.Popen(
        [openssl, "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key),
         "-cert_chain", str(chain), "-servername", "other.contoso.test", "-cert2", str(cert2), "-key2", str(key2),
         "-www"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # s_server prints ACCEPT once it listens
            if line.strip() == "ACCEPT":
                break
        else:
            pytest.fail(f"openssl s_server did not start (exit code {process.wait()})")
        yield port
    finally:
        process.kill()
        process.wait()


def test_openssl_s_server_serves_the_chain(pki: Pki, openssl_server: int) -> None:
    result = facts(probe(openssl_server), trust_anchors=[pki.root.certificate])
    assert result["thumbprint"] == pki.mail.thumbprint
    assert len(result["chain"]) == 2
    assert result["chain_valid"] is True


def test_openssl_s_server_answers_the_sni_name(pki: Pki, openssl_server: int) -> None:
    result = facts(probe(openssl_server, server_name="other.contoso.test"), expected_names=["other.contoso.test"])
    assert result["thumbprint"] == pki.other.thumbprint
    assert result["name_matches"] is True


# --- the served chain on every Python -------------------------------------------------------------------
def test_served_chain_prefers_the_public_api() -> None:
    sock = SimpleNamespace(get_unverified_chain=lambda: [b"leaf", b"ca"])
    assert _tls._served_chain(sock) == ((b"leaf", b"ca"), True)  # type: ignore[arg-type]


def test_served_chain_uses_cpython_internal_before_3_13(pki: Pki) -> None:
    certificate = SimpleNamespace(public_bytes=lambda: ssl.DER_cert_to_PEM_cert(pki.mail.der))
    sock = SimpleNamespace(_sslobj=SimpleNamespace(get_unverified_chain=lambda: [certificate]))
    assert _tls._served_chain(sock) == ((pki.mail.der,), True)  # type: ignore[arg-type]


def test_served_chain_is_incomplete_without_either() -> None:
    assert _tls._served_chain(SimpleNamespace()) == ((), False)  # type: ignore[arg-type]


def test_an_incomplete_chain_still_holds_the_leaf(pki: Pki, serve, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tls, "_served_chain", lambda _tls_socket: ((), False))
    server = serve(pki.mail, pki.intermediate)
    served = probe(server.port)
    assert (served.chain, served.chain_complete) == ((pki.mail.der,), False)


# --- names ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("autodiscover.contoso.test", True),
        ("MAIL.contoso.test.", True),
        ("owa.contoso.test", False),
        ("127.0.0.1", True),  # an IP address is matched against the IP address SANs only
        ("::1", False),
        ("10.0.0.1", False),
    ],
)
def test_covers_dns_names_and_ip_addresses(pki: Pki, name: str, expected: bool) -> None:
    facts = parse_certificate(pki.mail.der)
    assert covers(facts, ["127.0.0.1"], name) is expected


def test_an_ip_address_in_a_dns_name_does_not_count(pki: Pki) -> None:
    leaf = issue("10.0.0.1", issuer=pki.intermediate, dns_names=["10.0.0.1"])
    assert covers(parse_certificate(leaf.der), [], "10.0.0.1") is False
