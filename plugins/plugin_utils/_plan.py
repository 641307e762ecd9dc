# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""A change as data: the steps a changing module decided on, the batch they become, the diff, the outcome.

A changing module never builds a batch itself. It decides a :class:`Plan` (each :class:`Step` is one
allow-listed operation, its arguments and the reason for it) from what the server read found;
``_action.ChangingAction`` then returns the plan in check mode, or sends it and confirms it. The plan is
also what the user sees: :meth:`Plan.describe` lists the steps with their reasons, :meth:`Plan.diff` is the
task's diff, and both hide every secret (:class:`Secret`) and every byte string (only its size and SHA-256).

A step may use a value that an earlier step returns (:class:`ResultOf`, e.g. the thumbprint of a certificate
New-ExchangeCertificate just made). The plan then runs in phases (:meth:`Plan.phases`): each phase is one
batch, and a later phase starts once the values it needs are known. Most plans are a single phase.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import BatchDefinitionError, ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    OPERATIONS,
    Batch,
    BatchResult,
    as_bytes,
    as_datetime,
)

MASK = "********"


class Secret:
    """A value that travels only in the batch's secrets (no_log); shown everywhere else as ``********``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("a Secret holds a string")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value  # noqa: SLF001 - same class

    def __hash__(self) -> int:
        return hash((Secret, self._value))


@dataclasses.dataclass(frozen=True)
class ResultOf:
    """The value an earlier step of the same plan returns: ``field`` of its result (a dict), or all of it."""

    step: str
    field: str | None = None

    def describe(self) -> str:
        return f"<{self.field} returned by step {self.step}>" if self.field else f"<value returned by step {self.step}>"

    def resolve(self, value: Any) -> Any:
        if self.field is None:
            return value
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 1:
            value = value[0]  # a cmdlet that wrote one object
        if not isinstance(value, Mapping) or self.field not in value:
            raise ExchangePkiError(f"step {self.step} returned no {self.field}; the plan cannot continue")
        return value[self.field]


def describe_value(value: Any) -> Any:
    """A JSON-able, secret-free picture of an argument value, for the plan, the diff and the ledger."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, ResultOf):
        return value.describe()
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return f"<{len(data)} bytes, SHA-256 {hashlib.sha256(data).hexdigest()}>"
    if isinstance(value, datetime.datetime):
        return as_datetime(value)["$datetime"] if value.tzinfo is not None else value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): describe_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [describe_value(item) for item in value]
    return value


def secrets_in(value: Any) -> Iterator[str]:
    """Every secret held anywhere in ``value`` (the ledger scrubs them from what it writes)."""
    if isinstance(value, Secret):
        yield value.reveal()
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from secrets_in(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from secrets_in(item)


def _references(value: Any) -> Iterator[ResultOf]:
    if isinstance(value, ResultOf):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _references(item)


@dataclasses.dataclass(frozen=True)
class Step:
    """One allow-listed operation, its arguments and why the module wants it.

    Argument values are plain JSON values, :class:`Secret`, ``bytes``, aware ``datetime``, :class:`ResultOf`,
    or ``_remote.LOCAL_SERVER``; the batch turns them into their wire form.
    """

    id: str
    operation: str
    arguments: Mapping[str, Any]
    reason: str

    def __post_init__(self) -> None:
        spec = OPERATIONS.get(self.operation)
        if spec is None:
            raise BatchDefinitionError(f"step {self.id!r}: unknown operation {self.operation!r}")
        if not self.id or not self.reason:
            raise BatchDefinitionError(f"step of {self.operation}: an id and a reason are required")
        object.__setattr__(self, "arguments", MappingProxyType(dict(self.arguments)))

    @property
    def changes(self) -> bool:
        return OPERATIONS[self.operation].changes

    @property
    def needs(self) -> frozenset[str]:
        """The ids of the steps whose results this step's arguments use."""
        return frozenset(reference.step for reference in _references(dict(self.arguments)))

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "operation": self.operation, "arguments": describe_value(dict(self.arguments)),
                "reason": self.reason}


