# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The certificate model: every certificate fact is parsed here from its DER bytes (Exchange's RawData).

Exchange's own properties (Thumbprint, Subject, ...) may be missing when objects arrive RawData-only
(exchange-facts.md "Get-ExchangeCertificate"), so the controller never relies on them for facts about
the certificate itself. Distinguished names are also modelled here, normalised so that a connector's
``TlsCertificateName`` can be compared with a certificate's issuer and subject the way Exchange does.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import re
import unicodedata
import warnings
from collections.abc import Iterable
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._time import whole_days
from ansible_collections.exchange.pki.plugins.plugin_utils._values import ExchangeCertificateRecord, StoreCertificate

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
except ImportError:
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

try:
    import idna
except ImportError:
    HAS_IDNA = False
else:
    HAS_IDNA = True

# not_valid_before_utc / not_valid_after_utc appeared in cryptography 42.0.
CRYPTOGRAPHY_REQUIREMENT = "cryptography >= 42.0"
# IDNA 2008 A-labels for internationalised DNS names (the standard library's codec is IDNA 2003).
IDNA_REQUIREMENT = "idna"
SERVER_AUTH_EKU = "1.3.6.1.5.5.7.3.1"  # RFC 5280 id-kp-serverAuth
ANY_EKU = "2.5.29.37.0"  # RFC 5280 anyExtendedKeyUsage


class CertificateParseError(ExchangePkiError, ValueError):
    """Bytes that should be one DER certificate are not."""


# --- distinguished names --------------------------------------------------------------------------

# One attribute (canonical type name, case-folded value); one RDN is a set of them (multi-valued RDNs).
Rdn = frozenset[tuple[str, str]]
# A name as RDNs in DER order (least specific first, the order of the certificate's encoding).
DistinguishedName = tuple[Rdn, ...]

