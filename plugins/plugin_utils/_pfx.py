# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""PFX (PKCS#12) and PEM/DER/P7B certificate files: reading, checking and rebuilding on the controller.

certificate_import checks a file before it sends it to Import-ExchangeCertificate (it parses, the password is
right, the key matches the certificate, the chain is complete), and rebuilds an AES-encrypted PFX with legacy
3DES/SHA-1 encryption for Exchange 2016 hosts, whose Windows Server 2016 cannot read PBES2 ("The specified
network password is not correct", exchange-facts.md "Import-ExchangeCertificate"). certificate_export writes a
PFX with legacy or modern encryption.

Everything here treats its input as hostile: every function raises nothing but :class:`PfxError` (and
``pfx_encryption`` raises nothing at all), input is refused above :data:`MAX_INPUT_BYTES`, and no message ever
contains a password or key bytes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import re
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CRYPTOGRAPHY_REQUIREMENT,
    sha1_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
except ImportError:
    HAS_CRYPTOGRAPHY = False
    PrivateKey = Any  # the import sanity test loads this file without cryptography
else:
    HAS_CRYPTOGRAPHY = True
    PrivateKey = pkcs12.PKCS12PrivateKeyTypes

#: Largest PFX, PEM, DER or P7B input accepted (a certificate with its chain is a few kilobytes).
MAX_INPUT_BYTES = 1024 * 1024
#: Most certificates one file may hold (a long chain has five; a whole trust store is not an import).
MAX_CERTIFICATES = 100
#: Longest password accepted, in characters (PKCS#12 key derivation hashes the password on every iteration).
MAX_PASSWORD_CHARS = 1024
#: Most key derivation iterations a PFX may ask for (Windows uses 2000, OpenSSL 2048; this bounds the work).
MAX_ITERATIONS = 1_000_000
#: Key derivation iterations of the PFX files built here: 2000 is what Windows writes; modern uses more.
LEGACY_ITERATIONS = 2000
MODERN_ITERATIONS = 20_000

ENCRYPTIONS = ("legacy", "modern")
SOURCE_FORMATS = ("pfx", "pem", "p7b", "der")
Encryption = Literal["legacy", "modern"]


class PfxError(ExchangePkiError, ValueError):
    """A PFX or certificate file cannot be used; the message names the problem, never a password or key bytes."""


def _require_cryptography() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise PfxError(f"reading and writing PFX and certificate files on the controller requires the Python "
                       f"library {CRYPTOGRAPHY_REQUIREMENT}; install it where Ansible runs")


# What cryptography raises on data it cannot read (see _certificate._READ_ERRORS), plus InvalidSignature.
_READ_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, OverflowError, IndexError)
if HAS_CRYPTOGRAPHY:  # the import sanity test loads this file without cryptography
    _READ_ERRORS += (
        UnsupportedAlgorithm, x509.InvalidVersion, x509.DuplicateExtension, x509.UnsupportedGeneralNameType,
    )

_MAX_REASON = 200
_MAX_NAME = 200


def _reason(error: Exception) -> str:
    """cryptography's reason for a certificate it cannot read (certificates are public: no secret in it)."""
    text = str(error) or type(error).__name__
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON - 3] + "..."


