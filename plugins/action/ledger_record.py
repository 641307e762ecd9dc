# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.ledger_record``: append one record of the play's own making to the ledger.

The renewal role writes the outcome of each renewal with it (``renewal_done`` / ``renewal_failed``), which is
what ``exchange.pki.renewal_plan`` reads back to find earlier failures. The record is built like every module's
(``_ledger.make_record``: time, who, secrets scrubbed by key name) and appended with ``_ledger.append_records``
(one locked write, safe across forks). Check mode builds and returns the record and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import (
    LedgerError,
    LedgerSinkError,
    check_one_line,
    check_run_id,
    deliver_records,
    ledger_argspec,
    make_record,
)

#: The ``module`` field of every record this plugin writes (renewal_plan matches on it).
MODULE = "exchange.pki.ledger_record"

#: The results a play may record (``unchanged`` and ``check_mode`` belong to the modules that change servers).
RESULTS = ("changed", "failed")

_LEDGER = ledger_argspec()["ledger"]

#: The one argument spec; plugins/modules/ledger_record.py documents exactly this (a unit test compares them).
ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "ledger": {**_LEDGER, "required": True},
        "ledger_webhook": ledger_argspec()["ledger_webhook"],
        "ledger_run_id": ledger_argspec()["ledger_run_id"],
        "action": {"type": "str", "required": True},
        "server": {"type": "str", "default": "organization"},
        "result": {"type": "str", "choices": list(RESULTS), "default": "changed"},
        "before": {"type": "dict", "default": {}},
        "after": {"type": "dict", "default": {}},
        "message": {"type": "str"},
        "run_id": {"type": "str"},
    },
)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        try:
            action = check_one_line("action", args["action"])
            server = check_one_line("server", args["server"])
            # run_id names this record's run; ledger_run_id is the one module_defaults gives every lifecycle module.
            run_id = check_run_id("run_id", args["run_id"]) or check_run_id("ledger_run_id", args["ledger_run_id"])
        except LedgerError as error:
            raise AnsibleActionFail(str(error)) from None
        if args["result"] == "failed" and not args["message"]:
            raise AnsibleActionFail("message is required when result is failed: say what went wrong")
        hostname = str(task_vars.get("inventory_hostname") or "") or None
        try:
            record = make_record(
                server=server, module=MODULE, action=action, result=args["result"],
                before=args["before"], after=args["after"], host=hostname,
                message=args["message"], run_id=run_id,
            )
        except LedgerError as error:  # before/after hold something JSON cannot (the error names the field)
            raise AnsibleActionFail(str(error)) from None
        result: dict[str, Any] = {"changed": True, "change_record": record.as_dict(), "written": False}
        if self.check_mode:
            return result
        # File first, then the webhook; LedgerError (an ExchangePkiError) fails the task, naming the sink and the record
        try:
            deliver_records(args, [record])
        except LedgerSinkError as error:
            if not error.in_file:
                raise
            result.update(written=True, failed=True, msg=str(error), failure_reason=error.failure_reason)
            return result  # in the file, not at the webhook: the task fails and still returns the record
        result["written"] = True
        return result
