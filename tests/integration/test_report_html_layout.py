# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTML fleet report's layout in Debian's headless Chromium at 1024 and 1400 px.

A report over facts with the longest values a real fleet has (40-digit thumbprints, remediation commands, long
subjects and host names, a failure message, a DAG whose members differ) is opened in Chromium; a script measures
every table cell (no cell's content may be wider than the cell: nothing spills into the next column), the
filter boxes (their placeholder must fit), the page width and the cells of DAG members that differ. The page's
own script must have rendered its first page of rows, and filtering through it must work.

Screenshots of each width are kept under ``$EXCHANGE_PKI_SCREENSHOTS`` when that variable names a directory.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _report
from ansible_collections.exchange.pki.plugins.plugin_utils._report_html import render_html
from tests.integration import chromium_page
from tests.unit.plugins.plugin_utils.report_facts import NOW, certificate, dag_fleet, finding, host_fact

pytestmark = pytest.mark.skipif(
    not chromium_page.available(), reason="Debian's chromium is not installed (apt-get install -y chromium)",
)

LONG_HOST = "exchange-mailbox-0001.emea.contoso-international-holdings.lab"
LONG_NAME = "autodiscover-and-mail-and-owa.emea.contoso-international-holdings.lab"

MEASURE = """
var overflowing = [];
Array.prototype.forEach.call(document.querySelectorAll("td, th"), function (cell) {
  if (!cell.getClientRects().length) { return; }
  if (cell.scrollWidth > cell.clientWidth + 1) {
    var table = cell.closest("table"), section = cell.closest("section");
    overflowing.push({table: (table && table.id) || (section && section.id), text: cell.textContent.slice(0, 80),
                      scroll: cell.scrollWidth, client: cell.clientWidth});
  }
});
var canvas = document.createElement("canvas").getContext("2d");
var filters = Array.prototype.map.call(document.querySelectorAll("input[placeholder]"), function (input) {
  var style = getComputedStyle(input);
  canvas.font = style.font;
  return {placeholder: input.placeholder, text: Math.ceil(canvas.measureText(input.placeholder).width),
          room: input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)};
});
var odd = Array.prototype.map.call(document.querySelectorAll("td.odd"), function (cell) { return cell.innerText; });
var rows = document.querySelectorAll("#certificates tbody tr").length;
var markup = [document.getElementById("certificates").outerHTML.slice(0, 60),
              document.getElementById("filter-count").outerHTML];
var api = window.exchangePkiReport;
var filtered = api.tables.certificates.filter("ex3", "");
var critical = api.tables.certificates.filter("", "critical");
return {width: window.innerWidth, page: document.documentElement.scrollWidth, overflowing: overflowing,
        filters: filters, odd: odd, rows: rows, ready: document.documentElement.dataset.ready, markup: markup,
        filtered: filtered, critical: critical,
        filteredRows: document.querySelectorAll("#certificates tbody tr").length};
"""


def layout_fleet() -> dict[str, Any]:
    """The dag fleet plus the longest values a report meets."""
    facts = dag_fleet()
    mail = facts["ex1"]["certificates"][0]
    command = (f"Enable-ExchangeCertificate -Thumbprint {mail['thumbprint']} -Services IIS,SMTP,IMAP,POP "
               f"-Server {LONG_HOST}; Set-AuthConfig -NewCertificateThumbprint {mail['thumbprint']} "
               "-NewCertificateEffectiveDate (Get-Date).AddHours(48)")
    facts["ex1"]["findings"][0].update(remediation=command, message="Subject " + "x" * 120)
    wide = certificate(f"CN={LONG_NAME}, OU=Messaging-Infrastructure-Operations, O=Contoso International Holdings",
                       days_remaining=12, seed="wide", issuer=f"CN={'Contoso-Issuing-CA-' * 4}G2, DC=contoso",
                       roles=("iis", "imap", "pop", "smtp", "connector", "hybrid"), key_type="rsa", key_size=16384,
                       store="My")
    facts[LONG_HOST] = host_fact(LONG_HOST, [wide], [
        finding("expiring_critical", "critical", wide, message=f"{LONG_NAME} " * 3),
        finding("weak_signature_hash", "warning", wide), finding("name_not_covered", "warning", wide),
    ], site="Default-First-Site-Name-With-A-Long-Name", product="Exchange Server Subscription Edition RTM",
        version="15.2.2562.17")
    facts["ex5"] = {"not_collected": {"reason": "connection_dropped",
                                      "message": "WinRM: the connection was reset " + "0x80338012" * 8}}
    return facts


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    report = _report.build_report(layout_fleet(), title="Contoso certificates", now=NOW)
    path = tmp_path_factory.mktemp("layout") / "exchange_pki_report.html"
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(render_html(report))
    return path


@pytest.mark.parametrize("width", [1024, 1400])
def test_no_cell_overflows(page, tmp_path, width):
    screenshot = tmp_path / f"report-{width}.png"
    result = chromium_page.measure(page, MEASURE, width=width, height=2400, screenshot=screenshot)
    keep = os.environ.get("EXCHANGE_PKI_SCREENSHOTS")
    if keep and Path(keep).is_dir():
        shutil.copy(screenshot, Path(keep) / screenshot.name)
    assert result["width"] == width
    assert result["ready"] == "true" and result["rows"] > 0
    assert result["overflowing"] == []
    assert result["page"] <= width  # the page itself never scrolls sideways
    assert result["filters"] and all(box["text"] <= box["room"] for box in result["filters"]), result["filters"]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_differing_members_are_flagged_on_a_line_of_their_own(page):
    result = chromium_page.measure(page, MEASURE, width=1024)
    assert result["odd"]
    assert all(text.startswith("\u2260 differs from the other members\n") for text in result["odd"]), result["odd"]


def test_the_script_renders_and_filters_the_rows(page):
    result = chromium_page.measure(page, MEASURE, width=1400)
    report = _report.build_report(layout_fleet(), title="Contoso certificates", now=NOW)
    certs = list(report.certificates())
    assert result["rows"] == min(len(certs), 50)
    assert result["filtered"] == sum(cert.host == "ex3" for cert in certs) == result["filteredRows"]
    assert result["critical"] == sum(cert.severity == "critical" for cert in certs)
    # what tests/integration/test_report.py reads from the DOM of the report role's page
    table, count = result["markup"]
    assert re.match(r'<table id="certificates" data-sortable="ready"', table), table
    assert re.match(r'<span id="filter-count"[^>]*>\d+ of \d+ certificates</span>', count), count
