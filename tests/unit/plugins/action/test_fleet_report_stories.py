# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet_report's ``ledger``: each renewed certificate's story in every format, from a ledger the real writers made.

Without ``ledger`` the report is what it was (test_fleet_report.py and the format tests pin its bytes); with it,
every format only gains its stories: the rest of each file stays byte for byte the same.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib
import re
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.action import fleet_report, ledger_info, ledger_record
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import failed_result, run_action
from tests.unit.plugins.action.lab_host import LabHost
from tests.unit.plugins.action.ledger_lifecycle import IDENTITY, Lifecycle, write_lifecycle
from tests.unit.plugins.plugin_utils.report_facts import dag_fleet

GENERATED = "2026-11-25T12:00:00Z"
HOSTILE = "=cmd|' /C calc'!A0 <script>alert(1)</script>"
FILES = {"html": "exchange_pki_report.html", "csv": "exchange_pki_report.csv", "json": "exchange_pki_report.json",
         "markdown": "exchange_pki_report.md", "prometheus": "exchange_pki_report.prom"}


def report(dest: pathlib.Path, **extra: Any) -> dict[str, Any]:
    args = {"facts": dag_fleet(), "dest": str(dest), "now": GENERATED, **extra}
    result = run_action(fleet_report.ActionModule, args)
    assert result.get("failed") is not True, result.get("msg")
    return result


@pytest.fixture
def life(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, frozen_clock: Any) -> Lifecycle:
    """The renewal of ex1's certificate, then a failed renewal of a certificate with a hostile identity."""
    life = write_lifecycle(tmp_path / "ledger.jsonl", monkeypatch)
    failed = LabHost(Fleet.from_scenario("dag", now=NOW), "ex2").run(ledger_record.ActionModule, {
        "ledger": str(life.ledger), "action": "renewal_failed", "result": "failed", "server": "EX2|<b>",
        "before": {"thumbprints": ["AB" * 20]},
        "after": {"identity": HOSTILE, "thumbprint": "CD" * 20, "step": "verify"},
        "message": "</details></td> the probe saw the old certificate | =HYPERLINK(\"x\")"})
    assert failed.get("failed") is not True, failed.get("msg")
    return life


def test_every_format_tells_the_story_and_keeps_the_rest_byte_for_byte(tmp_path, life):
    plain = report(tmp_path / "plain")
    told = report(tmp_path / "told", ledger=str(life.ledger))
    plain_dir, told_dir = tmp_path / "plain", tmp_path / "told"
    assert set(told["files"]) == {*plain["files"], "ledger_csv"}
    assert told["files"]["ledger_csv"] == str(told_dir / "exchange_pki_ledger.csv")
    text = {name: (told_dir / filename).read_text(encoding="utf-8") for name, filename in FILES.items()}
    before = {name: (plain_dir / filename).read_text(encoding="utf-8") for name, filename in FILES.items()}
    expected = run_action(ledger_info.ActionModule, {"ledger": str(life.ledger)})["stories"]
    assert list(expected) == sorted([IDENTITY, HOSTILE])

    # CSV and Prometheus: unchanged; the stories are a separate CSV file, one row per step
    assert text["csv"] == before["csv"] and text["prometheus"] == before["prometheus"]
    rows = list(csv.DictReader(io.StringIO((told_dir / "exchange_pki_ledger.csv").read_text(encoding="utf-8"))))
    ours = [row for row in rows if row["identity"] == IDENTITY]
    assert [row["stage"] for row in ours] == ["requested", "imported", "bound", "verified", "removed"]
    assert [row["time"] for row in ours] == [step["time"] for step in expected[IDENTITY]]
    assert ours[1]["thumbprint"] == ours[2]["thumbprint"] == life.new and ours[4]["thumbprint"] == life.old
    assert ours[2]["detail"] == "services IMAP, POP, IIS, SMTP" and ours[2]["who"].endswith("as CONTOSO\\ansible")
    (bad,) = [row for row in rows if row["identity"] != IDENTITY]
    assert bad["identity"] == "'" + HOSTILE  # a spreadsheet does not run it as a formula
    assert (bad["stage"], bad["result"], bad["server"]) == ("failed", "failed", "EX2|<b>")
    assert "step verify; </details></td> the probe saw the old certificate" in bad["detail"]

    # JSON: the same document plus "ledger" and "stories", the steps ledger_info tells
    document = json.loads(text["json"])
    assert document.pop("stories") == expected
    ledger = document.pop("ledger")
    assert document == json.loads(before["json"])
    assert ledger["path"] == str(life.ledger) and ledger["found"] is True and ledger["skipped"] == []
    (mine,) = [cert for cert in ledger["certificates"] if cert["identity"] == IDENTITY]
    assert mine == {"identity": IDENTITY, "thumbprint": life.new, "subject": None, "stage": "removed", "steps": 5}

    # Markdown: the same text, then a section per certificate
    assert text["markdown"].startswith(before["markdown"])
    stories = text["markdown"][len(before["markdown"]):]
    assert stories.startswith("\n## Certificate stories\n\n_From the audit ledger: 2 renewed certificate(s) in the ")
    assert f"\n### {IDENTITY} ({life.new[:8]}): removed\n" in stories
    assert stories.count("| When | Stage | Server | Who | Result | Certificate | Detail |") == 2
    assert "| EX2\\|&lt;b&gt; |" in stories  # table cells escaped: no column split, no HTML
    assert "<script>" not in stories and "<b>" not in stories and "</details>" not in stories
    who = ours[2]["who"].replace("\\", "\\\\")  # Markdown shows one backslash
    assert f"| {ours[2]['time']} | bound | EX1 | {who} | changed | {life.new[:8]} | services IMAP" in stories
    assert told["markdown"] == text["markdown"]

    # HTML: the same page with one more section, one collapsible story per certificate, every value escaped
    section = re.search(r'<section id="stories">.*?</section>\n', text["html"], re.DOTALL)
    assert section is not None
    assert text["html"].replace(section.group(), "") == before["html"]
    html = section.group()
    assert html.count('<details class="story">') == 2 and html.count("</details>") == 2
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "</details></td> the probe" not in html
    assert html.count("<tr><td><time") == 6
    assert f"<strong>{IDENTITY}</strong>" in html and "&middot; removed &middot; 5 step(s)" in html


