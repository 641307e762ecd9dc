# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the HTML fleet report: structure, escaping, the JSON block, the action plan, the timeline.

The layout in a real browser (no overflowing cell at 1024 and 1400 px) is tested in
tests/integration/test_report_html_layout.py.
"""

from __future__ import annotations

import datetime
import html
import html.parser
import json
import re
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _report
from ansible_collections.exchange.pki.plugins.plugin_utils import _report_html as report_html
from ansible_collections.exchange.pki.plugins.plugin_utils._report_html import build_timeline, render_html
from tests.unit.plugins.plugin_utils.report_facts import NOW, bulk_fleet, certificate, dag_fleet, finding, host_fact

HOSTILE_SUBJECT = 'CN=<script>alert(1)</script>\u2028"q\'uote"\u202eevil</script><!--'


def report_of(facts: dict[str, Any], now: datetime.datetime = NOW) -> _report.FleetReport:
    return _report.build_report(facts, title="Contoso <certificates>", now=now)


def page_of(facts: dict[str, Any]) -> str:
    return "".join(render_html(report_of(facts)))


class Page(html.parser.HTMLParser):
    """The parts of a page the tests look at: references, script elements, text of elements by id."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []
        self.links: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self._script_text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.sources += [value or "" for name, value in attrs if name in ("src", "xlink:href", "srcset", "data")]
        self.links += [value or "" for name, value in attrs if name == "href"]
        if tag == "script":
            self._script, self._script_text = dict(attrs), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._script_text)))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text.append(data)
        else:
            self.text.append(data)

    def data(self) -> dict[str, Any]:
        (block,) = [text for attrs, text in self.scripts if attrs.get("type") == "application/json"]
        return json.loads(block)


@pytest.fixture
def fleet() -> dict[str, Any]:
    return dag_fleet()


# --- structure ------------------------------------------------------------------------------------


def test_the_page_is_self_contained(fleet):
    text = page_of(fleet)
    page = Page(text)
    assert page.sources == []  # no image, script or frame is loaded from anywhere
    assert not re.search(r"(?i)@import|url\(|<link\b", text)
    assert all(link.startswith(("https://", "http://")) for link in page.links)  # links only, never loaded
    kinds = [attrs.get("type") for attrs, _text in page.scripts]
    assert kinds == ["application/json", None]
    for section in ("action-plan", "summary", "attention", "timeline", "dags", "findings", "servers", "inventory"):
        assert f'id="{section}"' in text


def test_the_action_plan_leads_the_page(fleet):
    text = page_of(fleet)
    plan_at = text.index('id="action-plan"')
    assert plan_at < text.index('id="summary"') < text.index('id="inventory"')
    # without JavaScript, the plan is there as HTML, worst first
    plan_html = text[plan_at:text.index("</section>", plan_at)]
    badges = re.findall(r'<tr class="sev-(\w+)">', plan_html)
    assert badges and badges == sorted(badges, key=report_html.LANES.index)
    assert "expiring_critical" in plan_html and "ex1, ex2, ex4" in plan_html


def test_the_plan_renders_every_item_of_the_report_model(fleet):
    report = report_of(fleet)
    text = "".join(render_html(report))
    plan_html = text[text.index('id="action-plan"'):text.index('id="summary"')]
    assert plan_html.count('<tr class="sev-') == len(report.action_plan) > 0
    for item in report.action_plan:
        assert html.escape(item.title) in plan_html and html.escape(item.action) in plan_html
        if item.url:
            assert f'<a href="{html.escape(item.url)}" rel="noopener noreferrer"' in plan_html
    assert Page(text).data()["plan"][0][1] == report.action_plan[0].title


def test_a_plan_longer_than_a_page_is_counted_and_complete_in_the_data(monkeypatch):
    monkeypatch.setattr(report_html, "ACTION_ROWS", 2)
    report = report_of(bulk_fleet(40, 12))
    text = "".join(render_html(report))
    plan = report.action_plan
    assert len(plan) > 2
    plan_html = text[text.index('id="action-plan"'):text.index('id="summary"')]
    assert plan_html.count('<tr class="sev-') == 2
    assert f"and {len(plan) - 2} more problems" in plan_html
    assert len(Page(text).data()["plan"]) == len(plan)


def test_dag_members_that_differ_are_explained(fleet):
    text = page_of(fleet)
    dags = text[text.index('id="dags"'):]
    assert "load balancer" in dags and "Extended Protection" in dags
    # the flag is a block of its own: it can never run into the cell's text ("differsnone")
    assert re.search(r'<td class="odd"><div class="flag">&ne; differs from the other members</div><div', dags)


