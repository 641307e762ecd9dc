# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The base class of exchange.pki's action plugins: one argument spec, one run() skeleton.

A plugin declares its options once, as an :class:`ArgumentSpec` (validated with core's
ArgumentSpecValidator; the module's DOCUMENTATION mirrors it and a unit test keeps both equal), and
implements :meth:`ExchangePkiAction.execute`. The skeleton translates what goes wrong at the edge:

- invalid arguments and other user errors: a plugin raises ``AnsibleActionFail``, which the skeleton returns as
  a failed task naming the problem (returned, not raised: ansible-core applies ``failed_when`` only to a returned
  result); the Exchange session options are checked here too, before anything runs;
- the host cannot be reached, rejects the connection's credentials or drops the connection (HostUnreachable,
  AnsibleConnectionFailure): an ``unreachable`` task;
- domain errors (:class:`ExchangePkiError`, e.g. access denied to the Exchange endpoint): a failed task
  whose ``msg`` is the error's own explanation, without a traceback;
- anything else is a bug: a failed task with the traceback attached.

Every failed or unreachable result carries ``failure_reason`` (one of _errors.FAILURE_REASONS): the error's
own for domain errors and unreachable hosts, ``failed`` for user errors and bugs.

A module that changes a server derives from :class:`ChangingAction` and only decides: read (``_snapshot``)
-> decide (a ``_plan.Plan``) -> in check mode return the plan and diff, send nothing -> apply the plan (one
batch per phase, the confirming re-read in the last one) -> confirm -> record (``_ledger``).
docs/developing.md walks through adding one.
"""

from __future__ import annotations

import abc
import dataclasses
import decimal
import math
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import (
    ExchangePkiError,
    HostUnreachable,
    RemoteModuleError,
    RemoteProtocolError,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._files import unusable_path
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import (
    ChangeRecord,
    LedgerError,
    check_run_id,
    check_sinks,
    deliver_records,
    make_record,
    scrub,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import (
    Plan,
    Step,
    StepOutcome,
    describe_value,
    first_failure,
    not_run,
    outcomes,
    unanswered,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_ARGSPEC,
    Batch,
    BatchResult,
    ExchangeSessionOptions,
    SessionOptionError,
    is_dropped_connection,
    run_batch,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import (
    Read,
    ServerSnapshot,
    build_batch,
    read_snapshot,
    unavailable_warnings,
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


#: How deep a task argument may nest (mappings and lists) for the error to name it: core's validator copies the
#: arguments recursively and overflows the stack on values hundreds of levels deep, far from any real value (a
#: fleet's facts, a plan); the error then names the options deeper than this (see too_deep_message).
MAX_NESTING = 64
#: The largest power of ten an ``int`` option given as text may reach (core would build the whole integer first).
_MAX_INT_TEXT_EXPONENT = 100


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _too_deep(value: Any) -> bool:
    pending = [(value, 0)]
    while pending:
        current, depth = pending.pop()
        if depth > MAX_NESTING:
            return True
        if isinstance(current, Mapping):
            pending.extend((item, depth + 1) for item in current.values())
        elif isinstance(current, (list, tuple)):
            pending.extend((item, depth + 1) for item in current)
    return False


def too_deep_message(args: Any) -> str:
    """The error for arguments core's validator could not copy (RecursionError), naming the options too deep."""
    deep = [str(name) for name, value in args.items() if _too_deep(value)] if isinstance(args, Mapping) else []
    return (f"{', '.join(deep)} {'is' if len(deep) == 1 else 'are'} nested deeper than {MAX_NESTING} levels" if deep
            else "an argument is nested too deeply to be read")


def _unusable_number(value: Any, kind: str) -> str | None:
    """Why core cannot turn ``value`` into an ``int`` without crashing or hanging, or None; core also takes a
    boolean for the number 0 or 1 (``int`` and ``float``), which no option of the collection means."""
    if isinstance(value, bool):
        return f"must be a number, got the boolean {value}"
    if kind == "int" and isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite whole number, got {value}"
    if kind == "int" and isinstance(value, str):
        try:
            number = decimal.Decimal(value.strip())
        except (decimal.InvalidOperation, ValueError):
            return None  # core refuses it with its own message
        if not number.is_finite():
            return "must be a finite whole number"
        if number.adjusted() >= _MAX_INT_TEXT_EXPONENT:
            return f"is too large (10**{_MAX_INT_TEXT_EXPONENT} or more)"
    return None


