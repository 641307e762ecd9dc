# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The fleet report's model, built from every host's ``exchange_pki`` fact; the formats live in _report_formats.

:func:`build_report` validates the facts (docs/facts.md shape, one per inventory host; ``None`` or a failure
record when a host was not collected) and turns them into a :class:`FleetReport`: the hosts with their
certificates, findings, failed reads and probe results, the fleet's summary, the DAGs side by side and the
**action plan**, the distinct problems worst first (one certificate on four servers is one problem, one Auth
certificate is one organisation-wide problem), each with the servers it affects and the one thing to do.

Only allow-listed fact keys reach the output (:data:`HOST_FACT_KEYS`); the facts carry no secrets, and an
unexpected key in a fact is dropped rather than published. Failure messages are published as text only (no
nested value), with control characters removed; a value Ansible censored (``no_log``) is never shown.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import common_name
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import CATALOGUE, SEVERITIES, SEVERITY_RANK
from ansible_collections.exchange.pki.plugins.plugin_utils._references import (
    AUTH_ROLES,
    DAG_SHARED_ROLES,
    PER_SERVER_ROLES,
    ROLE_ORDER,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import one_line
from ansible_collections.exchange.pki.plugins.plugin_utils._time import (
    TimeRangeError,
    parse_iso_datetime,
    parse_now_option,
    utc_now,
)

HOST_FACT_KEYS = (
    "server",
    "certificates",
    "auth",
    "iis_bindings",
    "connectors",
    "internal_transport_thumbprint",
    "cluster",
    "findings",
    "summary",
)
"""The fact keys published in the JSON report (``collected_at`` is published separately, as volatile;
``unavailable`` and ``probes`` are published as checked by the model)."""

DEFAULT_TITLE = "Exchange certificate report"

NOT_COLLECTED_REASONS: Mapping[str, str] = {
    "unreachable": "unreachable",
    "authentication_refused": "authentication refused",
    "access_denied": "access denied",
    "connection_dropped": "connection dropped",
    "exchange_unavailable": "Exchange unavailable",
    "failed": "failed",
}
"""The ``reason`` values of a failure record (docs/facts.md) and how reports say them."""

CENSORED_TEXT = "reason hidden by no_log"
MESSAGE_MAX_CHARS = 500
"""Failure, read and probe messages are cut to this length (a message is a hint, not a log)."""

NOT_COLLECTED_ACTIONS: Mapping[str | None, str] = {
    "unreachable": "Check that the server is up and that WinRM (5985/5986) is reachable from the controller, "
                   "then run the inventory again.",
    "authentication_refused": "Check the account and password (or Kerberos ticket) the inventory uses for this "
                              "server, then run the inventory again.",
    "access_denied": "Give the inventory account an Exchange RBAC role that can read the configuration (View-Only "
                     "Organization Management) and local administrator rights, then run the inventory again.",
    "connection_dropped": "The WinRM connection dropped during the read: check the server's WinRM limits "
                          "(MaxEnvelopeSizekb, MaxTimeoutms) and the network, then run the inventory again.",
    "exchange_unavailable": "Exchange did not answer on the server: check the Exchange services and the PowerShell "
                            "virtual directory, then run the inventory again.",
    "failed": "Read the failure message, fix its cause, then run the inventory again.",
    None: "Find out why no facts were collected (the inventory's output for this host), then run it again.",
}

UNAVAILABLE_EFFECTS: Mapping[str, str] = {
    "host.info": "the server's name and Windows facts",
    "Get-ExchangeServer": "the server's Exchange version, site and DAG",
    "Get-ExchangeCertificate": "the Exchange services and status of the certificates",
    "host.certificates": "the certificates in the stores",
    "host.iis_bindings": "the IIS bindings (roles iis and back_end)",
    "Get-AuthConfig": "the Auth certificate configuration (roles auth_*, the Auth findings)",
    "Get-TransportService": "the internal transport certificate",
    "Get-SendConnector": "the send connectors' certificates",
    "Get-ReceiveConnector": "the receive connectors' certificates",
    "Get-HybridConfiguration": "the hybrid configuration's certificate",
    "Get-DatabaseAvailabilityGroup": "the DAG membership",
    "host.cluster": "the failover cluster and its certificates",
}
"""What is unknown when a read failed (docs/facts.md ``unavailable``): its facts are null, its rules silent."""

ORGANIZATION_FINDINGS = frozenset({"auth_missing", "auth_expiring", "auth_next_not_staged", "auth_next_missing",
                                   "auth_key_not_csp"})
"""Findings about the organisation's one Auth configuration: one problem however many servers report it."""

INFORM_ONLY_FINDINGS = frozenset({"cluster_certificate_expired", "cluster_certificate_expiring"})
"""Findings whose own remediation says not to modify the certificate (Windows manages cluster certificates)."""

INFORM_PREFIX = "Inform, do not modify: "

_DAYS_IN_TITLE = frozenset({"expired", "expiring_critical", "expiring_warning", "auth_expiring",
                            "cluster_certificate_expired", "cluster_certificate_expiring",
                            "internal_transport_expired", "iis_binding_expired"})


class ReportInputError(ExchangePkiError, ValueError):
    """A host's fact does not have the documented shape."""


# --- time and text --------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime.datetime | None:
    """A certificate's or host's timestamp from the facts (ISO-8601), None when absent."""
    return _parse_time(value) if value else None


@functools.lru_cache(maxsize=65536)
def _parse_time(value: str) -> datetime.datetime:
    """Cached: a fleet repeats the same dates (one certificate on many servers, one collection time)."""
    return parse_iso_datetime(value)


def report_time(text: str | None) -> datetime.datetime:
    """The report's generation time: ``text`` when given (reproducible output), else the time of this run."""
    if not text:
        return utc_now()
    try:
        return parse_now_option(text)
    except TimeRangeError as error:
        raise ReportInputError(f"now: {error}") from None
    except (TypeError, ValueError):
        raise ReportInputError(f"now: {text!r} is not an ISO-8601 date and time such as 2026-11-25T08:00:00Z") from None


def worst(severities: Iterable[str | None]) -> str | None:
    """The most severe of ``severities``; ``None`` when there is none."""
    ranked = [severity for severity in severities if severity]
    return min(ranked, key=SEVERITY_RANK.__getitem__) if ranked else None


def is_censored(value: Any) -> bool:
    """Whether ``value`` is what Ansible leaves of a ``no_log`` result: ``{"censored": "..."}``."""
    return isinstance(value, Mapping) and set(value) == {"censored"}


def clean_text(value: Any) -> str | None:
    """A message fit for every format: text only, control characters as one space, at most 500 characters.

    A censored value (``no_log``) becomes :data:`CENSORED_TEXT`; a nested value is never published.
    """
    if value is None:
        return None
    if is_censored(value):
        return CENSORED_TEXT
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return None
    text = one_line(value)
    return text if len(text) <= MESSAGE_MAX_CHARS else text[:MESSAGE_MAX_CHARS - 1] + "…"


@functools.lru_cache(maxsize=8192)
def subject_cn(subject: str | None) -> str:
    """The first CN of a subject or issuer (the whole name when it has none or cannot be split, such as a lone
    quote in hostile facts; ``-`` when empty); cached, since a fleet repeats the same few issuers on every row."""
    try:
        return common_name(subject or "") or subject or "-"
    except ValueError:
        return subject or "-"


# --- the model ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateView:
    """One certificate of one host, with the findings about it."""

    host: str
    data: Mapping[str, Any]
    severity: str | None
    finding_ids: tuple[str, ...]
    not_after: datetime.datetime | None
    roles: tuple[str, ...] = ()
    """The certificate's roles (docs/facts.md), read once: every format and view asks for them."""

    @property
    def thumbprint(self) -> str:
        return self.data.get("thumbprint") or ""

    @property
    def subject(self) -> str:
        return self.data.get("subject") or ""

    @property
    def days_remaining(self) -> int | None:
        return self.data.get("days_remaining")

    @property
    def is_request(self) -> bool:
        """A pending request: its placeholder certificate expires nothing, so expiry views leave it out."""
        return "pending_request" in self.roles or self.data.get("store") == "REQUEST"

    @property
    def severity_or_ok(self) -> str:
        return self.severity or "ok"

    @property
    def finding_urls(self) -> tuple[str, ...]:
        """The source pages of this certificate's findings (catalogue order of ids, no duplicates)."""
        if not self.finding_ids:
            return ()
        return tuple(dict.fromkeys(url for url in map(finding_url, self.finding_ids) if url))


@dataclasses.dataclass(frozen=True, slots=True)
class HostProblem:
    """Something the report cannot vouch for on one host: no facts, a read that failed, a probe that failed."""

    kind: str  # "not_collected" | "unavailable_read" | "probe_failed"
    severity: str
    name: str | None  # the reason, the read (operation) or the probe's name
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class HostView:
    """One inventory host: its fact (``None`` when not collected), certificates, findings, failed reads, probes."""

    host: str
    fact: Mapping[str, Any] | None
    certificates: tuple[CertificateView, ...]
    findings: tuple[Mapping[str, Any], ...]
    not_collected_reason: str | None = None
    """The failure record's reason (:data:`NOT_COLLECTED_REASONS`), ``None`` when unknown or collected."""
    not_collected_message: str | None = None
    """The failure record's message (never a secret; :data:`CENSORED_TEXT` when Ansible censored it)."""
    unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Read (operation) -> error message, for the reads that failed: their facts are unknown, not absent."""
    probes: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Probe name -> the tls_probe result the inventory role recorded."""

    @property
    def collected(self) -> bool:
        return self.fact is not None

    @property
    def server(self) -> Mapping[str, Any]:
        return (self.fact or {}).get("server") or {}

    @property
    def server_name(self) -> str:
        return self.server.get("name") or self.host

    @property
    def dag(self) -> str | None:
        return self.server.get("dag")

    @property
    def collected_at(self) -> str | None:
        return (self.fact or {}).get("collected_at")

    @property
    def not_collected_text(self) -> str | None:
        """Why the host has no facts, as reports say it; ``None`` when it was collected."""
        if self.collected:
            return None
        if self.not_collected_message == CENSORED_TEXT and self.not_collected_reason is None:
            return f"not collected ({CENSORED_TEXT})"
        label = NOT_COLLECTED_REASONS.get(self.not_collected_reason or "", "reason unknown")
        return f"{label}: {self.not_collected_message}" if self.not_collected_message else label

    @property
    def unknown_facts(self) -> tuple[str, ...]:
        """What the failed reads leave unknown (docs/facts.md: null, never guessed)."""
        return tuple(UNAVAILABLE_EFFECTS.get(read, f"the facts {read} reads") for read in self.unavailable)

    @property
    def problems(self) -> tuple[HostProblem, ...]:
        problems = []
        if not self.collected:
            problems.append(HostProblem("not_collected", "critical", self.not_collected_reason,
                                        self.not_collected_text or "reason unknown"))
        for read, message in self.unavailable.items():
            effect = UNAVAILABLE_EFFECTS.get(read, f"the facts {read} reads")
            problems.append(HostProblem("unavailable_read", "warning", read,
                                        f"{read} failed ({message}): {effect} unknown"))
        for name, result in self.probes.items():
            problem = probe_problem(result)
            if problem:
                problems.append(HostProblem("probe_failed", "warning", name, f"probe {name}: {problem}"))
        return tuple(problems)

    @property
    def worst_severity(self) -> str | None:
        """The worst of the host's findings and problems (a failed read or probe counts as a warning)."""
        return worst([*(finding["severity"] for finding in self.findings),
                      *(problem.severity for problem in self.problems)])

    def finding_counts(self) -> dict[str, int]:
        counts = collections.Counter(finding["severity"] for finding in self.findings)
        return {severity: counts[severity] for severity in SEVERITIES}

    def certificate(self, thumbprint: str | None) -> CertificateView | None:
        return next((cert for cert in self.certificates if thumbprint and cert.thumbprint == thumbprint), None)


@dataclasses.dataclass(frozen=True)
class ActionItem:
    """One distinct problem of the fleet, with the servers it affects and the one thing to do first."""

    severity: str
    """The worst severity of the grouped findings."""
    finding_id: str
    """The catalogue id, or ``not_collected`` / ``unavailable_read`` / ``probe_failed`` for host problems."""
    title: str
    scope: str
    """``certificate`` (one certificate, wherever it is), ``organization`` (the Auth configuration) or ``server``."""
    thumbprint: str | None
    subject: str | None
    servers: tuple[str, ...]
    """Inventory host names affected, sorted."""
    action: str
    url: str | None
    """The Microsoft Learn / CSS-Exchange page the rule comes from."""

    @property
    def inform_only(self) -> bool:
        return self.action.startswith(INFORM_PREFIX)

    def as_dict(self) -> dict[str, Any]:
        """The item as plain data (every field is text or a tuple of text: no deep copy needed)."""
        return {**{field.name: getattr(self, field.name) for field in dataclasses.fields(self)},
                "servers": list(self.servers)}


@dataclasses.dataclass(frozen=True)
class FleetSummary:
    """Counts for the whole fleet; ``as_dict`` is the action's ``summary`` return value."""

    hosts: int
    hosts_collected: int
    hosts_missing: tuple[str, ...]
    certificates: int
    findings: Mapping[str, int]
    worst_severity: str | None
    earliest_expiry: CertificateView | None
    not_collected: Mapping[str, Mapping[str, str | None]] = dataclasses.field(default_factory=dict)
    hosts_incomplete: tuple[str, ...] = ()
    probes_failed: int = 0
    actions: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        earliest = self.earliest_expiry
        return {
            "hosts": self.hosts,
            "hosts_collected": self.hosts_collected,
            "hosts_missing": list(self.hosts_missing),
            "not_collected": {host: dict(record) for host, record in self.not_collected.items()},
            "hosts_incomplete": list(self.hosts_incomplete),
            "probes_failed": self.probes_failed,
            "certificates": self.certificates,
            "findings": dict(self.findings),
            "actions": dict(self.actions),
            "worst_severity": self.worst_severity,
            "earliest_expiry": earliest.data.get("not_after") if earliest else None,
            "earliest_expiry_host": earliest.host if earliest else None,
            "earliest_expiry_thumbprint": earliest.thumbprint if earliest else None,
            "earliest_expiry_subject": earliest.subject if earliest else None,
        }


@dataclasses.dataclass(frozen=True)
class DagRow:
    """One role across the members of a DAG: the certificates each member holds for it."""

    role: str
    cells: tuple[tuple[CertificateView, ...], ...]
    odd: frozenset[int]
    """Indexes of the members whose certificates differ from the majority (only for ``DAG_SHARED_ROLES``)."""

    @property
    def mismatch(self) -> bool:
        return bool(self.odd)


@dataclasses.dataclass(frozen=True)
class DagView:
    """A database availability group: its collected members side by side."""

    name: str
    members: tuple[HostView, ...]
    rows: tuple[DagRow, ...]
    nodes_not_reported: tuple[str, ...]

    @property
    def mismatched_roles(self) -> list[str]:
        return [row.role for row in self.rows if row.mismatch]


@dataclasses.dataclass(frozen=True)
class FleetReport:
    """Everything every format renders."""

    title: str
    generated_at: datetime.datetime
    hosts: tuple[HostView, ...]
    summary: FleetSummary
    action_plan: tuple[ActionItem, ...] = ()
    """The distinct problems, worst first (see :func:`build_action_plan`)."""
    ledger: Any = None
    """The certificate stories (``_report_stories.LedgerStories``) when the report reads a ledger, else None: the
    formats render them only then."""

    def certificates(self) -> Iterator[CertificateView]:
        for host in self.hosts:
            yield from host.certificates

    def collection_window(self) -> tuple[str, str] | None:
        """The earliest and latest ``collected_at`` of the collected hosts."""
        times = sorted(host.collected_at for host in self.hosts if host.collected_at)
        return (times[0], times[-1]) if times else None

    def findings_by_severity(self) -> list[tuple[str, list[tuple[HostView, list[Mapping[str, Any]]]]]]:
        """Findings grouped by severity (most severe first), then by host; empty groups left out."""
        groups = []
        for severity in SEVERITIES:
            per_host = [
                (host, [finding for finding in host.findings if finding["severity"] == severity])
                for host in self.hosts
            ]
            per_host = [(host, findings) for host, findings in per_host if findings]
            if per_host:
                groups.append((severity, per_host))
        return groups

    @functools.cached_property
    def _dags(self) -> tuple[DagView, ...]:
        members: dict[str, list[HostView]] = collections.defaultdict(list)
        for host in self.hosts:
            if host.dag:
                members[host.dag].append(host)
        return tuple(_dag_view(name, tuple(sorted(hosts, key=lambda h: h.server_name.lower())))
                     for name, hosts in sorted(members.items()))

    def dags(self) -> list[DagView]:
        return list(self._dags)


def finding_url(finding_id: str) -> str | None:
    """The page a catalogued finding's rule comes from (``None`` for an id the catalogue does not know)."""
    spec = CATALOGUE.get(finding_id)
    return spec.url if spec else None


def probe_problem(result: Any) -> str | None:
    """What went wrong with one tls_probe result, ``None`` when it passed (or was skipped)."""
    if not isinstance(result, Mapping):
        return "no probe result"
    if result.get("skipped"):
        return None
    if result.get("failed") or result.get("unreachable"):
        stage = clean_text(result.get("stage"))
        message = clean_text(result.get("msg")) or "failed"
        return f"failed at {stage}: {message}" if stage else f"failed: {message}"
    problems = []
    if result.get("name_matches") is False:
        missing = result.get("unmatched_names")
        names = ", ".join(str(name) for name in missing) if isinstance(missing, list) else ""
        problems.append(f"the certificate does not cover {clean_text(names)}" if names else
                        "the certificate does not cover the expected names")
    if result.get("expected_thumbprint_matches") is False:
        problems.append(f"serves {clean_text(result.get('thumbprint')) or 'another certificate'}, "
                        "not the expected certificate")
    if result.get("missing_intermediate"):
        problems.append(f"the server does not send the intermediate {clean_text(result.get('missing_intermediate'))}"
                        " (import it into LocalMachine\\CA: exchange.pki.certificate_import)")
    if result.get("chain_valid") is False:
        problems.append(f"the chain does not verify ({clean_text(result.get('chain_error')) or 'no reason given'})")
    days = result.get("days_remaining")
    if isinstance(days, int) and not isinstance(days, bool) and days < 0:
        problems.append("the served certificate has expired")
    return "; ".join(problems) or None


# --- building and checking the model --------------------------------------------------------------


def build_report(
    facts: Mapping[str, Any], *, title: str, now: datetime.datetime,
) -> FleetReport:
    """Build the report model. ``facts`` maps inventory host -> its ``exchange_pki`` fact, ``None`` or a failure
    record. Raises :class:`ReportInputError` naming the host and the field when a fact is malformed."""
    if not isinstance(facts, Mapping):
        raise ReportInputError(f"facts must be a dictionary of host name to fact, got {type(facts).__name__}")
    for host in facts:
        if not isinstance(host, str) or not host.strip():
            raise ReportInputError(f"facts: host name {host!r} is not a non-empty string")
    hosts = tuple(_host_view(host, facts[host]) for host in sorted(facts, key=str.lower))
    plan = build_action_plan(hosts)
    return FleetReport(title=title, generated_at=now, hosts=hosts, summary=_summary(hosts, plan), action_plan=plan)


def _is_collected(fact: Any) -> bool:
    """A usable fact is a mapping with a ``certificates`` list; anything else (``None``, a failed result) is not."""
    return isinstance(fact, Mapping) and not is_censored(fact) and isinstance(fact.get("certificates"), list)


def _failure(host: str, fact: Any) -> tuple[str | None, str | None]:
    """(reason, message) of a host that was not collected."""
    if is_censored(fact):
        return None, CENSORED_TEXT
    if not isinstance(fact, Mapping):
        return None, None
    record = fact.get("not_collected")
    if record is None and (fact.get("failed") or fact.get("unreachable")):
        record = {"reason": fact.get("failure_reason") or ("unreachable" if fact.get("unreachable") else "failed"),
                  "message": fact.get("msg")}
    if record is None:
        return None, None
    if is_censored(record):
        return None, CENSORED_TEXT
    if not isinstance(record, Mapping):
        raise ReportInputError(f"host {host}: not_collected must be a mapping with reason and message")
    reason = record.get("reason")
    if isinstance(reason, str):
        reason = reason.strip() or None  # a templated value may carry the blanks of its YAML block
    if is_censored(reason):
        reason = None
    elif reason is not None and reason not in NOT_COLLECTED_REASONS:
        raise ReportInputError(
            f"host {host}: not_collected.reason {clean_text(reason)!r} is not one of {', '.join(NOT_COLLECTED_REASONS)}"
        )
    return reason, clean_text(record.get("message"))


def _host_view(host: str, fact: Any) -> HostView:
    if not _is_collected(fact):
        reason, message = _failure(host, fact)
        return HostView(host=host, fact=None, certificates=(), findings=(),
                        not_collected_reason=reason, not_collected_message=message)
    _check_fact(host, fact)
    findings = tuple(_checked_finding(host, index, finding) for index, finding in enumerate(fact.get("findings") or ()))
    by_thumbprint: dict[str, list[Mapping[str, Any]]] = collections.defaultdict(list)
    for finding in findings:
        if finding.get("thumbprint"):
            by_thumbprint[finding["thumbprint"]].append(finding)
    certificates = []
    for index, cert in enumerate(fact["certificates"]):
        not_after = _checked_certificate(host, index, cert)
        about = by_thumbprint.get(cert["thumbprint"])
        certificates.append(CertificateView(
            host=host,
            data=cert,
            severity=worst(finding["severity"] for finding in about) if about else None,
            finding_ids=tuple(sorted({finding["id"] for finding in about})) if about else (),
            not_after=not_after,
            roles=tuple(cert.get("roles") or ()),
        ))
    unavailable = fact.get("unavailable") or {}
    probes = fact.get("probes") or {}
    return HostView(
        host=host, fact=fact, certificates=tuple(certificates), findings=findings,
        unavailable={str(read): clean_text(message) or "failed" for read, message in sorted(unavailable.items())},
        probes={str(name): result for name, result in sorted(probes.items(), key=lambda item: str(item[0]))},
    )


_OPTIONAL_TYPES: Mapping[str, tuple[type, ...]] = {
    "server": (Mapping,), "unavailable": (Mapping,), "probes": (Mapping,), "findings": (list, tuple),
    "collected_at": (str,), "auth": (Mapping,), "cluster": (Mapping,), "summary": (Mapping,),
    "iis_bindings": (list, tuple), "connectors": (list, tuple), "internal_transport_thumbprint": (str,),
}
_CERT_TEXT = ("subject", "issuer", "serial_number", "store", "friendly_name", "status", "key_type", "key_provider",
              "signature_hash")
_CERT_INTEGERS = ("days_remaining", "lifetime_days", "key_size")
_CERT_TEXT_LISTS = ("roles", "services", "dns_names", "ekus")
"""The checked keys of a certificate, by type; a null value is always allowed."""


def _type_name(value: Any) -> str:
    return type(value).__name__


def _shown(value: Any) -> str:
    """A bad value as an error message shows it: a scalar quoted (clean), anything else by its type."""
    if isinstance(value, str):
        return repr(clean_text(value))
    if isinstance(value, (bool, int, float)):
        return repr(str(value))
    return f"(a {_type_name(value)})"


def _check_fact(host: str, fact: Mapping[str, Any]) -> None:
    for key, types in _OPTIONAL_TYPES.items():
        value = fact.get(key)
        if value is not None and not isinstance(value, types):
            raise ReportInputError(f"host {host}: {key} is a {_type_name(value)}, not a "
                                   f"{'list' if list in types else 'string' if str in types else 'mapping'}")
    try:
        parse_time(fact.get("collected_at"))
    except ValueError:
        raise ReportInputError(
            f"host {host}: collected_at {clean_text(fact.get('collected_at'))!r} is not an ISO-8601 time"
        ) from None
    server = fact.get("server") or {}
    for key in ("name", "dag", "site"):
        if server.get(key) is not None and not isinstance(server[key], str):
            raise ReportInputError(f"host {host}: server.{key} is a {_type_name(server[key])}, not a string")


def _checked_certificate(host: str, index: int, cert: Any) -> datetime.datetime | None:
    """Check one certificate entry; returns its parsed ``not_after``."""
    if not isinstance(cert, Mapping):
        raise ReportInputError(f"host {host}: certificates[{index}] is not a mapping")
    thumbprint = cert.get("thumbprint")
    if not isinstance(thumbprint, str) or not thumbprint.strip():
        raise ReportInputError(f"host {host}: certificates[{index}]: thumbprint is missing or not a string")
    get = cert.get
    for key in _CERT_TEXT:
        value = get(key)
        if value is not None and not isinstance(value, str):
            raise _certificate_error(host, index, thumbprint, f"{key} is a {_type_name(value)}, not a string")
    for key in _CERT_INTEGERS:
        value = get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise _certificate_error(host, index, thumbprint, f"{key} {_shown(value)} is not an integer")
    for key in _CERT_TEXT_LISTS:
        value = get(key)
        if value is None:
            continue
        try:
            if not isinstance(value, (list, tuple)):
                raise TypeError
            "".join(value)  # raises TypeError unless every item is text, at C speed
        except TypeError:
            raise _certificate_error(host, index, thumbprint, f"{key} is not a list of strings") from None
    for key in ("not_before", "not_after"):
        try:
            moment = parse_time(cert.get(key))
        except (TypeError, ValueError):
            raise _certificate_error(host, index, thumbprint,
                                     f"{key} {_shown(cert.get(key))} is not an ISO-8601 time") from None
    return moment


def _certificate_error(host: str, index: int, thumbprint: str, problem: str) -> ReportInputError:
    return ReportInputError(f"host {host}: certificates[{index}] ({clean_text(thumbprint)}): {problem}")


def _checked_finding(host: str, index: int, finding: Any) -> Mapping[str, Any]:
    if not isinstance(finding, Mapping) or not isinstance(finding.get("id"), str) or not finding["id"]:
        raise ReportInputError(f"host {host}: findings[{index}] is not a finding with an id")
    if finding.get("severity") not in SEVERITY_RANK:
        raise ReportInputError(
            f"host {host}: finding {clean_text(finding['id'])} has severity {clean_text(finding.get('severity'))!r}, "
            f"expected one of {', '.join(SEVERITIES)}"
        )
    for key in ("thumbprint", "message", "remediation"):
        if finding.get(key) is not None and not isinstance(finding[key], str):
            raise ReportInputError(f"host {host}: findings[{index}].{key} is a {_type_name(finding[key])}, "
                                   "not a string")
    return finding


def _summary(hosts: Sequence[HostView], plan: Sequence[ActionItem]) -> FleetSummary:
    counts: collections.Counter[str] = collections.Counter()
    certificates = 0
    earliest: CertificateView | None = None
    for host in hosts:
        counts.update(finding["severity"] for finding in host.findings)
        certificates += len(host.certificates)
        for cert in host.certificates:
            if cert.not_after and not cert.is_request and (earliest is None or cert.not_after < earliest.not_after):
                earliest = cert
    problems = [problem for host in hosts for problem in host.problems]
    action_counts = collections.Counter(item.severity for item in plan)
    return FleetSummary(
        hosts=len(hosts),
        hosts_collected=sum(host.collected for host in hosts),
        hosts_missing=tuple(host.host for host in hosts if not host.collected),
        certificates=certificates,
        findings={severity: counts[severity] for severity in SEVERITIES},
        worst_severity=worst([*counts, *(problem.severity for problem in problems)]),
        earliest_expiry=earliest,
        not_collected={host.host: {"reason": host.not_collected_reason, "message": host.not_collected_message}
                       for host in hosts if not host.collected},
        hosts_incomplete=tuple(host.host for host in hosts if host.unavailable),
        probes_failed=sum(problem.kind == "probe_failed" for problem in problems),
        actions={severity: action_counts[severity] for severity in SEVERITIES},
    )


# --- the action plan ------------------------------------------------------------------------------


@dataclasses.dataclass
class _Group:
    severity: str
    first_host: HostView
    first: Mapping[str, Any]
    servers: set[str]
    cert: CertificateView | None
    roles: set[str]


def build_action_plan(hosts: Sequence[HostView]) -> tuple[ActionItem, ...]:
    """The distinct problems of the fleet, worst first.

    A finding about a certificate is grouped by (finding id, thumbprint): the same certificate on four servers
    is one certificate to renew. Auth findings are one organisation-wide problem. Findings about a server's
    configuration and host problems (no facts, a failed read, a failed probe) are grouped by id and reason,
    read or probe, listing the servers. Order: severity; then what can be acted on before what only needs to
    be reported (cluster certificates, whose remediation says not to touch them); then the most servers.
    """
    groups: dict[tuple[str, str], _Group] = {}
    items: list[ActionItem] = []
    host_groups: dict[tuple[str, str], list[tuple[HostView, HostProblem]]] = collections.defaultdict(list)
    for host in hosts:
        for finding in host.findings:
            key = (finding["id"], finding.get("thumbprint") or "")
            cert = host.certificate(finding.get("thumbprint"))
            group = groups.get(key)
            if group is None:
                groups[key] = _Group(finding["severity"], host, finding, {host.host}, cert,
                                     set(cert.roles) if cert else set())
                continue
            group.severity = worst((group.severity, finding["severity"])) or group.severity
            group.servers.add(host.host)
            if cert is not None:
                group.roles.update(cert.roles)
                if group.cert is None:
                    group.cert = cert
        for problem in host.problems:
            host_groups[problem.kind, problem.name or ""].append((host, problem))
    for (finding_id, thumbprint), group in groups.items():
        items.append(_finding_item(finding_id, thumbprint or None, group))
    for (kind, name), found in host_groups.items():
        items.append(_host_problem_item(kind, name or None, found))
    catalogue_order = {finding_id: index for index, finding_id in enumerate(CATALOGUE)}
    items.sort(key=lambda item: (
        SEVERITY_RANK[item.severity], item.inform_only, -len(item.servers),
        catalogue_order.get(item.finding_id, len(catalogue_order)), item.title, item.thumbprint or "",
    ))
    return tuple(items)


def _finding_item(finding_id: str, thumbprint: str | None, group: _Group) -> ActionItem:
    spec = CATALOGUE.get(finding_id)
    cert = group.cert
    subject = cert.subject if cert else None
    if finding_id in ORGANIZATION_FINDINGS or group.roles & AUTH_ROLES:
        scope = "organization"
    else:
        scope = "certificate" if thumbprint else "server"
    title = spec.title if spec else finding_id
    if subject:
        title += f": {subject_cn(subject)}"
    days = cert.days_remaining if cert else None
    if days is not None and finding_id in _DAYS_IN_TITLE:
        title += f" (expired {-days} days ago)" if days < 0 else f" ({days} days left)"
    action = clean_text(group.first.get("remediation")) or "See the finding's source page."
    if finding_id in INFORM_ONLY_FINDINGS or "cluster" in group.roles:
        action = INFORM_PREFIX + action
    return ActionItem(
        severity=group.severity, finding_id=finding_id, title=title, scope=scope, thumbprint=thumbprint,
        subject=subject, servers=tuple(sorted(group.servers, key=str.lower)), action=action,
        url=spec.url if spec else None,
    )


def _host_problem_item(kind: str, name: str | None, found: Sequence[tuple[HostView, HostProblem]]) -> ActionItem:
    host, problem = found[0]
    servers = tuple(sorted({h.host for h, _p in found}, key=str.lower))
    if kind == "not_collected":
        label = NOT_COLLECTED_REASONS.get(name or "", "reason unknown")
        if name is None and all(h.not_collected_message == CENSORED_TEXT for h, _p in found):
            label = CENSORED_TEXT
        title = f"No facts: {label}"
        action = NOT_COLLECTED_ACTIONS.get(name, NOT_COLLECTED_ACTIONS[None])
    elif kind == "unavailable_read":
        effect = UNAVAILABLE_EFFECTS.get(name or "", f"the facts {name} reads")
        title = f"{name} could not be read: {effect} unknown"
        action = (f"Find out why {name} failed ({host.unavailable.get(name or '', 'failed')}) and run the inventory "
                  "again; until then these facts are unknown, not absent, and their rules stay silent.")
    else:
        title = f"TLS probe {name} did not pass"
        action = (f"Check the certificate the endpoint serves ({problem.text}) against the one Exchange binds, "
                  "then probe again.")
    return ActionItem(severity=worst(p.severity for _h, p in found) or "warning", finding_id=kind, title=title,
                      scope="server", thumbprint=None, subject=None, servers=servers, action=action, url=None)


# --- DAGs -----------------------------------------------------------------------------------------


def _role_key(role: str) -> tuple[int, str]:
    return (ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER), role)


