# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.auth_certificate removing retired Auth certificates, against the in-process lab.

The `dag` scenario's Auth certificate expires 45 days after the lab starts. A rotation (the module stages a new
one, the lab's AuthAdmin servicelet publishes it, the module clears the previous one) retires it while it is still
valid on ex1-ex4; moving the lab clock past day 45 expires it. Expectations come from the lab's dump and mutation
log and the ledger file; the role's alert events are its own template (roles/auth_certificate/vars/main.yml
``__auth_certificate_events``) rendered by Ansible over the module's result.
"""

from __future__ import annotations

import datetime
import json
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.action import auth_certificate
from ansible_collections.exchange.pki.plugins.plugin_utils._alerts import check_events
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime, parse_utc_datetime
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import ADMIN, LabHost
from tests.unit.plugins.action.test_auth_certificate import auth, holders

Action = auth_certificate.ActionModule
DAY = 24 * 3600
DAG = ("ex1", "ex2", "ex3", "ex4")
UPPER = [name.upper() for name in DAG]
ROLE_VARS = pathlib.Path(__file__).resolve().parents[4] / "roles" / "auth_certificate" / "vars" / "main.yml"


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW; the plugin judges dates by the lab host's clock (host.info UtcNow)."""


def lab() -> LabHost:
    return LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")


def not_after(host: LabHost, thumbprint: str) -> datetime.datetime:
    certificate = next(cert for cert in host.fleet.dump()["servers"]["ex1"]["certificates"]["My"]
                       if cert["thumbprint"] == thumbprint)
    return parse_utc_datetime(certificate["not_after"])


def lab_now(host: LabHost) -> datetime.datetime:
    return parse_utc_datetime(host.fleet.dump()["clock"]["now"])


def removals(host: LabHost) -> list[tuple[str, str]]:
    """(server, thumbprint) of every Remove-ExchangeCertificate the lab carried out."""
    return [(entry["server"].casefold(), entry["summary"]["thumbprint"]) for entry in host.mutations()
            if entry["operation"] == "Remove-ExchangeCertificate"]


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("failed") is not True, result.get("msg")
    return result


def batch(host: LabHost, server: str, operation: str, **args: Any) -> None:
    """One operation run directly on a lab server (what an administrator did by hand)."""
    answer = host.fleet.run_module(server, "exchange.pki.exchange_batch",
                                   {"operations": [{"id": "x", "op": operation, "args": args}]}, remote_user=ADMIN)
    assert answer["results"][0]["status"] == "ok", answer


def role_events(result: Mapping[str, Any], restarted: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The events the auth_certificate role sends for ``result`` (registered as the role's module task registers it,
    the role run on ex1 and ``restarted``, whose restart task changed something): its ``__auth_certificate_events``,
    rendered by Ansible's own templating."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    role = yaml.safe_load(ROLE_VARS.read_text(encoding="utf-8"))
    variables = {name: trust_as_template(value) if isinstance(value, str) else value for name, value in role.items()}
    registered = {key: value for key, value in result.items() if not key.startswith("_ansible")}
    hostvars = {"ex1": {}, **{host: {"__auth_certificate_restart": {"changed": True}} for host in restarted}}
    variables.update(auth_certificate_result={"failed": False, **registered}, inventory_hostname="ex1",
                     ansible_play_hosts_all=list(hostvars), hostvars=hostvars)
    events = Templar(loader=DataLoader(), variables=variables).template(
        trust_as_template("{{ __auth_certificate_events }}"))
    check_events(events)  # what exchange.pki.fleet_alert accepts
    return events


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(event["kind"], event["severity"]) for event in events]


def rotated() -> tuple[LabHost, str, str]:
    """The dag lab after a whole rotation: (lab, the retired certificate, the current one)."""
    ex1 = lab()
    old = auth(ex1)["CurrentCertificateThumbprint"]
    assert ok(ex1.run(Action, {}))["actions"] == ["created", "imported", "staged"]
    ex1.fleet.advance_clock(3 * DAY)  # past the effective date: the servicelet published it
    assert ok(ex1.run(Action, {}))["actions"] == ["cleared"]
    config = auth(ex1)
    assert (config["PreviousCertificateThumbprint"], config["NextCertificateThumbprint"]) == (None, None)
    assert holders(ex1, old) == list(DAG)
    return ex1, old, config["CurrentCertificateThumbprint"]


