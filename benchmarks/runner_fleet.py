# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory playbook over a generated lab fleet as an AWX job (ansible-runner) and as plain ansible-playbook.

The lab generates a fleet (``python -m tests.lab start --servers N``, default 100). Then ``--repeat`` times
(default 3; A first in odd runs, B first in even ones), with the same forks (default 25), the same inventory,
variables and environment:

- A: ``exchange.pki.inventory`` as AWX runs a job: tests/integration/awx_runner.py lays out a private data directory
  (env/, inventory/, project/) and calls ``ansible_runner.run`` (the awx_display callback writes every job event to
  the artifacts, facts go to the jsonfile fact cache), wall time from before the layout to after the result is read;
- B: ``ansible-playbook exchange.pki.inventory`` started as a process, wall time from start to exit.

Every run is checked, and the script fails when a check does not hold: every host of the fleet is in the play
recap, none failed or unreachable; nothing spurious: the job's events name only hosts of the fleet, no failed or
unreachable event, each host's recap counts are the same in A and B, both reports list every host as collected,
and, when the inventory role makes its facts cacheable, the job's fact cache holds every host's facts and nothing
else. Printed: the medians of A and B, their ratio (median of the per-pair ratios), and each run.

Run from the repository root after ``make setup``:

    .venv/bin/python benchmarks/runner_fleet.py [--servers 100] [--repeat 3] [--forks 25] [--ref HEAD]

The collection measured is ``git archive`` of ``--ref`` (default HEAD), not the working tree.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.inventory_playbook import lab_fleet  # noqa: E402
from tests.integration.awx_runner import default_envvars, run_job  # noqa: E402

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")
RECAP_KEYS = {"ok": "ok", "changed": "changed", "unreachable": "dark", "failed": "failures", "skipped": "skipped",
              "rescued": "rescued", "ignored": "ignored"}


def export_collection(ref: str, collections: Path) -> Path:
    """``git archive REF`` of this repository as exchange.pki beside the dependency collections: a fixed tree to
    measure while the working tree changes."""
    target = collections / "ansible_collections" / "exchange" / "pki"
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=REPO_ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    for dependency in (COLLECTIONS_PATH / "ansible_collections").iterdir():
        if dependency.name != "exchange" and dependency.is_dir():
            (collections / "ansible_collections" / dependency.name).symlink_to(dependency)
    return target


def fleet_hosts(inventory: Path) -> set[str]:
    import yaml  # noqa: PLC0415 - only here

    data = yaml.safe_load(inventory.read_text(encoding="utf-8"))
    return set(data["all"]["children"]["exchange"]["hosts"])


def recap_of(stdout: str) -> dict[str, dict[str, int]]:
    """Host -> {ok, changed, dark, failures, skipped, rescued, ignored} from a PLAY RECAP."""
    found: dict[str, dict[str, int]] = {}
    for line in stdout.split("PLAY RECAP", 1)[-1].splitlines():
        match = RECAP.match(line.strip())
        if match:
            counts = dict(pair.split("=") for pair in match["counts"].split())
            found[match["host"]] = {RECAP_KEYS[k]: int(v) for k, v in counts.items() if k in RECAP_KEYS}
    return found


def check_report(report: Path, hosts: set[str], label: str) -> None:
    data = json.loads((report / "exchange_pki_report.json").read_text(encoding="utf-8"))
    reported = {h["host"]: h["collected"] for h in data["hosts"]}
    assert set(reported) == hosts, f"{label}: the report lists {sorted(set(reported) ^ hosts)[:5]} wrongly"
    assert all(reported.values()), f"{label}: not collected: {[h for h, c in reported.items() if not c][:5]}"


def run_a(inventory: Path, work: Path, forks: int, hosts: set[str], cacheable: bool,
          env: dict[str, str]) -> tuple[float, dict]:
    report = work / "report"
    started = time.perf_counter()
    job = run_job(work / "pdd", "exchange.pki.inventory", inventory=inventory, forks=forks, timeout=1800,
                  extravars={"ansible_python_interpreter": sys.executable, "report_dest": str(report),
                             "report_show_summary": False}, envvars=env, ident="job")
    seconds = time.perf_counter() - started
    assert job.status == "successful", f"A: job {job.status} (rc {job.rc}):\n{job.stdout[-4000:]}"
    summary = job.summary()
    assert set(summary["processed"]) == hosts, f"A: {len(summary['processed'])} of {len(hosts)} hosts processed"
    assert not summary["failures"] and not summary["dark"], f"A: failed {summary['failures']} {summary['dark']}"
    events = job.events()
    named = {e["event_data"]["host"] for e in events if e.get("event_data", {}).get("host")}
    assert named <= hosts | {"localhost"}, f"A: events name hosts outside the fleet: {sorted(named - hosts)[:5]}"
    bad = [e["event"] for e in events if e["event"] in ("runner_on_failed", "runner_on_unreachable")
           and not e["event_data"].get("ignore_errors")]
    assert not bad, f"A: {len(bad)} failed or unreachable events"
    check_report(report, hosts, "A")
    cached = {p.name.split("_", 1)[-1] for p in job.fact_cache_dir.iterdir()} if job.fact_cache_dir.exists() else set()
    if cacheable:
        assert cached == hosts, f"A: fact cache holds {len(cached)} hosts, {sorted(cached ^ hosts)[:5]} differ"
        assert all("exchange_pki" in job.fact_cache(h) for h in hosts), "A: a cached host has no exchange_pki"
    recap = {h: {k: summary.get(k, {}).get(h, 0) for k in RECAP_KEYS.values()} for h in summary["processed"]}
    return seconds, {"recap": recap, "events": len(events), "cached": len(cached)}


