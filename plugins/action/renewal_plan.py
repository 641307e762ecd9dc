# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.renewal_plan``: the fleet's renewal plan, on the controller, from the facts.

Every decision is ``_renewal``'s; this plugin validates the options (errors name the key), reads the ledger when
given (never writes it), and returns the plan. No host is contacted and nothing changes, in check mode or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import LedgerError
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import (
    RenewalInputError,
    RenewalPolicy,
    build_plan,
    check_plan_id,
    parse_ari,
    parse_host_vars,
    parse_now,
    read_outcomes,
    renewal_policy_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import utc_now

#: The one argument spec; plugins/modules/renewal_plan.py documents exactly this (a unit test compares them).
ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "facts": {"type": "dict", "required": True},
        "host_vars": {"type": "dict", "default": {}},
        "policy": renewal_policy_argspec(),
        "ledger": {"type": "path"},
        "force": {"type": "bool", "default": False},
        "now": {"type": "str"},
        "plan_id": {"type": "str"},
        "ari": {"type": "dict", "default": {}},
    },
)


class ActionModule(ControllerAction):
    """exchange.pki.renewal_plan: decide what to renew, where, in which order and when; change nothing."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    DATA_OPTIONS = ("facts",)  # a fleet's data: passed on uncopied

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        del task_vars  # the plan reads only its options
        try:
            policy = RenewalPolicy.from_options(args.get("policy"))
            host_vars = parse_host_vars(args.get("host_vars"))
            now = parse_now(args.get("now"), utc_now())
            plan_id = check_plan_id(args.get("plan_id"))
            ari = parse_ari(args.get("ari"))
        except RenewalInputError as error:
            raise AnsibleActionFail(str(error)) from None
        warnings: list[str] = []
        outcomes = {}
        ledger = args.get("ledger")
        if ledger is not None:
            if not str(ledger).strip() or "\x00" in str(ledger):
                raise AnsibleActionFail(f"ledger must be a file path, got {ledger!r}")
            try:
                outcomes, warnings = read_outcomes(ledger)
            except LedgerError as error:
                raise AnsibleActionFail(f"ledger: {error}") from None
        try:
            plan = build_plan(args["facts"], policy=policy, now=now, host_vars=host_vars, outcomes=outcomes,
                              force=args["force"], plan_id=plan_id, ari=ari)
        except RenewalInputError as error:
            raise AnsibleActionFail(str(error)) from None
        result: dict[str, Any] = {"changed": False, **plan}
        if warnings:
            result["warnings"] = warnings
        return result