def _wire(batch: Batch, value: Any, results: Mapping[str, Any]) -> Any:
    if isinstance(value, ResultOf):
        return _wire(batch, value.resolve(results[value.step]), results)
    if isinstance(value, Secret):
        return batch.as_secret(value.reveal())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return as_bytes(bytes(value))
    if isinstance(value, datetime.datetime):
        return as_datetime(value)
    if isinstance(value, tuple):
        return [_wire(batch, item, results) for item in value]
    return value


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a changing module will do on one server (or one organisation), as data.

    ``action`` names the change in the ledger (``enable_services``, ``remove``, ...); ``before`` and ``after``
    are the small JSON-able states the diff and the change record show (thumbprints, services; never keys
    or passwords); ``result`` holds module-specific return values; ``warnings`` reach the task result.
    An empty plan (no steps) means the server is already as asked: ``changed`` is false.
    """

    action: str
    steps: tuple[Step, ...] = ()
    before: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    after: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    result: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise BatchDefinitionError(f"plan {self.action}: the step id {step.id!r} is used twice")
            unknown = step.needs - seen
            if unknown:
                raise BatchDefinitionError(
                    f"plan {self.action}: step {step.id!r} uses the result of {', '.join(sorted(unknown))}, "
                    "which is not an earlier step",
                )
            seen.add(step.id)

    @property
    def changed(self) -> bool:
        """The predicted ``changed``: whether any step changes something."""
        return any(step.changes for step in self.steps)

    def phases(self) -> tuple[tuple[Step, ...], ...]:
        """The steps cut into batches: a new phase starts at a step that needs a result of the current phase."""
        phases: list[list[Step]] = []
        current: list[Step] = []
        current_ids: set[str] = set()
        for step in self.steps:
            if step.needs & current_ids:
                phases.append(current)
                current, current_ids = [], set()
            current.append(step)
            current_ids.add(step.id)
        if current:
            phases.append(current)
        return tuple(tuple(phase) for phase in phases)

    def batch(self, phase: Sequence[Step], results: Mapping[str, Any] | None = None) -> Batch:
        """One phase as a batch; ``results`` holds the values earlier phases returned, by step id."""
        batch = Batch()
        known = results or {}
        for step in phase:
            arguments = {name: _wire(batch, value, known) for name, value in step.arguments.items()}
            batch.add(step.operation, arguments, id=step.id)
        return batch

    def describe(self) -> list[dict[str, Any]]:
        """The steps as the task result shows them (secrets masked, bytes summarised)."""
        return [step.describe() for step in self.steps]

    def diff(self) -> dict[str, Any]:
        """The task's diff: before and after, as Ansible's callbacks render dictionaries."""
        return {"before": describe_value(dict(self.before)), "after": describe_value(dict(self.after))}

    def secrets(self) -> tuple[str, ...]:
        """Every secret the plan carries (what the ledger must never write)."""
        found = [*secrets_in([dict(step.arguments) for step in self.steps]),
                 *secrets_in(dict(self.before)), *secrets_in(dict(self.after)), *secrets_in(dict(self.result))]
        return tuple(dict.fromkeys(found))


@dataclasses.dataclass(frozen=True)
class StepOutcome:
    """How one step ended: ``ok``, ``failed`` (with the domain error's message), ``skipped``, or ``unknown`` (it
    was sent and its answer never came back: whether it changed the server is not known)."""

    step: Step
    status: str
    changed: bool
    value: Any = None
    message: str | None = None

    def describe(self) -> dict[str, Any]:
        described = {"id": self.step.id, "operation": self.step.operation, "status": self.status,
                     "changed": self.changed}
        if self.message:
            described["message"] = self.message
        return described


def outcomes(phase: Sequence[Step], result: BatchResult) -> tuple[StepOutcome, ...]:
    """The outcome of every step of a phase that was sent as :meth:`Plan.batch`."""
    found = []
    for step in phase:
        operation = result[step.id]
        error = operation.exception()
        message = None if error is None or operation.status == "skipped" else str(error)
        found.append(StepOutcome(step, operation.status, operation.changed, operation.value, message))
    return tuple(found)


def not_run(steps: Sequence[Step]) -> tuple[StepOutcome, ...]:
    """The outcome of steps of a later phase that never ran because an earlier phase failed."""
    return tuple(StepOutcome(step, "skipped", changed=False) for step in steps)


def unanswered(steps: Sequence[Step], message: str) -> tuple[StepOutcome, ...]:
    """The outcome of steps that were sent but whose answer was lost (the connection broke, the answer was
    unreadable): ``unknown``, and ``changed`` when the step changes the server (it may have)."""
    return tuple(StepOutcome(step, "unknown", changed=step.changes, message=message) for step in steps)


def first_failure(found: Sequence[StepOutcome]) -> StepOutcome | None:
    return next((outcome for outcome in found if outcome.status == "failed"), None)