# Short names Windows, RFC 4514 and OpenSSL use for the same attribute, mapped to one canonical name.
_ATTRIBUTE_ALIASES = {
    "CN": "CN", "COMMONNAME": "CN",
    "O": "O", "ORGANIZATIONNAME": "O",
    "OU": "OU", "ORGANIZATIONALUNITNAME": "OU",
    "C": "C", "COUNTRYNAME": "C",
    "L": "L", "LOCALITYNAME": "L",
    "S": "ST", "ST": "ST", "STATEORPROVINCENAME": "ST",
    "STREET": "STREET", "STREETADDRESS": "STREET",
    "DC": "DC", "DOMAINCOMPONENT": "DC",
    "E": "EMAIL", "EMAIL": "EMAIL", "EMAILADDRESS": "EMAIL",
    "SERIALNUMBER": "SERIALNUMBER",
    "G": "GIVENNAME", "GN": "GIVENNAME", "GIVENNAME": "GIVENNAME",
    "SN": "SURNAME", "SURNAME": "SURNAME",
    "T": "TITLE", "TITLE": "TITLE",
    "UID": "UID", "USERID": "UID",
}
# Attribute types by OID (X.520, RFC 4519, PKCS #9, RFC 4514 section 3).
_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "EMAIL",
    "2.5.4.5": "SERIALNUMBER",
    "2.5.4.42": "GIVENNAME",
    "2.5.4.4": "SURNAME",
    "2.5.4.12": "TITLE",
    "0.9.2342.19200300.100.1.1": "UID",
}
_DOTTED_OID = re.compile(r"^(?:OID\.)?(\d+(?:\.\d+)+)$", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


def _attribute_value(value: str) -> str:
    """Compare values like Exchange: case-insensitively, ignoring surrounding and repeated whitespace."""
    return _WHITESPACE.sub(" ", value.strip()).casefold()


def _attribute_type(text: str) -> str:
    name = text.strip()
    dotted = _DOTTED_OID.match(name)
    if dotted:
        return _OID_NAMES.get(dotted.group(1), dotted.group(1))
    canonical = _ATTRIBUTE_ALIASES.get(name.upper())
    if canonical is None:
        raise ValueError(f"unknown attribute type {name!r}")
    return canonical


def _split_unescaped(text: str, separators: str) -> list[str]:
    """Split at separators outside double quotes and not escaped with a backslash."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == '"':
            current.append(char)
            quoted = not quoted
        elif char in separators and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise ValueError("unbalanced double quote")
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    """Remove Windows-style quotes (``"a, b"``, ``""`` for a quote) and RFC 4514 backslash escapes."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('""', '"')
    return re.sub(r"\\(.)", r"\1", value)


def parse_distinguished_name(text: str) -> DistinguishedName:
    """Parse an X.500 name as Windows (``CN=mail, O=Contoso, C=US``) or RFC 4514 (``CN=mail,O=Contoso``) writes it.

    The result is in the order written; compare with :func:`same_name`, which accepts either order.
    Raises ValueError naming the problem (empty name, an RDN without ``=``, an unknown attribute type).
    """
    if not text.strip():
        raise ValueError("empty distinguished name")
    rdns: list[Rdn] = []
    for rdn_text in _split_unescaped(text, ",;"):
        attributes = set()
        for attribute in _split_unescaped(rdn_text, "+"):
            name, separator, value = attribute.partition("=")
            if not separator or not name.strip():
                raise ValueError(f"{attribute.strip()!r} is not an attribute=value pair")
            attributes.add((_attribute_type(name), _attribute_value(_unquote(value))))
        rdns.append(frozenset(attributes))
    return tuple(rdns)


def common_name(subject: str) -> str | None:
    """The first CN of a subject as written (case kept, escapes and quotes removed); None without one."""
    for rdn_text in _split_unescaped(subject, ",;"):
        for attribute in _split_unescaped(rdn_text, "+"):
            name, separator, value = attribute.partition("=")
            if separator and _ATTRIBUTE_ALIASES.get(name.strip().upper()) == "CN" and value.strip():
                return _unquote(value)
    return None


def name_of(name: x509.Name) -> DistinguishedName:
    """The normalised :data:`DistinguishedName` of a certificate's issuer or subject (DER order)."""
    return tuple(
        frozenset(
            (_OID_NAMES.get(attribute.oid.dotted_string, attribute.oid.dotted_string),
             _attribute_value(str(attribute.value)))
            for attribute in rdn
        )
        for rdn in name.rdns
    )


def name_orders(name: DistinguishedName) -> tuple[DistinguishedName, DistinguishedName]:
    """The name as written and reversed: Windows writes the most specific RDN first, X.500 the least."""
    return name, tuple(reversed(name))


def same_name(written: DistinguishedName, encoded: DistinguishedName) -> bool:
    """Whether a written name equals a certificate's name, in either RDN order."""
    return encoded in name_orders(written)


# --- thumbprints ----------------------------------------------------------------------------------

_THUMBPRINT_LENGTH = 40
_HEX_DIGITS = frozenset("0123456789ABCDEF")
# Separators people paste with thumbprints (certmgr's "9f 1c ...", OpenSSL's "9F:1C:...").
_SEPARATORS = frozenset(" :\t\r\n\u00a0")


def _is_invisible(char: str) -> bool:
    """Format characters (U+200E LEFT-TO-RIGHT MARK, U+FEFF BOM, zero-width spaces) and other spaces."""
    return unicodedata.category(char) in ("Cf", "Zs", "Zl", "Zp")


def normalize_thumbprint(text: str) -> str:
    """A thumbprint as Windows shows it (40 uppercase hex digits) from what a user pasted.

    Spaces, colons and invisible marks (the U+200E that certmgr's copy adds) are removed; anything else
    that is not a hex digit is a ValueError naming the character and its position.
    """
    digits = []
    for position, char in enumerate(text, start=1):
        if char in _SEPARATORS or _is_invisible(char):
            continue
        if char.upper() not in _HEX_DIGITS:
            raise ValueError(
                f"thumbprint {text!r}: character {char!r} (U+{ord(char):04X}) at position {position} "
                "is not a hexadecimal digit"
            )
        digits.append(char.upper())
    if len(digits) != _THUMBPRINT_LENGTH:
        raise ValueError(
            f"thumbprint {text!r}: expected {_THUMBPRINT_LENGTH} hexadecimal digits (SHA-1), got {len(digits)}"
        )
    return "".join(digits)


# --- certificate facts ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertificateFacts:
    """What the controller knows about one certificate from its DER bytes alone.

    The thumbprint, names, serial number and validity dates are always known. The other facts come from
    parts that a malformed or exotic certificate may not let us read (its extensions, its public key, its
    signature): those are None when unknown, and ``problems`` says what could not be read and why, one
    entry per part (``"extensions: duplicate extension 2.5.29.17"``). ``problems`` is empty for a
    certificate that was read completely.
    """

    thumbprint: str
    subject: str
    issuer: str
    subject_name: DistinguishedName
    issuer_name: DistinguishedName
    serial_number: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    dns_names: tuple[str, ...] | None  # None: the extensions could not be read
    key_type: str | None  # None: the public key could not be read
    key_size: int | None
    signature_hash: str | None  # None: no separate hash (Ed25519) or an algorithm we cannot name
    ekus: tuple[str, ...] | None  # None: the extensions could not be read; () no EKU extension
    is_self_signed: bool | None  # None: subject equals issuer but the signature could not be checked
    public_key_sha256: str | None  # None: the public key could not be read
    der: bytes = dataclasses.field(repr=False)
    problems: tuple[str, ...] = ()

    @property
    def is_complete(self) -> bool:
        """Whether every part of the certificate could be read (``problems`` is empty)."""
        return not self.problems

    def days_remaining(self, now: datetime.datetime) -> int:
        """Whole days until ``not_after`` (floor); negative once expired."""
        return whole_days(self.not_after, now)

    def lifetime_days(self) -> int:
        """Whole days between ``not_before`` and ``not_after``."""
        return whole_days(self.not_after, self.not_before)

    def is_expired(self, now: datetime.datetime) -> bool:
        return now >= self.not_after

    def is_not_yet_valid(self, now: datetime.datetime) -> bool:
        return now < self.not_before

    @property
    def allows_server_auth(self) -> bool | None:
        """No EKU extension means any purpose; otherwise serverAuth or anyExtendedKeyUsage must be listed.

        None when the extensions could not be read (unknown, not "no"): test with ``is False``.
        """
        if self.ekus is None:
            return None
        return not self.ekus or SERVER_AUTH_EKU in self.ekus or ANY_EKU in self.ekus

    def covers(self, host: str) -> bool:
        """Whether a DNS name of the certificate matches ``host`` (RFC 6125; the CN is not consulted).

        False when the names could not be read: nothing is known to be covered.
        """
        return any(dns_name_matches(pattern, host) for pattern in self.dns_names or ())

    @property
    def common_name(self) -> str | None:
        """The most specific CN of the subject, case-folded (names are compared case-insensitively)."""
        for rdn in reversed(self.subject_name):
            for attribute_type, value in rdn:
                if attribute_type == "CN":
                    return value
        return None


# --- DNS names ------------------------------------------------------------------------------------


class DnsNameError(ExchangePkiError, ValueError):
    """A text that is not a DNS name, or an internationalised name without an IDNA 2008 A-label form."""


_MAX_LABEL_OCTETS = 63  # RFC 1035 section 2.3.4
_MAX_NAME_OCTETS = 253  # 255 octets on the wire, without the length bytes of the first label and the root
_ASCII_LABEL = re.compile(r"^[a-z0-9_-]+$")  # letters, digits, hyphen; underscore for service names


def dns_name_to_a_label(name: str) -> str:
    """A DNS name in the form it is compared in: lower case, A-labels (IDNA 2008), no trailing dot.

    ``bücher.example`` becomes ``xn--bcher-kva.example`` (UTS #46 mapping first, so ``BÜCHER.example`` and
    full-width dots work as browsers do); ASCII names are only lower-cased. A wildcard is kept only as the
    whole left-most label (``*.bücher.example``). Raises :class:`DnsNameError` naming the name and the
    problem (empty labels, spaces, control characters, other punctuation, labels over 63 octets, names
    over 253, labels IDNA 2008 does not allow), and :class:`ExchangePkiError` when a non-ASCII name needs
    the ``idna`` library and it is missing. Every DNS name comparison of the collection goes through here.
    """
    if not isinstance(name, str):
        raise DnsNameError(f"{name!r} is not a DNS name: expected a string, got {type(name).__name__}")
    if name.isascii():
        return _checked_a_label(name, name.lower())
    return _idna_a_label(name)


@functools.lru_cache(maxsize=4096)
def _idna_a_label(name: str) -> str:
    if not HAS_IDNA:
        raise ExchangePkiError(
            f"comparing the internationalised DNS name {name!r} requires the Python library {IDNA_REQUIREMENT} "
            "(IDNA 2008); install it where Ansible runs"
        )
    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
        labels = _labels(name, mapped)
        converted = [label if label.isascii() else idna.alabel(label).decode("ascii") for label in labels]
    except idna.IDNAError as error:
        raise DnsNameError(f"{name!r} is not a valid internationalised DNS name (IDNA 2008): {error}") from None
    return _checked_a_label(name, ".".join(converted))


def _labels(name: str, text: str) -> list[str]:
    """The labels of a name without its trailing dot; an empty label is a :class:`DnsNameError`."""
    labels = (text[:-1] if text.endswith(".") else text).split(".")
    if "" in labels:
        raise DnsNameError(f"{name!r} is not a DNS name: it has an empty label")
    return labels


def _checked_a_label(name: str, text: str) -> str:
    labels = _labels(name, text)
    for position, label in enumerate(labels):
        if label == "*" and position == 0 and len(labels) > 1:
            continue  # a wildcard: matched by dns_name_matches
        if not _ASCII_LABEL.match(label):
            bad = next(char for char in label if not _ASCII_LABEL.match(char))
            raise DnsNameError(
                f"{name!r} is not a DNS name: character {bad!r} (U+{ord(bad):04X}) in label {label!r}"
            )
        if len(label) > _MAX_LABEL_OCTETS:
            raise DnsNameError(
                f"{name!r} is not a DNS name: label {label[:20]!r}... is {len(label)} octets long "
                f"(at most {_MAX_LABEL_OCTETS})"
            )
    result = ".".join(labels)
    if len(result) > _MAX_NAME_OCTETS:
        raise DnsNameError(f"{name[:40]!r}... is not a DNS name: {len(result)} octets (at most {_MAX_NAME_OCTETS})")
    return result


def dns_name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 section 6.4.3 matching of a certificate's DNS name against a host name.

    Both are compared in A-label form (:func:`dns_name_to_a_label`), so ``bücher.example`` matches a SAN
    ``xn--bcher-kva.example``. A wildcard is honoured only as the whole left-most label (``*.contoso.com``):
    it matches exactly one label, never the bare domain (``contoso.com``) nor several labels, and
    partial-label wildcards (``w*.contoso.com``) and wildcards over a single label (``*.com``) match
    nothing. A name that cannot be converted matches nothing (never an exception).
    """
    try:
        pattern, host = dns_name_to_a_label(pattern), dns_name_to_a_label(host)
    except ExchangePkiError:
        return False
    if pattern == host:
        return True
    wildcard, dot, suffix = pattern.partition(".")
    if wildcard != "*" or not dot or "*" in suffix or "." not in suffix:
        return False
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == suffix


# --- parsing --------------------------------------------------------------------------------------


def sha1_thumbprint(der: bytes) -> str:
    """The Windows thumbprint of any bytes (uppercase hex SHA-1): names a certificate that cannot be parsed."""
    return hashlib.sha1(bytes(der)).hexdigest().upper()  # Windows' thumbprint; not a security use


# What cryptography raises on certificates it cannot read: ValueError for malformed DER, UnsupportedAlgorithm
# for unknown key types, and classes of their own (not ValueError) for an invalid version, a duplicate
# extension and the SAN name forms it does not model. OverflowError and TypeError for good measure.
_READ_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, OverflowError)
if HAS_CRYPTOGRAPHY:  # the import sanity test loads this file without cryptography
    _READ_ERRORS += (
        UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
    )


_MAX_REASON = 300  # cryptography's ASN.1 errors carry a parse path; enough to locate the problem


def _reason(error: Exception) -> str:
    """A short reason for a read error: cryptography's message, named for the classes whose message is terse."""
    reason = _named_reason(error)
    return reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON - 3] + "..."


