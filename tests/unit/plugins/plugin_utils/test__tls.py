# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the TLS probe: real handshakes with servers on 127.0.0.1 (threads and openssl s_server)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
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
    """Accepts connections in a thread; plays ``script`` (("send", text) / ("expect", prefix) / ("pause",
    seconds)), then TLS.

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
            if action == "pause":
                time.sleep(float(text))
            elif action == "send":
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
        with pytest.raises(TlsProbeError, match=r"timed out: the probe did not finish within timeout=0\.2 s") as error:
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


# --- one deadline for the whole probe -------------------------------------------------------------------
@dataclass
class DripServer:
    """A hostile server: after ``opening`` (what it says, or reads, first) it sends ``drip`` one byte at a time,
    ``interval`` seconds apart, for as long as the client listens (each read of the client gets an answer)."""

    opening: Callable[[socket.socket], None]
    drip: bytes
    interval: float = 0.1

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _address = self.listener.accept()
        except OSError:
            return
        with conn:
            try:
                self.opening(conn)
                for index in range(10**6):
                    if self.stop.wait(self.interval):
                        return
                    conn.sendall(self.drip[index % len(self.drip) : index % len(self.drip) + 1])
            except OSError:
                return  # the client gave up: what the test expects

    def close(self) -> None:
        self.stop.set()
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join()


@pytest.fixture
def drip() -> Iterator[Callable[..., DripServer]]:
    servers: list[DripServer] = []

    def start(opening: Callable[[socket.socket], None], data: bytes, interval: float = 0.1) -> DripServer:
        servers.append(DripServer(opening, data, interval))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def say_nothing(_conn: socket.socket) -> None:
    pass


def read_client_hello(conn: socket.socket) -> None:
    conn.recv(65536)
    # A TLS handshake record header announcing 16 KiB: OpenSSL waits for all of it, byte after byte.
    conn.sendall(b"\x16\x03\x03\x40\x00")


def timed_probe(port: int, starttls: str, timeout: float) -> tuple[TlsProbeError, float]:
    start = time.monotonic()
    with pytest.raises(TlsProbeError) as error:
        probe(port, starttls=starttls, timeout=timeout, smtp_helo="probe.contoso.test")
    return error.value, time.monotonic() - start


@pytest.mark.parametrize(
    ("starttls", "opening", "data", "stage"),
    [
        # An SMTP greeting that never ends: one byte of '220-...' every 0.1 s, lines and all.
        ("smtp", say_nothing, b"220-mx.contoso.test still greeting you\r\n", "starttls"),
        ("imap", say_nothing, b"* OK still here\r\n* ", "starttls"),
        ("pop3", say_nothing, b"+OK", "starttls"),
        ("none", read_client_hello, b"\x00", "handshake"),
    ],
)
def test_a_dripping_server_is_left_within_the_timeout(drip, starttls: str, opening, data: bytes, stage: str) -> None:
    """Each read gets a byte within 0.1 s, so a per-read timeout never fires: only one deadline ends it."""
    timeout = 1.0
    server = drip(opening, data)
    error, elapsed = timed_probe(server.port, starttls, timeout)

    assert elapsed < timeout + 10, f"the probe took {elapsed:.1f} s with timeout={timeout}"
    assert error.stage == stage
    assert f"timed out: the probe did not finish within timeout={timeout:g} s" in str(error)


def test_the_timeout_bounds_the_stages_together(serve, pki: Pki) -> None:
    """Every SMTP reply comes after 0.4 s: each is in time, all three with the handshake are not."""
    slow: Script = tuple(step for send in ((SMTP[0],), SMTP[1:3], SMTP[3:5]) for step in (("pause", "0.4"), *send))
    server = serve(pki.mail, script=slow)
    start = time.monotonic()
    with pytest.raises(TlsProbeError, match=r"timeout=1 s") as error:
        probe(server.port, starttls="smtp", timeout=1.0, smtp_helo="probe.contoso.test")
    assert error.value.stage == "starttls"
    assert time.monotonic() - start < 1.0 + 10  # loose: shared machines; without a deadline it is 1.2 s + TLS
    # The same server within a timeout of 3 s: the dialogue itself is fine.
    served = probe(server.port, starttls="smtp", timeout=3.0, smtp_helo="probe.contoso.test")
    assert served.leaf == pki.mail.der


def test_a_name_that_takes_too_long_to_resolve_fails_at_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hanging_resolver(*_args, **_kwargs):
        release.wait(30)
        raise OSError("resolver released")

    monkeypatch.setattr(_tls.socket, "getaddrinfo", hanging_resolver)
    start = time.monotonic()
    try:
        with pytest.raises(TlsProbeError) as error:
            handshake(ProbeRequest("mail.contoso.test", 443, timeout=0.5))
    finally:
        release.set()
    assert time.monotonic() - start < 0.5 + 10  # the resolver hangs 30 s
    assert error.value.stage == "connect"
    assert str(error.value) == (
        "connecting to mail.contoso.test:443 failed: timed out resolving the host name: "
        "the probe did not finish within timeout=0.5 s"
    )


def test_an_endless_dialogue_is_cut_off(serve) -> None:
    """Lines as fast as the network allows: the dialogue's size is bounded, not only its time."""
    endless: Script = (("send", "220-greeting\r\n220-" + "x" * 1000),) * 300
    server = serve(None, script=endless)
    with pytest.raises(TlsProbeError, match=r"smtp: the server sent more than 256 KiB before TLS") as error:
        probe(server.port, starttls="smtp", smtp_helo="probe.contoso.test")
    assert error.value.stage == "starttls"


