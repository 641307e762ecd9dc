# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PFX export/import with encryption detection, and certificate file loading (tests/lab/pki)."""

from __future__ import annotations

from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from tests.lab import pki
from tests.lab.pki import _der
from tests.lab.tests.pki_fixtures import lab_leaf

PASSWORD = "Pfx-Passw0rd!"


@pytest.fixture
def leaf() -> pki.IssuedCertificate:
    return lab_leaf()


def export(leaf: pki.IssuedCertificate, encryption: Literal["legacy", "aes"] = "legacy") -> bytes:
    return pki.export_pfx(
        leaf.certificate, leaf.private_key, leaf.chain, PASSWORD, encryption=encryption, friendly_name="Contoso Mail"
    )


def to_indefinite_length(der: bytes) -> bytes:
    """Re-encode the outer SEQUENCE of a DER object with a BER indefinite length."""
    length_bytes = der[1] & 0x7F if der[1] & 0x80 else 0
    return b"\x30\x80" + der[2 + length_bytes :] + b"\x00\x00"


# ---- PFX ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["legacy", "aes"])
def test_pfx_round_trip_reports_its_encryption(
    leaf: pki.IssuedCertificate, encryption: Literal["legacy", "aes"]
) -> None:
    data = export(leaf, encryption)
    contents = pki.import_pfx(data, PASSWORD)
    assert contents.encryption == pki.pfx_encryption(data) == encryption
    assert contents.certificate == leaf.certificate
    assert contents.chain == leaf.chain
    assert contents.private_key is not None
    assert contents.private_key.public_key() == leaf.certificate.public_key()
    assert contents.friendly_name == "Contoso Mail"


def test_pfx_encryption_reads_ber_indefinite_lengths(leaf: pki.IssuedCertificate) -> None:
    assert pki.pfx_encryption(to_indefinite_length(export(leaf, "aes"))) == "aes"


@pytest.mark.parametrize("encryption", ["legacy", "aes"])
@pytest.mark.parametrize("password", ["wrong", "", None])
def test_wrong_pfx_password_gets_the_windows_message(
    leaf: pki.IssuedCertificate, encryption: Literal["legacy", "aes"], password: str | None
) -> None:
    with pytest.raises(pki.BadPfxPassword) as caught:
        pki.import_pfx(export(leaf, encryption), password)
    assert str(caught.value) == "The specified network password is not correct."


def unencrypted_pfx(leaf: pki.IssuedCertificate) -> bytes:
    """A PFX whose key and certificates are not encrypted, with a MAC keyed by the empty password."""
    return pkcs12.serialize_key_and_certificates(
        None, leaf.private_key, leaf.certificate, None, serialization.NoEncryption()
    )


def without_mac(pfx: bytes) -> bytes:
    version, auth_safe, _mac = _der.read_single(pfx, "PFX").children()
    return _der.encode_tlv(
        _der.SEQUENCE, _der.encode_tlv(version.tag, version.content) + _der.encode_tlv(auth_safe.tag, auth_safe.content)
    )


@pytest.mark.parametrize(
    ("with_mac", "password", "opens"),
    [(True, None, True), (True, "", True), (True, "anything", False), (False, "anything", True)],
)
def test_unencrypted_pfx_needs_the_mac_password_only_when_it_has_a_mac(
    leaf: pki.IssuedCertificate, with_mac: bool, password: str | None, opens: bool
) -> None:
    data = unencrypted_pfx(leaf) if with_mac else without_mac(unencrypted_pfx(leaf))
    assert pki.pfx_encryption(data) == "none"
    if not opens:
        with pytest.raises(pki.BadPfxPassword):
            pki.import_pfx(data, password)
        return
    contents = pki.import_pfx(data, password)
    assert (contents.certificate, contents.encryption, contents.friendly_name) == (leaf.certificate, "none", None)


def test_pfx_with_a_key_windows_cannot_hold_is_rejected(leaf: pki.IssuedCertificate) -> None:
    data = pkcs12.serialize_key_and_certificates(
        None, ed25519.Ed25519PrivateKey.generate(), None, [leaf.certificate], serialization.NoEncryption()
    )
    with pytest.raises(pki.PkiError, match="the PFX holds an unsupported Ed25519PrivateKey key"):
        pki.import_pfx(data, None)


