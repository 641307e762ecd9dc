# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per host-task cost of exchange.pki.certificate_info against lab hosts, as a ratio to ansible.windows.win_ping.

For each fleet size the lab generates a fleet (``python -m tests.lab start --servers N``) and one
``ansible-playbook`` run (forks 10, the same winrm connection settings for both) plays, alternately,
``--repeat`` times: a play of one ``ansible.windows.win_ping`` task and a play of one
``exchange.pki.certificate_info`` task over every host. This file is also the callback plugin of that run
(:class:`CallbackModule`): it records when each task starts and when its last host result arrives. A task's
wall time divided by the number of hosts is its per host-task cost. The medians of
both and their ratio are printed. win_ping is the baseline: the cheapest module round trip over the same
transport, so the ratio is what one certificate inventory costs in units of "one Windows task".

The lab also logs every module call (tests/lab/transport/host.py, ``EXCHANGE_PKI_LAB_STDIN_LOG``): the
medians of the module's stdin (what Ansible sends: exec wrapper, module and arguments) and of its answer
(the executor's JSON) are printed per fleet size, for exchange_batch and for win_ping, and each size's
exchange_batch answer as a ratio to the smallest fleet's.

Run from the repository root after ``make setup``:

    .venv/bin/python benchmarks/certificate_info_vs_win_ping.py [--servers 20 100] [--repeat 3] [--forks 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: certificate_info_vs_win_ping
type: aggregate
short_description: Records each task's wall time for the benchmark into the file named by BENCH_TIMES
description: Not a collection plugin; loaded only by this benchmark through ANSIBLE_CALLBACK_PLUGINS.
"""

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"
TASKS = {"win_ping": "ansible.windows.win_ping", "certificate_info": "exchange.pki.certificate_info"}


class CallbackModule(CallbackBase):
    """Task name -> [start, last result] in perf_counter seconds, written to $BENCH_TIMES at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "certificate_info_vs_win_ping"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._times: dict[str, list[float]] = {}
        self._current = ""

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._current = task.get_name()
        self._times[self._current] = [time.perf_counter()] * 2

    def _result(self, *_: Any, **__: Any) -> None:
        self._times[self._current][1] = time.perf_counter()

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_unreachable = _result

    def v2_playbook_on_stats(self, stats: Any) -> None:
        Path(os.environ["BENCH_TIMES"]).write_text(json.dumps(self._times), encoding="utf-8")


STDIN_LOG_ENV = "EXCHANGE_PKI_LAB_STDIN_LOG"  # tests/lab/transport/host.py
MODULES = {"win_ping": "ansible.windows.win_ping", "certificate_info": "exchange.pki.exchange_batch"}


@contextmanager
def lab_fleet(servers: int, state_dir: Path, sizes_log: Path) -> Iterator[Path]:
    """A started lab of ``servers`` generated servers; yields its inventory and always stops it."""
    lab = [sys.executable, "-m", "tests.lab"]
    subprocess.run([*lab, "start", "--servers", str(servers), "--state-dir", str(state_dir)],
                   cwd=REPO_ROOT, check=True, capture_output=True, env={**os.environ, STDIN_LOG_ENV: str(sizes_log)})
    try:
        yield state_dir / "inventory.yml"
    finally:
        subprocess.run([*lab, "stop", "--state-dir", str(state_dir)], cwd=REPO_ROOT, check=True, capture_output=True)


def playbook(repeat: int) -> list[dict[str, object]]:
    """Alternating plays, one task each, named ``<kind> <n>``."""
    return [
        {"name": f"{kind} {n}", "hosts": "exchange", "gather_facts": False,
         "tasks": [{"name": f"{kind} {n}", module: {}}]}
        for n in range(repeat) for kind, module in TASKS.items()
    ]


def run_plays(inventory: Path, workdir: Path, repeat: int, forks: int) -> dict[str, list[float]]:
    """Wall seconds of each task, by kind, from one ansible-playbook run."""
    path, times = workdir / "bench.yml", workdir / "times.json"
    path.write_text(json.dumps(playbook(repeat)), encoding="utf-8")
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
        ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent),
        ANSIBLE_CALLBACKS_ENABLED=CallbackModule.CALLBACK_NAME,
        BENCH_TIMES=str(times),
    )
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    proc = subprocess.run([str(ansible_playbook), "-i", str(inventory), "-f", str(forks), str(path)],
                          cwd=workdir, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        failures = "\n".join(line for line in proc.stdout.splitlines() if line.startswith(("fatal:", "failed:")))
        raise SystemExit(f"ansible-playbook failed ({proc.returncode}):\n{failures[:4000]}\n{proc.stderr[-4000:]}")
    seconds: dict[str, list[float]] = {kind: [] for kind in TASKS}
    for name, (start, end) in json.loads(times.read_text(encoding="utf-8")).items():
        seconds[name.split()[0]].append(end - start)
    return seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args(argv)

    rows = []
    for servers in args.servers:
        with tempfile.TemporaryDirectory(prefix="exchange-pki-bench-") as tmp:
            sizes_log = Path(tmp) / "sizes.tsv"
            with lab_fleet(servers, Path(tmp) / "lab", sizes_log) as inventory:
                seconds = run_plays(inventory, Path(tmp), args.repeat, args.forks)
            sizes = read_sizes(sizes_log)
        per_host = {kind: statistics.median(values) / servers * 1000 for kind, values in seconds.items()}
        rows.append((servers, per_host["win_ping"], per_host["certificate_info"], sizes))

    print(f"forks {args.forks}, {args.repeat} alternating repetitions, median per host-task (task wall time / hosts)")
    print(f"{'servers':>8} {'win_ping ms':>12} {'certificate_info ms':>20} {'ratio':>7}"
          f" {'stdin KB ping/info':>19} {'answer KB':>10} {'vs first':>9}")
    first_answer = rows[0][3]["certificate_info"][1]
    for servers, ping, info, sizes in rows:
        stdin = f"{sizes['win_ping'][0] / 1000:.0f}/{sizes['certificate_info'][0] / 1000:.0f}"
        answer = sizes["certificate_info"][1]
        print(f"{servers:>8} {ping:>12.1f} {info:>20.1f} {info / ping:>7.2f}"
              f" {stdin:>19} {answer / 1000:>10.1f} {answer / first_answer:>9.2f}")


def read_sizes(log: Path) -> dict[str, tuple[float, float]]:
    """Median (stdin bytes, answer bytes) of each benchmarked module's calls, from the lab's log."""
    calls: dict[str, list[tuple[int, int]]] = {kind: [] for kind in MODULES}
    kinds = {module: kind for kind, module in MODULES.items()}
    for line in log.read_text(encoding="utf-8").splitlines():
        module, stdin, answer = line.split("\t")
        if module in kinds:
            calls[kinds[module]].append((int(stdin), int(answer)))
    return {kind: (statistics.median(pair[0] for pair in pairs), statistics.median(pair[1] for pair in pairs))
            for kind, pairs in calls.items()}


if __name__ == "__main__":
    main()
