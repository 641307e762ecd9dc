# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of PFX and PEM/DER/P7B reading, checking and rebuilding (_pfx)."""

from __future__ import annotations

import ast
import base64
import dataclasses
import datetime
import hashlib
import hmac
import pathlib
import random
import subprocess
import sys
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils import _pfx
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import sha1_thumbprint
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._pfx import (
    CertificateBundle,
    PfxError,
    build_pfx,
    key_matches,
    legacy_compatible,
    load_certificates,
    load_pfx,
    pfx_encryption,
)
from tests.unit.clock import NOW

PASSWORD = "S3cret-Pässwörd"
DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
try:
    import cryptography_vectors
except ImportError:  # pragma: no cover - the vectors come with the test requirements
    VECTORS = None
else:
    VECTORS = pathlib.Path(cryptography_vectors.__file__).parent


# --- a root, an intermediate and leaves made with cryptography -------------------------------------


@dataclasses.dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: Any


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(common_name: str, key: Any, issuer: Issued | None, *, ca: bool,
           days: tuple[int, int] = (-10, 355)) -> Issued:
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + datetime.timedelta(days=days[0]))
        .not_valid_after(NOW + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def root() -> Issued:
    return _issue("Root CA", _rsa(), None, ca=True, days=(-3650, 3650))


@pytest.fixture(scope="module")
def intermediate(root: Issued) -> Issued:
    return _issue("Intermediate CA", _rsa(), root, ca=True, days=(-1000, 1000))


@pytest.fixture(scope="module")
def leaf(intermediate: Issued) -> Issued:
    return _issue("Leaf", _rsa(), intermediate, ca=False)


@pytest.fixture(scope="module")
def ec_leaf(intermediate: Issued) -> Issued:
    return _issue("EC Leaf", ec.generate_private_key(ec.SECP256R1()), intermediate, ca=False)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return _rsa()


def _protection(password: str, encryption: str = "legacy") -> Any:
    if encryption == "none":
        return serialization.NoEncryption()
    algorithm, mac = {
        "legacy": (pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1()),
        "modern": (pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256()),
    }[encryption]
    return (serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(2048).key_cert_algorithm(algorithm).hmac_hash(mac).build(password.encode()))


def _p12(key: Any, certificate: x509.Certificate | None, cas: list[x509.Certificate] | None = None,
         password: str = PASSWORD, encryption: str = "legacy", name: bytes | None = b"Exchange 2026") -> bytes:
    return pkcs12.serialize_key_and_certificates(name, key, certificate, cas, _protection(password, encryption))


def _key_der(key: Any) -> bytes:
    return key.private_bytes(DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _assert_no_secret(message: str, key: Any = None, password: str = PASSWORD) -> None:
    assert password not in message
    assert password.encode("utf-8").hex() not in message.lower()
    if key is not None:
        der = _key_der(key)
        for encoded in (der.hex(), der.hex().upper(), base64.b64encode(der).decode()):
            for start in range(0, len(encoded) - 16, 16):
                assert encoded[start:start + 16] not in message


# --- a tiny DER writer and reader, to splice PFX bags the way no library writes them -----------------


def _tlv(tag: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes([tag, length]) + body
    octets = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _items(body: bytes) -> list[tuple[int, bytes, bytes]]:
    """(tag, content, whole element) of each DER element in body (definite lengths only)."""
    items = []
    position = 0
    while position < len(body):
        start, tag, length = position, body[position], body[position + 1]
        position += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(body[position:position + count], "big")
            position += count
        items.append((tag, body[position:position + length], body[start:position + length]))
        position += length
    return items


def _content(element: bytes) -> bytes:
    return _items(element)[0][1]


_DATA_OID = _tlv(0x06, bytes.fromhex("2A864886F70D010701"))


def _bags(p12: bytes) -> list[bytes]:
    """The SafeBags of a PFX made without encryption (every content is plain data)."""
    _version, auth_safe, _mac = _items(_content(p12))
    _oid, explicit = _items(auth_safe[1])
    bags = []
    for info in _items(_content(_content(explicit[1]))):
        _info_oid, info_content = _items(info[1])
        bags.extend(bag[2] for bag in _items(_content(_content(info_content[1]))))
    return bags


def _spliced_pfx(bags: list[bytes]) -> bytes:
    """A PFX of the given bags in one plain SafeContents, without MAC (macData is optional)."""
    safe_contents = _tlv(0x30, b"".join(bags))
    info = _tlv(0x30, _DATA_OID + _tlv(0xA0, _tlv(0x04, safe_contents)))
    auth_safe = _tlv(0x30, _DATA_OID + _tlv(0xA0, _tlv(0x04, _tlv(0x30, info))))
    return _tlv(0x30, _tlv(0x02, b"\x03") + auth_safe)


def _pkcs12_kdf(password: bytes, salt: bytes, purpose: int, iterations: int, size: int) -> bytes:
    """RFC 7292 appendix B.2 with SHA-1 (u = 20, v = 64); password already as BMPString with two NULs."""
    block = 64

    def stretch(value: bytes) -> bytes:
        if not value:
            return b""
        length = block * ((len(value) + block - 1) // block)
        return (value * (length // len(value) + 1))[:length]

    diversifier = bytes([purpose]) * block
    material = bytearray(stretch(salt) + stretch(password))
    result = b""
    while len(result) < size:
        digest = hashlib.sha1(diversifier + bytes(material)).digest()
        for _round in range(iterations - 1):
            digest = hashlib.sha1(digest).digest()
        result += digest
        addend = int.from_bytes(stretch(digest), "big") + 1
        for start in range(0, len(material), block):
            total = int.from_bytes(material[start:start + block], "big") + addend
            material[start:start + block] = (total % (1 << (8 * block))).to_bytes(block, "big")
    return result[:size]


# --- load_pfx and build_pfx round trips ------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["legacy", "modern"])
@pytest.mark.parametrize("which", ["leaf", "ec_leaf"])
def test_build_then_load_round_trips(request: pytest.FixtureRequest, encryption: str, which: str,
                                     intermediate: Issued, root: Issued) -> None:
    issued: Issued = request.getfixturevalue(which)
    bundle = CertificateBundle(issued.certificate, issued.key, (intermediate.certificate, root.certificate), "pem")

    data = build_pfx(bundle, PASSWORD, encryption=encryption, friendly_name="Exchange 2026")

    assert pfx_encryption(data) == encryption
    loaded = load_pfx(data, PASSWORD)
    assert loaded.thumbprint == bundle.thumbprint == sha1_thumbprint(issued.certificate.public_bytes(DER))
    assert _key_der(loaded.key) == _key_der(issued.key)
    assert loaded.chain == (intermediate.certificate, root.certificate)
    assert loaded.source_format == "pfx"
    assert loaded.friendly_name == "Exchange 2026"
    assert loaded.chain_problems(NOW) == ()


@pytest.mark.parametrize("encryption", ["legacy", "modern"])
@pytest.mark.parametrize("password", ["pässwörd€", "Ωμέγα-密码", "emoji 😀 outside the BMP"])
def test_a_non_ascii_password_round_trips(leaf: Issued, encryption: str, password: str) -> None:
    data = build_pfx(CertificateBundle(leaf.certificate, leaf.key, (), "pem"), password, encryption=encryption)

    assert load_pfx(data, password).thumbprint == sha1_thumbprint(leaf.certificate.public_bytes(DER))
    with pytest.raises(PfxError, match="password is wrong"):
        load_pfx(data, password.encode("utf-8").decode("latin-1"))


@pytest.mark.parametrize("password", ["password", "pässwörd€", "emoji 😀 outside the BMP"])
def test_the_legacy_mac_uses_the_bmpstring_password_windows_uses(leaf: Issued, password: str) -> None:
    """RFC 7292 derives the MAC key from the password as BMPString (UTF-16BE, two NULs), as Windows does."""
    data = build_pfx(CertificateBundle(leaf.certificate, leaf.key, (), "pem"), password, encryption="legacy")
    _version, auth_safe, mac_data = _items(_content(data))
    _oid, explicit = _items(auth_safe[1])
    signed = _content(explicit[1])
    digest_info, salt, iterations = _items(mac_data[1])
    mac = _items(digest_info[1])[1][1]
    bmp = password.encode("utf-16-be") + b"\x00\x00"

    mac_key = _pkcs12_kdf(bmp, salt[1], 3, int.from_bytes(iterations[1], "big"), 20)

    assert hmac.new(mac_key, signed, hashlib.sha1).digest() == mac
    layout = _pfx._layout(data)  # the key and certificates use Windows' iteration count; cryptography sets the MAC's
    assert layout is not None and _pfx.LEGACY_ITERATIONS in layout.iterations


def test_a_pfx_without_password_loads_with_none_and_with_empty(leaf: Issued) -> None:
    data = _p12(leaf.key, leaf.certificate, encryption="none")

    assert load_pfx(data, None).thumbprint == load_pfx(data, "").thumbprint


@pytest.mark.parametrize("password", [None, ""])
def test_a_pfx_with_password_given_none_says_a_password_is_needed(leaf: Issued, password: str | None) -> None:
    with pytest.raises(PfxError, match="needs a password"):
        load_pfx(_p12(leaf.key, leaf.certificate), password)


def test_a_wrong_password_is_named_without_either_password(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="the PFX password is wrong") as caught:
        load_pfx(_p12(leaf.key, leaf.certificate), "Wrong-Pässwörd")

    _assert_no_secret(str(caught.value), leaf.key)
    _assert_no_secret(str(caught.value), leaf.key, "Wrong-Pässwörd")
    assert isinstance(caught.value, ExchangePkiError)
    assert isinstance(caught.value, ValueError)


def test_the_leaf_is_the_certificate_of_the_key_in_any_order(leaf: Issued, intermediate: Issued,
                                                             root: Issued) -> None:
    data = _p12(leaf.key, leaf.certificate, [root.certificate, intermediate.certificate])

    bundle = load_pfx(data, PASSWORD)

    assert bundle.certificate == leaf.certificate
    assert bundle.chain == (intermediate.certificate, root.certificate)
    assert bundle.intermediates == (intermediate.certificate,)
    assert bundle.root == root.certificate


@pytest.mark.parametrize("seed", range(4))
def test_bags_in_random_order_still_give_the_keys_certificate(
        leaf: Issued, intermediate: Issued, root: Issued, seed: int) -> None:
    bags = _bags(_p12(leaf.key, leaf.certificate, [intermediate.certificate, root.certificate], encryption="none"))
    random.Random(seed).shuffle(bags)

    bundle = load_pfx(_spliced_pfx(bags), None)

    assert bundle.certificate == leaf.certificate
    assert bundle.chain == (intermediate.certificate, root.certificate)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2)])
def test_a_pfx_with_two_keys_is_refused(leaf: Issued, ec_leaf: Issued, order: tuple[int, ...]) -> None:
    bags = (_bags(_p12(leaf.key, leaf.certificate, encryption="none"))
            + _bags(_p12(ec_leaf.key, ec_leaf.certificate, encryption="none")))

    with pytest.raises(PfxError, match="holds 2 private keys") as caught:
        load_pfx(_spliced_pfx([bags[index] for index in order]), None)
    _assert_no_secret(str(caught.value), leaf.key)


def test_a_pfx_without_certificate_is_refused(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="holds no certificate"):
        load_pfx(_p12(leaf.key, None), PASSWORD)


def test_a_pfx_without_key_is_refused(leaf: Issued, intermediate: Issued) -> None:
    with pytest.raises(PfxError, match="holds no private key"):
        load_pfx(_p12(None, None, [leaf.certificate, intermediate.certificate], name=None), PASSWORD)


def test_a_key_that_matches_no_certificate_is_refused(leaf: Issued, intermediate: Issued,
                                                      other_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(PfxError, match="belongs to none of its 2 certificate") as caught:
        load_pfx(_p12(other_key, None, [leaf.certificate, intermediate.certificate]), PASSWORD)
    _assert_no_secret(str(caught.value), other_key)


def test_too_many_iterations_are_refused(leaf: Issued, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _p12(leaf.key, leaf.certificate)
    monkeypatch.setattr(_pfx, "MAX_ITERATIONS", 1000)

    with pytest.raises(PfxError, match="2048 key derivation iterations; at most 1000"):
        load_pfx(data, PASSWORD)


# --- hostile input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the PFX is empty"),
        (b"\x00", "not a PFX"),
        (b"\x00" * 64, "not a PFX"),
        (b"garbage that is not ASN.1 at all", "not a PFX"),
        (b"\x30\x03\x02\x01\x03", "password is wrong|not a PFX|damaged"),
        (b"\x30\x80\x02\x01\x03\x00\x00", "truncated|not a PFX"),
        (b"\xff" * 100, "not a PFX"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "PEM text"),
        (b"a" * (_pfx.MAX_INPUT_BYTES + 1), "more than 1048576 bytes"),
        (b"\x30\x84\x7f\xff\xff\xff" + b"\x00" * 50 * 1024 * 1024, "more than 1048576 bytes"),
        ("a string", "must be bytes, got str"),
        (None, "must be bytes, got NoneType"),
    ],
)
def test_load_pfx_refuses_hostile_data_with_pfx_error(data: Any, message: str) -> None:
    with pytest.raises(PfxError, match=message):
        load_pfx(data, PASSWORD)


def test_a_p7b_given_as_pfx_is_named(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="PKCS#7"):
        load_pfx(pkcs7.serialize_certificates([leaf.certificate], DER), None)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_pfx_is_refused(leaf: Issued, fraction: float) -> None:
    data = _p12(leaf.key, leaf.certificate)

    with pytest.raises(PfxError, match="truncated") as caught:
        load_pfx(data[:int(len(data) * fraction)], PASSWORD)
    _assert_no_secret(str(caught.value), leaf.key)


def test_every_prefix_and_many_corruptions_raise_only_pfx_error(leaf: Issued) -> None:
    data = _p12(leaf.key, leaf.certificate, encryption="modern")
    generator = random.Random(7)
    samples = [data[:length] for length in range(0, len(data), 7)]
    for _sample in range(150):
        corrupted = bytearray(data)
        for _flip in range(generator.randint(1, 4)):
            corrupted[generator.randrange(len(corrupted))] = generator.randrange(256)
        samples.append(bytes(corrupted))
    for sample in samples:
        assert pfx_encryption(sample) in ("legacy", "modern", "unknown")
        for call in (lambda blob: load_pfx(blob, PASSWORD), load_certificates,
                     lambda blob: legacy_compatible(blob, PASSWORD)):
            try:
                call(sample)
            except PfxError as error:
                _assert_no_secret(str(error), leaf.key)


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("a\x00b", "NUL character"),
        ("x" * (_pfx.MAX_PASSWORD_CHARS + 1), "longer than 1024 characters"),
        (b"bytes", "must be a string, got bytes"),
        (1234, "must be a string, got int"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_load_pfx_refuses_bad_passwords(leaf: Issued, password: Any, message: str) -> None:
    with pytest.raises(PfxError, match=message) as caught:
        load_pfx(_p12(leaf.key, leaf.certificate), password)
    assert "a\x00b" not in str(caught.value)


# --- pfx_encryption --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x30\x00", b"junk" * 100, "text", None, 42, bytearray(b"\x30"),
                                  b"\x30" * (_pfx.MAX_INPUT_BYTES + 1)])
def test_pfx_encryption_answers_unknown_for_what_it_cannot_read(data: Any) -> None:
    assert pfx_encryption(data) == "unknown"


def test_pfx_encryption_of_plain_and_keyless_pfx_is_unknown(leaf: Issued) -> None:
    assert pfx_encryption(_p12(leaf.key, leaf.certificate, encryption="none")) == "unknown"
    assert pfx_encryption(_p12(None, None, [leaf.certificate])) == "unknown"


def test_pfx_encryption_accepts_a_memoryview(leaf: Issued) -> None:
    assert pfx_encryption(memoryview(_p12(leaf.key, leaf.certificate))) == "legacy"


def test_a_pfx_with_a_sha256_mac_and_3des_key_is_not_legacy(leaf: Issued) -> None:
    protection = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
                  .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA256())
                  .build(PASSWORD.encode()))
    data = pkcs12.serialize_key_and_certificates(None, leaf.key, leaf.certificate, None, protection)

    assert pfx_encryption(data) == "unknown"
    assert pfx_encryption(legacy_compatible(data, PASSWORD)) == "legacy"


