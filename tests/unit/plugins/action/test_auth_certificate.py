# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.auth_certificate against the in-process lab (tests/lab/model).

Every expectation is read from the lab's dump and mutation log: the Auth configuration, which server holds which
certificate, the internal transport certificate, the service restarts. The `dag` scenario's Auth certificate
expires in 45 days with no next one staged; `broken` stages a next one that ex2 lacks (and ex2 lacks the current one).
"""

from __future__ import annotations

import copy
import datetime
import json
import re
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.action import auth_certificate
from ansible_collections.exchange.pki.plugins.modules import auth_certificate as auth_certificate_docs
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import LEDGER_ARGSPEC, read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import EXCHANGE_SESSION_ARGSPEC
from ansible_collections.exchange.pki.plugins.plugin_utils._time import parse_utc_datetime
from tests.lab.model import Fleet
from tests.lab.model.scenario import SCENARIO_DIR
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import failed_result
from tests.unit.plugins.action.lab_host import LabHost

Action = auth_certificate.ActionModule
HOUR = datetime.timedelta(hours=1)
DAY = datetime.timedelta(days=1)
DAG = ("ex1", "ex2", "ex3", "ex4")


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW; the plugin judges dates by the lab host's clock (host.info UtcNow)."""


def lab(scenario: Any = "dag", server: str = "ex1") -> LabHost:
    return LabHost(Fleet.from_scenario(scenario, now=NOW), server)


def scenario_with(name: str, **changes: Any) -> dict[str, Any]:
    data = yaml.safe_load((SCENARIO_DIR / f"{name}.yml").read_text(encoding="utf-8"))
    data.update(copy.deepcopy(changes))
    return data


def auth(host: LabHost) -> dict[str, Any]:
    return host.fleet.dump()["organization"]["auth_config"]


def holders(host: LabHost, thumbprint: str) -> list[str]:
    servers = host.fleet.dump()["servers"]
    return [name for name, server in servers.items()
            if any(cert["thumbprint"] == thumbprint for cert in server["certificates"]["My"])]


def certificate(host: LabHost, server: str, thumbprint: str) -> dict[str, Any]:
    return next(cert for cert in host.fleet.dump()["servers"][server]["certificates"]["My"]
                if cert["thumbprint"] == thumbprint)


def operations(host: LabHost) -> list[str]:
    return [entry["operation"] for entry in host.mutations()]


def lab_now(host: LabHost) -> datetime.datetime:
    return parse_utc_datetime(host.fleet.dump()["clock"]["now"])


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("failed") is not True, result.get("msg")
    return result


# --- documentation ------------------------------------------------------------------------------------------


def test_documented_options_equal_the_argument_spec() -> None:
    keys = ("type", "required", "default", "choices", "elements", "no_log")
    documented = yaml.safe_load(auth_certificate_docs.DOCUMENTATION)["options"]
    own = {name: spec for name, spec in auth_certificate.ARGUMENT_SPEC.argument_spec.items()
           if name not in EXCHANGE_SESSION_ARGSPEC and name not in LEDGER_ARGSPEC}
    assert {name: {key: option.get(key) for key in keys} for name, option in documented.items()} == \
        {name: {key: option.get(key) for key in keys} for name, option in own.items()}
    assert set(auth_certificate.ARGUMENT_SPEC.argument_spec) == {*own, *EXCHANGE_SESSION_ARGSPEC, *LEDGER_ARGSPEC}


@pytest.mark.parametrize("section", ["EXAMPLES", "RETURN"])
def test_examples_and_return_are_yaml(section: str) -> None:
    assert yaml.safe_load(getattr(auth_certificate_docs, section))


# --- stage, rerun, servicelet, clear ------------------------------------------------------------------------


