# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The base class of exchange.pki's action plugins: one argument spec, one run() skeleton.

A plugin declares its options once, as an :class:`ArgumentSpec` (validated with core's
ArgumentSpecValidator; the module's DOCUMENTATION mirrors it and a unit test keeps both equal), and
implements :meth:`ExchangePkiAction.execute`. The skeleton translates what goes wrong at the edge:

- invalid arguments and other user errors: ``AnsibleActionFail`` (a failed task naming the problem);
  the Exchange session options are checked here too, before anything runs;
- the host cannot be reached, rejects the connection's credentials or drops the connection (HostUnreachable,
  AnsibleConnectionFailure): an ``unreachable`` task;
- domain errors (:class:`ExchangePkiError`, e.g. access denied to the Exchange endpoint): a failed task
  whose ``msg`` is the error's own explanation, without a traceback;
- anything else is a bug: a failed task with the traceback attached.

Every failed or unreachable result carries ``failure_reason`` (one of _errors.FAILURE_REASONS): the error's
own for domain errors and unreachable hosts, ``failed`` for user errors and bugs.
"""

from __future__ import annotations

import abc
import dataclasses
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ansible.errors import AnsibleAction, AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError, HostUnreachable
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_ARGSPEC,
    Batch,
    BatchResult,
    ExchangeSessionOptions,
    SessionOptionError,
    is_dropped_connection,
    run_batch,
)


@dataclasses.dataclass(frozen=True)
class ArgumentSpec:
    """The one source of truth of a plugin's options and the relations between them."""

    argument_spec: Mapping[str, Any]
    mutually_exclusive: Sequence[Sequence[str]] = ()
    required_together: Sequence[Sequence[str]] = ()
    required_one_of: Sequence[Sequence[str]] = ()
    required_if: Sequence[Sequence[Any]] = ()
    required_by: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)

    def validator_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``ActionBase.validate_argument_spec`` (fresh, mutable copies)."""
        return {
            "argument_spec": dict(self.argument_spec),
            "mutually_exclusive": [list(group) for group in self.mutually_exclusive],
            "required_together": [list(group) for group in self.required_together],
            "required_one_of": [list(group) for group in self.required_one_of],
            "required_if": [list(rule) for rule in self.required_if],
            "required_by": {name: list(needed) for name, needed in self.required_by.items()},
        }


class ExchangePkiAction(ActionBase, metaclass=abc.ABCMeta):
    """Validate the arguments, run :meth:`execute`, translate failures; subclasses set :attr:`ARGUMENT_SPEC`."""

    ARGUMENT_SPEC: ClassVar[ArgumentSpec]
    #: Whether the plugin honours check mode (reading plugins and plugins that predict their change do).
    SUPPORTS_CHECK_MODE: ClassVar[bool] = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        self._supports_check_mode = self.SUPPORTS_CHECK_MODE
        self._supports_async = False
        try:
            result: dict[str, Any] = super().run(tmp, task_vars)
        except AnsibleActionFail as error:  # e.g. async refused
            error._result.setdefault("failure_reason", "failed")  # noqa: SLF001 - core merges this dict
            raise
        del tmp  # tmp no longer has any effect
        try:
            args = self.validate_argument_spec(**self.ARGUMENT_SPEC.validator_kwargs())[1]  # or AnsibleActionFail
            self.check_session_options(args)
            result.update(self.execute(args, task_vars or {}))
        except HostUnreachable as error:
            result.update(unreachable=True, changed=False, msg=str(error), failure_reason=error.failure_reason)
        except AnsibleConnectionFailure as error:
            result.update(unreachable=True, changed=False, msg=str(error), failure_reason="unreachable")
        except ExchangePkiError as error:
            result.update(failed=True, changed=False, msg=str(error), failure_reason=error.failure_reason)
        except AnsibleAction as error:
            if isinstance(error, AnsibleActionFail):
                error._result.setdefault("failure_reason", "failed")  # noqa: SLF001 - core merges this dict
            raise  # AnsibleActionFail / AnsibleActionSkip: core turns them into the task result
        except Exception as error:  # noqa: BLE001 - a bug: report it with its traceback instead of crashing the play
            if is_dropped_connection(error):  # a broken connection outside run_batch is no bug either
                result.update(unreachable=True, changed=False, failure_reason="connection_dropped",
                              msg=f"the connection to the host was dropped during the task ({type(error).__name__})")
                return result
            result.update(
                failed=True,
                changed=False,
                failure_reason="failed",
                msg=f"Unexpected failure in {self._task.resolved_action or self._task.action}: "
                f"{type(error).__name__}: {error}",
                exception=traceback.format_exc(),
            )
        return result

    def check_session_options(self, args: Mapping[str, Any]) -> None:
        """Refuse invalid Exchange session options (when the plugin has them) before anything runs."""
        if not EXCHANGE_SESSION_ARGSPEC.keys() <= self.ARGUMENT_SPEC.argument_spec.keys():
            return
        try:
            ExchangeSessionOptions.from_task_args(args)
        except SessionOptionError as error:
            raise AnsibleActionFail(str(error)) from None

    @property
    def check_mode(self) -> bool:
        return bool(self._task.check_mode)

    @abc.abstractmethod
    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        """Do the plugin's work with validated ``args``; return the task result's keys.

        Raise :class:`ExchangePkiError` for domain failures and ``AnsibleActionFail`` for user errors.
        """

    def run_batch(self, batch: Batch, task_vars: Mapping[str, Any], args: Mapping[str, Any]) -> BatchResult:
        """Send ``batch`` in one round trip, with the Exchange session options found in ``args``."""
        return run_batch(
            self, batch, task_vars, session=ExchangeSessionOptions.from_task_args(args), check_mode=self.check_mode,
        )


class ControllerAction(ExchangePkiAction, metaclass=abc.ABCMeta):
    """A plugin that works on the controller only: no connection to the task's host, no files transferred."""

    TRANSFERS_FILES = False
    _requires_connection = False