# --- the bundle ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertificateBundle:
    """A certificate, its private key when the file held one, and the other certificates of the file.

    ``chain`` is ordered from the leaf's issuer up to the root as far as the file allows; members that are not
    on the leaf's chain follow, in file order (:meth:`chain_problems` names them).
    """

    certificate: x509.Certificate
    key: PrivateKey | None
    chain: tuple[x509.Certificate, ...]
    source_format: str
    #: The PFX friendly name of the leaf (``build_pfx`` keeps it unless told another one).
    friendly_name: str | None = None

    def __repr__(self) -> str:  # no key material, ever
        key = _describe_key(self.key) if self.key is not None else None
        chain = ", ".join(_display_name(member.subject) for member in self.chain)
        return (f"CertificateBundle(thumbprint={self.thumbprint}, subject={_display_name(self.certificate.subject)!r}, "
                f"key={key}, chain=[{chain}], source_format={self.source_format!r})")

    @property
    def thumbprint(self) -> str:
        """The leaf's Windows thumbprint: SHA-1 of its DER, upper-case hex."""
        return sha1_thumbprint(self.certificate.public_bytes(serialization.Encoding.DER))

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """The leaf, then the chain."""
        return (self.certificate, *self.chain)

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """Chain members that are not self-signed (for LocalMachine\\CA)."""
        return tuple(member for member in self.chain if not _self_signed(member))

    @property
    def root(self) -> x509.Certificate | None:
        """A self-signed chain member (for LocalMachine\\Root), or None."""
        return next((member for member in self.chain if _self_signed(member)), None)

    def chain_problems(self, now: datetime.datetime | None = None) -> tuple[str, ...]:
        """What is wrong with the chain, one sentence each; empty when the chain is complete and valid.

        A chain that ends at a certificate which is not self-signed is complete: roots are usually left out (the
        host trusts them already). A leaf whose issuer is missing is a problem: its intermediate is missing, or
        the file holds no chain at all. Signatures are verified (the issuer's key verifies the child's
        signature). With ``now`` (timezone-aware), members outside their validity period are problems too.
        """
        if now is not None and now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        problems: list[str] = []
        current = self.certificate
        on_path = 0
        for member in self.chain:
            if _self_signed(current) or not _names_chain(current, member):
                break
            problem = _signature_problem(current, member)
            if problem:
                problems.append(problem)
            current = member
            on_path += 1
        if on_path == 0 and not _self_signed(current):
            problems.append(f"the chain has no issuer for {_display_name(current.subject)} "
                            f"(issuer {_display_name(current.issuer)})")
        elif current.subject == current.issuer and not _self_signed(current):
            problems.append(f"{_display_name(current.subject)} names itself as its issuer, but its own key does not "
                            "verify its signature")
        problems.extend(
            f"{_display_name(member.subject)} is not part of the chain of {_display_name(self.certificate.subject)}"
            for member in self.chain[on_path:]
        )
        if now is not None:
            for index, member in enumerate(self.certificates):
                what = "the certificate" if index == 0 else "the chain member"
                problems.extend(_validity_problems(member, what, now))
        return tuple(problems)


