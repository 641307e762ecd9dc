# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's Exchange organisation and the emulation of exchange.pki.exchange_batch (see tests/lab/README.md)."""

from .errors import DroppedConnection, LabError, ScenarioError, UnknownModule
from .faults import Fault
from .fleet import Fleet

__all__ = ["DroppedConnection", "Fault", "Fleet", "LabError", "ScenarioError", "UnknownModule"]
