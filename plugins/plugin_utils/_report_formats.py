# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The fleet report's file formats (CSV, JSON, Markdown, Prometheus; the HTML is _report_html's) and the writer.

Each format of :data:`FORMATS` renders a :class:`~._report.FleetReport` as an iterable of text chunks, every
format leading with the report's action plan. :func:`write_reports` renders every requested format into
temporary files in the destination and renames them into place only when all of them rendered: all formats
or none.

``changed`` compares content without the *volatile lines*, those that carry the report's generation time and
the hosts' collection times (each format declares their prefixes): re-running over unchanged facts reports no
change. The written file still always says when it was generated: a file whose only difference is a volatile
line is replaced (without ``changed``), a byte-identical one is left alone.

Import order: this module imports the model (_report) and, when the HTML is rendered, _report_html; neither
of them imports this module.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._policy import SEVERITIES
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    HOST_FACT_KEYS,
    CertificateView,
    FleetReport,
    HostView,
    clean_text,
    collection_note,
    expiry_date,
    finding_url,
    parse_time,
    short_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import one_line
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime

DIRECTORY_MODE = 0o750
FILE_MODE = 0o640
MARKDOWN_MAX_ROWS = 50
"""Rows of each Markdown table (action plan; critical/warning findings); the rest is counted, so a job log or a
mail stays short."""

WRITE_BLOCK_CHARS = 1 << 20
"""Rendered text is gathered into blocks of about this many characters, then encoded, digested and written."""


# --- CSV ------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "record", "server", "server_name", "collected", "dag", "site", "thumbprint", "subject", "issuer",
    "serial_number", "not_before", "not_after", "days_remaining", "store", "roles", "services", "dns_names",
    "key_type", "key_size", "signature_hash", "has_private_key", "private_key_exportable", "key_provider", "status",
    "friendly_name", "severity", "finding_ids", "finding_urls", "not_collected_reason", "not_collected_message",
    "unavailable", "unknown_facts", "probes_failed", "title", "scope", "servers", "action",
)
"""``record`` says what a row is: ``action`` (one problem of the action plan; these rows come first),
``certificate`` (one certificate of one server) or ``server`` (a server without facts)."""

_FORMULA_PREFIXES = frozenset(("=", "+", "-", "@", "\t", "\r"))
_CERTIFICATE_COLUMNS = CSV_COLUMNS[6:25]
_HOST_COLUMNS = CSV_COLUMNS[1:6]
_HOST_PROBLEM_COLUMNS = CSV_COLUMNS[28:33]
_ACTION_COLUMNS_EMPTY = [""] * len(CSV_COLUMNS[33:])


def _csv_cell(value: Any) -> Any:
    """Lists join with ``;``; text that a spreadsheet would run as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    if not isinstance(value, str):  # Ansible's values are subclasses of str and list
        if not isinstance(value, (list, tuple)):
            return value
        value = ";".join(map(str, value))
    return "'" + value if value[:1] in _FORMULA_PREFIXES else value


def _csv_host_cells(host: HostView) -> dict[str, Any]:
    return {
        "server": host.host,
        "server_name": host.server.get("name"),
        "collected": host.collected,
        "dag": host.dag,
        "site": host.server.get("site"),
        "not_collected_reason": host.not_collected_reason if not host.collected else None,
        "not_collected_message": host.not_collected_message,
        "unavailable": [f"{read}: {message}" for read, message in host.unavailable.items()],
        "unknown_facts": host.unknown_facts,
        "probes_failed": [problem.text for problem in host.problems if problem.kind == "probe_failed"],
    }


def render_csv(report: FleetReport) -> Iterator[str]:
    """The action plan first (``record=action``), then one row per (server, certificate); a host that was not
    collected gets one ``record=server`` row with ``collected`` false and the reason."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    for item in report.action_plan:
        cells = {
            "record": "action", "severity": item.severity, "finding_ids": item.finding_id, "title": item.title,
            "scope": item.scope, "thumbprint": item.thumbprint, "subject": item.subject, "servers": item.servers,
            "action": item.action, "finding_urls": item.url,
        }
        writer.writerow([_csv_cell(cells.get(column)) for column in CSV_COLUMNS])
    yield flush()
    cell, formula = _csv_cell, _FORMULA_PREFIXES
    for host in report.hosts:
        known = {column: cell(value) for column, value in _csv_host_cells(host).items()}
        if not host.collected:
            writer.writerow([cell("server") if column == "record" else known.get(column, "")
                             for column in CSV_COLUMNS])
        prefix = ["certificate", *(known[column] for column in _HOST_COLUMNS)]
        suffix = [*(known[column] for column in _HOST_PROBLEM_COLUMNS), *_ACTION_COLUMNS_EMPTY]
        writer.writerows(
            [*prefix,
             # _csv_cell inlined for the 19 columns of 120,000 rows: text checked for a formula, lists joined
             # (the csv module writes None as an empty field)
             *[("'" + value if value[:1] in formula else value) if isinstance(value, str) else
               cell(value) if isinstance(value, (list, tuple)) else value
               for value in map(cert.data.get, _CERTIFICATE_COLUMNS)],
             # a severity is never a formula; the source pages are the catalogue's https addresses
             cert.severity, cell(cert.finding_ids) if cert.finding_ids else None, ";".join(cert.finding_urls),
             *suffix]
            for cert in host.certificates
        )
        yield flush()