def test_pfx_encryption_never_raises_on_trailing_or_indefinite_bytes(leaf: Issued) -> None:
    data = _p12(leaf.key, leaf.certificate)

    assert pfx_encryption(data + b"\x00") == "unknown"
    assert pfx_encryption(b"\x30\x80" + data[4:] + b"\x00\x00") == "unknown"


# --- legacy_compatible -----------------------------------------------------------------------------


def test_legacy_compatible_rebuilds_a_modern_pfx(leaf: Issued, intermediate: Issued, root: Issued) -> None:
    modern = _p12(leaf.key, leaf.certificate, [intermediate.certificate, root.certificate], encryption="modern")

    rebuilt = legacy_compatible(modern, PASSWORD)

    assert pfx_encryption(modern) == "modern"
    assert pfx_encryption(rebuilt) == "legacy"
    bundle = load_pfx(rebuilt, PASSWORD)
    assert bundle.thumbprint == load_pfx(modern, PASSWORD).thumbprint
    assert _key_der(bundle.key) == _key_der(leaf.key)
    assert bundle.chain == (intermediate.certificate, root.certificate)
    assert bundle.friendly_name == "Exchange 2026"


def test_legacy_compatible_returns_a_legacy_pfx_unchanged(leaf: Issued) -> None:
    legacy = _p12(leaf.key, leaf.certificate)

    assert legacy_compatible(legacy, PASSWORD) == legacy