# --- what is sent --------------------------------------------------------------------------------------
@pytest.mark.parametrize("helo", ["probe.contoso.test\r\nMAIL FROM:<a@b.test>", "probe\x00", "pröbe"])
def test_a_command_is_never_injected_into_the_dialogue(serve, helo: str) -> None:
    """Defence in depth: even a ProbeRequest made without check_smtp_helo sends no forged line."""
    server = serve(None, script=(SMTP[0], ("expect", "EHLO ")))
    with pytest.raises(TlsProbeError, match=r"smtp: refusing to send 'EHLO ") as error:
        probe(server.port, starttls="smtp", smtp_helo=helo)
    assert error.value.stage == "starttls"
    deadline = time.monotonic() + 5
    while not server.errors and time.monotonic() < deadline:  # until the server saw the connection close
        time.sleep(0.01)
    assert server.errors == ["client closed"]
    assert server.received == []


@pytest.mark.parametrize(
    ("fqdn", "expected"),
    [("ansible.contoso.test", "EHLO ansible.contoso.test"), ("my_controller", "EHLO [127.0.0.1]"),
     ("localhost\r\nRSET", "EHLO [127.0.0.1]")],
)
def test_the_default_helo_is_a_valid_name_or_the_address_literal(
    serve, pki: Pki, monkeypatch: pytest.MonkeyPatch, fqdn: str, expected: str
) -> None:
    monkeypatch.setattr(_tls, "_FQDN", [])
    monkeypatch.setattr(_tls.socket, "getfqdn", lambda: fqdn)
    server = serve(pki.mail, script=SMTP)
    probe(server.port, starttls="smtp")
    assert server.received[0] == expected


