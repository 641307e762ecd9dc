# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exchange.pki.report role through real ansible-playbook runs, its HTML in headless Chromium, and the
role over facts that certificate_info collected from the lab.

The role runs first over facts set with set_fact (docs/facts.md shape) on local hosts, with alerts going to
a local SMTP sink and a local HTTP sink in this process; a password-looking host variable must not reach any
output. The written HTML is then opened in Debian's Chromium: a screenshot is decoded and checked, and the
DOM after the script ran shows the table was made sortable.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Lab, PlaybookRun, run_playbook
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink
from tests.unit.plugins.plugin_utils.report_facts import dag_fleet

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET = "Vault-Pa55w0rd-never-in-reports"
NOW = "2026-11-25T08:00:00Z"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WINDOW = (1400, 1800)
CRITICAL_RGB = (0xC6, 0x28, 0x28)  # --critical in the report's style sheet

ROLE_TASKS = """\
- name: Set the facts certificate_info would have collected
  ansible.builtin.set_fact:
    exchange_pki: "{{{{ fleet[inventory_hostname] }}}}"
  when: fleet[inventory_hostname] is not none
- name: Report
  ansible.builtin.include_role:
    name: exchange.pki.report
  vars:
    report_dest: {dest}
    report_now: "{now}"
    report_title: Contoso Exchange certificates
    report_alert_min_severity: warning
    report_alert_email: {{smtp_host: 127.0.0.1, smtp_port: {smtp_port}, from: pki@contoso.lab, to: [ops@contoso.lab],
                          username: alerts, password: "{{{{ vault_smtp_password }}}}", timeout: 10,
                          allow_plaintext_auth: true}}
    report_alert_webhook: {{url: "{webhook}", format: teams, timeout: 10, allow_http: true}}
"""


def local_fleet(directory: Path) -> Lab:
    """A "lab" of local hosts ex1..ex5 (the report role only runs on the controller)."""
    directory.mkdir(parents=True, exist_ok=True)
    hosts = {name: {"ansible_connection": "local", "vault_smtp_password": SECRET} for name in dag_fleet()}
    (directory / "inventory.yml").write_text(yaml.safe_dump({"all": {"children": {"exchange": {"hosts": hosts}}}}))
    return Lab(directory)


def task_status(run: PlaybookRun, task: str) -> str:
    """The status line word (ok/changed/skipping/failed) of the first host under ``TASK [... : task]``."""
    match = re.search(rf"TASK \[exchange\.pki\.report : {re.escape(task)}\][^\n]*\n(\w+):", run.stdout)
    assert match, f"task {task!r} not found in:\n{run.stdout}\n{run.stderr}"
    return match.group(1)


