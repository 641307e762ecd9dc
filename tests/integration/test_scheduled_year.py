# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A year of scheduled runs (inventory + renew + auth as ansible-runner jobs) against the lab, unattended.

The driver is tests/integration/year.py: at each scheduled day it advances the lab clock and shifts the jobs'
controller clock the same way (libfaketime), runs the three jobs the way AWX runs them, then records what every
server serves over TLS, the facts, the alerts a local webhook received, the ledger and the renewal metrics.

The lab (year_scenario): a two-member DAG sharing the mail certificate (70 days left; the CA's WebServer template
issues for 180 days) and an Auth certificate with 100 days left. The renewal policy renews 60 days before expiry, so
a run every eight weeks always lands in the window.

- ``make test`` (the compressed year): runs on days 0, 42, 98, 154, 210, 266, 322 and 364, plus the daily runs on
  days 43 and 44 around the first renewal, while a fault lasts: from day 42 to 44 Enable-ExchangeCertificate fails
  on ex2. Expected story: the mail certificate is renewed at day 42 (28 days left) on ex1 while ex2 is rolled back,
  the rollout is retried and fails again at day 43, and finishes at day 44 once the fault is cleared; renewed again
  at day 210 (12 days left) and day 364 (26 days left), never in between. The Auth certificate is staged at day 42
  (58 days left), the servicelet publishes it, and the previous one is cleared at day 98.
- ``make soak`` (EXCHANGE_PKI_SOAK=1): the same year with a run every day and the fault on the first three days the
  mail certificate is due; the same invariants.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import start_lab
from .year import Fault, Step, Year, adcs_policy, libfaketime, parse_time, receiver, step_summary, year_scenario

HAVE_RUNNER = importlib.util.find_spec("ansible_runner") is not None

pytestmark = [
    pytest.mark.skipif(libfaketime() is None, reason="needs Debian's faketime (make system-packages, as root)"),
    pytest.mark.skipif(not HAVE_RUNNER, reason="needs ansible-runner (requirements/dev.txt)"),
]

MAIL_DAYS_LEFT = 70
VALIDITY_DAYS = 180
AUTH_DAYS_LEFT = 100
RENEW_BEFORE_DAYS = 60
MAIL = "CN=mail.contoso.lab"
MEMBERS = ("ex1", "ex2")

FAULT_ERROR = "The certificate could not be bound to the service (injected fault)"
COMPRESSED = [0, 42, 43, 44, 98, 154, 210, 266, 322, 364]
COMPRESSED_FAULT = Fault(start=42, end=44, server="ex2", operation="Enable-ExchangeCertificate", error=FAULT_ERROR)
# The first day the mail certificate has fewer than RENEW_BEFORE_DAYS whole days left (days_remaining is floored, and
# every job runs a little after the step's lab time); the soak's fault lasts three runs.
SOAK_FIRST_DUE = MAIL_DAYS_LEFT - RENEW_BEFORE_DAYS
SOAK_FAULT = Fault(start=SOAK_FIRST_DUE, end=SOAK_FIRST_DUE + 3, server="ex2", operation="Enable-ExchangeCertificate",
                   error=FAULT_ERROR)
NEEDS_SOMEONE = ("warning", "critical")


def run_year(tmp_path_factory: pytest.TempPathFactory, name: str, days: list[int], fault: Fault) -> dict[str, Any]:
    work = tmp_path_factory.mktemp(name)
    scenario = work / "year.yml"
    scenario.write_text(yaml.safe_dump(year_scenario(mail_days_left=MAIL_DAYS_LEFT, validity_days=VALIDITY_DAYS,
                                                     auth_days_left=AUTH_DAYS_LEFT)), encoding="utf-8")
    lab = start_lab(work / "lab", "--scenario", str(scenario))
    started = time.monotonic()
    try:
        before = lab.dump()
        with receiver() as alerts:
            year = Year(
                lab, work, alerts, policy=adcs_policy(lab, renew_before_days=RENEW_BEFORE_DAYS), faults=[fault],
                renew_variables={"renew_alert": {"webhook": {"url": alerts.url("renew"), "allow_http": True},
                                                 "min_severity": "warning"},
                                 "renew_metrics_path": str(work / "metrics" / "exchange_pki_renewal.prom")},
                auth_variables={"auth_certificate_alert_webhook": {"url": alerts.url("auth"), "allow_http": True}},
            )
            steps = year.run(days)
        dump = lab.dump()
    finally:
        lab.control("stop")
    return {"steps": steps, "work": work, "before": before, "dump": dump, "fault": fault, "year": year,
            "seconds": round(time.monotonic() - started, 1)}


