# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario files: validation errors, the shipped scenarios' contents, the large-fleet generator."""

from __future__ import annotations

import base64
import copy
from datetime import timedelta
from typing import Any

import pytest
import yaml

from tests.lab.model import Fleet, ScenarioError
from tests.lab.model.generate import generate_scenario
from tests.lab.model.scenario import parse_duration
from tests.lab.tests.model_fixtures import NOW, batch, by_subject, certificates, op, scenario, value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20d", timedelta(days=20)),
        ("-3d", timedelta(days=-3)),
        ("5y", timedelta(days=1825)),
        ("12h", timedelta(hours=12)),
        (0, timedelta(0)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def _broken(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(scenario("single"))
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(colour="blue"), "<scenario>: colour: unknown key"),
        (lambda d: d["servers"][0].update(versoin="se"), "servers[0].versoin: unknown key"),
        (
            lambda d: d["servers"][0]["certificates"][0].update(ref="mial"),
            "servers[0].certificates[0].ref: unknown certificate 'mial'",
        ),
        (lambda d: d["servers"][0].update(version="2013"), "servers[0].version: unknown version '2013'"),
        (lambda d: d["servers"][0].update(version="2016-cu23", os="2022"), "does not run on Windows Server 2022"),
        (
            lambda d: d["certificates"]["mail"].update(not_after="soon"),
            "certificates.mail.not_after: invalid relative time",
        ),
        (
            lambda d: d["certificates"]["mail"].update(issuer="nobody"),
            "certificates.mail.issuer: unknown issuer 'nobody'",
        ),
        (lambda d: d.update(dags=[{"name": "D", "members": ["ex1", "ex7"]}]), "dags[0].members: unknown server 'ex7'"),
        (lambda d: d["accounts"].pop(0), "accounts: at least one account needs exchange_admin"),
        (lambda d: d["servers"].append(dict(d["servers"][0])), "servers[1].name: duplicate server 'ex1'"),
        (lambda d: d["servers"][0]["certificates"][0].update(services=["IIS"]), "use iis.default_web_site"),
        (lambda d: d["servers"][0].update(exchange_session="maybe"), "must be one of ok, double_hop, no_exchange"),
    ],
)
def test_validation_errors_name_the_key(change: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as raised:
        Fleet.from_scenario(_broken(change), now=NOW)
    assert message in str(raised.value)


def test_file_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("accounts: []\nservers: []\nextra: 1\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"^bad\.yml: extra: unknown key"):
        Fleet.from_scenario(path, now=NOW)


def test_files_certificates_pem_and_pfx(tmp_path) -> None:
    source = Fleet.from_scenario("single", now=NOW)
    auth = value(source, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"]
    exported = batch(
        source,
        "ex1",
        op("e", "Export-ExchangeCertificate", Thumbprint=auth, Password={"$secret": "p"}),
        secrets={"p": "pw"},
    )
    (tmp_path / "auth.pfx").write_bytes(base64.b64decode(exported["results"][0]["value"]["FileData"]))
    mail = by_subject(source, "ex1", "CN=mail.contoso.lab")
    (tmp_path / "mail.cer").write_bytes(base64.b64decode(mail["RawData"]))
    data = scenario("single")
    data["certificates"] = {
        "from_pfx": {"files": {"pfx": "auth.pfx", "password": "pw"}},
        "from_der": {"files": {"der": "mail.cer"}},
    }
    data["servers"][0]["certificates"] = [{"ref": "from_pfx", "exportable": True}, {"ref": "from_der"}]
    data["servers"][0]["iis"] = {"default_web_site": "exchange", "back_end": "exchange"}
    data["send_connectors"] = []
    path = tmp_path / "files.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    fleet = Fleet.from_scenario(path, now=NOW)
    certs = certificates(fleet, "ex1")
    assert certs[auth]["HasPrivateKey"] and certs[auth]["PrivateKeyExportable"]
    assert certs[mail["Thumbprint"]]["HasPrivateKey"] is False


def test_dag_scenario_contents() -> None:
    fleet = Fleet.from_scenario("dag", now=NOW)
    assert fleet.server_names() == ["ex1", "ex2", "ex3", "ex4"]
    assert fleet.groups()["dag_dag1"] == ["ex1", "ex2", "ex3"]
    assert {fleet.server_info(name)["version"] for name in fleet.server_names()} == {
        "2019-cu14",
        "2019-cu15",
        "se",
        "2016-cu23",
    }
    versions = {server["Name"]: server["AdminDisplayVersion"] for server in value(fleet, "ex1", "Get-ExchangeServer")}
    assert versions == {
        "EX1": "Version 15.2 (Build 1544.4)", "EX2": "Version 15.2 (Build 1748.10)",
        "EX3": "Version 15.2 (Build 2562.17)", "EX4": "Version 15.1 (Build 2507.6)",
    }  # fmt: skip
    mail = {by_subject(fleet, name, "CN=mail.contoso.lab")["Thumbprint"] for name in fleet.server_names()}
    assert len(mail) == 1
    mail_cert = by_subject(fleet, "ex1", "CN=mail.contoso.lab")
    assert mail_cert["NotAfter"] == "2026-12-15T08:00:00Z" and mail_cert["CertificateDomains"] == [
        "mail.contoso.lab",
        "autodiscover.contoso.lab",
    ]
    auth = value(fleet, "ex1", "Get-AuthConfig")
    assert auth["NextCertificateThumbprint"] is None
    assert (
        certificates(fleet, "ex3")[auth["CurrentCertificateThumbprint"]]["NotAfter"] == "2027-01-09T08:00:00Z"
    )  # 45 days
    servers = fleet.dump()["servers"]
    expired = {
        name: servers[name]["certificates"]["PKU2U"][0]["status"] == "DateInvalid" for name in ("ex1", "ex2", "ex3")
    }
    assert expired == {"ex1": False, "ex2": True, "ex3": False}
    assert "PKU2U" not in servers["ex4"]["certificates"]
    dags = value(fleet, "ex1", "Get-DatabaseAvailabilityGroup", Status=True)
    assert dags[0]["Servers"] == ["EX1", "EX2", "EX3"] and dags[0]["OperationalServers"] == ["EX1", "EX2", "EX3"]


def test_broken_scenario_contents() -> None:
    fleet = Fleet.from_scenario("broken", now=NOW)
    ex1 = certificates(fleet, "ex1")
    statuses = {cert["Subject"]: cert["Status"] for cert in ex1.values()}
    assert statuses["CN=mail.fabrikam.lab"] == "Untrusted"
    assert statuses["CN=future.contoso.lab"] == "DateInvalid"
    assert statuses["CN=revoked.contoso.lab"] == "Revoked"
    assert {cert["PublicKeySize"] for cert in ex1.values() if cert["Subject"] == "CN=legacy.contoso.lab"} == {1024}
    assert by_subject(fleet, "ex1", "CN=old.contoso.lab")["SignatureAlgorithm"] == "sha1RSA"
    assert by_subject(fleet, "ex1", "CN=nokey.contoso.lab")["HasPrivateKey"] is False
    assert by_subject(fleet, "ex1", "CN=client.contoso.lab")["EnhancedKeyUsageList"] == [
        "Client Authentication (1.3.6.1.5.5.7.3.2)"
    ]
    assert len([cert for cert in ex1.values() if cert["Subject"] == "CN=smtp.contoso.lab"]) == 2
    assert [cert["Status"] for cert in ex1.values() if cert["Status"] == "PendingRequest"] == ["PendingRequest"]
    auth = value(fleet, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"]
    assert auth not in certificates(fleet, "ex2")
    auth_key = [c for c in value(fleet, "ex1", "host.certificates") if c["Thumbprint"] == auth][0]
    assert auth_key["KeyProvider"] == "cng"
    transport = {
        t["Name"]: t["InternalTransportCertificateThumbprint"] for t in value(fleet, "ex1", "Get-TransportService")
    }
    assert transport["EX2"] is None
    assert certificates(fleet, "ex3")[transport["EX3"]]["Status"] == "DateInvalid"
    assert fleet.served_certificate("ex2", "https") is None  # bound to a certificate installed nowhere
    assert {b["Site"] for b in value(fleet, "ex3", "host.iis_bindings")} == {"Default Web Site"}
    assert (
        certificates(fleet, "ex1")[value(fleet, "ex1", "host.iis_bindings")[0]["CertificateHash"]]["Status"]
        == "DateInvalid"
    )
    (connector,) = value(fleet, "ex1", "Get-SendConnector")
    assert connector["TlsCertificateName"] == "<I>CN=Retired Issuing CA<S>CN=relay.contoso.lab"


def test_generator_builds_a_large_fleet() -> None:
    data = generate_scenario(40, dag_size=4, sites=3)
    fleet = Fleet.from_scenario(data, now=NOW)
    assert len(fleet.server_names()) == 40
    groups = fleet.groups()
    assert len([name for name in groups if name.startswith("dag_")]) == 10
    assert len([name for name in groups if name.startswith("site_")]) == 3
    assert len(value(fleet, "ex7", "Get-ExchangeCertificate")) == 3 + 1 + 2  # defaults, site certificate, extras


def test_generator_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="servers >= 1"):
        generate_scenario(0)
