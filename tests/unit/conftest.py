# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures shared by every unit test."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _time
from tests.unit.clock import NOW

_PACKAGE = "ansible_collections.exchange.pki."


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> datetime.datetime:
    """Freeze the collection's clock at :data:`tests.unit.clock.NOW` and return it.

    ``_time.utc_now`` is replaced, and so is every ``utc_now`` a collection module imported by name from it.
    """
    original = _time.utc_now
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(_PACKAGE) and getattr(module, "utc_now", None) is original:
            monkeypatch.setattr(module, "utc_now", lambda: NOW)
    return NOW


def _collection_clocks() -> list[object]:
    """Every collection module whose ``utc_now`` is ``_time``'s or a stand-in this file put there."""
    original = _time.utc_now
    return [module for module in list(sys.modules.values())
            if getattr(module, "__name__", "").startswith(_PACKAGE)
            and (getattr(module, "utc_now", None) is original
                 or getattr(getattr(module, "utc_now", None), "__module__", None) == __name__)]


@pytest.fixture
def controller_clock(frozen_clock: datetime.datetime,
                     monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime.timedelta], datetime.datetime]:
    """Skew the controller's clock: ``controller_clock(offset)`` makes every ``utc_now`` of the collection (however
    a module imported it) answer :data:`NOW` + ``offset``, and returns that instant. The lab's (the servers')
    clock is not moved; ``Fleet.advance_clock`` moves that one."""

    def skew(offset: datetime.timedelta) -> datetime.datetime:
        moment = frozen_clock + offset
        for module in _collection_clocks():
            monkeypatch.setattr(module, "utc_now", lambda: moment)
        return moment

    return skew
