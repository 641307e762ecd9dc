# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of ChangingAction, the read -> decide -> plan -> apply -> confirm -> record skeleton.

Two small modules written here drive it against the in-process lab (tests/lab/model): one that tags a Receive
connector (one phase), one that makes a certificate and then enables it (two phases: the second step needs the
thumbprint the first one returns). Everything is checked against the lab's dump and mutation log.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from ansible.errors import AnsibleConnectionFailure

from ansible_collections.exchange.pki.plugins.plugin_utils import _ledger
from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ChangingAction
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ledger_argspec, read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, ResultOf, Secret, Step
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import LOCAL_SERVER, exchange_session_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import Read, ServerSnapshot
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import failed_result
from tests.unit.plugins.action.lab_host import LabHost

CONNECTOR = "EX1\\Default EX1"
TLS_NAME = "<I>CN=Contoso Lab CA<S>CN=mail.contoso.lab"
FRIENDLY = "seam test 2027"
MARKER_SECRET = "not-a-real-password-ÿ\"\\"


class TagConnector(ChangingAction):
    """Set a Receive connector's TlsCertificateName (a toy module: one step, one phase)."""

    ARGUMENT_SPEC = ArgumentSpec({
        **exchange_session_argspec(), **ledger_argspec(),
        "connector": {"type": "str", "required": True},
        "tls_certificate_name": {"type": "str", "required": True},
        "note_password": {"type": "str", "no_log": True},
    })

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        connector = next(c for c in snapshot.receive_connectors if c.identity == args["connector"])
        before = {"tls_certificate_name": connector.tls_certificate_name}
        after = {"tls_certificate_name": args["tls_certificate_name"]}
        if connector.tls_certificate_name == args["tls_certificate_name"]:
            return Plan("tag_connector", before=before, after=before)
        if args.get("note_password"):
            after["note"] = f"made with {args['note_password']}"  # a module that forgets to hide a password
        return Plan("tag_connector", (
            Step("tag", "Set-ReceiveConnector",
                 {"Identity": args["connector"], "TlsCertificateName": args["tls_certificate_name"]},
                 f"{args['connector']} names {connector.tls_certificate_name!r}"),
        ), before=before, after=after)


