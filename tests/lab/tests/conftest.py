# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the lab's tests: an in-process lab serving a fake fleet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.daemon import Lab, LabOptions
from tests.lab.tests._fake_fleet import FakeFleet

#: A Receive waits this long before the operation-timeout fault in tests (the daemon's default is 5 s).
TEST_RECEIVE_WAIT = 0.2


@pytest.fixture
def fake_fleet() -> FakeFleet:
    return FakeFleet()


@pytest.fixture
def lab(fake_fleet: FakeFleet, tmp_path: Path) -> Iterator[Lab]:
    """A started lab on 127.0.0.1 (every listener of every fake server), stopped afterwards."""
    started = Lab(fake_fleet, tmp_path / "state", LabOptions(receive_wait=TEST_RECEIVE_WAIT))
    started.start()
    try:
        yield started
    finally:
        started.stop()