def by_day(steps: list[Step]) -> dict[int, Step]:
    return {step.day: step for step in steps}


def mail_served(step: Step) -> dict[str, str]:
    return {s.server: s.thumbprint for s in step.served if s.endpoint == "https"}


def paging_days(steps: list[Step]) -> list[int]:
    """The days whose runs sent an alert that needs someone (warning or critical)."""
    return [s.day for s in steps if any(sev in NEEDS_SOMEONE for sev in s.alert_severities())]


def outcome_records(step: Step) -> list[dict[str, Any]]:
    return [r for r in step.ledger if r["action"] in ("renewal_done", "renewal_failed")]


# --- invariants every form of the year must hold ------------------------------------------------------------------


def check_every_certificate_valid(steps: list[Step]) -> None:
    problems = [problem for step in steps for problem in step.problems()]
    assert problems == [], "\n".join(problems)
    for step in steps:
        assert {s.server for s in step.served} == set(MEMBERS)
        assert set(step.facts) == set(MEMBERS), step_summary(step)
        for host, certificates in step.facts.items():
            assert [c for c in certificates if c["subject"] == MAIL], f"day {step.day}: {host} has no mail certificate"


def check_facts_from_the_fact_cache(steps: list[Step]) -> None:
    """The facts every step checks are those the inventory job left in AWX's fact cache (jsonfile, in the job's
    artifacts), as a later job template of the workflow would read them."""
    assert [s.day for s in steps if s.facts_source != "fact_cache"] == []


def check_faketime(steps: list[Step]) -> None:
    """The jobs' Python ran on the lab's clock: the facts' collected_at and every ledger time are the step's lab time
    (plus the minutes the step's jobs took), not the wall clock's."""
    for step in steps:
        upper = step.lab_now + datetime.timedelta(seconds=step.seconds + 120)
        for host, collected in step.collected_at.items():
            assert step.lab_now - datetime.timedelta(seconds=5) <= parse_time(collected) <= upper, (step.day, host)
        for record in step.ledger:
            assert step.lab_now - datetime.timedelta(seconds=5) <= parse_time(record["time"]) <= upper, \
                (step.day, record["time"], record["action"])
        for host, certificates in step.facts.items():
            for certificate in certificates:  # days_remaining was computed by the job at the shifted time
                left = parse_time(certificate["not_after"]) - parse_time(step.collected_at[host])
                assert certificate["days_remaining"] == left.days, (step.day, host, certificate["thumbprint"])


def check_alerts_exactly_during(steps: list[Step], fault: Fault) -> None:
    fault_days = [s.day for s in steps if fault.active(s.day)]
    assert len(fault_days) >= 2
    assert paging_days(steps) == fault_days, [step_summary(s) for s in steps if s.alerts]
    for step in steps:
        if fault.active(step.day):
            (alert,) = [a for a in step.alerts if a["path"] == "/renew"]
            events = alert["payload"]["events"]
            assert any(e.get("server", "").lower() == fault.server and fault.error in (e.get("error") or "")
                       for e in events), events
        # the renew job fails exactly when the fault bites; inventory and auth never fail
        assert step.jobs["inventory"]["status"] == "successful", step_summary(step)
        assert step.jobs["auth"]["status"] == "successful", step_summary(step)
        assert (step.jobs["renew"]["status"] == "failed") == fault.active(step.day), step_summary(step)


