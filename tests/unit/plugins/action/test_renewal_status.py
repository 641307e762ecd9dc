# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the renewal_status action plugin: options, the ledger, the metrics file, and its events reaching
fleet_alert."""

from __future__ import annotations

import datetime
import os
import stat

import pytest

from ansible_collections.exchange.pki.plugins.action import fleet_alert, renewal_status
from ansible_collections.exchange.pki.plugins.modules import renewal_status as renewal_status_docs
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import append_records
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import argument_spec, documented_spec, failed_result, run_action
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink
from tests.unit.plugins.plugin_utils.test__renewal_status import MAIL, lab_facts, make_plan, outcome

ERROR = "Enable-ExchangeCertificate failed on EX2: the certificate's private key is not accessible"


def run(args, **kwargs):
    return run_action(renewal_status.ActionModule, {"now": format_utc_datetime(NOW), **args}, **kwargs)


@pytest.fixture
def plan():
    return make_plan()


@pytest.fixture
def ledger(tmp_path, plan):
    path = tmp_path / "ledger.jsonl"
    identity = plan["items"][0]["identity"]
    append_records(path, [outcome(identity, "renewal_failed", NOW - datetime.timedelta(minutes=3),
                                  plan_id=plan["plan_id"], server="EX2", step="enable", message=ERROR,
                                  rolled_back=False)])
    return path


def test_documentation_matches_the_argument_spec():
    assert documented_spec(renewal_status_docs) == argument_spec(renewal_status.ARGUMENT_SPEC.argument_spec)


def test_writes_the_metrics_file_atomically_and_world_readable(tmp_path, plan, ledger):
    path = tmp_path / "exchange_pki_renewal.prom"
    result = run({"plan": plan, "facts": lab_facts(), "ledger": str(ledger), "metrics_path": str(path)})
    assert result["changed"] is True and result["metrics_path"] == str(path)
    assert path.read_text() == result["metrics"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["exchange_pki_renewal.prom", "ledger.jsonl"]  # no temporary left
    (rollout,) = result["failed_rollouts"]
    assert (rollout["server"], rollout["step"], rollout["error"]) == ("EX2", "enable", ERROR)
    again = run({"plan": plan, "facts": lab_facts(), "ledger": str(ledger), "metrics_path": str(path)})
    assert again["changed"] is False  # same clock, same ledger: the same text


def test_check_mode_writes_nothing(tmp_path, plan):
    path = tmp_path / "metrics.prom"
    result = run({"plan": plan, "metrics_path": str(path)}, check_mode=True)
    assert result["changed"] is True and not path.exists() and result["metrics"]


def test_without_metrics_path_nothing_is_written_and_nothing_changes(tmp_path, plan):
    result = run({"plan": plan, "ledger": str(tmp_path / "missing.jsonl")})
    assert result["changed"] is False and "metrics_path" not in result and result["ledger_records"] == []
    assert not (tmp_path / "missing.jsonl").exists()


@pytest.mark.parametrize(("extra", "message"), [
    ({"metrics_path": "{tmp}"}, r"^metrics_path .* is a directory"),
    ({"metrics_path": "{tmp}/nowhere/metrics.prom"}, r"^metrics_path .*: the directory .* does not exist"),
    ({"ledger": "{tmp}"}, r"^ledger: ledger .* is not a regular file"),
    ({"stalled_after": "a week"}, r"^stalled_after must be a duration"),
    ({"failed_attempts": 0}, r"^failed_attempts must be a whole number"),
    ({"run": {"outcome": "great"}}, r"value of outcome must be one of: success, failed, pending, noop"),
    ({"now": "tomorrow"}, r"^now: 'tomorrow' is not an ISO-8601"),
    ({"plan": {"changed": False}}, r"^plan must be the registered result of exchange.pki.renewal_plan"),
])
def test_bad_options_fail_clearly(tmp_path, plan, extra, message):
    args = {"plan": plan, **{key: value.format(tmp=tmp_path) if isinstance(value, str) else value
                             for key, value in extra.items()}}
    failed_result(run(args), message)
    assert os.listdir(tmp_path) == []


def test_the_events_go_through_fleet_alert(plan, ledger):
    result = run({"plan": plan, "facts": lab_facts(), "ledger": str(ledger)})
    assert [event["kind"] for event in result["events"]] == ["renewal_failed", "renewal_stalled"]
    with http_sink() as hook:
        alert = run_action(fleet_alert.ActionModule, {
            "events": result["events"], "min_severity": "warning",
            "webhook": {"url": hook.url, "allow_http": True, "timeout": 5}})
    assert alert["changed"] is True and alert["events"] == 2
    received = hook.received[0].body["events"]
    identity = plan["items"][0]["identity"]
    assert received[0] == {"severity": "critical", "kind": "renewal_failed", "server": "EX2", "certificate": identity,
                           "step": "enable", "error": ERROR,
                           "summary": f"Renewal of {MAIL} failed on EX2 at step enable"}
    assert received[1]["kind"] == "renewal_stalled"
