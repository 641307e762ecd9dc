# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Injected faults per server and operation (tests/lab/ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import ErrorRecord

ANY_OPERATION = "*"


@dataclass
class Fault:
    """``error``: fail the operation with this message; ``latency``: sleep first; ``drop``: drop the connection.

    ``times_left`` None means until cleared. ``after``: the calls that pass untouched before the fault applies
    (1 lets the first read of a task through and faults the re-read that confirms its change).
    """

    server: str
    operation: str
    error: str | None = None
    latency: float | None = None
    drop: bool = False
    times_left: int | None = None
    after: int = 0

    def error_record(self) -> ErrorRecord | None:
        if self.error is None:
            return None
        return ErrorRecord(self.error, "NotSpecified", "LabInjectedFault", "LabInjectedFault")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class FaultTable:
    """Faults keyed by (server, operation); an exact operation wins over ``*``."""

    def __init__(self) -> None:
        self._faults: dict[tuple[str, str], Fault] = {}

    def set(self, fault: Fault) -> None:
        if fault.times_left is not None and fault.times_left < 1:
            raise ValueError("a fault's times must be at least 1")
        if fault.after < 0:
            raise ValueError("a fault's after must not be negative")
        self._faults[(fault.server, fault.operation)] = fault

    def clear(self, server: str | None = None) -> None:
        if server is None:
            self._faults.clear()
        else:
            self._faults = {key: fault for key, fault in self._faults.items() if key[0] != server}

    def take(self, server: str, operation: str) -> Fault | None:
        """The fault that applies to this call, counting it down (and forgetting it when used up)."""
        for key in ((server, operation), (server, ANY_OPERATION)):
            fault = self._faults.get(key)
            if fault is None:
                continue
            if fault.after:
                fault.after -= 1
                return None
            if fault.times_left is not None:
                fault.times_left -= 1
                if fault.times_left == 0:
                    del self._faults[key]
            return fault
        return None

    def for_server(self, server: str) -> list[dict[str, object]]:
        return [fault.as_dict() for key, fault in sorted(self._faults.items()) if key[0] == server]