def _dag_view(name: str, members: tuple[HostView, ...]) -> DagView:
    present = {role for member in members for cert in member.certificates for role in cert.roles}
    rows = []
    for role in sorted(present, key=_role_key):
        cells = tuple(tuple(cert for cert in member.certificates if role in cert.roles) for member in members)
        shared = tuple(tuple(cert for cert in cell if not PER_SERVER_ROLES & set(cert.roles)) for cell in cells)
        odd = _odd_members(shared) if role in DAG_SHARED_ROLES else frozenset()
        rows.append(DagRow(role=role, cells=cells, odd=odd))
    member_names = {member.server_name.lower() for member in members}
    nodes = {
        node.get("name") for member in members for node in ((member.fact or {}).get("cluster") or {}).get("nodes") or ()
        if isinstance(node, Mapping) and isinstance(node.get("name"), str) and node.get("name")
    }
    missing = tuple(sorted(node for node in nodes if node.lower() not in member_names))
    return DagView(name=name, members=members, rows=tuple(rows), nodes_not_reported=missing)


def _odd_members(cells: Sequence[Sequence[CertificateView]]) -> frozenset[int]:
    """Members whose thumbprints for a shared role differ from the most common set (ties: the first seen)."""
    sets = [frozenset(cert.thumbprint for cert in cell) for cell in cells]
    majority, _count = collections.Counter(sets).most_common(1)[0]
    return frozenset(index for index, thumbprints in enumerate(sets) if thumbprints != majority)


# --- text helpers ---------------------------------------------------------------------------------


def short_thumbprint(thumbprint: str) -> str:
    return thumbprint[:8] if thumbprint else "-"


def expiry_date(cert: CertificateView) -> str:
    return cert.not_after.date().isoformat() if cert.not_after else "-"


def collection_note(report: FleetReport) -> str:
    window = report.collection_window()
    if window is None:
        return "no facts collected"
    first, last = window
    return f"facts collected {first}" if first == last else f"facts collected {first} to {last}"