def expire(host: LabHost, thumbprint: str) -> None:
    """Move the lab clock one day past the certificate's NotAfter."""
    host.fleet.advance_clock((not_after(host, thumbprint) - lab_now(host)).total_seconds() + DAY)


# --- the retired certificate's life --------------------------------------------------------------------------


def referenced_by_hand_then_expired(host: LabHost, thumbprint: str, iis_servers: Sequence[str]) -> None:
    """What an administrator did by hand while ``thumbprint`` was valid: an IIS binding (*:8443:) on each of
    ``iis_servers`` and IMAP enabled on EX2; then the certificate expires."""
    for server in iis_servers:
        batch(host, server, "host.set_iis_binding", site="Default Web Site", binding_information="*:8443:",
              certificate_hash=thumbprint)
    batch(host, "ex1", "Enable-ExchangeCertificate", Server="EX2", Thumbprint=thumbprint, Services=["IMAP"], Force=True)
    expire(host, thumbprint)


def test_a_retired_certificate_stays_until_it_expires_then_goes_from_every_server(tmp_path) -> None:
    ex1, old, current = rotated()
    ledger = tmp_path / "ledger.jsonl"

    # Retired but valid: kept everywhere, said why, nothing sent.
    mutations = len(ex1.mutations())
    kept = ok(ex1.run(Action, {"ledger": str(ledger)}))
    assert kept["changed"] is False and kept["actions"] == []
    (entry,) = kept["retired"]
    assert (entry["thumbprint"], entry["expired"], entry["removed"]) == (old, False, [])
    assert [item["server"] for item in entry["kept"]] == UPPER
    assert all("not expired" in item["reason"] and "tokens" in item["reason"] for item in entry["kept"])
    assert len(ex1.mutations()) == mutations and not ledger.exists()
    assert role_events(kept) == []  # the role tells nothing: staying while valid is the rule, not a problem

    expire(ex1, old)

    # Check mode predicts the removal from every server and sends nothing.
    check = ok(ex1.run(Action, {"ledger": str(ledger)}, check_mode=True, diff=True))
    assert check["changed"] is True and check["actions"] == ["removed"]
    assert len(ex1.mutations()) == mutations and holders(ex1, old) == list(DAG)
    (entry,) = check["retired"]
    assert (entry["expired"], entry["removed"], entry["kept"], entry["skipped"]) == (True, UPPER, [], [])
    assert [(step["operation"], step["arguments"]["Thumbprint"]) for step in check["plan"]] == [
        ("Remove-ExchangeCertificate", old)] * 4
    assert check["diff"]["before"]["retired_installed_on"] == {old: UPPER}
    assert check["diff"]["after"]["retired_installed_on"] == {old: []}
    assert not ledger.exists()

    # Applied: gone from every server; the current certificate stays everywhere; one ledger record names it all.
    result = ok(ex1.run(Action, {"ledger": str(ledger)}, diff=True, action="exchange.pki.auth_certificate"))
    assert result["changed"] is True and result["actions"] == ["removed"]
    assert holders(ex1, old) == []
    assert holders(ex1, current) == list(DAG)
    assert sorted(removals(ex1)) == [(server, old) for server in DAG]
    assert result["retired"][0]["removed"] == UPPER
    assert result["diff"]["after"]["retired_installed_on"] == {old: []}
    record = result["change_record"]
    assert (record["action"], record["result"]) == ("auth_certificate", "changed")
    assert (record["before"]["retired_installed_on"], record["after"]["retired_installed_on"]) == (
        {old: UPPER}, {old: []})
    assert [written.as_dict() for written in read_records(ledger)] == [record]
    assert kinds(role_events(result)) == [("auth_removed", "info")]  # nothing kept: no auth_kept

    # The next daily run: nothing left, nothing sent, nothing recorded.
    count = len(ex1.mutations())
    again = ok(ex1.run(Action, {"ledger": str(ledger)}, diff=True))
    assert again["changed"] is False and (again["actions"], again["plan"], again["retired"]) == ([], [], [])
    assert len(ex1.mutations()) == count and len(read_records(ledger)) == 1


