# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Low-level X.509 building blocks: names, EKUs, signing (including SHA-1/MD5) and thumbprints."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, overload

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from . import _der
from ._keys import PrivateKey, PublicKey

SignatureHash = Literal["sha256", "sha384", "sha512", "sha1", "md5"]

_STRONG_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
# Weak hashes cryptography refuses to sign with (toolchain-notes.md): hash class and the
# signature-algorithm OID (same DER length as sha256WithRSAEncryption, 1.2.840.113549.1.1.11).
_WEAK_HASHES: dict[str, tuple[type[hashes.HashAlgorithm], str]] = {
    "sha1": (hashes.SHA1, "1.2.840.113549.1.1.5"),
    "md5": (hashes.MD5, "1.2.840.113549.1.1.4"),
}
_DER_NULL = b"\x05\x00"
_BIT_STRING = 0x03

EKU_NAMES: dict[str, ObjectIdentifier] = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "smartcard_logon": ExtendedKeyUsageOID.SMARTCARD_LOGON,
    "kerberos_pkinit_kdc": ExtendedKeyUsageOID.KERBEROS_PKINIT_KDC,
    "ipsec_ike": ExtendedKeyUsageOID.IPSEC_IKE,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}


def thumbprint(certificate: x509.Certificate) -> str:
    """The Windows thumbprint: uppercase hex SHA-1 of the DER encoding."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()


def serial_bytes(number: int) -> bytes:
    """The content octets of a DER INTEGER: minimal two's complement, big-endian."""
    return number.to_bytes(((number if number >= 0 else ~number).bit_length() + 8) // 8, "big", signed=True)


def serial_hex(number: int) -> str:
    """A serial number as ``X509Certificate2.SerialNumber`` shows it: uppercase hex of the DER INTEGER bytes.

    0x80FF is "0080FF"; a negative serial (RFC 5280 forbids it, real CAs issued some) is its two's
    complement, -1 is "FF".
    """
    return serial_bytes(number).hex().upper()


def parse_name(rfc4514: str) -> x509.Name:
    """An RFC 4514 string ("CN=mail.contoso.lab,O=Contoso,C=US") as an X.509 name."""
    try:
        return x509.Name.from_rfc4514_string(rfc4514)
    except ValueError as error:
        raise ValueError(f"invalid subject {rfc4514!r}: {error}") from None


def general_name(name: str) -> x509.GeneralName:
    """A SAN entry: an IP address literal becomes an iPAddress name (as TLS clients match IPs), else a dNSName."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def eku_oids(names: Sequence[str]) -> list[ObjectIdentifier]:
    """EKU names (see :data:`EKU_NAMES`) or dotted OIDs as object identifiers."""
    oids = []
    for name in names:
        if name in EKU_NAMES:
            oids.append(EKU_NAMES[name])
        elif name[:1].isdigit():
            oids.append(ObjectIdentifier(name))
        else:
            raise ValueError(f"unknown extended key usage {name!r}; use a dotted OID or one of {sorted(EKU_NAMES)}")
    return oids


def sign_certificate(
    *,
    subject: x509.Name,
    public_key: PublicKey,
    issuer: x509.Name,
    issuer_key: PrivateKey,
    not_before: datetime,
    not_after: datetime,
    dns_names: Sequence[str] = (),
    ekus: Sequence[str] = (),
    is_ca: bool = False,
    serial_number: int | None = None,
    signature_hash: SignatureHash = "sha256",
) -> x509.Certificate:
    """Build and sign a certificate; self-signed when ``issuer_key`` belongs to ``public_key``.

    ``serial_number`` may be zero or negative, as in some real certificates (CertificateBuilder refuses
    them, so the certificate is built with serial 1, then its serial replaced and the result signed again).
    """
    self_signed = issuer_key.public_key() == public_key
    serial = serial_number if serial_number is not None else x509.random_serial_number()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(serial if serial > 0 else 1)
        .not_valid_before(not_before.replace(microsecond=0))
        .not_valid_after(not_after.replace(microsecond=0))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_key_usage(public_key, is_ca), critical=True)
    )
    if not self_signed:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if is_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([general_name(name) for name in dns_names]), critical=False
        )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku_oids(ekus)), critical=False)
    certificate = sign(builder, issuer_key, signature_hash)
    if serial <= 0:
        certificate = _with_serial(certificate, serial, issuer_key, signature_hash)
    return certificate


def _with_serial(certificate: x509.Certificate, serial: int, key: PrivateKey, signature_hash: str) -> x509.Certificate:
    """The certificate with another serial number (any sign), signed again with the same algorithm."""
    outer = _der.read_single(certificate.public_bytes(serialization.Encoding.DER), "certificate")
    to_be_signed, algorithm, _signature = outer.children()
    fields = to_be_signed.children()
    number = fields[1] if fields[0].tag == _der.CONTEXT_0 else fields[0]
    body = to_be_signed.content
    body = body[: number.start] + _der.encode_tlv(_der.INTEGER, serial_bytes(serial)) + body[number.end :]
    tbs = _der.encode_tlv(_der.SEQUENCE, body)
    hash_class = _STRONG_HASHES[signature_hash] if signature_hash in _STRONG_HASHES else _WEAK_HASHES[signature_hash][0]
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hash_class())
    else:
        signature = key.sign(tbs, ec.ECDSA(hash_class()))
    algorithm_der = _der.encode_tlv(algorithm.tag, algorithm.content)
    der = _der.encode_tlv(_der.SEQUENCE, tbs + algorithm_der + _der.encode_tlv(_BIT_STRING, b"\x00" + signature))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography warns that RFC 5280 forbids serials <= 0
        return x509.load_der_x509_certificate(der)


@overload
def sign(builder: x509.CertificateBuilder, key: PrivateKey, signature_hash: SignatureHash) -> x509.Certificate: ...


@overload
def sign(
    builder: x509.CertificateSigningRequestBuilder, key: PrivateKey, signature_hash: SignatureHash
) -> x509.CertificateSigningRequest: ...


def sign(
    builder: x509.CertificateBuilder | x509.CertificateSigningRequestBuilder,
    key: PrivateKey,
    signature_hash: SignatureHash,
) -> x509.Certificate | x509.CertificateSigningRequest:
    """Sign a certificate or CSR builder with any supported hash, weak ones included.

    For SHA-1/MD5 the object is signed with SHA-256, then its signature-algorithm identifiers are
    replaced and the to-be-signed bytes re-signed with PKCS#1 v1.5 and the weak hash
    (toolchain-notes.md; real older Exchange self-signed and Auth certificates are sha1WithRSA).
    """
    if signature_hash in _STRONG_HASHES:
        return builder.sign(key, _STRONG_HASHES[signature_hash]())
    if signature_hash not in _WEAK_HASHES:
        raise ValueError(f"unsupported signature hash {signature_hash!r}")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{signature_hash} signatures are only supported with RSA signing keys")
    signed = builder.sign(key, hashes.SHA256())
    is_certificate = isinstance(signed, x509.Certificate)
    der = _resign_weak(signed.public_bytes(serialization.Encoding.DER), key, signature_hash, is_certificate)
    return x509.load_der_x509_certificate(der) if is_certificate else x509.load_der_x509_csr(der)


def _resign_weak(der: bytes, key: rsa.RSAPrivateKey, signature_hash: str, is_certificate: bool) -> bytes:
    """Swap the signature algorithm of a signed object to a weak hash and sign it again."""
    hash_class, oid = _WEAK_HASHES[signature_hash]
    algorithm = _der.encode_tlv(_der.SEQUENCE, _der.encode_oid(oid) + _DER_NULL)
    to_be_signed = _der.read_single(der, "signed object").children()[0]
    body = to_be_signed.content
    if is_certificate:  # TBSCertificate repeats the algorithm: [0] version, serialNumber, signature, ...
        fields = to_be_signed.children()
        inner = fields[2] if fields[0].tag == _der.CONTEXT_0 else fields[1]
        body = body[: inner.start] + algorithm + body[inner.end :]
    tbs = _der.encode_tlv(_der.SEQUENCE, body)
    signature = key.sign(tbs, padding.PKCS1v15(), hash_class())
    return _der.encode_tlv(_der.SEQUENCE, tbs + algorithm + _der.encode_tlv(_BIT_STRING, b"\x00" + signature))


def _key_usage(public_key: PublicKey, is_ca: bool) -> x509.KeyUsage:
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=is_rsa and not is_ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )
