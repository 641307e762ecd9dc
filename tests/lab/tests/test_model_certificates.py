# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exchange certificate semantics of the lab (exchange-facts.md), driven through the executor emulation."""

from __future__ import annotations

import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.lab import pki
from tests.lab.model import Fleet
from tests.lab.tests.model_fixtures import NOW, PASSWORD, as_bytes, batch, by_subject, certificates, error, op, value

SECRETS = {"pfx": PASSWORD}
CA_CONFIG = "ca01.contoso.lab\\Contoso Lab Issuing CA"


@pytest.fixture
def fleet() -> Fleet:
    return Fleet.from_scenario("dag", now=NOW)


def _mail(fleet: Fleet, server: str = "ex1") -> dict:
    return by_subject(fleet, server, "CN=mail.contoso.lab")


def _export(fleet: Fleet, server: str, thumbprint: str) -> bytes:
    result = batch(
        fleet,
        server,
        op("e", "Export-ExchangeCertificate", Thumbprint=thumbprint, Password={"$secret": "pfx"}),
        secrets=SECRETS,
    )
    assert result["results"][0]["status"] == "ok", result
    return base64.b64decode(result["results"][0]["value"]["FileData"])


def _request(fleet: Fleet, server: str, **args) -> x509.CertificateSigningRequest:
    data = value(fleet, server, "New-ExchangeCertificate", GenerateRequest=True, BinaryEncoded=True, **args)["FileData"]
    return pki.parse_csr(base64.b64decode(data))


def _der(csr: x509.CertificateSigningRequest) -> dict[str, str]:
    return as_bytes(csr.public_bytes(serialization.Encoding.DER))


def _issue(fleet: Fleet, csr: x509.CertificateSigningRequest) -> bytes:
    """Get the request signed by the lab's AD CS (WebServer: issued at once)."""
    result = value(fleet, "ex1", "host.certreq_submit", request=_der(csr), config=CA_CONFIG, template="WebServer")
    assert result["Status"] == "Issued", result
    return base64.b64decode(result["Certificate"])


def test_get_lists_properties_like_exchange(fleet: Fleet) -> None:
    mail = _mail(fleet)
    assert mail["Status"] == "Valid" and mail["RootCAType"] == "Enterprise"
    assert mail["Services"] == ["IMAP", "POP", "IIS", "SMTP"]
    assert mail["CertificateDomains"] == ["mail.contoso.lab", "autodiscover.contoso.lab"]
    assert mail["EnhancedKeyUsageList"] == ["Server Authentication (1.3.6.1.5.5.7.3.1)"]
    assert mail["NotAfter"] == "2026-12-15T08:00:00Z"  # 20 days after the lab start
    assert (
        value(fleet, "ex1", "Get-ExchangeCertificate", Thumbprint=mail["Thumbprint"].lower())[0]["Thumbprint"]
        == mail["Thumbprint"]
    )
    assert [
        c["Subject"] for c in value(fleet, "ex1", "Get-ExchangeCertificate", DomainName=["autodiscover.contoso.lab"])
    ] == ["CN=mail.contoso.lab"]


def test_same_certificate_on_every_server(fleet: Fleet) -> None:
    assert len({_mail(fleet, server)["Thumbprint"] for server in fleet.server_names()}) == 1


def test_enable_is_additive_and_iis_moves_the_binding(fleet: Fleet) -> None:
    own = by_subject(fleet, "ex1", "CN=EX1")
    assert (
        value(
            fleet,
            "ex1",
            "Enable-ExchangeCertificate",
            Thumbprint=own["Thumbprint"],
            Services=["IIS"],
            DoNotRequireSsl=True,
        )
        is None
    )
    after = certificates(fleet, "ex1")
    assert after[own["Thumbprint"]]["Services"] == ["IMAP", "POP", "IIS", "SMTP"]
    assert "IIS" not in after[_mail(fleet)["Thumbprint"]]["Services"]  # no longer bound anywhere
    assert "SMTP" in after[_mail(fleet)["Thumbprint"]]["Services"]  # additive: nothing else removed
    assert fleet.dump()["servers"]["ex1"]["require_ssl"] is False


def test_enable_imap_moves_the_single_instance_flag(fleet: Fleet) -> None:
    wmsvc = by_subject(fleet, "ex1", "CN=WMSvc-SHA2-EX1")
    value(fleet, "ex1", "Enable-ExchangeCertificate", Thumbprint=wmsvc["Thumbprint"], Services=["IMAP"])
    holders = [cert["Subject"] for cert in certificates(fleet, "ex1").values() if "IMAP" in cert["Services"]]
    assert holders == ["CN=WMSvc-SHA2-EX1"]


def test_enable_smtp_prompts_without_force_and_overwrites_with_force(fleet: Fleet) -> None:
    internal = value(fleet, "ex1", "Get-TransportService", Identity="ex1")[0]["InternalTransportCertificateThumbprint"]
    auth = value(fleet, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"]
    failure = error(fleet, "ex1", "Enable-ExchangeCertificate", Thumbprint=auth, Services=["SMTP"])
    assert "NonInteractive mode" in failure["message"]
    assert failure["fully_qualified_error_id"].endswith("EnableExchangeCertificate")
    value(fleet, "ex1", "Enable-ExchangeCertificate", Thumbprint=auth, Services=["SMTP"], Force=True)
    after = value(fleet, "ex1", "Get-TransportService", Identity="ex1")[0]["InternalTransportCertificateThumbprint"]
    assert after == auth != internal


@pytest.mark.parametrize(
    ("services", "reason"), [(["Web"], "CannotConvertArgumentNoMessage"), (["IIS"], "PrivateKeyMissing")]
)
def test_enable_refusals(fleet: Fleet, services: list[str], reason: str) -> None:
    der = base64.b64decode(_mail(fleet)["RawData"])
    other = Fleet.from_scenario("single", now=NOW)
    imported = value(other, "ex1", "Import-ExchangeCertificate", FileData=as_bytes(der))[0]
    assert imported["HasPrivateKey"] is False
    failure = error(other, "ex1", "Enable-ExchangeCertificate", Thumbprint=imported["Thumbprint"], Services=services)
    assert reason in failure["message"] + failure["fully_qualified_error_id"]


def test_generate_request_defaults_and_completion_on_the_originating_server(fleet: Fleet) -> None:
    csr = _request(
        fleet, "ex1", SubjectName="C=US,O=Contoso,CN=mail.contoso.lab", DomainName=["autodiscover.contoso.lab"]
    )
    assert csr.subject.rfc4514_string() == "CN=mail.contoso.lab,O=Contoso,C=US"
    pending = [c for c in certificates(fleet, "ex1").values() if c["Status"] == "PendingRequest"]
    assert len(pending) == 1 and pending[0]["RootCAType"] == "Unknown"
    assert pending[0]["CertificateDomains"] == ["mail.contoso.lab", "autodiscover.contoso.lab"]
    issued = _issue(fleet, csr)
    elsewhere = error(fleet, "ex2", "Import-ExchangeCertificate", FileData=as_bytes(issued))
    assert "CRYPT_E_NOT_FOUND" in elsewhere["message"]
    (done,) = value(fleet, "ex1", "Import-ExchangeCertificate", FileData=as_bytes(issued))
    assert done["HasPrivateKey"] is True and done["Status"] == "Valid" and done["PrivateKeyExportable"] is False
    assert not [c for c in certificates(fleet, "ex1").values() if c["Status"] == "PendingRequest"]


def test_export_of_a_pending_request_gives_its_csr_again(fleet: Fleet) -> None:
    """Export-ExchangeCertificate exports pending requests too (Microsoft's cmdlet page): the same request."""
    made = value(fleet, "ex1", "New-ExchangeCertificate", GenerateRequest=True, BinaryEncoded=True,
                 SubjectName="C=US,O=Contoso,CN=mail.contoso.lab", DomainName=["owa.contoso.lab"])["FileData"]
    (pending,) = [c for c in certificates(fleet, "ex1").values() if c["Status"] == "PendingRequest"]
    again = value(fleet, "ex1", "Export-ExchangeCertificate", Thumbprint=pending["Thumbprint"])["FileData"]
    assert again == made
    csr = pki.parse_csr(base64.b64decode(again))
    assert csr.public_key().public_numbers() == pki.parse_csr(base64.b64decode(made)).public_key().public_numbers()
    missing = error(fleet, "ex1", "Export-ExchangeCertificate", Thumbprint=_mail(fleet)["Thumbprint"])
    assert "Password" in missing["message"]  # a certificate (not a request) still needs the PFX password


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"GenerateRequest": True, "Services": ["IIS"]}, "Parameter set cannot be resolved"),
        ({"FriendlyName": "x" * 64}, "64"),
        ({"KeySize": 3072}, "ValidateSet"),
        ({"SubjectName": "mail.contoso.lab"}, "subject name"),
    ],
)
def test_new_exchange_certificate_parameter_errors(fleet: Fleet, args: dict, fragment: str) -> None:
    assert fragment in error(fleet, "ex1", "New-ExchangeCertificate", **args)["message"]
    assert fleet.dump()["mutations"] == []


def test_new_self_signed_defaults_and_smtp_prompt(fleet: Fleet) -> None:
    assert "NonInteractive" in error(fleet, "ex1", "New-ExchangeCertificate")["message"]
    created = value(fleet, "ex1", "New-ExchangeCertificate", Services=["None"])
    assert created["Subject"] == "CN=EX1" and created["CertificateDomains"] == ["EX1", "ex1.contoso.lab"]
    assert created["Status"] == "Valid" and created["RootCAType"] == "None" and created["PrivateKeyExportable"] is False
    auth = value(
        fleet, "ex1", "New-ExchangeCertificate", SubjectName="cn=Microsoft Exchange Server Auth Certificate",
        DomainName=[], PrivateKeyExportable=True, Services=["SMTP"], Force=True,
    )  # fmt: skip
    assert auth["CertificateDomains"] == []  # a CN with spaces is no host name, so it is not added as a SAN
    assert (
        value(fleet, "ex1", "Get-TransportService", Identity="EX1")[0]["InternalTransportCertificateThumbprint"]
        == auth["Thumbprint"]
    )


def test_renew_copies_subject_and_names(fleet: Fleet) -> None:
    csr = _request(fleet, "ex1", Thumbprint=_mail(fleet)["Thumbprint"])
    assert csr.subject.rfc4514_string() == "CN=mail.contoso.lab"
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == ["mail.contoso.lab", "autodiscover.contoso.lab"]