class MakeAndEnable(ChangingAction):
    """Make a self-signed certificate, then enable it for IMAP (two phases: the thumbprint comes back)."""

    ARGUMENT_SPEC = ArgumentSpec({**exchange_session_argspec(), **ledger_argspec(),
                                  "friendly_name": {"type": "str", "required": True}})

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        mine = [c for c in snapshot.exchange_certificates or () if c.friendly_name == args["friendly_name"]]
        if mine and "IMAP" in (mine[0].services or ()):
            return Plan("make_and_enable", before={"thumbprint": mine[0].thumbprint})
        return Plan("make_and_enable", (
            Step("new", "New-ExchangeCertificate",
                 {"Server": LOCAL_SERVER, "FriendlyName": args["friendly_name"], "SubjectName": "CN=imap.contoso.lab",
                  "DomainName": ["imap.contoso.lab"], "PrivateKeyExportable": True, "Services": []},
                 "no certificate with that friendly name"),
            Step("enable", "Enable-ExchangeCertificate",
                 {"Server": LOCAL_SERVER, "Thumbprint": ResultOf("new", "Thumbprint"), "Services": ["IMAP"]},
                 "IMAP should use it"),
        ), before={"thumbprint": None}, after={"thumbprint": ResultOf("new", "Thumbprint")})


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugins read the clock at NOW."""


@pytest.fixture
def ex1() -> LabHost:
    return LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")


def connector_name(host: LabHost) -> str | None:
    return next(c["TlsCertificateName"] for c in host.dump()["receive_connectors"] if c["Identity"] == CONNECTOR)


def test_check_mode_returns_the_plan_and_diff_and_sends_no_change(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger)}
    result = ex1.run(TagConnector, args, check_mode=True, diff=True)

    assert result["changed"] is True
    assert [step["operation"] for step in result["plan"]] == ["Set-ReceiveConnector"]
    assert result["diff"] == {"before": {"tls_certificate_name": None}, "after": {"tls_certificate_name": TLS_NAME}}
    assert ex1.mutations() == []
    assert connector_name(ex1) is None
    assert len(ex1.calls) == 1  # the read only
    assert "change_record" not in result
    assert not ledger.exists()  # check mode changes nothing anywhere, the ledger included


def test_apply_confirms_in_the_same_round_trip_and_records(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger)}
    result = ex1.run(TagConnector, args, action="exchange.pki.tag_connector")

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert connector_name(ex1) == TLS_NAME
    assert [m["operation"] for m in ex1.mutations()] == ["Set-ReceiveConnector"]
    assert len(ex1.calls) == 2  # read, then change + confirming re-read
    confirm_ops = [op["id"] for op in ex1.calls[1]["module_args"]["operations"]]
    assert confirm_ops[0] == "tag" and all(i.startswith("confirm.") for i in confirm_ops[1:])
    assert result["steps"] == [{"id": "tag", "operation": "Set-ReceiveConnector", "status": "ok", "changed": True}]

    record = result["change_record"]
    assert (record["server"], record["module"], record["action"], record["result"]) == (
        "EX1", "exchange.pki.tag_connector", "tag_connector", "changed")
    assert record["before"] == {"tls_certificate_name": None}
    assert record["after"] == {"tls_certificate_name": TLS_NAME}
    assert record["host"] == "ex1"
    assert record["who"].endswith("as CONTOSO\\ansible")
    (written,) = read_records(ledger)
    assert written.as_dict() == record
    assert stat.S_IMODE(os.stat(ledger).st_mode) == 0o600


def test_ledger_run_id_names_the_run_in_the_record(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger),
            "ledger_run_id": "3f9a1b2c4d5e6f70"}
    result = ex1.run(TagConnector, args, action="exchange.pki.tag_connector")

    assert result["changed"] is True and result["change_record"]["run_id"] == "3f9a1b2c4d5e6f70"
    (written,) = read_records(ledger)
    assert written.run_id == "3f9a1b2c4d5e6f70"


@pytest.mark.parametrize(("run_id", "problem"), [
    ("plan\r\nforged: yes", "one line without control characters"),
    ("a\x00b", "one line without control characters"),
    ("   ", "must not be blank"),
    ("x" * 129, "129 characters long; at most 128"),
])
def test_a_bad_ledger_run_id_is_refused_before_anything_changes(ex1, tmp_path, run_id, problem):
    ledger = tmp_path / "ledger.jsonl"
    raised = failed_result(ex1.run(TagConnector, {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME,
                                                  "ledger": str(ledger), "ledger_run_id": run_id}), "ledger_run_id")

    assert problem in raised["msg"]
    assert run_id.strip() == "" or run_id not in raised["msg"]
    assert ex1.calls == [] and ex1.mutations() == [] and not ledger.exists()


def test_a_second_run_is_no_change_and_writes_no_record(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger)}
    ex1.run(TagConnector, args)
    again = ex1.run(TagConnector, args, diff=True)

    assert again["changed"] is False
    assert again["plan"] == []
    assert "diff" not in again
    assert len(read_records(ledger)) == 1
    assert len(ex1.mutations()) == 1


def test_a_failed_step_fails_the_task_and_is_recorded(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ex1.fleet.set_fault("ex1", "Set-ReceiveConnector", error="The Active Directory write failed.")
    result = ex1.run(TagConnector, {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger)})

    assert result["failed"] is True
    assert "step tag (Set-ReceiveConnector) failed" in result["msg"]
    assert "The Active Directory write failed." in result["msg"]
    assert result["changed"] is False
    (written,) = read_records(ledger)
    assert written.result == "failed"
    assert written.message == result["msg"]
    assert connector_name(ex1) is None


class TagConnectorWrongly(TagConnector):
    """Writes another name than it asked for: the re-read never shows the wanted state."""

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        plan = super().decide(args, snapshot, task_vars)
        if not plan.steps:
            return plan
        step = plan.steps[0]
        wrong = Step(step.id, step.operation, {**step.arguments, "TlsCertificateName": "<I>CN=X<S>CN=Y"}, step.reason)
        return Plan(plan.action, (wrong,), before=plan.before, after=plan.after)


def test_a_change_the_server_does_not_show_fails_the_confirmation(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    result = ex1.run(TagConnectorWrongly, {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME,
                                           "ledger": str(ledger)})

    assert result["failed"] is True
    assert result["msg"].startswith("the change was sent but the server does not show it: Set-ReceiveConnector")
    assert result["changed"] is True
    (written,) = read_records(ledger)
    assert written.result == "failed"


def test_a_plan_in_two_phases_uses_the_thumbprint_the_first_returns(ex1):
    result = ex1.run(MakeAndEnable, {"friendly_name": FRIENDLY})

    assert result.get("failed") is not True, result.get("msg")
    assert len(ex1.calls) == 3  # read; make; enable + confirming re-read
    made = [c for c in ex1.dump()["certificates"]["My"] if c["friendly_name"] == FRIENDLY]
    assert len(made) == 1 and "IMAP" in made[0]["services"]
    assert result["change_record"]["after"] == {"thumbprint": "<Thumbprint returned by step new>"}
    assert ex1.run(MakeAndEnable, {"friendly_name": FRIENDLY})["changed"] is False


def test_a_failure_in_the_first_phase_skips_the_later_ones(ex1):
    ex1.fleet.set_fault("ex1", "New-ExchangeCertificate", error="The key could not be created.")
    result = ex1.run(MakeAndEnable, {"friendly_name": FRIENDLY})

    assert result["failed"] is True
    assert [step["status"] for step in result["steps"]] == ["failed", "skipped"]
    assert len(ex1.calls) == 2


def replace_call(host: LabHost, monkeypatch: pytest.MonkeyPatch, number: int,
                 answer: Callable[[], dict[str, Any]]) -> None:
    """Module call ``number`` (1 = the first) to ``host`` gets ``answer()`` instead of the lab's (it may raise)."""
    execute = host._execute_module  # noqa: SLF001 - the seam the harness replaces

    def replaced(task: Any) -> Callable[..., dict[str, Any]]:
        lab = execute(task)

        def call(module_name: str, module_args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
            if len(host.calls) == number - 1:
                host.calls.append({"module_name": module_name, "module_args": module_args})
                return answer()
            return lab(module_name, module_args, task_vars)
        return call

    monkeypatch.setattr(host, "_execute_module", replaced)


def test_a_host_that_cannot_be_reached_for_a_later_phase_is_recorded_with_what_was_done(ex1, tmp_path, monkeypatch):
    """The first phase made the certificate; the connection for the second cannot be made: nothing of it ran."""
    ledger = tmp_path / "ledger.jsonl"

    def refused() -> dict[str, Any]:
        raise AnsibleConnectionFailure("ntlm: HTTPSConnectionPool(host='ex1', port=5986): Max retries exceeded")

    replace_call(ex1, monkeypatch, 3, refused)
    result = ex1.run(MakeAndEnable, {"friendly_name": FRIENDLY, "ledger": str(ledger)})

    assert result["unreachable"] is True and result["failure_reason"] == "unreachable" and "failed" not in result
    assert [(step["id"], step["status"]) for step in result["steps"]] == [("new", "ok"), ("enable", "skipped")]
    assert result["changed"] is True
    assert result["msg"].endswith("Step(s) new had been done; the rest was not sent.")
    (written,) = read_records(ledger)
    assert written.result == "failed" and written.message == result["msg"]
    assert [c["friendly_name"] for c in ex1.dump()["certificates"]["My"]].count(FRIENDLY) == 1


def test_a_batch_the_executor_refuses_as_a_whole_is_recorded_as_not_sent(ex1, tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.jsonl"
    replace_call(ex1, monkeypatch, 2,
                 lambda: {"failed": True, "msg": "Unsupported parameters for (exchange_batch) module: surprise"})
    result = ex1.run(TagConnector, {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger)})

    assert result["failed"] is True and result["changed"] is False
    assert [step["status"] for step in result["steps"]] == ["skipped"]
    assert result["msg"].endswith("Unsupported parameters for (exchange_batch) module: surprise. Nothing was sent.")
    (written,) = read_records(ledger)
    assert written.result == "failed"
    assert connector_name(ex1) is None


def test_secrets_never_reach_the_result_diff_or_ledger(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger),
            "note_password": MARKER_SECRET}
    result = ex1.run(TagConnector, args, diff=True)

    assert result["change_record"]["after"]["note"] == "made with ********"
    assert MARKER_SECRET not in ledger.read_text(encoding="utf-8")
    assert MARKER_SECRET not in json.dumps(result["change_record"], ensure_ascii=False)
    assert Secret(MARKER_SECRET).reveal() not in repr(result["plan"])


