# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.fleet_report``: write the fleet report files on the controller."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    DEFAULT_TITLE,
    FleetReport,
    build_report,
    report_time,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import (
    FORMATS,
    markdown_text,
    write_reports,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._report_stories import load_stories
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control

#: The one argument spec; plugins/modules/fleet_report.py documents exactly this (a unit test compares them).
ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "facts": {"type": "dict", "required": True},
        "dest": {"type": "path", "required": True},
        "formats": {"type": "list", "elements": "str", "choices": list(FORMATS), "default": list(FORMATS)},
        "title": {"type": "str", "default": DEFAULT_TITLE},
        "now": {"type": "str"},
        "ledger": {"type": "path"},
    },
)

TITLE_MAX_CHARS = 200


def checked_options(args: Mapping[str, Any]) -> tuple[Path, list[str], str]:
    """``dest``, ``formats`` (duplicates dropped) and ``title``, or AnsibleActionFail naming the option."""
    dest = args["dest"]
    if not dest or not str(dest).strip():
        raise AnsibleActionFail("dest must be a directory path, got an empty string")
    if has_control(str(dest)):
        raise AnsibleActionFail(f"dest {dest!r} contains a control character (NUL, CR, LF, ...)")
    formats = list(dict.fromkeys(args["formats"]))
    if not formats:
        raise AnsibleActionFail(f"formats must name at least one of {', '.join(FORMATS)}, got []")
    title = args["title"]
    if not title.strip() or has_control(title) or len(title) > TITLE_MAX_CHARS:
        raise AnsibleActionFail(
            f"title must be one line of 1 to {TITLE_MAX_CHARS} characters without control characters, got {title!r}"
        )
    return Path(dest), formats, title


def with_stories(report: FleetReport, ledger: str) -> FleetReport:
    """``report`` with the stories of the renewed certificates in ``ledger`` (LedgerError fails the task)."""
    if not str(ledger).strip() or has_control(str(ledger)):
        raise AnsibleActionFail("ledger must be a path without control characters (NUL, CR, LF, ...)")
    subjects: dict[str, str] = {}
    for cert in report.certificates():
        subjects.setdefault(cert.thumbprint, cert.subject)
    return dataclasses.replace(report, ledger=load_stories(str(ledger), subjects))


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    DATA_OPTIONS = ("facts",)  # a fleet's data: passed on uncopied

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        dest, formats, title = checked_options(args)
        report = build_report(args["facts"], title=title, now=report_time(args["now"]))  # validates every fact
        if args["ledger"] is not None:
            report = with_stories(report, args["ledger"])
        try:
            created, outcomes = write_reports(report, dest, formats, check_mode=self.check_mode)
        except OSError as error:
            raise AnsibleActionFail(f"dest {dest}: cannot write the report ({error.strerror or error})") from None
        return {
            "changed": created or any(outcome.changed for outcome in outcomes),
            "dest": str(dest),
            "files": {outcome.format: str(outcome.path) for outcome in outcomes},
            "changed_files": [str(outcome.path) for outcome in outcomes if outcome.changed],
            "summary": report.summary.as_dict(),
            "action_plan": [item.as_dict() for item in report.action_plan],
            "markdown": markdown_text(report),
        }