def test_check_mode_predicts_the_staging_and_sends_only_reads() -> None:
    ex1 = lab()
    before = auth(ex1)
    result = ok(ex1.run(Action, {}, check_mode=True, diff=True))

    assert result["changed"] is True
    assert ex1.mutations() == []
    assert auth(ex1) == before
    assert len(ex1.calls) == 2  # the local read with Get-ExchangeServer; the other servers' certificates
    for call in ex1.calls:
        assert {op["op"] for op in call["module_args"]["operations"]} <= {
            "host.info", "host.certificates", "host.iis_bindings", "host.cluster", "Get-ExchangeServer",
            "Get-ExchangeCertificate", "Get-AuthConfig", "Get-TransportService", "Get-SendConnector",
            "Get-ReceiveConnector", "Get-HybridConfiguration", "Get-DatabaseAvailabilityGroup"}
    assert result["actions"] == ["created", "imported", "staged"]
    assert [step["operation"] for step in result["plan"]] == [
        "New-ExchangeCertificate", "Enable-ExchangeCertificate", "Export-ExchangeCertificate",
        *["Import-ExchangeCertificate"] * 3, "Set-AuthConfig"]
    assert result["imports"] == [{"certificate": "new", "thumbprint": "<Thumbprint returned by step new>",
                                  "servers": ["EX2", "EX3", "EX4"]}]
    assert result["thumbprint"] is None
    diff = result["diff"]
    assert diff["before"]["auth_config"]["current_thumbprint"] == before["CurrentCertificateThumbprint"]
    assert diff["before"]["installed_on"] == {"current": ["EX1", "EX2", "EX3", "EX4"], "next": []}
    assert diff["after"]["auth_config"]["next_thumbprint"] == "<Thumbprint returned by step new>"
    assert diff["after"]["installed_on"]["next"] == ["EX1", "EX2", "EX3", "EX4"]
    effective = parse_utc_datetime(diff["after"]["auth_config"]["next_effective_date"])
    assert effective >= lab_now(ex1) + 49 * HOUR
    # the one-time password and the PFX are never shown in the plan
    assert "********" in json.dumps(result["plan"])


def test_apply_creates_distributes_and_stages_then_a_rerun_is_a_no_op(tmp_path) -> None:
    ex1 = lab()
    ledger = tmp_path / "ledger.jsonl"
    transport_before = {name: server["internal_transport_thumbprint"]
                        for name, server in ex1.fleet.dump()["servers"].items()}
    current = auth(ex1)["CurrentCertificateThumbprint"]
    result = ok(ex1.run(Action, {"ledger": str(ledger)}, diff=True, action="exchange.pki.auth_certificate"))

    config = auth(ex1)
    new = config["NextCertificateThumbprint"]
    assert result["changed"] is True
    assert result["thumbprint"] == new
    assert config["CurrentCertificateThumbprint"] == current
    assert parse_utc_datetime(config["NextCertificateEffectiveDate"]) >= lab_now(ex1) + 48 * HOUR
    assert result["auth_config"]["after"]["next_thumbprint"] == new
    assert holders(ex1, new) == list(DAG)  # ex4 is Exchange 2016: the PFX was rebuilt with legacy encryption
    made = certificate(ex1, "ex1", new)
    assert made["subject"] == "CN=Microsoft Exchange Server Auth Certificate"
    assert made["friendly_name"] == "Microsoft Exchange Server Auth Certificate"
    for server in DAG:
        copy_ = certificate(ex1, server, new)
        assert (copy_["key_provider"], copy_["exportable"], copy_["has_private_key"]) == ("csp", True, True)
    # Making the certificate with -Services SMTP -Force never leaves the internal transport certificate replaced.
    assert {name: server["internal_transport_thumbprint"]
            for name, server in ex1.fleet.dump()["servers"].items()} == transport_before
    assert "Enable-ExchangeCertificate" in operations(ex1)
    assert result["diff"]["after"]["auth_config"]["next_thumbprint"] == new
    assert result["imports"] == [{"certificate": "new", "thumbprint": new, "servers": ["EX2", "EX3", "EX4"]}]
    record = result["change_record"]
    assert (record["action"], record["result"], record["server"]) == ("auth_certificate", "changed", "EX1")
    assert record["after"]["auth_config"]["next_thumbprint"] == new
    assert [written.as_dict() for written in read_records(ledger)] == [record]

    count = len(ex1.mutations())
    again = ok(ex1.run(Action, {"ledger": str(ledger)}, diff=True))
    assert again["changed"] is False
    assert (again["actions"], again["plan"], again["imports"]) == ([], [], [])
    assert "diff" not in again
    assert len(ex1.mutations()) == count
    assert len(read_records(ledger)) == 1


