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
import hashlib
import re
import unicodedata
from collections.abc import Iterable

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

# not_valid_before_utc / not_valid_after_utc appeared in cryptography 42.0.
CRYPTOGRAPHY_REQUIREMENT = "cryptography >= 42.0"
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
    """What the controller knows about one certificate from its DER bytes alone."""

    thumbprint: str
    subject: str
    issuer: str
    subject_name: DistinguishedName
    issuer_name: DistinguishedName
    serial_number: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    dns_names: tuple[str, ...]
    key_type: str
    key_size: int | None
    signature_hash: str | None
    ekus: tuple[str, ...]
    is_self_signed: bool
    public_key_sha256: str
    der: bytes = dataclasses.field(repr=False)

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
    def allows_server_auth(self) -> bool:
        """No EKU extension means any purpose; otherwise serverAuth or anyExtendedKeyUsage must be listed."""
        return not self.ekus or SERVER_AUTH_EKU in self.ekus or ANY_EKU in self.ekus

    def covers(self, host: str) -> bool:
        """Whether a DNS name of the certificate matches ``host`` (RFC 6125; the CN is not consulted)."""
        return any(dns_name_matches(pattern, host) for pattern in self.dns_names)

    @property
    def common_name(self) -> str | None:
        """The most specific CN of the subject, case-folded (names are compared case-insensitively)."""
        for rdn in reversed(self.subject_name):
            for attribute_type, value in rdn:
                if attribute_type == "CN":
                    return value
        return None


def _dns_name(text: str) -> str:
    return text.strip().rstrip(".").lower()


def dns_name_matches(pattern: str, host: str) -> bool:
    """RFC 6125 section 6.4.3 matching of a certificate's DNS name against a host name.

    A wildcard is honoured only as the whole left-most label (``*.contoso.com``): it matches exactly one
    label, never the bare domain (``contoso.com``) nor several labels, and partial-label wildcards
    (``w*.contoso.com``) and wildcards over a single label (``*.com``) match nothing but themselves.
    """
    pattern, host = _dns_name(pattern), _dns_name(host)
    if pattern == host:
        return True
    wildcard, dot, suffix = pattern.partition(".")
    if wildcard != "*" or not dot or "*" in suffix or "." not in suffix:
        return False
    label, dot, rest = host.partition(".")
    return bool(label) and bool(dot) and rest == suffix


def parse_certificate(der: bytes) -> CertificateFacts:
    """Parse one DER certificate. Raises :class:`CertificateParseError` naming the problem."""
    if not HAS_CRYPTOGRAPHY:
        raise ExchangePkiError(f"parsing certificates on the controller requires the Python library "
                               f"{CRYPTOGRAPHY_REQUIREMENT}; install it where Ansible runs")
    if not der:
        raise CertificateParseError("certificate data is empty")
    try:
        certificate = x509.load_der_x509_certificate(der)
        subject, issuer = certificate.subject, certificate.issuer
        return CertificateFacts(
            thumbprint=hashlib.sha1(der).hexdigest().upper(),  # Windows' thumbprint; not a security use
            subject=subject.rfc4514_string(),
            issuer=issuer.rfc4514_string(),
            subject_name=name_of(subject),
            issuer_name=name_of(issuer),
            serial_number=_serial_hex(certificate.serial_number),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            dns_names=_dns_names(certificate),
            key_type=_key_type(certificate),
            key_size=_key_size(certificate),
            signature_hash=_signature_hash(certificate),
            ekus=_ekus(certificate),
            is_self_signed=_is_self_signed(certificate),
            public_key_sha256=hashlib.sha256(
                certificate.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).hexdigest(),
            der=der,
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise CertificateParseError(f"not a valid DER X.509 certificate ({len(der)} bytes): {error}") from None


def _serial_hex(number: int) -> str:
    """Uppercase hex of the DER INTEGER bytes, as Windows' SerialNumber shows it."""
    return number.to_bytes((number.bit_length() + 8) // 8, "big").hex().upper()


def _extension(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _dns_names(certificate: x509.Certificate) -> tuple[str, ...]:
    names = _extension(certificate, x509.SubjectAlternativeName)
    if names is None:
        return ()
    return tuple(names.get_values_for_type(x509.DNSName))  # type: ignore[attr-defined]


def _ekus(certificate: x509.Certificate) -> tuple[str, ...]:
    usages = _extension(certificate, x509.ExtendedKeyUsage)
    if usages is None:
        return ()
    return tuple(oid.dotted_string for oid in usages)  # type: ignore[attr-defined]


def _key_type(certificate: x509.Certificate) -> str:
    key = certificate.public_key()
    kinds: Iterable[tuple[type, str]] = (
        (rsa.RSAPublicKey, "rsa"),
        (ec.EllipticCurvePublicKey, "ec"),
        (dsa.DSAPublicKey, "dsa"),
        (ed25519.Ed25519PublicKey, "ed25519"),
    )
    return next((name for kind, name in kinds if isinstance(key, kind)), "unknown")


def _key_size(certificate: x509.Certificate) -> int | None:
    key = certificate.public_key()
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(key, ed448.Ed448PublicKey):
        return 456
    return None


# OIDs of RSA signatures with hashes cryptography cannot name (RFC 3279 section 2.2.1).
_LEGACY_SIGNATURE_HASHES = {"1.2.840.113549.1.1.2": "md2", "1.2.840.113549.1.1.3": "md4"}


def _signature_hash(certificate: x509.Certificate) -> str | None:
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:  # e.g. MD2, which cryptography no longer knows
        return _LEGACY_SIGNATURE_HASHES.get(certificate.signature_algorithm_oid.dotted_string)
    return algorithm.name if algorithm is not None else None


def _is_self_signed(certificate: x509.Certificate) -> bool:
    """Subject equals issuer and the signature verifies with the certificate's own key."""
    if certificate.subject != certificate.issuer:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
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
