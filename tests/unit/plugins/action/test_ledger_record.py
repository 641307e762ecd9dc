# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.ledger_record: the record it appends, check mode, bad input, secrets."""

from __future__ import annotations

import json
import os
import pathlib
import stat
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.action import ledger_record
from ansible_collections.exchange.pki.plugins.modules import ledger_record as ledger_record_docs
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_ledger
from tests.unit.plugins.action.action_harness import _documented, argument_spec, failed_result, run_action

ROOT = pathlib.Path(__file__).resolve().parents[4]
FRAGMENTS = ROOT / "plugins" / "doc_fragments"
SECRET = "Renewal-Pfx-S3cret!"  # noqa: S105 - the test's own secret, grepped for below
OLD = "AB" * 20
NEW = "CD" * 20


def run(args: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return run_action(ledger_record.ActionModule, args, **kwargs)


def documented_options() -> dict[str, Any]:
    """The options as ansible-doc shows them: the fragments' options, each overridden key by key by the module's."""
    doc = yaml.safe_load(ledger_record_docs.DOCUMENTATION)
    options: dict[str, Any] = {}
    for fragment in doc["extends_documentation_fragment"]:
        name = fragment.removeprefix("exchange.pki.")
        if name.startswith("_"):
            continue
        source = (FRAGMENTS / f"{name}.py").read_text(encoding="utf-8")
        options.update(yaml.safe_load(source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0])["options"])
    for name, own in doc["options"].items():
        options[name] = {**options.get(name, {}), **own}
    return options


def failed_record(ledger: pathlib.Path, **extra: Any) -> dict[str, Any]:
    return {
        "ledger": str(ledger), "action": "renewal_failed", "server": "EX2", "result": "failed",
        "before": {"thumbprint": OLD}, "message": "step services: Enable-ExchangeCertificate failed",
        "after": {"identity": "id-3f9a1b2c4d5e", "plan_id": "20261202T0215Z-3f9a1b2c", "thumbprint": NEW,
                  "group": "DAG1", "failed_host": "ex2", "step": "services"},
        "run_id": "20261202T0215Z-3f9a1b2c", **extra,
    }


def test_the_documentation_mirrors_the_argument_spec():
    documented = argument_spec(_documented(documented_options()))
    assert documented == argument_spec(dict(ledger_record.ARGUMENT_SPEC.argument_spec))


def test_appends_the_record_renewal_plan_reads(tmp_path):
    ledger = tmp_path / "ledger.jsonl"

    result = run(failed_record(ledger))

    assert result["changed"] is True and result["written"] is True, result
    contents = read_ledger(ledger)
    assert contents.skipped == ()
    (record,) = [r.as_dict() for r in contents.records]
    assert record == result["change_record"]
    assert record["module"] == "exchange.pki.ledger_record"
    assert (record["action"], record["result"], record["server"]) == ("renewal_failed", "failed", "EX2")
    assert record["after"]["identity"] == "id-3f9a1b2c4d5e" and record["after"]["step"] == "services"
    assert record["before"] == {"thumbprint": OLD}
    assert record["run_id"] == "20261202T0215Z-3f9a1b2c"
    assert record["message"].startswith("step services")
    assert stat.S_IMODE(os.stat(ledger).st_mode) == 0o600


@pytest.mark.parametrize(("extra", "expected"), [
    ({"run_id": None, "ledger_run_id": "module-defaults-id"}, "module-defaults-id"),
    ({"ledger_run_id": "module-defaults-id"}, "20261202T0215Z-3f9a1b2c"),
    ({"run_id": None, "ledger_run_id": ""}, None),
])
def test_run_id_else_the_ledger_run_id_of_module_defaults(tmp_path, extra, expected):
    ledger = tmp_path / "ledger.jsonl"

    result = run(failed_record(ledger, **extra))

    assert result["change_record"]["run_id"] == expected
    (record,) = read_ledger(ledger).records
    assert record.run_id == expected


@pytest.mark.parametrize("option", ["run_id", "ledger_run_id"])
def test_a_run_id_on_two_lines_is_refused(tmp_path, option):
    ledger = tmp_path / "ledger.jsonl"

    raised = failed_result(run(failed_record(ledger, **{"run_id": None, option: "plan-1\nforged"})),
                           f"{option} must be one line")

    assert "forged" not in raised["msg"] and not ledger.exists()


def test_a_second_record_is_appended_after_the_first(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    run(failed_record(ledger))

    run({"ledger": str(ledger), "action": "renewal_done", "after": {"identity": "id-3f9a1b2c4d5e", "group": "DAG1"}})

    records = [r.as_dict() for r in read_ledger(ledger).records]
    assert [(r["action"], r["result"], r["server"]) for r in records] == [
        ("renewal_failed", "failed", "EX2"), ("renewal_done", "changed", "organization")]
    assert records[1]["message"] is None and records[1]["before"] == {}


def test_check_mode_writes_nothing_and_returns_the_record(tmp_path):
    ledger = tmp_path / "ledger.jsonl"

    result = run(failed_record(ledger), check_mode=True)

    assert result["changed"] is True and result["written"] is False
    assert result["change_record"]["action"] == "renewal_failed"
    assert not ledger.exists()


def test_secrets_are_masked_by_key_name(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = failed_record(ledger)
    args["after"] = {**args["after"], "pfx_password": SECRET, "nested": [{"private_key": SECRET}]}

    result = run(args)

    text = ledger.read_text(encoding="utf-8")
    assert SECRET not in text and SECRET not in json.dumps(result)
    assert result["change_record"]["after"]["pfx_password"] == "********"
    assert result["change_record"]["after"]["nested"] == [{"private_key": "********"}]


@pytest.mark.parametrize(("change", "problem"), [
    ({"action": ""}, "action must not be empty"),
    ({"action": "   "}, "action must not be blank"),
    ({"server": "EX\ud8002"}, "server must be one line without control characters .* or lone surrogates"),
    ({"action": "renewal\nfailed"}, "action must be one line"),
    ({"server": "EX2\r\nforged"}, "server must be one line"),
    ({"server": "EX2\x00"}, "server must be one line"),
    ({"action": "x" * 129}, "action is 129 characters long"),
    ({"message": None}, "message is required when result is failed"),
    ({"result": "unchanged"}, "result"),
])
def test_bad_input_is_named_and_nothing_is_written(tmp_path, change, problem):
    ledger = tmp_path / "ledger.jsonl"

    failed_result(run(failed_record(ledger, **change)), problem)

    assert not ledger.exists()


def test_a_value_json_cannot_hold_is_refused(tmp_path):
    ledger = tmp_path / "ledger.jsonl"

    failed_result(run(failed_record(ledger, after={"when": float("nan")})), "after")

    assert not ledger.exists()


def test_the_ledger_option_is_required():
    failed_result(run({"action": "renewal_done"}), "ledger")


def test_a_ledger_in_a_missing_directory_fails_naming_the_path(tmp_path):
    ledger = tmp_path / "missing" / "ledger.jsonl"

    for check_mode in (True, False):  # refused before anything is written or sent, in check mode too
        message = failed_result(run(failed_record(ledger), check_mode=check_mode))["msg"]
        assert str(ledger) in message and "does not exist" in message