def test_the_servicelet_publishes_and_a_rerun_clears_the_previous_certificate() -> None:
    ex1 = lab()
    old = auth(ex1)["CurrentCertificateThumbprint"]
    ok(ex1.run(Action, {}))
    new = auth(ex1)["NextCertificateThumbprint"]
    assert ok(ex1.run(Action, {}))["changed"] is False  # daily reruns before the effective date: nothing due
    ex1.fleet.advance_clock(24 * 3600)
    assert ok(ex1.run(Action, {}))["changed"] is False

    ticks = ex1.fleet.advance_clock(40 * 3600)
    assert [entry["summary"]["current_after"] for entry in ticks["published"]] == [new]
    assert auth(ex1)["PreviousCertificateThumbprint"] == old

    result = ok(ex1.run(Action, {}, diff=True))
    assert result["actions"] == ["cleared"]
    assert (auth(ex1)["CurrentCertificateThumbprint"], auth(ex1)["PreviousCertificateThumbprint"]) == (new, None)
    assert result["diff"]["before"]["auth_config"]["previous_thumbprint"] == old
    assert result["diff"]["after"]["auth_config"]["previous_thumbprint"] is None
    assert ok(ex1.run(Action, {}))["changed"] is False


def test_a_due_next_certificate_the_servicelet_has_not_published_is_published() -> None:
    ex1 = lab()
    old = auth(ex1)["CurrentCertificateThumbprint"]
    ok(ex1.run(Action, {}))
    new = auth(ex1)["NextCertificateThumbprint"]
    # Ticks at +12 h ... +48 h; the effective date is 49 h 15 min ahead: at +50 h it is due and unpublished.
    assert ex1.fleet.advance_clock(50 * 3600)["published"] == []

    result = ok(ex1.run(Action, {}))
    assert result["actions"] == ["published", "cleared"]
    config = auth(ex1)
    assert (config["CurrentCertificateThumbprint"], config["NextCertificateThumbprint"]) == (new, None)
    assert config["PreviousCertificateThumbprint"] is None
    assert operations(ex1)[-2:] == ["Set-AuthConfig", "Set-AuthConfig"]
    assert "host.restart_service" not in operations(ex1)  # state=present never restarts anything
    assert old != new
    assert ok(ex1.run(Action, {}))["changed"] is False


def test_a_current_certificate_with_time_left_is_left_alone() -> None:
    ex1 = lab()
    result = ok(ex1.run(Action, {"renew_before_days": 30}))
    assert result["changed"] is False
    assert ex1.mutations() == []


# --- import where missing -------------------------------------------------------------------------------


def test_the_current_and_next_certificates_are_imported_where_they_are_missing() -> None:
    ex1 = lab("broken")
    config = auth(ex1)
    current, upcoming = config["CurrentCertificateThumbprint"], config["NextCertificateThumbprint"]
    assert "ex2" not in holders(ex1, current) and "ex2" not in holders(ex1, upcoming)

    check = ok(ex1.run(Action, {}, check_mode=True, diff=True))
    assert check["actions"] == ["imported"]
    assert ex1.mutations() == []
    assert check["diff"]["before"]["installed_on"] == {"current": ["EX1", "EX3"], "next": ["EX1", "EX3"]}
    everywhere = ["EX1", "EX2", "EX3"]
    assert check["diff"]["after"]["installed_on"] == {"current": everywhere, "next": everywhere}

    result = ok(ex1.run(Action, {}))
    assert result["imports"] == [{"certificate": "current", "thumbprint": current, "servers": ["EX2"]},
                                 {"certificate": "next", "thumbprint": upcoming, "servers": ["EX2"]}]
    assert "ex2" in holders(ex1, current) and "ex2" in holders(ex1, upcoming)
    assert operations(ex1) == ["Import-ExchangeCertificate", "Import-ExchangeCertificate"]
    assert auth(ex1) == config  # nothing else changes
    assert result["thumbprint"] is None
    assert any("CNG key" in warning and "auth_key_not_csp" in warning for warning in result["warnings"])
    assert [status["has_current"] for status in result["server_status"]] == [True, True, True]
    assert ok(ex1.run(Action, {}))["changed"] is False


