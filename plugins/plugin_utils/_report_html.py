# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The self-contained HTML fleet report (inline CSS, inline vanilla JavaScript, inline SVG; no external asset).

The template is rendered by Jinja2 with autoescaping, so every value from the facts is HTML-escaped; the only
values marked safe are the numbers of the timeline's geometry, computed here. The report streams
(``Template.generate``), so a fleet of any size renders without building the page in memory.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
from collections.abc import Iterator, Sequence

import jinja2

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import common_name
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import SEVERITIES, SEVERITY_RANK
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    CertificateView,
    FleetReport,
    collection_note,
    expiry_date,
    short_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime

LANES = (*SEVERITIES, "ok")
"""Timeline lanes, one per severity plus certificates without findings."""

DAY = datetime.timedelta(days=1)
TIMELINE_PAST = 365 * DAY
TIMELINE_FUTURE = 3 * 365 * DAY
"""Expiries further away than this are drawn on the window's edge (class ``clamped``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Marker:
    x: float
    y: float
    severity: str
    clamped: bool
    cert: CertificateView


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Geometry of the expiry chart: x is the date, one lane (row) per severity."""

    width: int
    height: int
    left: int
    top: int
    lane_height: int
    today_x: float
    critical_x: float
    warning_x: float
    ticks: tuple[Tick, ...]
    markers: Sequence[Marker]

    @property
    def right(self) -> int:
        return self.width - 16

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


def _jitter(cert: CertificateView, spread: float) -> float:
    """A stable vertical offset in [-spread, spread] so markers of the same day do not hide each other."""
    digest = hashlib.blake2b(f"{cert.host}\0{cert.thumbprint}".encode(), digest_size=2).digest()
    return (int.from_bytes(digest, "big") / 0xFFFF * 2 - 1) * spread


def build_timeline(report: FleetReport, *, width: int = 1180, lane_height: int = 46) -> Timeline:
    """Place one marker per certificate with a known expiry (pending requests left out)."""
    today = datetime.datetime.combine(report.generated_at.date(), datetime.time(), tzinfo=datetime.timezone.utc)
    certs = [cert for cert in report.certificates() if cert.not_after and not cert.is_request]
    expiries = [cert.not_after for cert in certs]
    low = max(min([*expiries, today - 30 * DAY]) - 7 * DAY, today - TIMELINE_PAST)
    high = min(max([*expiries, today + 90 * DAY]) + 7 * DAY, today + TIMELINE_FUTURE)
    left, right, top = 96, width - 16, 28
    span = (high - low).total_seconds()

    def x_of(moment: datetime.datetime) -> float:
        return round(left + (right - left) * (moment - low).total_seconds() / span, 1)

    months = (high.year - low.year) * 12 + high.month - low.month
    step = next(step for step in (1, 2, 3, 6, 12, 24) if months / step <= 12)
    ticks = tuple(
        Tick(x_of(datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.timezone.utc)),
             day.strftime("%b %Y") if day.month == 1 or step < 12 else str(day.year))
        for day in _month_starts(low.date(), high.date(), step)
    )
    spread = lane_height / 2 - 8
    timeline = Timeline(
        width=width, height=top + lane_height * len(LANES) + 34, left=left, top=top, lane_height=lane_height,
        today_x=x_of(today), critical_x=x_of(today + 30 * DAY), warning_x=x_of(today + 60 * DAY),
        ticks=ticks, markers=(),
    )
    markers = [
        Marker(
            x=x_of(min(max(cert.not_after, low), high)),
            y=round(timeline.lane_y(cert.severity_or_ok) + _jitter(cert, spread), 1),
            severity=cert.severity_or_ok,
            clamped=not low <= cert.not_after <= high,
            cert=cert,
        )
        for cert in certs
    ]
    return dataclasses.replace(timeline, markers=markers)