def _named_reason(error: Exception) -> str:
    if HAS_CRYPTOGRAPHY and isinstance(error, x509.DuplicateExtension):
        return f"duplicate extension {error.oid.dotted_string}"
    if HAS_CRYPTOGRAPHY and isinstance(error, x509.InvalidVersion):
        return f"unsupported X.509 version field {error.parsed_version} (only 0-2, v1-v3, exist)"
    if HAS_CRYPTOGRAPHY and isinstance(error, x509.UnsupportedGeneralNameType):
        return f"unsupported subject/issuer alternative name form ({error})"
    return str(error) or type(error).__name__


def parse_certificate(der: bytes) -> CertificateFacts:
    """Parse one DER certificate; raises nothing but :class:`CertificateParseError` (and, without the
    cryptography library, :class:`ExchangePkiError`).

    A certificate whose extensions, public key or signature cannot be read is still returned, with those
    facts None and ``problems`` naming each part and the reason. Only bytes that cannot be loaded as a
    certificate at all, or whose names, serial number or validity dates cannot be read, raise
    :class:`CertificateParseError`, whose message names the reason.
    """
    if not HAS_CRYPTOGRAPHY:
        raise ExchangePkiError(f"parsing certificates on the controller requires the Python library "
                               f"{CRYPTOGRAPHY_REQUIREMENT}; install it where Ansible runs")
    if not isinstance(der, bytes):
        raise CertificateParseError(f"certificate data must be bytes, got {type(der).__name__}")
    if not der:
        raise CertificateParseError("certificate data is empty")
    # cryptography warns (CryptographyDeprecationWarning) on certificates it will refuse one day, e.g. a
    # negative serial number; a warning is not a reason to stop reading, nor to write to the controller's stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _parse(der)


