# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the check runner behind `make test` (tools/run_checks.py)."""

from __future__ import annotations

import pathlib
import sys

import pytest

from tools import run_checks


@pytest.mark.parametrize(
    ("line", "is_summary"),
    [
        ("===== 3 failed, 120 passed, 2 skipped in 41.20s =====", True),
        ("======================== 14 passed in 0.04s =========================", True),
        ("========= 1 passed, 2 errors in 3.00s (0:00:03) =========", True),
        ("============================ no tests ran in 0.01s ============================", True),
        ("=========================== short test summary info ============================", False),
        ("FAILED tests/unit/test_x.py::test_y - assert 1 == 2", False),
        ("14 passed in 0.04s", False),
    ],
)
def test_pytest_summary_pattern(line, is_summary):
    assert bool(run_checks.PYTEST_SUMMARY.match(line)) is is_summary


def result(tmp_path: pathlib.Path, name: str, returncode: int, output: str) -> run_checks.CheckResult:
    log = tmp_path / f"{name}.log"
    log.write_text(output)
    return run_checks.CheckResult(name, returncode, 1.5, log)


def test_report_lists_failures_and_pytest_summary(tmp_path):
    results = [
        result(tmp_path, "ruff", 0, "All checks passed!\n"),
        result(tmp_path, "pytest", 2, "x\n===== 1 failed, 3 passed in 0.50s =====\n"),
    ]

    text = run_checks.report(results)

    assert "PASS  ruff" in text
    assert "FAIL  pytest" in text and f"(exit 2, log: {tmp_path / 'pytest.log'})" in text
    assert "pytest: ===== 1 failed, 3 passed in 0.50s =====" in text
    assert text.endswith("FAILED checks: pytest")


def test_report_when_all_pass(tmp_path):
    text = run_checks.report([result(tmp_path, "ruff", 0, "")])

    assert "pytest: no summary line found" in text
    assert text.endswith("All 1 checks passed.")


def test_run_check_streams_and_logs(tmp_path, capsys):
    fake_make = tmp_path / "fake-make"
    fake_make.write_text(f"#!{sys.executable}\nimport sys\nprint('target', sys.argv[-1])\nsys.exit(3)\n")
    fake_make.chmod(0o755)

    outcome = run_checks.run_check("lint", str(fake_make), tmp_path)

    assert (outcome.name, outcome.returncode, outcome.passed) == ("lint", 3, False)
    assert outcome.log.read_text() == "target lint\n"
    assert "target lint" in capsys.readouterr().out


def test_checks_joined_by_plus_run_side_by_side(tmp_path, capsys):
    # Each fake check waits until the other one has started (a file it writes), so they pass only side by side.
    fake_make = tmp_path / "fake-make"
    fake_make.write_text(
        f"#!{sys.executable}\n"
        "import pathlib, sys, time\n"
        "name = sys.argv[-1]\n"
        f"here = pathlib.Path({str(tmp_path)!r})\n"
        "(here / f'{name}.started').touch()\n"
        "other = {'lint': 'sanity', 'sanity': 'lint'}[name]\n"
        "deadline = time.monotonic() + 20\n"
        "while not (here / f'{other}.started').exists():\n"
        "    if time.monotonic() > deadline:\n"
        "        sys.exit(9)\n"
        "    time.sleep(0.05)\n"
        "print('done', name)\n"
        "sys.exit(0 if name == 'sanity' else 4)\n"
    )
    fake_make.chmod(0o755)
    logs = tmp_path / "logs"

    code = run_checks.main(["--make", str(fake_make), "--log-dir", str(logs), "sanity+lint"])

    out = capsys.readouterr().out
    assert code == 1
    assert (logs / "sanity.log").read_text() == "done sanity\n" and (logs / "lint.log").read_text() == "done lint\n"
    assert "PASS  sanity" in out and "FAIL  lint" in out and out.endswith("FAILED checks: lint\n")
    assert "===== check: sanity =====\ndone sanity" in out and "===== check: lint =====\ndone lint" in out
