# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The fleet report: a model built from every host's ``exchange_pki`` fact and its file formats.

:func:`build_report` turns the facts (docs/facts.md shape, one per inventory host, ``None`` when a host was
not collected) into a :class:`FleetReport`. Each format of :data:`FORMATS` renders that model as an
iterable of text chunks, so large fleets stream to disk; :func:`write_reports` writes them atomically and
only when their content changed.

Content comparison ignores *volatile lines*: the lines that carry the report's generation time and the
hosts' collection times (each format declares their prefixes). Everything else is a pure function of the
facts, so re-running over unchanged facts leaves every file untouched.

Only allow-listed fact keys reach the output (:data:`HOST_FACT_KEYS`); the facts carry no secrets, and an
unexpected key in a fact is dropped rather than published.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import SEVERITIES, SEVERITY_RANK
from ansible_collections.exchange.pki.plugins.plugin_utils._references import (
    DAG_SHARED_ROLES,
    PER_SERVER_ROLES,
    ROLE_ORDER,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime, parse_iso_datetime, utc_now

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
"""The fact keys published in the JSON report (``collected_at`` is published separately, as volatile)."""

DEFAULT_TITLE = "Exchange certificate report"
DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
MARKDOWN_MAX_ROWS = 50
"""Critical/warning rows in the Markdown summary; the rest is counted, so a job log or a mail stays short."""


class ReportInputError(ExchangePkiError, ValueError):
    """A host's fact does not have the documented shape."""


# --- time -----------------------------------------------------------------------------------------


def parse_time(value: str | None) -> datetime.datetime | None:
    """A certificate's or host's timestamp from the facts (ISO-8601), None when absent."""
    return parse_iso_datetime(value) if value else None


def report_time(text: str | None) -> datetime.datetime:
    """The report's generation time: ``text`` when given (reproducible output), else the time of this run."""
    if not text:
        return utc_now()
    try:
        return parse_iso_datetime(text)
    except ValueError:
        raise ReportInputError(f"now: {text!r} is not an ISO-8601 date and time such as 2026-11-25T08:00:00Z") from None


def worst(severities: Iterable[str | None]) -> str | None:
    """The most severe of ``severities``; ``None`` when there is none."""
    ranked = [severity for severity in severities if severity]
    return min(ranked, key=SEVERITY_RANK.__getitem__) if ranked else None


# --- the model ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CertificateView:
    """One certificate of one host, with the findings about it."""

    host: str
    data: Mapping[str, Any]
    severity: str | None
    finding_ids: tuple[str, ...]
    not_after: datetime.datetime | None

    @property
    def thumbprint(self) -> str:
        return self.data.get("thumbprint") or ""

    @property
    def subject(self) -> str:
        return self.data.get("subject") or ""

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.data.get("roles") or ())

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


