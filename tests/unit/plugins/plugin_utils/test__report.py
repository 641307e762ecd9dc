# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the fleet report: the model, the action plan, every format parsed back, and the writer.

The HTML page has its own tests (test__report_html.py); here every format of the registry is checked for what
all of them must carry."""

from __future__ import annotations

import ast
import copy
import csv
import dataclasses
import datetime
import io
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _policy, _report
from ansible_collections.exchange.pki.plugins.plugin_utils import _report_formats as formats
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control
from tests.unit.plugins.plugin_utils.report_facts import (
    NOW,
    bulk_fleet,
    certificate,
    dag_fleet,
    finding,
    host_fact,
    lab_dag_fleet,
    not_collected,
)

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
    rows = list(csv.DictReader(io.StringIO(text(formats.render_csv, report_of(fleet)))))
    assert {row["record"] for row in rows} == {"action", "certificate", "server"}
    collected = [row for row in rows if row["collected"] == "True"]
    assert len(collected) == report_of(fleet).summary.certificates
    assert [row["server"] for row in rows if row["collected"] == "False"] == ["ex5"]
    cliusr = next(row for row in rows if row["server"] == "ex2" and row["subject"] == "CN=CLIUSR")
    assert cliusr["severity"] == "critical"
    assert cliusr["finding_ids"] == "cluster_certificate_expired"
    assert cliusr["finding_urls"] == _policy.CATALOGUE["cluster_certificate_expired"].url
    assert cliusr["days_remaining"] == "-5"  # a negative number is not treated as a formula
    assert cliusr["store"] == "PKU2U"
    mail = next(row for row in rows if row["server"] == "ex1" and row["subject"] == "CN=mail.contoso.lab")
    assert mail["roles"] == "connector;iis;imap;pop;smtp"
    assert mail["dag"] == "DAG1"


class Unsafe(str):
    """Like Ansible's AnsibleUnsafeText: a subclass of str."""


@pytest.mark.parametrize("value", ["=HYPERLINK(\"x\")", "+1", "-2+3", "@SUM(A1)", Unsafe("=cmd|' /C calc'!A0")])
def test_csv_neutralises_formulas(value):
    cert = certificate("CN=web", days_remaining=100, friendly_name=value)
    rows = list(csv.DictReader(io.StringIO(text(formats.render_csv, report_of({"ex1": host_fact("ex1", [cert])})))))
    assert rows[-1]["friendly_name"] == "'" + value


def test_csv_certificate_rows_follow_the_cell_rule_for_every_type():
    """The certificate rows are built inline for speed; each cell must still be what _csv_cell makes of it."""
    cert = certificate("CN=web", days_remaining=-3, friendly_name="-dash", issuer=None, key_size=None,
                       dns_names=["=a.example", "b.example"], has_private_key=False, private_key_exportable="@x",
                       roles=("iis", "smtp"))
    facts = {"ex1": host_fact("ex1", [cert], [finding("=odd", "warning", cert)])}
    rows = list(csv.reader(io.StringIO(text(formats.render_csv, report_of(facts)))))
    row = dict(zip(formats.CSV_COLUMNS, rows[-1]))
    assert row["record"] == "certificate"
    for column in formats.CSV_COLUMNS[6:25]:
        assert row[column] == str(formats._csv_cell(cert[column])), column
    assert row["issuer"] == "" and row["key_size"] == "" and row["has_private_key"] == "False"
    assert row["dns_names"] == "'=a.example;b.example"
    assert row["friendly_name"] == "'-dash" and row["private_key_exportable"] == "'@x"
    assert (row["severity"], row["finding_ids"], row["finding_urls"]) == ("warning", "'=odd", "")


def test_action_item_as_dict_is_its_fields_with_servers_as_a_list(fleet):
    for item in report_of(fleet).action_plan:
        assert item.as_dict() == {**dataclasses.asdict(item), "servers": list(item.servers)}


