# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Time, in one place: the current UTC time, the ISO-8601 UTC forms the protocol and the facts use, offsets.

Every date/time that leaves or enters the collection is timezone-aware UTC. Decisions never call the clock
themselves: they take ``now`` (a plugin calls :func:`utc_now` once, at its edge), so tests freeze time by
passing it, or by patching this module's :func:`utc_now` for a whole plugin.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control

UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)
#: The first and the last instant a datetime can hold, timezone-aware UTC.
EARLIEST = datetime.datetime.min.replace(tzinfo=UTC)
LATEST = datetime.datetime.max.replace(tzinfo=UTC)
#: The range of a time a plan or a report is made for (the ``now`` options). Windows, backoffs and the report's
#: timeline are computed from it years ahead and back, and a datetime ends with 9999-12-31.
NOW_RANGE = (datetime.datetime(1970, 1, 1, tzinfo=UTC), datetime.datetime(9000, 1, 1, tzinfo=UTC))

# The protocol's form: a Z suffix and a fraction of any length (.NET writes seven digits).
_ISO_UTC = re.compile(r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?Z$")


class TimeRangeError(ValueError):
    """A valid date/time outside the range an option accepts; its message says which range."""


def utc_now() -> datetime.datetime:
    """The current time, timezone-aware UTC, whole seconds."""
    return datetime.datetime.now(UTC).replace(microsecond=0)


def parse_utc_datetime(text: str) -> datetime.datetime:
    """Parse the protocol's strict ISO-8601 UTC form (``Z`` suffix, optional fraction of any length)."""
    match = _ISO_UTC.match(text)
    if match is None:
        raise ValueError(f"not an ISO-8601 UTC date/time ending in Z: {text!r}")
    moment = datetime.datetime.fromisoformat(match.group("base")).replace(tzinfo=UTC)
    fraction = match.group("fraction")
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    return moment


def parse_iso_datetime(text: str) -> datetime.datetime:
    """Parse a user's ISO-8601 date/time (``Z``, an offset, or naive meaning UTC) to aware UTC.

    Raises ValueError for anything else, also for a time that has no UTC form (``0001-01-01T00:00:00+01:00`` is
    before the first instant a datetime holds); callers name the option in their own error.
    """
    if not isinstance(text, str) or not text or "\x00" in text:
        raise ValueError(f"not an ISO-8601 date/time: {text!r}")
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"out of range in UTC: {text!r}") from None


def parse_time_option(value: object) -> datetime.datetime:
    """A date/time option a user gave (such as a plan's ``now``): :func:`parse_iso_datetime`'s forms, to aware UTC.

    Raises TypeError when ``value`` is not text fit to be a date/time (not a string, or a string with a control
    character), ValueError when it is text but not an ISO-8601 date/time (or out of range). Callers name the
    option and show the value in their own error.
    """
    if not isinstance(value, str) or has_control(value):
        raise TypeError(f"not a date/time string: {type(value).__name__}")
    return parse_iso_datetime(value)


def parse_now_option(value: object) -> datetime.datetime:
    """The time a plan or a report is made for (a ``now`` option): :func:`parse_time_option`, within NOW_RANGE.

    Raises as :func:`parse_time_option` does, and TimeRangeError (a ValueError) for a time outside NOW_RANGE, with a
    message fit to follow the option's name.
    """
    moment = parse_time_option(value)
    earliest, latest = NOW_RANGE
    if not earliest <= moment < latest:
        raise TimeRangeError(f"{format_utc_datetime(moment)} is outside the times a plan or report can be made for "
                             f"(from {format_utc_datetime(earliest)} to before {format_utc_datetime(latest)})")
    return moment


def format_utc_datetime(moment: datetime.datetime) -> str:
    """The protocol's and the facts' form of a date/time: ISO-8601 in UTC, whole seconds, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def shifted(moment: datetime.datetime, delta: datetime.timedelta) -> datetime.datetime:
    """``moment + delta``, held at EARLIEST or LATEST instead of overflowing.

    A certificate may be valid until 9999-12-31T23:59:59Z (RFC 5280's value for "no well-defined expiration date"):
    a margin after it, or a renewal lead before a date near the year 1, has no datetime of its own.
    """
    try:
        return moment + delta
    except OverflowError:
        return LATEST if delta > datetime.timedelta(0) else EARLIEST


def whole_days(later: datetime.datetime, earlier: datetime.datetime) -> int:
    """Whole days from ``earlier`` to ``later``, rounded down (12 hours past a deadline is -1, not 0)."""
    return (later - earlier) // DAY
