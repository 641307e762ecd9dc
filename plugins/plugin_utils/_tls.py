# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""A TLS probe run from the controller: what certificate does a server really serve?

:func:`handshake` connects to ``host:port``, optionally speaks the STARTTLS dialogue of SMTP (RFC 3207),
IMAP (RFC 9051 / RFC 3501) or POP3 (RFC 2595), and completes a TLS 1.2+ handshake with certificate
verification switched off, so that an expired, self-signed or wrongly named certificate can still be
inspected. :func:`describe` turns the served chain into the facts ``exchange.pki.tls_probe`` returns;
the leaf is parsed, and DNS names are matched (RFC 6125), by plugin_utils/_certificate.py.

The served chain: ``SSLSocket.get_unverified_chain()`` is public from Python 3.13. On 3.10 - 3.12 CPython
has the same method (same C implementation) on the socket's private ``_sslobj``; it is used when present.
Where neither exists only the leaf is returned and ``chain_complete`` is false.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

try:
    from cryptography import x509
    from cryptography.x509 import verification
except ImportError:  # the action plugin says so, naming CRYPTOGRAPHY_REQUIREMENT
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import CertificateFacts, parse_certificate
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime

Starttls = Literal["none", "smtp", "imap", "pop3"]
Stage = Literal["connect", "starttls", "handshake"]

STARTTLS_PROTOCOLS: tuple[Starttls, ...] = ("none", "smtp", "imap", "pop3")
_MAX_LINE = 8192
_STAGE_TEXT: dict[Stage, str] = {
    "connect": "connecting to",
    "starttls": "STARTTLS with",
    "handshake": "TLS handshake with",
}
_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)")


class TlsProbeError(ExchangePkiError):
    """The probe failed; ``stage`` says where (connect, starttls or handshake)."""

    def __init__(self, stage: Stage, endpoint: str, detail: str) -> None:
        super().__init__(f"{_STAGE_TEXT[stage]} {endpoint} failed: {detail}")
        self.stage = stage


@dataclasses.dataclass(frozen=True)
class ProbeRequest:
    """Where and how to connect. ``server_name`` is sent as SNI (None: no SNI); ``smtp_helo`` None gives
    the controller's FQDN in EHLO."""

    host: str
    port: int
    starttls: Starttls = "none"
    server_name: str | None = None
    timeout: float = 10.0
    smtp_helo: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Handshake:
    """What the server presented: the negotiated protocol and cipher and its certificates, leaf first."""

    request: ProbeRequest
    protocol: str
    cipher: str
    chain: tuple[bytes, ...]
    chain_complete: bool

    @property
    def leaf(self) -> bytes:
        return self.chain[0]


# -- the handshake --------------------------------------------------------------------------------------
def handshake(request: ProbeRequest) -> Handshake:
    """Connect, run the STARTTLS dialogue if asked, shake hands and return what the server presented.

    Raises TlsProbeError naming the stage that failed. ``request.timeout`` bounds the connection and every
    single network read.
    """
    with _stage("connect", request):
        raw = socket.create_connection((request.host, request.port), timeout=request.timeout)
    with raw:
        if request.starttls != "none":
            with _stage("starttls", request):
                _STARTTLS_DIALOGUES[request.starttls](_LineChannel(raw, request), request)
        with _stage("handshake", request), _client_context().wrap_socket(
            raw, server_hostname=request.server_name
        ) as tls:
            leaf = tls.getpeercert(binary_form=True)
            if not leaf:
                raise TlsProbeError("handshake", request.endpoint, "the server presented no certificate")
            chain, complete = _served_chain(tls)
            cipher = tls.cipher()
            return Handshake(
                request=request,
                protocol=tls.version() or "unknown",
                cipher=cipher[0] if cipher else "unknown",
                chain=(leaf, *(der for der in chain if der != leaf)),
                chain_complete=complete,
            )


@contextlib.contextmanager
def _stage(stage: Stage, request: ProbeRequest) -> Iterator[None]:
    """Translate socket and TLS errors raised in ``stage`` into a TlsProbeError naming it."""
    try:
        yield
    except TimeoutError:
        raise TlsProbeError(stage, request.endpoint, f"no answer within {request.timeout:g} seconds") from None
    except ssl.SSLError as exc:
        raise TlsProbeError(stage, request.endpoint, _SSL_SOURCE.sub("", str(exc))) from None
    except OSError as exc:
        raise TlsProbeError(stage, request.endpoint, exc.strerror or str(exc) or type(exc).__name__) from None


