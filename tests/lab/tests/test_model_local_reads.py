# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-server reads of docs/remote-protocol.md: ``{"$local": "server"}``, host.certificates' issuer_pattern,
and the session refusals each named by its own error record."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lab.model import Fleet
from tests.lab.model.batch import resolve_local_server
from tests.lab.model.certificates import PKU2U, Material, StoredCertificate
from tests.lab.model.cmdlets import Context
from tests.lab.model.errors import OperationError
from tests.lab.tests.model_fixtures import MODULE, NOW, batch, fleet_with, op, scenario

LOCAL = {"$local": "server"}


@pytest.fixture(scope="module")
def dag() -> Fleet:
    return Fleet.from_scenario("dag", now=NOW)


def _ok(result: dict, index: int = 0) -> object:
    outcome = result["results"][index]
    assert outcome["status"] == "ok", outcome
    return outcome["value"]


def test_local_server_reads_only_the_connected_servers_objects(dag: Fleet) -> None:
    names = dag.server_names()
    assert len(names) > 1
    for name in names:
        result = batch(dag, name, op("s", "Get-ExchangeServer", Identity=LOCAL),
                       op("r", "Get-ReceiveConnector", Server=LOCAL), op("t", "Get-TransportService", Identity=LOCAL))
        (server,) = _ok(result, 0)
        assert server["Name"] == name.upper()
        receive = _ok(result, 1)
        assert receive and {connector["Server"] for connector in receive} == {name.upper()}
        (transport,) = _ok(result, 2)
        assert transport["Name"] == name.upper()


def test_the_org_wide_form_is_still_served(dag: Fleet) -> None:
    name = dag.server_names()[0]
    result = batch(dag, name, op("s", "Get-ExchangeServer"), op("r", "Get-ReceiveConnector"))
    assert len(_ok(result, 0)) == len(dag.server_names())
    assert {connector["Server"] for connector in _ok(result, 1)} == {n.upper() for n in dag.server_names()}


def test_the_local_answer_does_not_grow_with_the_organisation() -> None:
    def answer_size(servers: int) -> tuple[int, int]:
        data = scenario("single")
        base = data["servers"][0]
        data["servers"] = [{**base, "name": f"ex{index}"} for index in range(1, servers + 1)]
        fleet = Fleet.from_scenario(data, now=NOW)
        local = batch(fleet, "ex1", op("s", "Get-ExchangeServer", Identity=LOCAL),
                      op("r", "Get-ReceiveConnector", Server=LOCAL), op("t", "Get-TransportService", Identity=LOCAL))
        org_wide = batch(fleet, "ex1", op("s", "Get-ExchangeServer"), op("r", "Get-ReceiveConnector"),
                         op("t", "Get-TransportService"))
        return len(json.dumps(local)), len(json.dumps(org_wide))

    local_2, org_2 = answer_size(2)
    local_12, org_12 = answer_size(12)
    assert local_12 == local_2
    assert org_12 > 4 * org_2


def test_the_dags_of_the_local_server_only(dag: Fleet) -> None:
    for name in dag.server_names():
        local = _ok(batch(dag, name, op("d", "Get-DatabaseAvailabilityGroup", Server=LOCAL)))
        member_of = [d["Name"] for d in _ok(batch(dag, name, op("d", "Get-DatabaseAvailabilityGroup")))
                     if name.upper() in d["Servers"]]
        assert [d["Name"] for d in local] == member_of


def test_local_marker_values_other_than_server_are_argument_errors(dag: Fleet) -> None:
    name = dag.server_names()[0]
    for args in ({"Identity": {"$local": "dag"}}, {"Identity": {"$local": 1}}):
        result = dag.run_module(name, MODULE, {"operations": [op("s", "Get-ExchangeServer", **args)]})
        assert result["failed"] is True and "$local" in result["msg"]
    result = dag.run_module(name, MODULE, {"operations": [op("c", "Get-AuthConfig", **{})]})
    assert "failed" not in result
    # only server parameters take it
    result = dag.run_module(name, MODULE, {"operations": [op("c", "Get-SendConnector", Identity=LOCAL)]})
    assert result["failed"] is True and "Identity" in result["msg"]