def run_b(inventory: Path, work: Path, forks: int, hosts: set[str], env: dict[str, str]) -> tuple[float, dict]:
    report = work / "report"
    env = {**os.environ, **default_envvars(), **env}
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), "-f", str(forks),
               "-e", json.dumps({"ansible_python_interpreter": sys.executable, "report_dest": str(report),
                                 "report_show_summary": False}), "exchange.pki.inventory"]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False, timeout=1800)
    seconds = time.perf_counter() - started
    assert proc.returncode == 0, f"B: ansible-playbook rc {proc.returncode}:\n{proc.stdout[-4000:]}{proc.stderr}"
    recap = recap_of(proc.stdout)
    assert set(recap) == hosts | ({"localhost"} & set(recap)), f"B: recap lists {len(recap)} hosts"
    check_report(report, hosts, "B")
    return seconds, {"recap": recap}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument("--ref", default="HEAD", help="the commit of exchange.pki to measure (git archive)")
    args = parser.parse_args(argv)
    a_times: list[float] = []
    b_times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="runner-fleet-") as tmp, \
            lab_fleet(args.servers, Path(tmp) / "lab") as inventory:
        collection = export_collection(args.ref, Path(tmp) / "collections")
        env = {"ANSIBLE_COLLECTIONS_PATH": str(Path(tmp) / "collections")}
        tasks = (collection / "roles" / "inventory" / "tasks").glob("*.yml")
        cacheable = any("cacheable:" in p.read_text(encoding="utf-8") for p in tasks)
        commit = subprocess.run(["git", "rev-parse", "--short", args.ref], cwd=REPO_ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        print(f"exchange.pki at {commit}", flush=True)
        hosts = fleet_hosts(inventory)
        assert len(hosts) == args.servers, f"the lab generated {len(hosts)} hosts"
        for n in range(args.repeat):
            a_work, b_work = Path(tmp) / f"a{n}", Path(tmp) / f"b{n}"
            a_work.mkdir()
            b_work.mkdir()
            # A B, B A, A B ...: neither goes first every time (the lab's and the machine's warm-up)
            if n % 2 == 0:
                a_seconds, a = run_a(inventory, a_work, args.forks, hosts, cacheable, env)
                b_seconds, b = run_b(inventory, b_work, args.forks, hosts, env)
            else:
                b_seconds, b = run_b(inventory, b_work, args.forks, hosts, env)
                a_seconds, a = run_a(inventory, a_work, args.forks, hosts, cacheable, env)
            b_recap = {h: {**dict.fromkeys(RECAP_KEYS.values(), 0), **c} for h, c in b["recap"].items()}
            differ = sorted(h for h in set(a["recap"]) | set(b_recap) if a["recap"].get(h) != b_recap.get(h))
            assert not differ, "the job's recap differs from ansible-playbook's: " + "; ".join(
                f"{h}: {a['recap'].get(h)} vs {b_recap.get(h)}" for h in differ[:3])
            a_times.append(a_seconds)
            b_times.append(b_seconds)
            print(f"run {n + 1}: ansible-runner {a_seconds:.2f} s ({a['events']} job events, fact cache "
                  f"{a['cached']} hosts), ansible-playbook {b_seconds:.2f} s, ratio {a_seconds / b_seconds:.2f}",
                  flush=True)
    ratios = [a / b for a, b in zip(a_times, b_times)]
    print(f"{args.servers} servers, forks {args.forks}, {args.repeat} alternating runs: every host reported, "
          f"nothing failed or spurious{'' if cacheable else ' (facts not cacheable: fact cache not checked)'}")
    print(f"median wall: ansible-runner job {statistics.median(a_times):.2f} s, ansible-playbook "
          f"{statistics.median(b_times):.2f} s, ratio {statistics.median(ratios):.2f} (per-pair median)")


if __name__ == "__main__":
    main()