# --- JSON -----------------------------------------------------------------------------------------


def test_json_is_the_whole_model(fleet):
    document = json.loads(text(formats.render_json, report_of(fleet)))
    assert document["format"] == "exchange.pki.report/v1"
    assert document["generated_at"] == "2026-11-25T08:00:00Z"
    assert document["summary"] == report_of(fleet).summary.as_dict()
    assert [host["host"] for host in document["hosts"]] == ["ex1", "ex2", "ex3", "ex4", "ex5"]
    assert document["hosts"][4] == {"host": "ex5", "collected": False, "worst_severity": "critical",
                                    "not_collected": {"reason": None, "message": None}}
    ex1 = document["hosts"][0]
    assert ex1["server"]["dag"] == "DAG1"
    assert ex1["findings"] == [{**item, "url": _policy.CATALOGUE[item["id"]].url} for item in fleet["ex1"]["findings"]]
    assert ex1["unavailable"] == {} and ex1["probes"] == {} and ex1["problems"] == []
    assert [cert["thumbprint"] for cert in ex1["certificates"]] == [
        cert["thumbprint"] for cert in fleet["ex1"]["certificates"]]
    assert document["dags"] == [{"name": "DAG1", "members": ["ex1", "ex2", "ex3"], "nodes_not_reported": [],
                                 "mismatched_roles": ["iis", "smtp", "imap", "pop", "connector"]}]
    assert set(document["collected_at"]) == {"ex1", "ex2", "ex3", "ex4"}


def test_only_documented_fact_keys_are_published(fleet):
    fleet["ex1"]["unexpected"] = {"password": SECRET}
    report = report_of(fleet)
    for fmt in formats.FORMATS.values():
        assert SECRET not in text(fmt.render, report), fmt.name


# --- Markdown -------------------------------------------------------------------------------------


