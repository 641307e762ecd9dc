# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AD CS-like enrolment behind certreq (tests/lab/pki)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.lab import pki
from tests.lab.tests.pki_fixtures import MAIL, NOW, lab_authorities, verify_server

CONFIG = pki.DEFAULT_CONFIG
TEMPLATES = {
    "WebServer": pki.TemplateSpec("WebServer"),
    "ExchangeManual": pki.TemplateSpec("ExchangeManual", approval="manual", validity=timedelta(days=365)),
    "Forbidden": pki.TemplateSpec("Forbidden", approval="deny"),
}


@pytest.fixture(scope="module")
def csr() -> bytes:
    return pki.build_csr(pki.generate_key("ec", 256), subject="CN=mail.contoso.lab", dns_names=(MAIL,))


@pytest.fixture
def ca() -> pki.Enrolment:
    return pki.Enrolment(lab_authorities().lab_ca, config=CONFIG, templates=TEMPLATES)


def tampered(csr: bytes) -> bytes:
    return csr[:-1] + bytes([csr[-1] ^ 0x01])


@pytest.mark.parametrize(
    ("config", "template", "attributes", "body", "status", "has_id", "disposition"),
    [
        pytest.param(CONFIG, "WebServer", (), "csr", "Issued", True, "Issued", id="auto-issue"),
        pytest.param(
            CONFIG, None, ("CertificateTemplate:WebServer",), "csr", "Issued", True, "Issued", id="template-attribute"
        ),
        pytest.param(
            CONFIG,
            None,
            ("SAN:dns=mail.contoso.lab\ncertificatetemplate: webserver",),
            "csr",
            "Issued",
            True,
            "Issued",
            id="attribute-lines-any-case",
        ),
        pytest.param(CONFIG.upper(), "WebServer", (), "csr", "Issued", True, "Issued", id="config-any-case"),
        pytest.param(CONFIG, "ExchangeManual", (), "csr", "Pending", True, "Taken Under Submission", id="manual"),
        pytest.param(CONFIG, "Forbidden", (), "csr", "Denied", True, "Denied by Policy Module", id="deny"),
        pytest.param(CONFIG, "User", (), "csr", "Denied", True, pki.UNSUPPORTED_TEMPLATE, id="unknown-template"),
        pytest.param(CONFIG, None, (), "csr", "Denied", True, "CERTSRV_E_NO_CERT_TYPE", id="no-template"),
        pytest.param(
            "ca02.contoso.lab\\Other CA",
            "WebServer",
            (),
            "csr",
            "Failed",
            False,
            "The RPC server is unavailable. 0x800706ba",
            id="wrong-config",
        ),
        pytest.param(
            CONFIG, "WebServer", (), "garbage", "Failed", False, "malformed certificate request", id="malformed-csr"
        ),
        pytest.param(CONFIG, "WebServer", (), "tampered", "Failed", True, "NTE_BAD_SIGNATURE", id="bad-signature"),
    ],
)
def test_submit(
    ca: pki.Enrolment,
    csr: bytes,
    config: str,
    template: str | None,
    attributes: tuple[str, ...],
    body: str,
    status: str,
    has_id: bool,
    disposition: str,
) -> None:
    data = {"csr": csr, "garbage": b"not a request", "tampered": tampered(csr)}[body]
    result = ca.submit(data, config=config, template=template, attributes=attributes, now=NOW)
    assert result.status == status
    assert (result.request_id is not None) == has_id
    assert disposition in result.disposition
    assert (result.certificate is not None) == (status == "Issued")


def test_issued_certificate_follows_the_request_and_template(ca: pki.Enrolment, csr: bytes) -> None:
    certificate = ca.submit(csr, config=CONFIG, template="WebServer", now=NOW).certificate
    assert certificate is not None
    request = pki.parse_csr(csr)
    assert certificate.subject == request.subject and certificate.public_key() == request.public_key()
    assert certificate.not_valid_after_utc == NOW + timedelta(days=730)
    assert list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    verify_server(certificate, ca.authority.path, lab_authorities().trust_anchors())


def test_pending_request_is_issued_after_approval(ca: pki.Enrolment, csr: bytes) -> None:
    pending = ca.submit(csr, config=CONFIG, template="ExchangeManual", now=NOW)
    assert pending.request_id is not None
    assert ca.retrieve(pending.request_id, config=CONFIG, now=NOW) == pending
    later = NOW + timedelta(hours=3)
    approved = ca.approve(pending.request_id, now=later)
    assert (approved.status, approved.request_id, approved.disposition) == ("Issued", pending.request_id, "Issued")
    assert approved.certificate is not None
    assert approved.certificate.not_valid_after_utc == later + timedelta(days=365)
    assert ca.retrieve(pending.request_id, config=CONFIG, now=later) == approved


