# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the fleet_report action plugin: arguments, files, idempotence and check mode."""

from __future__ import annotations

import json
import re
import stat

import pytest

from ansible_collections.exchange.pki.plugins.action import fleet_report
from ansible_collections.exchange.pki.plugins.modules import fleet_report as fleet_report_docs
from tests.unit.plugins.action.action_harness import argument_spec, documented_spec, failed_result, run_action
from tests.unit.plugins.plugin_utils.report_facts import dag_fleet, lab_dag_fleet, not_collected

NOW = "2026-11-25T08:00:00Z"


def run(args, **kwargs):
    return run_action(fleet_report.ActionModule, args, **kwargs)


def test_documentation_matches_the_argument_spec():
    assert documented_spec(fleet_report_docs) == argument_spec(fleet_report.ARGUMENT_SPEC.argument_spec)


def test_writes_every_format_and_returns_the_summary(tmp_path):
    dest = tmp_path / "report"
    result = run({"facts": dag_fleet(), "dest": str(dest), "now": NOW, "title": "Contoso"})
    assert result["changed"] is True and not result.get("failed"), result
    assert set(result["files"]) == {"html", "csv", "json", "markdown", "prometheus"}
    assert sorted(result["changed_files"]) == sorted(result["files"].values())
    assert result["summary"]["findings"] == {"critical": 4, "warning": 7, "info": 0}
    assert result["summary"]["hosts_missing"] == ["ex5"]
    assert result["markdown"] == (dest / "exchange_pki_report.md").read_text()
    assert result["action_plan"][0]["finding_id"] == "expiring_critical"
    assert result["summary"]["not_collected"] == {"ex5": {"reason": None, "message": None}}
    assert json.loads((dest / "exchange_pki_report.json").read_text())["title"] == "Contoso"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o750


def test_second_run_is_not_changed(tmp_path):
    args = {"facts": dag_fleet(), "dest": str(tmp_path), "formats": ["json", "markdown"]}
    assert run(args)["changed"] is True
    result = run(args)  # another generation time, same facts
    assert result["changed"] is False and result["changed_files"] == []
    assert set(result["files"]) == {"json", "markdown"}


def test_check_mode_writes_nothing(tmp_path):
    dest = tmp_path / "report"
    result = run({"facts": dag_fleet(), "dest": str(dest), "now": NOW}, check_mode=True)
    assert result["changed"] is True and len(result["changed_files"]) == 5
    assert "markdown" in result and not dest.exists()


@pytest.mark.parametrize(("args", "message"), [
    ({"facts": {}, "dest": "/tmp/x", "formats": ["pdf"]}, "value of formats must be one or more of"),
    ({"dest": "/tmp/x"}, "missing required arguments: facts"),
])
def test_invalid_arguments_are_refused(args, message):
    failed_result(run(args), message)


@pytest.mark.parametrize(("args", "message"), [
    ({"facts": {}, "dest": "/tmp/x", "now": "yesterday"}, "now: 'yesterday' is not an ISO-8601"),
    ({"facts": {"ex1": {"certificates": [], "findings": [{"id": "a", "severity": "bad"}]}}, "dest": "/tmp/x"},
     "host ex1: finding a has severity 'bad'"),
])
def test_bad_input_fails_clearly(args, message):
    result = run(args)
    assert result["failed"] is True and message in result["msg"]


def test_an_unwritable_destination_fails_clearly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    failed_result(run({"facts": dag_fleet(), "dest": str(blocker / "sub")}),
                  f"^dest {blocker / 'sub'}: cannot write the report")


def test_the_action_plan_is_returned_worst_first(tmp_path):
    facts = lab_dag_fleet()
    facts["ex5"] = not_collected("authentication_refused", "the server refused the credentials (401)")
    result = run({"facts": facts, "dest": str(tmp_path), "now": NOW, "formats": ["json"]})
    plan = result["action_plan"]
    assert [item["severity"] for item in plan] == sorted(
        (item["severity"] for item in plan), key=["critical", "warning", "info"].index)
    (item,) = [item for item in plan if item["finding_id"] == "not_collected"]
    assert item["servers"] == ["ex5"] and "authentication refused" in item["title"]


@pytest.mark.parametrize(("args", "message"), [
    ({"dest": ""}, "dest must be a directory path, got an empty string"),
    ({"dest": "  "}, "dest must be a directory path, got an empty string"),
    ({"formats": []}, "formats must name at least one of html, csv, json, markdown, prometheus, got []"),
    ({"title": "a\r\nBcc: x"}, "title must be one line"),
    ({"title": ""}, "title must be one line"),
    ({"title": "Fleet\u2028Bcc: x"}, "title must be one line"),  # a line separator, as fleet_alert refuses it
    ({"title": "Fleet\x85report"}, "title must be one line"),
    ({"dest": "out\u2029put"}, "contains a control character"),
    ({"ledger": "ledger\x9b.jsonl"}, "ledger must be a path without control characters"),
])
def test_hostile_options_are_refused_before_anything_is_written(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    failed_result(run({"facts": dag_fleet(), "dest": str(tmp_path / "out"), **args}), re.escape(message))
    assert list(tmp_path.iterdir()) == []


def test_a_nul_in_dest_is_refused(tmp_path):
    failed_result(run({"facts": dag_fleet(), "dest": str(tmp_path / "a\0b")}),
                  "dest .* contains (a|the) control character")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda facts: facts["ex1"]["certificates"].append({}),
     "host ex1: certificates[5]: thumbprint is missing or not a string"),
    (lambda facts: facts["ex1"]["certificates"][0].update(days_remaining="abc"),
     "host ex1: certificates[0] (C25ED37BDA9003A3A9F51170199FACAFBA192C45): days_remaining 'abc' is not an integer"),
])
def test_a_malformed_certificate_fails_clearly_and_writes_nothing(tmp_path, mutate, message):
    dest = tmp_path / "report"
    run({"facts": dag_fleet(), "dest": str(dest), "now": NOW})
    before = {path.name: path.read_bytes() for path in dest.iterdir()}
    facts = dag_fleet()
    mutate(facts)
    result = run({"facts": facts, "dest": str(dest), "now": "2026-11-26T08:00:00Z"})
    assert result["failed"] is True and result["msg"] == message and "exception" not in result
    assert {path.name: path.read_bytes() for path in dest.iterdir()} == before