@dataclasses.dataclass(frozen=True, slots=True)
class HostView:
    """One inventory host: its fact (``None`` when not collected), certificates and findings."""

    host: str
    fact: Mapping[str, Any] | None
    certificates: tuple[CertificateView, ...]
    findings: tuple[Mapping[str, Any], ...]

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
    def worst_severity(self) -> str | None:
        return worst(finding["severity"] for finding in self.findings)

    def finding_counts(self) -> dict[str, int]:
        counts = collections.Counter(finding["severity"] for finding in self.findings)
        return {severity: counts[severity] for severity in SEVERITIES}

    def certificate(self, thumbprint: str | None) -> CertificateView | None:
        return next((cert for cert in self.certificates if thumbprint and cert.thumbprint == thumbprint), None)


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

    def as_dict(self) -> dict[str, Any]:
        earliest = self.earliest_expiry
        return {
            "hosts": self.hosts,
            "hosts_collected": self.hosts_collected,
            "hosts_missing": list(self.hosts_missing),
            "certificates": self.certificates,
            "findings": dict(self.findings),
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

    def dags(self) -> list[DagView]:
        members: dict[str, list[HostView]] = collections.defaultdict(list)
        for host in self.hosts:
            if host.dag:
                members[host.dag].append(host)
        return [_dag_view(name, tuple(sorted(hosts, key=lambda h: h.server_name.lower())))
                for name, hosts in sorted(members.items())]


def build_report(
    facts: Mapping[str, Any], *, title: str, now: datetime.datetime,
) -> FleetReport:
    """Build the report model. ``facts`` maps inventory host -> its ``exchange_pki`` fact (or ``None``)."""
    hosts = tuple(_host_view(host, facts[host]) for host in sorted(facts, key=str.lower))
    return FleetReport(title=title, generated_at=now, hosts=hosts, summary=_summary(hosts))


def _is_collected(fact: Any) -> bool:
    """A usable fact is a mapping with a ``certificates`` list; anything else (``None``, a failed result) is not."""
    return isinstance(fact, Mapping) and isinstance(fact.get("certificates"), list)


def _host_view(host: str, fact: Any) -> HostView:
    if not _is_collected(fact):
        return HostView(host=host, fact=None, certificates=(), findings=())
    findings = tuple(_checked_finding(host, index, finding) for index, finding in enumerate(fact.get("findings") or ()))
    by_thumbprint: dict[str, list[Mapping[str, Any]]] = collections.defaultdict(list)
    for finding in findings:
        if finding.get("thumbprint"):
            by_thumbprint[finding["thumbprint"]].append(finding)
    certificates = []
    for index, cert in enumerate(fact["certificates"]):
        if not isinstance(cert, Mapping):
            raise ReportInputError(f"host {host}: certificates[{index}] is not a mapping")
        about = by_thumbprint.get(cert.get("thumbprint") or "", ())
        certificates.append(CertificateView(
            host=host,
            data=cert,
            severity=worst(finding["severity"] for finding in about),
            finding_ids=tuple(sorted({finding["id"] for finding in about})),
            not_after=_parsed(host, cert, "not_after"),
        ))
    return HostView(host=host, fact=fact, certificates=tuple(certificates), findings=findings)


def _checked_finding(host: str, index: int, finding: Any) -> Mapping[str, Any]:
    if not isinstance(finding, Mapping) or not finding.get("id"):
        raise ReportInputError(f"host {host}: findings[{index}] is not a finding with an id")
    if finding.get("severity") not in SEVERITY_RANK:
        raise ReportInputError(
            f"host {host}: finding {finding['id']} has severity {finding.get('severity')!r}, "
            f"expected one of {', '.join(SEVERITIES)}"
        )
    return finding


def _parsed(host: str, cert: Mapping[str, Any], key: str) -> datetime.datetime | None:
    try:
        return parse_time(cert.get(key))
    except (TypeError, ValueError):
        raise ReportInputError(
            f"host {host}: certificate {cert.get('thumbprint')}: {key} {cert.get(key)!r} is not an ISO-8601 time"
        ) from None


def _summary(hosts: Sequence[HostView]) -> FleetSummary:
    counts: collections.Counter[str] = collections.Counter()
    certificates = 0
    earliest: CertificateView | None = None
    for host in hosts:
        counts.update(finding["severity"] for finding in host.findings)
        certificates += len(host.certificates)
        for cert in host.certificates:
            if cert.not_after and not cert.is_request and (earliest is None or cert.not_after < earliest.not_after):
                earliest = cert
    return FleetSummary(
        hosts=len(hosts),
        hosts_collected=sum(host.collected for host in hosts),
        hosts_missing=tuple(host.host for host in hosts if not host.collected),
        certificates=certificates,
        findings={severity: counts[severity] for severity in SEVERITIES},
        worst_severity=worst(counts),
        earliest_expiry=earliest,
    )


def _dag_view(name: str, members: tuple[HostView, ...]) -> DagView:
    present = {role for member in members for cert in member.certificates for role in cert.roles}
    rows = []
    for role in sorted(present, key=lambda r: (ROLE_ORDER.index(r) if r in ROLE_ORDER else len(ROLE_ORDER), r)):
        cells = tuple(tuple(cert for cert in member.certificates if role in cert.roles) for member in members)
        shared = tuple(tuple(cert for cert in cell if not PER_SERVER_ROLES & set(cert.roles)) for cell in cells)
        odd = _odd_members(shared) if role in DAG_SHARED_ROLES else frozenset()
        rows.append(DagRow(role=role, cells=cells, odd=odd))
    member_names = {member.server_name.lower() for member in members}
    nodes = {
        node.get("name") for member in members for node in ((member.fact or {}).get("cluster") or {}).get("nodes") or ()
        if isinstance(node, Mapping) and node.get("name")
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


# --- CSV ------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "server", "server_name", "collected", "dag", "site", "thumbprint", "subject", "issuer", "serial_number",
    "not_before", "not_after", "days_remaining", "store", "roles", "services", "dns_names", "key_type", "key_size",
    "signature_hash", "has_private_key", "private_key_exportable", "key_provider", "status", "friendly_name",
    "severity", "finding_ids",
)
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """Lists join with ``;``; text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if isinstance(value, (list, tuple)):
        value = ";".join(str(item) for item in value)
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return "" if value is None else value


def _csv_row(host: HostView, cert: CertificateView | None) -> list[Any]:
    data = cert.data if cert else {}
    known = {
        "server": host.host,
        "server_name": host.server.get("name"),
        "collected": host.collected,
        "dag": host.dag,
        "site": host.server.get("site"),
        "severity": cert.severity if cert else None,
        "finding_ids": cert.finding_ids if cert else (),
    }
    return [_csv_cell(known[column] if column in known else data.get(column)) for column in CSV_COLUMNS]


def render_csv(report: FleetReport) -> Iterator[str]:
    """One row per (server, certificate); a host that was not collected gets one row with ``collected`` false."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(row: Sequence[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(row)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for host in report.hosts:
        if not host.collected:
            yield line(_csv_row(host, None))
        for cert in host.certificates:
            yield line(_csv_row(host, cert))


# --- JSON -----------------------------------------------------------------------------------------

JSON_FORMAT_ID = "exchange.pki.report/v1"


def _json_host(host: HostView) -> dict[str, Any]:
    entry: dict[str, Any] = {"host": host.host, "collected": host.collected, "worst_severity": host.worst_severity}
    if host.fact is None:
        return entry
    entry.update((key, host.fact[key]) for key in HOST_FACT_KEYS if key in host.fact and key != "certificates")
    entry["certificates"] = [
        {**cert.data, "severity": cert.severity, "finding_ids": list(cert.finding_ids)} for cert in host.certificates
    ]
    return entry


def _json_dag(dag: DagView) -> dict[str, Any]:
    return {
        "name": dag.name,
        "members": [member.host for member in dag.members],
        "mismatched_roles": dag.mismatched_roles,
        "nodes_not_reported": list(dag.nodes_not_reported),
    }


def render_json(report: FleetReport) -> Iterator[str]:
    """The whole model, one top-level key per line and one host per line (streams; diffs stay readable)."""
    dump = json.dumps
    yield "{\n"
    yield f'"format": {dump(JSON_FORMAT_ID)},\n'
    yield f'"title": {dump(report.title)},\n'
    yield f'"generated_at": {dump(format_utc_datetime(report.generated_at))},\n'
    collected_at = {host.host: host.collected_at for host in report.hosts if host.collected}
    yield f'"collected_at": {dump(collected_at, sort_keys=True)},\n'
    yield f'"summary": {dump(report.summary.as_dict(), sort_keys=True)},\n'
    yield f'"dags": {dump([_json_dag(dag) for dag in report.dags()], sort_keys=True)},\n'
    yield '"hosts": ['
    for index, host in enumerate(report.hosts):
        yield ("\n" if index == 0 else ",\n") + dump(_json_host(host), sort_keys=True)
    yield "\n]\n}\n"


# --- Markdown -------------------------------------------------------------------------------------


def _md_cell(value: Any) -> str:
    text = " ".join(str(value if value is not None else "-").split())
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _md_certificate(host: HostView, finding: Mapping[str, Any]) -> str:
    cert = host.certificate(finding.get("thumbprint"))
    if cert is None:
        return short_thumbprint(finding.get("thumbprint") or "")
    return f"{cert.subject} ({short_thumbprint(cert.thumbprint)}, expires {expiry_date(cert)})"


def render_markdown(report: FleetReport) -> Iterator[str]:
    """A short fleet summary plus a table of the critical and warning findings (capped)."""
    summary = report.summary
    yield f"# {_md_cell(report.title)}\n\n"
    yield f"_Generated {format_utc_datetime(report.generated_at)} by exchange.pki; {collection_note(report)}._\n\n"
    yield (
        f"- **Servers:** {summary.hosts} ({summary.hosts_collected} collected, "
        f"{len(summary.hosts_missing)} not collected)\n"
    )
    yield f"- **Certificates:** {summary.certificates}\n"
    counts = ", ".join(f"{summary.findings[severity]} {severity}" for severity in SEVERITIES)
    yield f"- **Findings:** {counts} (worst: {summary.worst_severity or 'none'})\n"
    if summary.earliest_expiry:
        cert = summary.earliest_expiry
        yield (
            f"- **Earliest expiry:** {expiry_date(cert)} ({cert.days_remaining} days): {_md_cell(cert.subject)} "
            f"({short_thumbprint(cert.thumbprint)}) on {_md_cell(cert.host)}\n"
        )
    if summary.hosts_missing:
        yield f"- **Not collected:** {_md_cell(', '.join(summary.hosts_missing))}\n"
    for dag in report.dags():
        if dag.mismatched_roles:
            yield f"- **DAG {_md_cell(dag.name)}:** members differ for {', '.join(dag.mismatched_roles)}\n"
    rows = [
        (severity, host, finding)
        for severity, per_host in report.findings_by_severity() if severity != "info"
        for host, findings in per_host for finding in findings
    ]
    if not rows:
        yield "\nNo critical or warning findings.\n"
        return
    yield "\n## Critical and warning findings\n\n"
    yield "| Severity | Server | Finding | Certificate | Message |\n|---|---|---|---|---|\n"
    for severity, host, finding in rows[:MARKDOWN_MAX_ROWS]:
        cells = (severity, host.host, finding["id"], _md_certificate(host, finding), finding.get("message"))
        yield "| " + " | ".join(_md_cell(cell) for cell in cells) + " |\n"
    if len(rows) > MARKDOWN_MAX_ROWS:
        yield f"\n… and {len(rows) - MARKDOWN_MAX_ROWS} more; see the HTML or CSV report.\n"


def markdown_text(report: FleetReport) -> str:
    return "".join(render_markdown(report))


# --- Prometheus textfile --------------------------------------------------------------------------

PROMETHEUS_CERTIFICATE_LABELS = ("server", "thumbprint", "subject", "role", "store")


def prometheus_label_value(value: str) -> str:
    """Escape a label value for the text exposition format (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{prometheus_label_value(value)}"' for name, value in labels.items()) + "}"


def _metric_header(name: str, help_text: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} gauge\n"


def _certificate_labels(cert: CertificateView) -> str:
    return _labels(
        server=cert.host, thumbprint=cert.thumbprint, subject=cert.subject,
        role=",".join(cert.roles), store=cert.data.get("store") or "",
    )


def _expiring_certificates(report: FleetReport) -> Iterator[CertificateView]:
    """Certificates with a known expiry, pending requests left out, one per (server, thumbprint, store)."""
    for host in report.hosts:
        seen: set[tuple[str, str]] = set()
        for cert in host.certificates:
            key = (cert.thumbprint, cert.data.get("store") or "")
            if cert.not_after is not None and not cert.is_request and key not in seen:
                seen.add(key)
                yield cert


def render_prometheus(report: FleetReport) -> Iterator[str]:
    """A node_exporter textfile in the style of cert-manager's certificate metrics."""
    name = "exchange_pki_certificate_expiration_timestamp_seconds"
    yield _metric_header(name, "The date after which the certificate expires (not_after), as a Unix timestamp.")
    for cert in _expiring_certificates(report):
        yield f"{name}{_certificate_labels(cert)} {int(cert.not_after.timestamp())}\n"
    name = "exchange_pki_certificate_days_remaining"
    yield _metric_header(name, "Whole days until the certificate expires, as collected; negative when expired.")
    for cert in _expiring_certificates(report):
        if cert.days_remaining is not None:
            yield f"{name}{_certificate_labels(cert)} {int(cert.days_remaining)}\n"
    name = "exchange_pki_findings"
    yield _metric_header(name, "Number of findings on the server, by severity.")
    for host in report.hosts:
        if host.collected:
            for severity, count in host.finding_counts().items():
                yield f"{name}{_labels(server=host.host, severity=severity)} {count}\n"
    name = "exchange_pki_server_collected"
    yield _metric_header(name, "1 when the server's certificate facts were collected, 0 when not (unreachable).")
    for host in report.hosts:
        yield f"{name}{_labels(server=host.host)} {int(host.collected)}\n"
    name = "exchange_pki_server_collected_timestamp_seconds"
    yield _metric_header(name, "When the server's certificate facts were collected, as a Unix timestamp.")
    for host in report.hosts:
        collected_at = parse_time(host.collected_at)
        if collected_at:
            yield f"{name}{_labels(server=host.host)} {int(collected_at.timestamp())}\n"
    name = "exchange_pki_report_generated_timestamp_seconds"
    yield _metric_header(name, "When this report was generated, as a Unix timestamp.")
    yield f"{name} {int(report.generated_at.timestamp())}\n"


# --- formats and writing --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReportFormat:
    """A file format: its file name, renderer, and the prefixes of its volatile (timestamp) lines."""

    name: str
    filename: str
    render: Callable[[FleetReport], Iterable[str]]
    volatile_prefixes: tuple[str, ...] = ()


def _render_html(report: FleetReport) -> Iterable[str]:
    from ansible_collections.exchange.pki.plugins.plugin_utils._report_html import render_html

    return render_html(report)


FORMATS: Mapping[str, ReportFormat] = {
    fmt.name: fmt
    for fmt in (
        ReportFormat("html", "exchange_pki_report.html", _render_html, ('<p class="generated"',)),
        ReportFormat("csv", "exchange_pki_report.csv", render_csv),
        ReportFormat("json", "exchange_pki_report.json", render_json, ('"generated_at":', '"collected_at":')),
        ReportFormat("markdown", "exchange_pki_report.md", render_markdown, ("_Generated ",)),
        ReportFormat(
            "prometheus", "exchange_pki_report.prom", render_prometheus,
            ("exchange_pki_report_generated_timestamp_seconds ", "exchange_pki_server_collected_timestamp_seconds{"),
        ),
    )
}


class _ContentDigest:
    """SHA-256 over the lines of a text, volatile lines left out; fed in chunks of any size."""

    def __init__(self, volatile_prefixes: tuple[str, ...]) -> None:
        self._volatile = volatile_prefixes
        self._hash = hashlib.sha256()
        self._tail = ""

    def feed(self, chunk: str) -> None:
        *lines, self._tail = (self._tail + chunk).split("\n")
        for line in lines:
            self._line(line)

    def _line(self, line: str) -> None:
        if not line.lstrip().startswith(self._volatile):
            self._hash.update(line.encode("utf-8", "surrogatepass") + b"\n")

    def hexdigest(self) -> str:
        if self._tail:
            self._line(self._tail)
            self._tail = ""
        return self._hash.hexdigest()


def _file_digest(path: Path, volatile_prefixes: tuple[str, ...]) -> str | None:
    if not path.is_file():
        return None
    digest = _ContentDigest(volatile_prefixes)
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), ""):
            digest.feed(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class WriteOutcome:
    format: str
    path: Path
    changed: bool


def write_reports(
    report: FleetReport, dest: Path, formats: Sequence[str], *, check_mode: bool = False,
) -> tuple[bool, list[WriteOutcome]]:
    """Render ``formats`` into ``dest``; returns (directory created, outcome per format).

    A file is replaced (atomically, mode 0640) only when its content differs beyond its volatile lines.
    In check mode nothing is written: the content is rendered into a digest and compared.
    """
    created = not dest.is_dir()
    if created and not check_mode:
        dest.mkdir(mode=DIRECTORY_MODE, parents=True)
        os.chmod(dest, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    return created, [_write_one(report, FORMATS[name], dest, check_mode) for name in formats]


def _write_one(report: FleetReport, fmt: ReportFormat, dest: Path, check_mode: bool) -> WriteOutcome:
    path = dest / fmt.filename
    old = _file_digest(path, fmt.volatile_prefixes)
    new = _ContentDigest(fmt.volatile_prefixes)
    if check_mode:
        for chunk in fmt.render(report):
            new.feed(chunk)
        return WriteOutcome(fmt.name, path, new.hexdigest() != old or _wrong_mode(path))
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", newline="", dir=dest, prefix=f".{fmt.filename}.", delete=False,
    )
    try:
        with handle:
            os.fchmod(handle.fileno(), FILE_MODE)
            for chunk in fmt.render(report):
                new.feed(chunk)
                handle.write(chunk)
        if new.hexdigest() == old:
            changed = _wrong_mode(path)
            os.chmod(path, FILE_MODE)
            os.unlink(handle.name)
        else:
            changed = True
            os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return WriteOutcome(fmt.name, path, changed)


def _wrong_mode(path: Path) -> bool:
    return path.exists() and (path.stat().st_mode & 0o7777) != FILE_MODE
