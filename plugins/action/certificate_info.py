# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_info: one batch of reads, facts evaluated on the controller.

The read is ``_snapshot``'s (which failed reads are fatal is documented there), the rules are ``_findings``'
and the result's shape is ``_facts``'; this plugin only validates its options and joins them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

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
    argument_spec={**exchange_session_argspec(), "policy": policy_argspec()},
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)


class ActionModule(ExchangePkiAction):
    """exchange.pki.certificate_info: read everything in one round trip, evaluate on the controller."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        try:
            policy = Policy.from_options(args.get("policy"))
        except PolicyError as error:
            raise AnsibleActionFail(str(error)) from None  # the message names the policy key
        snapshot = read_snapshot(self.run_batch(build_batch(), task_vars, args))
        result = build_facts(snapshot, policy=policy, now=utc_now())
        if snapshot.unavailable:
            result["warnings"] = unavailable_warnings(snapshot.unavailable)
        return result
