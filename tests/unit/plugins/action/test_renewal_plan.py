# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the renewal_plan action plugin: options (core's spec and the values), no host contacted, the
ledger read and never written, check mode, on the facts certificate_info collects from the lab's dag scenario."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.exchange.pki.plugins.action import renewal_plan
from ansible_collections.exchange.pki.plugins.modules import renewal_plan as renewal_plan_docs
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import append_records
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import argument_spec, documented_spec, failed_result, run_action
from tests.unit.plugins.plugin_utils.test__renewal import ADCS, lab_facts, lab_mutations, record

NOW_TEXT = "2026-11-25T08:00:00Z"


def run(args, **kwargs):
    return run_action(renewal_plan.ActionModule, {"now": NOW_TEXT, **args}, **kwargs)


def test_documentation_matches_the_argument_spec():
    assert documented_spec(renewal_plan_docs) == argument_spec(renewal_plan.ARGUMENT_SPEC.argument_spec)


def test_the_dag_plan_through_the_plugin_changes_nothing():
    facts = lab_facts()
    result = run({"facts": facts, "policy": ADCS})
    assert result["changed"] is False and not result.get("failed"), result
    assert result["summary"] == {"due": 1, "current": 0, "deferred": 0, "backoff": 0, "blocked": 0, "skipped": 0,
                                 "not_renewed": 12}
    item = result["items"][0]
    assert item["rollout"] == [["ex1"], ["ex2"], ["ex3"], ["ex4"]]
    assert item["issue"]["request_server"] == "ex1" and item["issue"]["pfx_encryption"] == "legacy"
    assert [group["name"] for group in result["groups"]] == ["DAG1", "ex4"]
    assert result["markdown"].startswith("# Renewal plan ")
    assert lab_mutations() == []  # reading the lab for the facts changed nothing, and the plan contacts no host
    json.dumps(result)  # JSON-able, as the role reads it


def test_check_mode_returns_the_same_plan():
    args = {"facts": lab_facts(), "policy": ADCS}
    assert run(args, check_mode=True) == run(args)


def test_defaults_without_a_policy_skip_the_due_item():
    result = run({"facts": lab_facts()})
    assert result["items"][0]["status"] == "skipped"
    assert result["policy"]["renew_before_days"] == 30 and result["policy"]["replace_on"] == ["expired"]


def test_the_failure_record_of_the_inventory_role_blocks_the_group():
    facts = lab_facts()
    facts["ex5"] = {"not_collected": {"reason": "access_denied", "message": "Access is denied."}}
    result = run({"facts": facts, "policy": ADCS, "host_vars": {"ex5": {"group": "ex4"}}})
    assert result["unavailable_hosts"] == {"ex5": "access denied: Access is denied."}
    assert result["items"][0]["status"] == "blocked"


def test_the_ledger_is_read_and_never_written(tmp_path):
    identity = run({"facts": lab_facts(), "policy": ADCS})["items"][0]["identity"]
    ledger = tmp_path / "ledger.jsonl"
    append_records(ledger, [record(identity, "renewal_failed", NOW)])
    before = (ledger.read_bytes(), os.stat(ledger).st_mtime_ns)
    result = run({"facts": lab_facts(), "policy": ADCS, "ledger": str(ledger)})
    assert result["items"][0]["status"] == "backoff" and result["items"][0]["backoff_until"] == "2026-11-25T09:00:00Z"
    assert run({"facts": lab_facts(), "policy": ADCS, "ledger": str(ledger), "force": True})["items"][0]["status"] == (
        "due")
    assert (ledger.read_bytes(), os.stat(ledger).st_mtime_ns) == before
    missing = run({"facts": lab_facts(), "policy": ADCS, "ledger": str(tmp_path / "new.jsonl")})
    assert missing["items"][0]["status"] == "due" and not (tmp_path / "new.jsonl").exists()


def test_a_ledger_that_cannot_be_read_fails_naming_it(tmp_path):
    failed_result(run({"facts": lab_facts(), "ledger": str(tmp_path)}), "ledger: ledger .*: is not a regular file")


