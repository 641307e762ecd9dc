# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the fleet report: the model, every format parsed back, and idempotent writing."""

from __future__ import annotations

import copy
import csv
import datetime
import html.parser
import io
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _report
from ansible_collections.exchange.pki.plugins.plugin_utils._report_html import build_timeline, render_html
from tests.unit.plugins.plugin_utils.report_facts import NOW, bulk_fleet, certificate, dag_fleet, host_fact

SECRET = "Pa55w0rd-must-not-leak"


def report_of(facts: dict[str, Any], now: datetime.datetime = NOW) -> _report.FleetReport:
    return _report.build_report(facts, title="Contoso certificates", now=now)


def text(render, report: _report.FleetReport) -> str:
    return "".join(render(report))


@pytest.fixture
def fleet() -> dict[str, Any]:
    return dag_fleet()


# --- model ----------------------------------------------------------------------------------------


def test_summary_counts_the_fleet(fleet):
    summary = report_of(fleet).summary.as_dict()
    assert summary["hosts"] == 5
    assert summary["hosts_collected"] == 4
    assert summary["hosts_missing"] == ["ex5"]
    assert summary["certificates"] == sum(len(fact["certificates"]) for fact in fleet.values() if fact)
    assert summary["findings"] == {"critical": 4, "warning": 7, "info": 0}
    assert summary["worst_severity"] == "critical"
    # the expired CLIUSR certificate of ex2 is the earliest
    assert (summary["earliest_expiry_host"], summary["earliest_expiry_subject"]) == ("ex2", "CN=CLIUSR")


def test_earliest_expiry_ignores_pending_requests():
    request = certificate("CN=pending.contoso.lab", days_remaining=-400, roles=("pending_request",), store="REQUEST")
    current = certificate("CN=mail.contoso.lab", days_remaining=90)
    summary = report_of({"ex1": host_fact("ex1", [request, current])}).summary
    assert summary.earliest_expiry.subject == "CN=mail.contoso.lab"


@pytest.mark.parametrize("fact", [None, {}, {"failed": True, "msg": "unreachable"}, "text", {"certificates": "x"}])
def test_hosts_without_a_usable_fact_are_not_collected(fact):
    report = report_of({"ex1": fact})
    assert report.summary.hosts_missing == ("ex1",)
    assert report.hosts[0].certificates == ()


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda fact: fact["findings"].append({"id": "x", "severity": "fatal"}), "severity 'fatal'"),
    (lambda fact: fact["findings"].append({"severity": "critical"}), "findings[3] is not a finding"),
    (lambda fact: fact["certificates"].append("cert"), "certificates[5] is not a mapping"),
    (lambda fact: fact["certificates"][0].update(not_after="tomorrow"), "not_after 'tomorrow'"),
])
def test_malformed_facts_are_rejected_naming_the_host(fleet, mutate, message):
    mutate(fleet["ex1"])
    with pytest.raises(_report.ReportInputError, match=re.escape(message)) as error:
        report_of(fleet)
    assert str(error.value).startswith("host ex1: ")


def test_certificate_severity_is_the_worst_of_its_findings(fleet):
    ex2 = next(host for host in report_of(fleet).hosts if host.host == "ex2")
    by_subject = {cert.subject: cert for cert in ex2.certificates}
    assert by_subject["CN=CLIUSR"].severity == "critical"
    assert by_subject["CN=CLIUSR"].finding_ids == ("cluster_certificate_expired",)
    assert by_subject["CN=Microsoft Exchange Server Auth Certificate"].severity == "warning"
    assert by_subject["CN=EX2"].severity is None


def test_dag_members_side_by_side_flag_the_odd_member(fleet):
    (dag,) = report_of(fleet).dags()
    assert [member.host for member in dag.members] == ["ex1", "ex2", "ex3"]
    rows = {row.role: row for row in dag.rows}
    # ex3 holds another mail certificate: every shared role of it differs, nothing else does
    assert dag.mismatched_roles == ["iis", "smtp", "imap", "pop", "connector"]
    assert rows["iis"].odd == {2}
    assert not rows["auth_current"].mismatch
    assert not rows["internal_transport"].mismatch  # per-server certificates differ by design
    assert dag.nodes_not_reported == ()