def check_argument_shapes(spec: Mapping[str, Any], args: Any, prefix: str = "") -> None:
    """Refuse, naming the option, the arguments core's ArgumentSpecValidator crashes on instead of refusing them:
    a non-finite (or absurdly large textual) number for an ``int`` option, and something other than a mapping with
    string keys where an option has suboptions. Refuse too what core accepts and no option means: a boolean for a
    number, and a ``path`` no file can have (:func:`_files.unusable_path`: a NUL character, a lone surrogate, too
    long for the file system), which the os functions would crash on or refuse only after the
    module changed something. A value too deep for core to copy is caught from its RecursionError instead
    (:func:`too_deep_message`): a walk here would cost as much as core's own copy of a large fleet's facts."""
    if not isinstance(args, Mapping):
        return  # core refuses it
    for name, value in args.items():
        option = spec.get(name) if isinstance(name, str) else None
        if not isinstance(option, Mapping) or value is None:
            continue
        where = f"{prefix}{name}"
        kind = option.get("type", "str")
        elements = option.get("elements")
        if kind in ("int", "float") or (kind == "list" and elements in ("int", "float")):
            for item in value if kind == "list" and isinstance(value, list) else [value]:
                problem = _unusable_number(item, elements if kind == "list" else kind)
                if problem:
                    raise AnsibleActionFail(f"{where} {problem}")
        if kind == "path" or (kind == "list" and elements == "path"):
            for item in value if kind == "list" and isinstance(value, list) else [value]:
                problem = unusable_path(item)
                if problem:
                    raise AnsibleActionFail(f"{where} {problem}")
        suboptions = option.get("options")
        if not suboptions or isinstance(value, str):
            continue  # core parses a string (JSON or key=value) or refuses it
        if kind == "dict":
            items = [(where, value)]
        elif kind == "list" and elements == "dict" and isinstance(value, list):
            items = [(f"{where}[{index}]", item) for index, item in enumerate(value)]
        else:
            continue
        for label, item in items:
            if item is None or isinstance(item, str):
                continue
            if not isinstance(item, Mapping):
                raise AnsibleActionFail(f"{label} must be a dictionary, got {_kind(item)}")
            for key in item:
                if not isinstance(key, str):
                    raise AnsibleActionFail(f"{label} has a key that is not a string ({_kind(key)} {key!r:.40})")
            check_argument_shapes(suboptions, item, f"{label}.")


def failed_result(result: dict[str, Any], error: AnsibleActionFail) -> dict[str, Any]:
    """``result`` failed with ``error``'s message and result, returned instead of raised: ansible-core applies a task's
    ``failed_when`` only to a result the plugin returns (one it raises fails the task whatever ``failed_when`` says,
    so ``failed_when: false`` on a probe that cannot connect would still fail the play)."""
    result.update(error.result_contribution)
    result.setdefault("changed", False)
    result.setdefault("failure_reason", "failed")
    return result


def no_log_values(spec: Mapping[str, Any], args: Any) -> list[str]:
    """The text of every ``no_log`` option (suboptions included) in the task arguments ``args`` as given: a string,
    or the strings in a list or in a mapping's values (``headers``)."""
    if not isinstance(args, Mapping):
        return []
    found: list[str] = []
    for name, option in spec.items():
        value = args.get(name)
        if not isinstance(option, Mapping) or value is None:
            continue
        if option.get("no_log"):
            items = value.values() if isinstance(value, Mapping) else value if isinstance(value, list) else [value]
            found += [item for item in items if isinstance(item, str) and item]
        if option.get("options"):
            for item in value if isinstance(value, list) else [value]:
                found += no_log_values(option["options"], item)
    return found