def _client_context() -> ssl.SSLContext:
    """TLS 1.2 or later, no verification: the probe inspects what is served, whatever it is."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _served_chain(tls: ssl.SSLSocket) -> tuple[tuple[bytes, ...], bool]:
    """The DER certificates the server sent, and whether that is the whole chain (see the module doc)."""
    public = getattr(tls, "get_unverified_chain", None)  # Python >= 3.13: a list of DER bytes
    if public is not None:
        return tuple(public() or ()), True
    private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)  # CPython 3.10 - 3.12
    if private is not None:
        return tuple(ssl.PEM_cert_to_DER_cert(cert.public_bytes()) for cert in private() or ()), True
    return (), False


# -- STARTTLS dialogues ---------------------------------------------------------------------------------
class _LineChannel:
    """CRLF lines over the plain socket before TLS starts."""

    def __init__(self, sock: socket.socket, request: ProbeRequest) -> None:
        self._sock = sock
        self._buffer = b""
        self.request = request

    def send(self, line: str) -> None:
        self._sock.sendall(line.encode("ascii") + b"\r\n")

    def readline(self) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > _MAX_LINE:
                self.fail(f"a line longer than {_MAX_LINE} bytes")
            chunk = self._sock.recv(4096)
            if not chunk:
                self.fail("the server closed the connection")
            self._buffer += chunk
        line, _newline, self._buffer = self._buffer.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def expect(self, predicate: Callable[[str], bool], what: str, line: str | None = None) -> str:
        """Read a line (or take ``line``) and fail unless ``predicate`` holds for it."""
        line = self.readline() if line is None else line
        if not predicate(line):
            self.fail(f"expected {what}, got {line[:200]!r}")
        return line

    def fail(self, detail: str) -> None:
        raise TlsProbeError("starttls", self.request.endpoint, f"{self.request.starttls}: {detail}")

    def ready_for_tls(self) -> None:
        """Nothing may follow the server's go-ahead before the handshake (RFC 3207 section 4.2)."""
        if self._buffer:
            self.fail("the server sent data after accepting STARTTLS")


def _smtp_reply(channel: _LineChannel) -> tuple[int, list[str]]:
    """One SMTP reply (RFC 5321 section 4.2): its code and the text of each of its lines."""
    lines: list[str] = []
    while True:
        line = channel.expect(lambda text: re.match(r"\d{3}[ -]", text + " ") is not None, "an SMTP reply")
        lines.append(line[4:])
        if line[3:4] != "-":
            return int(line[:3]), lines


def _smtp(channel: _LineChannel, request: ProbeRequest) -> None:
    code, text = _smtp_reply(channel)
    if code != 220:
        channel.fail(f"the greeting is {code} {' '.join(text)[:200]!r}, not 220")
    channel.send(f"EHLO {request.smtp_helo or socket.getfqdn()}")
    code, text = _smtp_reply(channel)
    if code != 250:
        channel.fail(f"EHLO was answered {code} {' '.join(text)[:200]!r}")
    if not any(line.split(" ", 1)[0].upper() == "STARTTLS" for line in text[1:]):
        channel.fail("the server does not advertise STARTTLS in its EHLO reply")
    channel.send("STARTTLS")
    code, text = _smtp_reply(channel)
    if code != 220:
        channel.fail(f"STARTTLS was answered {code} {' '.join(text)[:200]!r}")
    channel.ready_for_tls()


def _imap_tagged(channel: _LineChannel, tag: str) -> tuple[str, list[str]]:
    """Read up to the tagged completion of ``tag``: its status line and the untagged lines before it."""
    untagged: list[str] = []
    while True:
        line = channel.readline()
        if line.startswith(f"{tag} "):
            return line[len(tag) + 1 :], untagged
        untagged.append(line)


def _imap(channel: _LineChannel, _request: ProbeRequest) -> None:
    channel.expect(lambda line: line.upper().startswith("* OK"), "an '* OK' greeting")
    channel.send("a1 CAPABILITY")
    status, untagged = _imap_tagged(channel, "a1")
    if not status.upper().startswith("OK"):
        channel.fail(f"CAPABILITY was answered {status[:200]!r}")
    capabilities = {
        word.upper() for line in untagged if line.upper().startswith("* CAPABILITY ") for word in line.split()[2:]
    }
    if "STARTTLS" not in capabilities:
        channel.fail("the server does not advertise STARTTLS in its CAPABILITY reply")
    channel.send("a2 STARTTLS")
    status, _untagged = _imap_tagged(channel, "a2")
    if not status.upper().startswith("OK"):
        channel.fail(f"STARTTLS was answered {status[:200]!r}")
    channel.ready_for_tls()


def _pop3(channel: _LineChannel, _request: ProbeRequest) -> None:
    def is_ok(line: str) -> bool:
        return line.startswith("+OK")

    channel.expect(is_ok, "a '+OK' greeting")
    channel.send("CAPA")
    channel.expect(is_ok, "'+OK' to CAPA")
    capabilities: set[str] = set()
    while (line := channel.readline()) != ".":
        capabilities.add(line.split(" ", 1)[0].upper())
    if "STLS" not in capabilities:
        channel.fail("the server does not advertise STLS in its CAPA reply")
    channel.send("STLS")
    channel.expect(is_ok, "'+OK' to STLS")
    channel.ready_for_tls()