def test_legacy_compatible_checks_the_password_even_when_already_legacy(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="password is wrong"):
        legacy_compatible(_p12(leaf.key, leaf.certificate), "wrong")


def test_legacy_compatible_cannot_rebuild_without_a_password(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="without a password cannot be rebuilt"):
        legacy_compatible(_p12(leaf.key, leaf.certificate, encryption="none"), None)


# --- build_pfx errors ------------------------------------------------------------------------------


def test_build_pfx_refuses_a_bundle_without_key(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="has no key"):
        build_pfx(CertificateBundle(leaf.certificate, None, (), "pem"), PASSWORD, encryption="modern")


def test_build_pfx_refuses_a_key_of_another_certificate(leaf: Issued, other_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(PfxError, match="does not belong") as caught:
        build_pfx(CertificateBundle(leaf.certificate, other_key, (), "pfx"), PASSWORD, encryption="legacy")
    _assert_no_secret(str(caught.value), other_key)


@pytest.mark.parametrize(("password", "message"), [("", "password is empty"), (None, "none was given"),
                                                   ("a\x00b", "NUL character")])
def test_build_pfx_needs_a_usable_password(leaf: Issued, password: Any, message: str) -> None:
    with pytest.raises(PfxError, match=message):
        build_pfx(CertificateBundle(leaf.certificate, leaf.key, (), "pem"), password, encryption="legacy")


def test_build_pfx_refuses_an_unknown_encryption(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="unknown PFX encryption 'aes'"):
        build_pfx(CertificateBundle(leaf.certificate, leaf.key, (), "pem"), PASSWORD, encryption="aes")  # type: ignore[arg-type]


def test_build_pfx_refuses_what_is_not_a_bundle() -> None:
    with pytest.raises(PfxError, match="got str"):
        build_pfx("bundle", PASSWORD, encryption="legacy")  # type: ignore[arg-type]


def test_build_pfx_keeps_or_replaces_the_friendly_name(leaf: Issued) -> None:
    bundle = load_pfx(_p12(leaf.key, leaf.certificate, name="Älter".encode()), PASSWORD)

    assert bundle.friendly_name == "Älter"
    kept = build_pfx(bundle, PASSWORD, encryption="modern")
    assert load_pfx(kept, PASSWORD).friendly_name == "Älter"
    replaced = build_pfx(bundle, PASSWORD, encryption="modern", friendly_name="Neu")
    assert load_pfx(replaced, PASSWORD).friendly_name == "Neu"


# --- load_certificates -----------------------------------------------------------------------------


def _pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(certificate.public_bytes(PEM) for certificate in certificates)


def test_a_pem_chain_in_any_order_with_crlf_and_junk(leaf: Issued, intermediate: Issued, root: Issued) -> None:
    text = (b"Bag Attributes: junk before\r\n"
            + _pem(root.certificate, leaf.certificate, intermediate.certificate).replace(b"\n", b"\r\n")
            + b"\r\ntrailing junk \x00\xff")

    bundle = load_certificates(text)

    assert bundle.certificate == leaf.certificate
    assert bundle.chain == (intermediate.certificate, root.certificate)
    assert bundle.key is None
    assert bundle.source_format == "pem"
    assert bundle.chain_problems(NOW) == ()


def test_text_is_accepted_and_duplicates_are_dropped(leaf: Issued, intermediate: Issued) -> None:
    text = _pem(leaf.certificate, intermediate.certificate, leaf.certificate).decode()

    bundle = load_certificates(text)

    assert bundle.certificates == (leaf.certificate, intermediate.certificate)


def test_a_der_certificate(ec_leaf: Issued) -> None:
    bundle = load_certificates(ec_leaf.certificate.public_bytes(DER))

    assert bundle.source_format == "der"
    assert bundle.thumbprint == sha1_thumbprint(ec_leaf.certificate.public_bytes(DER))


@pytest.mark.parametrize("encoding", [DER, PEM])
def test_a_p7b_in_any_order(leaf: Issued, intermediate: Issued, root: Issued,
                            encoding: serialization.Encoding) -> None:
    data = pkcs7.serialize_certificates([intermediate.certificate, root.certificate, leaf.certificate], encoding)

    bundle = load_certificates(data)

    assert bundle.source_format == "p7b"
    assert bundle.certificate == leaf.certificate
    assert bundle.chain == (intermediate.certificate, root.certificate)


def _empty_p7b() -> bytes:
    signed_data = _tlv(0x30, _tlv(0x02, b"\x01") + _tlv(0x31, b"") + _tlv(0x30, _DATA_OID) + _tlv(0x31, b""))
    return _tlv(0x30, _tlv(0x06, bytes.fromhex("2A864886F70D010702")) + _tlv(0xA0, signed_data))


def test_a_p7b_without_certificates_is_refused() -> None:
    with pytest.raises(PfxError, match="holds no certificates"):
        load_certificates(_empty_p7b())
    pem = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(_empty_p7b()) + b"-----END PKCS7-----\n"
    with pytest.raises(PfxError, match="holds no certificates"):
        load_certificates(pem)


@pytest.mark.parametrize("key_format", [serialization.PrivateFormat.PKCS8,
                                        serialization.PrivateFormat.TraditionalOpenSSL])
def test_a_pem_private_key_is_refused_with_use_a_pfx(leaf: Issued, key_format: serialization.PrivateFormat) -> None:
    key_pem = leaf.key.private_bytes(PEM, key_format, serialization.NoEncryption())

    with pytest.raises(PfxError, match="use a PFX") as caught:
        load_certificates(_pem(leaf.certificate) + key_pem)
    _assert_no_secret(str(caught.value), leaf.key)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "certificate data is empty"),
        (b"\x00", "not a certificate"),
        (b"garbage", "not a certificate"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "certificate request"),
        (b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", "X509 CRL block"),
        (b"-----BEGIN CERTIFICATE-----\nMIIB", "no END line"),
        (b"-----BEGIN CERTIFICATE-----\nMII!!\n-----END CERTIFICATE-----\n", "not valid base64"),
        (b"-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", "is empty"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "is not a certificate"),
        (b"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END CERTIFICATE-----\n", "headers"),
        (b"-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n", "cannot be read"),
        (b"\x30\x82\xff\xff\x02\x01\x03\x30", "PFX"),
        (b"x" * (_pfx.MAX_INPUT_BYTES + 1), "more than 1048576 bytes"),
        (None, "must be bytes"),
    ],
)
def test_load_certificates_refuses_hostile_data_with_pfx_error(data: Any, message: str) -> None:
    with pytest.raises(PfxError, match=message):
        load_certificates(data)


