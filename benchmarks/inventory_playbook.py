# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory playbook against the bare certificate_info task, over the same lab hosts, as a ratio.

The lab generates a fleet (``python -m tests.lab start --servers N``, default 100). Then, alternately,
``--repeat`` times (default 3), two ``ansible-playbook`` processes run with the same settings (forks 10):

- A: ``ansible-playbook exchange.pki.inventory`` (the inventory role, then the report role; no probes, no
  cache: the defaults), from a working directory of its own;
- B: a playbook of one ``exchange.pki.certificate_info`` task over the same hosts.

This file is also the callback plugin of both runs (:class:`CallbackModule`): it records when each task
starts, and when the play ends. Printed: the medians of the whole process wall time of A and B and their
ratio, of A's playbook time (first task start to the end) against B's certificate_info task alone (its start to
the end), and the median time of each of A's tasks, so a regression shows where it is.

Run from the repository root after ``make setup``:

    .venv/bin/python benchmarks/inventory_playbook.py [--servers 100] [--repeat 3] [--forks 10]

``--collections-path DIR`` measures another copy of the collection (for example an earlier commit exported
with ``git archive`` into ``DIR/ansible_collections/exchange/pki`` beside its dependencies), so a before/after
comparison runs the same way.
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
name: inventory_playbook
type: aggregate
short_description: Records when each task starts and the play ends into the file named by BENCH_TIMES
description: Not a collection plugin; loaded only by this benchmark through ANSIBLE_CALLBACK_PLUGINS.
"""

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"
BARE_PLAYBOOK = [{
    "name": "certificate_info alone", "hosts": "exchange", "gather_facts": False,
    "tasks": [{"name": "certificate_info", "exchange.pki.certificate_info": {}}],
}]


class CallbackModule(CallbackBase):
    """[[task name, seconds from its start to the next task's start or the end], ...] written to $BENCH_TIMES."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "inventory_playbook"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._starts: list[tuple[str, float]] = []

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._starts.append((task.get_name(), time.perf_counter()))

    def v2_playbook_on_stats(self, stats: Any) -> None:
        end = time.perf_counter()
        ends = [start for _name, start in self._starts[1:]] + [end]
        tasks = [[name, stop - start] for (name, start), stop in zip(self._starts, ends, strict=True)]
        Path(os.environ["BENCH_TIMES"]).write_text(json.dumps(tasks), encoding="utf-8")


@contextmanager
def lab_fleet(servers: int, state_dir: Path) -> Iterator[Path]:
    """A started lab of ``servers`` generated servers; yields its inventory and always stops it."""
    lab = [sys.executable, "-m", "tests.lab"]
    subprocess.run([*lab, "start", "--servers", str(servers), "--state-dir", str(state_dir)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    try:
        yield state_dir / "inventory.yml"
    finally:
        subprocess.run([*lab, "stop", "--state-dir", str(state_dir)], cwd=REPO_ROOT, check=True, capture_output=True)


def timed_run(argv: list[str], cwd: Path, forks: int, collections: Path) -> tuple[float, list[tuple[str, float]]]:
    """Run ansible-playbook; return its wall seconds and the seconds of each task."""
    times = cwd / "times.json"
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent),
        ANSIBLE_CALLBACKS_ENABLED=CallbackModule.CALLBACK_NAME,
        ANSIBLE_FORKS=str(forks),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        BENCH_TIMES=str(times),
    )
    ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
    start = time.perf_counter()
    proc = subprocess.run([str(ansible_playbook), *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ansible-playbook {argv} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
                         f"{proc.stderr[-4000:]}")
    return wall, [(name, float(seconds)) for name, seconds in json.loads(times.read_text(encoding="utf-8"))]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--collections-path", type=Path, default=COLLECTIONS_PATH)
    args = parser.parse_args(argv)

    walls: dict[str, list[float]] = {"playbook": [], "bare": []}
    spans: dict[str, list[float]] = {"playbook": [], "bare": []}
    per_task: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="exchange-pki-bench-") as tmp:
        workdir = Path(tmp)
        bare = workdir / "bare.yml"
        bare.write_text(json.dumps(BARE_PLAYBOOK), encoding="utf-8")
        with lab_fleet(args.servers, workdir / "lab") as inventory:
            for _run in range(args.repeat):
                wall, tasks = timed_run(["-i", str(inventory), "exchange.pki.inventory"], workdir, args.forks,
                                        args.collections_path)
                walls["playbook"].append(wall)
                spans["playbook"].append(sum(seconds for _name, seconds in tasks))
                for name, seconds in tasks:
                    per_task.setdefault(name, []).append(seconds)
                wall, tasks = timed_run(["-i", str(inventory), str(bare)], workdir, args.forks, args.collections_path)
                walls["bare"].append(wall)
                spans["bare"].append(sum(seconds for _name, seconds in tasks))

    median = {key: {kind: statistics.median(values[kind]) for kind in values} for key, values in
              (("wall", walls), ("span", spans))}
    print(f"{args.servers} servers, forks {args.forks}, {args.repeat} alternating runs, medians in seconds")
    print(f"{'':34} {'inventory playbook':>19} {'certificate_info':>17} {'ratio':>6}")
    print(f"{'whole ansible-playbook process':34} {median['wall']['playbook']:>19.2f} {median['wall']['bare']:>17.2f}"
          f" {median['wall']['playbook'] / median['wall']['bare']:>6.2f}")
    print(f"{'first task start to end of play':34} {median['span']['playbook']:>19.2f} {median['span']['bare']:>17.2f}"
          f" {median['span']['playbook'] / median['span']['bare']:>6.2f}")
    print("inventory playbook, median seconds per task:")
    for name, values in per_task.items():
        print(f"{statistics.median(values):8.2f}  {name}")


if __name__ == "__main__":
    main()
