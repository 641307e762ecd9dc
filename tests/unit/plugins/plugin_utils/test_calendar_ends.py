# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Dates at the ends of the calendar: a certificate without expiry and ``now`` options far out.

RFC 5280 4.1.2.5: "To indicate that a certificate has no well-defined expiration date, the notAfter SHOULD be
assigned the GeneralizedTime value of 99991231235959Z" - device and appliance certificates do this, and such a
certificate in a server's store must not break a report or a plan (a margin after it has no datetime). A ``now``
that leaves no room for the windows and the timeline computed from it is refused, naming the range.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils import _renewal_status
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import parse_certificate
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import (
    RenewalInputError,
    RenewalPolicy,
    backoff_until,
    build_plan,
    parse_now,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._report import ReportInputError, build_report, report_time
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import FORMATS
from ansible_collections.exchange.pki.plugins.plugin_utils._report_html import build_timeline
from ansible_collections.exchange.pki.plugins.plugin_utils._time import (
    EARLIEST,
    LATEST,
    NOW_RANGE,
    UTC,
    TimeRangeError,
    parse_iso_datetime,
    parse_now_option,
    shifted,
)
from tests.unit.clock import NOW
from tests.unit.plugins.plugin_utils.report_facts import certificate, host_fact
from tests.unit.plugins.plugin_utils.test__renewal import ADCS, cert_of, lab_facts

NO_EXPIRY = "9999-12-31T23:59:59Z"
YEAR_ONE = "0001-01-01T00:00:00Z"


def no_expiry_certificate() -> bytes:
    """A self-signed certificate whose notAfter is RFC 5280's 99991231235959Z."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "appliance.contoso.lab")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
            .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    return cert.public_bytes(Encoding.DER)


# --- _time ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_without_a_utc_form_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="out of range in UTC"):
        parse_iso_datetime(text)


def test_shifted_holds_at_the_ends_of_the_calendar() -> None:
    day = datetime.timedelta(days=1)
    assert shifted(parse_iso_datetime(NO_EXPIRY), 7 * day) == LATEST
    assert shifted(parse_iso_datetime(YEAR_ONE), -7 * day) == EARLIEST
    assert shifted(NOW, day) == NOW + day and shifted(NOW, -day) == NOW - day


@pytest.mark.parametrize(("text", "inside"), [
    ("1970-01-01T00:00:00Z", True), ("8999-12-31T23:59:59Z", True), (NOW.isoformat(), True),
    ("1969-12-31T23:59:59Z", False), ("9000-01-01T00:00:00Z", False), ("9999-12-30T00:00:00Z", False),
])
def test_now_options_lie_in_now_range(text: str, inside: bool) -> None:
    if inside:
        assert NOW_RANGE[0] <= parse_now_option(text) < NOW_RANGE[1]
    else:
        with pytest.raises(TimeRangeError, match="outside the times a plan or report can be made for"):
            parse_now_option(text)


# --- certificate_info: the certificate itself -------------------------------------------------------------


def test_a_certificate_without_expiry_parses_with_its_dates() -> None:
    facts = parse_certificate(no_expiry_certificate())
    assert facts.not_after == parse_iso_datetime(NO_EXPIRY)
    assert facts.days_remaining(NOW) == (parse_iso_datetime(NO_EXPIRY) - NOW).days == 2_912_114
    assert facts.lifetime_days() > 2_900_000 and not facts.problems


# --- fleet_report -----------------------------------------------------------------------------------------


def fleet_with(*not_afters: str) -> dict[str, Any]:
    certs = [certificate("CN=mail.contoso.lab", days_remaining=40, roles=("iis",))]
    for index, not_after in enumerate(not_afters):
        try:
            days = (parse_iso_datetime(not_after) - NOW).days
        except ValueError:
            days = 0  # the report refuses the date first
        certs.append(certificate(f"CN=device{index}.contoso.lab", days_remaining=1, seed=index,
                                 not_after=not_after, days_remaining_=days, not_before="2020-01-01T00:00:00Z"))
        certs[-1]["days_remaining"] = certs[-1].pop("days_remaining_")
    return {"ex1": host_fact("ex1", certs)}


def test_every_report_format_renders_certificates_at_the_ends_of_the_calendar() -> None:
    report = build_report(fleet_with(NO_EXPIRY, YEAR_ONE), title="t", now=NOW)
    for fmt in FORMATS.values():
        text = "".join(fmt.render(report))
        assert "device1.contoso.lab" in text, fmt.name  # the earliest expiry, which every format names
        assert fmt.name == "markdown" or "device0.contoso.lab" in text, fmt.name  # markdown lists no certificate
    timeline = build_timeline(report)
    assert sum(bucket.count for bucket in timeline.buckets) == 3
    clamped = sorted((bucket for bucket in timeline.buckets if bucket.clamped), key=lambda bucket: bucket.x)
    assert [bucket.count for bucket in clamped] == [1, 1]  # one at each edge of the chart
    assert clamped[0].x == timeline.left and clamped[-1].x == timeline.right


@pytest.mark.parametrize("not_after", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_fact_date_without_a_utc_form_names_the_field(not_after: str) -> None:
    with pytest.raises(ReportInputError, match=r"certificates\[1\] .*not_after .* is not an ISO-8601 time"):
        build_report(fleet_with(not_after), title="t", now=NOW)


@pytest.mark.parametrize(("text", "message"), [
    ("0001-01-01T00:00:00+01:00", "is not an ISO-8601 date and time"),
    ("9999-12-30T00:00:00Z", "outside the times a plan or report can be made for"),
])
def test_a_report_time_out_of_range_is_refused(text: str, message: str) -> None:
    with pytest.raises(ReportInputError, match=f"now: .*{message}"):
        report_time(text)


# --- renewal_plan and renewal_status ----------------------------------------------------------------------


def test_a_plan_keeps_a_certificate_without_expiry_and_is_not_made_for_the_end_of_time() -> None:
    facts = lab_facts()
    mail = cert_of(facts["ex1"], "CN=mail.contoso.lab")
    mail.update(not_after=NO_EXPIRY, days_remaining=(parse_iso_datetime(NO_EXPIRY) - NOW).days)
    result = build_plan(facts, policy=RenewalPolicy.from_options(ADCS), now=NOW)
    assert all(mail["thumbprint"] not in str(item.get("due_reasons")) for item in result["items"])
    for text in ("9999-12-30T00:00:00Z", "1969-07-20T20:17:00Z"):
        with pytest.raises(RenewalInputError, match="now: .* is outside the times a plan or report can be made"):
            parse_now(text, NOW)
    with pytest.raises(RenewalInputError, match="is not an ISO-8601 date and time"):
        parse_now("0001-01-01T00:00:00+01:00", NOW)


def test_renewal_status_due_date_of_a_certificate_from_the_year_one() -> None:
    policy = RenewalPolicy.from_options(ADCS)
    assert _renewal_status.renewal_due({"not_after": YEAR_ONE, "lifetime_days": 30}, policy) == EARLIEST
    assert _renewal_status.renewal_due({"not_after": "0001-01-01T00:00:00+01:00"}, policy) is None  # no UTC form


def test_a_backoff_after_a_ledger_time_at_the_end_of_the_calendar_holds_at_the_last_instant() -> None:
    class Failed:
        failed = True
        time = parse_iso_datetime(NO_EXPIRY)

    assert backoff_until([Failed()], RenewalPolicy.from_options(ADCS)) == (1, LATEST)