def test_torn_ledger_lines_are_warnings(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"torn\n')
    result = run({"facts": lab_facts(), "policy": ADCS, "ledger": str(ledger)})
    assert result["warnings"] == [f"ledger {ledger}: line 1 skipped (not a complete JSON line (torn write?))"]


def test_backend_secrets_never_reach_the_result():
    policy = {"backends": [{"backend": "ownca", "options": {"ca_key_password": "Own-CA-Secret-1"}}]}
    result = run({"facts": lab_facts(), "policy": policy})
    assert "Own-CA-Secret-1" not in json.dumps(result)


@pytest.mark.parametrize(("args", "message"), [
    ({}, "missing required arguments: facts"),
    ({"policy": {"bogus": 1}}, "Unsupported parameters for (None) module: policy.bogus"),
    ({"policy": {"renew_before_days": "soon"}}, "argument 'renew_before_days' is of type str found in 'policy'"),
    ({"policy": {"renew_before_days": -5}}, "policy.renew_before_days must be an integer from 0 to 3650, got -5"),
    ({"policy": {"renew_before_days": 10 ** 40}}, "policy.renew_before_days must be an integer from 0 to 3650"),
    ({"policy": {"renew_before_percentage": 0}}, "policy.renew_before_percentage must be an integer from 1 to 99"),
    ({"policy": {"rollout_batch": 0}}, "policy.rollout_batch must be an integer from 1 to 10000, got 0"),
    ({"policy": {"group_concurrency": 0}}, "policy.group_concurrency must be an integer from 1 to 10000, got 0"),
    ({"policy": {"key_size": 1024}}, "value of key_size must be one of: 2048, 3072, 4096, got: 1024 found in policy"),
    ({"policy": {"replace_on": ["expired", "not_a_finding"]}}, "policy.replace_on[1]: 'not_a_finding' is not"),
    ({"policy": {"required_names": ["a\x00b.lab"]}}, "policy.required_names[0] 'a\\x00b.lab' contains a control"),
    ({"policy": {"backends": [{"backend": "venafi"}]}}, "value of backend must be one of: adcs, acme, ownca, manual"),
    ({"policy": {"backends": [{"backend": "acme", "match": {"names": ["*.lab\n"]}}]}},
     "policy.backends[0].match.names[0] '*.lab\\n' contains a control character"),
    ({"policy": {"windows": [{"start": "25:00", "end": "05:00"}]}}, "policy.windows[0].start must be a time HH:MM"),
    ({"policy": {"windows": [{"start": "22:00", "end": "05:00", "timezone": "Europe/Atlantis"}]}},
     "policy.windows[0].timezone: 'Europe/Atlantis' is not a known time zone"),
    ({"policy": {"windows": [{"days": ["someday"], "start": "22:00", "end": "05:00"}]}},
     "policy.windows[0].days[0]: 'someday' is not a weekday"),
    ({"policy": {"windows": [{"start": "22:00"}]}}, "missing required arguments: end found in policy -> windows"),
    ({"policy": {"stop_on_failure": "never"}}, "value of stop_on_failure must be one of: group, all, got: never"),
    ({"policy": {"backoff": {"initial_hours": 0}}}, "policy.backoff.initial_hours must be an integer from 1"),
    ({"policy": {"backoff": {"max_hours": 99999999999}}}, "policy.backoff.max_hours must be an integer from 1"),
    ({"host_vars": {"ex1": {"group": "DAG\r\n1"}}}, "host_vars.ex1.group 'DAG\\r\\n1' contains a control"),
    ({"host_vars": {"ex1": {"grp": "x"}}}, "host_vars.ex1: unknown key(s) 'grp'"),
    ({"now": "yesterday"}, "now: 'yesterday' is not an ISO-8601 date and time"),
    ({"plan_id": "plan\nid"}, "plan_id must be 1 to 64 letters"),
    ({"plan_id": "x" * 65}, "plan_id must be 1 to 64 letters"),
])
def test_bad_input_fails_naming_the_key(args, message):
    full = {"facts": lab_facts(), **args} if args else {"now": NOW_TEXT}
    error = failed_result(run(full) if args else run_action(renewal_plan.ActionModule, full))
    assert message in error["msg"]


def test_a_malformed_fact_fails_naming_the_host_and_field():
    facts = lab_facts()
    facts["ex3"]["certificates"][2]["references"] = "IIS"
    failed_result(run({"facts": facts}), r"facts\.ex3: certificates\[2\]\.references must be a list")


def test_an_explicit_plan_id_and_now_are_used():
    result = run({"facts": lab_facts(), "now": "2026-12-02T03:15:00+01:00", "plan_id": "nightly-2026-12-02"})
    assert result["plan_id"] == "nightly-2026-12-02" and result["generated_at"] == "2026-12-02T02:15:00Z"


def test_ari_through_the_plugin_makes_an_acme_identity_due_and_bad_ari_is_named():
    facts = lab_facts()
    thumbprint = next(c["thumbprint"] for c in facts["ex1"]["certificates"] if c["subject"] == "CN=mail.contoso.lab")
    policy = {"renew_before_days": 10, "backends": [{"backend": "acme", "options": {"directory": "https://a/d"}}]}
    advice = {"should_renew": True, "supports_ari": True, "msg": "The suggested renewal interval provided by ARI "
              "has begun", "cert_id": "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"}
    assert run({"facts": facts, "policy": policy})["items"][0]["status"] == "current"
    item = run({"facts": facts, "policy": policy, "ari": {thumbprint: advice}})["items"][0]
    assert item["status"] == "due" and item["reasons"][0].startswith("ACME renewal information (ARI): ")
    failed_result(run({"facts": facts, "policy": policy, "ari": {"AB" * 20: {"should_renew": "maybe"}}}),
                  r"ari\.(AB)+\.should_renew must be true or false")