def test_the_previous_certificate_stays_while_it_is_previous_even_expired() -> None:
    ex1 = lab()
    old = auth(ex1)["CurrentCertificateThumbprint"]
    ok(ex1.run(Action, {}))
    expire(ex1, old)  # the servicelet published the new one on the way; nobody cleared the previous one
    assert auth(ex1)["PreviousCertificateThumbprint"] == old

    check = ok(ex1.run(Action, {}, check_mode=True))
    assert check["actions"] == ["cleared"] and check["retired"] == []
    assert "Remove-ExchangeCertificate" not in [step["operation"] for step in check["plan"]]

    cleared = ok(ex1.run(Action, {}))  # its confirming read does not count the cleared one as left to remove
    assert cleared["actions"] == ["cleared"] and cleared["retired"] == []
    assert auth(ex1)["PreviousCertificateThumbprint"] is None
    assert holders(ex1, old) == list(DAG) and removals(ex1) == []
    assert kinds(role_events(cleared)) == [("auth_cleared", "info")]  # the previous one: no auth_kept

    removed = ok(ex1.run(Action, {}))  # the next run: retired now, expired, unused
    assert removed["actions"] == ["removed"] and holders(ex1, old) == []
    assert ok(ex1.run(Action, {}))["changed"] is False


def test_the_current_and_the_next_certificates_are_never_removed() -> None:
    ex1 = lab()
    staged = ok(ex1.run(Action, {}))
    config = auth(ex1)
    assert staged["retired"] == [] and removals(ex1) == []  # current and next are Get-AuthConfig's

    # The current certificate expired (with a staged next one): still no removal, only the emergency procedure.
    expired = lab()
    current = auth(expired)["CurrentCertificateThumbprint"]
    expire(expired, current)
    check = ok(expired.run(Action, {"state": "replaced"}, check_mode=True))
    assert "removed" not in check["actions"] and check["retired"] == []
    assert all(step["arguments"].get("Thumbprint") != current for step in check["plan"]
               if step["operation"] == "Remove-ExchangeCertificate")
    assert holders(ex1, config["CurrentCertificateThumbprint"]) == list(DAG)
    assert holders(ex1, config["NextCertificateThumbprint"]) == list(DAG)


def test_a_referenced_retired_certificate_stays_where_it_is_referenced_and_says_why() -> None:
    ex1, old, _current = rotated()
    # An IIS binding on ex1 (read with host.iis_bindings) and on ex3 (seen through Get-ExchangeCertificate -Server,
    # IISServices), IMAP on ex2.
    referenced_by_hand_then_expired(ex1, old, iis_servers=("ex1", "ex3"))

    result = ok(ex1.run(Action, {}))
    (entry,) = result["retired"]
    assert entry["removed"] == ["EX4"]
    reasons = {item["server"]: item["reason"] for item in entry["kept"]}
    assert set(reasons) == {"EX1", "EX2", "EX3"}
    assert "iis_binding 'Default Web Site *:8443:'" in reasons["EX1"]
    assert "IMAP" in reasons["EX2"]
    assert "IIS binding" in reasons["EX3"] and "W3SVC/1" in reasons["EX3"]
    assert holders(ex1, old) == ["ex1", "ex2", "ex3"]
    assert removals(ex1) == [("ex4", old)]

    again = ok(ex1.run(Action, {}))  # still referenced: kept, and the rerun changes nothing
    assert again["changed"] is False and again["retired"][0]["removed"] == []
    assert holders(ex1, old) == ["ex1", "ex2", "ex3"]