def test_export_import_pfx_and_remote_push(fleet: Fleet) -> None:
    auth = value(fleet, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"]
    fleet_single = Fleet.from_scenario("single", now=NOW)
    pfx = _export(fleet, "ex1", auth)
    assert pki.pfx_encryption(pfx) == "aes"  # Windows Server 2019
    result = batch(
        fleet_single, "ex1",
        op(
            "push", "Import-ExchangeCertificate",
            FileData=as_bytes(pfx), Password={"$secret": "pfx"}, PrivateKeyExportable=True,
        ),
        secrets=SECRETS,
    )  # fmt: skip
    (imported,) = result["results"][0]["value"]
    assert imported["Thumbprint"] == auth and imported["HasPrivateKey"] and imported["PrivateKeyExportable"]
    again = batch(
        fleet_single,
        "ex1",
        op("again", "Import-ExchangeCertificate", FileData=as_bytes(pfx), Password={"$secret": "pfx"}),
        secrets=SECRETS,
    )
    assert "already exists" in again["results"][0]["error"]["message"]


def test_aes_pfx_rejected_on_server_2016_and_legacy_accepted(fleet: Fleet) -> None:
    ca_issued = _request(fleet, "ex1", SubjectName="CN=new.contoso.lab", PrivateKeyExportable=True)
    value(fleet, "ex1", "Import-ExchangeCertificate", FileData=as_bytes(_issue(fleet, ca_issued)))
    thumbprint = by_subject(fleet, "ex1", "CN=new.contoso.lab")["Thumbprint"]
    aes = _export(fleet, "ex1", thumbprint)
    push = {"FileData": as_bytes(aes), "Password": {"$secret": "pfx"}}
    rejected = batch(fleet, "ex1", op("p", "Import-ExchangeCertificate", Server="ex4", **push), secrets=SECRETS)[
        "results"
    ][0]
    assert rejected["error"]["message"] == "The specified network password is not correct."
    wrong = batch(fleet, "ex1", op("p", "Import-ExchangeCertificate", Server="ex2", **push), secrets={"pfx": "nope"})[
        "results"
    ][0]
    assert wrong["error"]["message"] == "The specified network password is not correct."
    accepted = batch(fleet, "ex1", op("p", "Import-ExchangeCertificate", Server="ex2", **push), secrets=SECRETS)[
        "results"
    ][0]
    assert accepted["status"] == "ok"
    legacy = _export(fleet, "ex4", value(fleet, "ex4", "Get-AuthConfig")["CurrentCertificateThumbprint"])
    assert pki.pfx_encryption(legacy) == "legacy"  # Windows Server 2016


def test_export_refused_for_non_exportable_key(fleet: Fleet) -> None:
    own = by_subject(fleet, "ex1", "CN=EX1")
    result = batch(
        fleet,
        "ex1",
        op("e", "Export-ExchangeCertificate", Thumbprint=own["Thumbprint"], Password={"$secret": "pfx"}),
        secrets=SECRETS,
    )
    assert result["results"][0]["error"]["message"].startswith("The private key couldn't be exported as PKCS-12")


def test_unknown_server_error(fleet: Fleet) -> None:
    failure = error(fleet, "ex1", "Get-ExchangeCertificate", Server="ex9")
    assert (
        failure["message"]
        == "The operation couldn't be performed because object 'ex9' couldn't be found on 'dc1.contoso.lab'."
    )


def test_remove_blocked_by_send_connector_tag_then_allowed(fleet: Fleet) -> None:
    mail = _mail(fleet)
    tag = f"<I>{mail['Issuer']}<S>{mail['Subject']}"
    value(fleet, "ex1", "Set-SendConnector", Identity="Internet", TlsCertificateName=tag)
    failure = error(fleet, "ex1", "Remove-ExchangeCertificate", Thumbprint=mail["Thumbprint"])
    assert failure["message"] == "These certificates are tagged with following Send Connectors : Internet"
    assert (
        value(fleet, "ex4", "Remove-ExchangeCertificate", Thumbprint=mail["Thumbprint"]) is None
    )  # ex4 is no source server
    bindings = value(fleet, "ex4", "host.iis_bindings")
    assert any(
        binding["CertificateHash"] == mail["Thumbprint"] for binding in bindings
    )  # IIS is left pointing at nothing
    assert fleet.served_certificate("ex4", "https") is None


def test_set_connector_rejects_bad_names(fleet: Fleet) -> None:
    assert (
        "isn't a valid certificate name"
        in error(fleet, "ex1", "Set-SendConnector", Identity="Internet", TlsCertificateName="mail")["message"]
    )


def test_auth_staging_needs_48_hours_and_servicelet_publishes(fleet: Fleet) -> None:
    wmsvc = by_subject(fleet, "ex1", "CN=WMSvc-SHA2-EX1")["Thumbprint"]
    soon = {"$datetime": "2026-11-26T08:00:00Z"}
    assert (
        "NonInteractive"
        in error(fleet, "ex1", "Set-AuthConfig", NewCertificateThumbprint=wmsvc, NewCertificateEffectiveDate=soon)[
            "message"
        ]
    )
    later = {"$datetime": "2026-11-27T09:00:00Z"}
    value(fleet, "ex1", "Set-AuthConfig", NewCertificateThumbprint=wmsvc, NewCertificateEffectiveDate=later)
    current = value(fleet, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"]
    assert fleet.advance_clock(24 * 3600)["published"] == []
    report = fleet.advance_clock(36 * 3600)  # the first 12-hourly tick after the effective date publishes
    assert len(report["published"]) == 1
    config = value(fleet, "ex1", "Get-AuthConfig")
    assert (
        config["CurrentCertificateThumbprint"],
        config["PreviousCertificateThumbprint"],
        config["NextCertificateThumbprint"],
    ) == (wmsvc, current, None)
    events = [event for server in fleet.dump()["servers"].values() for event in server["application_log"]]
    assert [(event["source"], event["event_id"]) for event in events] == [("MSExchange AuthAdmin", 2014)]


def test_publish_clear_and_service_host_restart(fleet: Fleet) -> None:
    wmsvc = by_subject(fleet, "ex1", "CN=WMSvc-SHA2-EX1")["Thumbprint"]
    value(
        fleet,
        "ex1",
        "Set-AuthConfig",
        NewCertificateThumbprint=wmsvc,
        NewCertificateEffectiveDate={"$datetime": "2026-11-25T08:00:00Z"},
        Force=True,
    )
    assert value(fleet, "ex1", "host.restart_service", name="MSExchangeServiceHost") == {
        "Name": "MSExchangeServiceHost",
        "Status": "Running",
    }
    assert value(fleet, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"] == wmsvc
    value(fleet, "ex1", "Set-AuthConfig", ClearPreviousCertificate=True)
    assert value(fleet, "ex1", "Get-AuthConfig")["PreviousCertificateThumbprint"] is None
    assert "no next certificate" in error(fleet, "ex1", "Set-AuthConfig", PublishCertificate=True)["message"]
    value(fleet, "ex1", "host.recycle_app_pool", name="MSExchangeOWAAppPool")
    assert fleet.dump()["servers"]["ex1"]["owa_auth_certificate"] == wmsvc


def test_iis_binding_and_back_end(fleet: Fleet) -> None:
    mail = _mail(fleet)["Thumbprint"]
    value(
        fleet,
        "ex1",
        "host.set_iis_binding",
        site="Exchange Back End",
        binding_information="*:444:",
        certificate_hash=mail,
    )
    assert fleet.served_certificate("ex1", "back_end") is not None
    chain, _key = fleet.served_certificate("ex1", "back_end")
    assert pki.thumbprint(x509.load_pem_x509_certificates(chain)[0]) == mail
    assert (
        "not found"
        in error(
            fleet,
            "ex1",
            "host.set_iis_binding",
            site="Exchange Back End",
            binding_information="*:444:",
            certificate_hash="AB",
        )["message"]
    )


def test_host_certificates_cluster_and_stores(fleet: Fleet) -> None:
    cluster = value(fleet, "ex2", "host.cluster")
    assert cluster["Name"] == "DAG1" and [node["Name"] for node in cluster["Nodes"]] == ["EX1", "EX2", "EX3"]
    assert value(fleet, "ex4", "host.cluster") is None
    (cliusr,) = value(fleet, "ex2", "host.certificates", stores=["*"], subject_pattern="^cn=cliusr$")
    assert cliusr["Store"] == "PKU2U" and cliusr["KeyProvider"] == "cng"
    own = {cert["Thumbprint"] for cert in value(fleet, "ex2", "Get-ExchangeCertificate")}
    assert cliusr["Thumbprint"] not in own  # cluster certificates are invisible to the Exchange cmdlets
    my = value(fleet, "ex1", "host.certificates", stores=["My"])
    assert {cert["KeyProvider"] for cert in my} == {"csp"}
    assert "does not exist" in error(fleet, "ex1", "host.certificates", stores=["Nope"])["message"]


@pytest.mark.parametrize(
    ("template", "status"), [("WebServer", "Issued"), ("ExchangeManual", "Pending"), ("Nope", "Denied")]
)
def test_certreq_submit(fleet: Fleet, template: str, status: str) -> None:
    csr = _request(fleet, "ex1", SubjectName="CN=ca.contoso.lab")
    result = value(fleet, "ex1", "host.certreq_submit", request=_der(csr), config=CA_CONFIG, template=template)
    assert result["Status"] == status
    if status == "Pending":
        assert fleet.ca_decide(result["RequestId"], True)["status"] == "Issued"
        retrieved = value(fleet, "ex1", "host.certreq_retrieve", config=CA_CONFIG, request_id=result["RequestId"])
        assert retrieved["Status"] == "Issued"
        (done,) = value(fleet, "ex1", "Import-ExchangeCertificate", FileData={"$bytes": retrieved["Certificate"]})
        assert done["HasPrivateKey"] and done["RootCAType"] == "Enterprise"


def test_ca_deny(fleet: Fleet) -> None:
    csr = _request(fleet, "ex1", SubjectName="CN=deny.contoso.lab")
    pending = value(fleet, "ex1", "host.certreq_submit", request=_der(csr), config=CA_CONFIG, template="ExchangeManual")
    assert fleet.ca_decide(pending["RequestId"], False)["status"] == "Denied"
    assert (
        value(fleet, "ex1", "host.certreq_retrieve", config=CA_CONFIG, request_id=pending["RequestId"])["Status"]
        == "Denied"
    )


def test_mutations_record_changes_without_secrets(fleet: Fleet) -> None:
    auth = value(fleet, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"]
    pfx = _export(fleet, "ex1", auth)
    batch(
        fleet,
        "ex1",
        op("i", "Import-ExchangeCertificate", Server="ex2", FileData=as_bytes(pfx), Password={"$secret": "pfx"}),
        secrets=SECRETS,
    )
    assert fleet.dump()["mutations"] == []  # already present on ex2: refused, nothing changed
    value(fleet, "ex1", "host.iis_reset")
    entries = fleet.dump()["mutations"]
    assert [(e["seq"], e["server"], e["operation"]) for e in entries] == [(1, "ex1", "host.iis_reset")]
    assert entries[0]["lab_time"] == "2026-11-25T08:00:00Z"
    text = repr(fleet.dump())
    assert PASSWORD not in text and "PRIVATE KEY" not in text and "Ex-Lab-2026!" not in text


def test_add_certificate_to_the_intermediate_store_once(fleet: Fleet) -> None:
    issuer = fleet.lab_ca_pem()
    der = x509.load_pem_x509_certificate(issuer).public_bytes(serialization.Encoding.DER)
    first = batch(fleet, "ex1", op("a", "host.add_certificate", store="CA", certificate=as_bytes(der)))
    again = batch(fleet, "ex1", op("a", "host.add_certificate", store="CA", certificate=as_bytes(der)))
    assert first["results"][0]["changed"] is True and first["results"][0]["value"]["Added"] is True
    assert again["results"][0]["changed"] is False and again["results"][0]["value"]["Added"] is False
    assert again["changed"] is False
    stored = value(fleet, "ex1", "host.certificates", stores=["CA"])
    assert [c["Thumbprint"] for c in stored].count(first["results"][0]["value"]["Thumbprint"]) == 1
    assert [m["operation"] for m in fleet.dump()["mutations"]] == ["host.add_certificate"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"store": "My"}, "store must be 'CA' or 'Root'"),
        ({"store": "CA", "certificate": {"$bytes": "AAEC"}}, "0x80092004"),
    ],
    ids=["store", "not-a-certificate"],
)
def test_add_certificate_refusals(fleet: Fleet, args: dict, fragment: str) -> None:
    args.setdefault("certificate", as_bytes(base64.b64decode(_mail(fleet)["RawData"])))
    failure = error(fleet, "ex1", "host.add_certificate", **args)
    assert fragment in failure["message"]
    assert fleet.dump()["mutations"] == []


def test_imap_and_pop_x509_certificate_name(fleet: Fleet) -> None:
    assert value(fleet, "ex1", "Get-ImapSettings", Server="ex1") == [{"Server": "EX1", "X509CertificateName": None}]
    value(fleet, "ex1", "Set-ImapSettings", Server="ex1", X509CertificateName="mail.contoso.lab")
    assert value(fleet, "ex1", "Get-ImapSettings", Server="ex1")[0]["X509CertificateName"] == "mail.contoso.lab"
    assert value(fleet, "ex1", "Get-PopSettings", Server="ex1")[0]["X509CertificateName"] is None
    assert value(fleet, "ex2", "Get-ImapSettings", Server="ex2")[0]["X509CertificateName"] is None  # per server
    failure = error(fleet, "ex1", "Set-PopSettings", Server="ex1", X509CertificateName="bad name\r\n")
    assert "X509CertificateName" in failure["message"]