# --- the emergency procedure -------------------------------------------------------------------------------


def expired_dag() -> LabHost:
    ex1 = lab()
    ex1.fleet.advance_clock(46 * 24 * 3600)  # the current Auth certificate expired a day ago
    return ex1


def test_an_expired_current_certificate_is_refused_with_state_present() -> None:
    ex1 = expired_dag()
    result = ex1.run(Action, {})
    assert result["failed"] is True
    assert "expired" in result["msg"] and "state=replaced" in result["msg"]
    assert ex1.mutations() == []


def test_the_emergency_replaces_publishes_clears_and_restarts() -> None:
    ex1 = expired_dag()
    old = auth(ex1)["CurrentCertificateThumbprint"]
    transport = ex1.fleet.dump()["servers"]["ex1"]["internal_transport_thumbprint"]

    check = ok(ex1.run(Action, {"state": "replaced"}, check_mode=True))
    assert check["actions"] == ["created", "imported", "published", "cleared", "restarted"]
    assert ex1.mutations() == []

    result = ok(ex1.run(Action, {"state": "replaced"}))
    config = auth(ex1)
    new = result["thumbprint"]
    assert config["CurrentCertificateThumbprint"] == new != old
    assert (config["NextCertificateThumbprint"], config["PreviousCertificateThumbprint"]) == (None, None)
    assert holders(ex1, new) == list(DAG)
    server = ex1.fleet.dump()["servers"]["ex1"]
    assert [restart["name"] for restart in server["services_restarted"]] == ["MSExchangeServiceHost"]
    assert [pool["name"] for pool in server["app_pool_recycles"]] == ["MSExchangeOWAAppPool", "MSExchangeECPAppPool"]
    assert server["owa_auth_certificate"] == new
    assert server["internal_transport_thumbprint"] == transport
    assert any("EX2, EX3, EX4" in warning and "MSExchangeServiceHost" in warning for warning in result["warnings"])
    assert result["auth_config"]["after"]["current_thumbprint"] == new
    # the next run removes the replaced (expired, now neither current, next nor previous) certificate; then nothing
    assert ok(ex1.run(Action, {"state": "replaced"}))["actions"] == ["removed"]
    assert holders(ex1, old) == []
    assert ok(ex1.run(Action, {"state": "replaced"}))["changed"] is False
    assert ok(ex1.run(Action, {}))["changed"] is False


def test_a_failed_emergency_restart_names_what_to_restart_by_hand_as_a_rerun_restarts_nothing() -> None:
    ex1 = expired_dag()
    ex1.fleet.set_fault("ex1", "host.restart_service", error="The service did not respond", times=1)
    result = ex1.run(Action, {"state": "replaced"})
    assert result["failed"] is True and "step restart_service_host (host.restart_service) failed" in result["msg"]
    assert "running this task again restarts nothing: restart MSExchangeServiceHost" in result["msg"]
    assert "host.restart_service" not in operations_after(ex1, lambda: ok(ex1.run(Action, {"state": "replaced"})))


def test_a_failed_emergency_publication_has_no_restart_note_as_a_rerun_does_it_all_again() -> None:
    ex1 = expired_dag()
    ex1.fleet.set_fault("ex1", "Set-AuthConfig", error="Active Directory is not available", times=1, after=1)
    result = ex1.run(Action, {"state": "replaced"})
    assert result["failed"] is True and "step publish (Set-AuthConfig) failed" in result["msg"]
    assert "restarts nothing" not in result["msg"]
    assert "host.restart_service" in operations_after(ex1, lambda: ok(ex1.run(Action, {"state": "replaced"})))


