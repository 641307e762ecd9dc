# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_time: the one owner of the current time, the ISO-8601 UTC forms and whole-day offsets."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _time
from ansible_collections.exchange.pki.plugins.plugin_utils._time import (
    UTC,
    format_utc_datetime,
    parse_iso_datetime,
    parse_time_option,
    parse_utc_datetime,
    whole_days,
)

# --- dates ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T10:00:00Z", datetime.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
        ("2026-11-25T10:00:00.5Z", datetime.datetime(2026, 11, 25, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-25T10:00:00.1234567Z", datetime.datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_parse_utc_datetime(text: str, expected: datetime.datetime) -> None:
    assert parse_utc_datetime(text) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime.datetime(2026, 11, 25, 8, 0, 5, tzinfo=UTC), "2026-11-25T08:00:05Z"),
        (datetime.datetime(2026, 11, 25, 8, 0, 5, 999999, tzinfo=UTC), "2026-11-25T08:00:05Z"),
        (datetime.datetime(2026, 11, 25, 1, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=-7))),
         "2026-11-25T08:00:00Z"),
    ],
    ids=["utc", "fraction-dropped", "offset-converted"],
)
def test_format_utc_datetime_is_what_parse_utc_datetime_reads(moment: datetime.datetime, expected: str) -> None:
    assert format_utc_datetime(moment) == expected
    assert parse_utc_datetime(expected) == moment.replace(microsecond=0)


@pytest.mark.parametrize("text", ["2026-11-25T10:00:00", "2026-11-25T10:00:00+01:00", "25/11/2026 10:00", ""])
def test_parse_utc_datetime_rejects_non_utc(text: str) -> None:
    with pytest.raises(ValueError):
        parse_utc_datetime(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T08:00:00Z", datetime.datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25T08:00:00z", datetime.datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25T09:30:00+01:30", datetime.datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25T08:00:00", datetime.datetime(2026, 11, 25, 8, tzinfo=UTC)),
        ("2026-11-25", datetime.datetime(2026, 11, 25, tzinfo=UTC)),
    ],
    ids=["z", "lower-z", "offset", "naive-is-utc", "date-only"],
)
def test_parse_iso_datetime_accepts_what_users_write(text: str, expected: datetime.datetime) -> None:
    assert parse_iso_datetime(text) == expected
    assert parse_iso_datetime(text).tzinfo is UTC


@pytest.mark.parametrize("text", ["", "next tuesday", "2026-11-25T08:00:00Z\x00", "2026-13-01", None, 20261125])
def test_parse_iso_datetime_rejects_anything_else_with_value_error(text: object) -> None:
    with pytest.raises(ValueError):
        parse_iso_datetime(text)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["2026-11-25T08:00:00Z", "2026-11-25T09:30:00+01:30", "2026-11-25T08:00:00"])
def test_parse_time_option_reads_what_parse_iso_datetime_reads(text: str) -> None:
    assert parse_time_option(text) == parse_iso_datetime(text) == datetime.datetime(2026, 11, 25, 8, tzinfo=UTC)


@pytest.mark.parametrize("value", [None, 20261125, ["2026-11-25"], "2026-11-25T08:00:00Z\n", "2026-11-25\u2028",
                                   "2026-11-25T08:00:00Z\x85"])
def test_parse_time_option_tells_what_is_not_date_text_with_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        parse_time_option(value)


# 9999-12-31T23:00 at UTC-5 is past datetime.max in UTC: out of range, not a crash.
@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "9999-12-31T23:00:00-05:00"])
def test_parse_time_option_tells_text_that_is_no_date_with_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_option(text)


@pytest.mark.parametrize(
    ("later", "earlier", "days"),
    [
        (datetime.datetime(2026, 12, 1, 12, tzinfo=UTC), datetime.datetime(2026, 11, 30, 12, tzinfo=UTC), 1),
        (datetime.datetime(2026, 12, 1, 11, tzinfo=UTC), datetime.datetime(2026, 11, 30, 12, tzinfo=UTC), 0),
        # 12 hours past a deadline is a day late, not "0 days": stricter than TimeSpan.Days on purpose.
        (datetime.datetime(2026, 11, 30, 0, tzinfo=UTC), datetime.datetime(2026, 11, 30, 12, tzinfo=UTC), -1),
    ],
    ids=["one-day", "not-quite-a-day", "half-a-day-late"],
)
def test_whole_days_rounds_down(later: datetime.datetime, earlier: datetime.datetime, days: int) -> None:
    assert whole_days(later, earlier) == days


def test_utc_now_is_aware_utc_in_whole_seconds() -> None:
    now = _time.utc_now()
    assert now.tzinfo is UTC
    assert now.microsecond == 0
    assert abs((datetime.datetime.now(UTC) - now).total_seconds()) < 5