def test_a_pfx_given_as_certificates_is_named(leaf: Issued) -> None:
    with pytest.raises(PfxError, match="is a PFX"):
        load_certificates(_p12(leaf.key, leaf.certificate))


def test_too_many_certificates_are_refused(leaf: Issued, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pfx, "MAX_CERTIFICATES", 2)
    certificates = [_issue(f"n{number}", leaf.key, None, ca=False).certificate for number in range(3)]

    with pytest.raises(PfxError, match="more than 2 certificates"):
        load_certificates(_pem(*certificates))


# --- the bundle: chain problems, properties, repr ---------------------------------------------------


def test_a_chain_without_its_root_is_complete(leaf: Issued, intermediate: Issued) -> None:
    bundle = load_certificates(_pem(leaf.certificate, intermediate.certificate))

    assert bundle.chain_problems(NOW) == ()
    assert bundle.root is None
    assert bundle.intermediates == (intermediate.certificate,)


def test_a_missing_intermediate_is_a_problem(leaf: Issued, root: Issued) -> None:
    bundle = load_certificates(_pem(leaf.certificate, root.certificate))

    assert bundle.chain_problems(NOW) == (
        "the chain has no issuer for CN=Leaf (issuer CN=Intermediate CA)",
        "CN=Root CA is not part of the chain of CN=Leaf",
    )