def _severity_rank(severity: str | None) -> int:
    """Sort key of the certificate table: higher is more severe, 0 for a certificate without findings."""
    return len(SEVERITIES) - SEVERITY_RANK.get(severity or "", len(SEVERITIES))


def _cn(subject: str) -> str:
    """The first CN of a subject (the whole subject when it has none)."""
    return common_name(subject) or subject or "-"


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(short=short_thumbprint, cn=_cn, expiry=expiry_date, rank=_severity_rank)
    return environment.from_string(TEMPLATE)


def render_html(report: FleetReport) -> Iterator[str]:
    """Stream the HTML report as plain strings (Jinja2 yields Markup, which would escape what it is joined to)."""
    chunks = _template().generate(
        report=report,
        summary=report.summary,
        severities=SEVERITIES,
        lanes=LANES,
        generated_at=format_utc_datetime(report.generated_at),
        collected=collection_note(report),
        timeline=build_timeline(report),
        dags=report.dags(),
        findings=report.findings_by_severity(),
    )
    return map(str, chunks)


TEMPLATE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="exchange.pki">
<title>{{ report.title }}</title>
<style>
:root {
  --ink: #1d2433; --muted: #5b6577; --line: #dfe3ea; --bg: #f4f6f9; --card: #ffffff; --brand: #17324d;
  --critical: #c62828; --critical-bg: #fdecea; --warning: #e07b00; --warning-bg: #fff4e0;
  --info: #1e63b5; --info-bg: #e8f0fb; --ok: #2e7d32; --ok-bg: #e9f5ea;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "Segoe UI", system-ui, -apple-system, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: linear-gradient(120deg, #0f2438, var(--brand) 60%, #23517a); color: #fff; padding: 22px 32px; }
header h1 { margin: 0; font-size: 24px; font-weight: 600; letter-spacing: .2px; }
header .generated { margin: 4px 0 0; color: #c5d3e2; font-size: 13px; }
main { padding: 22px 32px 40px; max-width: 1500px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 22px;
          margin: 0 0 20px; box-shadow: 0 1px 2px rgba(16, 24, 40, .04); overflow-x: auto; }
h2 { font-size: 17px; margin: 0 0 12px; font-weight: 600; }
h3 { font-size: 14px; margin: 14px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 14px; margin-bottom: 20px;
  }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px;
        border-top: 4px solid var(--brand); }
.card .value { font-size: 26px; font-weight: 650; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .6px; }
.card .detail { color: var(--muted); font-size: 12px; margin-top: 2px; overflow-wrap: anywhere; }
.card.critical { border-top-color: var(--critical); } .card.critical .value { color: var(--critical); }
.card.warning { border-top-color: var(--warning); } .card.warning .value { color: var(--warning); }
.card.info { border-top-color: var(--info); } .card.info .value { color: var(--info); }
.card.ok { border-top-color: var(--ok); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
         white-space: nowrap; }
.badge.critical { background: var(--critical); color: #fff; }
.badge.warning { background: var(--warning); color: #fff; }
.badge.info { background: var(--info); color: #fff; }
.badge.ok { background: var(--ok-bg); color: var(--ok); }
.badge.missing { background: #eceff3; color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .5px; background: #f8f9fb; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: "Cascadia Mono", Consolas, "DejaVu Sans Mono", monospace; font-size: 12px; }
.muted { color: var(--muted); }
.nowrap { white-space: nowrap; }
td.thumb { font-size: 11px; word-break: break-all; min-width: 150px; }
.callout { border-left: 4px solid var(--warning); background: var(--warning-bg); padding: 10px 14px;
  border-radius: 6px; }
.toolbar { display: flex; gap: 10px; align-items: center; margin-bottom: 10px; flex-wrap: wrap; }
.toolbar input, .toolbar select { font: inherit; padding: 6px 10px; border: 1px solid #c9cfd9; border-radius: 6px; }
.toolbar input { min-width: 320px; }
#certificates th button { all: unset; cursor: pointer; }
#certificates th button::after { content: " \\2195"; color: #b3bac6; }
#certificates th[aria-sort="ascending"] button::after { content: " \\2191"; color: var(--ink); }
#certificates th[aria-sort="descending"] button::after { content: " \\2193"; color: var(--ink); }
#certificates tbody tr:hover { background: #f7f9fc; }
tr.sev-critical td:first-child { box-shadow: inset 3px 0 var(--critical); }
tr.sev-warning td:first-child { box-shadow: inset 3px 0 var(--warning); }
tr.sev-info td:first-child { box-shadow: inset 3px 0 var(--info); }
.timeline { width: 100%; height: auto; display: block; }
.timeline .lane { fill: #fafbfc; } .timeline .lane.alt { fill: #f3f5f8; }
.timeline .expired { fill: var(--critical-bg); opacity: .7; }
.timeline .window-critical { fill: var(--critical-bg); opacity: .45; }
.timeline .window-warning { fill: var(--warning-bg); opacity: .8; }
.timeline .tick { stroke: #d5dae2; } .timeline .today { stroke: var(--ink); stroke-width: 1.5; stroke-dasharray: 4
3;
  }
.timeline text { font-size: 11px; fill: var(--muted); } .timeline text.lane-label { font-size: 12px;
  fill: var(--ink); }
.timeline .marker { stroke: #fff; stroke-width: 1; fill-opacity: .9; }
.timeline .marker.critical { fill: var(--critical); } .timeline .marker.warning { fill: var(--warning); }
.timeline .marker.info { fill: var(--info); } .timeline .marker.ok { fill: var(--ok); }
.timeline .marker.clamped { stroke: var(--ink); stroke-dasharray: 2 1; }
.legend { display: flex; gap: 16px; color: var(--muted); font-size: 12px; margin-top: 6px; }
.legend .note { margin-left: auto; }
.legend span:not(.note)::before { content: ""; display: inline-block; width: 10px; height: 10px; border-radius: 50%;
                       margin-right: 5px; vertical-align: -1px; background: currentColor; }
.legend .critical { color: var(--critical); } .legend .warning { color: var(--warning); }
.legend .info { color: var(--info); } .legend .ok { color: var(--ok); }
details { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; }
details > summary { cursor: pointer; padding: 8px 12px; font-weight: 600; }
details > table { border-top: 1px solid var(--line); table-layout: fixed; }
details > table th:nth-child(1) { width: 20%; } details > table th:nth-child(2) { width: 24%; }
details > table th:nth-child(3) { width: 30%; }
.group-critical h3 { color: var(--critical); } .group-warning h3 { color: var(--warning); }
.group-info h3 { color: var(--info); }
.dag td { min-width: 200px; }
.dag td.role { min-width: 150px; font-weight: 600; }
.dag .cert { padding: 4px 0; }
.dag tr.mismatch td.role { color: var(--critical); }
.dag td.odd { background: var(--critical-bg); outline: 2px solid var(--critical); outline-offset: -2px; }
.dag td.odd .flag { color: var(--critical); font-weight: 700; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
</style>
</head>
<body>
<header>
<h1>{{ report.title }}</h1>
<p class="generated">Generated <time datetime="{{ generated_at }}">{{ generated_at }}</time>, {{ collected }}</p>
</header>
<main>
<div class="cards" id="summary">
  <div class="card"><div class="label">Servers</div>
<div class="value">{{ summary.hosts_collected }} / {{ summary.hosts }}</div>
    <div class="detail">{{ summary.hosts_missing | length }} not collected</div></div>
  <div class="card"><div class="label">Certificates</div><div class="value">{{ summary.certificates }}</div>
    <div class="detail">on {{ summary.hosts_collected }} servers</div></div>
{% for severity in severities %}
  <div class="card {{ severity }}"><div class="label">{{ severity }}</div>
<div class="value">{{ summary.findings[severity] }}</div>
    <div class="detail">findings</div></div>
{% endfor %}
{% set earliest = summary.earliest_expiry %}
  <div class="card {{ earliest.severity_or_ok if earliest else 'ok' }}"><div class="label">Earliest expiry</div>
    <div class="value">{% if earliest %}{{ earliest.days_remaining }} d{% else %}-{% endif %}</div>
    <div class="detail">{% if earliest %}{{ earliest | expiry }} &middot; {{ earliest.subject | cn }} on
{{ earliest.host }}{% else %}no certificate{% endif %}</div>
</div>
</div>
{% if summary.hosts_missing %}
<section id="missing">
<h2>Servers not collected</h2>
<p class="callout">No facts for {{ summary.hosts_missing | length }} server(s), for example unreachable during the
inventory: <strong>{{ summary.hosts_missing | join(', ') }}</strong>. Their certificates are not in this report.</p>
</section>
{% endif %}
<section id="timeline">
<h2>Expiry timeline</h2>
<svg class="timeline" viewBox="0 0 {{ timeline.width }} {{ timeline.height }}" role="img"
aria-label="Certificate expiry dates by severity">
{% for lane in lanes %}
<rect class="lane{{ ' alt' if loop.index is even }}" x="{{ timeline.left }}"
y="{{ timeline.top + timeline.lane_height * loop.index0 }}" width="{{ timeline.right - timeline.left }}"
height="{{ timeline.lane_height }}"/>
<text class="lane-label" x="{{ timeline.left - 10 }}" y="{{ timeline.lane_y(lane) + 4 }}"
text-anchor="end">{{ lane }}</text>
{% endfor %}
<rect class="expired" x="{{ timeline.left }}" y="{{ timeline.top }}"
width="{{ [timeline.today_x - timeline.left, 0] | max }}" height="{{ timeline.bottom - timeline.top }}"/>
<rect class="window-critical" x="{{ timeline.today_x }}" y="{{ timeline.top }}"
width="{{ [timeline.critical_x - timeline.today_x, 0] | max }}" height="{{ timeline.bottom - timeline.top }}"/>
<rect class="window-warning" x="{{ timeline.critical_x }}" y="{{ timeline.top }}"
width="{{ [timeline.warning_x - timeline.critical_x, 0] | max }}" height="{{ timeline.bottom - timeline.top }}"/>
{% for tick in timeline.ticks %}
<line class="tick" x1="{{ tick.x }}" x2="{{ tick.x }}" y1="{{ timeline.top }}" y2="{{ timeline.bottom + 4 }}"/>
<text x="{{ tick.x }}" y="{{ timeline.bottom + 18 }}" text-anchor="middle">{{ tick.label }}</text>
{% endfor %}
<line class="today" x1="{{ timeline.today_x }}" x2="{{ timeline.today_x }}" y1="{{ timeline.top - 10 }}"
y2="{{ timeline.bottom }}"/>
<text x="{{ timeline.today_x }}" y="{{ timeline.top - 14 }}" text-anchor="middle">today</text>
{% for m in timeline.markers %}
<circle class="marker {{ m.severity }}{{ ' clamped' if m.clamped }}" cx="{{ m.x }}" cy="{{ m.y }}" r="5">
<title>{{ m.cert.host }}: {{ m.cert.subject }} &middot; expires {{ m.cert | expiry }} ({{ m.cert.days_remaining }}
d) &middot; {{ m.cert.thumbprint }}</title>
</circle>
{% endfor %}
</svg>
<div class="legend">{% for lane in lanes %}<span class="{{ lane }}">{{ lane }}</span>{% endfor %}<span
class="note">shaded: expired, under 30 days, under 60 days; dashed outline: beyond the chart, drawn at its
edge</span>
</div>
</section>
<section id="findings">
<h2>Findings</h2>
{% for severity, per_host in findings %}
<div class="group-{{ severity }}" data-severity="{{ severity }}">
<h3>{{ severity | capitalize }} ({{ summary.findings[severity] }})</h3>
{% for host, host_findings in per_host %}
<details{{ ' open' if severity != 'info' }}>
<summary>{{ host.host }} <span class="muted">({{ host_findings | length }})</span></summary>
<table><thead><tr><th>Finding</th><th>Certificate</th><th>Message</th><th>Remediation</th></tr></thead><tbody>
{% for finding in host_findings %}
{% set cert = host.certificate(finding.thumbprint) %}
<tr><td><code>{{ finding.id }}</code></td><td>{% if cert %}{{ cert.subject | cn }}<br>
<span class="mono muted">{{ cert.thumbprint | short }} &middot;
{{ cert | expiry }}</span>{% elif finding.thumbprint %}<span
class="mono">{{ finding.thumbprint | short }}</span>{% else %}<span class="muted">server</span>{% endif %}</td>
<td>{{ finding.message }}</td><td>{{ finding.remediation }}</td></tr>
{% endfor %}
</tbody></table>
</details>
{% endfor %}
</div>
{% else %}
<p class="muted">No findings.</p>
{% endfor %}
</section>
{% if dags %}
<section id="dags">
<h2>Database availability groups</h2>
{% for dag in dags %}
<h3>{{ dag.name }}
{% if dag.mismatched_roles %}<span class="badge critical">members differ: {{ dag.mismatched_roles | join(', ') }}</span>
{% endif %}</h3>
{% if dag.nodes_not_reported %}<p class="callout">Cluster nodes without facts in this report:
{{ dag.nodes_not_reported | join(', ') }}</p>{% endif %}
<table class="dag" data-dag="{{ dag.name }}">
<thead><tr><th>Role</th>{% for member in dag.members %}<th>{{ member.host }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in dag.rows %}
<tr class="{{ 'mismatch' if row.mismatch }}" data-role="{{ row.role }}"><td class="role">{{ row.role }}</td>
{% for cell in row.cells %}
<td class="{{ 'odd' if loop.index0 in row.odd }}">{% if loop.index0 in row.odd %}<span class="flag">&ne;
differs</span>{% endif %}
{% for cert in cell %}<div class="cert">
<span class="badge {{ cert.severity_or_ok }}">{{ cert.severity_or_ok }}</span> <span
class="mono">{{ cert.thumbprint | short }}</span>
<br>{{ cert.subject | cn }} <span class="muted">&middot; {{ cert | expiry }}</span>
</div>{% else %}<span class="muted">none</span>{% endfor %}</td>
{% endfor %}
</tr>
{% endfor %}
</tbody></table>
{% endfor %}
</section>
{% endif %}
<section id="servers">
<h2>Servers</h2>
<table><thead><tr><th>Server</th><th>Exchange</th><th>Site</th><th>DAG</th>
<th class="num">Certificates</th>{% for severity in severities %}<th
class="num">{{ severity }}</th>{% endfor %}<th>Collected</th>
</tr></thead><tbody>
{% for host in report.hosts %}
<tr>
<td>{{ host.host }}{% if host.server_name != host.host %} <span
class="muted">({{ host.server_name }})</span>{% endif %}</td>
{% if host.collected %}
<td>{{ host.server.product or '-' }} <span class="muted mono">{{ host.server.version or '' }}</span></td>
<td>{{ host.server.site or '-' }}</td><td>{{ host.dag or '-' }}</td>
<td class="num">{{ host.certificates | length }}</td>
{% set counts = host.finding_counts() %}{% for severity in severities %}<td
class="num">{% if counts[severity] %}<span
class="badge {{ severity }}">{{ counts[severity] }}</span>{% else %}0{% endif %}</td>{% endfor %}
<td><span class="badge ok">collected</span></td>
{% else %}
<td colspan="{{ 4 + severities | length }}" class="muted">no facts</td><td>
<span class="badge missing">not collected</span></td>
{% endif %}
</tr>
{% endfor %}
</tbody></table>
</section>
<section id="inventory">
<h2>Certificates</h2>
<div class="toolbar">
<input id="filter-text" type="search" placeholder="Filter: server, subject, thumbprint, role, finding..."
aria-label="Filter certificates">
<select id="filter-severity" aria-label="Severity">
<option value="">All severities</option>{% for lane in lanes %}<option
value="{{ lane }}">{{ lane }}</option>{% endfor %}</select>
<span id="filter-count" class="muted">{{ summary.certificates }} certificates</span>
</div>
<table id="certificates">
<thead><tr>
<th data-type="text"><button>Server</button></th><th data-type="text"><button>Subject</button></th>
<th data-type="text"><button>Roles</button></th>
<th data-type="text"><button>Expires</button></th><th data-type="number" class="num"><button>Days</button></th>
<th data-type="number"><button>Severity</button></th>
<th data-type="text"><button>Findings</button></th><th data-type="text"><button>Thumbprint</button></th>
<th data-type="text"><button>Issuer</button></th>
<th data-type="text"><button>Key</button></th><th data-type="text"><button>Store</button></th>
</tr></thead>
<tbody>
{% for cert in report.certificates() %}
<tr class="sev-{{ cert.severity_or_ok }}" data-severity="{{ cert.severity_or_ok }}"><td>{{ cert.host }}</td>
<td>{{ cert.subject }}</td><td>{{ cert.roles | join(', ') }}</td>
<td class="nowrap" data-sort="{{ cert.data.not_after or '' }}">{{ cert | expiry }}</td>
<td class="num">{{ cert.days_remaining if cert.days_remaining is not none else '-' }}</td>
<td data-sort="{{ cert.severity | rank }}">
<span class="badge {{ cert.severity_or_ok }}">{{ cert.severity_or_ok }}</span></td>
<td>{{ cert.finding_ids | join(', ') }}</td><td class="mono thumb">{{ cert.thumbprint }}</td>
<td title="{{ cert.data.issuer or '' }}">{{ (cert.data.issuer or '-') | cn }}</td>
<td>{{ cert.data.key_type or '-' }} {{ cert.data.key_size or '' }}</td><td>{{ cert.data.store or '-' }}</td></tr>
{% endfor %}
</tbody>
</table>
</section>
</main>
<footer>exchange.pki fleet report &middot; the same data is written as CSV, JSON, Markdown and a Prometheus
textfile.</footer>
<script>
(function () {
  "use strict";
  var table = document.getElementById("certificates");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
  var search = document.getElementById("filter-text");
  var severity = document.getElementById("filter-severity");
  var count = document.getElementById("filter-count");

  function applyFilter() {
    var query = search.value.trim().toLowerCase(), wanted = severity.value, shown = 0;
    rows.forEach(function (row, index) {
      var visible = (!query || texts[index].indexOf(query) !== -1) && (!wanted || row.dataset.severity === wanted);
      row.hidden = !visible;
      if (visible) { shown += 1; }
    });
    count.textContent = shown + " of " + rows.length + " certificates";
  }

  function sortKey(row, column, numeric) {
    var cell = row.cells[column];
    var value = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (!numeric) { return value.toLowerCase(); }
    var number = parseFloat(value);
    return isNaN(number) ? -Infinity : number;
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
    header.querySelector("button").addEventListener("click", function () {
      var ascending = header.getAttribute("aria-sort") !== "ascending";
      var numeric = header.dataset.type === "number";
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.removeAttribute("aria-sort");
      });
      header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var keyed = rows.map(function (row, index) { return [sortKey(row, column, numeric), index, row]; });
      keyed.sort(function (a, b) {
        return (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]) * (ascending ? 1 : -1);
      });
      var fragment = document.createDocumentFragment();
      keyed.forEach(function (entry) { fragment.appendChild(entry[2]); });
      body.appendChild(fragment);
    });
  });
  search.addEventListener("input", applyFilter);
  severity.addEventListener("change", applyFilter);
  applyFilter();
  table.dataset.sortable = "ready";
}());
</script>
</body>
</html>
"""
