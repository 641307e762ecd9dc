# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the controller's CPU goes: exchange.pki.certificate_info against ansible.windows.win_ping, per stage.

A companion of ``certificate_info_vs_win_ping.py``, which measures wall time per host-task: this one counts CPU
seconds (``time.process_time``), which stay comparable when other jobs share the machine. The lab generates a
fleet (``python -m tests.lab start --servers N``); ``ansible-playbook`` then runs, ``--repeat`` times and
alternately, a playbook of one ``win_ping`` task and one of one ``certificate_info`` task over every host, forks
10, with ``benchmarks/worker_cpu_hook`` on PYTHONPATH: its ``sitecustomize`` records each worker's CPU by stage
(the worker outside the task: receiving the task, sending the result; the task outside the stages below: templating
and the action plugin's own Python, for certificate_info the batch, the snapshot and the facts; building the module
payload; the winrm connection; sending the module and reading its answer; decoding the answer) and the main
process's own CPU. The medians per worker and the main process's CPU per host are printed for both modules, with
their difference.

Run from the repository root after ``make setup``:

    .venv/bin/python benchmarks/worker_cpu.py [--servers 100] [--repeat 3] [--forks 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from certificate_info_vs_win_ping import COLLECTIONS_PATH, TASKS, lab_fleet  # noqa: E402

HOOK = Path(__file__).resolve().parent / "worker_cpu_hook"
#: The hook's stages (each without the stages it calls, so they add up to "total"), in the order a task meets them.
STAGES = ("worker", "task", "build", "connect", "exec", "decode")


def run_one(kind: str, inventory: Path, workdir: Path, forks: int) -> tuple[list[dict[str, float]], float]:
    """One ansible-playbook run of one ``kind`` task over every host: (each worker's stages, main process CPU)."""
    playbook, log = workdir / f"{kind}.yml", workdir / f"{kind}.jsonl"
    playbook.write_text(json.dumps([{"name": kind, "hosts": "exchange", "gather_facts": False,
                                     "tasks": [{"name": kind, TASKS[kind]: {}}]}]), encoding="utf-8")
    log.unlink(missing_ok=True)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH), WORKER_CPU_LOG=str(log),
               PYTHONPATH=os.pathsep.join(filter(None, (str(HOOK), os.environ.get("PYTHONPATH")))))
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    proc = subprocess.run([str(ansible_playbook), "-i", str(inventory), "-f", str(forks), str(playbook)],
                          cwd=workdir, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    workers = [record for record in records if "worker" in record]
    for record in workers:
        record["total"] = sum(record.get(stage, 0.0) for stage in STAGES)
    main = [record["main"] for record in records if "main" in record]
    if len(main) != 1 or not workers:
        raise SystemExit(f"{log}: expected one main record and worker records, got {len(main)} and {len(workers)}")
    return workers, main[0]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args(argv)

    workers: dict[str, list[dict[str, float]]] = {kind: [] for kind in TASKS}
    main_cpu: dict[str, list[float]] = {kind: [] for kind in TASKS}
    with tempfile.TemporaryDirectory(prefix="exchange-pki-bench-") as tmp:
        with lab_fleet(args.servers, Path(tmp) / "lab", Path(tmp) / "sizes.tsv") as inventory:
            for _repetition in range(args.repeat):
                for kind in TASKS:
                    records, cpu = run_one(kind, inventory, Path(tmp), args.forks)
                    workers[kind].extend(records)
                    main_cpu[kind].append(cpu / args.servers)

    print(f"{args.servers} servers, forks {args.forks}, {args.repeat} alternating runs of each module:"
          " median CPU ms per worker, and the main process's CPU per host")
    print(f"{'stage':>8} {'win_ping':>9} {'cert_info':>10} {'difference':>11}")
    rows = [(stage, [statistics.median(record.get(stage, 0.0) for record in workers[kind]) for kind in TASKS])
            for stage in (*STAGES, "total")]
    rows.append(("main/host", [statistics.median(main_cpu[kind]) for kind in TASKS]))
    for stage, (ping, info) in rows:
        print(f"{stage:>8} {ping * 1000:>9.1f} {info * 1000:>10.1f} {(info - ping) * 1000:>+11.1f}")


if __name__ == "__main__":
    main()