def test_a_lone_leaf_has_no_issuer(leaf: Issued) -> None:
    assert load_certificates(_pem(leaf.certificate)).chain_problems() == (
        "the chain has no issuer for CN=Leaf (issuer CN=Intermediate CA)",
    )


def test_a_self_signed_leaf_is_complete(root: Issued) -> None:
    bundle = load_certificates(_pem(root.certificate))

    assert bundle.chain_problems(NOW) == ()
    assert bundle.root is None and bundle.intermediates == ()


def test_an_issuer_of_the_same_name_with_another_key_is_a_problem(leaf: Issued, root: Issued) -> None:
    impostor = _issue("Intermediate CA", _rsa(), root, ca=True)
    bundle = CertificateBundle(leaf.certificate, None, (impostor.certificate, root.certificate), "pem")

    problems = bundle.chain_problems()

    assert problems == ("the key of CN=Intermediate CA does not verify the signature of CN=Leaf "
                        "(a different certificate of the same name?)",)


def test_the_issuer_whose_key_verifies_is_chosen_among_namesakes(leaf: Issued, intermediate: Issued,
                                                                 root: Issued) -> None:
    impostor = _issue("Intermediate CA", _rsa(), root, ca=True)

    bundle = load_certificates(_pem(leaf.certificate, impostor.certificate, intermediate.certificate))

    assert bundle.chain[0] == intermediate.certificate
    assert bundle.chain_problems() == ("CN=Intermediate CA is not part of the chain of CN=Leaf",)


