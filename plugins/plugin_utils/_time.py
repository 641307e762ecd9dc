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

UTC = datetime.timezone.utc
DAY = datetime.timedelta(days=1)

# The protocol's form: a Z suffix and a fraction of any length (.NET writes seven digits).
_ISO_UTC = re.compile(r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?Z$")
# Control characters (C0, DEL, C1, the Unicode line and paragraph separators) are never part of a date/time option.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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

    Raises ValueError for anything else; callers name the option in their own error.
    """
    if not isinstance(text, str) or not text or "\x00" in text:
        raise ValueError(f"not an ISO-8601 date/time: {text!r}")
    parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_time_option(value: object) -> datetime.datetime:
    """A date/time option a user gave (such as a plan's ``now``): :func:`parse_iso_datetime`'s forms, to aware UTC.

    Raises TypeError when ``value`` is not text fit to be a date/time (not a string, or a string with a control
    character), ValueError when it is text but not an ISO-8601 date/time (or out of range). Callers name the
    option and show the value in their own error.
    """
    if not isinstance(value, str) or _CONTROL.search(value):
        raise TypeError(f"not a date/time string: {type(value).__name__}")
    try:
        return parse_iso_datetime(value)
    except OverflowError:
        raise ValueError(f"out of range: {value!r}") from None


def format_utc_datetime(moment: datetime.datetime) -> str:
    """The protocol's and the facts' form of a date/time: ISO-8601 in UTC, whole seconds, ``Z`` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_days(later: datetime.datetime, earlier: datetime.datetime) -> int:
    """Whole days from ``earlier`` to ``later``, rounded down (12 hours past a deadline is -1, not 0)."""
    return (later - earlier) // DAY
