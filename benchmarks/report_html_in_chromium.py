# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: open the fleet report's HTML in headless Chromium; time to a rendered, filterable page.

Writes the HTML report of a generated fleet (default 10,000 servers x 12 certificates), opens it in Debian's
headless Chromium at 1400 px and reads, from inside the page:

- ready: milliseconds from navigation start to the page's ``exchange-pki-ready`` performance mark, which its
  script sets once the JSON block is parsed and the first page of every table is rendered (the HTML parsed,
  the style applied, the script run);
- filter text / filter severity / sort: milliseconds the page takes to filter the certificate table by a text
  (a server name), by a severity, and to sort it by days remaining (each redraws the first page);
- rows in the DOM and the JavaScript heap in use.

The baseline, measured in the same run, is the same Chromium opening a page of a few hundred bytes; the process
figures (wall seconds of the whole ``chromium --dump-dom`` run, the largest child's maximum RSS) are printed for
both.

    .venv/bin/python benchmarks/report_html_in_chromium.py                  # 10,000 servers x 12 certificates
    .venv/bin/python benchmarks/report_html_in_chromium.py --servers 1000
    .venv/bin/python benchmarks/report_html_in_chromium.py --html some/exchange_pki_report.html  # an existing page
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / ".ansible" / "collections")]

from tests.integration import chromium_page  # noqa: E402

MEASURE = """
var height = document.body.offsetHeight;  // forces the layout of the whole page
var laidOut = performance.now();
var ready = performance.getEntriesByName("exchange-pki-ready");
var api = window.exchangePkiReport;
var result = {ready: ready.length ? ready[0].startTime : null, laidOut: laidOut, height: height,
              domContentLoaded: performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd,
              rows: document.getElementsByTagName("tr").length,
              elements: document.getElementsByTagName("*").length};
if (api) {
  var table = api.tables.certificates, started = performance.now();
  result.textMatches = table.filter("ex00042", "");
  result.filterText = performance.now() - started;
  started = performance.now();
  table.filter("ex00043", "");
  result.filterTextWarm = performance.now() - started;
  started = performance.now();
  result.severityMatches = table.filter("", "critical");
  result.filterSeverity = performance.now() - started;
  table.filter("", "");
  var days = document.querySelector("#certificates th[data-key='4'] button");
  started = performance.now();
  days.click();
  result.sort = performance.now() - started;
}
if (performance.memory) { result.heapMiB = performance.memory.usedJSHeapSize / 1048576; }
return result;
"""

BASELINE_MEASURE = """
var ready = performance.getEntriesByName("ready");
return {ready: ready.length ? ready[0].startTime : null};
"""

BASELINE_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>baseline</title></head>
<body><p>baseline</p><script>performance.mark("ready");</script></body></html>
"""


def write_report(servers: int, certificates: int, directory: Path) -> Path:
    from ansible_collections.exchange.pki.plugins.plugin_utils import _report
    from ansible_collections.exchange.pki.plugins.plugin_utils._report_html import render_html
    from tests.unit.plugins.plugin_utils.report_facts import NOW, bulk_fleet

    model = _report.build_report(bulk_fleet(servers, certificates), title="Benchmark", now=NOW)
    page = directory / "exchange_pki_report.html"
    with page.open("w", encoding="utf-8") as handle:
        handle.writelines(render_html(model))
    return page


def children_max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def run(page: Path, script: str, timeout: float) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result = chromium_page.measure(page, script, width=1400, height=900, timeout=timeout)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--certificates", type=int, default=12, help="certificates per server")
    parser.add_argument("--html", type=Path, help="open this page instead of writing one")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each page; medians are printed")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for one Chromium run")
    options = parser.parse_args()
    if not chromium_page.available():
        sys.exit(f"{chromium_page.CHROMIUM} not found (apt-get install -y chromium)")

    with tempfile.TemporaryDirectory(prefix="exchange-pki-bench-") as directory:
        work = Path(directory)
        page = options.html or write_report(options.servers, options.certificates, work)
        baseline = work / "baseline.html"
        baseline.write_text(BASELINE_PAGE, encoding="utf-8")
        base_walls, walls, results = [], [], []
        base_ready = []
        for _index in range(options.repeat):
            result, wall = run(baseline, BASELINE_MEASURE, options.timeout)
            base_walls.append(wall)
            base_ready.append(result["ready"])
        base_rss = children_max_rss_mib()
        for _index in range(options.repeat):
            result, wall = run(page, MEASURE, options.timeout)
            walls.append(wall)
            results.append(result)
        rss = children_max_rss_mib()

    def median(key: str) -> float | None:
        values = [result[key] for result in results if result.get(key) is not None]
        return statistics.median(values) if values else None

    def ms(key: str) -> str:
        value = median(key)
        return "-" if value is None else f"{value:.0f} ms"

    size = page.stat().st_size if options.html else None
    label = str(options.html) if options.html else f"{options.servers} servers x {options.certificates} certificates"
    print(f"page: {label}" + (f" ({size / 1048576:.1f} MiB)" if size else ""))
    print(f"medians of {options.repeat} runs at 1400 px:")
    print(f"  ready (parsed, JSON read, first page of every table drawn): {ms('ready')} "
          f"(the baseline page's own mark: {statistics.median(base_ready):.0f} ms)")
    print(f"  laid out (the whole page's layout computed, before any filter): {ms('laidOut')}")
    print(f"  filter by text: {ms('filterText')} the first time (builds the search index, which the page otherwise "
          f"builds in the background), {ms('filterTextWarm')} the next ({median('textMatches')} rows); "
          f"by severity: {ms('filterSeverity')} ({median('severityMatches')} rows); sort by days: {ms('sort')}")
    print(f"  DOM: {median('elements'):.0f} elements, {median('rows'):.0f} table rows; "
          f"JS heap {median('heapMiB') or 0:.0f} MiB")
    print(f"  whole chromium --dump-dom run: {statistics.median(walls):.2f} s "
          f"(baseline page: {statistics.median(base_walls):.2f} s, ratio "
          f"{statistics.median(walls) / statistics.median(base_walls):.1f}x)")
    print(f"  largest Chromium process, max RSS: {rss:.0f} MiB (baseline page: {base_rss:.0f} MiB)")


if __name__ == "__main__":
    main()