def test_an_expired_retired_certificate_kept_where_referenced_is_one_warning_the_same_at_every_run() -> None:
    ex1, old, current = rotated()
    referenced_by_hand_then_expired(ex1, old, iis_servers=("ex1",))

    result = ok(ex1.run(Action, {}))
    (entry,) = result["retired"]
    assert entry["removed"] == ["EX3", "EX4"]
    events = role_events(result)
    assert kinds(events) == [("auth_removed", "info"), ("auth_kept", "warning")]
    removed, kept = events
    assert removed["server"] == "EX3, EX4"
    # One event for the certificate: where it stays, when it expired, and each server's reason.
    assert (kept["certificate"], kept["server"]) == (old, "EX1, EX2")
    assert format_utc_datetime(not_after(ex1, old)) in kept["summary"]
    for item in entry["kept"]:
        assert f"{item['server']}: {item['reason']}" in kept["summary"]
    assert "iis_binding 'Default Web Site *:8443:'" in kept["summary"] and "IMAP" in kept["summary"]

    # The next day nothing changes: the same event again, nothing else (a reminder, not a new event every run).
    ex1.fleet.advance_clock(DAY)
    again = ok(ex1.run(Action, {}))
    assert again["changed"] is False
    assert role_events(again) == [kept]

    # The administrator moved the IIS binding to the current certificate: the next run removes it from EX1, and
    # the warning names EX2 alone.
    batch(ex1, "ex1", "host.set_iis_binding", site="Default Web Site", binding_information="*:8443:",
          certificate_hash=current)
    later = ok(ex1.run(Action, {}))
    assert later["retired"][0]["removed"] == ["EX1"]
    assert kinds(role_events(later)) == [("auth_removed", "info"), ("auth_kept", "warning")]
    assert role_events(later)[1]["server"] == "EX2"


def test_a_retired_certificate_a_send_connector_names_stays() -> None:
    ex1, old, _current = rotated()
    name = "<I>CN=Microsoft Exchange Server Auth Certificate<S>CN=Microsoft Exchange Server Auth Certificate"
    connector = next(item for item in ex1.fleet.dump()["organization"]["send_connectors"])
    batch(ex1, "ex1", "Set-SendConnector", Identity=connector["Name"], TlsCertificateName=name)
    expire(ex1, old)
    result = ok(ex1.run(Action, {}))
    (entry,) = result["retired"]
    sources = {server.upper() for server in connector["SourceTransportServers"]}
    assert {item["server"] for item in entry["kept"]} == sources
    assert all("send_connector" in item["reason"] for item in entry["kept"])
    assert set(entry["removed"]) == set(UPPER) - sources
    assert {server for server, _thumbprint in removals(ex1)} == {name.casefold() for name in entry["removed"]}
    # The servers the connector keeps it on share one reason: the event names them together, the reason once.
    (kept,) = [event for event in role_events(result) if event["kind"] == "auth_kept"]
    assert kept["server"] == ", ".join(item["server"] for item in entry["kept"])
    (reason,) = {item["reason"] for item in entry["kept"]}
    assert kept["summary"].count(reason) == 1 and f"{kept['server']}: {reason}" in kept["summary"]


def test_an_unreachable_server_is_skipped_said_and_done_once_it_is_back() -> None:
    ex1, old, _current = rotated()
    expire(ex1, old)
    ex1.fleet.set_unreachable("ex3", True)

    refused = ex1.run(Action, {})
    assert refused["failed"] is True and "EX3" in refused["msg"] and removals(ex1) == []

    result = ok(ex1.run(Action, {"ignore_unreachable": True}))
    (entry,) = result["retired"]
    assert (entry["removed"], entry["skipped"]) == (["EX1", "EX2", "EX4"], ["EX3"])
    assert any(old in warning and "EX3" in warning and "unreachable" in warning for warning in result["warnings"])
    assert holders(ex1, old) == ["ex3"]

    ex1.fleet.set_unreachable("ex3", False)
    back = ok(ex1.run(Action, {}))
    assert back["actions"] == ["removed"] and back["retired"][0]["removed"] == ["EX3"]
    assert holders(ex1, old) == []
    assert ok(ex1.run(Action, {}))["changed"] is False


def test_remove_expired_retired_false_leaves_it_and_reads_no_more() -> None:
    ex1, old, _current = rotated()
    expire(ex1, old)
    calls = len(ex1.calls)
    result = ok(ex1.run(Action, {"remove_expired_retired": False}))
    assert result["changed"] is False and result["retired"] == []
    assert holders(ex1, old) == list(DAG)
    sent = [op["op"] for call in ex1.calls[calls:] for op in call["module_args"]["operations"]]
    assert sent.count("Get-ReceiveConnector") == 1 and sent.count("Get-TransportService") == 1  # the local read's


