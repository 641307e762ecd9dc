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

``request.timeout`` bounds the whole probe: one deadline is set when it starts, and name resolution, the
connection, every read and write of the STARTTLS dialogue and the TLS handshake each get only the time that
is left. The ``check_*`` functions validate what a user gives before anything is sent; they raise
:class:`ProbeOptionError` naming the option.
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
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

try:
    from cryptography import x509
    from cryptography.x509 import verification
except ImportError:  # the action plugin says so, naming CRYPTOGRAPHY_REQUIREMENT
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    HAS_IDNA,
    CertificateFacts,
    DnsNameError,
    dns_name_to_a_label,
    parse_certificate,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._text import CONTROL, has_control
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime

Starttls = Literal["none", "smtp", "imap", "pop3"]
Stage = Literal["connect", "starttls", "handshake"]

STARTTLS_PROTOCOLS: tuple[Starttls, ...] = ("none", "smtp", "imap", "pop3")
#: The largest ``timeout`` accepted, in seconds (it bounds the whole probe).
MAX_TIMEOUT = 300.0
_MAX_LINE = 8192
#: The most the server may send during the whole STARTTLS dialogue (an Exchange EHLO reply is < 1 KiB).
_MAX_DIALOGUE = 256 * 1024
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


class ProbeOptionError(ValueError):
    """A value the probe cannot use; the message starts with the option's name (``option``)."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option} {problem}")
        self.option = option


class _ProbeTimeout(TimeoutError):
    """The probe's deadline passed; ``doing`` says during what, when that is not obvious from the stage."""

    def __init__(self, doing: str = "") -> None:
        super().__init__(doing or "timed out")
        self.doing = doing


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

    def __post_init__(self) -> None:
        # The action plugin has validated the user's values (check_* below); this guards other callers.
        if not 0 < self.timeout <= MAX_TIMEOUT:  # also false for NaN
            raise ValueError(f"timeout must be greater than 0 and at most {MAX_TIMEOUT:g} seconds")
        if isinstance(self.port, bool) or not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {self.port!r}")

    @property
    def endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 address
        return f"{host}:{self.port}"


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
class _Deadline:
    """One deadline for the whole probe; every network operation gets the time that is left."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def remaining(self, doing: str = "") -> float:
        """Seconds left (> 0); _ProbeTimeout once the deadline has passed."""
        left = self._end - time.monotonic()
        if left <= 0:
            raise _ProbeTimeout(doing)
        return left

    def run(self, function: Callable[[], Any], doing: str, limit: float | None = None) -> Any:
        """``function()`` in a helper thread, waited for no longer than the time left (or ``limit``).

        For blocking calls that take no timeout (name resolution): the thread is a daemon and, when the
        deadline passes first, is left to finish on its own.
        """
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = function()
            except Exception as exc:  # noqa: BLE001 - handed over to the waiting thread
                outcome["error"] = exc

        worker = threading.Thread(target=target, name=f"tls_probe {doing}", daemon=True)
        worker.start()
        wait = self.remaining(doing)
        worker.join(wait if limit is None else min(wait, limit))
        if worker.is_alive():
            raise _ProbeTimeout(doing)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]


def handshake(request: ProbeRequest) -> Handshake:
    """Connect, run the STARTTLS dialogue if asked, shake hands and return what the server presented.

    Raises TlsProbeError naming the stage that failed. ``request.timeout`` bounds the whole probe: name
    resolution, connection, dialogue and handshake together (see the module doc).
    """
    deadline = _Deadline(request.timeout)
    with _stage("connect", request):
        raw = _connect(request, deadline)
    with raw:
        if request.starttls != "none":
            with _stage("starttls", request):
                _STARTTLS_DIALOGUES[request.starttls](_LineChannel(raw, request, deadline), request)
        with _stage("handshake", request):
            raw.settimeout(deadline.remaining())  # CPython's do_handshake() keeps to this as one deadline
            with _client_context().wrap_socket(raw, server_hostname=request.server_name) as tls:
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


def _connect(request: ProbeRequest, deadline: _Deadline) -> socket.socket:
    """A TCP connection to the first address of ``request.host`` that answers, within the deadline."""
    addresses = deadline.run(
        lambda: socket.getaddrinfo(request.host, request.port, type=socket.SOCK_STREAM), "resolving the host name"
    )
    error: OSError = OSError(f"{request.host} resolves to no address")
    for family, kind, protocol, _name, address in addresses:
        sock = socket.socket(family, kind, protocol)
        try:
            sock.settimeout(deadline.remaining())
            sock.connect(address)
        except OSError as exc:  # TimeoutError included
            sock.close()
            error = exc
            if isinstance(exc, TimeoutError):
                raise  # the deadline has passed: no time for another address
        else:
            return sock
    raise error


@contextlib.contextmanager
def _stage(stage: Stage, request: ProbeRequest) -> Iterator[None]:
    """Translate socket and TLS errors raised in ``stage`` into a TlsProbeError naming it."""
    try:
        yield
    except TimeoutError as exc:
        doing = f" {exc.doing}" if isinstance(exc, _ProbeTimeout) and exc.doing else ""
        raise TlsProbeError(
            stage, request.endpoint, f"timed out{doing}: the probe did not finish within timeout={request.timeout:g} s"
        ) from None
    except ssl.SSLError as exc:
        raise TlsProbeError(stage, request.endpoint, _SSL_SOURCE.sub("", str(exc))) from None
    except OSError as exc:
        raise TlsProbeError(stage, request.endpoint, exc.strerror or str(exc) or type(exc).__name__) from None
    except UnicodeError as exc:  # a name the resolver's IDNA codec refuses (check_host_name prevents it)
        raise TlsProbeError(stage, request.endpoint, f"the name cannot be encoded: {exc}") from None


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

    def __init__(self, sock: socket.socket, request: ProbeRequest, deadline: _Deadline) -> None:
        self._sock = sock
        self._buffer = b""
        self._received = 0
        self._deadline = deadline
        self.request = request

    def send(self, line: str) -> None:
        if not line.isascii() or has_control(line):  # never inject a command (see check_smtp_helo)
            self.fail(f"refusing to send {shown(line)}: not ASCII or holds a control character")
        self._sock.settimeout(self._deadline.remaining())
        self._sock.sendall(line.encode("ascii") + b"\r\n")

    def readline(self) -> str:
        while b"\n" not in self._buffer:
            if len(self._buffer) > _MAX_LINE:
                self.fail(f"a line longer than {_MAX_LINE} bytes")
            self._sock.settimeout(self._deadline.remaining())
            chunk = self._sock.recv(4096)
            if not chunk:
                self.fail("the server closed the connection")
            self._received += len(chunk)
            if self._received > _MAX_DIALOGUE:
                self.fail(f"the server sent more than {_MAX_DIALOGUE // 1024} KiB before TLS")
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

    def default_helo(self) -> str:
        """The controller's FQDN when it is a valid EHLO domain and is known in time, else the address literal
        of this end of the connection (RFC 5321 section 4.1.4)."""
        with contextlib.suppress(TimeoutError, OSError, ProbeOptionError):
            return check_smtp_helo("smtp_helo", _controller_fqdn(self._deadline))
        address = ipaddress.ip_address(self._sock.getsockname()[0].partition("%")[0])
        return f"[{address}]" if address.version == 4 else f"[IPv6:{address}]"

    def ready_for_tls(self) -> None:
        """Nothing may follow the server's go-ahead before the handshake (RFC 3207 section 4.2)."""
        if self._buffer:
            self.fail("the server sent data after accepting STARTTLS")


