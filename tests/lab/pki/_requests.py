# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PKCS#10 certificate requests and the stand-in certificate Windows keeps for a pending request."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ._errors import PkiError
from ._keys import PrivateKey
from ._x509 import SignatureHash, parse_name, sign, sign_certificate

_PLACEHOLDER_LIFETIME = timedelta(days=365)
_DER_SEQUENCE = b"\x30"


def build_csr(
    key: PrivateKey,
    *,
    subject: str,
    dns_names: Sequence[str] = (),
    signature_hash: SignatureHash = "sha256",
) -> bytes:
    """A DER PKCS#10 request; ``dns_names`` become a SAN extension request."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(parse_name(subject))
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]), critical=False
        )
    return sign(builder, key, signature_hash).public_bytes(serialization.Encoding.DER)


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a request given as PEM ("CERTIFICATE REQUEST" or "NEW CERTIFICATE REQUEST"), bare base64 or DER.

    Does not check the signature (see :func:`csr_signature_valid`). Raises :class:`PkiError`
    "malformed certificate request ..." naming the encoding it tried.
    """
    if data.startswith(_DER_SEQUENCE):
        return _load(x509.load_der_x509_csr, data, "DER")
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        return _load(x509.load_pem_x509_csr, text, "PEM")
    try:
        der = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PkiError("malformed certificate request: neither PEM, base64 nor DER PKCS#10") from None
    return _load(x509.load_der_x509_csr, der, "base64 DER")


def csr_signature_valid(csr: x509.CertificateSigningRequest) -> bool:
    """Whether the request is signed by its own key, SHA-1/MD5 RSA signatures included.

    ``csr.is_signature_valid`` refuses weak hashes, yet AD CS accepts such requests (older tools make them).
    """
    if csr.is_signature_valid:
        return True
    public_key = csr.public_key()
    try:
        hash_algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return False
    if not isinstance(public_key, rsa.RSAPublicKey) or not isinstance(hash_algorithm, (hashes.SHA1, hashes.MD5)):
        return False
    try:
        public_key.verify(csr.signature, csr.tbs_certrequest_bytes, padding.PKCS1v15(), hash_algorithm)
    except InvalidSignature:
        return False
    return True


def placeholder_for_request(key: PrivateKey, subject: str, *, now: datetime) -> x509.Certificate:
    """The self-signed stand-in Windows keeps in the REQUEST store while a request is pending.

    It carries the request's public key, which is how the issued certificate is later matched to its
    key (exchange-facts.md: pending requests show as Status PendingRequest and complete on their server).
    """
    name = parse_name(subject)
    return sign_certificate(
        subject=name,
        public_key=key.public_key(),
        issuer=name,
        issuer_key=key,
        not_before=now,
        not_after=now + _PLACEHOLDER_LIFETIME,
    )


def _load(
    loader: Callable[[bytes], x509.CertificateSigningRequest], data: bytes, encoding: str
) -> x509.CertificateSigningRequest:
    try:
        return loader(data)
    except ValueError as error:
        raise PkiError(f"malformed certificate request ({encoding} PKCS#10): {error}") from None