def test_markdown_summarises_and_lists_critical_and_warning(fleet):
    markdown = formats.markdown_text(report_of(fleet))
    assert markdown.startswith("# Contoso certificates\n")
    assert "- **Findings:** 4 critical, 7 warning, 0 info (worst: critical)" in markdown
    assert "- **Not collected:** ex5" in markdown
    assert "- **DAG DAG1:** members differ for iis, smtp, imap, pop, connector" in markdown
    findings = markdown[markdown.index("## Critical and warning findings"):]
    table = [line for line in findings.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == 11
    url = _policy.CATALOGUE["expiring_critical"].url
    assert table[0].startswith(f"| critical | ex1 | [expiring_critical]({url}) | CN=mail.contoso.lab (")


def test_markdown_escapes_table_cells_and_caps_rows():
    facts = bulk_fleet(100)
    facts["ex00000"]["findings"][0]["message"] = "a | b\nc"
    markdown = formats.markdown_text(report_of(facts))
    assert "a \\| b c" in markdown
    findings = markdown[markdown.index("## Critical and warning findings"):]
    rows = [line for line in findings.splitlines() if line.startswith(("| critical", "| warning"))]
    assert len(rows) == formats.MARKDOWN_MAX_ROWS
    total = sum(len(fact["findings"]) for fact in facts.values())
    assert f"… and {total - formats.MARKDOWN_MAX_ROWS} more" in markdown


def test_markdown_cells_hold_no_control_character():
    facts = bulk_fleet(1)
    for cert in next(iter(facts.values()))["certificates"]:
        cert["subject"] = "CN=a\x00b\x1b[2Kc\x85d"
    markdown = formats.markdown_text(report_of(facts))
    assert "CN=a b [2Kc d" in markdown
    assert not has_control(markdown.replace("\n", ""))


def test_markdown_without_findings():
    facts = {"ex1": host_fact("ex1", [certificate("CN=web", days_remaining=300)])}
    assert formats.markdown_text(report_of(facts)).endswith("No critical or warning findings.\n")


# --- Prometheus -----------------------------------------------------------------------------------


def prometheus_families(report: _report.FleetReport) -> dict[str, Any]:
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client is a test requirement")
    return {family.name: family for family in parser.text_string_to_metric_families(
        text(formats.render_prometheus, report))}


def test_prometheus_textfile_parses_with_prometheus_client(fleet):
    report = report_of(fleet)
    families = prometheus_families(report)
    assert set(families) == {
        "exchange_pki_action_plan_problems", "exchange_pki_server_not_collected_info",
        "exchange_pki_server_read_failed", "exchange_pki_probe_success",
        "exchange_pki_certificate_expiration_timestamp_seconds", "exchange_pki_certificate_days_remaining",
        "exchange_pki_findings", "exchange_pki_server_collected", "exchange_pki_server_collected_timestamp_seconds",
        "exchange_pki_report_generated_timestamp_seconds",
    }
    expiry = families["exchange_pki_certificate_expiration_timestamp_seconds"].samples
    roles = sum(max(len(cert.roles), 1) for cert in report.certificates())
    assert len(expiry) == roles  # one series per role
    cliusr = next(s for s in expiry if s.labels["server"] == "ex2" and s.labels["subject"] == "CN=CLIUSR")
    assert cliusr.labels["role"] == "cluster"
    assert cliusr.value == _report.parse_time(fleet["ex2"]["certificates"][-1]["not_after"]).timestamp()
    assert families["exchange_pki_action_plan_problems"].samples[0].labels == {"severity": "critical"}
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


# --- writing --------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_the_files_with_private_modes(fleet, tmp_path):
    dest = tmp_path / "reports" / "fleet"
    created, outcomes = formats.write_reports(report_of(fleet), dest, list(formats.FORMATS))
    assert created and all(outcome.changed for outcome in outcomes)
    assert mode(dest) == 0o750
    assert sorted(path.name for path in dest.iterdir()) == sorted(fmt.filename for fmt in formats.FORMATS.values())
    assert all(mode(path) == 0o640 for path in dest.iterdir())


def test_rewriting_the_same_facts_later_changes_nothing_but_says_when_it_was_generated(fleet, tmp_path):
    """A rerun over the same facts is not a change, and every file says when this run generated it."""
    formats.write_reports(report_of(fleet), tmp_path, list(formats.FORMATS))
    later = copy.deepcopy(fleet)
    for fact in later.values():
        if fact:
            fact["collected_at"] = "2026-11-25T09:30:00Z"
    created, outcomes = formats.write_reports(report_of(later, NOW + datetime.timedelta(hours=2)), tmp_path,
                                              list(formats.FORMATS))
    assert not created and not any(outcome.changed for outcome in outcomes)
    for path in tmp_path.iterdir():
        assert "2026-11-25T10:00:00Z" in path.read_text() or path.suffix in (".csv", ".prom"), path.name
    document = json.loads((tmp_path / "exchange_pki_report.json").read_text())
    assert document["generated_at"] == "2026-11-25T10:00:00Z"
    assert set(document["collected_at"].values()) == {"2026-11-25T09:30:00Z"}
    generated = int((NOW + datetime.timedelta(hours=2)).timestamp())
    assert f"exchange_pki_report_generated_timestamp_seconds {generated}" in (
        tmp_path / "exchange_pki_report.prom").read_text()


def test_a_byte_identical_rerun_leaves_the_files_alone(fleet, tmp_path):
    formats.write_reports(report_of(fleet), tmp_path, list(formats.FORMATS))
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()}
    _created, outcomes = formats.write_reports(report_of(fleet), tmp_path, list(formats.FORMATS))
    assert not any(outcome.changed for outcome in outcomes)
    assert {path.name: path.stat().st_mtime_ns for path in tmp_path.iterdir()} == before