def test_a_self_issued_certificate_that_does_not_verify_is_a_problem(other_key: rsa.RSAPrivateKey) -> None:
    forged = _issue("Forged", _rsa(), Issued(_issue("Forged", other_key, None, ca=True).certificate, other_key),
                    ca=False)

    problems = load_certificates(_pem(forged.certificate)).chain_problems()

    assert problems == ("the chain has no issuer for CN=Forged (issuer CN=Forged)",)


def test_expired_and_not_yet_valid_members_are_problems(root: Issued) -> None:
    old_intermediate = _issue("Old CA", _rsa(), root, ca=True, days=(-400, -5))
    young_leaf = _issue("Young", _rsa(), old_intermediate, ca=False, days=(3, 300))
    bundle = CertificateBundle(young_leaf.certificate, None, (old_intermediate.certificate,), "pem")

    problems = bundle.chain_problems(NOW)

    assert problems == (
        "the certificate CN=Young is not valid before 2026-11-28 08:00 UTC",
        "the chain member CN=Old CA expired on 2026-11-20 08:00 UTC",
    )
    assert bundle.chain_problems() == ()
    with pytest.raises(ValueError, match="timezone-aware"):
        bundle.chain_problems(NOW.replace(tzinfo=None))


def test_a_chain_loop_ends(other_key: rsa.RSAPrivateKey) -> None:
    key_a, key_b = _rsa(), other_key
    a_by_b = _issue("A", key_a, Issued(_issue("B", key_b, None, ca=True).certificate, key_b), ca=True)
    b_by_a = _issue("B", key_b, Issued(_issue("A", key_a, None, ca=True).certificate, key_a), ca=True)

    bundle = load_certificates(_pem(a_by_b.certificate, b_by_a.certificate))

    assert len(bundle.chain) == 1
    assert bundle.chain_problems() == ()