_STARTTLS_DIALOGUES: dict[str, Callable[[_LineChannel, ProbeRequest], None]] = {
    "smtp": _smtp,
    "imap": _imap,
    "pop3": _pop3,
}


# -- names ----------------------------------------------------------------------------------------------
def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_ip_address(text: str) -> bool:
    return _ip_address(text) is not None


def covers(facts: CertificateFacts, ip_addresses: Sequence[str], name: str) -> bool:
    """Whether the certificate is valid for ``name``: an IP address against its IP address SANs, a DNS
    name against its DNS SANs (RFC 6125, :meth:`CertificateFacts.covers`)."""
    address = _ip_address(name)
    if address is not None:
        return any(_ip_address(presented) == address for presented in ip_addresses)
    return facts.covers(name)


# -- facts ----------------------------------------------------------------------------------------------
def describe(
    handshake: Handshake,
    *,
    expected_names: Sequence[str],
    expected_thumbprint: str | None,
    trust_anchors: Sequence[x509.Certificate] | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The result of ``exchange.pki.tls_probe`` for a completed handshake (JSON-serialisable).

    ``expected_thumbprint`` must already be normalized; ``trust_anchors`` None skips chain validation.
    """
    request = handshake.request
    facts = parse_certificate(handshake.leaf)
    ip_addresses = _ip_address_sans(handshake.leaf)
    matched = [name for name in expected_names if covers(facts, ip_addresses, name)]
    chain_valid, chain_error = (
        (None, None) if trust_anchors is None else validate_chain(handshake, trust_anchors, now)
    )
    return {
        "changed": False,
        "host": request.host,
        "port": request.port,
        "starttls": request.starttls,
        "server_name": request.server_name,
        "protocol": handshake.protocol,
        "cipher": handshake.cipher,
        **_leaf_facts(facts, ip_addresses, now),
        "name_matches": (len(matched) == len(expected_names)) if expected_names else None,
        "matched_names": matched,
        "unmatched_names": [name for name in expected_names if name not in matched],
        "expected_thumbprint_matches": (
            None if expected_thumbprint is None else facts.thumbprint == expected_thumbprint
        ),
        "chain": [ssl.DER_cert_to_PEM_cert(der) for der in handshake.chain],
        "chain_complete": handshake.chain_complete,
        "chain_valid": chain_valid,
        "chain_error": chain_error,
    }


def load_trust_anchors(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; ValueError when it holds none or is malformed."""
    return x509.load_pem_x509_certificates(pem)


def validate_chain(
    handshake: Handshake, trust_anchors: Sequence[x509.Certificate], now: datetime.datetime
) -> tuple[bool, str | None]:
    """Verify the served chain as a TLS client connecting to the server name would (Web PKI rules).

    The reference identity is the SNI server name, else the host's IP address. Returns (valid, reason).
    """
    if not trust_anchors:
        return False, "no trust anchors: the CA bundle holds no certificate"
    request = handshake.request
    reference = request.server_name or request.host
    address = _ip_address(reference)
    subject = verification.IPAddress(address) if address is not None else verification.DNSName(reference)
    leaf, *intermediates = (x509.load_der_x509_certificate(der) for der in handshake.chain)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trust_anchors)))
        .time(now.astimezone(datetime.timezone.utc).replace(tzinfo=None))
        .build_server_verifier(subject)
    )
    try:
        verifier.verify(leaf, intermediates)
    except verification.VerificationError as exc:
        return False, str(exc)
    return True, None


def _leaf_facts(facts: CertificateFacts, ip_addresses: list[str], now: datetime.datetime) -> dict[str, Any]:
    """The leaf's facts as docs/facts.md writes them (thumbprint, names, validity)."""
    return {
        "thumbprint": facts.thumbprint,
        "sha256_fingerprint": hashlib.sha256(facts.der).hexdigest().upper(),
        "subject": facts.subject,
        "issuer": facts.issuer,
        "serial_number": facts.serial_number,
        "not_before": format_utc_datetime(facts.not_before),
        "not_after": format_utc_datetime(facts.not_after),
        "days_remaining": facts.days_remaining(now),
        "dns_names": list(facts.dns_names),
        "ip_addresses": ip_addresses,
    }


def _ip_address_sans(der: bytes) -> list[str]:
    """The IP addresses of the subject alternative names (CertificateFacts keeps only the DNS names)."""
    try:
        san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(address) for address in san.value.get_values_for_type(x509.IPAddress)]
