# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keys, certificates from specs, lab CAs, CSRs and request placeholders (tests/lab/pki)."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tests.lab import pki
from tests.lab.tests.pki_fixtures import MAIL, NOW, lab_authorities, lab_leaf, verify_server

WEAK_HASHES = {"sha1": hashes.SHA1, "md5": hashes.MD5}


@pytest.fixture
def authorities() -> pki.AuthorityRegistry:
    return lab_authorities()


@pytest.fixture
def leaf() -> pki.IssuedCertificate:
    return lab_leaf()


def san(certificate: x509.Certificate) -> list[str]:
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


def make(authorities: pki.AuthorityRegistry, **spec: object) -> pki.IssuedCertificate:
    spec.setdefault("subject", f"CN={MAIL}")
    spec.setdefault("dns_names", (MAIL,))
    return pki.make_certificate(pki.CertificateSpec(**spec), now=NOW, authorities=authorities)  # type: ignore[arg-type]


# ---- keys --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "key_size", "expected"),
    [
        ("rsa", 1024, rsa.RSAPrivateKey),
        ("rsa", 2048, rsa.RSAPrivateKey),
        ("ec", 256, ec.SECP256R1),
        ("ec", 384, ec.SECP384R1),
        ("ec", 521, ec.SECP521R1),
    ],
)
def test_generate_key(key_type: pki.KeyType, key_size: int, expected: type) -> None:
    key = pki.generate_key(key_type, key_size)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert isinstance(key.curve, expected)
    else:
        assert isinstance(key, expected)
    assert key.key_size == key_size


@pytest.mark.parametrize(
    ("key_type", "key_size", "message"),
    [("rsa", 512, "unsupported RSA key size 512"), ("ec", 224, "unsupported EC key size 224"), ("dsa", 2048, "'dsa'")],
)
def test_generate_key_rejects_unsupported(key_type: pki.KeyType, key_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pki.generate_key(key_type, key_size)


def test_key_pool_same_label_same_key_until_limit_then_round_robin() -> None:
    pool = pki.KeyPool(limit=2)
    first, second = pool.key("ec", 256, "ex1/iis"), pool.key("ec", 256, "ex1/smtp")
    assert pool.key("ec", 256, "ex1/iis") is first
    assert first is not second
    assert [pool.key("ec", 256, label) for label in ("ex2/iis", "ex2/smtp")] == [first, second]
    assert pool.key("ec", 384, "ex1/iis") is not first


def test_unbounded_key_pool_gives_every_label_its_own_key() -> None:
    pool = pki.KeyPool(limit=None)
    keys = [pool.key("ec", 256, str(label)) for label in range(5)]
    assert len({id(key) for key in keys}) == 5


def test_key_pool_rejects_a_zero_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pki.KeyPool(limit=0)


def test_generate_key_with_cache_key_uses_the_process_pool() -> None:
    key = pki.generate_key("ec", 256, cache_key="test-pki/shared")
    assert pki.generate_key("ec", 256, cache_key="test-pki/shared") is key
    assert pki.DEFAULT_KEY_POOL.key("ec", 256, "test-pki/shared") is key


def test_certificates_sharing_a_pooled_key_have_distinct_serials_and_thumbprints(
    authorities: pki.AuthorityRegistry,
) -> None:
    key = pki.KeyPool().key("ec", 256, "fleet")
    issued = [
        pki.make_certificate(pki.CertificateSpec(f"CN=ex{n}"), now=NOW, authorities=authorities, key=key)
        for n in range(3)
    ]
    assert len({item.certificate.serial_number for item in issued}) == 3
    assert len({item.thumbprint for item in issued}) == 3
    assert all(item.certificate.public_key() == key.public_key() for item in issued)


def test_key_info_defaults_describe_a_non_exportable_csp_key() -> None:
    assert pki.KeyInfo() == pki.KeyInfo(provider="csp", exportable=False, network_service_read=True)


# ---- certificates from specs -------------------------------------------------------------------------


def test_thumbprint_is_uppercase_sha1_of_the_der(leaf: pki.IssuedCertificate) -> None:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(leaf.der())
    assert pki.thumbprint(leaf.certificate) == leaf.thumbprint == digest.finalize().hex().upper()


def test_lab_ca_leaf_has_the_spec_fields_and_verifies_to_the_lab_root(
    authorities: pki.AuthorityRegistry, leaf: pki.IssuedCertificate
) -> None:
    certificate = leaf.certificate
    assert certificate.subject.rfc4514_string() == "CN=mail.contoso.lab,O=Contoso,C=US"
    assert certificate.issuer.rfc4514_string() == "CN=Contoso Lab Issuing CA"
    assert san(certificate) == [MAIL, "autodiscover.contoso.lab"]
    assert certificate.not_valid_before_utc == NOW - timedelta(days=1)
    assert certificate.not_valid_after_utc == NOW + timedelta(days=365)
    assert certificate.signature_hash_algorithm is not None and certificate.signature_hash_algorithm.name == "sha256"
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert [cert.subject.rfc4514_string() for cert in leaf.chain] == [
        "CN=Contoso Lab Issuing CA",
        "CN=Contoso Lab Root CA",
    ]
    verify_server(certificate, leaf.chain, authorities.trust_anchors())


@pytest.mark.parametrize(
    ("not_before", "not_after", "valid_at"),
    [
        pytest.param(timedelta(days=-300), timedelta(days=-35), timedelta(days=-40), id="expired"),
        pytest.param(timedelta(days=2), timedelta(days=400), timedelta(days=3), id="not-yet-valid"),
    ],
)
def test_out_of_date_certificates_fail_verification_now(
    authorities: pki.AuthorityRegistry, not_before: timedelta, not_after: timedelta, valid_at: timedelta
) -> None:
    issued = make(authorities, not_before=not_before, not_after=not_after)
    assert issued.certificate.not_valid_before_utc == NOW + not_before
    assert issued.certificate.not_valid_after_utc == NOW + not_after
    with pytest.raises(VerificationError):
        verify_server(issued.certificate, issued.chain, authorities.trust_anchors())
    verify_server(issued.certificate, issued.chain, authorities.trust_anchors(), at=NOW + valid_at)


@pytest.mark.parametrize("issuer", ["self", "lab-ca"])
@pytest.mark.parametrize("signature_hash", ["sha1", "md5"])
def test_weak_hash_certificates_verify_with_the_issuer_key(
    authorities: pki.AuthorityRegistry, issuer: str, signature_hash: str
) -> None:
    issued = make(authorities, issuer=issuer, signature_hash=signature_hash, key_size=1024)
    certificate = issued.certificate
    assert certificate.signature_hash_algorithm is not None
    assert certificate.signature_hash_algorithm.name == signature_hash
    signer = authorities.lab_ca.certificate if issuer == "lab-ca" else certificate
    public_key = signer.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(
        certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(), WEAK_HASHES[signature_hash]()
    )
    assert san(certificate) == [MAIL]


@pytest.mark.parametrize("signature_hash", ["sha384", "sha512"])
def test_strong_hashes_other_than_sha256(authorities: pki.AuthorityRegistry, signature_hash: str) -> None:
    issued = make(authorities, signature_hash=signature_hash)
    assert issued.certificate.signature_hash_algorithm is not None
    assert issued.certificate.signature_hash_algorithm.name == signature_hash
    verify_server(issued.certificate, issued.chain, authorities.trust_anchors())


def test_ec_leaf_from_the_rsa_lab_ca_verifies(authorities: pki.AuthorityRegistry) -> None:
    issued = make(authorities, key_type="ec", key_size=384)
    public_key = issued.certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP384R1)
    verify_server(issued.certificate, issued.chain, authorities.trust_anchors())