def test_the_repr_shows_no_key_material(leaf: Issued, ec_leaf: Issued) -> None:
    for issued in (leaf, ec_leaf):
        text = repr(load_pfx(_p12(issued.key, issued.certificate), PASSWORD))
        _assert_no_secret(text, issued.key)
        assert "private key>" in text
        numbers = issued.key.private_numbers()
        secret = numbers.d if hasattr(numbers, "d") else numbers.private_value
        assert str(secret) not in text and f"{secret:x}" not in text.lower()


def test_key_matches(leaf: Issued, ec_leaf: Issued, other_key: rsa.RSAPrivateKey) -> None:
    assert key_matches(leaf.certificate, leaf.key)
    assert key_matches(ec_leaf.certificate, ec_leaf.key)
    assert not key_matches(leaf.certificate, other_key)
    assert not key_matches(leaf.certificate, ec_leaf.key)
    assert not key_matches(leaf.certificate, None)
    assert not key_matches(leaf.certificate, "not a key")  # type: ignore[arg-type]


# --- PFX files made elsewhere (OpenSSL and NIST PKITS; no Windows-made PFX is in cryptography_vectors) ---

needs_vectors = pytest.mark.skipif(VECTORS is None, reason="cryptography_vectors is not installed")


@needs_vectors
@pytest.mark.parametrize(
    ("path", "password", "encryption"),
    [
        ("pkcs12/cert-rc2-key-3des.p12", "cryptography", "legacy"),  # OpenSSL 1.1 defaults
        ("pkcs12/cert-key-aes256cbc.p12", "cryptography", "modern"),  # OpenSSL 3 defaults
        ("pkcs12/no-password.p12", None, "legacy"),
        ("pkcs12/name-unicode-pwd.p12", "password", "legacy"),
        ("x509/PKITS_data/pkcs12/ValidPolicyMappingTest13EE.p12", "password", "legacy"),
    ],
)
def test_third_party_pfx_files(path: str, password: str | None, encryption: str) -> None:
    data = (VECTORS / path).read_bytes()

    bundle = load_pfx(data, password)

    assert pfx_encryption(data) == encryption
    assert key_matches(bundle.certificate, bundle.key)
    rebuilt = legacy_compatible(data, password)
    assert (rebuilt == data) == (encryption == "legacy")
    assert pfx_encryption(rebuilt) == "legacy"
    assert load_pfx(rebuilt, password).thumbprint == bundle.thumbprint


