# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_info: one batch of reads, facts evaluated on the controller.

The read is ``_snapshot``'s (which failed reads are fatal is documented there), the rules are ``_findings``'
and the result's shape is ``_facts``'; this plugin only validates its options and joins them.

With ``fact_name`` the result is also returned as that host fact (``ansible_facts``): the fact the
exchange.pki.inventory role sets as ``exchange_pki`` (docs/facts.md), so the role needs no per-host task to set
it. It is the result without Ansible's own result keys (:data:`RESULT_KEYS`), plus ``probes: {}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.utils.vars import isidentifier
from ansible.vars.reserved import is_reserved_name

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ExchangePkiAction
from ansible_collections.exchange.pki.plugins.plugin_utils._facts import build_facts
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import Policy, PolicyError, policy_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import (
    build_batch,
    read_snapshot,
    unavailable_warnings,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import utc_now

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={**exchange_session_argspec(), "policy": policy_argspec(), "fact_name": {"type": "str"}},
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)

#: Keys of the task result that belong to Ansible, not to the facts (docs/facts.md): left out of the fact, as the
#: inventory role always left them out of ``exchange_pki`` (as it does keys starting with ``_ansible``).
RESULT_KEYS = ("changed", "failed", "skipped", "msg", "warnings", "deprecations", "invocation", "failure_reason")


#: Special variables Ansible sets itself (a fact of that name would be shadowed or shadow them), besides the
#: ``ansible_*`` ones and the playbook keywords of ``is_reserved_name``.
SPECIAL_VARIABLES = frozenset({
    "group_names", "groups", "hostvars", "inventory_dir", "inventory_file", "inventory_hostname",
    "inventory_hostname_short", "omit", "play_hosts", "playbook_dir", "role_name", "role_names", "role_path", "vars",
})


def check_fact_name(name: str) -> str:
    """``name`` when it can be a host variable of its own; else AnsibleActionFail naming the problem.

    Names starting with ``ansible_`` are refused too: Ansible files such a fact under ``ansible_facts`` without
    that prefix, so no variable of the given name would exist.
    """
    if not isidentifier(name):
        raise AnsibleActionFail(
            f"fact_name {name!r} is not a valid variable name: use ASCII letters, digits and underscores, not starting"
            " with a digit, and not a Python keyword")
    if name.startswith(("ansible_", "_ansible")) or name in SPECIAL_VARIABLES or is_reserved_name(name):
        raise AnsibleActionFail(f"fact_name {name!r} is reserved by Ansible: choose another name, e.g. exchange_pki")
    return name


def as_fact(result: Mapping[str, Any]) -> dict[str, Any]:
    """The host fact of a successful result: without Ansible's result keys, with an empty ``probes``."""
    fact = {key: value for key, value in result.items()
            if key not in RESULT_KEYS and not key.startswith("_ansible")}
    fact["probes"] = {}
    return fact


class ActionModule(ExchangePkiAction):
    """exchange.pki.certificate_info: read everything in one round trip, evaluate on the controller."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        fact_name = None if args.get("fact_name") is None else check_fact_name(args["fact_name"])
        try:
            policy = Policy.from_options(args.get("policy"))
        except PolicyError as error:
            raise AnsibleActionFail(str(error)) from None  # the message names the policy key
        snapshot = read_snapshot(self.run_batch(build_batch(), task_vars, args))
        result = build_facts(snapshot, policy=policy, now=utc_now())
        if snapshot.unavailable:
            result["warnings"] = unavailable_warnings(snapshot.unavailable)
        if fact_name is not None:
            result["ansible_facts"] = {fact_name: as_fact(result)}
        return result