def _parse(der: bytes) -> CertificateFacts:
    try:
        certificate = x509.load_der_x509_certificate(der)
    except _READ_ERRORS as error:
        raise CertificateParseError(
            f"not a valid DER X.509 certificate ({len(der)} bytes): {_reason(error)}"
        ) from None
    problems: list[str] = []
    try:
        subject, issuer = certificate.subject, certificate.issuer
        known = {
            "subject": subject.rfc4514_string(),
            "issuer": issuer.rfc4514_string(),
            "subject_name": name_of(subject),
            "issuer_name": name_of(issuer),
            "serial_number": serial_hex(certificate.serial_number),
            "not_before": certificate.not_valid_before_utc,
            "not_after": certificate.not_valid_after_utc,
        }
    except _READ_ERRORS as error:
        raise CertificateParseError(
            f"X.509 certificate ({len(der)} bytes) with unreadable names, serial number or dates: {_reason(error)}"
        ) from None
    try:
        extensions: x509.Extensions | None = certificate.extensions
    except _READ_ERRORS as error:
        extensions = None
        problems.append(f"extensions: {_reason(error)}")
    try:
        key: Any = certificate.public_key()
        spki_sha256: str | None = hashlib.sha256(
            key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ).hexdigest()
    except _READ_ERRORS as error:
        key = spki_sha256 = None
        problems.append(f"public key: {_reason(error)} ({_key_algorithm(certificate)})")
    signature_hash = _signature_hash(certificate, problems)
    return CertificateFacts(
        thumbprint=sha1_thumbprint(der),
        **known,
        dns_names=None if extensions is None else _dns_names(extensions),
        key_type=None if key is None else _key_type(key),
        key_size=None if key is None else _key_size(key),
        signature_hash=signature_hash,
        ekus=None if extensions is None else _ekus(extensions),
        is_self_signed=_is_self_signed(certificate, key),
        public_key_sha256=spki_sha256,
        der=der,
        problems=tuple(problems),
    )


