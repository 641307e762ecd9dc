# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Fixtures shared by every unit test."""

from __future__ import annotations

import datetime
import sys

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