def test_an_empty_differing_cell_reads_none_on_its_own_line(fleet):
    mail = fleet["ex3"]["certificates"][0]
    fleet["ex3"]["certificates"][0] = {**mail, "roles": [], "services": []}
    text = page_of(fleet)
    assert '<div class="flag">&ne; differs from the other members</div><div class="muted">none</div>' in text


def test_the_filter_is_wide_enough_for_its_placeholder(fleet):
    for placeholder, size in re.findall(r'<input type="search" class="filter" placeholder="([^"]+)"[^>]* size="(\d+)"',
                                        page_of(fleet)):
        assert int(size) >= len(placeholder)


# --- escaping -------------------------------------------------------------------------------------


def hostile(fleet: dict[str, Any]) -> dict[str, Any]:
    cert = fleet["ex1"]["certificates"][0]
    cert["subject"] = HOSTILE_SUBJECT
    cert["issuer"] = HOSTILE_SUBJECT
    cert["roles"] = ["iis", "<b>role</b>"]
    fleet["ex1"]["findings"][0].update(
        message='<img src=x onerror="alert(2)">', remediation="Run </script><script>alert(3)</script>",
        url="javascript:alert(4)",
    )
    fleet["ex1"]["server"]["site"] = "</script>"
    fleet["ex1"]["server"]["dag"] = '"><svg onload=alert(5)>'
    return fleet


def test_every_fact_value_is_escaped(fleet):
    text = page_of(hostile(fleet))
    page = Page(text)
    assert [attrs.get("type") for attrs, _text in page.scripts] == ["application/json", None]
    assert "<img" not in text and "<svg onload" not in text and "<b>role" not in text
    assert "javascript:" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # server-rendered (action plan, DAG tables)


def test_the_json_block_cannot_be_closed_from_inside(fleet):
    text = page_of(hostile(fleet))
    start = text.index('<script type="application/json" id="report-data">')
    block = text[start:text.index("</script>", start)]
    assert "<" not in block[1:] and ">" not in block[block.index(">") + 1:] and "&" not in block
    assert "\u2028" not in block and "\u202e" not in block and block.isascii()
    data = Page(text).data()
    assert any(row[1] == HOSTILE_SUBJECT for row in data["certificates"])
    assert [HOSTILE_SUBJECT.split(",", maxsplit=1)[0].removeprefix("CN="), HOSTILE_SUBJECT] in data["issuers"] or any(
        issuer[1] == HOSTILE_SUBJECT for issuer in data["issuers"])
    urls = {data["strings"][row[7]] for row in data["findings"]}
    assert urls and all(url == "" or url.startswith("https://") for url in urls)  # never javascript:


def test_a_subject_that_cannot_be_split_is_shown_whole():
    assert report_html.subject_cn('CN="unbalanced, O=x') == 'CN="unbalanced, O=x'
    assert report_html.subject_cn("CN=a\\, b, O=x") == "a, b"
    assert report_html.subject_cn("") == "-"


def test_the_script_only_sets_text_and_checked_links():
    script = report_html.SCRIPT
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "eval(" not in script
    assert "document.write" not in script
    assert 'link.href = url' in script and "/^https?:[/][/]/i.test(url)" in script


# --- the data block -------------------------------------------------------------------------------


def test_the_data_block_holds_every_row(fleet):
    report = report_of(fleet)
    data = Page("".join(render_html(report))).data()
    assert data["hosts"] == [host.host for host in report.hosts]
    assert len(data["certificates"]) == report.summary.certificates
    assert len(data["findings"]) == sum(report.summary.findings.values())
    assert len(data["servers"]) == report.summary.hosts
    first = next(report.certificates())
    row = data["certificates"][0]
    assert data["hosts"][row[0]] == first.host and row[1] == first.subject and row[7] == first.thumbprint
    assert report_html.LANES[row[5]] == first.severity_or_ok
    missing = data["servers"][data["hosts"].index("ex5")]
    assert missing[12] == 0 and "not collected" not in missing[10] or missing[10].startswith("reason unknown")


def test_a_large_fleet_is_compact():
    """120 rows of DOM per page at most; the rest is JSON (1,000 servers x 12 certificates)."""
    text = page_of(bulk_fleet(1000, 12))
    assert text.count("<tr") < 400
    assert text.count("<circle") < 4 * 60
    assert len(text) < 300 * 12_000  # bytes per certificate, all data included
    assert max(len(line) for line in text.splitlines()) < 200_000  # the writer digests the page line by line