def test_the_reference_reads_travel_with_the_certificate_reads() -> None:
    ex1, old, _current = rotated()
    expire(ex1, old)
    calls = len(ex1.calls)
    ok(ex1.run(Action, {}, check_mode=True))
    assert len(ex1.calls) - calls == 2  # the local read; the other servers' certificates and references
    second = [(op["op"], json.dumps(op.get("args"), sort_keys=True))
              for op in ex1.calls[calls + 1]["module_args"]["operations"]]
    for server in ("EX2", "EX3", "EX4"):
        assert ("Get-TransportService", json.dumps({"Identity": server})) in second
        assert ("Get-ReceiveConnector", json.dumps({"Server": server})) in second


def test_after_an_emergency_replacement_the_next_run_removes_the_expired_former_certificate() -> None:
    ex1 = lab()
    old = auth(ex1)["CurrentCertificateThumbprint"]
    expire(ex1, old)
    replaced = ok(ex1.run(Action, {"state": "replaced"}))
    assert "removed" not in replaced["actions"]  # it was the current certificate when the run read it
    assert auth(ex1)["PreviousCertificateThumbprint"] is None and holders(ex1, old) == list(DAG)

    result = ok(ex1.run(Action, {"state": "replaced"}))
    assert result["actions"] == ["removed"] and result["retired"][0]["removed"] == UPPER
    assert holders(ex1, old) == [] and holders(ex1, result["auth_config"]["after"]["current_thumbprint"]) == list(DAG)
    assert ok(ex1.run(Action, {"state": "replaced"}))["changed"] is False


def test_a_reference_read_that_failed_keeps_it_and_the_warning_is_one_line() -> None:
    ex1, old, _current = rotated()
    expire(ex1, old)
    # PowerShell's error text spans lines (and may carry any control character); fleet_alert takes one line per
    # field, so every event of the run (auth_warning for the failed read, auth_kept) is made one line.
    ex1.fleet.set_fault("ex1", "Get-ReceiveConnector",
                        error="The operation couldn't be performed.\r\n    + CategoryInfo          : ReadError\x00\x85")
    result = ok(ex1.run(Action, {}))
    (entry,) = result["retired"]
    assert entry["removed"] == [] and [item["server"] for item in entry["kept"]] == UPPER
    assert all("\r\n" in item["reason"] for item in entry["kept"])
    events = role_events(result)  # check_events accepted them
    assert kinds(events) == [("auth_kept", "warning"), ("auth_warning", "warning")]
    assert "Get-ReceiveConnector" in events[1]["summary"] and "ReadError" in events[1]["summary"]
    kept = events[0]
    assert (kept["severity"], kept["certificate"], kept["server"]) == ("warning", old, ", ".join(UPPER))
    assert "ReadError" in kept["summary"] and "couldn't be performed. + CategoryInfo : ReadError" in kept["summary"]
    assert holders(ex1, old) == list(DAG)


def test_events_naming_every_server_of_a_large_organisation_stay_within_what_fleet_alert_accepts() -> None:
    """A hundred servers with long names: auth_imported, auth_removed and auth_restarted name them all in a summary and
    server field that fleet_alert accepts (at most 1,024 and 256 characters), instead of making it refuse the alert."""
    servers = [f"EXCH-MBX-PRD-{number:03d}.corp.contoso.example" for number in range(100)]
    result = {
        "changed": True, "actions": ["imported", "removed"],
        "imports": [{"certificate": "next", "thumbprint": "A" * 40, "servers": servers}],
        "retired": [{"thumbprint": "B" * 40, "not_after": "2026-01-01T00:00:00Z", "expired": True,
                     "removed": servers, "kept": [], "skipped": []}],
    }
    events = role_events(result, restarted=servers)  # check_events refuses a field over its limit
    assert kinds(events) == [("auth_imported", "info"), ("auth_removed", "info"), ("auth_restarted", "info")]
    for event in events:
        assert event["server"].startswith(servers[0] + ", " + servers[1]), event
        assert len(event["server"]) <= 256 and len(event["summary"]) <= 1024, event