def check_renewals_when_due(steps: list[Step], fault: Fault) -> list[int]:
    """The mail certificate is renewed at the first run with fewer than RENEW_BEFORE_DAYS days left (the rollout is
    finished at the first run after the fault), and at no other run; returns the days of the renewal_done records."""
    expiry = MAIL_DAYS_LEFT
    pending = False
    expected_done = []
    for step in steps:
        if pending or expiry - step.day - 1 < RENEW_BEFORE_DAYS:  # days_remaining: whole days, floored
            if not pending:
                expiry = step.day + VALIDITY_DAYS  # issued at the first due run, even when the rollout fails
            pending = fault.active(step.day)
            if not pending:
                expected_done.append(step.day)
    done = [s.day for s in steps if any(r["action"] == "renewal_done" for r in outcome_records(s))]
    assert done == expected_done, [step_summary(s) for s in steps if s.ledger]
    failed = [s.day for s in steps if any(r["action"] == "renewal_failed" for r in outcome_records(s))]
    assert failed == [s.day for s in steps if fault.active(s.day)]
    for step in steps:
        for record in outcome_records(step):
            if record["action"] == "renewal_failed":
                assert record["after"]["failed_host"] == fault.server and record["after"]["rolled_back"] is True
                assert record["after"]["step"] == "services" and fault.error in record["message"]
    return done


# --- the compressed year (make test) --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compressed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    result = run_year(tmp_path_factory, "year", COMPRESSED, COMPRESSED_FAULT)
    cpu = round(sum(s.cpu_seconds for s in result["steps"]), 1)
    print(f"compressed year: {len(result['steps'])} runs in {result['seconds']} s wall, {cpu} s CPU "  # noqa: T201
          f"(jobs and lab; load average {os.getloadavg()[0]:.1f})")
    yield result


def test_every_certificate_stays_valid_at_every_step_with_no_manual_step(compressed: dict[str, Any]) -> None:
    steps = compressed["steps"]
    assert [s.day for s in steps] == COMPRESSED
    check_every_certificate_valid(steps)
    check_facts_from_the_fact_cache(steps)
    served = {s.day: mail_served(s) for s in steps}
    # both members serve one certificate, except while ex2 is rolled back during the fault
    assert served[0]["ex1"] == served[0]["ex2"]
    assert served[42]["ex1"] != served[0]["ex1"] and served[42]["ex2"] == served[0]["ex2"]
    assert served[43] == served[42]
    assert served[44]["ex1"] == served[44]["ex2"] == served[42]["ex1"]
    assert len({served[d]["ex1"] for d in COMPRESSED}) == 4  # the original and three renewals
    for step in steps:
        if step.day not in (42, 43):
            assert len(set(mail_served(step).values())) == 1, step_summary(step)
    # the Auth certificate was rotated with no manual step: a new current one, on every server, the old one cleared
    auth_before = compressed["before"]["organization"]["auth_config"]
    auth = compressed["dump"]["organization"]["auth_config"]
    assert auth["CurrentCertificateThumbprint"] != auth_before["CurrentCertificateThumbprint"], auth
    assert not auth["PreviousCertificateThumbprint"], auth
    for server in MEMBERS:
        held = {c["thumbprint"] for c in compressed["dump"]["servers"][server]["certificates"]["My"]}
        assert auth["CurrentCertificateThumbprint"] in held, server


def test_a_fault_alerts_exactly_the_runs_it_lasts_and_the_alerts_stop_once_it_is_cleared(
        compressed: dict[str, Any]) -> None:
    check_alerts_exactly_during(compressed["steps"], compressed["fault"])


def test_the_ledger_tells_the_story(compressed: dict[str, Any]) -> None:
    steps = compressed["steps"]
    assert check_renewals_when_due(steps, compressed["fault"]) == [44, 210, 364]
    day = by_day(steps)
    # day 42: issued once, imported and bound on ex1, ex2 failed and was rolled back; day 44 resumes without issuing
    assert [r["action"] for r in day[42].ledger].count("adcs_submit") == 1
    assert "adcs_submit" not in day[43].ledger_actions() + day[44].ledger_actions()
    # the Auth certificate: staged by the day-42 run (58 days left), published by the servicelet 49 hours later,
    # the previous one cleared by the next run after that (day 98), the retired one removed from both members by the
    # first run after it expired (day 154); no other run touched it
    auth_days = [s.day for s in steps if any(r["module"] == "exchange.pki.auth_certificate" for r in s.ledger)]
    assert auth_days == [42, 98, 154], [step_summary(s) for s in steps]
    (removal,) = [r for r in by_day(steps)[154].ledger if r["module"] == "exchange.pki.auth_certificate"]
    ((retired, holders),) = removal["before"]["retired_installed_on"].items()
    assert sorted(holders) == ["EX1", "EX2"] and removal["after"]["retired_installed_on"] == {retired: []}
    info = [s.day for s in steps if any(a["path"] == "/auth" for a in s.alerts)]
    assert info == auth_days  # the auth role tells about every change, and only then
    # the AWX artifacts (set_stats of the renew job) carry every outcome record the run wrote to the ledger file
    for step in steps:
        from_stats = {(r["time"], r["action"]) for r in step.renew_stats.get("exchange_pki_ledger", [])}
        assert {(r["time"], r["action"]) for r in outcome_records(step)} <= from_stats, step_summary(step)
    # runs with nothing due write nothing
    quiet = [s.day for s in steps if not s.ledger]
    assert set(quiet) == set(COMPRESSED) - {42, 43, 44, 210, 364} - set(auth_days)