def test_the_page_is_a_function_of_the_facts_except_the_generated_line(fleet):
    first = page_of(fleet)
    later = "".join(render_html(report_of(fleet, NOW + datetime.timedelta(hours=3))))
    diff = [(a, b) for a, b in zip(first.splitlines(), later.splitlines(), strict=True) if a != b]
    assert [a.split(">")[0] for a, _b in diff] == ['<p class="generated"']


# --- not collected, failed reads, probes ----------------------------------------------------------


def test_host_problems_name_the_reason_the_failed_reads_and_the_probes(fleet):
    fleet["ex5"] = {"not_collected": {"reason": "authentication_refused", "message": "401 from ex5"}}
    fleet["ex4"]["unavailable"] = {"Get-AuthConfig": "access denied"}
    fleet["ex4"]["probes"] = {
        "owa": {"host": "ex4", "port": 443, "thumbprint": "AB" * 20, "name_matches": True},
        "smtp": {"host": "ex4", "port": 25, "thumbprint": "CD" * 20, "expected_thumbprint_matches": False},
    }
    report = report_of(fleet)
    hosts = {host.host: host for host in report.hosts}
    ((kind, _severity, text),) = report_html.host_problems(hosts["ex5"])
    assert (kind, text) == ("not collected", "authentication refused: 401 from ex5")
    kinds = [kind for kind, _severity, _text in report_html.host_problems(hosts["ex4"])]
    assert kinds == ["read failed", "probe failed"]
    text = "".join(render_html(report))
    attention = text[text.index('id="attention"'):text.index('id="timeline"')]
    assert "authentication refused: 401 from ex5" in attention
    assert "Get-AuthConfig" in attention and "probe smtp" in attention and "probe owa" not in attention
    plan = text[text.index('id="action-plan"'):text.index('id="summary"')]
    assert "No facts: authentication refused" in plan
    servers = Page(text).data()["servers"]
    ex4 = servers[[host.host for host in report.hosts].index("ex4")]
    assert "probe smtp" in ex4[10] and report_html.LANES[ex4[11]] == "critical"


def test_not_collected_hosts_show_their_reason(fleet):
    fleet["ex5"] = {"not_collected": {"reason": "connection_dropped", "message": "WinRM connection reset"}}
    text = page_of(fleet)
    attention = text[text.index('id="attention"'):text.index('id="timeline"')]
    assert "connection dropped: WinRM connection reset" in attention


# --- timeline -------------------------------------------------------------------------------------


def test_the_timeline_counts_certificates_per_period_and_severity():
    certs = [certificate(f"CN=c{index}", days_remaining=days, seed=index)
             for index, days in enumerate((-5, 20, 20, 21, 200, 5000))]
    findings = [finding("expiring_critical", "critical", cert) for cert in certs[1:4]]
    timeline = build_timeline(report_of({"ex1": host_fact("ex1", certs, findings)}))
    assert timeline.period == "month"
    counts = {(bucket.severity, bucket.clamped): bucket.count for bucket in timeline.buckets}
    assert sum(bucket.count for bucket in timeline.buckets) == len(certs)
    assert counts[("critical", False)] == 3  # the same month, one circle
    assert counts[("ok", True)] == 1  # 5000 days: beyond the chart, at its edge
    clamped = next(bucket for bucket in timeline.buckets if bucket.clamped)
    assert clamped.x == timeline.right
    assert all(timeline.left <= bucket.x <= timeline.right for bucket in timeline.buckets)
    assert max(bucket.r for bucket in timeline.buckets) <= timeline.lane_height / 2


def test_a_short_timeline_counts_per_week():
    certs = [certificate(f"CN=c{days}", days_remaining=days) for days in (3, 10, 40)]
    timeline = build_timeline(report_of({"ex1": host_fact("ex1", certs)}))
    assert timeline.period == "week"
    assert all((bucket.end - bucket.start).days == 6 and bucket.start.weekday() == 0 for bucket in timeline.buckets)
    xs = [bucket.x for bucket in timeline.buckets]
    assert xs == sorted(xs) and timeline.today_x < xs[0] < timeline.critical_x < xs[-1]


def test_the_timeline_of_a_large_fleet_stays_small():
    report = report_of(bulk_fleet(500, 12))
    timeline = build_timeline(report)
    assert len(timeline.buckets) <= len(report_html.LANES) * 40
    assert sum(bucket.count for bucket in timeline.buckets) == report.summary.certificates
