# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.renewal_status``: how the fleet's renewal stands after a run, on the controller.

Every decision is ``_renewal_status``'s (which builds on ``_renewal``); this plugin validates the options, reads the
ledger when given (never writes it), and writes the metrics textfile when asked. No host is contacted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._files import (
    PUBLIC_MODE,
    output_file_problem,
    write_atomically,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import LedgerError, read_ledger
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import RenewalInputError, parse_now
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal_status import (
    DEFAULT_FAILED_ATTEMPTS,
    DEFAULT_STALLED_AFTER,
    OUTCOMES,
    RenewalStatusError,
    renewal_status,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import utc_now

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "plan": {"type": "dict", "required": True},
        "facts": {"type": "dict"},
        "ledger": {"type": "path"},
        "results": {"type": "list", "elements": "dict"},
        "stalled_after": {"type": "str", "default": DEFAULT_STALLED_AFTER},
        "failed_attempts": {"type": "int", "default": DEFAULT_FAILED_ATTEMPTS},
        "run": {"type": "dict", "options": {
            "started": {"type": "str"},
            "outcome": {"type": "str", "choices": list(OUTCOMES)},
        }},
        "metrics_path": {"type": "path"},
        "now": {"type": "str"},
    },
)


def _path(option: str, value: Any) -> str:
    text = str(value)
    if not text.strip() or "\x00" in text:
        raise AnsibleActionFail(f"{option} must be a file path, got {value!r}")
    return text


def read_records(path: str) -> tuple[list[Any], list[str]]:
    """The ledger's records and warnings about the lines it skipped; a missing ledger holds none."""
    if not os.path.lexists(path):
        return [], []
    try:
        contents = read_ledger(path)
    except LedgerError as error:
        raise AnsibleActionFail(f"ledger: {error}") from None
    warnings = [f"ledger {path}: line {line.line_number} skipped ({line.reason})" for line in contents.skipped[:5]]
    if len(contents.skipped) > 5:
        warnings.append(f"ledger {path}: {len(contents.skipped) - 5} more lines skipped")
    return list(contents.records), warnings


def write_metrics(path: str, text: str, check_mode: bool) -> bool:
    """Write the textfile atomically, mode 0644; whether its content changed (check mode writes nothing)."""
    problem = output_file_problem(path, "the textfile (for example "
                                        "/var/lib/node_exporter/textfile/exchange_pki_renewal.prom)")
    if problem:
        raise AnsibleActionFail(f"metrics_path {problem}")
    data = text.encode("utf-8")
    try:
        with open(path, "rb") as handle:
            changed = handle.read() != data
    except FileNotFoundError:
        changed = True
    except OSError as error:
        raise AnsibleActionFail(f"metrics_path {path} cannot be read: {error.strerror or error}") from None
    if changed and not check_mode:
        try:
            write_atomically(path, data, PUBLIC_MODE)
        except OSError as error:
            raise AnsibleActionFail(f"metrics_path {path} cannot be written: {error.strerror or error}") from None
    return changed


class ActionModule(ControllerAction):
    """exchange.pki.renewal_status: ready, due, stalled, failed rollouts, alert events and metrics after a run."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    DATA_OPTIONS = ("plan", "facts")  # a fleet's data: passed on uncopied

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        del task_vars  # the status reads only its options and the ledger
        try:
            now = parse_now(args.get("now"), utc_now())
        except RenewalInputError as error:
            raise AnsibleActionFail(str(error)) from None
        records: list[Any] = []
        warnings: list[str] = []
        if args.get("ledger") is not None:
            records, warnings = read_records(_path("ledger", args["ledger"]))
        run = {key: value for key, value in (args.get("run") or {}).items() if value is not None}
        try:
            status = renewal_status(
                args["plan"], now=now, facts=args.get("facts"), records=records, results=args.get("results"),
                stalled_after=args["stalled_after"], failed_attempts=args["failed_attempts"], run=run,
            )
        except (RenewalStatusError, RenewalInputError) as error:
            raise AnsibleActionFail(str(error)) from None
        result: dict[str, Any] = {"changed": False, **status}
        if args.get("metrics_path") is not None:
            path = _path("metrics_path", args["metrics_path"])
            result["changed"] = write_metrics(path, status["metrics"], self.check_mode)
            result["metrics_path"] = path
        if warnings:
            result["warnings"] = warnings
        return result
