# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Renewal that reports on itself: per identity whether it is ready, due, stalled; the run's failed rollouts; the
events for ``fleet_alert``; Prometheus textfile metrics in cert-manager's naming style.

Everything here is a pure function of its inputs (the plan of the run, the facts after it, the ledger's records, the
role's ``renewal_results``, the clock): the identities, their due rules and their ledger outcomes are
``_renewal``'s (:func:`~._renewal.build_plan`, :func:`~._renewal.renewal_outcomes`,
:func:`~._renewal.backoff_until`), never recomputed here.

- **ready**: the identity's newest certificate is valid and the plan after the run finds nothing to do about it
  (status ``current``), or, without facts after the run, the plan found it current or this run renewed it.
- **renewal due**: when the policy makes the newest certificate due by its dates: ``not_after`` minus the larger of
  ``renew_before_days`` and ``renew_before_percentage`` of its lifetime (rounded up to whole days, as the plan
  compares whole days left).
- **stalled**: not ready and due for longer than ``stalled_after`` (since the earliest due date of the certificates
  the identity still has on its servers, so an old one a failed rollout left in place counts, or since the first
  failure after the last success); or the last ``failed_attempts`` outcomes in the ledger all failed. A success
  resets the count; only a complete renewal (ready) ends the stall.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ChangeRecord
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import (
    FAILED_ACTION,
    LEDGER_MODULE,
    HostVars,
    Outcome,
    RenewalPolicy,
    backoff_until,
    build_plan,
    renewal_outcomes,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import (
    EXPIRATION_HELP,
    prometheus_label_value,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control
from ansible_collections.exchange.pki.plugins.plugin_utils._text import one_line as flat_line
from ansible_collections.exchange.pki.plugins.plugin_utils._time import (
    UTC,
    format_utc_datetime,
    parse_iso_datetime,
    parse_time_option,
    shifted,
)

OUTCOMES = ("success", "failed", "pending", "noop")
DEFAULT_STALLED_AFTER = "7d"
DEFAULT_FAILED_ATTEMPTS = 3
MAX_DURATION_DAYS = 3650
MAX_ATTEMPTS = 1000
MAX_EVENT_TEXT = 1000
"""Event texts are clipped to this (fleet_alert takes at most 1024 characters for a summary)."""

_DURATION = re.compile(r"(\d+)\s*([wdhms])")
_DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


class RenewalStatusError(ExchangePkiError, ValueError):
    """An input of renewal_status is invalid; the message names the option."""


# --- inputs ---------------------------------------------------------------------------------------------------


def parse_duration(option: str, value: Any) -> datetime.timedelta:
    """``7d``, ``168h``, ``1w``, ``1d12h``, ``90m`` (or a number of seconds) as a positive time span."""
    if isinstance(value, bool):
        raise RenewalStatusError(f"{option} must be a duration such as 7d, 36h or 1w")
    if isinstance(value, (int, float)) and math.isfinite(value):
        seconds = float(value)
    elif isinstance(value, str) and not has_control(value):
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if not parts or _DURATION.sub("", text).strip():
            raise RenewalStatusError(f"{option} must be a duration such as 7d, 36h, 1w or 1d12h, got {value!r}")
        seconds = float(sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts))
    else:
        raise RenewalStatusError(f"{option} must be a duration such as 7d, 36h or 1w")
    if not 0 < seconds <= MAX_DURATION_DAYS * 86400:
        raise RenewalStatusError(f"{option} must be more than 0 and at most {MAX_DURATION_DAYS} days")
    return datetime.timedelta(seconds=seconds)


def _time(option: str, value: Any) -> datetime.datetime:
    try:
        return parse_time_option(value)
    except TypeError:
        raise RenewalStatusError(f"{option} must be an ISO-8601 date and time such as 2026-12-02T02:15:00Z") from None
    except ValueError:
        raise RenewalStatusError(f"{option}: {value!r} is not an ISO-8601 date and time "
                                 "(such as 2026-12-02T02:15:00Z)") from None


def _opt_time(value: Any) -> datetime.datetime | None:
    try:
        return parse_iso_datetime(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def one_line(value: Any, limit: int = MAX_EVENT_TEXT) -> str | None:
    """``value`` as one line of text (control characters as spaces), clipped: fit for a fleet_alert event."""
    if value is None:
        return None
    text = flat_line(value)
    if not text:
        return None
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_plan(plan: Any) -> Mapping[str, Any]:
    if not isinstance(plan, Mapping) or not isinstance(plan.get("items"), list) or not plan.get("plan_id"):
        raise RenewalStatusError("plan must be the registered result of exchange.pki.renewal_plan (plan_id, policy, "
                                 "items)")
    return plan


# --- the model ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IdentityStatus:
    identity: str
    subject: str | None
    thumbprint: str | None
    status: str | None
    expiration: datetime.datetime | None
    renewal_due: datetime.datetime | None
    ready: bool
    last_renewal: datetime.datetime | None
    failures: int
    failures_total: int
    stalled: bool
    stalled_reason: str | None
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        def iso(moment: datetime.datetime | None) -> str | None:
            return format_utc_datetime(moment) if moment else None

        return {
            "identity": self.identity,
            "subject": self.subject,
            "thumbprint": self.thumbprint,
            "status": self.status,
            "expiration": iso(self.expiration),
            "renewal_due": iso(self.renewal_due),
            "ready": self.ready,
            "last_renewal": iso(self.last_renewal),
            "failures": self.failures,
            "failures_total": self.failures_total,
            "stalled": self.stalled,
            "stalled_reason": self.stalled_reason,
        }


@dataclasses.dataclass(frozen=True)
class Run:
    started: datetime.datetime
    outcome: str
    finished: datetime.datetime

    @property
    def duration(self) -> float:
        return max((self.finished - self.started).total_seconds(), 0.0)


def renewal_due(certificate: Mapping[str, Any], policy: RenewalPolicy) -> datetime.datetime | None:
    """When the plan's due rule by dates makes a certificate (``not_after``, ``lifetime_days``) due (see the module
    docstring)."""
    not_after = _opt_time(certificate.get("not_after"))
    if not_after is None:
        return None
    days = policy.renew_before_days
    lifetime = certificate.get("lifetime_days")
    if policy.renew_before_percentage is not None and isinstance(lifetime, int) and lifetime > 0:
        days = max(days, math.ceil(lifetime * policy.renew_before_percentage / 100))
    return shifted(not_after, -datetime.timedelta(days=days))


def certificate_dates(facts: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """Thumbprint -> a certificate of the facts with that thumbprint (for its ``not_after`` and lifetime)."""
    found: dict[str, Mapping[str, Any]] = {}
    for fact in (facts or {}).values():
        certificates = fact.get("certificates") if isinstance(fact, Mapping) else None
        for cert in certificates if isinstance(certificates, list) else ():
            if isinstance(cert, Mapping) and isinstance(cert.get("thumbprint"), str):
                found.setdefault(cert["thumbprint"].upper(), cert)
    return found


def oldest_due(item: Mapping[str, Any], dates: Mapping[str, Mapping[str, Any]],
               policy: RenewalPolicy) -> datetime.datetime | None:
    """The earliest due moment of the certificates the identity still has on its servers (an old one a failed
    rollout left in place counts: the identity is not renewed until every server has the new one)."""
    certificate = item.get("certificate") or {}
    moments = [renewal_due(certificate, policy)]
    for thumbprint in certificate.get("thumbprints") or ():
        if isinstance(thumbprint, str) and thumbprint.upper() in dates:
            moments.append(renewal_due(dates[thumbprint.upper()], policy))
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None


def _host_vars(plan: Mapping[str, Any]) -> dict[str, HostVars]:
    """The renewal groups the plan was given (host_vars ``group``), so the plan after the run groups the same."""
    chosen = {}
    for group in plan.get("groups") or ():
        if isinstance(group, Mapping) and group.get("kind") == "group":
            for member in group.get("members") or ():
                chosen[member] = HostVars(group=group["name"])
    return chosen


def current_items(plan: Mapping[str, Any], facts: Mapping[str, Any] | None, policy: RenewalPolicy,
                  outcomes: Mapping[str, Sequence[Outcome]], now: datetime.datetime) -> dict[str, Mapping[str, Any]]:
    """Identity -> its plan item after the run: from ``facts`` (a new plan by ``_renewal``, same policy and groups)
    when given, else the run's own plan. An identity the facts no longer show keeps its item of the run's plan."""
    items = {item["identity"]: item for item in plan["items"] if isinstance(item, Mapping) and item.get("identity")}
    if facts is None:
        return items
    after = build_plan(facts, policy=policy, now=now, host_vars=_host_vars(plan), outcomes=outcomes)
    return {**items, **{item["identity"]: item for item in after["items"]}}


def run_records(records: Iterable[ChangeRecord], plan_id: str, started: datetime.datetime | None,
                now: datetime.datetime) -> list[ChangeRecord]:
    """This run's records: those naming the plan (``run_id`` or ``after.plan_id``), and, when the run's start is
    known, every record written between it and now (the role's modules do not name the plan)."""
    mine = []
    for record in records:
        named = record.run_id == plan_id or (isinstance(record.after, Mapping)
                                             and record.after.get("plan_id") == plan_id)
        if named or (started is not None and started <= record.time <= now):
            mine.append(record)
    return mine


def failed_rollouts(records: Iterable[ChangeRecord], plan: Mapping[str, Any],
                    results: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Every failed (or rolled-back) rollout of this run: from its ``renewal_failed`` ledger records, else (no
    ledger) from ``renewal_results``."""
    subjects = {item["identity"]: (item.get("certificate") or {}).get("subject") for item in plan["items"]}
    found = []
    for record in records:
        if record.module != LEDGER_MODULE or record.action != FAILED_ACTION:
            continue
        after = record.after if isinstance(record.after, Mapping) else {}
        identity = after.get("identity")
        found.append({
            "identity": identity,
            "subject": subjects.get(identity),
            "server": record.server if record.server and record.server != "organization" else after.get("failed_host"),
            "host": after.get("failed_host") or record.host,
            "group": after.get("group"),
            "step": after.get("step"),
            "error": one_line(record.message),
            "rolled_back": bool(after.get("rolled_back")),
            "time": format_utc_datetime(record.time),
        })
    if found or results is None:
        return found
    requests = {item["identity"]: (item.get("issue") or {}).get("request_server") for item in plan["items"]}
    for result in results:
        if not isinstance(result, Mapping):
            continue
        identity = result.get("identity")
        if result.get("issue") == "failed" or (result.get("status") == "failed" and not result.get("groups")):
            found.append({"identity": identity, "subject": result.get("subject") or subjects.get(identity),
                          "server": requests.get(identity), "host": requests.get(identity), "group": None,
                          "step": "issue", "error": one_line(result.get("message")), "rolled_back": False,
                          "time": None})
        for group in result.get("groups") or ():
            if isinstance(group, Mapping) and group.get("status") == "failed":
                found.append({"identity": identity, "subject": result.get("subject") or subjects.get(identity),
                              "server": group.get("failed_host"), "host": group.get("failed_host"),
                              "group": group.get("name"), "step": group.get("step"),
                              "error": one_line(group.get("message")), "rolled_back": bool(group.get("rolled_back")),
                              "time": None})
    return found


def run_outcome(results: Sequence[Mapping[str, Any]] | None, rollouts: Sequence[Mapping[str, Any]]) -> str:
    """The run's outcome when the playbook does not say: failed, pending (a request awaits approval), success, noop."""
    statuses = {result.get("status") for result in results or () if isinstance(result, Mapping)}
    if rollouts or statuses & {"failed", "partial", "stopped"}:
        return "failed"
    if "pending" in statuses:
        return "pending"
    if "renewed" in statuses:
        return "success"
    return "noop"


def identity_status(identity: str, item: Mapping[str, Any], *, policy: RenewalPolicy,
                    outcomes: Sequence[Outcome], renewed: bool, have_facts: bool, now: datetime.datetime,
                    stalled_after: datetime.timedelta, failed_attempts: int,
                    dates: Mapping[str, Mapping[str, Any]] | None = None) -> IdentityStatus:
    certificate = item.get("certificate") or {}
    expiration = _opt_time(certificate.get("not_after"))
    due_at = renewal_due(certificate, policy)
    first_due = oldest_due(item, dates or {}, policy)
    valid = expiration is None or expiration > now
    current = item.get("status") == "current"
    ready = valid and (current or (renewed and not have_facts))
    failures, _until = backoff_until(outcomes, policy)
    successes = [outcome for outcome in outcomes if not outcome.failed]
    last_renewal = successes[-1].time if successes else None
    failed_since = [outcome for outcome in outcomes if outcome.failed
                    and (last_renewal is None or outcome.time >= last_renewal)]
    stalled_reason = None
    if not ready:
        starts = [moment for moment in (first_due if first_due is not None and first_due <= now else None,
                                        failed_since[0].time if failed_since else None) if moment is not None]
        due_since = min(starts) if starts else None
        if failures >= failed_attempts:
            last = failed_since[-1] if failed_since else None
            stalled_reason = (f"the last {failures} renewal attempts failed"
                              + (f" (last on {last.host}: {one_line(last.message, 300)})" if last and last.message
                                 else ""))
        elif due_since is not None and now - due_since > stalled_after:
            stalled_reason = (f"due since {format_utc_datetime(due_since)} ({(now - due_since).days} days) without "
                              f"a successful renewal (stalled_after {_span_text(stalled_after)})")
        if stalled_reason and item.get("status_reason"):
            stalled_reason += f"; the plan says: {one_line(item['status_reason'], 300)}"
    return IdentityStatus(
        identity=identity, subject=certificate.get("subject"), thumbprint=certificate.get("thumbprint"),
        status=item.get("status"), expiration=expiration, renewal_due=due_at, ready=ready,
        last_renewal=last_renewal, failures=failures,
        failures_total=sum(1 for outcome in outcomes if outcome.failed),
        stalled=stalled_reason is not None, stalled_reason=stalled_reason,
        last_error=one_line(failed_since[-1].message) if failed_since else None,
    )


def _span_text(span: datetime.timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# --- events ---------------------------------------------------------------------------------------------------


def rollout_event(rollout: Mapping[str, Any]) -> dict[str, Any]:
    """A fleet_alert event for a failed or rolled-back rollout, naming the server, the step and the error; the
    summary names the certificate's subject, ``certificate`` its identity (the plan's id)."""
    what = rollout.get("subject") or rollout.get("identity") or "a certificate"
    where = rollout.get("server") or "an unknown server"
    step = rollout.get("step") or "unknown"
    rolled_back = rollout.get("rolled_back")
    summary = (f"Renewal of {what} failed on {where} at step {step}"
               + ("; the server was rolled back to the old certificate" if rolled_back else ""))
    return _event("critical", "rolled_back" if rolled_back else "renewal_failed", summary, server=where,
                  certificate=rollout.get("identity") or what, step=step,
                  error=rollout.get("error") or "no error message")


def stalled_event(status: IdentityStatus, now: datetime.datetime, stalled_after: datetime.timedelta) -> dict[str, Any]:
    """A fleet_alert event for a stalled renewal: critical when the certificate has expired or expires within
    ``stalled_after``, else a warning."""
    urgent = status.expiration is not None and status.expiration - now <= stalled_after
    what = status.subject or status.identity
    expiry = (f"; it expires {format_utc_datetime(status.expiration)}" if status.expiration and status.expiration > now
              else "; it has expired" if status.expiration else "")
    return _event("critical" if urgent else "warning", "renewal_stalled",
                  f"Renewal of {what} is stalled: {status.stalled_reason}{expiry}", certificate=status.identity,
                  error=status.last_error)


def _event(severity: str, kind: str, summary: str, **fields: Any) -> dict[str, Any]:
    event = {"severity": severity, "kind": kind, "summary": one_line(summary)}
    for name in ("server", "certificate", "step"):
        event[name] = one_line(fields.get(name), 250)
    event["error"] = one_line(fields.get("error"))
    return event


# --- metrics --------------------------------------------------------------------------------------------------


def _labels(**labels: str | None) -> str:
    return "{" + ",".join(f'{name}="{prometheus_label_value(value or "")}"' for name, value in labels.items()) + "}"


def _header(name: str, help_text: str, kind: str = "gauge") -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def render_metrics(identities: Sequence[IdentityStatus], run: Run) -> str:
    """The Prometheus text exposition: one series per identity (and per condition or outcome), never a label
    holding several values."""
    out: list[str] = []

    def family(name: str, help_text: str, samples: Iterable[tuple[str, float | int]], kind: str = "gauge") -> None:
        out.append(_header(name, help_text, kind))
        out.extend(f"{name}{labels} {_number(value)}\n" for labels, value in samples)

    ids = [(status, _labels(identity=status.identity, subject=status.subject)) for status in identities]
    family("exchange_pki_certificate_expiration_timestamp_seconds", EXPIRATION_HELP,
           [(labels, status.expiration.timestamp()) for status, labels in ids if status.expiration])
    family("exchange_pki_certificate_renewal_timestamp_seconds",
           "When the renewal policy makes the certificate identity due for renewal, as a Unix timestamp.",
           [(labels, status.renewal_due.timestamp()) for status, labels in ids if status.renewal_due])
    family("exchange_pki_certificate_ready_status",
           "Whether the certificate identity is ready (valid and not due; condition True) or not (False): "
           "the series of its condition is 1, the other 0.",
           [(_labels(identity=status.identity, subject=status.subject, condition=condition),
             int(status.ready == (condition == "True"))) for status, _labels_text in ids
            for condition in ("True", "False")])
    family("exchange_pki_certificate_last_renewal_timestamp_seconds",
           "When the certificate identity was last renewed successfully (the ledger), as a Unix timestamp.",
           [(labels, status.last_renewal.timestamp()) for status, labels in ids if status.last_renewal])
    family("exchange_pki_certificate_renewal_failures_total",
           "Failed renewal outcomes of the certificate identity in the ledger.",
           [(labels, status.failures_total) for status, labels in ids], kind="counter")
    family("exchange_pki_certificate_renewal_consecutive_failures",
           "Failed renewal outcomes of the certificate identity since its last successful renewal.",
           [(labels, status.failures) for status, labels in ids])
    family("exchange_pki_certificate_renewal_stalled",
           "1 when the renewal of the certificate identity is stalled (due too long, or failed too often).",
           [(labels, int(status.stalled)) for status, labels in ids])
    family("exchange_pki_renewal_run_outcome",
           "The outcome of the last renewal run: the series of its outcome is 1, the others 0.",
           [(_labels(outcome=outcome), int(run.outcome == outcome)) for outcome in OUTCOMES])
    family("exchange_pki_renewal_run_duration_seconds", "How long the last renewal run took, in seconds.",
           [("", run.duration)])
    family("exchange_pki_renewal_run_timestamp_seconds", "When the last renewal run ended, as a Unix timestamp.",
           [("", run.finished.timestamp())])
    return "".join(out)


def _number(value: float | int) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


# --- the whole status -----------------------------------------------------------------------------------------


def renewal_status(
    plan: Any,
    *,
    now: datetime.datetime,
    facts: Mapping[str, Any] | None = None,
    records: Sequence[ChangeRecord] = (),
    results: Sequence[Mapping[str, Any]] | None = None,
    stalled_after: Any = DEFAULT_STALLED_AFTER,
    failed_attempts: Any = DEFAULT_FAILED_ATTEMPTS,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status after a renewal run (the module's result without ``changed``), JSON-able."""
    plan = check_plan(plan)
    now = now.astimezone(UTC).replace(microsecond=0)
    span = parse_duration("stalled_after", stalled_after)
    if isinstance(failed_attempts, bool) or not isinstance(failed_attempts, int) \
            or not 1 <= failed_attempts <= MAX_ATTEMPTS:
        raise RenewalStatusError(f"failed_attempts must be a whole number from 1 to {MAX_ATTEMPTS}")
    if facts is not None and not isinstance(facts, Mapping):
        raise RenewalStatusError("facts must be a dictionary of host name to exchange_pki fact")
    if results is not None and (isinstance(results, (str, Mapping)) or not isinstance(results, Sequence)):
        raise RenewalStatusError("results must be the renewal role's renewal_results, a list")
    run = dict(run or {})
    unknown = sorted(str(key) for key in run if key not in ("started", "outcome"))
    if unknown:
        raise RenewalStatusError(f"run: unknown key(s) {', '.join(unknown)}; expected started, outcome")
    started = _time("run.started", run["started"]) if run.get("started") else _opt_time(plan.get("generated_at"))
    policy = RenewalPolicy.from_options(plan.get("policy"))

    outcomes = renewal_outcomes(records)
    items = current_items(plan, facts, policy, outcomes, now)
    renewed = {result.get("identity") for result in results or () if isinstance(result, Mapping)
               and result.get("status") == "renewed"}
    dates = certificate_dates(facts)
    identities = [identity_status(identity, items[identity], policy=policy, outcomes=outcomes.get(identity, ()),
                                  renewed=identity in renewed, have_facts=facts is not None, now=now,
                                  stalled_after=span, failed_attempts=failed_attempts, dates=dates)
                  for identity in sorted(items)]
    mine = run_records(records, plan["plan_id"], started, now)
    rollouts = failed_rollouts(mine, plan, results)
    outcome = run.get("outcome") or run_outcome(results, rollouts)
    if outcome not in OUTCOMES:
        raise RenewalStatusError(f"run.outcome must be one of {', '.join(OUTCOMES)}")
    the_run = Run(started=started or now, outcome=outcome, finished=now)
    stalled = [status for status in identities if status.stalled]
    events = [rollout_event(rollout) for rollout in rollouts]
    events += [stalled_event(status, now, span) for status in stalled]
    return {
        "plan_id": plan["plan_id"],
        "generated_at": format_utc_datetime(now),
        "identities": {status.identity: status.as_dict() for status in identities},
        "stalled": [status.as_dict() for status in stalled],
        "failed_rollouts": rollouts,
        "events": events,
        "run": {"started": format_utc_datetime(the_run.started), "finished": format_utc_datetime(now),
                "outcome": outcome, "duration_seconds": the_run.duration},
        "ledger_records": [record.as_dict() for record in mine],
        "metrics": render_metrics(identities, the_run),
    }