def test_a_changed_certificate_rewrites_every_format(fleet, tmp_path):
    formats.write_reports(report_of(fleet), tmp_path, list(formats.FORMATS))
    fleet["ex1"]["certificates"][0]["not_after"] = "2026-12-14T10:00:00Z"
    _created, outcomes = formats.write_reports(report_of(fleet), tmp_path, list(formats.FORMATS))
    assert all(outcome.changed for outcome in outcomes)
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_a_wrong_mode_is_corrected(fleet, tmp_path):
    formats.write_reports(report_of(fleet), tmp_path, ["csv"])
    (tmp_path / "exchange_pki_report.csv").chmod(0o644)
    _created, (outcome,) = formats.write_reports(report_of(fleet), tmp_path, ["csv"])
    assert outcome.changed and mode(outcome.path) == 0o640


def test_check_mode_writes_nothing_and_predicts_changes(fleet, tmp_path):
    dest = tmp_path / "new"
    created, outcomes = formats.write_reports(report_of(fleet), dest, ["html", "json"], check_mode=True)
    assert created and all(outcome.changed for outcome in outcomes) and not dest.exists()
    formats.write_reports(report_of(fleet), dest, ["html", "json"])
    fleet["ex1"]["findings"].pop()
    snapshot = {path: path.read_bytes() for path in dest.iterdir()}
    created, outcomes = formats.write_reports(report_of(fleet), dest, ["html", "json"], check_mode=True)
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


# --- the truth: failed reads, probes, hosts without facts ----------------------------------------


def every_format(report: _report.FleetReport) -> dict[str, str]:
    return {name: text(fmt.render, report) for name, fmt in formats.FORMATS.items()}


def test_a_failed_read_reaches_every_format_and_counts_as_a_warning():
    """Get-AuthConfig failed: the host is not simply "collected", its Auth facts are unknown, not absent."""
    fact = host_fact("ex1", [certificate("CN=mail.contoso.lab", days_remaining=300)],
                     unavailable={"Get-AuthConfig": "Access is denied.\r\nAt line:1"})
    report = report_of({"ex1": fact})
    (host,) = report.hosts
    assert host.unavailable == {"Get-AuthConfig": "Access is denied. At line:1"}
    assert host.worst_severity == "warning" and report.summary.worst_severity == "warning"
    assert report.summary.hosts_incomplete == ("ex1",)
    (item,) = report.action_plan
    assert (item.severity, item.finding_id, item.servers) == ("warning", "unavailable_read", ("ex1",))
    assert "Get-AuthConfig" in item.title and "unknown" in item.title
    rendered = every_format(report)
    for name, content in rendered.items():
        assert "Get-AuthConfig" in content, name
    row = next(csv.DictReader(io.StringIO(rendered["csv"])))
    assert row["record"] == "action" and row["finding_ids"] == "unavailable_read"
    certificate_row = list(csv.DictReader(io.StringIO(rendered["csv"])))[-1]
    assert certificate_row["unavailable"] == "Get-AuthConfig: Access is denied. At line:1"
    assert "Auth certificate configuration" in certificate_row["unknown_facts"]
    document = json.loads(rendered["json"])
    assert document["hosts"][0]["unavailable"] == {"Get-AuthConfig": "Access is denied. At line:1"}
    assert document["hosts"][0]["worst_severity"] == "warning"
    assert 'exchange_pki_server_read_failed{server="ex1",read="Get-AuthConfig"} 1' in rendered["prometheus"]
    assert "Reads that failed (their facts are unknown):** ex1: Get-AuthConfig" in rendered["markdown"]