def test_the_default_helo_does_not_wait_for_a_hanging_reverse_lookup(
    serve, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    monkeypatch.setattr(_tls, "_FQDN", [])
    monkeypatch.setattr(_tls.socket, "getfqdn", lambda: release.wait(30) and "late.contoso.test")
    server = serve(pki.mail, script=SMTP)
    try:
        start = time.monotonic()
        probe(server.port, starttls="smtp", timeout=5.0)
    finally:
        release.set()
    assert time.monotonic() - start < 2 + 10  # the lookup gets at most 2 s; it hangs 30 s
    assert server.received[0] == "EHLO [127.0.0.1]"


def test_an_ipv6_endpoint_is_written_in_brackets() -> None:
    assert ProbeRequest("2001:db8::1", 443).endpoint == "[2001:db8::1]:443"


@pytest.mark.parametrize(("field", "value"), [("timeout", 0), ("timeout", 1e300), ("timeout", float("nan")),
                                              ("port", 0), ("port", 65536), ("port", True)])
def test_a_probe_request_refuses_values_no_socket_takes(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        ProbeRequest("h", **{"port": 443, field: value})  # type: ignore[arg-type]


# --- checking what the user gives ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail.contoso.test", "mail.contoso.test"),
        ("MAIL.Contoso.Test.", "MAIL.Contoso.Test."),
        ("ex01", "ex01"),
        ("ex_01.contoso.local", "ex_01.contoso.local"),
        ("192.0.2.10", "192.0.2.10"),
        ("2001:db8::1", "2001:db8::1"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER。example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_check_host_name_accepts_names_and_addresses(text: str, expected: str) -> None:
    assert _tls.check_host_name("host", text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "host must not be empty"),
        ("  ", "host must not be empty"),
        ("\r\n", "host '\\r\\n' contains the control character U+000D at position 1"),
        ("mail\u2028contoso.test", "contains the control character U+2028 at position 5"),
        ("mail\u200e.contoso.test", "is not a valid internationalized name (IDNA 2008)"),
        ("mail\x00.contoso.test", "host 'mail\\x00.contoso.test' contains the control character U+0000 at position 5"),
        ("mail.contoso.test\r\n", "contains the control character U+000D at position 18"),
        ("mail.contoso.test\x85", "contains the control character U+0085"),
        ("mail .contoso.test", "contains whitespace"),
        ("../../etc/passwd", "host '../../etc/passwd' is neither an IP address nor a DNS name: an empty label"),
        ("a/b", "the label 'a/b'"),
        ("[2001:db8::1]", "the label '[2001:db8::1]'"),
        ("a..b", "an empty label"),
        ("a" * 64 + ".test", "the label 'aaaa"),
        ("a." * 127 + "ab", "longer than 253 characters as a DNS name"),
        ("x" * 5000, "'" + "x" * 80 + "'... (5000 characters) is longer than 1012 characters"),
        ("a\u200db.example", "is not a valid internationalized name (IDNA 2008)"),
        ("*.contoso.test", "the label '*'"),
    ],
)
def test_check_host_name_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(_tls.ProbeOptionError, match=r"^host ") as error:
        _tls.check_host_name("host", text)
    assert message in str(error.value)
    assert error.value.option == "host"


@pytest.mark.parametrize(("text", "code"), [
    ("C:\\certs\u2028ca.pem", "U+2028 at position 9"),
    ("ca\u2029.pem", "U+2029 at position 3"),
    ("ca\x9b.pem", "U+009B at position 3"),
    ("ca\t.pem", "U+0009 at position 3"),
])
def test_a_text_that_may_hold_spaces_holds_no_line_separator_or_control_character(text: str, code: str) -> None:
    with pytest.raises(_tls.ProbeOptionError, match=re.escape(f"contains the control character {code}") + "$"):
        _tls.check_text("ca_path", text, max_length=4096, spaces=True)
    assert _tls.check_text("ca_path", "C:\\my certs\\ca.pem", max_length=4096, spaces=True) == "C:\\my certs\\ca.pem"


def test_a_wildcard_is_a_name_only_where_allowed() -> None:
    assert _tls.check_host_name("expected_names[0]", "*.contoso.test", wildcard=True) == "*.contoso.test"
    with pytest.raises(_tls.ProbeOptionError, match="the label '\\*'"):
        _tls.check_host_name("expected_names[0]", "a.*.contoso.test", wildcard=True)


def test_an_internationalized_name_without_the_idna_library_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tls, "HAS_IDNA", False)
    assert _tls.check_host_name("server_name", "mail.contoso.test") == "mail.contoso.test"
    with pytest.raises(_tls.ProbeOptionError, match=r"^server_name 'bücher.example' is an internationalized name: "
                                                    r"converting it to its A-label \(xn--...\) needs the Python "
                                                    r"library idna"):
        _tls.check_host_name("server_name", "bücher.example")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("probe.contoso.test", "probe.contoso.test"),
        ("PROBE", "PROBE"),
        ("[192.0.2.1]", "[192.0.2.1]"),
        ("[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]"),
        ("pröbe.contoso.test", "xn--prbe-6qa.contoso.test"),
    ],
)
def test_check_smtp_helo_accepts_domains_and_address_literals(text: str, expected: str) -> None:
    assert _tls.check_smtp_helo("smtp_helo", text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("probe.contoso.test\r\nMAIL FROM:<attacker@evil.test>", "contains the control character U+000D"),
        ("probe\nRSET", "contains the control character U+000A at position 6"),
        ("probe\x00", "contains the control character U+0000"),
        ("probe contoso", "contains whitespace"),
        ("", "must not be empty"),
        ("probe_1.contoso.test", "the label 'probe_1' (a label is 1 to 63 letters, digits and inner hyphens)"),
        ("-probe.contoso.test", "the label '-probe'"),
        ("probe.contoso.test.", "an empty label"),
        ("probe@contoso.test", "the label 'probe@contoso'"),
        ("[192.0.2.300]", "is not an address literal"),
        ("[IPv6:192.0.2.1]", "is not an address literal"),
        ("[mail.contoso.test]", "is not an address literal"),
        ("a" * 300, "is longer than 255 characters"),
    ],
)
def test_check_smtp_helo_refuses_what_ehlo_does_not_take(text: str, message: str) -> None:
    with pytest.raises(_tls.ProbeOptionError, match=r"^smtp_helo ") as error:
        _tls.check_smtp_helo("smtp_helo", text)
    assert message in str(error.value)