@needs_vectors
def test_a_third_party_pfx_without_key_is_refused() -> None:
    with pytest.raises(PfxError, match="holds no private key"):
        load_pfx((VECTORS / "pkcs12/cert-aes256cbc-no-key.p12").read_bytes(), "cryptography")


# --- layout and the import sanity test -------------------------------------------------------------

PFX_PATH = pathlib.Path(_pfx.__file__)


def test_pfx_imports_only_errors_and_certificate_of_the_collection() -> None:
    prefix = "ansible_collections.exchange.pki."
    modules = {node.module for node in ast.walk(ast.parse(PFX_PATH.read_text(encoding="utf-8")))
               if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix)}

    assert modules == {prefix + "plugins.plugin_utils._errors", prefix + "plugins.plugin_utils._certificate"}


def test_the_module_imports_and_refuses_cleanly_without_cryptography() -> None:
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('cryptography', 'idna'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from ansible_collections.exchange.pki.plugins.plugin_utils import _pfx\n"
        "assert not _pfx.HAS_CRYPTOGRAPHY\n"
        "assert _pfx.pfx_encryption(b'x') == 'unknown'\n"
        "try:\n"
        "    _pfx.load_pfx(b'x', None)\n"
        "except _pfx.PfxError as error:\n"
        "    print(error)\n"
    )
    paths = [str(path) for path in sys.path if path]
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60,
                            env={"PYTHONPATH": ":".join(paths)})

    assert result.returncode == 0, result.stderr
    assert "requires the Python library cryptography" in result.stdout