def test_the_metrics_tell_the_story(compressed: dict[str, Any]) -> None:
    steps = compressed["steps"]
    day = by_day(steps)
    for step in steps:
        assert step.metrics, f"day {step.day}: no metrics written"
    failures = {s.day: sum(v for k, v in s.metrics.items()
                           if k.startswith("exchange_pki_certificate_renewal_failures_total")) for s in steps}
    assert failures[0] == 0 and failures[42] >= 1 and failures[43] > failures[42]
    outcome = {s.day: [k for k, v in s.metrics.items() if k.startswith("exchange_pki_renewal_run_outcome") and v == 1]
               for s in steps}
    assert all('outcome="failed"' in o[0] for d, o in outcome.items() if d in (42, 43)), outcome
    assert all('outcome="failed"' not in o[0] for d, o in outcome.items() if d not in (42, 43)), outcome
    for d in (44, 210, 364):
        last = [v for k, v in day[d].metrics.items()
                if k.startswith("exchange_pki_certificate_last_renewal_timestamp_seconds")]
        assert last and max(last) >= day[d].lab_now.timestamp(), (d, last)
    not_ready_series = 'exchange_pki_certificate_ready_status{condition="False"'
    not_ready = [s.day for s in steps if any(v == 1 for k, v in s.metrics.items() if k.startswith(not_ready_series))]
    assert not_ready == [42, 43]  # ready again as soon as the rollout finished
    expiration = {s.day: min(v for k, v in s.metrics.items()
                             if k.startswith("exchange_pki_certificate_expiration_timestamp_seconds")) for s in steps}
    assert all(expiration[s.day] > s.lab_now.timestamp() for s in steps)


def test_the_jobs_ran_on_the_shifted_clock(compressed: dict[str, Any]) -> None:
    steps = compressed["steps"]
    check_faketime(steps)
    wall = datetime.datetime.now(datetime.timezone.utc)
    late = by_day(steps)[364]
    assert late.lab_now - wall > datetime.timedelta(days=363)  # far from the wall clock, so the shift is real
    assert late.faketime.startswith("+")


# --- the long form (make soak) --------------------------------------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("EXCHANGE_PKI_SOAK"), reason="the daily year runs with `make soak`")
def test_soak_daily_year(tmp_path_factory: pytest.TempPathFactory) -> None:
    # EXCHANGE_PKI_SOAK_DAYS shortens it (e.g. 20: the first renewal with its fault), for trying the soak itself.
    days = int(os.environ.get("EXCHANGE_PKI_SOAK_DAYS") or 366)
    result = run_year(tmp_path_factory, "soak", list(range(0, days)), SOAK_FAULT)
    steps = result["steps"]
    cpu = round(sum(s.cpu_seconds for s in steps), 1)
    print(f"soak: {len(steps)} daily runs in {result['seconds']} s wall, {cpu} s CPU")  # noqa: T201 - make soak's figure
    check_every_certificate_valid(steps)
    check_facts_from_the_fact_cache(steps)
    check_alerts_exactly_during(steps, SOAK_FAULT)
    check_renewals_when_due(steps, SOAK_FAULT)
    check_faketime(steps)
    summary = f"{len(steps)} runs, {result['seconds']} s wall, {cpu} s CPU\n"
    Path(result["work"] / "soak.txt").write_text(summary, encoding="utf-8")