def test_the_role_passes_report_ledger_through() -> None:
    tasks = (pathlib.Path(__file__).resolve().parents[4] / "roles" / "report" / "tasks" / "main.yml").read_text()
    assert 'ledger: "{{ report_ledger or omit }}"' in tasks


def test_a_missing_ledger_tells_no_story_and_says_so(tmp_path):
    missing = tmp_path / "no-ledger.jsonl"
    result = report(tmp_path / "r", ledger=str(missing), formats=["json", "markdown"])
    document = json.loads((tmp_path / "r" / "exchange_pki_report.json").read_text())
    assert document["stories"] == {} and document["ledger"]["found"] is False
    assert f"no ledger file at {missing} yet" in result["markdown"]
    assert "ledger_csv" not in result["files"]  # only with the csv format


def test_a_torn_line_is_skipped_and_the_report_says_so(tmp_path, life):
    with life.ledger.open("a", encoding="utf-8") as handle:
        handle.write('{"version":1,"time":"2026-11-25T08:09:00Z","host":')  # a writer killed half way
    result = report(tmp_path / "r", ledger=str(life.ledger), formats=["json", "markdown", "html"])
    document = json.loads((tmp_path / "r" / "exchange_pki_report.json").read_text())
    assert document["ledger"]["skipped"] == [{"line": 7, "reason": "not a complete JSON line (torn write?)"}]
    assert len(document["stories"][IDENTITY]) == 5
    assert "1 line(s) that are not records were skipped (line 7)" in result["markdown"]
    assert "were skipped (line 7)" in (tmp_path / "r" / "exchange_pki_report.html").read_text()


def test_check_mode_writes_nothing_and_a_second_run_changes_nothing(tmp_path, life):
    dest = tmp_path / "r"
    args = {"facts": dag_fleet(), "dest": str(dest), "now": GENERATED, "ledger": str(life.ledger)}
    checked = run_action(fleet_report.ActionModule, args, check_mode=True)
    assert checked["changed"] is True and str(dest / "exchange_pki_ledger.csv") in checked["changed_files"]
    assert not dest.exists()
    report(dest, ledger=str(life.ledger))
    again = report(dest, ledger=str(life.ledger))
    assert again["changed"] is False and again["changed_files"] == []


def test_a_bad_ledger_fails_the_task_naming_it(tmp_path):
    args = {"facts": dag_fleet(), "dest": str(tmp_path / "r"), "ledger": str(tmp_path / "ledger\njsonl")}
    failed_result(run_action(fleet_report.ActionModule, args), "ledger must be a path without control characters")
    args = {"facts": dag_fleet(), "dest": str(tmp_path / "r"), "ledger": str(tmp_path)}
    result = run_action(fleet_report.ActionModule, args)
    assert result["failed"] is True and result["msg"] == f"ledger {tmp_path}: is not a regular file (a directory)"
    assert not (tmp_path / "r").exists()