def test_denied_pending_request_stays_denied(ca: pki.Enrolment, csr: bytes) -> None:
    request_id = ca.submit(csr, config=CONFIG, template="ExchangeManual", now=NOW).request_id
    assert request_id is not None
    assert ca.deny(request_id).status == "Denied"
    retrieved = ca.retrieve(request_id, config=CONFIG, now=NOW)
    assert (retrieved.status, retrieved.certificate) == ("Denied", None)
    assert retrieved.disposition == "Denied by Policy Module"


@pytest.mark.parametrize("decide", ["approve", "deny"])
def test_only_pending_requests_can_be_decided(ca: pki.Enrolment, csr: bytes, decide: str) -> None:
    issued = ca.submit(csr, config=CONFIG, template="WebServer", now=NOW).request_id
    assert issued is not None
    actions = {"approve": lambda rid: ca.approve(rid, now=NOW), "deny": ca.deny}
    with pytest.raises(pki.PkiError, match=f"certificate request {issued} is not pending \\(it is Issued\\)"):
        actions[decide](issued)
    with pytest.raises(pki.PkiError, match="no certificate request with id 4242"):
        actions[decide](4242)


def test_retrieve_unknown_request_or_wrong_config(ca: pki.Enrolment) -> None:
    unknown = ca.retrieve(4242, config=CONFIG, now=NOW)
    assert (unknown.status, unknown.request_id) == ("Failed", 4242)
    assert "CRYPT_E_NOT_FOUND" in unknown.disposition
    assert ca.retrieve(4242, config="elsewhere\\CA", now=NOW).disposition.startswith("The RPC server is unavailable")


def test_request_ids_count_up_from_a_realistic_start(ca: pki.Enrolment, csr: bytes) -> None:
    templates = ("WebServer", "User", "Forbidden")
    ids = [ca.submit(csr, config=CONFIG, template=name, now=NOW).request_id for name in templates]
    assert ids == [1001, 1002, 1003]
    assert ca.submit(b"junk", config=CONFIG, template="WebServer", now=NOW).request_id is None
    assert ca.submit(csr, config=CONFIG, template="WebServer", now=NOW).request_id == 1004


def test_request_for_an_unsupported_key_fails(ca: pki.Enrolment) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed")])
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(name).sign(ed25519.Ed25519PrivateKey.generate(), None)
    )
    result = ca.submit(request.public_bytes(serialization.Encoding.DER), config=CONFIG, template="WebServer", now=NOW)
    assert (result.status, result.request_id, result.certificate) == ("Failed", 1001, None)
    assert result.disposition.endswith("unsupported Ed25519PublicKey key. 0x80090005 (-2146893819 NTE_BAD_DATA)")


def test_expired_ca_fails_issuance(csr: bytes) -> None:
    authorities = pki.AuthorityRegistry(now=NOW)
    expired = authorities.add(
        "old", subject="CN=Old CA", not_before=timedelta(days=-900), not_after=timedelta(days=-1), parent=pki.LAB_ROOT
    )
    result = pki.Enrolment(expired, config=CONFIG, templates=TEMPLATES).submit(
        csr, config=CONFIG, template="WebServer", now=NOW
    )
    assert (result.status, result.certificate) == ("Failed", None)
    assert "CERT_E_EXPIRED" in result.disposition


def test_state_is_json_and_holds_no_secrets(ca: pki.Enrolment, csr: bytes) -> None:
    issued = ca.submit(csr, config=CONFIG, template="WebServer", now=NOW).certificate
    assert issued is not None
    ca.submit(csr, config=CONFIG, template="ExchangeManual", now=NOW)
    state = json.loads(json.dumps(ca.state()))
    assert state["config"] == CONFIG
    assert [template["name"] for template in state["templates"]] == list(TEMPLATES)
    assert state["requests"] == [
        {
            "id": 1001,
            "status": "Issued",
            "disposition": "Issued",
            "template": "WebServer",
            "subject": "CN=mail.contoso.lab",
            "submitted": "2026-03-01T12:00:00Z",
            "thumbprint": pki.thumbprint(issued),
        },
        {
            "id": 1002,
            "status": "Pending",
            "disposition": "Taken Under Submission",
            "template": "ExchangeManual",
            "subject": "CN=mail.contoso.lab",
            "submitted": "2026-03-01T12:00:00Z",
            "thumbprint": None,
        },
    ]
