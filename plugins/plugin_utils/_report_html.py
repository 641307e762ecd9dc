# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The self-contained HTML fleet report (inline CSS, inline vanilla JavaScript, inline SVG; no external asset).

The page stays light at any fleet size: the small parts (summary, action plan, servers that need a look, DAGs
whose members differ, an expiry timeline aggregated per week or month and severity) are HTML rendered here,
readable without JavaScript; the large tables (every certificate, finding and server) travel as compact JSON in
a ``<script type="application/json">`` block and the page's script renders them one page of rows at a time,
with filtering and sorting. The full detail also stays in the CSV and JSON reports.

Every value that comes from the facts is escaped here: HTML text and attributes with :func:`html.escape`, and
the JSON block with every ``<``, ``>``, ``&`` and non-ASCII character written as a ``\\uXXXX`` escape, so no
subject can close the block or inject markup; the script only ever sets ``textContent`` and checked ``href``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import functools
import html
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._policy import SEVERITIES
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    ActionItem,
    CertificateView,
    DagView,
    FleetReport,
    HostView,
    collection_note,
    finding_url,
    probe_problem,
    subject_cn,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._report_html_assets import SCRIPT, STYLE
from ansible_collections.exchange.pki.plugins.plugin_utils._time import DAY, format_utc_datetime, shifted

LANES = (*SEVERITIES, "ok")
"""Timeline lanes and the severity codes of the JSON rows (index into this tuple), most severe first."""
LANE_CODES: Mapping[str, int] = {lane: code for code, lane in enumerate(LANES)}

TIMELINE_PAST = 365 * DAY
TIMELINE_FUTURE = 3 * 365 * DAY
"""Expiries further away than this are counted in an edge bucket of the chart (class ``clamped``)."""

WEEKLY_MAX_DAYS = 560
"""Charts spanning up to 80 weeks count expiries per week; longer ones per calendar month."""

ACTION_ROWS = 50
"""Action plan items rendered as HTML (readable without JavaScript); the script pages through the rest."""

ATTENTION_ROWS = 100
"""Rows of the "servers to look at" table rendered as HTML; the rest is counted (every row is in the CSV/JSON)."""

DAG_TABLES = 10
"""DAGs whose members differ drawn side by side; further ones are listed one line each, up to :data:`DAG_LINES`."""

DAG_LINES = 100

JSON_ROWS_PER_LINE = 500
"""Rows of the JSON block per line of the file (the writer digests the file line by line)."""

DAG_WHY = (
    "Why it matters: clients reach any member of a DAG or site through the load balancer, so every member must "
    "present the same certificate for the shared services (IIS, SMTP, IMAP, POP, connectors, Auth). With "
    "Extended Protection enabled, a member whose certificate differs breaks the channel binding of the clients "
    "it serves, and a certificate renewed on one member only expires on the others. Each server's own "
    "certificates (Exchange's self-signed certificate, internal transport) are not compared."
)


def _e(value: Any) -> str:
    """HTML-escape any value as text or a quoted attribute value; ``None`` becomes an empty string."""
    return "" if value is None else html.escape(str(value), quote=True)


def _short(thumbprint: str | None) -> str:
    return thumbprint[:8] if thumbprint else "-"


def _date(moment: datetime.datetime | None) -> str:
    return moment.date().isoformat() if moment else "-"


def _lane(severity: str | None) -> int:
    return LANE_CODES.get(severity or "ok", LANE_CODES["ok"])


def _web_url(url: Any) -> str | None:
    """A link target only when it is an absolute http(s) URL (never ``javascript:`` or a local path)."""
    if isinstance(url, str) and url.lower().startswith(("https://", "http://")) and not any(c in url for c in "\r\n\0"):
        return url
    return None