def test_weak_hash_needs_an_rsa_signer(authorities: pki.AuthorityRegistry) -> None:
    with pytest.raises(ValueError, match="sha1 signatures are only supported with RSA signing keys"):
        make(authorities, issuer="self", key_type="ec", key_size=256, signature_hash="sha1")


def test_self_signed_certificate(authorities: pki.AuthorityRegistry) -> None:
    issued = make(authorities, subject="CN=EX1", dns_names=("EX1", "ex1.contoso.lab"), issuer="self")
    certificate = issued.certificate
    assert issued.chain == ()
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)


def test_ca_spec_gets_ca_basic_constraints(authorities: pki.AuthorityRegistry) -> None:
    issued = make(authorities, subject="CN=Sub CA", dns_names=(), ekus=(), is_ca=True)
    constraints = issued.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    with pytest.raises(x509.ExtensionNotFound):
        issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_ekus_by_name_or_dotted_oid_and_none_at_all(authorities: pki.AuthorityRegistry) -> None:
    issued = make(authorities, ekus=("client_auth", "1.3.6.1.4.1.311.20.2.2"))
    eku = issued.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [oid.dotted_string for oid in eku] == ["1.3.6.1.5.5.7.3.2", "1.3.6.1.4.1.311.20.2.2"]
    no_eku = make(authorities, ekus=())
    with pytest.raises(x509.ExtensionNotFound):
        no_eku.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({"ekus": ("server-auth",)}, ValueError, "unknown extended key usage 'server-auth'"),
        ({"subject": "CN"}, ValueError, "invalid subject 'CN'"),
        ({"issuer": "nope"}, pki.UnknownAuthority, "unknown certificate authority 'nope' \\(known: lab-ca, lab-root"),
        ({"signature_hash": "sha224"}, ValueError, "unsupported signature hash 'sha224'"),
    ],
)
def test_bad_specs_are_rejected(
    authorities: pki.AuthorityRegistry, spec: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make(authorities, **spec)


def test_explicit_serial_number(authorities: pki.AuthorityRegistry) -> None:
    assert make(authorities, serial_number=0x1234).certificate.serial_number == 0x1234


def test_issued_certificate_encodings(leaf: pki.IssuedCertificate) -> None:
    assert leaf.der() == leaf.certificate.public_bytes(serialization.Encoding.DER)
    assert pki.load_certificates(leaf.pem_chain()) == [leaf.certificate, *leaf.chain]
    key = serialization.load_pem_private_key(leaf.key_pem(), password=None)
    assert key.public_key() == leaf.certificate.public_key()


# ---- authorities -------------------------------------------------------------------------------------


def test_registry_holds_a_two_level_lab_pki(authorities: pki.AuthorityRegistry) -> None:
    root, issuing = authorities.get(pki.LAB_ROOT), authorities.get(pki.LAB_CA)
    assert authorities.lab_ca is issuing
    assert authorities.trust_anchors() == [root.certificate]
    assert issuing.chain == (root.certificate,) and root.chain == ()
    assert issuing.path == (issuing.certificate, root.certificate)
    issuing.certificate.verify_directly_issued_by(root.certificate)
    assert issuing.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert [authority.name for authority in authorities] == [pki.LAB_ROOT, pki.LAB_CA]
    assert pki.LAB_CA in authorities and "other" not in authorities


def test_registry_organization_names_the_cas() -> None:
    registry = pki.AuthorityRegistry(now=NOW, organization="Fabrikam")
    assert registry.lab_ca.certificate.subject.rfc4514_string() == "CN=Fabrikam Lab Issuing CA"
    assert registry.trust_anchors()[0].subject.rfc4514_string() == "CN=Fabrikam Lab Root CA"


def test_certificate_from_an_expired_ca_fails_verification() -> None:
    registry = pki.AuthorityRegistry(now=NOW)
    expired = registry.add(
        "old-ca",
        subject="CN=Old Issuing CA",
        not_before=timedelta(days=-800),
        not_after=timedelta(days=-1),
        parent=pki.LAB_ROOT,
    )
    assert expired.chain == (registry.get(pki.LAB_ROOT).certificate,)
    issued = make(registry, issuer="old-ca")
    assert issued.chain == expired.path
    with pytest.raises(VerificationError):
        verify_server(issued.certificate, issued.chain, registry.trust_anchors())


def test_untrusted_third_party_root_is_not_a_trust_anchor() -> None:
    registry = pki.AuthorityRegistry(now=NOW)
    registry.add(
        "elsewhere",
        subject="CN=Elsewhere Root,O=Elsewhere",
        not_before=timedelta(days=-1),
        not_after=timedelta(days=3650),
        trusted=False,
    )
    issued = make(registry, issuer="elsewhere")
    assert registry.trust_anchors() == [registry.get(pki.LAB_ROOT).certificate]
    with pytest.raises(VerificationError):
        verify_server(issued.certificate, issued.chain, registry.trust_anchors())
    verify_server(issued.certificate, issued.chain, [registry.get("elsewhere").certificate])


@pytest.mark.parametrize("name", [pki.LAB_CA, "self"])
def test_registry_rejects_a_taken_name(authorities: pki.AuthorityRegistry, name: str) -> None:
    with pytest.raises(ValueError, match="reserved or already in use"):
        authorities.add(name, subject="CN=X", not_before=timedelta(0), not_after=timedelta(days=1))


def test_registry_add_under_an_unknown_parent(authorities: pki.AuthorityRegistry) -> None:
    with pytest.raises(pki.UnknownAuthority, match="'missing'"):
        authorities.add("child", subject="CN=X", not_before=timedelta(0), not_after=timedelta(1), parent="missing")


# ---- requests ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def request_key() -> rsa.RSAPrivateKey:
    key = pki.generate_key("rsa", 2048)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def test_build_csr_round_trip(request_key: rsa.RSAPrivateKey) -> None:
    der = pki.build_csr(request_key, subject="C=US,O=Contoso,CN=mail.contoso.lab", dns_names=(MAIL, "owa.contoso.lab"))
    csr = pki.parse_csr(der)
    assert csr.is_signature_valid
    assert csr.public_key() == request_key.public_key()
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == MAIL
    assert csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [MAIL, "owa.contoso.lab"]


def test_sha1_csr(request_key: rsa.RSAPrivateKey) -> None:
    csr = pki.parse_csr(pki.build_csr(request_key, subject="CN=ex1", signature_hash="sha1"))
    assert csr.signature_hash_algorithm is not None and csr.signature_hash_algorithm.name == "sha1"
    assert pki.csr_signature_valid(csr)


@pytest.mark.parametrize("encoding", ["der", "pem", "new-pem", "base64"])
def test_parse_csr_encodings(request_key: rsa.RSAPrivateKey, encoding: str) -> None:
    csr = x509.load_der_x509_csr(pki.build_csr(request_key, subject="CN=ex1"))
    pem = csr.public_bytes(serialization.Encoding.PEM)
    data = {
        "der": csr.public_bytes(serialization.Encoding.DER),
        "pem": pem,
        "new-pem": pem.replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"),
        "base64": b"".join(pem.splitlines()[1:-1]),
    }[encoding]
    assert pki.parse_csr(data) == csr


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a request", "malformed certificate request: neither PEM, base64 nor DER"),
        (b"\x30\x03\x02\x01", "malformed certificate request \\(DER PKCS#10\\)"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "malformed certificate request \\(PEM PKCS#10\\)",
        ),
    ],
)
def test_parse_csr_rejects_malformed_data(data: bytes, message: str) -> None:
    with pytest.raises(pki.PkiError, match=message):
        pki.parse_csr(data)