def test_probe_results_reach_the_reports_and_a_failed_probe_is_a_warning():
    probes = {
        "owa": {"host": "ex1", "port": 443, "thumbprint": "AB" * 20, "name_matches": True, "chain": ["PEM"]},
        "smtp": {"host": "ex1", "port": 25, "thumbprint": "CD" * 20, "expected_thumbprint_matches": False},
        "imap": {"failed": True, "stage": "connect", "msg": "connection refused"},
    }
    report = report_of({"ex1": host_fact("ex1", [certificate("CN=web", days_remaining=300)], probes=probes)})
    (host,) = report.hosts
    assert [problem.name for problem in host.problems] == ["imap", "smtp"]
    assert host.worst_severity == "warning" and report.summary.probes_failed == 2
    assert [item.finding_id for item in report.action_plan] == ["probe_failed", "probe_failed"]
    rendered = every_format(report)
    families = prometheus_families(report)
    success = {s.labels["probe"]: s.value for s in families["exchange_pki_probe_success"].samples}
    assert success == {"imap": 0, "owa": 1, "smtp": 0}
    document = json.loads(rendered["json"])
    assert document["hosts"][0]["probes"]["imap"]["stage"] == "connect"
    assert "chain" not in document["hosts"][0]["probes"]["owa"]  # the PEM chain stays out of the report
    assert "probe imap: failed at connect: connection refused" in rendered["csv"]
    assert "Probes that failed:** 2" in rendered["markdown"]


@pytest.mark.parametrize(("reason", "label"), [
    ("unreachable", "unreachable"),
    ("authentication_refused", "authentication refused"),
    ("access_denied", "access denied"),
    ("connection_dropped", "connection dropped"),
    ("exchange_unavailable", "Exchange unavailable"),
])
def test_a_host_without_facts_shows_its_reason_in_every_format(fleet, reason, label):
    fleet["ex5"] = not_collected(reason, "WinRM said: 401\r\nbad")
    report = report_of(fleet)
    ex5 = report.hosts[-1]
    assert (ex5.not_collected_reason, ex5.not_collected_message) == (reason, "WinRM said: 401 bad")
    assert report.summary.as_dict()["not_collected"] == {"ex5": {"reason": reason, "message": "WinRM said: 401 bad"}}
    item = next(item for item in report.action_plan if item.finding_id == "not_collected")
    assert item.servers == ("ex5",) and label in item.title and item.action
    rendered = every_format(report)
    for name, content in rendered.items():
        assert "censored" not in content, name
        assert label in content or reason in content, name
    assert f"ex5 ({label}: WinRM said: 401 bad)" in rendered["markdown"]
    row = next(row for row in csv.DictReader(io.StringIO(rendered["csv"])) if row["record"] == "server")
    assert (row["server"], row["not_collected_reason"], row["not_collected_message"]) == (
        "ex5", reason, "WinRM said: 401 bad")
    assert f'exchange_pki_server_not_collected_info{{server="ex5",reason="{reason}"}} 1' in rendered["prometheus"]


@pytest.mark.parametrize("value", [
    {"censored": "the output has been hidden due to the fact that 'no_log: true' was specified for this result"},
    {"not_collected": {"censored": "the output has been hidden"}},
    {"not_collected": {"reason": "unreachable", "message": {"censored": "hidden"}}},
])
def test_a_censored_value_is_never_shown_and_says_why(fleet, value):
    fleet["ex5"] = value
    rendered = every_format(report_of(fleet))
    for name, content in rendered.items():
        assert "censored" not in content and "has been hidden" not in content, name
    assert "reason hidden by no_log" in rendered["markdown"]


def test_a_failed_task_result_passed_as_the_fact_is_a_failure_record(fleet):
    fleet["ex5"] = {"failed": True, "failure_reason": "access_denied", "msg": "Access denied to Exchange"}
    ex5 = report_of(fleet).hosts[-1]
    assert (ex5.not_collected_reason, ex5.not_collected_message) == ("access_denied", "Access denied to Exchange")


def test_a_templated_reason_with_blanks_is_accepted(fleet):
    fleet["ex5"] = not_collected(" unreachable\n", "timed out")
    assert report_of(fleet).hosts[-1].not_collected_reason == "unreachable"


def test_an_unknown_failure_reason_is_refused(fleet):
    fleet["ex5"] = not_collected("bored", "x")
    with pytest.raises(_report.ReportInputError, match=r"^host ex5: not_collected.reason 'bored' is not one of"):
        report_of(fleet)