# --- the timeline: counts per period and severity -------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Bucket:
    """The certificates of one severity lane expiring within one period (``clamped``: beyond the chart)."""

    x: float
    y: float
    r: float
    severity: str
    count: int
    start: datetime.date
    end: datetime.date
    clamped: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Geometry of the expiry chart: x is the date, one lane (row) per severity, one circle per bucket."""

    width: int
    height: int
    left: int
    top: int
    lane_height: int
    today_x: float
    critical_x: float
    warning_x: float
    period: str
    ticks: tuple[Tick, ...]
    buckets: tuple[Bucket, ...]

    @property
    def right(self) -> int:
        return self.width - 28

    @property
    def bottom(self) -> int:
        return self.top + self.lane_height * len(LANES)

    def lane_y(self, lane: str) -> float:
        return self.top + self.lane_height * (LANES.index(lane) + 0.5)


def _month_starts(start: datetime.date, end: datetime.date, step: int) -> Iterator[datetime.date]:
    year, month = start.year, start.month
    while True:
        month += 1
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        if (month - 1) % step == 0:
            day = datetime.date(year, month, 1)
            if day > end:
                return
            yield day


def _next_month(day: datetime.date) -> datetime.date:
    return datetime.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.timezone.utc)


def build_timeline(report: FleetReport, *, width: int = 1180, lane_height: int = 46) -> Timeline:
    """Count the certificates with a known expiry (pending requests left out) per period and severity."""
    today = _midnight(report.generated_at.date())
    certs = [cert for cert in report.certificates() if cert.not_after and not cert.is_request]
    # A certificate valid until 9999-12-31 (RFC 5280's "no expiration") has no margin after it: shifted() holds it.
    low = max(shifted(min((cert.not_after for cert in certs), default=today), -7 * DAY), today - TIMELINE_PAST)
    low = min(low, today - 30 * DAY)
    high = min(shifted(max((cert.not_after for cert in certs), default=today), 7 * DAY), today + TIMELINE_FUTURE)
    high = max(high, today + 90 * DAY)
    left, right, top = 96, width - 28, 28
    span = (high - low).total_seconds()

    def x_of(moment: datetime.datetime) -> float:
        return round(left + (right - left) * (min(max(moment, low), high) - low).total_seconds() / span, 1)

    weekly = (high - low).days <= WEEKLY_MAX_DAYS

    @functools.lru_cache(maxsize=None)
    def period(day: datetime.date) -> tuple[datetime.date, datetime.date]:
        if weekly:
            start = day - datetime.timedelta(days=day.weekday())
            return start, start + datetime.timedelta(days=6)
        start = day.replace(day=1)
        return start, _next_month(start) - datetime.timedelta(days=1)

    counts: collections.Counter[tuple[str, datetime.date, datetime.date, bool]] = collections.Counter()
    for cert in certs:
        if cert.not_after < low:
            counts[cert.severity_or_ok, low.date(), low.date(), True] += 1
        elif cert.not_after > high:
            counts[cert.severity_or_ok, high.date(), high.date(), True] += 1
        else:
            counts[(cert.severity_or_ok, *period(cert.not_after.date()), False)] += 1

    months = (high.year - low.year) * 12 + high.month - low.month
    step = next(step for step in (1, 2, 3, 6, 12, 24) if months / step <= 12)
    ticks = tuple(
        Tick(x_of(_midnight(day)), day.strftime("%b %Y") if day.month == 1 or step < 12 else str(day.year))
        for day in _month_starts(low.date(), high.date(), step)
    )
    largest = max(counts.values(), default=1)
    smallest, biggest = 3.5, lane_height / 2 - 4

    def lane_y(lane: str) -> float:
        return top + lane_height * (LANES.index(lane) + 0.5)

    buckets = tuple(
        Bucket(
            x=x_of(_midnight(start) + (_midnight(end) + DAY - _midnight(start)) / 2) if not clamped
            else x_of(_midnight(start)),
            y=lane_y(severity),
            r=round(smallest + (biggest - smallest) * (count / largest) ** 0.5, 1),
            severity=severity, count=count, start=start, end=end, clamped=clamped,
        )
        for (severity, start, end, clamped), count in sorted(counts.items(), key=lambda item: (item[0][1], item[0]))
    )
    return Timeline(
        width=width, height=top + lane_height * len(LANES) + 34, left=left, top=top, lane_height=lane_height,
        today_x=x_of(today), critical_x=x_of(today + 30 * DAY), warning_x=x_of(today + 60 * DAY),
        period="week" if weekly else "month", ticks=ticks, buckets=buckets,
    )


def _timeline_svg(timeline: Timeline) -> Iterator[str]:
    t = timeline
    yield (f'<svg class="timeline" viewBox="0 0 {t.width} {t.height}" role="img" '
           f'aria-label="Certificates expiring per {t.period} and severity">\n')
    for index, lane in enumerate(LANES):
        yield (f'<rect class="lane{" alt" if index % 2 else ""}" x="{t.left}" y="{t.top + t.lane_height * index}" '
               f'width="{t.right - t.left}" height="{t.lane_height}"/>'
               f'<text class="lane-label" x="{t.left - 10}" y="{t.lane_y(lane) + 4}" text-anchor="end">{lane}</text>\n')
    height = t.bottom - t.top
    yield (f'<rect class="expired" x="{t.left}" y="{t.top}" width="{max(t.today_x - t.left, 0)}" height="{height}"/>'
           f'<rect class="window-critical" x="{t.today_x}" y="{t.top}" width="{max(t.critical_x - t.today_x, 0)}" '
           f'height="{height}"/><rect class="window-warning" x="{t.critical_x}" y="{t.top}" '
           f'width="{max(t.warning_x - t.critical_x, 0)}" height="{height}"/>\n')
    for tick in t.ticks:
        yield (f'<line class="tick" x1="{tick.x}" x2="{tick.x}" y1="{t.top}" y2="{t.bottom + 4}"/>'
               f'<text x="{tick.x}" y="{t.bottom + 18}" text-anchor="middle">{_e(tick.label)}</text>\n')
    yield (f'<line class="today" x1="{t.today_x}" x2="{t.today_x}" y1="{t.top - 10}" y2="{t.bottom}"/>'
           f'<text x="{t.today_x}" y="{t.top - 14}" text-anchor="middle">today</text>\n')
    for bucket in t.buckets:
        plural = "certificate" if bucket.count == 1 else "certificates"
        if bucket.clamped:
            when = f"{'before' if bucket.x <= t.left else 'after'} {bucket.start.isoformat()} (beyond the chart)"
        else:
            when = f"{bucket.start.isoformat()} to {bucket.end.isoformat()}"
        yield (f'<circle class="bucket {bucket.severity}{" clamped" if bucket.clamped else ""}" cx="{bucket.x}" '
               f'cy="{bucket.y}" r="{bucket.r}" data-count="{bucket.count}"><title>{bucket.count} {bucket.severity} '
               f'{plural} expiring {when}</title></circle>\n')
    yield "</svg>\n"


# --- the action plan and the servers to look at ---------------------------------------------------


class _Strings(dict):
    """Repeated strings of the JSON rows (roles, dates, finding ids, remediations...), sent once: text -> index.

    ``strings[text]`` indexes a text (adding it when new); ``strings(value)`` any value, ``None`` as ``""``.
    """

    def __missing__(self, text: str) -> int:
        index = self[text] = len(self)
        return index

    def __call__(self, value: Any) -> int:
        return self["" if value is None else str(value)]


def _plan_row(item: ActionItem, hosts: Mapping[str, int], strings: _Strings) -> list[Any]:
    return [
        _lane(item.severity), item.title, strings(item.scope), item.thumbprint or "", item.subject or "",
        [hosts.get(server, -1) for server in item.servers], strings(item.action), strings(_web_url(item.url)),
        strings(item.finding_id),
    ]


def _servers_html(servers: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(_e(server) for server in servers[:limit])
    more = f" and {len(servers) - limit} more" if len(servers) > limit else ""
    noun = "server" if len(servers) == 1 else "servers"
    return f'<strong>{len(servers)} {noun}</strong><br><span class="hosts">{shown}{more}</span>'


def _source_html(url: Any) -> str:
    target = _web_url(url)
    if not target:
        return '<span class="muted">-</span>'
    return f'<a href="{_e(target)}" rel="noopener noreferrer" target="_blank">source</a>'


def _plan_html(plan: Sequence[ActionItem]) -> Iterator[str]:
    yield '<section id="action-plan" class="paged" data-rows="plan">\n<h2>Action plan</h2>\n'
    if not plan:
        yield '<p class="muted">Nothing to do: no finding and no server without facts.</p>\n</section>\n'
        return
    noun = "problem" if len(plan) == 1 else "problems"
    yield (f'<p class="lead">{len(plan)} distinct {noun}, worst first. Each is one thing to fix, however many '
           "servers it affects; the first action is the one to take first.</p>\n")
    yield _toolbar("plan", "Filter: problem, server, thumbprint, action", len(plan), "problems")
    yield ('<table id="plan" class="data">\n<colgroup><col class="c-sev"><col class="c-problem"><col class="c-servers">'
           '<col class="c-action"><col class="c-link"></colgroup>\n<thead><tr><th data-key="0"><button>Severity'
           '</button></th><th data-key="1"><button>Problem</button></th><th data-key="5"><button>Servers</button>'
           '</th><th>What to do first</th><th>Source</th></tr></thead>\n<tbody>\n')
    for item in plan[:ACTION_ROWS]:
        severity = LANES[_lane(item.severity)]
        certificate = ""
        if item.thumbprint or item.subject:
            certificate = (f'<br><span class="muted">{_e(subject_cn(item.subject))}</span> '
                           f'<span class="mono muted">{_e(item.thumbprint or "")}</span>')
        yield (f'<tr class="sev-{severity}"><td><span class="badge {severity}">{severity}</span></td>'
               f'<td><strong>{_e(item.title)}</strong>{certificate}<br><code class="muted">{_e(item.finding_id)}'
               f'</code></td><td>{_servers_html(item.servers)}</td><td>{_e(item.action)}</td>'
               f'<td>{_source_html(item.url)}</td></tr>\n')
    yield "</tbody></table>\n"
    if len(plan) > ACTION_ROWS:
        yield (f'<p class="pager"><span class="more">and {len(plan) - ACTION_ROWS} more problems: every finding is in '
               "the CSV and JSON reports.</span></p>\n")
    else:
        yield '<p class="pager"></p>\n'
    yield "</section>\n"


PROBLEM_KINDS = {"not_collected": "not collected", "unavailable_read": "read failed", "probe_failed": "probe failed"}


def host_problems(host: HostView) -> list[tuple[str, str, str]]:
    """(kind, severity, text) of what the report cannot vouch for on one host: no facts, failed reads, probes."""
    return [(PROBLEM_KINDS.get(problem.kind, problem.kind), problem.severity, problem.text)
            for problem in host.problems]


def _attention_html(report: FleetReport) -> Iterator[str]:
    rows = [(host, *problem) for host in report.hosts for problem in host_problems(host)]
    if not rows:
        return
    yield ('<section id="attention">\n<h2>Servers to look at</h2>\n<p class="lead">What this report cannot vouch for: '
           "servers without facts (and why), reads that failed (their facts are unknown, not absent) and TLS probes "
           "that did not pass.</p>\n")
    yield ('<table class="data" id="attention-table"><colgroup><col class="c-host"><col class="c-kind">'
           '<col></colgroup>\n<thead><tr><th>Server</th><th>Problem</th><th>Detail</th></tr></thead><tbody>\n')
    for host, kind, severity, text in rows[:ATTENTION_ROWS]:
        yield (f'<tr class="sev-{severity}"><td>{_e(host.host)}</td><td><span class="badge {severity}">{_e(kind)}'
               f"</span></td><td>{_e(text)}</td></tr>\n")
    yield "</tbody></table>\n"
    if len(rows) > ATTENTION_ROWS:
        yield (f'<p class="muted">and {len(rows) - ATTENTION_ROWS} more: see the Servers table below and the '
               "CSV/JSON reports.</p>\n")
    yield "</section>\n"


# --- summary cards, DAGs --------------------------------------------------------------------------


def _cards_html(report: FleetReport) -> Iterator[str]:
    summary = report.summary
    missing = len(summary.hosts_missing)
    yield '<div class="cards" id="summary">\n'
    yield (f'<div class="card{" critical" if missing else ""}"><div class="label">Servers collected</div>'
           f'<div class="value">{summary.hosts_collected} / {summary.hosts}</div>'
           f'<div class="detail">{missing} not collected</div></div>\n')
    yield (f'<div class="card"><div class="label">Certificates</div><div class="value">{summary.certificates}</div>'
           f'<div class="detail">on {summary.hosts_collected} servers</div></div>\n')
    for severity in SEVERITIES:
        yield (f'<div class="card {severity}"><div class="label">{severity}</div>'
               f'<div class="value">{summary.findings[severity]}</div><div class="detail">findings</div></div>\n')
    earliest = summary.earliest_expiry
    if earliest:
        yield (f'<div class="card {earliest.severity_or_ok}"><div class="label">Earliest expiry</div>'
               f'<div class="value">{_e(earliest.days_remaining)} d</div><div class="detail">'
               f"{_date(earliest.not_after)} &middot; {_e(subject_cn(earliest.subject))} "
               f"on {_e(earliest.host)}</div></div>\n")
    else:
        yield ('<div class="card ok"><div class="label">Earliest expiry</div><div class="value">-</div>'
               '<div class="detail">no certificate</div></div>\n')
    yield "</div>\n"


def _dag_cell(cell: Sequence[CertificateView], odd: bool) -> str:
    parts = ['<td class="odd">' if odd else "<td>"]
    if odd:
        parts.append('<div class="flag">&ne; differs from the other members</div>')
    for cert in cell:
        parts.append(
            f'<div class="cert"><span class="badge {cert.severity_or_ok}">{cert.severity_or_ok}</span> '
            f'<span class="mono">{_e(_short(cert.thumbprint))}</span><br>{_e(subject_cn(cert.subject))} '
            f'<span class="muted">&middot; {_date(cert.not_after)}</span></div>'
        )
    if not cell:
        parts.append('<div class="muted">none</div>')
    parts.append("</td>")
    return "".join(parts)


def _dag_table(dag: DagView) -> Iterator[str]:
    yield f'<h3>{_e(dag.name)}'
    if dag.mismatched_roles:
        yield f' <span class="badge critical">members differ: {_e(", ".join(dag.mismatched_roles))}</span>'
    yield "</h3>\n"
    if dag.nodes_not_reported:
        yield (f'<p class="callout">Cluster nodes without facts in this report: '
               f'{_e(", ".join(dag.nodes_not_reported))}</p>\n')
    members = len(dag.members)
    yield (f'<table class="dag data" data-dag="{_e(dag.name)}" style="min-width: {170 + 170 * members}px">'
           f'<colgroup><col class="c-role">{"<col>" * members}</colgroup>\n<thead><tr><th>Role</th>')
    yield "".join(f"<th>{_e(member.host)}</th>" for member in dag.members)
    yield "</tr></thead>\n<tbody>\n"
    for row in dag.rows:
        cells = "".join(_dag_cell(cell, index in row.odd) for index, cell in enumerate(row.cells))
        yield (f'<tr class="{"mismatch" if row.mismatch else ""}" data-role="{_e(row.role)}">'
               f'<td class="role">{_e(row.role)}</td>{cells}</tr>\n')
    yield "</tbody></table>\n"


def _dags_html(dags: Sequence[DagView]) -> Iterator[str]:
    if not dags:
        return
    differing = [dag for dag in dags if dag.mismatched_roles]
    yield '<section id="dags">\n<h2>Database availability groups</h2>\n'
    yield (f'<p class="lead">{len(dags)} DAG(s); in {len(differing)} the members do not all hold the same '
           "certificate for a shared role.</p>\n")
    yield f'<p class="why">{_e(DAG_WHY)}</p>\n'
    for dag in (differing or dags)[:DAG_TABLES]:
        yield from _dag_table(dag)
    rest = differing[DAG_TABLES:]
    if rest:
        yield (f'<h3>{len(rest)} more DAGs whose members differ</h3>\n<table class="data"><colgroup>'
               '<col class="c-host"><col><col></colgroup><thead><tr><th>DAG</th><th>Roles that differ</th>'
               "<th>Members</th></tr></thead><tbody>\n")
        for dag in rest[:DAG_LINES]:
            yield (f"<tr><td>{_e(dag.name)}</td><td>{_e(', '.join(dag.mismatched_roles))}</td>"
                   f"<td>{_e(', '.join(member.host for member in dag.members))}</td></tr>\n")
        yield "</tbody></table>\n"
        if len(rest) > DAG_LINES:
            yield f'<p class="muted">and {len(rest) - DAG_LINES} more: see "dags" in the JSON report.</p>\n'
    yield "</section>\n"


# --- the large tables: compact JSON rendered on demand --------------------------------------------


def _toolbar(table: str, placeholder: str, total: int, noun: str) -> str:
    options = "".join(f'<option value="{lane}">{lane}</option>' for lane in LANES)
    return (f'<div class="toolbar"><input type="search" class="filter" placeholder="{_e(placeholder)}" '
            f'aria-label="Filter {noun}" aria-controls="{table}" size="{len(placeholder) + 2}">'
            f'<select class="severity" aria-label="Severity"><option value="">All severities</option>{options}'
            f'</select><span id="{"filter" if table == "certificates" else table}-count" class="count muted">'
            f"{total} {noun}</span></div>\n")


def _paged_section(section: str, title: str, table: str, placeholder: str, total: int, noun: str,
                   columns: Sequence[tuple[str, str, str]], lead: str = "") -> str:
    """A section whose table body the script fills from the JSON block; ``columns``: (label, key, col class)."""
    colgroup = "".join(f'<col class="{css}">' for _label, _key, css in columns)
    heads = "".join(
        f'<th data-key="{key}"{" class=num" if css == "c-num" else ""}><button>{label}</button></th>' if key
        else f"<th>{label}</th>"
        for label, key, css in columns
    )
    return (
        f'<section id="{section}" class="paged" data-rows="{table}">\n<h2>{title}</h2>\n{lead}'
        f"{_toolbar(table, placeholder, total, noun)}"
        f'<table id="{table}" data-sortable="no" class="data"><colgroup>{colgroup}</colgroup>\n'
        f"<thead><tr>{heads}</tr></thead>\n"
        f'<tbody><tr class="placeholder"><td colspan="{len(columns)}"><noscript>This table is drawn by the '
        f"page's script, which is off: the same {noun} are in the CSV and JSON reports.</noscript></td></tr>"
        f'</tbody></table>\n<p class="pager"></p>\n</section>\n'
    )


CERTIFICATE_COLUMNS = (
    ("Server", "0", "c-auto"), ("Subject", "1", "c-auto"), ("Roles", "2", "c-auto"),
    ("Expires", "3", "c-date"), ("Days", "4", "c-num"), ("Severity", "5", "c-sev"), ("Findings", "6", "c-auto"),
    ("Thumbprint", "7", "c-thumb"), ("Issuer", "8", "c-auto"), ("Key", "9", "c-key"), ("Store", "10", "c-store"),
)
FINDING_COLUMNS = (
    ("Severity", "1", "c-sev"), ("Server", "0", "c-host"), ("Finding", "2", "c-finding"),
    ("Certificate", "4", "c-cert"), ("Message", "5", "c-message"), ("Remediation", "", "c-remediation"),
)
SERVER_COLUMNS = (
    ("Server", "0", "c-host"), ("Exchange", "2", "c-product"), ("Site", "4", "c-site"), ("DAG", "5", "c-dag"),
    ("Certificates", "6", "c-num"), ("Critical", "7", "c-num"), ("Warning", "8", "c-num"), ("Info", "9", "c-num"),
    ("Status", "10", "c-status"),
)


def _certificate_rows(report: FleetReport, hosts: Mapping[str, int], issuers: dict[str, int],
                      strings: _Strings) -> Iterator[list[Any]]:
    """A row per certificate, in the columns' order; texts that repeat (roles, dates, keys...) as indexes.

    The model checked the certificates' types (docs/facts.md), so the values go into the row as they are.
    """
    for host in report.hosts:
        host_index = hosts[host.host]
        for cert in host.certificates:
            data = cert.data
            key = " ".join([str(part) for part in (data.get("key_type"), data.get("key_size")) if part is not None])
            yield [
                host_index, cert.subject, strings[", ".join(cert.roles)], strings[_date(cert.not_after)],
                cert.days_remaining, LANE_CODES[cert.severity or "ok"], strings[", ".join(cert.finding_ids)],
                cert.thumbprint, issuers.setdefault(data.get("issuer") or "", len(issuers)), strings[key],
                strings[data.get("store") or ""],
            ]


def _finding_rows(report: FleetReport, hosts: Mapping[str, int], strings: _Strings) -> Iterator[list[Any]]:
    for host in report.hosts:
        subjects = {cert.thumbprint: cert.subject for cert in host.certificates}
        for finding in host.findings:
            thumbprint = finding.get("thumbprint") or ""
            yield [
                hosts[host.host], _lane(finding["severity"]), strings(finding["id"]), thumbprint,
                subject_cn(subjects.get(thumbprint)) if thumbprint else "", str(finding.get("message") or ""),
                strings(finding.get("remediation")),
                strings(_web_url(finding.get("url") or finding_url(finding["id"]))),
            ]


def _server_rows(report: FleetReport, hosts: Mapping[str, int], strings: _Strings) -> Iterator[list[Any]]:
    for host in report.hosts:
        counts = host.finding_counts()
        problems = host_problems(host)
        probes = host.probes
        status = "; ".join(text for _kind, _severity, text in problems) or "collected"
        if probes and host.collected:
            passed = sum(probe_problem(result) is None for result in probes.values())
            status += f" ({passed}/{len(probes)} probes passed)" if status == "collected" else ""
        worst = next((severity for severity in SEVERITIES if counts[severity]), None)
        if problems:
            worst = min((worst, *(severity for _k, severity, _t in problems)), key=_lane)
        server = host.server
        yield [
            hosts[host.host], host.server_name if host.server_name != host.host else "",
            strings(server.get("product")), strings(server.get("version")), strings(server.get("site")),
            strings(host.dag), len(host.certificates) if host.collected else None,
            counts["critical"], counts["warning"], counts["info"], status, _lane(worst), int(host.collected),
        ]


_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _json(value: Any) -> str:
    """JSON safe inside a script element: ASCII only (so U+2028/U+2029 are escaped) and no ``<``, ``>``, ``&``."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).translate(_JSON_ESCAPES)