def render_ledger_csv(report: FleetReport) -> Iterator[str]:
    """exchange_pki_ledger.csv: one row per step of each certificate story (written beside the report's CSV when
    the report reads a ledger)."""
    from ansible_collections.exchange.pki.plugins.plugin_utils._report_stories import (  # noqa: PLC0415
        STORY_STEP_COLUMNS,
        story_rows,
    )

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(STORY_STEP_COLUMNS)
    for row in story_rows(report.ledger.stories if report.ledger is not None else ()):
        writer.writerow([_csv_cell(row[column]) for column in STORY_STEP_COLUMNS])
    yield buffer.getvalue()


# --- JSON -----------------------------------------------------------------------------------------

JSON_FORMAT_ID = "exchange.pki.report/v1"

PROBE_KEYS = (
    "host", "port", "starttls", "server_name", "protocol", "thumbprint", "subject", "issuer", "not_after",
    "days_remaining", "name_matches", "unmatched_names", "expected_thumbprint_matches", "chain_valid", "chain_error",
    "failed", "stage", "msg",
)
"""The keys of a tls_probe result published in the JSON report (not the PEM chain, not Ansible's own keys)."""

_FINDING_KEYS = ("id", "severity", "thumbprint", "message", "remediation")


def _json_probe(result: Any) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        return {"failed": True, "msg": "no probe result"}
    probe = {}
    for key in PROBE_KEYS:
        value = result.get(key)
        if isinstance(value, (str, int, float, bool)) or value is None:
            probe[key] = clean_text(value) if isinstance(value, str) else value
        elif isinstance(value, list):
            probe[key] = [clean_text(item) for item in value]
    return probe


def _json_host(host: HostView) -> dict[str, Any]:
    entry: dict[str, Any] = {"host": host.host, "collected": host.collected, "worst_severity": host.worst_severity}
    if host.fact is None:
        entry["not_collected"] = {"reason": host.not_collected_reason, "message": host.not_collected_message}
        return entry
    entry.update((key, host.fact[key]) for key in HOST_FACT_KEYS if key in host.fact)
    entry["findings"] = [
        {**{key: finding.get(key) for key in _FINDING_KEYS}, "url": finding_url(finding["id"])}
        for finding in host.findings
    ]
    entry["certificates"] = [
        {**cert.data, "severity": cert.severity, "finding_ids": list(cert.finding_ids)} for cert in host.certificates
    ]
    entry["unavailable"] = dict(host.unavailable)
    entry["unknown_facts"] = list(host.unknown_facts)
    entry["probes"] = {name: _json_probe(result) for name, result in host.probes.items()}
    entry["problems"] = [dataclasses.asdict(problem) for problem in host.problems]
    return entry


def _json_dag(dag: Any) -> dict[str, Any]:
    return {
        "name": dag.name,
        "members": [member.host for member in dag.members],
        "mismatched_roles": dag.mismatched_roles,
        "nodes_not_reported": list(dag.nodes_not_reported),
    }


