# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PKCS#12 (PFX) export and import, with detection of the encryption scheme.

The scheme matters because Windows Server 2016 cannot decrypt AES (PBES2) PFX files and answers
"The specified network password is not correct" (exchange-facts.md, "Import-ExchangeCertificate").
``cryptography`` does not report how a PFX is encrypted, so :func:`pfx_encryption` walks the ASN.1:
PFX -> AuthenticatedSafe -> EncryptedData / pkcs8ShroudedKeyBag algorithm identifiers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.hazmat.primitives.serialization.pkcs12 import PKCS12PrivateKeyTypes

from . import _der
from ._errors import BadPfxPassword, PkiError
from ._keys import PrivateKey

PfxEncryption = Literal["legacy", "aes", "none"]

_DATA = "1.2.840.113549.1.7.1"
_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_PBES2 = "1.2.840.113549.1.5.13"
# PKCS#12 v1.1 appendix C: pbeWithSHAAnd128BitRC4 ... pbeWithSHAAnd40BitRC2-CBC (3DES is .3).
_LEGACY_PBE = frozenset(f"1.2.840.113549.1.12.1.{n}" for n in range(1, 7))
_KDF_ROUNDS = 2048
_SCHEMES = {
    "legacy": (pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1),
    "aes": (pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256),
}


@dataclass(frozen=True)
class PfxContents:
    """What a PFX holds. ``private_key`` is None for a certificate-only PFX."""

    certificate: x509.Certificate
    private_key: PrivateKey | None
    chain: tuple[x509.Certificate, ...]
    encryption: PfxEncryption
    friendly_name: str | None = None


def export_pfx(
    certificate: x509.Certificate,
    key: PKCS12PrivateKeyTypes,
    chain: Sequence[x509.Certificate],
    password: str,
    *,
    encryption: Literal["legacy", "aes"] = "aes",
    friendly_name: str | None = None,
) -> bytes:
    """A password-protected PFX.

    ``legacy``: PBES1 pbeWithSHAAnd3-KeyTripleDES-CBC with a SHA-1 MAC (what Server 2016 accepts);
    ``aes``: PBES2 AES-256-CBC with a SHA-256 MAC (OpenSSL 3's default).
    """
    if not password:
        raise ValueError("a PFX export needs a non-empty password")
    algorithm, mac_hash = _SCHEMES[encryption]
    protection = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(_KDF_ROUNDS)
        .key_cert_algorithm(algorithm)
        .hmac_hash(mac_hash())
        .build(password.encode())
    )
    name = friendly_name.encode() if friendly_name is not None else None
    return pkcs12.serialize_key_and_certificates(name, key, certificate, list(chain) or None, protection)


def import_pfx(data: bytes, password: str | None) -> PfxContents:
    """Open a PFX.

    Raises :class:`PkiError` naming the problem when ``data`` is not PKCS#12 (or holds no certificate, or a
    key that is neither RSA nor EC), and :class:`BadPfxPassword`
    (Windows' message) when it cannot be decrypted with ``password``. An empty password and no password
    are the same, as on Windows. A PFX without MAC and encryption opens with any password.
    """
    structure = _pfx_structure(data)
    encryption = _classify(structure.algorithms)
    loaded = _load(data, password, unprotected=encryption == "none" and not structure.has_mac)
    if loaded.cert is not None:
        certificate, chain = loaded.cert, loaded.additional_certs
    elif loaded.additional_certs:
        certificate, *chain = loaded.additional_certs
    else:
        raise PkiError("the PFX holds no certificate")
    if loaded.key is not None and not isinstance(loaded.key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise PkiError(f"the PFX holds an unsupported {type(loaded.key).__name__} key")
    name = certificate.friendly_name.decode(errors="replace") if certificate.friendly_name else None
    return PfxContents(
        certificate=certificate.certificate,
        private_key=loaded.key,
        chain=tuple(item.certificate for item in chain),
        encryption=encryption,
        friendly_name=name,
    )


def pfx_encryption(data: bytes) -> PfxEncryption:
    """How a PFX is encrypted: "aes" if anything uses PBES2, "legacy" for PKCS#12 PBE, else "none"."""
    return _classify(_pfx_structure(data).algorithms)


class _Structure(NamedTuple):
    has_mac: bool
    algorithms: frozenset[str]


def _classify(algorithms: frozenset[str]) -> PfxEncryption:
    unknown = algorithms - _LEGACY_PBE - {_PBES2}
    if unknown:
        raise PkiError(f"unsupported PKCS#12 encryption algorithm {min(unknown)}")
    if _PBES2 in algorithms:
        return "aes"
    return "legacy" if algorithms else "none"


def _load(data: bytes, password: str | None, *, unprotected: bool) -> pkcs12.PKCS12KeyAndCertificates:
    candidates: list[bytes | None] = [password.encode()] if password and not unprotected else [None, b""]
    for candidate in candidates:
        try:
            return pkcs12.load_pkcs12(data, candidate)
        except ValueError:
            continue
    raise BadPfxPassword()


def _pfx_structure(data: bytes) -> _Structure:
    """(has a MAC, encryption algorithm OIDs) of a PFX; :class:`PkiError` when it is not one."""
    if data.lstrip().startswith(b"-----BEGIN"):
        raise PkiError("not a PKCS#12 (PFX) file: PEM text")
    try:
        fields = _der.read_single(data, "PKCS#12 data").children()
        if fields[0].tag != _der.INTEGER or fields[0].content != b"\x03":
            raise PkiError("not a PKCS#12 (PFX) file: no version 3 header")
        content_type, content = _content_info(fields[1])
        if content_type != _DATA:
            raise PkiError(f"unsupported PKCS#12 integrity mode (content type {content_type})")
        safe = _der.read_single(content.octets(), "PKCS#12 AuthenticatedSafe")
        return _Structure(has_mac=len(fields) > 2, algorithms=frozenset(_algorithms(safe)))
    except (_der.DerError, IndexError) as error:
        detail = str(error) if isinstance(error, _der.DerError) else "missing ASN.1 fields"
        raise PkiError(f"not a PKCS#12 (PFX) file: {detail}") from None


def _algorithms(authenticated_safe: _der.Tlv) -> Iterator[str]:
    for info in authenticated_safe.children():
        content_type, content = _content_info(info)
        if content_type == _ENCRYPTED_DATA:
            encrypted_content_info = content.children()[1]
            yield encrypted_content_info.children()[1].children()[0].oid()
        elif content_type == _DATA:
            yield from _shrouded_key_algorithms(_der.read_single(content.octets(), "PKCS#12 SafeContents"))


def _shrouded_key_algorithms(safe_contents: _der.Tlv) -> Iterator[str]:
    for bag in safe_contents.children():
        bag_id, value = bag.children()[:2]
        if bag_id.oid() == _SHROUDED_KEY_BAG:
            encrypted_private_key_info = value.children()[0]
            yield encrypted_private_key_info.children()[0].children()[0].oid()


def _content_info(info: _der.Tlv) -> tuple[str, _der.Tlv]:
    content_type, explicit = info.children()[:2]
    return content_type.oid(), explicit.children()[0]