def _json_array(name: str, rows: Iterable[list[Any]]) -> Iterator[str]:
    """``"name":[row,row,...]`` in lines of :data:`JSON_ROWS_PER_LINE` rows."""
    yield f'"{name}":['
    batch: list[list[Any]] = []
    first = True
    for row in rows:
        batch.append(row)
        if len(batch) == JSON_ROWS_PER_LINE:
            yield ("" if first else ",") + _json(batch)[1:-1] + "\n"
            batch, first = [], False
    if batch:
        yield ("" if first else ",") + _json(batch)[1:-1] + "\n"
    yield "]"


def _data_block(report: FleetReport, plan: Sequence[ActionItem]) -> Iterator[str]:
    hosts = {host.host: index for index, host in enumerate(report.hosts)}
    issuers: dict[str, int] = {}
    strings = _Strings()
    yield '<script type="application/json" id="report-data">{"v":1,\n'
    yield '"hosts":' + _json([host.host for host in report.hosts]) + ",\n"
    yield from _json_array("plan", (_plan_row(item, hosts, strings) for item in plan))
    yield ",\n"
    yield from _json_array("certificates", _certificate_rows(report, hosts, issuers, strings))
    yield ",\n"
    yield '"issuers":' + _json([[subject_cn(issuer) if issuer else "-", issuer] for issuer in issuers]) + ",\n"
    yield from _json_array("findings", _finding_rows(report, hosts, strings))
    yield ",\n"
    yield from _json_array("servers", _server_rows(report, hosts, strings))
    yield ',\n"strings":' + _json(list(strings)) + "}</script>\n"