def test_a_ledger_that_cannot_be_written_fails_the_task_but_keeps_the_record(ex1, tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.jsonl"

    def disk_full(path: Any, records: Any) -> None:
        raise _ledger.LedgerError(f"ledger {path}: cannot be written (No space left on device)")

    monkeypatch.setattr(_ledger, "append_records", disk_full)  # what no check before the change can foresee
    result = ex1.run(TagConnector, {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME, "ledger": str(ledger)})

    assert result["failed"] is True
    assert result["changed"] is True  # the change happened: say so
    assert str(ledger) in result["msg"] and "No space left on device" in result["msg"]
    assert result["change_record"]["result"] == "changed"
    assert connector_name(ex1) == TLS_NAME


def test_a_ledger_in_a_missing_directory_is_refused_before_the_change(ex1, tmp_path):
    ledger = tmp_path / "missing" / "ledger.jsonl"
    for check_mode in (True, False):
        failed_result(ex1.run(TagConnector, {"connector": CONNECTOR, "tls_certificate_name": TLS_NAME,
                                             "ledger": str(ledger)}, check_mode=check_mode),
                      "the parent directory .* does not exist; nothing was changed")
    assert connector_name(ex1) != TLS_NAME and ex1.mutations() == []


class SetImapName(ChangingAction):
    """Set IMAP's X509CertificateName: the module's own read (EXTRA_READS) travels in the read and the re-read."""

    ARGUMENT_SPEC = ArgumentSpec({**exchange_session_argspec(), **ledger_argspec(),
                                  "name": {"type": "str", "required": True}})
    EXTRA_READS = (Read("imap", "Get-ImapSettings", lambda value: value[0]["X509CertificateName"],
                        {"Server": LOCAL_SERVER}, missing=None),)

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        current = snapshot.extra["imap"]
        if current == args["name"]:
            return Plan("set_imap_name", before={"name": current}, after={"name": current})
        return Plan("set_imap_name", (
            Step("set", "Set-ImapSettings", {"Server": LOCAL_SERVER, "X509CertificateName": args["name"]},
                 f"IMAP presents {current!r}"),
        ), before={"name": current}, after={"name": args["name"]})


def test_a_modules_own_reads_reach_decide_and_the_confirmation(ex1):
    result = ex1.run(SetImapName, {"name": "mail.contoso.lab"})

    assert result.get("failed") is not True, result.get("msg")
    assert result["change_record"]["before"] == {"name": None}
    assert len(ex1.calls) == 2
    assert [op["id"] for op in ex1.calls[0]["module_args"]["operations"]][-1] == "imap"
    assert [op["id"] for op in ex1.calls[1]["module_args"]["operations"]][-1] == "confirm.imap"
    assert ex1.run(SetImapName, {"name": "mail.contoso.lab"})["changed"] is False


def test_a_failed_own_read_is_unavailable_and_none(ex1):
    ex1.fleet.set_fault("ex1", "Get-ImapSettings", error="The IMAP4 service is not installed.", times=1)
    seen: list[ServerSnapshot] = []

    class Spy(SetImapName):
        def decide(self, args, snapshot, task_vars):  # noqa: ANN001, ANN202 - the test's own spy
            seen.append(snapshot)
            return Plan("set_imap_name")

    ex1.run(Spy, {"name": "mail.contoso.lab"})
    assert seen[0].extra == {"imap": None}
    assert "The IMAP4 service is not installed." in seen[0].unavailable["Get-ImapSettings"]
