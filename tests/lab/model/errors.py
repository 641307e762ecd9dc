# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions of the lab's Exchange model (tests/lab/ARCHITECTURE.md) and the cmdlet error value."""

from __future__ import annotations

from dataclasses import dataclass


class LabError(Exception):
    """A misuse of the lab itself (unknown server, bad control request); never an Exchange error."""


class ScenarioError(LabError):
    """A scenario file is invalid; the message names the file and the offending key."""


class UnknownModule(LabError):
    """The transport asked for a module the lab does not emulate."""

    def __init__(self, module: str) -> None:
        super().__init__(f"the lab does not implement the module {module!r}")
        self.module = module


class DroppedConnection(LabError):
    """A ``drop`` fault: the transport must close the connection without an answer."""


@dataclass(frozen=True)
class ErrorRecord:
    """The projection of a PowerShell ErrorRecord that docs/remote-protocol.md returns for a failed operation."""

    message: str
    category: str = "NotSpecified"
    fully_qualified_error_id: str = "NotSpecified"
    reason: str | None = None
    target: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "message": self.message,
            "category": self.category,
            "fully_qualified_error_id": self.fully_qualified_error_id,
            "reason": self.reason,
            "target": self.target,
        }


class OperationError(Exception):
    """Raised inside an operation: the operation fails with ``record`` (the batch goes on per the protocol)."""

    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record