@pytest.mark.parametrize("value", [0, -1, 0.0, 300.0001, 1e300, float("inf"), float("nan"), True, "3"])
def test_check_timeout_refuses_what_bounds_no_probe(value: object) -> None:
    with pytest.raises(_tls.ProbeOptionError, match=r"^timeout must be a number of seconds greater than 0 and at "
                                                    r"most 300, got "):
        _tls.check_timeout("timeout", value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0.001, 1, 10.0, 300])
def test_check_timeout_accepts_a_sane_range(value: float) -> None:
    assert _tls.check_timeout("timeout", value) == float(value)


@pytest.mark.parametrize("value", [0, -1, 65536, 10**30, True])
def test_check_port_refuses_what_is_no_tcp_port(value: int) -> None:
    with pytest.raises(_tls.ProbeOptionError, match=rf"^port must be between 1 and 65535, got {value!r}$"):
        _tls.check_port("port", value)


def test_an_internationalized_expected_name_matches_its_a_label_san(pki: Pki) -> None:
    leaf = issue("bücher", issuer=pki.intermediate, dns_names=["xn--bcher-kva.example"])
    assert covers(parse_certificate(leaf.der), [], "bücher.example") is True
    assert covers(parse_certificate(leaf.der), [], "BÜCHER.example") is True


def test_a_server_that_does_not_send_its_intermediate_is_named(pki: Pki, serve) -> None:
    server = serve(pki.mail)  # the leaf only: its issuing CA is missing from what the server sends
    result = facts(probe(server.port), trust_anchors=[pki.root.certificate])
    assert result["chain_complete"] is True
    assert result["missing_intermediate"] == pki.intermediate.certificate.subject.rfc4514_string()
    assert result["chain_valid"] is False


@pytest.mark.parametrize("anchors", ["root", "none"])
def test_a_complete_chain_or_no_trust_anchors_names_no_missing_intermediate(pki: Pki, serve, anchors) -> None:
    server = serve(pki.mail, pki.intermediate)
    result = facts(probe(server.port), trust_anchors=[pki.root.certificate] if anchors == "root" else None)
    assert result["missing_intermediate"] is None


def test_a_leaf_issued_by_a_trusted_root_needs_no_intermediate(pki: Pki, serve) -> None:
    server = serve(pki.intermediate)  # issued directly by the root, which clients already trust
    result = facts(probe(server.port), trust_anchors=[pki.root.certificate])
    assert result["missing_intermediate"] is None