def render_json(report: FleetReport) -> Iterator[str]:
    """The whole model, one top-level key per line, one action and one host per line (streams; diffs read well)."""
    dump = json.dumps
    yield "{\n"
    yield f'"format": {dump(JSON_FORMAT_ID)},\n'
    yield f'"title": {dump(report.title)},\n'
    yield f'"generated_at": {dump(format_utc_datetime(report.generated_at))},\n'
    collected_at = {host.host: host.collected_at for host in report.hosts if host.collected}
    yield f'"collected_at": {dump(collected_at, sort_keys=True)},\n'
    yield '"action_plan": ['
    for index, item in enumerate(report.action_plan):
        yield ("\n" if index == 0 else ",\n") + dump(item.as_dict(), sort_keys=True)
    yield "\n],\n" if report.action_plan else "],\n"
    yield f'"summary": {dump(report.summary.as_dict(), sort_keys=True)},\n'
    yield f'"dags": {dump([_json_dag(dag) for dag in report.dags()], sort_keys=True)},\n'
    yield '"hosts": ['
    lines = []
    for index, host in enumerate(report.hosts):
        lines.append(("\n" if index == 0 else ",\n") + dump(_json_host(host)))  # keys in the facts' order
        if len(lines) == 100:
            yield "".join(lines)
            lines.clear()
    yield "".join(lines)
    if report.ledger is None:
        yield "\n]\n}\n"
        return
    yield "\n],\n"
    yield f'"ledger": {dump(_json_ledger(report.ledger), sort_keys=True)},\n'
    yield '"stories": {'
    for index, story in enumerate(report.ledger.stories):
        yield ("\n" if index == 0 else ",\n") + f"{dump(story.identity)}: {dump(list(story.steps))}"
    yield "\n}\n}\n" if report.ledger.stories else "}\n}\n"


def _json_ledger(ledger: Any) -> dict[str, Any]:
    return {
        "path": ledger.path, "found": ledger.found,
        "skipped": [{"line": item.line_number, "reason": item.reason} for item in ledger.skipped],
        "certificates": [{"identity": story.identity, "thumbprint": story.thumbprint, "subject": story.subject,
                          "stage": story.stage, "steps": len(story.steps)} for story in ledger.stories],
    }


# --- Markdown -------------------------------------------------------------------------------------


def _md_cell(value: Any) -> str:
    text = one_line(value if value is not None else "-")
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _md_link(text: str, url: str | None) -> str:
    return f"[{_md_cell(text)}]({url})" if url else _md_cell(text)


