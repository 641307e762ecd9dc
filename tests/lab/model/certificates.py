# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates as a Windows host holds them, and the properties Exchange and .NET report about them.

:class:`Material` is one certificate with (optionally) its key and chain, and caches everything derived
from the DER bytes (thumbprint, RawData, Windows-style names...). :class:`StoredCertificate` is one copy
of it in one LocalMachine store of one server, with the per-install facts (key provider, exportability,
friendly name, Exchange services). The same Material on two servers is the same certificate and key,
exactly as after a PFX export and import (exchange-facts.md, "Rolling changes").
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier, SignatureAlgorithmOID

from .. import pki

MY = "My"
REQUEST = "REQUEST"
ROOT = "Root"
INTERMEDIATE = "CA"
#: Where the lab keeps the cluster's CLIUSR certificates. [MS-CSVP] names the "PKU2U local root store";
#: its LocalMachine store name is not publicly documented (an assumption, see README).
PKU2U = "PKU2U"

# Windows' short attribute names in X500DistinguishedName strings.
_WINDOWS_ATTRIBUTES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "S",
    NameOID.COUNTRY_NAME: "C",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
}
# How certmgr / EnhancedKeyUsageList name the common purposes.
_EKU_FRIENDLY = {
    ExtendedKeyUsageOID.SERVER_AUTH: "Server Authentication",
    ExtendedKeyUsageOID.CLIENT_AUTH: "Client Authentication",
    ExtendedKeyUsageOID.CODE_SIGNING: "Code Signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "Secure Email",
    ExtendedKeyUsageOID.TIME_STAMPING: "Time Stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP Signing",
    ExtendedKeyUsageOID.SMARTCARD_LOGON: "Smart Card Logon",
    ExtendedKeyUsageOID.KERBEROS_PKINIT_KDC: "KDC Authentication",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "Any Purpose",
}
# Oid.FriendlyName of the signature algorithms (what SignatureAlgorithm.FriendlyName shows).
_SIGNATURE_FRIENDLY = {
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1RSA",
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5RSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "sha256ECDSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "sha384ECDSA",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "sha512ECDSA",
}
_HOST_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
KEY_PROVIDER_NAMES = {
    "csp": "Microsoft RSA SChannel Cryptographic Provider",
    "cng": "Microsoft Software Key Storage Provider",
}


def windows_name(name: x509.Name) -> str:
    """A name the way .NET's ``X509Certificate2.Subject`` shows it: most specific RDN first, ", " separated."""
    parts = []
    for rdn in reversed(list(name.rdns)):
        for attribute in rdn:
            label = _WINDOWS_ATTRIBUTES.get(attribute.oid, f"OID.{attribute.oid.dotted_string}")
            value = str(attribute.value)
            if any(char in value for char in ',+="\n<>#;'):
                value = '"' + value.replace('"', '""') + '"'
            parts.append(f"{label}={value}")
    return ", ".join(parts)


def is_host_name(text: str) -> bool:
    return _HOST_NAME.match(text) is not None


def common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


class Material:
    """One certificate (+ key + chain) and its cached derived facts; immutable once built."""

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKeyTypes | None = None,
        chain: tuple[x509.Certificate, ...] = (),
    ) -> None:
        self.certificate = certificate
        self.private_key = private_key
        self.chain = chain

    @classmethod
    def from_issued(cls, issued: pki.IssuedCertificate) -> Material:
        return cls(issued.certificate, issued.private_key, tuple(issued.chain))

    def with_key(self, private_key: PrivateKeyTypes) -> Material:
        return Material(self.certificate, private_key, self.chain)

    @functools.cached_property
    def thumbprint(self) -> str:
        return pki.thumbprint(self.certificate)

    @functools.cached_property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @functools.cached_property
    def raw_data(self) -> str:
        return base64.b64encode(self.der).decode("ascii")

    @functools.cached_property
    def subject(self) -> str:
        return windows_name(self.certificate.subject)

    @functools.cached_property
    def issuer(self) -> str:
        return windows_name(self.certificate.issuer)

    @functools.cached_property
    def is_self_signed(self) -> bool:
        return self.certificate.issuer == self.certificate.subject

    @functools.cached_property
    def is_ca(self) -> bool:
        try:
            return bool(self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            return False

    @functools.cached_property
    def dns_names(self) -> list[str]:
        try:
            names = self.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return []
        return list(names.get_values_for_type(x509.DNSName))

    @functools.cached_property
    def certificate_domains(self) -> list[str]:
        """Exchange's CertificateDomains: the SAN DNS names, else the subject's CN when it is a host name
        (the Auth certificate, CN "Microsoft Exchange Server Auth Certificate", has none)."""
        if self.dns_names:
            return self.dns_names
        cn = common_name(self.certificate.subject)
        return [cn] if cn and is_host_name(cn) else []

    @functools.cached_property
    def enhanced_key_usage(self) -> list[str]:
        try:
            usages = self.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            return []
        return [_eku_label(oid) for oid in usages]

    @functools.cached_property
    def signature_algorithm(self) -> str:
        oid = self.certificate.signature_algorithm_oid
        return _SIGNATURE_FRIENDLY.get(oid, oid.dotted_string)

    @functools.cached_property
    def public_key_size(self) -> int:
        key = self.certificate.public_key()
        if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            return key.key_size
        return 0

    @functools.cached_property
    def serial_number(self) -> str:
        """Uppercase hex of the DER INTEGER bytes, like X509Certificate2.SerialNumber (negative ones too)."""
        return pki.serial_hex(self.certificate.serial_number)

    @functools.cached_property
    def public_key_der(self) -> bytes:
        return self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def not_before(self) -> datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def chain_pem(self) -> bytes:
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (self.certificate, *self.chain))

    def key_pem(self) -> bytes:
        """For the lab's own TLS listeners only (served_certificate); never part of a result or dump."""
        assert self.private_key is not None
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def time_valid(self, now: datetime) -> bool:
        return self.not_before <= now <= self.not_after

    def matches_name(self, domain: str) -> bool:
        """Whether a certificate domain covers ``domain`` (one-label wildcard)."""
        domain = domain.lower()
        for name in self.certificate_domains:
            name = name.lower()
            if name == domain or (name.startswith("*.") and domain.partition(".")[2] == name[2:]):
                return True
        return False


def _eku_label(oid: ObjectIdentifier) -> str:
    friendly = _EKU_FRIENDLY.get(oid)
    return f"{friendly} ({oid.dotted_string})" if friendly else oid.dotted_string


@dataclass
class StoredCertificate:
    """One certificate in one store of one server, with the install-time facts Windows keeps."""

    material: Material
    store: str = MY
    has_private_key: bool = True
    key_info: pki.KeyInfo = field(default_factory=pki.KeyInfo)
    friendly_name: str = ""
    #: Exchange service flags other than IIS (IIS is derived from the IIS bindings, see Server.services_of).
    services: set[str] = field(default_factory=set)
    #: A Status Windows chain building would report that the lab cannot compute (Revoked, ...).
    status_override: str | None = None
    #: For a pending request (REQUEST store): the names it asks for (CertificateDomains).
    requested_domains: list[str] = field(default_factory=list)

    @property
    def thumbprint(self) -> str:
        return self.material.thumbprint

    @property
    def private_key(self) -> PrivateKeyTypes | None:
        return self.material.private_key if self.has_private_key else None
