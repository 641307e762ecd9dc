# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the certificate model: DER parsing, thumbprints, distinguished names, RFC 6125 matching."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import warnings
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils import _certificate
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CertificateParseError,
    LocatedCertificate,
    common_name,
    dns_name_matches,
    name_of,
    normalize_thumbprint,
    parse_certificate,
    parse_distinguished_name,
    same_name,
    serial_hex,
    sha1_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._values import ExchangeCertificateRecord, StoreCertificate
from tests.lab.pki import AuthorityRegistry, CertificateSpec, make_certificate
from tests.unit.clock import NOW

THUMBPRINT = "9F1C2B3A4D5E6F708192A3B4C5D6E7F801234567"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US")] if organization else []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def build_der(key: Any, *, subject: x509.Name, issuer: x509.Name | None = None, signer: Any = None,
              dns_names: tuple[str, ...] = (), ekus: tuple[x509.ObjectIdentifier, ...] | None = None,
              serial: int = 0x1A2B, days: tuple[int, int] = (-10, 355)) -> bytes:
    """A certificate made with CertificateBuilder: self-signed unless ``issuer``/``signer`` are given."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW + datetime.timedelta(days=days[0]))
        .not_valid_after(NOW + datetime.timedelta(days=days[1]))
    )
    if dns_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), False)
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), False)
    certificate = builder.sign(signer or key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.DER)


# --- parse_certificate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("rsa_ca_issued", {"key_type": "rsa", "key_size": 2048, "is_self_signed": False,
                                       "dns_names": ("mail.contoso.lab", "autodiscover.contoso.lab"),
                                       "ekus": ("1.3.6.1.5.5.7.3.1",), "allows_server_auth": True},
                     id="rsa-issued-with-san-and-eku"),
        pytest.param("ec_self_signed", {"key_type": "ec", "key_size": 384, "is_self_signed": True, "dns_names": (),
                                        "ekus": (), "allows_server_auth": True}, id="ec-self-signed-no-extensions"),
        pytest.param("client_only", {"ekus": ("1.3.6.1.5.5.7.3.2",), "allows_server_auth": False},
                     id="client-auth-only"),
        pytest.param("any_purpose", {"ekus": ("2.5.29.37.0",), "allows_server_auth": True}, id="any-eku"),
        pytest.param("forged_self_signed", {"is_self_signed": False}, id="subject-equals-issuer-but-foreign-signature"),
    ],
)
def test_parse_certificate(case: str, expected: dict[str, Any], rsa_key: Any, other_rsa_key: Any, ec_key: Any) -> None:
    issuer = _name("Contoso Lab Issuing CA")
    ders = {
        "rsa_ca_issued": lambda: build_der(rsa_key, subject=_name("mail.contoso.lab", "Contoso"), issuer=issuer,
                                           signer=other_rsa_key,
                                           dns_names=("mail.contoso.lab", "autodiscover.contoso.lab"),
                                           ekus=(ExtendedKeyUsageOID.SERVER_AUTH,)),
        "ec_self_signed": lambda: build_der(ec_key, subject=_name("EX1")),
        "client_only": lambda: build_der(rsa_key, subject=_name("client"), ekus=(ExtendedKeyUsageOID.CLIENT_AUTH,)),
        "any_purpose": lambda: build_der(rsa_key, subject=_name("any"),
                                         ekus=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,)),
        "forged_self_signed": lambda: build_der(rsa_key, subject=_name("EX1"), signer=other_rsa_key),
    }
    der = ders[case]()
    facts = parse_certificate(der)
    for name, value in expected.items():
        assert getattr(facts, name) == value, name
    assert facts.thumbprint == hashlib.sha1(der).hexdigest().upper()
    assert facts.der == der
    assert facts.signature_hash == "sha256"


def test_parse_certificate_names_dates_and_serial(rsa_key: Any) -> None:
    der = build_der(rsa_key, subject=_name("mail.contoso.lab", "Contoso"), serial=0x80FF, days=(-10, 355))
    facts = parse_certificate(der)
    assert facts.subject == "CN=mail.contoso.lab,O=Contoso,C=US"
    assert facts.serial_number == "0080FF"  # DER INTEGER bytes, like Windows' SerialNumber
    assert facts.not_before == NOW - datetime.timedelta(days=10)
    assert facts.not_before.tzinfo is not None
    assert facts.lifetime_days() == 365
    assert facts.common_name == "mail.contoso.lab"
    public_der = rsa_key.public_key().public_bytes(serialization.Encoding.DER,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    assert facts.public_key_sha256 == hashlib.sha256(public_der).hexdigest()


@pytest.mark.parametrize(
    ("now", "days"),
    [
        (NOW, 355),
        (NOW + datetime.timedelta(days=354, hours=23), 0),
        (NOW + datetime.timedelta(days=355, seconds=1), -1),
        (NOW + datetime.timedelta(days=400), -45),
    ],
)
def test_days_remaining_floors(now: datetime.datetime, days: int, rsa_key: Any) -> None:
    facts = parse_certificate(build_der(rsa_key, subject=_name("x")))
    assert facts.days_remaining(now) == days
    assert facts.is_expired(now) == (days < 0)


def test_parse_sha1_certificate_from_the_lab_factory() -> None:
    issued = make_certificate(CertificateSpec("CN=old.contoso.lab", dns_names=("old.contoso.lab",),
                                              signature_hash="sha1"),
                              now=NOW, authorities=AuthorityRegistry(now=NOW))
    facts = parse_certificate(issued.der())
    assert facts.signature_hash == "sha1"
    assert facts.thumbprint == issued.thumbprint
    assert facts.issuer == "CN=Contoso Lab Issuing CA"
    assert not facts.is_self_signed


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "certificate data is empty"),
        (b"\x30\x03\x02\x01\x00", "not a valid DER X.509 certificate (5 bytes)"),
        (b"-----BEGIN CERTIFICATE-----", "not a valid DER X.509 certificate"),
    ],
)
def test_parse_certificate_rejects_malformed_der(der: bytes, message: str) -> None:
    with pytest.raises(CertificateParseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_certificate(der)


def test_parse_certificate_rejects_truncated_der(rsa_key: Any) -> None:
    der = build_der(rsa_key, subject=_name("x"))
    with pytest.raises(CertificateParseError, match=f"{len(der) - 10} bytes"):
        parse_certificate(der[:-10])


@pytest.mark.parametrize("der", ["MIIB", bytearray(b"0"), None, 12])
def test_parse_certificate_rejects_what_is_not_bytes(der: Any) -> None:
    with pytest.raises(CertificateParseError, match="certificate data must be bytes, got "):
        parse_certificate(der)


# --- certificates that are only partly readable -----------------------------------------------------
# Built by patching bytes of a certificate made with CertificateBuilder (which refuses to make them); the
# patched certificate's signature no longer verifies, which parse_certificate does not need.


def _patched(der: bytes, old: bytes, new: bytes) -> bytes:
    assert der.count(old) == 1 and len(old) == len(new)
    return der.replace(old, new)


def test_a_negative_serial_number_is_read_as_its_der_bytes(rsa_key: Any) -> None:
    # Observed: OverflowError ("can't convert negative int to unsigned"); RFC 5280 forbids it, CAs did it.
    der = _patched(build_der(rsa_key, subject=_name("neg"), serial=0x1A2B), b"\x02\x02\x1a\x2b", b"\x02\x02\xe5\xd5")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cryptography's deprecation warning must not escape either
        facts = parse_certificate(der)
    assert facts.serial_number == "E5D5"  # two's complement, like Windows' SerialNumber
    assert facts.problems == () and facts.is_complete and facts.key_type == "rsa"


@pytest.mark.parametrize(
    ("number", "text"),
    [(0x1A2B, "1A2B"), (0x80FF, "0080FF"), (0x80, "0080"), (0x7F, "7F"), (0, "00"), (-1, "FF"), (-0x80, "80"),
     (-0x81, "FF7F"), (-0x1A2B, "E5D5"), (-(2**159), "80" + "00" * 19), (2**159, "00" + "80" + "00" * 19)],
)
def test_serial_hex_is_the_minimal_twos_complement_encoding(number: int, text: str) -> None:
    assert serial_hex(number) == text
    assert int.from_bytes(bytes.fromhex(text), "big", signed=True) == number


def test_a_duplicate_extension_keeps_the_readable_facts(rsa_key: Any) -> None:
    # IssuerAltName (2.5.29.18) renamed to SubjectAltName (2.5.29.17): two SAN extensions.
    builder = (
        x509.CertificateBuilder().subject_name(_name("dup")).issuer_name(_name("dup"))
        .public_key(rsa_key.public_key()).serial_number(7)
        .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.contoso.lab")]), critical=False)
        .add_extension(x509.IssuerAlternativeName([x509.DNSName("evil.contoso.lab")]), critical=False)
    )
    der = builder.sign(rsa_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    der = _patched(der, b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11")
    facts = parse_certificate(der)
    assert facts.problems == ("extensions: duplicate extension 2.5.29.17",)
    assert not facts.is_complete
    assert (facts.dns_names, facts.ekus) == (None, None)
    assert facts.thumbprint == sha1_thumbprint(der) == hashlib.sha1(der).hexdigest().upper()
    assert (facts.subject, facts.serial_number, facts.key_type, facts.key_size) == ("CN=dup", "07", "rsa", 2048)
    assert facts.not_after == NOW + datetime.timedelta(days=30)
    assert facts.is_self_signed is False  # the patched signature no longer verifies
    # What the rules ask of such a certificate: unknown, never an exception.
    assert facts.allows_server_auth is None
    assert facts.covers("mail.contoso.lab") is False
    assert facts.days_remaining(NOW) == 30


def test_facts_methods_are_safe_on_unknown_parts(rsa_key: Any) -> None:
    facts = dataclasses.replace(parse_certificate(build_der(rsa_key, subject=_name("x"), dns_names=("x.lab",))),
                                dns_names=None, ekus=None, key_type=None, key_size=None, signature_hash=None,
                                is_self_signed=None, public_key_sha256=None, problems=("public key: test",))
    assert facts.allows_server_auth is None
    assert facts.covers("x.lab") is False
    assert facts.common_name == "x"
    assert facts.lifetime_days() == 365 and not facts.is_expired(NOW) and not facts.is_not_yet_valid(NOW)


def test_sha1_thumbprint_never_raises() -> None:
    assert sha1_thumbprint(b"") == "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
    assert sha1_thumbprint(bytearray(b"abc")) == "A9993E364706816ABA3E25717850C26C9CD0D89D"
    assert sha1_thumbprint(memoryview(b"abc")) == "A9993E364706816ABA3E25717850C26C9CD0D89D"


# --- normalize_thumbprint -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        THUMBPRINT,
        THUMBPRINT.lower(),
        " ".join(THUMBPRINT[i:i + 2] for i in range(0, 40, 2)),
        ":".join(THUMBPRINT[i:i + 2] for i in range(0, 40, 2)),
        "\u200e" + THUMBPRINT.lower(),  # certmgr's copy of the Thumbprint field
        THUMBPRINT[:20] + "\u200f\ufeff\u200b" + THUMBPRINT[20:],
        f"  {THUMBPRINT}\n",
        THUMBPRINT[:10] + "\u00a0" + THUMBPRINT[10:],
    ],
    ids=["plain", "lowercase", "spaces", "colons", "lrm", "rlm-bom-zwsp", "padded", "nbsp"],
)
def test_normalize_thumbprint(text: str) -> None:
    assert normalize_thumbprint(text) == THUMBPRINT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (THUMBPRINT[:-1], r"expected 40 hexadecimal digits \(SHA-1\), got 39"),
        (THUMBPRINT + "0", "got 41"),
        ("", "got 0"),
        (THUMBPRINT[:-1] + "G", r"character 'G' \(U\+0047\) at position 40 is not a hexadecimal digit"),
        (THUMBPRINT[:5] + "-" + THUMBPRINT[5:], r"character '-' \(U\+002D\) at position 6"),
        ("9F1C" + "\u0130" + THUMBPRINT[5:], r"U\+0130"),
    ],
)
def test_normalize_thumbprint_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_thumbprint(text)


# --- distinguished names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "CN=mail.contoso.lab, O=Contoso, C=US",  # Windows (X509Certificate2.Subject)
        "CN=mail.contoso.lab,O=Contoso,C=US",  # RFC 4514
        "C=US, O=Contoso, CN=mail.contoso.lab",  # X.500 order (New-ExchangeCertificate -SubjectName)
        "c=us,o=CONTOSO,cn=Mail.Contoso.Lab",
        "CN = mail.contoso.lab ;  O=Contoso;C=US",
        "OID.2.5.4.3=mail.contoso.lab, O=Contoso, C=US",
    ],
)
def test_same_name_accepts_windows_and_rfc4514_forms(written: str) -> None:
    encoded = name_of(_name("mail.contoso.lab", "Contoso"))
    assert same_name(parse_distinguished_name(written), encoded)


@pytest.mark.parametrize(
    "written",
    ["CN=mail.contoso.lab, O=Fabrikam, C=US", "CN=mail.contoso.lab", "CN=mail.contoso.lab, C=US, O=Contoso"],
)
def test_same_name_rejects_other_names(written: str) -> None:
    assert not same_name(parse_distinguished_name(written), name_of(_name("mail.contoso.lab", "Contoso")))


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("CN=mail.contoso.lab,O=Contoso,C=US", "mail.contoso.lab"),
        ("C=US, O=Contoso, CN=Mail.Contoso.lab", "Mail.Contoso.lab"),  # Windows order, case kept
        ("CN=Contoso\\, Inc,O=Contoso", "Contoso, Inc"),  # an escaped comma is part of the value
        ('CN="Contoso, Inc", O=Contoso', "Contoso, Inc"),  # Windows quoting
        ("commonName=ex1,O=Contoso", "ex1"),
        ("O=Contoso,C=US", None),
        ("", None),
    ],
)
def test_common_name_is_the_first_cn_as_written(subject: str, expected: str | None) -> None:
    assert common_name(subject) == expected


def test_parse_distinguished_name_quoting_and_multivalued_rdns() -> None:
    encoded = name_of(x509.Name([
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso, Inc."),
                                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "IT")]),
        x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "mail")]),
    ]))
    assert same_name(parse_distinguished_name('CN=mail, O="Contoso, Inc."+OU=IT'), encoded)
    assert same_name(parse_distinguished_name(r"CN=mail,OU=IT+O=Contoso\, Inc."), encoded)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty distinguished name"), ("CN=a, mail", "'mail' is not an attribute=value pair"),
     ("XX=a", "unknown attribute type 'XX'"), ('CN="a', "unbalanced double quote")],
)
def test_parse_distinguished_name_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_distinguished_name(text)


# --- RFC 6125 name matching -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("mail.contoso.com", "mail.contoso.com", True),
        ("Mail.Contoso.com.", "mail.contoso.COM", True),
        ("*.contoso.com", "mail.contoso.com", True),
        ("*.contoso.com", "contoso.com", False),  # never the bare domain
        ("*.contoso.com", "a.mail.contoso.com", False),  # one label only
        ("m*.contoso.com", "mail.contoso.com", False),  # no partial-label wildcards
        ("*mail.contoso.com", "webmail.contoso.com", False),
        ("mail.*.com", "mail.contoso.com", False),  # only the left-most label
        ("*.com", "contoso.com", False),  # not over a single remaining label
        ("*.contoso.com", "*.contoso.com", True),
        ("autodiscover.contoso.com", "mail.contoso.com", False),
    ],
)
def test_dns_name_matches(pattern: str, host: str, matches: bool) -> None:
    assert dns_name_matches(pattern, host) is matches


# --- LocatedCertificate ---------------------------------------------------------------------------


def test_located_certificate_prefers_the_store_and_falls_back_to_exchange(rsa_key: Any) -> None:
    der = build_der(rsa_key, subject=_name("mail"))
    facts = parse_certificate(der)
    exchange = ExchangeCertificateRecord(raw_data=der, has_private_key=True, private_key_exportable=True,
                                         friendly_name="from exchange", status="Valid", services=("IIS",))
    store = StoreCertificate(store="My", thumbprint=facts.thumbprint, raw_data=der, friendly_name=None,
                             has_private_key=True, key_provider="cng", key_exportable=False,
                             network_service_can_read_key=False)
    both = LocatedCertificate(facts, "My", exchange=exchange, store_entry=store)
    assert (both.private_key_exportable, both.friendly_name, both.key_provider) == (False, "from exchange", "cng")
    assert both.services == ("IIS",) and both.status == "Valid" and not both.is_pending_request
    only_exchange = LocatedCertificate(facts, "My", exchange=exchange)
    assert (only_exchange.private_key_exportable, only_exchange.key_provider) == (True, None)
    nothing = LocatedCertificate(facts, "My")
    assert (nothing.has_private_key, nothing.status, nothing.services) == (None, None, ())
    assert LocatedCertificate(facts, "REQUEST").is_pending_request


def test_parse_certificate_names_the_missing_library(monkeypatch: pytest.MonkeyPatch, rsa_key: Any) -> None:
    monkeypatch.setattr(_certificate, "HAS_CRYPTOGRAPHY", False)
    with pytest.raises(ExchangePkiError, match=r"requires the Python library cryptography >= 42\.0"):
        parse_certificate(build_der(rsa_key, subject=_name("x")))