def _validity_problems(certificate: x509.Certificate, what: str, now: datetime.datetime) -> list[str]:
    name = _display_name(certificate.subject)
    if now > certificate.not_valid_after_utc:
        return [f"{what} {name} expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if now < certificate.not_valid_before_utc:
        return [f"{what} {name} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"]
    return []


def _display_name(name: x509.Name) -> str:
    try:
        text = name.rfc4514_string()
    except _READ_ERRORS:
        text = ""
    text = text or "(empty name)"
    return text if len(text) <= _MAX_NAME else text[:_MAX_NAME - 3] + "..."


def _describe_key(key: Any) -> str:
    size = getattr(key, "key_size", None)
    kind = type(key).__name__.removeprefix("_").replace("PrivateKey", "")
    return f"<{kind} {size}-bit private key>" if size else f"<{kind} private key>"


def _names_chain(child: x509.Certificate, parent: x509.Certificate) -> bool:
    return child.issuer == parent.subject


def _verifies(child: x509.Certificate, parent: x509.Certificate) -> bool | None:
    """The parent's key verifies the child's signature: True, False, or None when it cannot be checked."""
    try:
        child.verify_directly_issued_by(parent)
    except InvalidSignature:
        return False
    except _READ_ERRORS:
        return None
    return True


def _self_signed(certificate: x509.Certificate) -> bool:
    return certificate.subject == certificate.issuer and _verifies(certificate, certificate) is True


def _signature_problem(child: x509.Certificate, parent: x509.Certificate) -> str | None:
    verified = _verifies(child, parent)
    if verified:
        return None
    how = "does not verify" if verified is False else "cannot check"
    return (f"the key of {_display_name(parent.subject)} {how} the signature of {_display_name(child.subject)} "
            "(a different certificate of the same name?)")


def _order_chain(leaf: x509.Certificate, others: Sequence[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    """The issuer path from the leaf (a candidate whose key verifies the signature first), then the rest."""
    remaining = list(others)
    path: list[x509.Certificate] = []
    current = leaf
    while remaining and not _self_signed(current):
        candidates = [index for index, member in enumerate(remaining) if _names_chain(current, member)]
        if not candidates:
            break
        chosen = next((index for index in candidates if _verifies(current, remaining[index])), candidates[0])
        current = remaining.pop(chosen)
        path.append(current)
    return (*path, *remaining)


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, *_READ_ERRORS):
        return False


def _choose_leaf(certificates: Sequence[x509.Certificate]) -> x509.Certificate:
    """Without a key: the certificate that issues no other one, preferring one not self-signed, then not a CA."""
    issuers = {
        index for index, candidate in enumerate(certificates)
        if any(other is not candidate and _names_chain(other, candidate) for other in certificates)
    }
    candidates = [member for index, member in enumerate(certificates) if index not in issuers] or list(certificates)
    candidates = [member for member in candidates if not _self_signed(member)] or candidates
    candidates = [member for member in candidates if not _is_ca(member)] or candidates
    return candidates[0]


def key_matches(certificate: x509.Certificate, key: PrivateKey | None) -> bool:
    """The private key belongs to the certificate (their public keys are the same)."""
    if not HAS_CRYPTOGRAPHY or key is None:
        return False
    try:
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return (certificate.public_key().public_bytes(serialization.Encoding.DER, spki)
                == key.public_key().public_bytes(serialization.Encoding.DER, spki))
    except (*_READ_ERRORS, AttributeError):
        return False


# --- input checks ----------------------------------------------------------------------------------


def _input_bytes(data: Any, what: str, *, text: bool = False) -> bytes:
    if text and isinstance(data, str):
        data = data.encode("utf-8", errors="replace")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise PfxError(f"the {what} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise PfxError(f"the {what} is empty")
    if len(data) > MAX_INPUT_BYTES:
        raise PfxError(f"the {what} is {len(data)} bytes; more than {MAX_INPUT_BYTES} bytes "
                       f"({MAX_INPUT_BYTES // 1024} KiB) are refused")
    return data


def _password_bytes(password: Any, *, required: bool = False) -> bytes | None:
    if password is None:
        if required:
            raise PfxError("a PFX is written with a password; none was given")
        return None
    if not isinstance(password, str):
        raise PfxError(f"the PFX password must be a string, got {type(password).__name__}")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PfxError(f"the PFX password is longer than {MAX_PASSWORD_CHARS} characters")
    if "\x00" in password:  # PKCS#12 passwords are NUL-terminated; cryptography aborts on one
        raise PfxError("the PFX password contains a NUL character, which PKCS#12 cannot carry")
    if required and not password:
        raise PfxError("a PFX is written with a password; the password is empty")
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        raise PfxError("the PFX password is not valid Unicode (it holds a lone surrogate)") from None


def _read_fields(certificate: x509.Certificate) -> tuple[Any, ...]:
    """Read what the bundle uses later, so that an unreadable certificate fails at load time."""
    return (certificate.subject.rfc4514_string(), certificate.issuer.rfc4514_string(),
            certificate.not_valid_before_utc, certificate.not_valid_after_utc, certificate.public_key())


def _checked_certificates(certificates: Iterable[x509.Certificate], what: str) -> list[x509.Certificate]:
    """Unique certificates whose names, dates and public key can be read (the bundle's later use needs them)."""
    unique: list[x509.Certificate] = []
    seen: set[bytes] = set()
    for certificate in certificates:
        try:
            der = certificate.public_bytes(serialization.Encoding.DER)
            if der in seen:
                continue
            _read_fields(certificate)
        except _READ_ERRORS as error:
            raise PfxError(f"a certificate in the {what} cannot be read: {_reason(error)}") from None
        seen.add(der)
        unique.append(certificate)
        if len(unique) > MAX_CERTIFICATES:
            raise PfxError(f"the {what} holds more than {MAX_CERTIFICATES} certificates")
    return unique


# --- PFX -------------------------------------------------------------------------------------------


def load_pfx(data: bytes, password: str | None) -> CertificateBundle:
    """Read a PFX: its certificate (the one the private key belongs to), the key and the other certificates.

    ``None`` and ``""`` both mean "no password" (PKCS#12 tells an absent and an empty password apart; both are
    tried, as Windows and OpenSSL do). Raises :class:`PfxError` for a wrong password, data that is not a PFX, a
    PFX without certificate or key, with more than one key, or whose key matches none of its certificates.
    """
    _require_cryptography()
    data = _input_bytes(data, "PFX")
    secret = _password_bytes(password)
    shape = _shape(data)
    if shape == "truncated":
        raise PfxError("the PFX is truncated or damaged: it is shorter than its own header says")
    if shape != "pfx":
        if data.lstrip().startswith(b"-----BEGIN"):
            raise PfxError("the data is not a PFX (PKCS#12) file: it is PEM text (import PEM certificates without a "
                           "password; a certificate with its private key must come as a PFX)")
        if shape == "p7b":
            raise PfxError("the data is not a PFX (PKCS#12) file: it is a PKCS#7 (P7B) certificate chain")
        raise PfxError("the data is not a PFX (PKCS#12) file")
    layout = _layout(data)
    if layout is not None:
        _check_layout(layout)
    loaded = _load_pkcs12(data, secret)
    certificates = [loaded.cert.certificate] if loaded.cert is not None else []
    certificates.extend(member.certificate for member in loaded.additional_certs)
    certificates = _checked_certificates(certificates, "PFX")
    if not certificates:
        raise PfxError("the PFX holds no certificate")
    key = loaded.key
    if key is None:
        raise PfxError("the PFX holds no private key (only certificates): export the certificate with its private "
                       "key, or import the certificates as a PEM or P7B chain")
    matching = [member for member in certificates if key_matches(member, key)]
    if not matching:
        raise PfxError(f"the private key in the PFX belongs to none of its {len(certificates)} certificate(s)")
    first = loaded.cert.certificate if loaded.cert is not None else None
    leaf = first if first is not None and any(first is member for member in matching) else matching[0]
    others = [member for member in certificates if member is not leaf]
    return CertificateBundle(
        certificate=leaf, key=key, chain=_order_chain(leaf, others), source_format="pfx",
        friendly_name=_friendly_name(loaded, leaf),
    )


def _load_pkcs12(data: bytes, secret: bytes | None) -> Any:
    attempts = [secret] if secret else [None, b""]
    for attempt in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return pkcs12.load_pkcs12(data, attempt)
        except _READ_ERRORS:
            continue
    if not secret:
        raise PfxError("the PFX password is wrong: the PFX needs a password, and none was given (or the PFX is "
                       "damaged)")
    raise PfxError("the PFX password is wrong (or the PFX is damaged, or uses an encryption this controller's "
                   "cryptography library cannot read)")


def _friendly_name(loaded: Any, leaf: x509.Certificate) -> str | None:
    bags = [loaded.cert] if loaded.cert is not None else []
    bags.extend(loaded.additional_certs)
    for bag in bags:
        if bag.certificate is leaf and bag.friendly_name:
            return bytes(bag.friendly_name).decode("utf-8", errors="replace")
    return None


def build_pfx(bundle: CertificateBundle, password: str, *, encryption: Encryption,
              friendly_name: str | None = None) -> bytes:
    """A PFX of the bundle's certificate, key and chain.

    ``modern``: AES-256-CBC (PBES2, PBKDF2 with HMAC-SHA-256) and a SHA-256 MAC. ``legacy``:
    pbeWithSHAAnd3-KeyTripleDES-CBC for key and certificates and a SHA-1 MAC, which Windows Server 2016
    (Exchange 2016) can import. The friendly name is ``friendly_name``, else the bundle's. Only the friendly
    name is written as a bag attribute (a Windows CSP name attribute of the source PFX is not kept).
    """
    _require_cryptography()
    if encryption not in ENCRYPTIONS:
        raise PfxError(f"unknown PFX encryption {encryption!r}: use one of {', '.join(ENCRYPTIONS)}")
    if not isinstance(bundle, CertificateBundle):
        raise PfxError(f"a PFX is built from a CertificateBundle, got {type(bundle).__name__}")
    secret = _password_bytes(password, required=True)
    if bundle.key is None:
        raise PfxError("a PFX is built from a certificate with its private key; this one has no key "
                       f"({bundle.source_format} file)")
    if not key_matches(bundle.certificate, bundle.key):
        raise PfxError("the private key does not belong to the certificate")
    name = friendly_name if friendly_name is not None else bundle.friendly_name
    if name is not None and not isinstance(name, str):
        raise PfxError(f"the friendly name must be a string, got {type(name).__name__}")
    if encryption == "legacy":
        algorithm, mac, rounds = pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1(), LEGACY_ITERATIONS
    else:
        algorithm, mac, rounds = pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256(), MODERN_ITERATIONS
    try:
        protection = (
            serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(rounds).key_cert_algorithm(algorithm).hmac_hash(mac).build(secret)
        )
        return pkcs12.serialize_key_and_certificates(
            name.encode("utf-8", errors="replace") if name else None,
            bundle.key, bundle.certificate, list(bundle.chain) or None, protection,
        )
    except _READ_ERRORS as error:  # e.g. a key type PKCS#12 cannot carry; cryptography's message holds no secret
        raise PfxError(f"the PFX could not be built: {type(error).__name__}") from None


def pfx_encryption(data: bytes) -> Literal["legacy", "modern", "unknown"]:
    """How the private key of an existing PFX is encrypted, read from the PFX structure without the password.

    ``legacy``: every visible key bag is pbeWithSHAAnd3-KeyTripleDES-CBC, every encrypted part uses a PKCS#12
    PBE algorithm (3DES, RC2 or RC4 with SHA-1) and the MAC, if any, is SHA-1: Windows Server 2016 imports it.
    ``modern``: every visible key bag is PBES2 with AES-CBC. ``unknown``: anything else, including an
    unencrypted key, no visible key bag, a mix, and anything that is not a readable DER PFX. Never raises.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or not data or len(data) > MAX_INPUT_BYTES:
        return "unknown"
    layout = _layout(bytes(data))
    if layout is None or not layout.key_bags:
        return "unknown"
    if (all(bag == _PBE_SHA1_3DES for bag in layout.key_bags)
            and all(algorithm.startswith(_PKCS12_PBE_PREFIX) for algorithm in layout.content_encryptions)
            and layout.mac_digest in (None, _SHA1)):
        return "legacy"
    if all(bag.startswith(_PBES2 + "/") and bag.rsplit("/", maxsplit=1)[-1] in _AES_CBC for bag in layout.key_bags):
        return "modern"
    return "unknown"


def legacy_compatible(data: bytes, password: str | None) -> bytes:
    """A PFX that Windows Server 2016 can import: ``data`` unchanged when already legacy, else rebuilt.

    The PFX is read first in either case, so a wrong password or a broken PFX fails here, on the controller,
    and not with Windows' misleading "The specified network password is not correct".
    """
    bundle = load_pfx(data, password)
    data = bytes(data)
    if pfx_encryption(data) == "legacy":
        return data
    if not password:
        raise PfxError("a PFX without a password cannot be rebuilt with legacy encryption: give it a password")
    return build_pfx(bundle, password, encryption="legacy")


# --- PEM, DER and PKCS#7 ---------------------------------------------------------------------------

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----")
_PEM_WHITESPACE = re.compile(rb"[ \t\r\n]+")
_MAX_PEM_BLOCKS = 2 * MAX_CERTIFICATES
_CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE"})
_PKCS7_LABELS = frozenset({"PKCS7", "PKCS #7 SIGNED DATA", "CERTIFICATE CHAIN"})


def load_certificates(data: bytes | str) -> CertificateBundle:
    """Read certificates without a key: PEM (CERTIFICATE or PKCS7 blocks), DER, or a DER PKCS#7 (P7B).

    Text outside PEM blocks is ignored; a PEM private key is refused (a certificate with its key must come as a
    PFX). The leaf is the certificate that issues none of the others.
    """
    _require_cryptography()
    data = _input_bytes(data, "certificate data", text=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _PEM_BLOCK.search(data):
            certificates, source_format = _read_pem(data)
        else:
            certificates, source_format = _read_der(data)
        certificates = _checked_certificates(certificates, f"{source_format.upper()} data")
    if not certificates:
        raise PfxError(f"the {source_format.upper()} data holds no certificate")
    leaf = _choose_leaf(certificates)
    others = [member for member in certificates if member is not leaf]
    return CertificateBundle(certificate=leaf, key=None, chain=_order_chain(leaf, others),
                             source_format=source_format)


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    blocks: list[tuple[str, bytes]] = []
    position = 0
    while (begin := _PEM_BLOCK.search(data, position)) is not None:
        label = begin.group(1).decode("ascii")
        end_line = b"-----END " + begin.group(1) + b"-----"
        end = data.find(end_line, begin.end())
        body = data[begin.end():end] if end >= 0 else b""
        if end < 0 or b"-----" in body:
            raise PfxError(f"the PEM block {label} has no END line (truncated?)")
        blocks.append((label, body))
        if len(blocks) > _MAX_PEM_BLOCKS:
            raise PfxError(f"the PEM data holds more than {_MAX_PEM_BLOCKS} blocks")
        position = end + len(end_line)
    return blocks


def _read_pem(data: bytes) -> tuple[list[x509.Certificate], str]:
    blocks = _pem_blocks(data)
    labels = [label for label, _body in blocks]
    if any("PRIVATE KEY" in label for label in labels):
        raise PfxError("the PEM data holds a private key: private keys are not read from PEM files; use a PFX "
                       "(PKCS#12) with a password to import a certificate with its key")
    for label in labels:
        if "REQUEST" in label:
            raise PfxError(f"the PEM data holds a certificate request ({label}), not a certificate: submit it to "
                           "the CA and import the issued certificate")
        if label not in _CERTIFICATE_LABELS and label not in _PKCS7_LABELS:
            raise PfxError(f"the PEM data holds a {label} block, which is not a certificate")
    certificates: list[x509.Certificate] = []
    for number, (label, body) in enumerate(blocks, start=1):
        der = _pem_body(label, number, body)
        if label in _PKCS7_LABELS:
            certificates.extend(_read_pkcs7(der))
        else:
            try:
                certificates.append(x509.load_der_x509_certificate(der))
            except _READ_ERRORS as error:
                raise PfxError(f"PEM block {number} ({label}) is not a certificate: {_reason(error)}") from None
    source_format = "p7b" if any(label in _PKCS7_LABELS for label in labels) else "pem"
    return certificates, source_format


def _pem_body(label: str, number: int, body: bytes) -> bytes:
    if b":" in body:
        raise PfxError(f"PEM block {number} ({label}) has headers; a certificate block has none")
    try:
        der = base64.b64decode(_PEM_WHITESPACE.sub(b"", body), validate=True)
    except (binascii.Error, ValueError):
        raise PfxError(f"PEM block {number} ({label}) is not valid base64") from None
    if not der:
        raise PfxError(f"PEM block {number} ({label}) is empty")
    return der


def _read_pkcs7(der: bytes) -> list[x509.Certificate]:
    try:
        return list(pkcs7.load_der_pkcs7_certificates(der))
    except _READ_ERRORS:
        if _shape(der) == "p7b":
            raise PfxError("the PKCS#7 (P7B) data holds no certificates, or cannot be read") from None
        raise PfxError("the PKCS#7 (P7B) data cannot be read") from None


def _read_der(data: bytes) -> tuple[list[x509.Certificate], str]:
    try:
        return [x509.load_der_x509_certificate(data)], "der"
    except _READ_ERRORS:
        pass
    shape = _shape(data)
    if shape == "p7b":
        return _read_pkcs7(data), "p7b"
    if shape in ("pfx", "truncated"):
        raise PfxError("the data is a PFX (PKCS#12) file, not a certificate chain: import it as a PFX with its "
                       "password")
    raise PfxError("the data is not a certificate: expected PEM, DER or PKCS#7 (P7B)")


# --- a small, bounded DER reader for the PFX structure (RFC 7292) ----------------------------------
# Only what pfx_encryption and the layout checks need: definite lengths, one-byte tags, fixed nesting (no
# recursion), counted elements. Anything else is "unreadable": pfx_encryption answers "unknown".

_SEQUENCE, _SET, _INTEGER, _OCTET_STRING, _OID, _NULL = 0x30, 0x31, 0x02, 0x04, 0x06, 0x05
_CONTEXT_0 = 0xA0
_DATA = "1.2.840.113549.1.7.1"
_SIGNED_DATA = "1.2.840.113549.1.7.2"
_ENCRYPTED_DATA = "1.2.840.113549.1.7.6"
_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_SAFE_CONTENTS_BAG = "1.2.840.113549.1.12.10.1.6"
_PKCS12_PBE_PREFIX = "1.2.840.113549.1.12.1."  # pbeWithSHAAnd128BitRC4 ... pbewithSHAAnd40BitRC2-CBC
_PBE_SHA1_3DES = "1.2.840.113549.1.12.1.3"
_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_AES_CBC = frozenset({"2.16.840.1.101.3.4.1.2", "2.16.840.1.101.3.4.1.22", "2.16.840.1.101.3.4.1.42"})
_SHA1 = "1.3.14.3.2.26"
_MAX_ELEMENTS = 256
_MAX_OID_BYTES = 32
_MAX_INTEGER_BYTES = 8


class _Unreadable(Exception):
    """The bytes are not the DER this reader expects."""


@dataclasses.dataclass
class _Layout:
    """What a PFX shows without its password."""

    mac_digest: str | None = None
    iterations: list[int] = dataclasses.field(default_factory=list)
    content_encryptions: list[str] = dataclasses.field(default_factory=list)  # algorithm OIDs of encryptedData
    key_bags: list[str] = dataclasses.field(default_factory=list)  # "plain", an algorithm OID, or PBES2/kdf/cipher


_Element = tuple[int, int, int]  # tag, start and end of the content


def _element(data: bytes, position: int, end: int) -> _Element:
    if position + 2 > end:
        raise _Unreadable("no room for an element")
    tag, first = data[position], data[position + 1]
    if tag & 0x1F == 0x1F:
        raise _Unreadable("multi-byte tag")
    position += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or position + count > end:
            raise _Unreadable("indefinite or oversized length")
        length = int.from_bytes(data[position:position + count], "big")
        position += count
    if length > end - position:
        raise _Unreadable("element longer than its container")
    return tag, position, position + length


def _children(data: bytes, parent: _Element, tag: int = _SEQUENCE) -> list[_Element]:
    if parent[0] != tag:
        raise _Unreadable(f"expected tag {tag:#x}, found {parent[0]:#x}")
    children: list[_Element] = []
    position = parent[1]
    while position < parent[2]:
        if len(children) >= _MAX_ELEMENTS:
            raise _Unreadable("too many elements")
        child = _element(data, position, parent[2])
        children.append(child)
        position = child[2]
    return children


def _only_child(data: bytes, parent: _Element, tag: int) -> _Element:
    children = _children(data, parent, tag)
    if len(children) != 1:
        raise _Unreadable("expected one element")
    return children[0]


def _oid(data: bytes, element: _Element) -> str:
    tag, start, end = element
    if tag != _OID or not 0 < end - start <= _MAX_OID_BYTES or data[end - 1] & 0x80:
        raise _Unreadable("not an object identifier")
    arcs: list[int] = []
    value = 0
    for byte in data[start:end]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in (first, arcs[0] - 40 * first, *arcs[1:]))


def _integer(data: bytes, element: _Element) -> int:
    tag, start, end = element
    if tag != _INTEGER or not 0 < end - start <= _MAX_INTEGER_BYTES:
        raise _Unreadable("not a small integer")
    return int.from_bytes(data[start:end], "big", signed=True)


def _octets(data: bytes, element: _Element) -> _Element:
    """The one DER element inside an OCTET STRING (as in ContentInfo's data content)."""
    if element[0] != _OCTET_STRING:
        raise _Unreadable("not a primitive OCTET STRING")
    inner = _element(data, element[1], element[2])
    if inner[2] != element[2]:
        raise _Unreadable("bytes after the element in an OCTET STRING")
    return inner


def _shape(data: bytes) -> str:
    """``pfx`` / ``p7b`` when the bytes start like one, ``truncated`` for a cut-off PFX, else ``other``."""
    try:
        outer = _element(data, 0, len(data))
    except _Unreadable:
        prefix = data[:16]
        if prefix[:1] == b"\x30" and b"\x02\x01\x03\x30" in prefix:
            return "truncated"
        return "other"
    try:
        children = _children(data, outer)
        if len(children) >= 2 and children[0][0] == _INTEGER and _integer(data, children[0]) == 3:
            return "pfx" if children[1][0] == _SEQUENCE else "other"
        if len(children) == 2 and children[0][0] == _OID and _oid(data, children[0]) == _SIGNED_DATA:
            return "p7b"
    except _Unreadable:
        pass
    return "other"


def _layout(data: bytes) -> _Layout | None:
    """The PFX's encryption algorithms, key bags and iteration counts; None when this reader cannot tell."""
    try:
        return _read_layout(data)
    except (_Unreadable, IndexError, ValueError):
        return None


def _read_layout(data: bytes) -> _Layout:
    outer = _element(data, 0, len(data))
    if outer[2] != len(data):
        raise _Unreadable("bytes after the PFX")
    parts = _children(data, outer)
    if len(parts) not in (2, 3) or _integer(data, parts[0]) != 3:
        raise _Unreadable("not a version 3 PFX")
    layout = _Layout()
    content_type, content = _children(data, parts[1])
    if _oid(data, content_type) != _DATA:
        raise _Unreadable("the PFX is not password-integrity (signedData)")
    authenticated_safe = _octets(data, _only_child(data, content, _CONTEXT_0))
    for info in _children(data, authenticated_safe):
        info_type, *info_content = _children(data, info)
        kind = _oid(data, info_type)
        if kind == _DATA:
            _read_bags(data, _octets(data, _only_child(data, info_content[0], _CONTEXT_0)), layout)
        elif kind == _ENCRYPTED_DATA:
            encrypted = _children(data, _only_child(data, info_content[0], _CONTEXT_0))
            encrypted_info = _children(data, encrypted[1])
            layout.content_encryptions.append(_algorithm(data, encrypted_info[1], layout))
        else:
            raise _Unreadable("a content type other than data and encryptedData")
    if len(parts) == 3:
        mac = _children(data, parts[2])
        digest_algorithm = _children(data, _children(data, mac[0])[0])
        layout.mac_digest = _oid(data, digest_algorithm[0])
        layout.iterations.append(_integer(data, mac[2]) if len(mac) > 2 else 1)
    return layout


def _read_bags(data: bytes, safe_contents: _Element, layout: _Layout) -> None:
    for bag in _children(data, safe_contents):
        bag_id, *rest = _children(data, bag)
        kind = _oid(data, bag_id)
        if kind == _KEY_BAG:
            layout.key_bags.append("plain")
        elif kind == _SHROUDED_KEY_BAG:
            encrypted_key = _children(data, _only_child(data, rest[0], _CONTEXT_0))
            layout.key_bags.append(_algorithm(data, encrypted_key[0], layout))
        elif kind == _SAFE_CONTENTS_BAG:
            raise _Unreadable("nested safe contents")


def _algorithm(data: bytes, element: _Element, layout: _Layout) -> str:
    """An AlgorithmIdentifier as its OID, or ``PBES2/<kdf>/<prf>/<cipher>``; records its iteration count."""
    algorithm, *parameters = _children(data, element)
    oid = _oid(data, algorithm)
    if oid.startswith(_PKCS12_PBE_PREFIX):
        layout.iterations.append(_integer(data, _children(data, parameters[0])[1]))
        return oid
    if oid != _PBES2:
        return oid
    kdf, scheme = _children(data, parameters[0])
    kdf_oid, kdf_parameters = _children(data, kdf)
    prf = "hmacWithSHA1"
    if _oid(data, kdf_oid) != _PBKDF2:
        raise _Unreadable("PBES2 without PBKDF2")
    pbkdf2 = _children(data, kdf_parameters)
    layout.iterations.append(_integer(data, pbkdf2[1]))
    for extra in pbkdf2[2:]:
        if extra[0] == _SEQUENCE:
            prf = _oid(data, _children(data, extra)[0])
    cipher = _oid(data, _children(data, scheme)[0])
    return f"{_PBES2}/{_PBKDF2}/{prf}/{cipher}"


def _check_layout(layout: _Layout) -> None:
    """Refuse what cryptography would read wrongly (a second key is dropped silently) or too slowly."""
    if len(layout.key_bags) > 1:
        raise PfxError(f"the PFX holds {len(layout.key_bags)} private keys; import needs one certificate with its "
                       "key per PFX: export them separately")
    if any(count < 1 for count in layout.iterations):
        raise PfxError("the PFX is damaged: it gives a key derivation iteration count below 1")
    if any(count > MAX_ITERATIONS for count in layout.iterations):
        raise PfxError(f"the PFX asks for {max(layout.iterations)} key derivation iterations; at most "
                       f"{MAX_ITERATIONS} are accepted")