def test_each_members_own_certificates_are_no_mismatch_even_when_they_hold_shared_roles(fleet):
    """Exchange's self-signed certificate holds the Back End :444 binding, so it shows IIS (and SMTP, IMAP,
    POP) on every server; a certificate per server by design never makes the members differ."""
    for fact in filter(None, fleet.values()):  # ex5 was not collected
        for cert in fact["certificates"]:
            if "exchange_default" in cert["roles"]:
                cert["roles"] = sorted({*cert["roles"], "iis", "smtp", "imap", "pop"})
    (dag,) = report_of(fleet).dags()
    assert dag.mismatched_roles == ["iis", "smtp", "imap", "pop", "connector"]  # still only ex3's mail certificate
    assert {row.role: row for row in dag.rows}["iis"].odd == {2}


def test_dag_lists_cluster_nodes_without_facts(fleet):
    del fleet["ex3"]
    (dag,) = report_of(fleet).dags()
    assert dag.nodes_not_reported == ("EX3",)
    assert dag.mismatched_roles == []


# --- CSV ------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_certificate_and_per_missing_host(fleet):
    rows = list(csv.DictReader(io.StringIO(text(_report.render_csv, report_of(fleet)))))
    collected = [row for row in rows if row["collected"] == "True"]
    assert len(collected) == report_of(fleet).summary.certificates
    assert [row["server"] for row in rows if row["collected"] == "False"] == ["ex5"]
    cliusr = next(row for row in rows if row["server"] == "ex2" and row["subject"] == "CN=CLIUSR")
    assert cliusr["severity"] == "critical"
    assert cliusr["finding_ids"] == "cluster_certificate_expired"
    assert cliusr["days_remaining"] == "-5"  # a negative number is not treated as a formula
    assert cliusr["store"] == "PKU2U"
    mail = next(row for row in rows if row["server"] == "ex1" and row["subject"] == "CN=mail.contoso.lab")
    assert mail["roles"] == "connector;iis;imap;pop;smtp"
    assert mail["dag"] == "DAG1"


@pytest.mark.parametrize("value", ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)"])
def test_csv_neutralises_formulas(value):
    cert = certificate("CN=web", days_remaining=100, friendly_name=value)
    rows = list(csv.DictReader(io.StringIO(text(_report.render_csv, report_of({"ex1": host_fact("ex1", [cert])})))))
    assert rows[0]["friendly_name"] == "'" + value


# --- JSON -----------------------------------------------------------------------------------------


def test_json_is_the_whole_model(fleet):
    document = json.loads(text(_report.render_json, report_of(fleet)))
    assert document["format"] == "exchange.pki.report/v1"
    assert document["generated_at"] == "2026-11-25T08:00:00Z"
    assert document["summary"] == report_of(fleet).summary.as_dict()
    assert [host["host"] for host in document["hosts"]] == ["ex1", "ex2", "ex3", "ex4", "ex5"]
    assert document["hosts"][4] == {"host": "ex5", "collected": False, "worst_severity": None}
    ex1 = document["hosts"][0]
    assert ex1["server"]["dag"] == "DAG1"
    assert ex1["findings"] == fleet["ex1"]["findings"]
    assert [cert["thumbprint"] for cert in ex1["certificates"]] == [
        cert["thumbprint"] for cert in fleet["ex1"]["certificates"]]
    assert document["dags"] == [{"name": "DAG1", "members": ["ex1", "ex2", "ex3"], "nodes_not_reported": [],
                                 "mismatched_roles": ["iis", "smtp", "imap", "pop", "connector"]}]
    assert set(document["collected_at"]) == {"ex1", "ex2", "ex3", "ex4"}


def test_only_documented_fact_keys_are_published(fleet):
    fleet["ex1"]["unexpected"] = {"password": SECRET}
    report = report_of(fleet)
    for fmt in _report.FORMATS.values():
        assert SECRET not in text(fmt.render, report), fmt.name


# --- Markdown -------------------------------------------------------------------------------------


def test_markdown_summarises_and_lists_critical_and_warning(fleet):
    markdown = _report.markdown_text(report_of(fleet))
    assert markdown.startswith("# Contoso certificates\n")
    assert "- **Findings:** 4 critical, 7 warning, 0 info (worst: critical)" in markdown
    assert "- **Not collected:** ex5" in markdown
    assert "- **DAG DAG1:** members differ for iis, smtp, imap, pop, connector" in markdown
    table = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == 11
    assert table[0].startswith("| critical | ex1 | expiring_critical | CN=mail.contoso.lab (")


def test_markdown_escapes_table_cells_and_caps_rows():
    facts = bulk_fleet(100)
    facts["ex00000"]["findings"][0]["message"] = "a | b\nc"
    markdown = _report.markdown_text(report_of(facts))
    assert "a \\| b c" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| critical") or line.startswith("| warning")]
    assert len(rows) == _report.MARKDOWN_MAX_ROWS
    total = sum(len(fact["findings"]) for fact in facts.values())
    assert f"… and {total - _report.MARKDOWN_MAX_ROWS} more" in markdown