@pytest.fixture(scope="module")
def role_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two runs of the role over the same facts, with the sinks that received its alerts."""
    base = tmp_path_factory.mktemp("report-role")
    lab = local_fleet(base / "fleet")
    dest = base / "out"
    with smtp_sink(("alerts", SECRET)) as smtp, http_sink(status=202) as hook:
        tasks = ROLE_TASKS.format(dest=dest, now=NOW, smtp_port=smtp.port, webhook=hook.url)
        host_vars = {"fleet": dag_fleet()}
        runs = []
        for index in range(2):
            work = base / f"run{index}"
            work.mkdir()
            runs.append(run_playbook(lab, tasks, work, host_vars=host_vars))
        yield {"runs": runs, "dest": dest, "smtp": smtp, "hook": hook}


def test_role_writes_every_format(role_runs):
    first = role_runs["runs"][0]
    assert first.returncode == 0, first.stdout + first.stderr
    dest: Path = role_runs["dest"]
    document = json.loads((dest / "exchange_pki_report.json").read_text())
    assert document["title"] == "Contoso Exchange certificates"
    assert document["summary"]["hosts_missing"] == ["ex5"]
    assert document["summary"]["findings"] == {"critical": 4, "warning": 7, "info": 0}
    rows = list(csv.DictReader(io.StringIO((dest / "exchange_pki_report.csv").read_text())))
    assert [row["record"] for row in rows[:len(document["action_plan"])]] == ["action"] * len(document["action_plan"])
    assert len([row for row in rows if row["record"] != "action"]) == document["summary"]["certificates"] + 1
    assert document["summary"]["not_collected"] == {"ex5": {"reason": None, "message": None}}
    parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client is a test requirement")
    names = {family.name for family in parser.text_string_to_metric_families(
        (dest / "exchange_pki_report.prom").read_text())}
    assert "exchange_pki_certificate_expiration_timestamp_seconds" in names
    assert "- **Not collected:** ex5 (reason unknown)" in first.stdout  # the summary printed in the job log
    assert "## Action plan" in first.stdout


def test_role_sends_the_alerts(role_runs):
    assert task_status(role_runs["runs"][0], "Alert when findings reach warning") == "changed"
    mails, posts = role_runs["smtp"].received, role_runs["hook"].received
    assert len(mails) == 2 and len(posts) == 2  # one per run: every run that finds something alerts
    assert mails[0].authenticated_as == "alerts"
    assert mails[0].message["Subject"].startswith("[exchange.pki] Contoso Exchange certificates: 11 ")
    assert posts[0].body["attachments"][0]["content"]["type"] == "AdaptiveCard"


def test_second_run_leaves_the_report_unchanged(role_runs):
    first, second = role_runs["runs"]
    assert task_status(first, "Write the fleet report on the controller") == "changed"
    assert task_status(second, "Write the fleet report on the controller") == "ok"


def test_no_secret_reaches_any_output(role_runs):
    for path in role_runs["dest"].iterdir():
        assert SECRET not in path.read_text(), path.name
    for mail in role_runs["smtp"].received:
        assert SECRET not in mail.message.as_string()
    for post in role_runs["hook"].received:
        assert SECRET not in json.dumps(post.body)
    for run in role_runs["runs"]:
        assert SECRET not in run.stdout + run.stderr


def test_argument_spec_rejects_a_bad_format(tmp_path):
    lab = local_fleet(tmp_path / "fleet")
    tasks = """\
    - name: Report
      ansible.builtin.include_role:
        name: exchange.pki.report
      vars:
        report_dest: {dest}
        report_formats: [pdf]
    """.format(dest=tmp_path / "out")
    run = run_playbook(lab, tasks, tmp_path)
    assert run.returncode != 0
    assert "report_formats" in run.stdout and "pdf" in run.stdout
    assert not (tmp_path / "out").exists()


# --- the HTML in a real browser -------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)",
)


def chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}", *mode, page.as_uri()],
        capture_output=True, text=True, timeout=180, check=True,
    )


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered pixel rows of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,), kind = struct.unpack(">I", data[position:position + 4]), data[position + 4:position + 8]
        chunks.setdefault(kind, []).append(data[position + 8:position + 8 + length])
        position += 12 + length
    width, height, depth, color_type = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and color_type in (2, 6), (depth, color_type)
    pixel = 3 if color_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride, rows, previous = width * pixel, [], bytes(width * pixel)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - pixel] if x >= pixel else 0
            up, corner = previous[x], previous[x - pixel] if x >= pixel else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                best = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                           (abs(estimate - corner), 2, corner))[2]
                line[x] = (line[x] + best) & 0xFF
        rows.append(bytes(line) if pixel == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = bytes(line)
    return width, height, rows


@needs_chromium
def test_the_report_renders_in_chromium(role_runs, tmp_path):
    screenshot = tmp_path / "report.png"
    chromium(role_runs["dest"] / "exchange_pki_report.html", tmp_path / "profile", f"--screenshot={screenshot}")
    width, height, rows = decode_png(screenshot.read_bytes())
    assert (width, height) == WINDOW
    colors = {row[x:x + 3] for row in rows[::4] for x in range(0, len(row), 12)}
    assert len(colors) > 50, "the screenshot is (nearly) blank"
    critical = bytes(CRITICAL_RGB)
    assert any(critical in row[x:x + 3] for row in rows for x in range(0, len(row), 3) if row[x] == critical[0]), \
        "no critical-red pixel: the summary cards, badges and timeline markers did not render"


@needs_chromium
def test_the_report_script_runs_in_chromium(role_runs, tmp_path):
    dom = chromium(role_runs["dest"] / "exchange_pki_report.html", tmp_path / "profile", "--dump-dom").stdout
    assert re.search(r'<table id="certificates" data-sortable="ready"', dom), dom[:2000]
    assert re.search(r'<span id="filter-count"[^>]*>\d+ of \d+ certificates</span>', dom)


# --- over facts collected from the lab ------------------------------------------------------------

needs_certificate_info = pytest.mark.skipif(
    not (REPO_ROOT / "plugins" / "action" / "certificate_info.py").exists(),
    reason="exchange.pki.certificate_info is not in this tree yet",
)


@needs_certificate_info
def test_report_over_the_lab(dag_lab, playbook, tmp_path):
    dest = tmp_path / "out"
    run = playbook(dag_lab, f"""\
        - name: Collect
          exchange.pki.certificate_info:
          register: collected
        - name: Keep the fact
          ansible.builtin.set_fact:
            exchange_pki: "{{{{ collected }}}}"
        - name: Report
          ansible.builtin.include_role:
            name: exchange.pki.report
          vars:
            report_dest: {dest}
        """)
    assert run.returncode == 0, run.stdout + run.stderr
    document = json.loads((dest / "exchange_pki_report.json").read_text())
    lab_hosts = set(yaml.safe_load(dag_lab.inventory.read_text())["all"]["children"]["exchange"]["hosts"])
    assert {host["host"] for host in document["hosts"]} == lab_hosts
    assert document["summary"]["hosts_missing"] == []
    assert document["summary"]["findings"]["critical"] > 0  # the dag scenario's mail certificate expires in 20 days
    assert [dag["name"] for dag in document["dags"]] == ["DAG1"]
    # the same mail certificate on four servers, the one Auth configuration, ex2's cluster certificate: the
    # critical findings of every server are three problems, the cluster certificate last (inform only)
    critical = [item for item in document["action_plan"] if item["severity"] == "critical"]
    assert document["summary"]["findings"]["critical"] > len(critical)
    assert [item["scope"] for item in critical][:2] == ["certificate", "organization"], critical
    assert critical[0]["servers"] == sorted(lab_hosts) and critical[0]["subject"] == "CN=mail.contoso.lab"
    assert critical[-1]["finding_id"] == "cluster_certificate_expired"
    assert critical[-1]["action"].startswith("Inform, do not modify")
    assert len(critical) == 3, critical