def operations_after(host: LabHost, task: Any) -> list[str]:
    """The operations the lab records while ``task`` runs."""
    before = len(host.mutations())
    task()
    return [entry["operation"] for entry in host.mutations()[before:]]


def test_the_emergency_publishes_a_usable_staged_certificate_instead_of_making_one() -> None:
    ex1 = lab()
    staged = ok(ex1.run(Action, {"lead_hours": 50 * 24}))  # takes effect after the current one expires
    assert any("expires on" in warning and "state=replaced" in warning for warning in staged["warnings"])
    upcoming = auth(ex1)["NextCertificateThumbprint"]
    ex1.fleet.advance_clock(46 * 24 * 3600)
    assert auth(ex1)["NextCertificateThumbprint"] == upcoming  # not due yet: the servicelet left it

    result = ok(ex1.run(Action, {"state": "replaced"}))
    assert result["actions"] == ["published", "cleared", "restarted"]
    assert operations(ex1).count("New-ExchangeCertificate") == 1  # the staging run's, none for the emergency
    assert auth(ex1)["CurrentCertificateThumbprint"] == upcoming


# --- refusals: hybrid, unreachable, internal transport -----------------------------------------------------------

HYBRID = {"hybrid": {"sending_servers": ["ex1"], "receiving_servers": ["ex1"], "domains": ["contoso.lab"]}}


def test_hybrid_is_refused_unless_acknowledged_and_then_the_wizard_is_named() -> None:
    ex1 = lab(scenario_with("dag", **HYBRID))
    refused = ex1.run(Action, {})
    assert refused["failed"] is True
    assert "Hybrid Configuration Wizard" in refused["msg"] and "acknowledge_hybrid" in refused["msg"]
    assert ex1.mutations() == []

    result = ok(ex1.run(Action, {"acknowledge_hybrid": True}))
    assert result["actions"] == ["created", "imported", "staged"]
    assert any("rerun the Hybrid Configuration Wizard once the new certificate is current" in warning
               for warning in result["warnings"])


def test_hybrid_does_not_block_an_import() -> None:
    ex1 = lab(scenario_with("broken", **HYBRID))
    assert ok(ex1.run(Action, {}))["actions"] == ["imported"]


def test_an_unreachable_server_is_refused_unless_ignored() -> None:
    ex1 = lab()
    ex1.fleet.set_unreachable("ex3", True)
    refused = ex1.run(Action, {})
    assert refused["failed"] is True
    assert "EX3" in refused["msg"] and "RPC server is unavailable" in refused["msg"]
    assert "ignore_unreachable" in refused["msg"]
    assert ex1.mutations() == []
    assert ex1.run(Action, {}, check_mode=True)["failed"] is True

    result = ok(ex1.run(Action, {"ignore_unreachable": True}))
    new = auth(ex1)["NextCertificateThumbprint"]
    assert holders(ex1, new) == ["ex1", "ex2", "ex4"]
    assert result["imports"][0]["servers"] == ["EX2", "EX4"]
    assert any("EX3" in warning and "ignore_unreachable" in warning for warning in result["warnings"])
    assert [status["reachable"] for status in result["server_status"]] == [True, True, False, True]

    ex1.fleet.set_unreachable("ex3", False)
    back = ok(ex1.run(Action, {}))
    assert back["actions"] == ["imported"]
    assert back["imports"] == [{"certificate": "next", "thumbprint": new, "servers": ["EX3"]}]
    assert holders(ex1, new) == list(DAG)


def test_a_server_without_an_internal_transport_certificate_is_refused() -> None:
    data = scenario_with("dag")
    data["servers"][0]["internal_transport"] = None
    ex1 = lab(data)
    result = ex1.run(Action, {})
    assert result["failed"] is True
    assert "no internal transport certificate" in result["msg"] and "another Exchange server" in result["msg"]
    assert ex1.mutations() == []