# --- the action plan ------------------------------------------------------------------------------


def test_the_lab_dag_scenario_is_three_critical_problems_not_nine_rows():
    report = report_of(lab_dag_fleet())
    assert report.summary.findings["critical"] == 9
    critical = [item for item in report.action_plan if item.severity == "critical"]
    assert [(item.finding_id, item.scope, item.servers) for item in critical] == [
        ("expiring_critical", "certificate", ("ex1", "ex2", "ex3", "ex4")),  # one certificate to renew
        ("auth_next_not_staged", "organization", ("ex1", "ex2", "ex3", "ex4")),  # one Auth configuration
        ("cluster_certificate_expired", "certificate", ("ex2",)),  # last: inform only
    ]
    mail, auth, cluster = critical
    assert mail.thumbprint == lab_dag_fleet()["ex1"]["certificates"][0]["thumbprint"]
    assert mail.subject == "CN=mail.contoso.lab" and "20 days left" in mail.title
    assert mail.action.startswith("Renew it") and mail.url == _policy.CATALOGUE["expiring_critical"].url
    assert cluster.action.startswith("Inform, do not modify: Failover-cluster certificates")
    assert report.summary.actions == {"critical": 3, "warning": 1, "info": 0}


def test_cluster_certificates_rank_after_actionable_problems_of_the_same_severity():
    cliusr = certificate("CN=CLIUSR", days_remaining=-5, roles=("cluster",), store="PKU2U", self_signed=True)
    web = certificate("CN=web.contoso.lab", days_remaining=10)
    facts = {
        "ex1": host_fact("ex1", [cliusr], [finding("cluster_certificate_expired", "critical", cliusr)]),
        "ex2": host_fact("ex2", [cliusr], [finding("cluster_certificate_expired", "critical", cliusr)]),
        "ex3": host_fact("ex3", [web], [finding("expiring_critical", "critical", web)]),
    }
    plan = report_of(facts).action_plan
    assert [item.finding_id for item in plan] == ["expiring_critical", "cluster_certificate_expired"]
    assert plan[1].inform_only and not plan[0].inform_only


def test_the_action_plan_leads_every_format():
    rendered = every_format(report_of(lab_dag_fleet()))
    markdown = rendered["markdown"]
    assert markdown.index("## Action plan") < markdown.index("## Summary") < markdown.index("## Critical")
    plan_table = markdown[markdown.index("## Action plan"):markdown.index("## Summary")]
    assert plan_table.count("| critical |") == 3
    rows = list(csv.DictReader(io.StringIO(rendered["csv"])))
    assert [row["record"] for row in rows[:4]] == ["action"] * 4 and rows[4]["record"] == "certificate"
    assert rows[0]["servers"] == "ex1;ex2;ex3;ex4" and rows[0]["action"].startswith("Renew it")
    document = json.loads(rendered["json"])
    assert list(document).index("action_plan") < list(document).index("hosts")
    assert [item["finding_id"] for item in document["action_plan"]][:3] == [
        "expiring_critical", "auth_next_not_staged", "cluster_certificate_expired"]
    first_metric = next(line for line in rendered["prometheus"].splitlines() if not line.startswith("#"))
    assert first_metric == 'exchange_pki_action_plan_problems{severity="critical"} 3'


def test_no_action_names_a_module_this_release_does_not_ship():
    shipped = {path.stem for path in Path(formats.__file__).parents[1].joinpath("modules").glob("*.py")}
    for item in report_of(lab_dag_fleet()).action_plan:
        for module in re.findall(r"exchange\.pki\.(\w+)", item.action):
            assert module in shipped, item


# --- sources --------------------------------------------------------------------------------------


