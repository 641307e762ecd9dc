# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run every check (each a make target), keep going past failures, then report.

Each check's output streams to the terminal and to LOG_DIR/<check>.log (uncoloured: NO_COLOR is set).
Checks joined by "+" (e.g. sanity+molecule) run at the same time: each writes only its log, which is shown
once it ended, in the order named. At the end a table shows each check's result and duration, followed by
pytest's summary line; the exit code is 1 when any check failed.

Usage: python tools/run_checks.py [--log-dir DIR] [--make MAKE] CHECK[+CHECK...] [CHECK[+CHECK...] ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence

# pytest's final line, e.g. "==== 3 failed, 120 passed, 2 skipped in 41.20s ====" or "no tests ran in 0.01s".
PYTEST_SUMMARY = re.compile(
    r"^=+ .*\b(?:passed|failed|errors?|skipped|xfailed|xpassed|no tests ran)\b.* in [\d.]+s.* =+$"
)


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    returncode: int
    seconds: float
    log: pathlib.Path

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def run_check(name: str, make: str, log_dir: pathlib.Path) -> CheckResult:
    """Run `make <name>`, streaming its output to the terminal and to its log file."""
    log = log_dir / f"{name}.log"
    print(f"\n===== check: {name} =====", flush=True)
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        process = subprocess.Popen(
            [make, "--no-print-directory", name],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sink.write(line)
        returncode = process.wait()
    sys.stdout.flush()
    return CheckResult(name, returncode, time.monotonic() - started, log)


def run_together(names: Sequence[str], make: str, log_dir: pathlib.Path) -> list[CheckResult]:
    """Run `make <name>` for every name at the same time, each into its log; show each log once it ended."""
    if len(names) == 1:
        return [run_check(names[0], make, log_dir)]
    print(f"\n===== checks side by side: {' '.join(names)} (each log is shown when the check ends) =====", flush=True)
    started = time.monotonic()
    running = {}
    for name in names:
        log = log_dir / f"{name}.log"
        sink = log.open("w", encoding="utf-8")
        process = subprocess.Popen(
            [make, "--no-print-directory", name],
            stdout=sink, stderr=subprocess.STDOUT, text=True, errors="replace",
            env={**os.environ, "NO_COLOR": "1"},
        )
        running[name] = (process, sink, log)
    results = {}
    while running:
        for name, (process, sink, log) in list(running.items()):
            if process.poll() is None:
                continue
            sink.close()
            del running[name]
            results[name] = CheckResult(name, process.returncode, time.monotonic() - started, log)
            print(f"\n===== check: {name} =====", flush=True)
            sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
            sys.stdout.flush()
        if running:
            time.sleep(0.5)
    return [results[name] for name in names]


def pytest_summary(logs: Iterable[pathlib.Path]) -> list[str]:
    """Return pytest's summary lines found in the given logs, in order."""
    return [
        line.strip()
        for log in logs
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
        if PYTEST_SUMMARY.match(line.strip())
    ]


def report(results: Sequence[CheckResult]) -> str:
    """Format the results table, the pytest summary and the verdict."""
    lines = ["", "===== summary ====="]
    lines += [
        f"{'PASS' if r.passed else 'FAIL':4}  {r.name:<16} {r.seconds:7.1f}s"
        + ("" if r.passed else f"  (exit {r.returncode}, log: {r.log})")
        for r in results
    ]
    summaries = pytest_summary(r.log for r in results)
    lines += [f"pytest: {summary}" for summary in summaries] or ["pytest: no summary line found"]
    failed = [r.name for r in results if not r.passed]
    lines.append(f"FAILED checks: {' '.join(failed)}" if failed else f"All {len(results)} checks passed.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks named on the command line; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-dir", type=pathlib.Path, default=pathlib.Path("tests/output/checks"))
    parser.add_argument("--make", default="make")
    parser.add_argument("checks", nargs="+")
    args = parser.parse_args(argv)

    args.log_dir.mkdir(parents=True, exist_ok=True)
    results = [result for stage in args.checks for result in run_together(stage.split("+"), args.make, args.log_dir)]
    print(report(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