_FQDN: list[str] = []  # the controller's name, once known


def _controller_fqdn(deadline: _Deadline) -> str:
    """``socket.getfqdn()`` (a reverse lookup that can hang), at most 2 s or the time left; cached, and so is
    a lookup that did not finish in time ("": the caller falls back to the address literal)."""
    if not _FQDN:
        try:
            _FQDN.append(deadline.run(socket.getfqdn, "looking up the controller's name", limit=2.0))
        except TimeoutError:
            _FQDN.append("")
    return _FQDN[0]


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
    channel.send(f"EHLO {request.smtp_helo or channel.default_helo()}")
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


# -- names and option values ---------------------------------------------------------------------------
_HOST_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")  # host names in the wild also hold underscores
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")  # RFC 5321 sub-domain
MAX_NAME_LENGTH = 253  # a DNS name in text form, without the trailing dot
MAX_HELO_LENGTH = 255  # RFC 5321 section 4.5.3.1.2


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_ip_address(text: str) -> bool:
    return _ip_address(text) is not None


def shown(text: str, limit: int = 80) -> str:
    """``text`` quoted for an error message, control characters escaped and cut to ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def check_text(option: str, text: str, *, max_length: int, spaces: bool = False) -> str:
    """``text`` unless it is empty, too long or holds a control character (or whitespace unless ``spaces``)."""
    control = CONTROL.search(text)
    if control is not None:
        raise ProbeOptionError(
            option, f"{shown(text)} contains the control character U+{ord(control.group()):04X} "
            f"at position {control.start() + 1}"
        )
    if not text.strip():
        raise ProbeOptionError(option, "must not be empty")
    if len(text) > max_length:
        raise ProbeOptionError(option, f"{shown(text)} is longer than {max_length} characters")
    if not spaces and any(char.isspace() for char in text):
        raise ProbeOptionError(option, f"{shown(text)} contains whitespace")
    return text


def to_a_label(option: str, name: str) -> str:
    """A DNS name with each internationalized label (U-label) converted to its A-label (IDNA 2008, UTS #46
    mapping) by the collection's one conversion, :func:`_certificate.dns_name_to_a_label`; ASCII names are
    returned unchanged."""
    if name.isascii():
        return name
    if not HAS_IDNA:
        raise ProbeOptionError(
            option, f"{shown(name)} is an internationalized name: converting it to its A-label (xn--...) needs "
            "the Python library idna on the controller; install it or give the A-label"
        )
    try:
        return dns_name_to_a_label(name)
    except DnsNameError as exc:
        raise ProbeOptionError(option, f"{shown(name)} is not a valid internationalized name (IDNA 2008): {exc}") \
            from None


def check_host_name(option: str, text: str, *, wildcard: bool = False) -> str:
    """An IP address, or a DNS name in A-label form (see :func:`to_a_label`) made of labels of at most 63
    letters, digits, hyphens and underscores and at most 253 characters. ``wildcard`` allows a ``*`` as the
    whole left-most label (a name a certificate may hold)."""
    check_text(option, text, max_length=4 * MAX_NAME_LENGTH)  # U-labels grow when encoded
    if is_ip_address(text):
        return text
    name = to_a_label(option, text)
    bare = name[:-1] if name.endswith(".") else name
    labels = bare.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    if len(bare) > MAX_NAME_LENGTH:
        raise ProbeOptionError(option, f"{shown(text)} is longer than {MAX_NAME_LENGTH} characters as a DNS name")
    for label in labels:
        if not _HOST_LABEL.fullmatch(label):
            problem = "an empty label" if not label else f"the label {shown(label)}"
            raise ProbeOptionError(
                option, f"{shown(text)} is neither an IP address nor a DNS name: {problem} (a label is 1 to 63 "
                "letters, digits, hyphens or underscores)"
            )
    return name


def check_smtp_helo(option: str, text: str) -> str:
    """A valid argument of EHLO (RFC 5321 section 4.1.1.1): a domain (its U-labels converted to A-labels)
    or an address literal, ``[192.0.2.1]`` or ``[IPv6:2001:db8::1]``. Nothing else is ever sent."""
    check_text(option, text, max_length=4 * MAX_HELO_LENGTH)
    if text.startswith("[") and text.endswith("]"):
        literal = text[1:-1]
        try:
            if literal[:5].upper() == "IPV6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            raise ProbeOptionError(
                option, f"{shown(text)} is not an address literal: use [192.0.2.1] or [IPv6:2001:db8::1]"
            ) from None
        return text
    domain = to_a_label(option, text)
    if len(domain) > MAX_HELO_LENGTH:
        raise ProbeOptionError(option, f"{shown(text)} is longer than {MAX_HELO_LENGTH} characters")
    for label in domain.split("."):
        if not _LDH_LABEL.fullmatch(label):
            problem = "an empty label" if not label else f"the label {shown(label)}"
            raise ProbeOptionError(
                option, f"{shown(text)} is not a domain or an address literal as EHLO takes them (RFC 5321): "
                f"{problem} (a label is 1 to 63 letters, digits and inner hyphens)"
            )
    return domain


def check_timeout(option: str, value: float) -> float:
    """A number of seconds greater than 0 and at most :data:`MAX_TIMEOUT` (NaN and infinity are not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT:
        raise ProbeOptionError(
            option, f"must be a number of seconds greater than 0 and at most {MAX_TIMEOUT:g}, got {value!r}"
        )
    return float(value)


def check_port(option: str, value: int) -> int:
    """A TCP port, 1 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ProbeOptionError(option, f"must be between 1 and 65535, got {value!r}")
    return value


def covers(facts: CertificateFacts, ip_addresses: Sequence[str], name: str) -> bool:
    """Whether the certificate is valid for ``name``: an IP address against its IP address SANs, a DNS
    name (in A-label form) against its DNS SANs (RFC 6125, :meth:`CertificateFacts.covers`)."""
    address = _ip_address(name)
    if address is not None:
        return any(_ip_address(presented) == address for presented in ip_addresses)
    return facts.covers(name)  # compared in A-label form (dns_name_matches)


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
    known = trust_anchors is not None and handshake.chain_complete
    missing = missing_issuer(handshake, trust_anchors) if known and trust_anchors is not None else None
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
        "missing_intermediate": missing,
    }


def load_trust_anchors(pem: bytes) -> list[x509.Certificate]:
    """The certificates of a PEM bundle; ValueError when it holds none or is malformed."""
    return x509.load_pem_x509_certificates(pem)


def missing_issuer(handshake: Handshake, trust_anchors: Sequence[x509.Certificate]) -> str | None:
    """The issuer the server should send but does not: the subject that ends the served chain, when it is neither
    a served certificate, a self-signed one, nor a trusted root (an intermediate the server is missing).

    Clients that have not cached that intermediate cannot build the chain (the "certificate not trusted" trouble of
    a server whose intermediate certificate store lacks it). None when the served chain reaches a trusted root or a
    self-signed certificate.
    """
    served = [x509.load_der_x509_certificate(der) for der in handshake.chain]
    anchors = {anchor.subject for anchor in trust_anchors}
    current, seen = served[0], 0
    while current.issuer != current.subject and seen < len(served):
        seen += 1
        issuer = next((candidate for candidate in served if candidate.subject == current.issuer
                       and candidate is not current), None)
        if issuer is None:
            return None if current.issuer in anchors else current.issuer.rfc4514_string()
        current = issuer
    return None


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
    try:
        subject = verification.IPAddress(address) if address is not None else verification.DNSName(reference)
    except ValueError as exc:
        return False, f"{reference!r} cannot be verified as a server name: {exc}"
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
        "dns_names": None if facts.dns_names is None else list(facts.dns_names),
        "ip_addresses": ip_addresses,
    }


def _ip_address_sans(der: bytes) -> list[str]:
    """The IP addresses of the subject alternative names (CertificateFacts keeps only the DNS names)."""
    try:
        san = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(address) for address in san.value.get_values_for_type(x509.IPAddress)]