def test_every_catalogued_finding_links_its_source_page():
    for spec in _policy.CATALOGUE.values():
        pattern = r"^https://(learn\.microsoft\.com|microsoft\.github\.io/CSS-Exchange)/"
        if spec.source.startswith("RFC "):  # a rule that is the standard's own
            pattern = r"^https://(learn\.microsoft\.com|www\.rfc-editor\.org)/"
        assert spec.url and re.match(pattern, spec.url), spec.id
    css = "https://microsoft.github.io/CSS-Exchange/"
    assert _policy.CATALOGUE["expiring_critical"].url == css + "Diagnostics/HealthChecker/CertificateCheck/"
    assert _policy.CATALOGUE["auth_next_not_staged"].url == css + "Admin/MonitorExchangeAuthCertificate/"
    assert _policy.CATALOGUE["no_internal_transport"].url == (
        css + "Diagnostics/HealthChecker/InternalTransportCertificateCheck/")


def test_docs_findings_links_the_same_pages_as_the_catalogue():
    document = (Path(__file__).parents[4] / "docs" / "findings.md").read_text()
    sections = re.split(r"(?m)^## ", document)
    references = {section.split("\n", 1)[0]: re.findall(r"(?m)^\*\*Reference:\*\* <([^>]+)>$", section)
                  for section in sections}
    for finding_id, spec in _policy.CATALOGUE.items():
        if f"\n## {finding_id}\n" in document:
            assert references[finding_id] == [spec.url], finding_id


# --- Prometheus: one series per role --------------------------------------------------------------


def test_prometheus_has_one_series_per_role_and_no_joined_labels(fleet):
    families = prometheus_families(report_of(fleet))
    expiry = families["exchange_pki_certificate_expiration_timestamp_seconds"].samples
    assert not [s for s in expiry if "," in s.labels["role"]]
    mail = {s.labels["role"] for s in expiry
            if s.labels["server"] == "ex1" and s.labels["subject"] == "CN=mail.contoso.lab"}
    assert mail == {"connector", "iis", "imap", "pop", "smtp"}
    keys = [(s.name, tuple(sorted(s.labels.items()))) for family in families.values() for s in family.samples]
    assert len(keys) == len(set(keys))  # every series is unique
    assert all(set(s.labels) == set(formats.PROMETHEUS_CERTIFICATE_LABELS) for s in expiry)


# --- input validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda fact: fact["certificates"].append({}), "certificates[5]: thumbprint is missing or not a string"),
    (lambda fact: fact["certificates"][0].update(days_remaining="abc"), "days_remaining 'abc' is not an integer"),
    (lambda fact: fact["certificates"][0].update(days_remaining=True), "days_remaining 'True' is not an integer"),
    (lambda fact: fact["certificates"][0].update(roles="iis"), "roles is not a list of strings"),
    (lambda fact: fact["certificates"][0].update(subject=["CN=x"]), "subject is a list, not a string"),
    (lambda fact: fact.update(unavailable=["Get-AuthConfig"]), "unavailable is a list, not a mapping"),
    (lambda fact: fact.update(collected_at="soon"), "collected_at 'soon' is not an ISO-8601 time"),
    (lambda fact: fact["findings"].append({"id": "x", "severity": "info", "message": 5}),
     "findings[3].message is a int, not a string"),
])
def test_hostile_facts_are_refused_naming_host_and_field(fleet, mutate, message):
    mutate(fleet["ex1"])
    with pytest.raises(_report.ReportInputError, match=re.escape(message)) as error:
        report_of(fleet)
    assert str(error.value).startswith("host ex1: ")


def test_host_names_must_be_text():
    with pytest.raises(_report.ReportInputError, match="facts: host name 5"):
        _report.build_report({5: None}, title="t", now=NOW)


# --- the writer: all or none, byte-identical, one owner -------------------------------------------