def test_an_auth_certificate_left_by_a_failed_run_is_staged_instead_of_making_another() -> None:
    ex1 = lab()
    ex1.fleet.set_fault("ex1", "Import-ExchangeCertificate", error="The RPC server is too busy.", times=1)
    failed = ex1.run(Action, {})
    assert failed["failed"] is True and "import_new_1" in failed["msg"]
    assert failed["change_record"]["result"] == "failed"
    assert auth(ex1)["NextCertificateThumbprint"] is None  # the later steps never ran
    made = failed["thumbprint"]
    assert holders(ex1, made) == ["ex1"]

    result = ok(ex1.run(Action, {}))
    assert "created" not in result["actions"]
    assert auth(ex1)["NextCertificateThumbprint"] == made == result["thumbprint"]
    assert holders(ex1, made) == list(DAG)
    assert operations(ex1).count("New-ExchangeCertificate") == 1


def test_rawdata_only_certificates_are_read_from_their_bytes() -> None:
    ex1 = lab()
    for server in DAG:
        ex1.fleet.set_rawdata_only(server, True)
    result = ok(ex1.run(Action, {}, check_mode=True))
    assert result["actions"] == ["created", "imported", "staged"]
    assert all(status["has_current"] for status in result["server_status"])


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    ({"lead_hours": 47}, "lead_hours must be at least 48"),
    ({"lead_hours": 10**12}, "lead_hours must be at most"),
    ({"renew_before_days": 0}, "renew_before_days must be between 1 and 365"),
    ({"renew_before_days": 10**9}, "renew_before_days must be between 1 and 365"),
    ({"servers": ["ex2\r\nex3"]}, "control character"),
    ({"servers": ["ex2\x00"]}, "control character"),
    ({"servers": ["ex2\u2028ex3"]}, "control character"),
    ({"servers": ["ex2\x9bex3"]}, "control character"),
    ({"servers": ["..\\ex2"]}, "is a path"),
    ({"servers": ["/etc/passwd"]}, "is a path"),
    ({"servers": ["ex 2"]}, "is not an Exchange server name"),
    ({"servers": []}, "at least one Exchange server"),
    ({"state": "absent"}, "state"),
    ({"exchange_username": "CONTOSO\\admin"}, "exchange_password"),
])
def test_bad_input_fails_naming_the_problem_before_anything_is_sent(args, message) -> None:
    ex1 = lab()
    failed_result(ex1.run(Action, args), re.escape(message))
    assert ex1.calls == []


def test_an_unknown_server_fails_and_changes_nothing() -> None:
    ex1 = lab()
    failed_result(ex1.run(Action, {"servers": ["ex2", "ex9"]}), "ex9 is not an Exchange server of this organisation")
    assert ex1.mutations() == []


def test_named_servers_are_read_in_one_round_trip() -> None:
    ex1 = lab()
    result = ok(ex1.run(Action, {"servers": ["ex2", "EX3.contoso.lab", "ex1"]}, check_mode=True))
    assert len(ex1.calls) == 1
    assert [status["name"] for status in result["server_status"]] == ["EX1", "EX2", "EX3"]
    assert result["imports"][0]["servers"] == ["EX2", "EX3"]


# --- secrets --------------------------------------------------------------------------------------------


def test_the_pfx_and_its_password_never_reach_the_result_or_the_ledger(tmp_path) -> None:
    ex1 = lab()
    ledger = tmp_path / "ledger.jsonl"
    result = ok(ex1.run(Action, {"ledger": str(ledger)}, diff=True))

    passwords = {value for call in ex1.calls for value in call["module_args"]["secrets"].values()}
    pfx = [arguments["FileData"]["$bytes"] for call in ex1.calls for op in call["module_args"]["operations"]
           if op["op"] == "Import-ExchangeCertificate" for arguments in (op["args"],)]
    assert len(passwords) == 1 and len(pfx) == 3
    written = json.dumps(result, default=str) + ledger.read_text(encoding="utf-8")
    for secret in (*passwords, *pfx, *(data[100:160] for data in pfx)):
        assert secret not in written
    # the password is never an argument in clear: only its marker travels with the operations
    operations_text = json.dumps([call["module_args"]["operations"] for call in ex1.calls])
    assert not any(secret in operations_text for secret in passwords)