def test_placeholder_for_request_carries_the_request_key(request_key: rsa.RSAPrivateKey) -> None:
    subject = "CN=mail.contoso.lab,O=Contoso"
    csr = pki.parse_csr(pki.build_csr(request_key, subject=subject))
    placeholder = pki.placeholder_for_request(request_key, subject, now=NOW)
    assert placeholder.public_key() == csr.public_key()
    assert placeholder.subject == placeholder.issuer == csr.subject
    assert placeholder.not_valid_before_utc == NOW
    placeholder.verify_directly_issued_by(placeholder)


def test_issue_from_csr_copies_subject_and_sans(
    authorities: pki.AuthorityRegistry, request_key: rsa.RSAPrivateKey
) -> None:
    csr = pki.parse_csr(pki.build_csr(request_key, subject="CN=mail.contoso.lab", dns_names=(MAIL,)))
    certificate = authorities.lab_ca.issue_from_csr(csr, now=NOW, validity=timedelta(days=730), ekus=("server_auth",))
    assert certificate.subject == csr.subject and san(certificate) == [MAIL]
    assert certificate.public_key() == request_key.public_key()
    assert certificate.not_valid_before_utc == NOW - timedelta(minutes=10)
    assert certificate.not_valid_after_utc == NOW + timedelta(days=730)
    verify_server(certificate, authorities.lab_ca.path, authorities.trust_anchors())


