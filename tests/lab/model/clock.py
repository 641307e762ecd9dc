# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab clock: starts at a given instant and only moves when the lab is told to (Fleet.advance_clock)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone


class LabClock:
    """A manual clock; every time-dependent behaviour of the model reads it, never the wall clock."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the lab clock needs an aware datetime")
        self.start = start.astimezone(timezone.utc).replace(microsecond=0)
        self._now = self.start

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        """Move forward to ``instant`` (the clock never goes back)."""
        if instant < self._now:
            raise ValueError("the lab clock cannot go backwards")
        self._now = instant

    def advance(self, seconds: float) -> datetime:
        self.set(self._now + timedelta(seconds=seconds))
        return self._now


def iso(instant: datetime | None) -> str | None:
    """ISO-8601 UTC with a ``Z`` suffix, as the protocol transports dates."""
    if instant is None:
        return None
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
