# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.ledger_info``: query the audit ledger on the controller (changes nothing).

The records that match every filter given, oldest first and exactly as the file holds them, and per certificate
identity (or thumbprint) its story: the steps of its life in time order. The reading and matching live in
``_ledger.query_ledger`` (one pass, bounded memory, a shared lock against concurrent appends).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import normalize_thumbprint
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import LedgerQuery, query_ledger
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime, parse_time_option

#: The one argument spec; plugins/modules/ledger_info.py documents exactly this (a unit test compares them).
ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "ledger": {"type": "path", "required": True},
        "identity": {"type": "str"},
        "server": {"type": "str"},
        "thumbprint": {"type": "str"},
        "plan_id": {"type": "str"},
        "since": {"type": "str"},
        "until": {"type": "str"},
        "actions": {"type": "list", "elements": "str", "default": []},
        "limit": {"type": "int"},
        "skip_invalid": {"type": "bool", "default": False},
    },
)

#: The longest filter value accepted (identities, server names and plan ids are short).
MAX_FILTER = 256
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _check_text(option: str, value: Any) -> str | None:
    """A one-line filter: not empty, no control character; the error names the option, never echoes the value."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise AnsibleActionFail(f"{option} is empty: give a value or leave the option out")
    if has_control(value):
        raise AnsibleActionFail(f"{option} contains a control character (CR, LF, NUL or another); give one line")
    if len(value) > MAX_FILTER:
        raise AnsibleActionFail(f"{option} is {len(value)} characters long; at most {MAX_FILTER} are allowed")
    return value.strip()


def _check_time(option: str, value: Any) -> datetime.datetime | None:
    """``since``/``until``: ISO-8601 (``Z``, an offset, or none meaning UTC); a date alone is that day's start
    for ``since`` and its end for ``until``."""
    text = _check_text(option, value)
    if text is None:
        return None
    try:
        parsed = parse_time_option(text)
    except (TypeError, ValueError):
        raise AnsibleActionFail(f"{option} {text!r} is not an ISO-8601 date or date and time "
                                "(for example 2026-12-01 or 2026-12-01T08:00:00Z)") from None
    if option == "until" and _DATE_ONLY.fullmatch(text):
        parsed += datetime.timedelta(days=1, seconds=-1)  # a UTC day: 9999-12-31T23:59:59 at most
    return parsed


def checked_query(args: Mapping[str, Any]) -> tuple[LedgerQuery, int | None]:
    """The query the options ask, or AnsibleActionFail naming the bad option."""
    ledger = args["ledger"]
    if not ledger or not str(ledger).strip() or has_control(str(ledger)):
        raise AnsibleActionFail("ledger must be a path without control characters (CR, LF, NUL, ...)")
    thumbprint = _check_text("thumbprint", args["thumbprint"])
    if thumbprint is not None:
        try:
            thumbprint = normalize_thumbprint(thumbprint)
        except ValueError as error:
            raise AnsibleActionFail(f"thumbprint: {error}") from None
    since, until = _check_time("since", args["since"]), _check_time("until", args["until"])
    if since is not None and until is not None and since > until:
        raise AnsibleActionFail(f"since ({format_utc_datetime(since)}) is after until ({format_utc_datetime(until)}): "
                                "no record can match")
    actions = tuple(dict.fromkeys(_check_text(f"actions[{index}]", action) or ""
                                  for index, action in enumerate(args["actions"] or ())))
    limit = args["limit"]
    if limit is not None and limit < 1:
        raise AnsibleActionFail(f"limit must be at least 1, got {limit}")
    query = LedgerQuery(
        identity=_check_text("identity", args["identity"]), server=_check_text("server", args["server"]),
        thumbprint=thumbprint, plan_id=_check_text("plan_id", args["plan_id"]), since=since, until=until,
        actions=actions,
    )
    return query, limit


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        query, limit = checked_query(args)
        answer = query_ledger(args["ledger"], query, limit=limit, skip_invalid=args["skip_invalid"])
        return {
            "changed": False,
            "records": [record.as_dict() for record in answer.records],
            "count": len(answer.records),
            "matched": answer.total,
            "stories": answer.stories,
            "skipped": [{"line": item.line_number, "reason": item.reason} for item in answer.skipped],
        }