class ExchangePkiAction(ActionBase, metaclass=abc.ABCMeta):
    """Validate the arguments, run :meth:`execute`, translate failures; subclasses set :attr:`ARGUMENT_SPEC`."""

    ARGUMENT_SPEC: ClassVar[ArgumentSpec]
    #: Whether the plugin honours check mode (reading plugins and plugins that predict their change do).
    SUPPORTS_CHECK_MODE: ClassVar[bool] = True
    #: Free-form ``dict`` options that carry data, not settings (a fleet's facts, a plan). Core's validator deep-copies
    #: every argument, which for the facts of 10,000 servers took about as long as writing their report; a mapping
    #: given to one of these options is checked as a dictionary and passed on as it is, uncopied (the plugin reads it,
    #: never changes it). Anything else (a JSON string, a list) goes through the validator like any other value.
    DATA_OPTIONS: ClassVar[tuple[str, ...]] = ()
    #: Result keys that hold encoded data the task returns on purpose (a PFX, a PEM certificate or request):
    #: :meth:`without_secrets` leaves them as they are, since a short secret can occur in base64 by chance and
    #: masking it there would corrupt the data, while no error text ever lands in them.
    RESULT_DATA: ClassVar[tuple[str, ...]] = ()

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        self._supports_check_mode = self.SUPPORTS_CHECK_MODE
        self._supports_async = False
        self._sent_secrets: list[str] = []
        try:
            result: dict[str, Any] = super().run(tmp, task_vars)
        except AnsibleActionFail as error:  # e.g. async refused
            return self.without_secrets(failed_result({}, error))
        del tmp  # tmp no longer has any effect
        try:
            check_argument_shapes(self.ARGUMENT_SPEC.argument_spec, self._task.args)  # core would crash on these
            args = self.validated_arguments()

            self.check_one_of_has_a_value(args)
            self.check_session_options(args)
            self.check_ledger_sinks(args)
            result.update(self.execute(args, task_vars or {}))
        except HostUnreachable as error:
            result.update(unreachable=True, changed=False, msg=str(error), failure_reason=error.failure_reason)
        except AnsibleConnectionFailure as error:
            result.update(unreachable=True, changed=False, msg=str(error), failure_reason="unreachable")
        except ExchangePkiError as error:
            result.update(failed=True, changed=False, msg=str(error), failure_reason=error.failure_reason)
        except AnsibleActionFail as error:
            return self.without_secrets(failed_result(result, error))
        except Exception as error:  # noqa: BLE001 - a bug: report it with its traceback instead of crashing the play
            if is_dropped_connection(error):  # a broken connection outside run_batch is no bug either
                result.update(unreachable=True, changed=False, failure_reason="connection_dropped",
                              msg=f"the connection to the host was dropped during the task ({type(error).__name__})")
            else:
                result.update(
                    failed=True,
                    changed=False,
                    failure_reason="failed",
                    msg=f"Unexpected failure in {self._task.resolved_action or self._task.action}: "
                    f"{type(error).__name__}: {error}",
                    exception=traceback.format_exc(),
                )
        return self.without_secrets(result)

    def without_secrets(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with every secret of the task replaced by ``********``: the values of its no_log options and
        the secrets its batches sent. An error the host reports can quote what it received (PowerShell's argument
        errors quote the value), and the result carries such errors (``msg``, the steps)."""
        secrets = [*no_log_values(self.ARGUMENT_SPEC.argument_spec, self._task.args), *self._sent_secrets]
        if not secrets:
            return result
        data = {key: result[key] for key in self.RESULT_DATA if key in result}
        return {**scrub({key: value for key, value in result.items() if key not in data}, secrets, by_key=False),
                **data}

    def validated_arguments(self) -> dict[str, Any]:
        """The task's arguments checked against :attr:`ARGUMENT_SPEC` (AnsibleActionFail naming the problem), the
        mappings of :attr:`DATA_OPTIONS` passed on uncopied."""
        given = self._task.args
        data = {name: given[name] for name in self.DATA_OPTIONS if isinstance(given.get(name), Mapping)}
        if data:
            self._task.args = {**given, **dict.fromkeys(data, {})}
        try:
            args: dict[str, Any] = self.validate_argument_spec(**self.ARGUMENT_SPEC.validator_kwargs())[1]
        except RecursionError:  # core copies the arguments recursively; walking them first would double its time
            raise AnsibleActionFail(too_deep_message(given)) from None
        finally:
            self._task.args = given
        args.update(data)
        return args

    def check_one_of_has_a_value(self, args: Mapping[str, Any]) -> None:
        """Core counts an option given as null (``csr: "{{ missing | default(None) }}"``) as present in
        ``required_one_of``; refuse a group whose options are all null, naming them."""
        for group in self.ARGUMENT_SPEC.required_one_of:
            if all(args.get(name) is None for name in group):
                names = f"{', '.join(group[:-1])} and {group[-1]}" if len(group) > 1 else group[0]
                raise AnsibleActionFail(f"{names} are all empty (not given or null): give one of them")

    def check_session_options(self, args: Mapping[str, Any]) -> None:
        """Refuse invalid Exchange session options (when the plugin has them) before anything runs."""
        if not EXCHANGE_SESSION_ARGSPEC.keys() <= self.ARGUMENT_SPEC.argument_spec.keys():
            return
        try:
            ExchangeSessionOptions.from_task_args(args)
        except SessionOptionError as error:
            raise AnsibleActionFail(str(error)) from None

    def check_ledger_sinks(self, args: Mapping[str, Any]) -> None:
        """Refuse a bad ``ledger_webhook`` or ``ledger_run_id`` (when the plugin has them) before anything runs."""
        if "ledger_webhook" not in self.ARGUMENT_SPEC.argument_spec:
            return
        try:
            check_sinks(args)
        except LedgerError as error:
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
        self._sent_secrets.extend(batch.module_args()["secrets"].values())
        return run_batch(
            self, batch, task_vars, session=ExchangeSessionOptions.from_task_args(args), check_mode=self.check_mode,
        )


class ControllerAction(ExchangePkiAction, metaclass=abc.ABCMeta):
    """A plugin that works on the controller only: no connection to the task's host, no files transferred."""

    TRANSFERS_FILES = False
    _requires_connection = False


#: The id prefix of the confirming re-read that travels after a plan's last phase.
CONFIRM_PREFIX = "confirm."
#: What ``run_batch`` raises when a batch that was (or may have been) sent gets no usable answer.
ANSWER_LOST = (HostUnreachable, RemoteProtocolError, RemoteModuleError)


@dataclasses.dataclass(frozen=True)
class Applied:
    """What sending a plan did: every step's outcome, the first failure, and the re-read server (when it ran).

    ``lost``: why a phase got no answer (the connection broke or could not be made, the answer was unreadable);
    its steps are then ``unknown`` when they may have run, ``skipped`` when they cannot have.
    """

    outcomes: tuple[StepOutcome, ...]
    failure: StepOutcome | None
    after: ServerSnapshot | None
    after_problem: str | None = None
    lost: ExchangePkiError | None = None

    @property
    def changed(self) -> bool:
        return any(outcome.changed for outcome in self.outcomes)


class ChangingAction(ExchangePkiAction, metaclass=abc.ABCMeta):
    """The skeleton of every module that changes a server: subclasses implement :meth:`decide` only.

    Round trips: one read (:meth:`read`), then, unless the plan is empty or the task runs in check mode, one
    batch per phase of the plan; the last phase also carries the server read again (ids prefixed
    :data:`CONFIRM_PREFIX`), so that :meth:`confirm` checks the result without another round trip.

    The result always holds ``plan`` (the steps with their reasons) and the plan's own ``result`` keys, and
    ``diff`` when the task runs with ``--diff``. When something was sent it also holds ``change_record``,
    which is appended to the ``ledger`` file when that option is set. Check mode writes no ledger record.

    A module that needs to read more than the server read lists its own reads in :attr:`EXTRA_READS`: they travel
    in the read and in the confirming re-read, and their values reach :meth:`decide` as ``snapshot.extra``.
    """

    #: The module's own reads beside the server read (``_snapshot.Read``), in both the read and the re-read.
    EXTRA_READS: ClassVar[tuple[Read, ...]] = ()
    #: What to do when the answer to a change was lost (the end of the failure's message).
    LOST_ANSWER_ADVICE: ClassVar[str] = ("Read the server (exchange.pki.certificate_info) or run the task again: it "
                                         "reads the server first and sends only what is still missing.")

    @abc.abstractmethod
    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        """The plan that brings the server read in ``snapshot`` to what ``args`` ask (no steps: nothing to do).

        Raise ``AnsibleActionFail`` (bad input) or :class:`ExchangePkiError` (a refusal, e.g. a reference
        that blocks a removal) to stop before anything is sent.
        """

    def read(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> ServerSnapshot:
        """The server read the decision starts from (one round trip)."""
        answer = self.run_batch(build_batch(extra=self.EXTRA_READS), task_vars, args)
        return read_snapshot(answer, extra=self.EXTRA_READS)

    def confirm(self, args: dict[str, Any], plan: Plan, after: ServerSnapshot,
                task_vars: Mapping[str, Any]) -> list[str]:
        """What is still wrong after the plan ran; by default, whatever deciding again would still change."""
        del plan  # the default asks the question afresh
        again = self.decide(args, after, task_vars)
        return [f"{step.operation}: {step.reason}" for step in again.steps if step.changes]

    def failure_note(self, plan: Plan, applied: Applied) -> str | None:
        """What a failed or unanswered plan leaves for the administrator to do that running the task again would
        not do (appended to the failure's message); by default nothing."""
        del plan, applied
        return None

    def applied_result(self, plan: Plan, applied: Applied) -> dict[str, Any]:
        """Result keys that only the outcome can tell (what a step really did); by default none."""
        del plan, applied
        return {}

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        snapshot = self.read(args, task_vars)
        plan = self.decide(args, snapshot, task_vars)
        return self.carry_out(plan, args, task_vars, server=snapshot.server_name, warnings=snapshot.unavailable)

    def carry_out(self, plan: Plan, args: dict[str, Any], task_vars: Mapping[str, Any], *,
                  server: str | None, warnings: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Return ``plan`` (check mode, or nothing to do) or apply, confirm and record it."""
        result: dict[str, Any] = {"changed": plan.changed, "plan": plan.describe(), **plan.result}
        all_warnings = [*plan.warnings, *unavailable_warnings(warnings or {})]
        if all_warnings:
            result["warnings"] = all_warnings
        if self._task.diff and plan.changed:
            result["diff"] = plan.diff()
        if not plan.changed or self.check_mode:
            return result

        applied = self.apply(plan, args, task_vars)
        if applied.lost is not None:
            return self.record_lost(result, plan, applied, applied.lost, args, task_vars, server=server)
        problems: list[str] = []
        if applied.failure is None:
            if applied.after is None:
                problems.append(f"the server could not be read again to confirm the change: {applied.after_problem}")
            else:
                problems = self.confirm(args, plan, applied.after, task_vars)
        result["changed"] = applied.changed
        result["steps"] = [outcome.describe() for outcome in applied.outcomes]
        result.update(self.applied_result(plan, applied))
        if applied.failure is not None:
            step = applied.failure.step
            message = f"step {step.id} ({step.operation}) failed: {applied.failure.message} (the step: {step.reason})"
        elif problems:
            message = "the change was sent but the server does not show it: " + "; ".join(problems)
        else:
            message = None
        note = self.failure_note(plan, applied) if applied.failure is not None else None
        if message is not None and note:
            message = f"{message}. {note}"
        return self.record(result, plan, args, task_vars, server=server, changed=applied.changed, message=message)

    def record(self, result: dict[str, Any], plan: Plan, args: Mapping[str, Any], task_vars: Mapping[str, Any], *,
               server: str | None, changed: bool, message: str | None) -> dict[str, Any]:
        """Put the change record of ``plan`` in ``result`` and the ledger; fail the result when ``message`` says
        the change failed, or when the record could not be appended (the change itself happened: say so)."""
        record = self.change_record(plan, args, task_vars, server=server, changed=changed, message=message)
        result["change_record"] = record.as_dict()
        ledger_error = self.append_to_ledger(args, record)
        if message is not None:
            msg = message if ledger_error is None else f"{message}; {ledger_error}"
            result.update(failed=True, msg=msg, failure_reason="failed")
        elif ledger_error is not None:
            result.update(failed=True, msg=ledger_error, failure_reason="failed")
        return result

    def record_lost(self, result: dict[str, Any], plan: Plan, applied: Applied, lost: ExchangePkiError,
                    args: Mapping[str, Any], task_vars: Mapping[str, Any], *, server: str | None) -> dict[str, Any]:
        """The result and ledger record of a plan whose phase got no answer (:attr:`Applied.lost`).

        The change was sent, or part of it was: it is recorded (``failed``, saying which steps are unknown) and
        ``changed`` is true when any step changed or may have changed the server. A broken or refused connection
        stays an unreachable result with its reason, as before anything was sent."""
        unknown = [outcome.step for outcome in applied.outcomes if outcome.status == "unknown"]
        done = [outcome.step.id for outcome in applied.outcomes if outcome.status == "ok" and outcome.changed]
        if unknown:
            message = (f"{str(lost).rstrip('.')}. The answer to step(s) {', '.join(step.id for step in unknown)} "
                       f"({', '.join(dict.fromkeys(step.operation for step in unknown))}) was lost: whether they took "
                       f"effect is unknown. {self.LOST_ANSWER_ADVICE}")
        else:
            message = f"{str(lost).rstrip('.')}. " + (
                f"Step(s) {', '.join(done)} had been done; the rest was not sent." if done else "Nothing was sent.")
        note = self.failure_note(plan, applied)
        if note:
            message = f"{message.rstrip('.')}. {note}"
        changed = applied.changed
        result.update(changed=changed, steps=[outcome.describe() for outcome in applied.outcomes])
        recorded = self.record(result, plan, args, task_vars, server=server, changed=changed, message=message)
        if isinstance(lost, HostUnreachable):
            recorded.pop("failed", None)
            recorded.update(unreachable=True, failure_reason=lost.failure_reason)
        else:
            recorded["failure_reason"] = lost.failure_reason
        return recorded

    def apply(self, plan: Plan, args: dict[str, Any], task_vars: Mapping[str, Any]) -> Applied:
        """Send the plan phase by phase; stop at the first failed step or lost answer; re-read the server with the
        last phase."""
        phases = plan.phases()
        values: dict[str, Any] = {}
        done: list[StepOutcome] = []
        for index, phase in enumerate(phases):
            batch = plan.batch(phase, values)
            last = index == len(phases) - 1
            if last:
                build_batch(batch, prefix=CONFIRM_PREFIX, extra=self.EXTRA_READS)
            later = [step for other in phases[index + 1:] for step in other]
            try:
                answer = self.run_batch(batch, task_vars, args)
            except ANSWER_LOST as error:
                return Applied((*done, *self.lost_phase(phase, error), *not_run(later)), None, None, lost=error)
            found = outcomes(phase, answer)
            done.extend(found)
            values.update({outcome.step.id: outcome.value for outcome in found})
            failure = first_failure(found)
            if failure is not None:
                return Applied((*done, *not_run(later)), failure, None)
            if last:
                try:
                    after = read_snapshot(answer, prefix=CONFIRM_PREFIX, extra=self.EXTRA_READS)
                except ExchangePkiError as error:
                    return Applied(tuple(done), None, None, str(error))
                return Applied(tuple(done), None, after)
        return Applied(tuple(done), None, None, "the plan had no steps to send")

    @staticmethod
    def lost_phase(phase: Sequence[Step], error: ExchangePkiError) -> tuple[StepOutcome, ...]:
        """The outcomes of a phase that got no answer: not sent when the connection could not be made or the
        executor refused the batch as a whole before running it; otherwise unknown (it may have run)."""
        not_sent = isinstance(error, RemoteModuleError) or (
            isinstance(error, HostUnreachable) and error.failure_reason in ("unreachable", "authentication_refused"))
        return not_run(phase) if not_sent else unanswered(phase, "sent, but its answer was lost")

    def change_record(self, plan: Plan, args: Mapping[str, Any], task_vars: Mapping[str, Any], *,
                      server: str | None, changed: bool, message: str | None) -> ChangeRecord:
        """The ledger record of a plan that was carried out (secrets scrubbed)."""
        passwords = [value for key, value in args.items()
                     if isinstance(value, str) and key.endswith("password") and value]
        secrets = [*plan.secrets(), *passwords]
        hostname = str(task_vars.get("inventory_hostname") or "") or None
        remote_user = task_vars.get("ansible_user") or task_vars.get("ansible_winrm_user")
        return make_record(
            server=server or hostname or "unknown",
            module=self._task.resolved_action or self._task.action,
            action=plan.action,
            result="failed" if message is not None else "changed" if changed else "unchanged",
            before=describe_value(dict(plan.before)),
            after=describe_value(dict(plan.after)),
            secrets=secrets,
            host=hostname,
            remote_user=str(remote_user) if remote_user else None,
            message=message,
            run_id=check_run_id("ledger_run_id", args.get("ledger_run_id")),
        )

    @staticmethod
    def append_to_ledger(args: Mapping[str, Any], record: ChangeRecord) -> str | None:
        """Append ``record`` to the ``ledger`` file when one is set, then send it to ``ledger_webhook``; the error
        message when either failed."""
        try:
            deliver_records(args, [record])
        except LedgerError as error:
            return str(error)
        return None
