# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The frozen_clock fixture freezes the whole collection, not only _time."""

from __future__ import annotations

import datetime

from ansible_collections.exchange.pki.plugins.action import certificate_info
from ansible_collections.exchange.pki.plugins.plugin_utils import _time
from tests.unit.clock import NOW


def test_frozen_clock_reaches_modules_that_imported_utc_now(frozen_clock: datetime.datetime) -> None:
    assert _time.utc_now() == frozen_clock == certificate_info.utc_now() == NOW


def test_without_the_fixture_the_clock_runs() -> None:
    assert certificate_info.utc_now() > NOW
