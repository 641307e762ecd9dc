# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates from declarative specs (what scenario files describe)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ._authority import AuthorityRegistry
from ._keys import KeyType, PrivateKey, generate_key
from ._x509 import SignatureHash, parse_name, sign_certificate, thumbprint


@dataclass(frozen=True)
class CertificateSpec:
    """What a scenario asks for. Times are relative to the ``now`` given to :func:`make_certificate`.

    ``issuer``: "lab-ca", "self" or the name of another CA in the registry. ``ekus``: names from
    ``EKU_NAMES`` or dotted OIDs; empty = no EKU extension. ``dns_names`` empty = no SAN extension.
    ``signature_hash`` applies to the signer's key: sha1/md5 need an RSA signer.
    """

    subject: str
    dns_names: tuple[str, ...] = ()
    key_type: KeyType = "rsa"
    key_size: int = 2048
    signature_hash: SignatureHash = "sha256"
    not_before: timedelta = timedelta(days=-1)
    not_after: timedelta = timedelta(days=365)
    issuer: str = "lab-ca"
    ekus: tuple[str, ...] = ("server_auth",)
    is_ca: bool = False
    serial_number: int | None = None


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate with its private key and its issuers up to the root (empty when self-signed)."""

    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def thumbprint(self) -> str:
        """Uppercase SHA-1 hex of the DER, like Windows."""
        return thumbprint(self.certificate)

    def der(self) -> bytes:
        """The certificate's DER bytes (Exchange's RawData)."""
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def pem_chain(self) -> bytes:
        """The certificate then its chain, PEM."""
        return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in (self.certificate, *self.chain))

    def key_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM of the key: for the lab's own TLS listeners only, never for output."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def make_certificate(
    spec: CertificateSpec,
    *,
    now: datetime,
    authorities: AuthorityRegistry,
    key: PrivateKey | None = None,
) -> IssuedCertificate:
    """Generate the certificate ``spec`` describes.

    ``key``: use this key (e.g. from a :class:`KeyPool`) instead of a fresh one of ``spec``'s type
    and size. Raises ``ValueError`` for an impossible spec, :class:`UnknownAuthority` for an unknown issuer.
    """
    key = key if key is not None else generate_key(spec.key_type, spec.key_size)
    subject = parse_name(spec.subject)
    issuer_name, issuer_key = subject, key
    chain: tuple[x509.Certificate, ...] = ()
    if spec.issuer != "self":
        authority = authorities.get(spec.issuer)
        issuer_name, issuer_key, chain = authority.certificate.subject, authority.private_key, authority.path
    certificate = sign_certificate(
        subject=subject,
        public_key=key.public_key(),
        issuer=issuer_name,
        issuer_key=issuer_key,
        not_before=now + spec.not_before,
        not_after=now + spec.not_after,
        dns_names=spec.dns_names,
        ekus=spec.ekus,
        is_ca=spec.is_ca,
        serial_number=spec.serial_number,
        signature_hash=spec.signature_hash,
    )
    return IssuedCertificate(certificate, key, chain)
