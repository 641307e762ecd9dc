# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the fleet_report action plugin: arguments, files, idempotence and check mode."""

from __future__ import annotations

import json
import stat

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.action import fleet_report
from ansible_collections.exchange.pki.plugins.modules import fleet_report as fleet_report_docs
from tests.unit.plugins.action.action_harness import argument_spec, documented_spec, run_action
from tests.unit.plugins.plugin_utils.report_facts import dag_fleet

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
    with pytest.raises(AnsibleActionFail, match=message):
        run(args)


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
    with pytest.raises(AnsibleActionFail, match=f"^dest {blocker / 'sub'}: cannot write the report"):
        run({"facts": dag_fleet(), "dest": str(blocker / "sub")})
