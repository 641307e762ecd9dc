# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.fleet_report``: write the fleet report files on the controller."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    DEFAULT_TITLE,
    FORMATS,
    build_report,
    markdown_text,
    report_time,
    write_reports,
)

#: The one argument spec; plugins/modules/fleet_report.py documents exactly this (a unit test compares them).
ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "facts": {"type": "dict", "required": True},
        "dest": {"type": "path", "required": True},
        "formats": {"type": "list", "elements": "str", "choices": list(FORMATS), "default": list(FORMATS)},
        "title": {"type": "str", "default": DEFAULT_TITLE},
        "now": {"type": "str"},
    },
)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        report = build_report(args["facts"], title=args["title"], now=report_time(args["now"]))
        dest = Path(args["dest"])
        try:
            created, outcomes = write_reports(
                report, dest, list(dict.fromkeys(args["formats"])), check_mode=self.check_mode,
            )
        except OSError as error:
            raise AnsibleActionFail(f"dest {dest}: cannot write the report ({error.strerror or error})") from None
        return {
            "changed": created or any(outcome.changed for outcome in outcomes),
            "dest": str(dest),
            "files": {outcome.format: str(outcome.path) for outcome in outcomes},
            "changed_files": [str(outcome.path) for outcome in outcomes if outcome.changed],
            "summary": report.summary.as_dict(),
            "markdown": markdown_text(report),
        }