# --- the certificate stories (with a ledger) -----------------------------------------------------

STORY_CERTIFICATES = 500
"""Certificate stories rendered in the page (each a collapsed section); the CSV and JSON have every one."""

_STORY_STYLE = (
    "#stories details { border: 1px solid #d9dee7; border-radius: 6px; margin: .4rem 0; padding: .3rem .6rem; }\n"
    "#stories summary { cursor: pointer; }\n"
    "#stories table { margin: .4rem 0; font-size: .9em; }\n"
    "#stories td, #stories th { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid #eef1f5; "
    "vertical-align: top; }\n"
)


def _stories_html(ledger: Any) -> Iterator[str]:
    """One collapsible section per renewed certificate: its steps in time order (who, when, where, how)."""
    from ansible_collections.exchange.pki.plugins.plugin_utils._report_stories import (  # noqa: PLC0415
        step_detail,
        step_thumbprint,
    )

    yield (f'<section id="stories">\n<style>\n{_STORY_STYLE}</style>\n<h2>Certificate stories</h2>\n'
           f'<p class="lead">From the audit ledger: {_e(ledger.note())}. Each certificate\'s requests, issue, import, '
           "bindings, verification and removal, with who did each step and when.</p>\n")
    if not ledger.stories:
        yield '<p class="muted">No renewal is recorded in the ledger.</p>\n</section>\n'
        return
    for story in ledger.stories[:STORY_CERTIFICATES]:
        subject = f" {_e(subject_cn(story.subject))}" if story.subject else ""
        thumbprint = f' <span class="mono muted">{_e(story.thumbprint)}</span>' if story.thumbprint else ""
        last = story.steps[-1]["time"] if story.steps else ""
        yield (f'<details class="story"><summary><strong>{_e(story.identity)}</strong>{subject}{thumbprint} '
               f'&middot; {_e(story.stage)} &middot; {len(story.steps)} step(s), the latest {_e(last)}</summary>\n'
               "<table><thead><tr><th>When</th><th>Stage</th><th>Server</th><th>Who</th><th>Result</th>"
               "<th>Certificate</th><th>Detail</th></tr></thead>\n<tbody>\n")
        for step in story.steps:
            result = str(step["result"])
            badge = "critical" if result == "failed" else "ok"
            yield (f'<tr><td><time datetime="{_e(step["time"])}">{_e(step["time"])}</time></td>'
                   f'<td>{_e(step["stage"])}</td><td>{_e(step["server"])}</td><td>{_e(step["who"] or "")}</td>'
                   f'<td><span class="badge {badge}">{_e(result)}</span></td>'
                   f'<td class="mono">{_e(step_thumbprint(step) or "")}</td><td>{_e(step_detail(step))}</td></tr>\n')
        yield "</tbody></table></details>\n"
    if len(ledger.stories) > STORY_CERTIFICATES:
        yield (f'<p class="muted">and {len(ledger.stories) - STORY_CERTIFICATES} more certificates: every story is in '
               "the CSV (exchange_pki_ledger.csv) and JSON reports.</p>\n")
    yield "</section>\n"


