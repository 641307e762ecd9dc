# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: fleet report generation (every format) for N servers x M certificates.

Reports wall-clock seconds and peak memory of building and writing the report, and, as the ratio's baseline
measured in the same run, ``json.dump`` of the same facts into the same directory (a report can hardly be
cheaper than serialising its input once).

    .venv/bin/python benchmarks/report_generation.py                 # 10,000 servers x 12 certificates
    .venv/bin/python benchmarks/report_generation.py --servers 1000  # quicker

Seconds come from a plain run; peak memory is tracemalloc's peak of Python allocations during a second run of
the step (the facts themselves, built before, are not counted). The process's maximum resident set size at the
end is printed too (it includes the facts).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / ".ansible" / "collections")]

from ansible_collections.exchange.pki.plugins.plugin_utils import _report  # noqa: E402
from tests.unit.plugins.plugin_utils.report_facts import NOW, bulk_fleet  # noqa: E402


def measure(step: Callable[[], Any]) -> tuple[float, int]:
    """Seconds of ``step()`` and, in a second run under tracemalloc (which slows it down), its peak bytes."""
    started = time.perf_counter()
    step()
    seconds = time.perf_counter() - started
    tracemalloc.start()
    step()
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--certificates", type=int, default=12, help="certificates per server")
    options = parser.parse_args()

    facts = bulk_fleet(options.servers, options.certificates)
    with tempfile.TemporaryDirectory(prefix="exchange-pki-bench-") as directory:
        dest = Path(directory)

        def baseline() -> None:
            with (dest / "facts.json").open("w") as handle:
                json.dump(facts, handle)

        def report() -> None:
            model = _report.build_report(facts, title="Benchmark", now=NOW)
            _report.write_reports(model, dest / "report", list(_report.FORMATS))

        base_seconds, base_peak = measure(baseline)
        seconds, peak = measure(report)
        sizes = {path.name: path.stat().st_size for path in sorted((dest / "report").iterdir())}

    mib = 1024 * 1024
    print(f"fleet: {options.servers} servers x {options.certificates} certificates "
          f"= {options.servers * options.certificates} certificates")
    print(f"baseline json.dump of the facts: {base_seconds:.2f} s, peak {base_peak / mib:.1f} MiB")
    print(f"report (html, csv, json, markdown, prometheus): {seconds:.2f} s, peak {peak / mib:.1f} MiB")
    print(f"ratio report / baseline: {seconds / base_seconds:.1f}x time, {peak / max(base_peak, 1):.1f}x peak memory")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    for name, size in sizes.items():
        print(f"  {name}: {size / mib:.1f} MiB")


if __name__ == "__main__":
    main()