def test_a_failing_format_leaves_the_previous_files_untouched(fleet, tmp_path, monkeypatch):
    formats.write_reports(report_of(fleet), tmp_path, list(formats.FORMATS))
    snapshot = {path.name: path.read_bytes() for path in tmp_path.iterdir()}

    def broken(report):
        yield "half a file\n"
        raise RuntimeError("renderer bug")

    monkeypatch.setitem(formats.FORMATS, "prometheus",
                        dataclasses.replace(formats.FORMATS["prometheus"], render=broken))
    fleet["ex1"]["certificates"][0]["not_after"] = "2026-12-14T10:00:00Z"  # every format would change
    with pytest.raises(RuntimeError):
        formats.write_reports(report_of(fleet), tmp_path, list(formats.FORMATS))
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == snapshot  # no temporary file either


def test_a_rename_that_fails_leaves_no_temporary_file(fleet, tmp_path):
    (tmp_path / formats.FORMATS["json"].filename).mkdir()  # a directory where the file should go
    with pytest.raises(OSError):
        formats.write_reports(report_of(fleet), tmp_path, ["csv", "json", "markdown"])
    assert not list(tmp_path.glob(".*"))


def test_a_failing_first_write_leaves_no_directory(fleet, tmp_path, monkeypatch):
    monkeypatch.setitem(formats.FORMATS, "csv", dataclasses.replace(formats.FORMATS["csv"], render=lambda r: 1 / 0))
    with pytest.raises(ZeroDivisionError):
        formats.write_reports(report_of(fleet), tmp_path / "new", ["json", "csv"])
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["csv", "json", "markdown", "prometheus"])
def test_the_writer_writes_exactly_what_the_format_renders(name, tmp_path, monkeypatch):
    monkeypatch.setattr(formats, "WRITE_BLOCK_CHARS", 997)  # many blocks, lines split across them
    report = report_of(bulk_fleet(30))
    formats.write_reports(report, tmp_path, [name])
    expected = text(formats.FORMATS[name].render, report).encode()
    assert (tmp_path / formats.FORMATS[name].filename).read_bytes() == expected


@pytest.mark.parametrize("block", [1, 7, 4096])
def test_the_content_digest_ignores_volatile_lines_in_any_block_size(block):
    prefixes = ('"generated_at":', "  <p class=\"generated\"")
    first = b'{\n"generated_at": "a",\n  "x": 1,\n   <p class="generated">one</p>\nlast'
    second = b'{\n"generated_at": "b",\n  "x": 1,\n   <p class="generated">two</p>\nlast'
    third = b'{\n"generated_at": "a",\n  "x": 2,\n   <p class="generated">one</p>\nlast'

    def digest(data: bytes) -> str:
        content = formats._ContentDigest(prefixes)
        for start in range(0, len(data), block):
            content.feed(data[start:start + block])
        return content.digests()[0]

    assert digest(first) == digest(second) != digest(third)


def test_severities_have_one_owner_and_the_report_modules_no_import_cycle():
    assert _report.SEVERITY_RANK is _policy.SEVERITY_RANK and _report.SEVERITIES is _policy.SEVERITIES
    assert _report.worst(["info", "critical", "warning"]) == "critical"
    plugin_utils = Path(_report.__file__).parent

    def imports(name: str) -> set[str]:
        tree = ast.parse((plugin_utils / f"{name}.py").read_text())
        found = {node.module.rsplit(".", 1)[-1] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
        return found | {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                        for alias in node.names}
    assert not imports("_report") & {"_report_html", "_report_formats", "_alerts"}
    assert "_report_formats" not in imports("_report_html")


@pytest.mark.parametrize("subject", ['CN="x', '"', 'CN="unbalanced, O=x'])
def test_a_subject_that_cannot_be_split_is_shown_whole(subject):
    # Hostile or broken facts: the report shows the whole subject instead of failing with a traceback.
    assert _report.subject_cn(subject) == subject
    cert = certificate("CN=web", days_remaining=10)
    cert.update(subject=subject, issuer=subject)
    model = report_of({"ex1": host_fact("ex1", [cert])})
    assert text(formats.render_markdown, model) and text(formats.render_csv, model)