def test_a_host_that_is_no_exchange_server_of_the_organisation_cannot_resolve_the_local_server() -> None:
    fleet = Fleet.from_scenario("single", now=NOW)
    org = fleet._org  # noqa: SLF001 - a host outside the organisation
    stranger = copy.copy(org.servers["ex1"])
    stranger.name, stranger.exchange_name, stranger.fqdn = "ws42", "WS42", "ws42.contoso.lab"
    with pytest.raises(OperationError, match="not an Exchange server of this organization"):
        resolve_local_server(Context(org, stranger), "Get-ExchangeServer")
    assert resolve_local_server(Context(org, org.servers["ex1"]), "Get-ExchangeServer") == "EX1"


# --- host.certificates: subject OR issuer -------------------------------------------------------------

CLUSTER = r"^CN=(CLIUSR|CSUSR)(,|$)"


def _issued_by_cliusr(subject: str) -> Material:
    """A PKU2U certificate issued by CN=CLIUSR with another subject (the node certificate of a cluster)."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CLIUSR")]))
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(NOW - timedelta(days=10))
        .not_valid_after(NOW + timedelta(days=300))
        .sign(key, hashes.SHA256())
    )
    return Material(certificate, key)


def test_cluster_certificates_are_selected_by_subject_or_issuer() -> None:
    fleet = Fleet.from_scenario("dag", now=NOW)
    name = next(n for n in fleet.server_names() if fleet._org.servers[n].dag)  # noqa: SLF001
    material = _issued_by_cliusr(f"{name.upper()}-PKU2U")
    fleet._org.servers[name].add(StoredCertificate(material, PKU2U, True, friendly_name="PKU2U"))  # noqa: SLF001

    by_subject = _ok(batch(fleet, name, op("c", "host.certificates", stores=["*"], subject_pattern=CLUSTER)))
    either = _ok(batch(fleet, name, op("c", "host.certificates", stores=["*"], subject_pattern=CLUSTER,
                                       issuer_pattern=CLUSTER)))
    assert material.thumbprint not in {cert["Thumbprint"] for cert in by_subject}
    assert material.thumbprint in {cert["Thumbprint"] for cert in either}
    assert {cert["Thumbprint"] for cert in by_subject} < {cert["Thumbprint"] for cert in either}
    only_issuer = _ok(batch(fleet, name, op("c", "host.certificates", stores=["*"], issuer_pattern=CLUSTER)))
    assert material.thumbprint in {cert["Thumbprint"] for cert in only_issuer}


def test_a_bad_issuer_pattern_fails_the_read() -> None:
    fleet = Fleet.from_scenario("single", now=NOW)
    outcome = batch(fleet, "ex1", op("c", "host.certificates", issuer_pattern="("))["results"][0]
    assert outcome["status"] == "failed" and "Invalid regular expression" in outcome["error"]["message"]


# --- session refusals, each with its own record ----------------------------------------------------------

def test_a_wrong_explicit_password_is_a_logon_failure_not_access_denied() -> None:
    fleet = fleet_with("single", "ex1")
    args = {"operations": [op("a", "Get-AuthConfig")], "exchange_username": "CONTOSO\\ansible",
            "exchange_password": "wrong"}
    error = fleet.run_module("ex1", MODULE, args, remote_user="CONTOSO\\ansible")["results"][0]["error"]
    assert error["fully_qualified_error_id"] == "LogonFailure,PSSessionOpenFailed"
    assert "user name or password is incorrect" in error["message"]


def test_an_account_without_exchange_roles_opens_the_session_but_gets_no_cmdlet() -> None:
    fleet = Fleet.from_scenario("single", now=NOW)
    args = {"operations": [op("a", "Get-ExchangeCertificate"), op("i", "host.info")],
            "exchange_username": "CONTOSO\\helpdesk", "exchange_password": "Help-Desk-2026!"}
    result = fleet.run_module("ex1", MODULE, args, remote_user="CONTOSO\\ansible")
    assert result["exchange_session"]["opened"] is True
    error = result["results"][0]["error"]
    assert error["fully_qualified_error_id"] == "CommandNotFoundException"
    assert result["results"][1]["status"] == "ok"


# --- certificate_info's own batch (plugins/plugin_utils/_snapshot.py READS) against the lab -----------------

def _snapshot_of(fleet: Fleet, server: str) -> tuple[object, int]:
    """certificate_info's read of ``server``: its snapshot and the size of the executor's answer."""
    from ansible_collections.exchange.pki.plugins.plugin_utils import _remote, _snapshot

    sent = _snapshot.build_batch()
    answer = fleet.run_module(server, MODULE, sent.module_args(), remote_user="CONTOSO\\ansible")
    return _snapshot.read_snapshot(_remote.parse_batch_result(answer, sent)), len(json.dumps(answer))


def test_certificate_info_reads_only_the_local_servers_objects() -> None:
    from ansible_collections.exchange.pki.plugins.plugin_utils import _snapshot

    sent = {operation.id: dict(operation.args) for operation in _snapshot.build_batch().operations}
    assert sent["exchange_servers"] == {"Identity": LOCAL}
    assert sent["transport_services"] == {"Identity": LOCAL}
    assert sent["receive_connectors"] == {"Server": LOCAL}
    assert sent["dags"] == {"Server": LOCAL}

    fleet = Fleet.from_scenario("dag", now=NOW)
    for name in fleet.server_names():
        snapshot, _size = _snapshot_of(fleet, name)
        assert snapshot.exchange_server.name == name.upper()
        assert snapshot.receive_connectors and {c.server for c in snapshot.receive_connectors} == {name.upper()}
        assert [service.name for service in snapshot.transport_services] == [name.upper()]
        assert snapshot.local_transport_service is not None
        assert [dag.name for dag in snapshot.dags] == ([snapshot.dag.name] if snapshot.dag is not None else [])


def test_one_servers_answer_does_not_grow_with_the_organisation() -> None:
    """The issue 6 goal: the per-host answer of a 100-server organisation <= 1.2x that of a 10-server one."""
    from tests.lab.model.generate import generate_scenario

    sizes = {servers: _snapshot_of(Fleet.from_scenario(generate_scenario(servers), now=NOW), "ex1")[1]
             for servers in (10, 100)}
    assert sizes[100] <= 1.2 * sizes[10], sizes


def test_certificate_info_inventories_a_cluster_certificate_issued_by_cliusr() -> None:
    from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import is_cluster_certificate
    from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import collect_certificates

    fleet = Fleet.from_scenario("dag", now=NOW)
    name = next(n for n in fleet.server_names() if fleet._org.servers[n].dag)  # noqa: SLF001
    material = _issued_by_cliusr(f"{name.upper()}-PKU2U")
    fleet._org.servers[name].add(StoredCertificate(material, PKU2U, True, friendly_name="PKU2U"))  # noqa: SLF001
    snapshot, _size = _snapshot_of(fleet, name)
    assert material.thumbprint in {certificate.thumbprint for certificate in snapshot.store_certificates}
    certificates = collect_certificates(snapshot)
    located = getattr(certificates, "parsed", certificates)  # the parsed certificates by thumbprint
    assert is_cluster_certificate(located[material.thumbprint])


# --- the session options, checked by the executor too ------------------------------------------------------

@pytest.mark.parametrize(
    "options",
    [
        {"exchange_username": "", "exchange_password": "Ex-Lab-2026!"},
        {"exchange_username": "CONTOSO\\ansible", "exchange_password": ""},
        {"exchange_uri": "ftp://ex1.contoso.lab/PowerShell/"},
        {"exchange_uri": "ex1.contoso.lab"},
        {"exchange_uri": "http://ex1.contoso.lab/PowerShell/\r\nX: 1"},
        {"exchange_uri": "http://u:p@ex1.contoso.lab/PowerShell/"},
        {"exchange_uri": ""},
    ],
)
def test_the_executor_refuses_bad_session_options(options: dict) -> None:
    fleet = Fleet.from_scenario("single", now=NOW)
    result = fleet.run_module("ex1", MODULE, {"operations": [op("a", "Get-AuthConfig")], **options})
    assert result["failed"] is True
    assert ("exchange_uri" if "exchange_uri" in options else "exchange_username") in result["msg"]
    assert "Ex-Lab-2026!" not in result["msg"]


def test_both_credential_options_empty_mean_the_connections_identity() -> None:
    fleet = Fleet.from_scenario("single", now=NOW)
    args = {"operations": [op("a", "Get-AuthConfig")], "exchange_username": "", "exchange_password": ""}
    assert fleet.run_module("ex1", MODULE, args, remote_user="CONTOSO\\ansible")["results"][0]["status"] == "ok"
