# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: fleet report generation (every format) for N servers x M certificates.

Reports the seconds (wall and CPU) and the peak memory of building and writing the report, as ratios to a
baseline measured in the same run: ``json.dump`` of the same facts into the same directory (a report can
hardly be cheaper than serialising its input once). Then the same for each format on its own (the model
built once) and the size of each file.

    .venv/bin/python benchmarks/report_generation.py                 # 10,000 servers x 12 certificates
    .venv/bin/python benchmarks/report_generation.py --servers 1000  # quicker
    .venv/bin/python benchmarks/report_generation.py --step report   # one step only, for an outside timer
    .venv/bin/python benchmarks/report_generation.py --step facts    # only the facts: what the steps add to it
    .venv/bin/python benchmarks/report_generation.py --step action   # the same report through the fleet_report
                                                                     # action plugin (argument validation included)

Seconds are medians of ``--repeat`` plain runs (CPU: this process's user + system time); peak memory is
tracemalloc's peak of Python allocations during one more run of the step (the facts themselves, built before,
are not counted). The process's maximum resident set size at the end is printed too (it includes the facts).
With ``--step``, the script builds the facts and runs that one step once, without tracemalloc, so that a
whole-process timer (or an instruction counter such as ``valgrind --tool=cachegrind``) can compare
``--step report`` with ``--step baseline``; ``--step facts`` stops after building the facts, so that what each
step adds can be told from the facts' own cost; ``--step action`` writes the same report through the fleet_report
action plugin, run in this process as the unit tests run it (its argument checks and ansible-core's validator
included; the templating of a task's arguments, which happens before a plugin runs, is not).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
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

try:  # the formats and the writer live in _report_formats since the action plan; _report before
    from ansible_collections.exchange.pki.plugins.plugin_utils import _report_formats as formats  # noqa: E402
except ImportError:  # pragma: no cover - an older tree, for before/after figures
    formats = _report

MIB = 1024 * 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(step: Callable[[], Any], repeat: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds of ``step()`` over ``repeat`` runs, and its peak bytes in one more run under
    tracemalloc (which slows it down)."""
    walls, cpus = [], []
    for _index in range(repeat):
        started, started_cpu = time.perf_counter(), cpu_seconds()
        step()
        walls.append(time.perf_counter() - started)
        cpus.append(cpu_seconds() - started_cpu)
    tracemalloc.start()
    step()
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(walls), statistics.median(cpus), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--certificates", type=int, default=12, help="certificates per server")
    parser.add_argument("--repeat", type=int, default=3, help="plain runs of each step; medians are printed")
    parser.add_argument("--step", choices=("report", "baseline", "facts", "action"),
                        help="run only this step, once, and exit (facts: only build the facts)")
    parser.add_argument("--no-formats", action="store_true", help="skip the per-format breakdown")
    options = parser.parse_args()

    facts = bulk_fleet(options.servers, options.certificates)
    all_formats = list(formats.FORMATS)
    with tempfile.TemporaryDirectory(prefix="exchange-pki-bench-") as directory:
        dest = Path(directory)

        def baseline() -> None:
            with (dest / "facts.json").open("w") as handle:
                json.dump(facts, handle)

        def report(names: tuple[str, ...] = tuple(all_formats)) -> None:
            model = _report.build_report(facts, title="Benchmark", now=NOW)
            formats.write_reports(model, dest / "report", names)

        def action() -> None:
            from ansible_collections.exchange.pki.plugins.action import fleet_report  # noqa: PLC0415
            from tests.unit.plugins.action.action_harness import run_action  # noqa: PLC0415

            result = run_action(fleet_report.ActionModule,
                                {"facts": facts, "dest": str(dest / "report"), "now": "2026-11-25T08:00:00Z"})
            if result.get("failed"):
                raise SystemExit(f"fleet_report failed: {result.get('msg')}")

        if options.step:
            steps_by_name = {"report": report, "baseline": baseline, "action": action}
            if options.step != "facts":
                steps_by_name[options.step]()
            return

        base = measure(baseline, options.repeat)
        whole = measure(report, options.repeat)
        sizes = {path.name: path.stat().st_size for path in sorted((dest / "report").iterdir())}
        model = _report.build_report(facts, title="Benchmark", now=NOW)
        steps: dict[str, tuple[float, float, int]] = {}
        if not options.no_formats:
            steps["model (build_report)"] = measure(
                lambda: _report.build_report(facts, title="Benchmark", now=NOW), options.repeat)
            for name in all_formats:
                steps[name] = measure(
                    lambda name=name: formats.write_reports(model, dest / f"only-{name}", [name]), options.repeat)

    print(f"fleet: {options.servers} servers x {options.certificates} certificates "
          f"= {options.servers * options.certificates} certificates; medians of {options.repeat} runs")
    print(f"baseline json.dump of the facts: {base[0]:.2f} s wall, {base[1]:.2f} s CPU, peak {base[2] / MIB:.1f} MiB")
    print(f"report ({', '.join(all_formats)}): {whole[0]:.2f} s wall, {whole[1]:.2f} s CPU, "
          f"peak {whole[2] / MIB:.1f} MiB")
    print(f"ratio report / baseline: {whole[0] / base[0]:.1f}x wall, {whole[1] / max(base[1], 1e-9):.1f}x CPU, "
          f"{whole[2] / max(base[2], 1):.1f}x peak memory")
    for name, (wall, cpu, peak) in steps.items():
        print(f"  {name}: {wall:.2f} s wall, {cpu:.2f} s CPU ({cpu / max(base[1], 1e-9):.1f}x baseline), "
              f"peak {peak / MIB:.1f} MiB")
    print(f"process max RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    for name, size in sizes.items():
        print(f"  {name}: {size / MIB:.1f} MiB")


if __name__ == "__main__":
    main()