def test_markdown_without_findings():
    facts = {"ex1": host_fact("ex1", [certificate("CN=web", days_remaining=300)])}
    assert _report.markdown_text(report_of(facts)).endswith("No critical or warning findings.\n")


# --- Prometheus -----------------------------------------------------------------------------------


def prometheus_families(report: _report.FleetReport) -> dict[str, Any]:
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client is a test requirement")
    return {family.name: family for family in parser.text_string_to_metric_families(
        text(_report.render_prometheus, report))}


def test_prometheus_textfile_parses_with_prometheus_client(fleet):
    report = report_of(fleet)
    families = prometheus_families(report)
    assert set(families) == {
        "exchange_pki_certificate_expiration_timestamp_seconds", "exchange_pki_certificate_days_remaining",
        "exchange_pki_findings", "exchange_pki_server_collected", "exchange_pki_server_collected_timestamp_seconds",
        "exchange_pki_report_generated_timestamp_seconds",
    }
    expiry = families["exchange_pki_certificate_expiration_timestamp_seconds"].samples
    assert len(expiry) == report.summary.certificates
    cliusr = next(s for s in expiry if s.labels["server"] == "ex2" and s.labels["subject"] == "CN=CLIUSR")
    assert cliusr.labels["role"] == "cluster"
    assert cliusr.value == _report.parse_time(fleet["ex2"]["certificates"][-1]["not_after"]).timestamp()
    days = {(s.labels["server"], s.labels["subject"]): s.value
            for s in families["exchange_pki_certificate_days_remaining"].samples}
    assert days[("ex2", "CN=CLIUSR")] == -5
    findings = {(s.labels["server"], s.labels["severity"]): s.value for s in families["exchange_pki_findings"].samples}
    assert findings[("ex2", "critical")] == 2 and findings[("ex4", "info")] == 0
    collected = {s.labels["server"]: s.value for s in families["exchange_pki_server_collected"].samples}
    assert collected == {"ex1": 1, "ex2": 1, "ex3": 1, "ex4": 1, "ex5": 0}
    (generated,) = families["exchange_pki_report_generated_timestamp_seconds"].samples
    assert generated.value == NOW.timestamp()


def test_prometheus_label_values_are_escaped():
    subject = 'CN=a "quoted" \\ name\nnext'
    certs = [certificate(subject, days_remaining=10),
             certificate("CN=req", days_remaining=10, roles=("pending_request",), store="REQUEST")]
    families = prometheus_families(report_of({"ex1": host_fact("ex1", certs)}))
    (sample,) = families["exchange_pki_certificate_expiration_timestamp_seconds"].samples  # request left out
    assert sample.labels["subject"] == subject


# --- HTML -----------------------------------------------------------------------------------------