def _md_servers(servers: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(servers[:limit])
    return shown + (f" and {len(servers) - limit} more" if len(servers) > limit else "")


def _md_certificate(host: HostView, finding: Mapping[str, Any]) -> str:
    cert = host.certificate(finding.get("thumbprint"))
    if cert is None:
        return short_thumbprint(finding.get("thumbprint") or "")
    return f"{cert.subject} ({short_thumbprint(cert.thumbprint)}, expires {expiry_date(cert)})"


def _md_action_plan(report: FleetReport) -> Iterator[str]:
    plan = report.action_plan
    yield "## Action plan\n\n"
    if not plan:
        yield "Nothing to do: no finding, every server collected.\n\n"
        return
    yield (f"{len(plan)} distinct problem(s), worst first; each is one thing to fix, however many servers it "
           "affects.\n\n")
    yield "| # | Severity | Problem | Servers | Do first | Source |\n|---|---|---|---|---|---|\n"
    for number, item in enumerate(plan[:MARKDOWN_MAX_ROWS], 1):
        problem = item.title + (f" ({short_thumbprint(item.thumbprint)})" if item.thumbprint else "")
        cells = (number, item.severity, problem, f"{len(item.servers)}: {_md_servers(item.servers)}", item.action)
        yield ("| " + " | ".join(_md_cell(cell) for cell in cells) + " | "
               + (_md_link(item.finding_id, item.url) if item.url else _md_cell(item.finding_id)) + " |\n")
    if len(plan) > MARKDOWN_MAX_ROWS:
        yield f"\n… and {len(plan) - MARKDOWN_MAX_ROWS} more problems; see the HTML, CSV or JSON report.\n"
    yield "\n"


def render_markdown(report: FleetReport) -> Iterator[str]:
    """The action plan, a short fleet summary, a table of the critical and warning findings (capped), then the
    certificate stories when the report reads a ledger."""
    yield from _markdown_fleet(report)
    if report.ledger is not None:
        yield from _md_stories(report.ledger)


MARKDOWN_STORY_STEPS = 30
"""Steps shown per certificate story in Markdown (the latest ones); the HTML, CSV and JSON have them all."""


def _md_text(value: Any) -> str:
    """A table cell or heading text that no Markdown renderer takes for HTML (ledger values are anyone's text)."""
    return _md_cell(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_stories(ledger: Any) -> Iterator[str]:
    from ansible_collections.exchange.pki.plugins.plugin_utils._report_stories import (  # noqa: PLC0415
        step_detail,
        step_thumbprint,
    )

    yield "\n## Certificate stories\n\n"
    yield f"_From the audit ledger: {_md_text(ledger.note())}._\n"
    for story in ledger.stories[:MARKDOWN_MAX_ROWS]:
        about = f" {story.subject}" if story.subject else ""
        now = f" ({short_thumbprint(story.thumbprint)})" if story.thumbprint else ""
        yield f"\n### {_md_text(story.identity)}{_md_text(about) if about else ''}{now}: {_md_text(story.stage)}\n\n"
        steps = story.steps[-MARKDOWN_STORY_STEPS:]
        if len(story.steps) > len(steps):
            yield f"_The latest {len(steps)} of {len(story.steps)} steps._\n\n"
        yield "| When | Stage | Server | Who | Result | Certificate | Detail |\n|---|---|---|---|---|---|---|\n"
        for step in steps:
            thumbprint = step_thumbprint(step)
            cells = (step["time"], step["stage"], step["server"], step["who"], step["result"],
                     short_thumbprint(thumbprint) if thumbprint else None, step_detail(step) or None)
            yield "| " + " | ".join(_md_text(cell) for cell in cells) + " |\n"
    if len(ledger.stories) > MARKDOWN_MAX_ROWS:
        yield (f"\n… and {len(ledger.stories) - MARKDOWN_MAX_ROWS} more certificates; see the HTML, CSV or JSON "
               "report.\n")


def _markdown_fleet(report: FleetReport) -> Iterator[str]:
    summary = report.summary
    yield f"# {_md_cell(report.title)}\n\n"
    yield f"_Generated {format_utc_datetime(report.generated_at)} by exchange.pki; {collection_note(report)}._\n\n"
    yield from _md_action_plan(report)
    yield "## Summary\n\n"
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
    missing = [host for host in report.hosts if not host.collected]
    if missing:
        shown = "; ".join(f"{host.host} ({host.not_collected_text})" for host in missing[:MARKDOWN_MAX_ROWS])
        more = f"; and {len(missing) - MARKDOWN_MAX_ROWS} more" if len(missing) > MARKDOWN_MAX_ROWS else ""
        yield f"- **Not collected:** {_md_cell(shown + more)}\n"
    incomplete = [host for host in report.hosts if host.unavailable]
    if incomplete:
        shown = "; ".join(f"{host.host}: {', '.join(host.unavailable)}" for host in incomplete[:MARKDOWN_MAX_ROWS])
        more = f"; and {len(incomplete) - MARKDOWN_MAX_ROWS} more" if len(incomplete) > MARKDOWN_MAX_ROWS else ""
        yield f"- **Reads that failed (their facts are unknown):** {_md_cell(shown + more)}\n"
    probes = [problem.text for host in report.hosts for problem in host.problems if problem.kind == "probe_failed"]
    if probes:
        yield f"- **Probes that failed:** {len(probes)}\n"
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
        cells = (_md_cell(severity), _md_cell(host.host), _md_link(finding["id"], finding_url(finding["id"])),
                 _md_cell(_md_certificate(host, finding)), _md_cell(finding.get("message")))
        yield "| " + " | ".join(cells) + " |\n"
    if len(rows) > MARKDOWN_MAX_ROWS:
        yield f"\n… and {len(rows) - MARKDOWN_MAX_ROWS} more; see the HTML or CSV report.\n"


def markdown_text(report: FleetReport) -> str:
    return "".join(render_markdown(report))


# --- Prometheus textfile --------------------------------------------------------------------------

PROMETHEUS_CERTIFICATE_LABELS = ("server", "thumbprint", "subject", "store", "role")
"""Labels of the certificate metrics: one series per role of the certificate (``role=""`` when it has none)."""


def prometheus_label_value(value: str) -> str:
    """Escape a label value for the text exposition format (backslash, double quote, line feed)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{prometheus_label_value(value)}"' for name, value in labels.items()) + "}"


def _metric_header(name: str, help_text: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} gauge\n"


def _certificate_series(report: FleetReport) -> tuple[list[str], list[CertificateView]]:
    """The label sets of the certificate metrics and, at the same index, the certificate of each series: one
    series per role of each certificate with a known expiry (pending requests left out, one certificate per server,
    thumbprint and store). The label sets are built once for both metrics; two flat lists, not a pair per series,
    keep the garbage collector's work small."""
    escape = prometheus_label_value
    labels: list[str] = []
    certificates: list[CertificateView] = []
    for host in report.hosts:
        seen: set[tuple[str, str]] = set()
        server = escape(host.host)
        for cert in host.certificates:
            store = cert.data.get("store") or ""
            key = (cert.thumbprint, store)
            if cert.not_after is None or cert.is_request or key in seen:
                continue
            seen.add(key)
            base = (f'{{server="{server}",thumbprint="{escape(cert.thumbprint)}",subject="{escape(cert.subject)}",'
                    f'store="{escape(store)}",role="')
            for role in cert.roles or ("",):
                labels.append(f'{base}{escape(role)}"}}')
                certificates.append(cert)
    return labels, certificates


def _joined(lines: Iterable[str], size: int = 2000) -> Iterator[str]:
    """``lines`` joined into chunks of ``size`` lines (fewer, larger chunks; never the whole file in memory)."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield "".join(batch)
            batch.clear()
    yield "".join(batch)


# The HELP text of the one metric the fleet report and exchange.pki.renewal_status both write: node_exporter's
# textfile collector wants one HELP text per metric name across the files of its directory; the label sets differ
# (the report: one series per role of a certificate; renewal_status: one per certificate identity).
EXPIRATION_HELP = ("The date after which the certificate expires (not_after), as a Unix timestamp; the fleet report "
                   "has one series per role of a certificate, renewal_status one per certificate identity.")


def render_prometheus(report: FleetReport) -> Iterator[str]:
    """A node_exporter textfile in the style of cert-manager's certificate metrics, led by the action plan."""
    name = "exchange_pki_action_plan_problems"
    yield _metric_header(name, "Distinct problems of the report's action plan, by severity.")
    for severity, count in report.summary.actions.items():
        yield f"{name}{_labels(severity=severity)} {count}\n"
    labels, certificates = _certificate_series(report)
    name = "exchange_pki_certificate_expiration_timestamp_seconds"
    yield _metric_header(name, EXPIRATION_HELP)
    yield from _joined(f"{name}{label} {int(cert.not_after.timestamp())}\n"
                       for label, cert in zip(labels, certificates))
    name = "exchange_pki_certificate_days_remaining"
    yield _metric_header(name, "Whole days until the certificate expires, as collected; negative when expired; "
                               "one series per role of the certificate.")
    yield from _joined(f"{name}{label} {int(cert.days_remaining)}\n"
                       for label, cert in zip(labels, certificates) if cert.days_remaining is not None)
    del labels, certificates
    name = "exchange_pki_findings"
    yield _metric_header(name, "Number of findings on the server, by severity.")
    for host in report.hosts:
        if host.collected:
            for severity, count in host.finding_counts().items():
                yield f"{name}{_labels(server=host.host, severity=severity)} {count}\n"
    name = "exchange_pki_server_collected"
    yield _metric_header(name, "1 when the server's certificate facts were collected, 0 when not.")
    for host in report.hosts:
        yield f"{name}{_labels(server=host.host)} {int(host.collected)}\n"
    name = "exchange_pki_server_not_collected_info"
    yield _metric_header(name, "Why the server's facts were not collected (reason unknown when not said), always 1.")
    for host in report.hosts:
        if not host.collected:
            yield f"{name}{_labels(server=host.host, reason=host.not_collected_reason or 'unknown')} 1\n"
    name = "exchange_pki_server_read_failed"
    yield _metric_header(name, "1 for each read that failed on the server: the facts it reads are unknown.")
    for host in report.hosts:
        for read in host.unavailable:
            yield f"{name}{_labels(server=host.host, read=read)} 1\n"
    name = "exchange_pki_probe_success"
    yield _metric_header(name, "1 when the TLS probe passed, 0 when it failed or found a problem.")
    failed = {(host.host, problem.name) for host in report.hosts for problem in host.problems
              if problem.kind == "probe_failed"}
    for host in report.hosts:
        for probe in host.probes:
            yield f"{name}{_labels(server=host.host, probe=probe)} {int((host.host, probe) not in failed)}\n"
    name = "exchange_pki_server_collected_timestamp_seconds"
    yield _metric_header(name, "When the server's certificate facts were collected, as a Unix timestamp.")
    for host in report.hosts:
        collected_at = parse_time(host.collected_at)
        if collected_at:
            yield f"{name}{_labels(server=host.host)} {int(collected_at.timestamp())}\n"
    name = "exchange_pki_report_generated_timestamp_seconds"
    yield _metric_header(name, "When this report was generated, as a Unix timestamp.")
    yield f"{name} {int(report.generated_at.timestamp())}\n"


# --- the registry ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReportFormat:
    """A file format: its file name, renderer, and the prefixes of its volatile (timestamp) lines."""

    name: str
    filename: str
    render: Callable[[FleetReport], Iterable[str]]
    volatile_prefixes: tuple[str, ...] = ()


def _render_html(report: FleetReport) -> Iterable[str]:
    from ansible_collections.exchange.pki.plugins.plugin_utils._report_html import render_html  # noqa: PLC0415

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


LEDGER_CSV = ReportFormat("ledger_csv", "exchange_pki_ledger.csv", render_ledger_csv)
"""Written with the ``csv`` format when the report reads a ledger: the certificate stories, one row per step."""


# --- writing --------------------------------------------------------------------------------------


class _ContentDigest:
    """SHA-256 over the bytes of a text without its volatile lines, and a digest of those lines alone.

    Fed in blocks of any size. Volatile lines are found with one compiled pattern anchored on the line feed
    before them (searching a block at C speed, not line by line); a line may start with blanks. Two texts are
    byte-identical when both digests are equal (the volatile digest also records where each line was).
    """

    def __init__(self, volatile_prefixes: tuple[str, ...]) -> None:
        self._content = hashlib.sha256()
        self._volatile = hashlib.sha256()
        self._offset = 0  # content bytes digested so far
        self._tail = b""
        self._pattern = re.compile(
            rb"\n[^\S\n]*(?:" + b"|".join(re.escape(prefix.encode()) for prefix in volatile_prefixes) + rb")"
        ) if volatile_prefixes else None

    def feed(self, data: bytes) -> None:
        end = data.rfind(b"\n") + 1
        if not end:
            self._tail += data
            return
        self._lines(self._tail + data[:end] if self._tail else data[:end])
        self._tail = data[end:]

    def _lines(self, block: bytes) -> None:
        """Digest whole lines (``block`` ends with a line feed)."""
        if self._pattern is None:
            self._content.update(block)
            return
        data = b"\n" + block
        view = memoryview(data)
        position = 1
        for match in self._pattern.finditer(data):
            start = match.start() + 1
            if start < position:
                continue
            self._content.update(view[position:start])
            self._offset += start - position
            position = data.index(b"\n", match.end()) + 1
            self._volatile.update(b"%d:" % self._offset + view[start:position])
        self._content.update(view[position:])
        self._offset += len(data) - position

    def digests(self) -> tuple[str, str]:
        """(content digest, digest of the volatile lines and their places)."""
        if self._tail:
            self._lines(self._tail + b"\n")
            self._tail = b""
        return self._content.hexdigest(), self._volatile.hexdigest()


def _file_digests(path: Path, volatile_prefixes: tuple[str, ...]) -> tuple[str, str] | None:
    if not path.is_file():
        return None
    digest = _ContentDigest(volatile_prefixes)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.feed(block)
    return digest.digests()


def _blocks(chunks: Iterable[str]) -> Iterator[bytes]:
    """The rendered text as UTF-8 blocks of about :data:`WRITE_BLOCK_CHARS` characters."""
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= WRITE_BLOCK_CHARS:
            yield "".join(pending).encode("utf-8", "replace")
            pending.clear()
            size = 0
    if pending:
        yield "".join(pending).encode("utf-8", "replace")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@dataclasses.dataclass(frozen=True)
class WriteOutcome:
    format: str
    path: Path
    changed: bool


@dataclasses.dataclass
class _Rendered:
    fmt: ReportFormat
    path: Path
    temporary: Path | None
    content: str
    volatile: str


def write_reports(
    report: FleetReport, dest: Path, formats: Sequence[str], *, check_mode: bool = False,
) -> tuple[bool, list[WriteOutcome]]:
    """Render ``formats`` into ``dest``; returns (directory created, outcome per format).

    Every format is rendered to a temporary file in ``dest`` first; only when all of them rendered are they
    renamed into place (mode 0640), so a failure leaves the previous set of files untouched. A format is
    ``changed`` when its content differs beyond its volatile lines (or its mode was wrong). In check mode
    nothing is written: the content is rendered into a digest and compared.
    """
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"unknown report format(s): {', '.join(unknown)}")
    created = not dest.is_dir()
    if created and not check_mode:
        dest.mkdir(mode=DIRECTORY_MODE, parents=True)
        os.chmod(dest, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
    rendered: list[_Rendered] = []
    chosen = [FORMATS[name] for name in formats]
    if report.ledger is not None and "csv" in formats:
        chosen.append(LEDGER_CSV)
    try:
        for fmt in chosen:
            rendered.append(_render_one(report, fmt, dest, check_mode))
    except BaseException:
        for item in rendered:
            if item.temporary is not None:
                item.temporary.unlink(missing_ok=True)
        if created and not check_mode:
            _remove_if_empty(dest)
        raise
    try:
        return created, [_commit(item) for item in rendered]
    finally:  # a rename that failed (a directory in the way, ...) leaves no temporary file behind
        for item in rendered:
            if item.temporary is not None:
                item.temporary.unlink(missing_ok=True)


def _render_one(report: FleetReport, fmt: ReportFormat, dest: Path, check_mode: bool) -> _Rendered:
    path = dest / fmt.filename
    digest = _ContentDigest(fmt.volatile_prefixes)
    if check_mode:
        for block in _blocks(fmt.render(report)):
            digest.feed(block)
        return _Rendered(fmt, path, None, *digest.digests())
    fd, name = tempfile.mkstemp(dir=dest, prefix=f".{fmt.filename}.")
    temporary = Path(name)
    try:
        try:
            os.fchmod(fd, FILE_MODE)
            for block in _blocks(fmt.render(report)):
                digest.feed(block)
                _write_all(fd, block)
        finally:
            os.close(fd)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return _Rendered(fmt, path, temporary, *digest.digests())


def _commit(item: _Rendered) -> WriteOutcome:
    old = _file_digests(item.path, item.fmt.volatile_prefixes)
    wrong_mode = _wrong_mode(item.path)
    changed = old is None or old[0] != item.content or wrong_mode
    if item.temporary is not None:
        if old == (item.content, item.volatile):
            item.temporary.unlink()  # byte-identical: keep the file (and its time stamps)
            if wrong_mode:
                os.chmod(item.path, FILE_MODE)
        else:
            os.replace(item.temporary, item.path)  # new content, or a new generation time
    return WriteOutcome(item.fmt.name, item.path, changed)


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass


def _wrong_mode(path: Path) -> bool:
    return path.exists() and (path.stat().st_mode & 0o7777) != FILE_MODE