def test_certificate_only_pfx_has_no_key(leaf: pki.IssuedCertificate) -> None:
    protection = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .build(PASSWORD.encode())
    )
    data = pkcs12.serialize_key_and_certificates(None, None, None, [leaf.certificate, *leaf.chain], protection)
    contents = pki.import_pfx(data, PASSWORD)
    assert contents.private_key is None
    assert (contents.certificate, contents.chain) == (leaf.certificate, leaf.chain)
    assert contents.encryption == "legacy"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "not a PKCS#12 \\(PFX\\) file: truncated ASN.1 data", id="empty"),
        pytest.param(b"hello world", "not a PKCS#12 \\(PFX\\) file", id="text"),
        pytest.param(b"-----BEGIN CERTIFICATE-----\n", "not a PKCS#12 \\(PFX\\) file: PEM text", id="pem"),
        pytest.param(b"\x30\x03\x02\x01\x01", "not a PKCS#12 \\(PFX\\) file: no version 3 header", id="version-1"),
        pytest.param(b"\x30\x03\x02\x01\x03", "not a PKCS#12 \\(PFX\\) file: missing ASN.1 fields", id="no-content"),
    ],
)
def test_malformed_pfx_is_named(data: bytes, message: str) -> None:
    with pytest.raises(pki.PkiError, match=message) as caught:
        pki.import_pfx(data, PASSWORD)
    assert not isinstance(caught.value, pki.BadPfxPassword)


@pytest.mark.parametrize("mangle", ["certificate", "truncated", "trailing"])
def test_other_der_is_not_a_pfx(leaf: pki.IssuedCertificate, mangle: str) -> None:
    pfx = export(leaf)
    data = {"certificate": leaf.der(), "truncated": pfx[: len(pfx) // 2], "trailing": pfx + b"\x00"}[mangle]
    with pytest.raises(pki.PkiError, match="not a PKCS#12 \\(PFX\\) file"):
        pki.pfx_encryption(data)


def test_export_pfx_needs_a_password(leaf: pki.IssuedCertificate) -> None:
    with pytest.raises(ValueError, match="needs a non-empty password"):
        pki.export_pfx(leaf.certificate, leaf.private_key, (), "")


def test_pfx_errors_never_show_the_password(leaf: pki.IssuedCertificate) -> None:
    data = export(leaf)
    for attempt in ("Secret-Guess-1", b"\x30\x03\x02\x01\x01"):
        password = attempt if isinstance(attempt, str) else PASSWORD
        with pytest.raises(pki.PkiError) as caught:
            pki.import_pfx(data if isinstance(attempt, str) else attempt, password)
        assert password not in str(caught.value)


# ---- certificate files -------------------------------------------------------------------------------


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


@pytest.mark.parametrize("form", ["pem", "pem-chain", "pem-with-text", "der", "pkcs7-der", "pkcs7-pem"])
def test_load_certificates_formats(leaf: pki.IssuedCertificate, form: str) -> None:
    everything = [leaf.certificate, *leaf.chain]
    data, expected = {
        "pem": (pem(leaf.certificate), [leaf.certificate]),
        "pem-chain": (leaf.pem_chain(), everything),
        "pem-with-text": (b"subject=CN=mail\r\n" + leaf.pem_chain().replace(b"\n", b"\r\n") + b"trailer\n", everything),
        "der": (leaf.der(), [leaf.certificate]),
        "pkcs7-der": (pkcs7.serialize_certificates(everything, serialization.Encoding.DER), everything),
        "pkcs7-pem": (pkcs7.serialize_certificates(everything, serialization.Encoding.PEM), everything),
    }[form]
    assert sorted(pki.load_certificates(data), key=pki.thumbprint) == sorted(expected, key=pki.thumbprint)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"garbage", "malformed certificate data: neither PEM, a DER certificate nor a DER PKCS#7 chain"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n", "malformed PEM certificate data: no complete BEGIN/END block"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "malformed PEM certificate: "),
        (b"-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n", "malformed PEM PKCS#7 chain: "),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "'PRIVATE KEY' is not a certificate"),
    ],
)
def test_load_certificates_names_malformed_data(data: bytes, message: str) -> None:
    with pytest.raises(pki.PkiError, match=message):
        pki.load_certificates(data)