# --- the page -------------------------------------------------------------------------------------


def render_html(report: FleetReport) -> Iterator[str]:
    """Stream the HTML report as text chunks; the one volatile line starts ``<p class="generated"``."""
    plan = report.action_plan
    generated = format_utc_datetime(report.generated_at)
    yield ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
           '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
           '<meta name="generator" content="exchange.pki">\n'
           f"<title>{_e(report.title)}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n"
           f"<header>\n<h1>{_e(report.title)}</h1>\n")
    yield (f'<p class="generated">Generated <time datetime="{_e(generated)}">{_e(generated)}</time>, '
           f"{_e(collection_note(report))}</p>\n</header>\n<main>\n")
    yield from _plan_html(plan)
    yield from _cards_html(report)
    yield from _attention_html(report)
    yield '<section id="timeline">\n<h2>Expiry timeline</h2>\n'
    timeline = build_timeline(report)
    yield from _timeline_svg(timeline)
    legend = "".join(f'<span class="{lane}">{lane}</span>' for lane in LANES)
    yield (f'<div class="legend">{legend}<span class="note">one circle per {timeline.period} and severity, its area '
           "the number of certificates expiring then; shaded: expired, under 30 days, under 60 days; dashed: beyond "
           "the chart, counted at its edge</span></div>\n</section>\n")
    yield from _dags_html(report.dags())
    summary = report.summary
    yield _paged_section(
        "findings", "Findings", "findings-table", "Filter: server, finding, certificate, message",
        sum(summary.findings.values()), "findings", FINDING_COLUMNS,
    )
    yield _paged_section(
        "servers", "Servers", "servers-table", "Filter: server, version, site, DAG, status", summary.hosts,
        "servers", SERVER_COLUMNS,
    )
    yield _paged_section(
        "inventory", "Certificates", "certificates", "Filter: server, subject, thumbprint, role, finding",
        summary.certificates, "certificates", CERTIFICATE_COLUMNS,
    )
    if report.ledger is not None:
        yield from _stories_html(report.ledger)
    yield ("</main>\n<footer>exchange.pki fleet report &middot; the same data is written as CSV, JSON, Markdown and a "
           "Prometheus textfile.</footer>\n")
    yield from _data_block(report, plan)
    yield f"<script>\n{SCRIPT}</script>\n</body>\n</html>\n"