class _Links(html.parser.HTMLParser):
    """Collects src/href attribute values and the script elements."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.references += [value or "" for name, value in attrs if name in ("src", "href", "xlink:href")]
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)
            self._in_script = False


def test_html_is_self_contained_and_complete(fleet):
    page = "".join(render_html(report_of(fleet)))
    links = _Links()
    links.feed(page)
    assert not [ref for ref in links.references if re.match(r"(?i)(https?:)?//", ref)]
    assert len(links.scripts) == 1 and "sortable" in links.scripts[0]
    for section in ("summary", "timeline", "findings", "dags", "servers", "inventory", "missing"):
        assert f'id="{section}"' in page
    assert page.count("<tr class=\"sev-") == report_of(fleet).summary.certificates
    assert '<td class="odd">' in page and "members differ: iis, smtp, imap, pop, connector" in page


def test_html_escapes_every_fact_value(fleet):
    fleet["ex1"]["certificates"][0]["subject"] = "CN=<script>alert(1)</script>"
    fleet["ex1"]["findings"][0]["message"] = '<img src=x onerror="alert(2)">'
    page = "".join(render_html(report_of(fleet)))
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "CN=&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1


def test_timeline_has_one_marker_per_certificate(fleet):
    fleet["ex4"]["certificates"].append(
        certificate("CN=pending", days_remaining=400, roles=("pending_request",), store="REQUEST"))
    report = report_of(fleet)
    dated = [cert for cert in report.certificates() if not cert.is_request]
    timeline = build_timeline(report)
    assert len(timeline.markers) == len(dated)
    page = "".join(render_html(report))
    assert page.count('<circle class="marker') == len(dated)
    assert page.count('<circle class="marker critical') == sum(cert.severity == "critical" for cert in dated)


def test_timeline_places_markers_by_date_and_clamps_far_ones():
    certs = [certificate(f"CN=c{days}", days_remaining=days) for days in (-5, 20, 200, 5000)]
    timeline = build_timeline(report_of({"ex1": host_fact("ex1", certs)}))
    xs = [marker.x for marker in timeline.markers]
    assert xs == sorted(xs)
    assert xs[0] < timeline.today_x < xs[1] < timeline.critical_x
    assert [marker.clamped for marker in timeline.markers] == [False, False, False, True]
    assert xs[-1] == timeline.right
    assert all(timeline.left <= marker.x <= timeline.right for marker in timeline.markers)
    assert timeline.ticks and all(timeline.left <= tick.x <= timeline.right for tick in timeline.ticks)


# --- writing --------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_the_files_with_private_modes(fleet, tmp_path):
    dest = tmp_path / "reports" / "fleet"
    created, outcomes = _report.write_reports(report_of(fleet), dest, list(_report.FORMATS))
    assert created and all(outcome.changed for outcome in outcomes)
    assert mode(dest) == 0o750
    assert sorted(path.name for path in dest.iterdir()) == sorted(fmt.filename for fmt in _report.FORMATS.values())
    assert all(mode(path) == 0o640 for path in dest.iterdir())


def test_rewriting_the_same_facts_later_changes_nothing(fleet, tmp_path):
    _report.write_reports(report_of(fleet), tmp_path, list(_report.FORMATS))
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    later = copy.deepcopy(fleet)
    for fact in later.values():
        if fact:
            fact["collected_at"] = "2026-11-25T09:30:00Z"
    created, outcomes = _report.write_reports(report_of(later, NOW + datetime.timedelta(hours=2)), tmp_path,
                                              list(_report.FORMATS))
    assert not created and not any(outcome.changed for outcome in outcomes)
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == before
    assert "2026-11-25T08:00:00Z" in (tmp_path / "exchange_pki_report.json").read_text()  # untouched


def test_a_changed_certificate_rewrites_every_format(fleet, tmp_path):
    _report.write_reports(report_of(fleet), tmp_path, list(_report.FORMATS))
    fleet["ex1"]["certificates"][0]["not_after"] = "2026-12-14T10:00:00Z"
    _created, outcomes = _report.write_reports(report_of(fleet), tmp_path, list(_report.FORMATS))
    assert all(outcome.changed for outcome in outcomes)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_a_wrong_mode_is_corrected(fleet, tmp_path):
    _report.write_reports(report_of(fleet), tmp_path, ["csv"])
    (tmp_path / "exchange_pki_report.csv").chmod(0o644)
    _created, (outcome,) = _report.write_reports(report_of(fleet), tmp_path, ["csv"])
    assert outcome.changed and mode(outcome.path) == 0o640


def test_check_mode_writes_nothing_and_predicts_changes(fleet, tmp_path):
    dest = tmp_path / "new"
    created, outcomes = _report.write_reports(report_of(fleet), dest, ["html", "json"], check_mode=True)
    assert created and all(outcome.changed for outcome in outcomes) and not dest.exists()
    _report.write_reports(report_of(fleet), dest, ["html", "json"])
    fleet["ex1"]["findings"].pop()
    snapshot = {path: path.read_bytes() for path in dest.iterdir()}
    created, outcomes = _report.write_reports(report_of(fleet), dest, ["html", "json"], check_mode=True)
    assert not created and all(outcome.changed for outcome in outcomes)
    assert {path: path.read_bytes() for path in dest.iterdir()} == snapshot


@pytest.mark.parametrize("text_value", ["", None])
def test_report_time_defaults_to_now(text_value):
    assert abs(_report.report_time(text_value) - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 60


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-11-25T08:00:00Z", NOW),
    ("2026-11-25T09:00:00+01:00", NOW),
    ("2026-11-25T08:00:00", NOW),
])
def test_report_time_parses_iso(value, expected):
    assert _report.report_time(value) == expected


def test_report_time_rejects_garbage():
    with pytest.raises(_report.ReportInputError, match="now: 'next tuesday' is not an ISO-8601"):
        _report.report_time("next tuesday")


def test_findings_grouped_by_severity_then_server(fleet):
    groups = report_of(fleet).findings_by_severity()
    assert [severity for severity, _per_host in groups] == ["critical", "warning"]
    assert [host.host for host, _findings in groups[0][1]] == ["ex1", "ex2", "ex4"]
    assert [f["id"] for f in groups[0][1][1][1]] == ["expiring_critical", "cluster_certificate_expired"]