def serial_hex(number: int) -> str:
    """A serial number as Windows' SerialNumber shows it: uppercase hex of the DER INTEGER's content octets.

    That is the minimal two's-complement big-endian encoding, so a positive serial whose top bit is set
    gets a leading ``00`` (0x80FF is ``0080FF``) and a negative one, which RFC 5280 forbids but real
    certificates have, starts with 8-F (-1 is ``FF``, -0x1A2B is ``E5D5``).
    """
    length = ((number if number >= 0 else ~number).bit_length() + 8) // 8
    return number.to_bytes(length, "big", signed=True).hex().upper()


def _key_algorithm(certificate: x509.Certificate) -> str:
    """The public key's algorithm OID, or a placeholder when even that cannot be read."""
    try:
        return f"algorithm {certificate.public_key_algorithm_oid.dotted_string}"
    except (*_READ_ERRORS, AttributeError):  # AttributeError: cryptography < 43
        return "algorithm unknown"


def _extension(extensions: x509.Extensions, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _dns_names(extensions: x509.Extensions) -> tuple[str, ...]:
    names = _extension(extensions, x509.SubjectAlternativeName)
    if names is None:
        return ()
    return tuple(names.get_values_for_type(x509.DNSName))  # type: ignore[attr-defined]


def _ekus(extensions: x509.Extensions) -> tuple[str, ...]:
    usages = _extension(extensions, x509.ExtendedKeyUsage)
    if usages is None:
        return ()
    return tuple(oid.dotted_string for oid in usages)  # type: ignore[attr-defined]


def _key_type(key: Any) -> str:
    kinds: Iterable[tuple[type, str]] = (
        (rsa.RSAPublicKey, "rsa"),
        (ec.EllipticCurvePublicKey, "ec"),
        (dsa.DSAPublicKey, "dsa"),
        (ed25519.Ed25519PublicKey, "ed25519"),
        (ed448.Ed448PublicKey, "ed448"),
    )
    return next((name for kind, name in kinds if isinstance(key, kind)), "unknown")


def _key_size(key: Any) -> int | None:
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(key, ed448.Ed448PublicKey):
        return 456
    return None


# OIDs of RSA signatures with hashes cryptography cannot name (RFC 3279 section 2.2.1), and the bare MD5
# hash OID (RFC 1321) that some very old certificates give as their signature algorithm.
_LEGACY_SIGNATURE_HASHES = {
    "1.2.840.113549.1.1.2": "md2",
    "1.2.840.113549.1.1.3": "md4",
    "1.2.840.113549.2.5": "md5",
}


def _signature_hash(certificate: x509.Certificate, problems: list[str]) -> str | None:
    """The signature's hash name; None without a separate hash (Ed25519) or when unknown (then a problem)."""
    oid = certificate.signature_algorithm_oid.dotted_string
    try:
        algorithm = certificate.signature_hash_algorithm
    except _READ_ERRORS as error:  # e.g. MD2, which cryptography no longer knows, or GOST
        if oid in _LEGACY_SIGNATURE_HASHES:
            return _LEGACY_SIGNATURE_HASHES[oid]
        problems.append(f"signature algorithm: {_reason(error)} (algorithm {oid})")
        return None
    return algorithm.name if algorithm is not None else None


def _is_self_signed(certificate: x509.Certificate, key: Any) -> bool | None:
    """Subject equals issuer and the signature verifies with the certificate's own key.

    None when the subject equals the issuer but the signature cannot be checked (unreadable key,
    unsupported algorithm): a self-issued certificate is not known to be self-signed.
    """
    if certificate.subject != certificate.issuer:
        return False
    if key is None:
        return None
    try:
        certificate.verify_directly_issued_by(certificate)
    except InvalidSignature:
        return False
    except _READ_ERRORS:
        return None
    return True


# --- a certificate where it was found -------------------------------------------------------------

MY_STORE = "My"
REQUEST_STORE = "REQUEST"
PENDING_REQUEST_STATUS = "PendingRequest"


@dataclasses.dataclass(frozen=True)
class LocatedCertificate:
    """One certificate of a server: its parsed facts, its store and what Exchange and the store said.

    ``exchange`` is None when Get-ExchangeCertificate did not list it (cluster stores) or failed;
    ``store_entry`` is None when the store read did not see it. Each property prefers the store's
    answer (read through .NET on the host) and falls back to Exchange's.
    """

    facts: CertificateFacts
    store: str
    exchange: ExchangeCertificateRecord | None = None
    store_entry: StoreCertificate | None = None

    @property
    def thumbprint(self) -> str:
        return self.facts.thumbprint

    @property
    def is_pending_request(self) -> bool:
        """A request placeholder (New-ExchangeCertificate -GenerateRequest), not a usable certificate."""
        return self.store.casefold() == REQUEST_STORE.casefold() or self.status == PENDING_REQUEST_STATUS

    @property
    def in_my_store(self) -> bool:
        return self.store.casefold() == MY_STORE.casefold()

    @property
    def status(self) -> str | None:
        return self.exchange.status if self.exchange else None

    @property
    def services(self) -> tuple[str, ...]:
        return self.exchange.services if self.exchange else ()

    @property
    def friendly_name(self) -> str | None:
        store_name = self.store_entry.friendly_name if self.store_entry else None
        return store_name or (self.exchange.friendly_name if self.exchange else None) or None

    @property
    def has_private_key(self) -> bool | None:
        return _first_known(
            self.store_entry.has_private_key if self.store_entry else None,
            self.exchange.has_private_key if self.exchange else None,
        )

    @property
    def private_key_exportable(self) -> bool | None:
        return _first_known(
            self.store_entry.key_exportable if self.store_entry else None,
            self.exchange.private_key_exportable if self.exchange else None,
        )

    @property
    def key_provider(self) -> str | None:
        return self.store_entry.key_provider if self.store_entry else None

    @property
    def network_service_can_read_key(self) -> bool | None:
        return self.store_entry.network_service_can_read_key if self.store_entry else None


def _first_known(*values: bool | None) -> bool | None:
    return next((value for value in values if value is not None), None)


# [MS-CSVP] GenerateClusterCertV2: Cluster_PKU2U certificates are named CLIUSR (cluster sets: CSUSR).
CLUSTER_COMMON_NAMES = frozenset({"cliusr", "csusr"})


def is_cluster_certificate(certificate: LocatedCertificate) -> bool:
    """A failover-cluster certificate: outside My/REQUEST, subject or issuer CN CLIUSR or CSUSR."""
    if certificate.in_my_store or certificate.is_pending_request:
        return False
    facts = certificate.facts
    return any(("CN", name) in rdn
               for dn in (facts.subject_name, facts.issuer_name) for rdn in dn for name in CLUSTER_COMMON_NAMES)