def test_issue_from_csr_caps_validity_at_the_ca(authorities: pki.AuthorityRegistry) -> None:
    csr = pki.parse_csr(pki.build_csr(pki.generate_key("ec", 256), subject="CN=long"))
    certificate = authorities.lab_ca.issue_from_csr(csr, now=NOW, validity=timedelta(days=100 * 365), ekus=())
    assert certificate.not_valid_after_utc == authorities.lab_ca.certificate.not_valid_after_utc


@pytest.mark.parametrize(("key_type", "key_size", "signature_hash"), [("ec", 256, "sha256"), ("rsa", 1024, "sha1")])
def test_issue_from_csr_rejects_a_bad_signature(
    authorities: pki.AuthorityRegistry, key_type: pki.KeyType, key_size: int, signature_hash: pki.SignatureHash
) -> None:
    key = pki.generate_key(key_type, key_size)
    der = bytearray(pki.build_csr(key, subject="CN=tampered", signature_hash=signature_hash))
    der[-1] ^= 0x01
    csr = pki.parse_csr(bytes(der))
    assert not pki.csr_signature_valid(csr)
    with pytest.raises(pki.PkiError, match="signature is invalid"):
        authorities.lab_ca.issue_from_csr(csr, now=NOW, validity=timedelta(1), ekus=())


def test_issue_from_csr_rejects_keys_windows_cannot_hold(authorities: pki.AuthorityRegistry) -> None:
    csr = ed25519_csr()
    assert pki.csr_signature_valid(csr)
    with pytest.raises(pki.PkiError, match="unsupported Ed25519PublicKey key"):
        authorities.lab_ca.issue_from_csr(csr, now=NOW, validity=timedelta(1), ekus=())


def ed25519_csr() -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(ed25519.Ed25519PrivateKey.generate(), None)


def test_an_ip_address_name_becomes_an_ip_san_that_tls_verification_accepts() -> None:
    registry = pki.AuthorityRegistry(now=NOW)
    spec = pki.CertificateSpec("CN=ex1.contoso.lab", dns_names=("ex1.contoso.lab", "127.0.0.1"))
    issued = pki.make_certificate(spec, now=NOW, authorities=registry)
    san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["ex1.contoso.lab"]
    verifier = (PolicyBuilder().store(Store(registry.trust_anchors())).time(NOW)
                .build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1"))))
    verifier.verify(issued.certificate, list(issued.chain))
