# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ansible-playbook exchange.pki.renew`` over a generated lab fleet, per server-step as a ratio to win_ping.

For each fleet size (``--servers``, default 25 and 100) and each ``--group-concurrency`` (default 1), ``--repeat``
times (default 3), the lab generates a fleet (``python -m tests.lab start --servers N``: DAGs of four members, two
sites, each site's SAN certificate ``CN=mailS.contoso.lab`` shared by every other server, expiring in 45 and 60
days; the lab's AD CS with the auto-approving WebServer template), and one ``ansible-playbook`` process runs:

1. the baseline: a play on localhost of one ``ansible.windows.win_ping`` task per server, each delegated to its
   server (the shape of the renewal role's server steps: one task, delegated to one server);
2. ``exchange.pki.renew`` (imported): the adcs backend for ``^CN=mail`` (``renew_before_days`` 90, so both site
   certificates are due and nothing else has a backend), probes on the lab's ports, ledger and state in a
   scratch directory, no report files.

Every run starts a fresh lab (a renewal changes it). This file is also the callback plugin of the run
(:class:`CallbackModule`): it records when each play and task starts and which tasks ran for a server. A
*server-step* is a task of the renewal role's per-server files (member.yml, connectors.yml, rollback.yml,
cleanup.yml) that ran (not skipped); *remote* ones talked to the server (delegated), the others are probes over
TLS or bookkeeping on the controller. Printed, medians of the runs: the renewal role's wall time (its include to
the play that inventories the fleet again, so a parallel rollout's own play is inside), per server-step and per
server, both as a ratio to the baseline's seconds per win_ping task of the same run; the whole renew playbook's
wall time; and the ratio of each fleet size's and concurrency's playbook time to the first row's.

Run from the repository root after ``make setup`` (each run of 100 servers takes minutes):

    .venv/bin/python benchmarks/renewal.py [--servers 25 100] [--repeat 3] [--group-concurrency 1 2] [--forks 10]
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

import yaml
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: renewal
type: aggregate
short_description: Records play and task starts and per-server steps for the benchmark into $BENCH_TIMES
description: Not a collection plugin; loaded only by this benchmark through ANSIBLE_CALLBACK_PLUGINS.
"""

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"
SERVER_FILES = ("member.yml", "connectors.yml", "rollback.yml", "cleanup.yml")
BASELINE_PLAY = "baseline win_ping"
ROLLOUT_TASK = "Renew and roll out"
AFTER_PLAY = "Inventory the fleet again"  # the play after the renewal (a parallel rollout has plays of its own)


class CallbackModule(CallbackBase):
    """Writes {"events": [[kind, name, seconds]], "steps": [[file, remote]]} to $BENCH_TIMES at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "renewal"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events: list[list[Any]] = []
        self._steps: list[list[Any]] = []

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._events.append(["play", play.get_name(), time.perf_counter()])

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._events.append(["task", task.get_name(), time.perf_counter()])

    def _ran(self, result: Any, *_: Any, **__: Any) -> None:
        task = result._task
        path = (task.get_path() or "").rsplit(":", 1)[0]
        if task.action in ("include_tasks", "ansible.builtin.include_tasks"):
            return
        if path.endswith(tuple(f"roles/renewal/tasks/{name}" for name in SERVER_FILES)):
            self._steps.append([Path(path).name, bool(task.delegate_to)])

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_unreachable = _ran

    def v2_playbook_on_stats(self, stats: Any) -> None:
        self._events.append(["end", "", time.perf_counter()])
        Path(os.environ["BENCH_TIMES"]).write_text(json.dumps({"events": self._events, "steps": self._steps}),
                                                   encoding="utf-8")


@contextmanager
def lab_fleet(servers: int, state_dir: Path) -> Iterator[Path]:
    """A started lab of ``servers`` generated servers; yields its state directory and always stops it."""
    lab = [sys.executable, "-m", "tests.lab"]
    subprocess.run([*lab, "start", "--servers", str(servers), "--state-dir", str(state_dir)],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    try:
        yield state_dir
    finally:
        subprocess.run([*lab, "stop", "--state-dir", str(state_dir)], cwd=REPO_ROOT, check=True, capture_output=True)


def ca_config(state_dir: Path) -> str:
    dump = subprocess.run([sys.executable, "-m", "tests.lab", "dump", "--state-dir", str(state_dir)],
                          cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(dump)["organization"]["ca"]["config"]


def write_run(work: Path, lab: Path, servers: int, concurrency: int) -> Path:
    """The playbook (baseline play, then exchange.pki.renew), its variables and the probe-ports inventory."""
    baseline = {
        "name": BASELINE_PLAY, "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": f"win_ping ex{n}", "ansible.windows.win_ping": {}, "delegate_to": f"ex{n}"}
                  for n in range(1, servers + 1)],
    }
    playbook = work / "bench.yml"
    playbook.write_text(json.dumps([baseline, {"ansible.builtin.import_playbook": "exchange.pki.renew"}]),
                        encoding="utf-8")
    (work / "probe_ports.yml").write_text(
        'exchange:\n  vars:\n    renewal_probe_ports: "{{ exchange_pki_lab_ports }}"\n', encoding="utf-8")
    variables = {
        "renewal_policy": {
            "renew_before_days": 90,
            "group_concurrency": concurrency,
            "backends": [{"match": {"subject": "^CN=mail"}, "backend": "adcs",
                          "options": {"ca_config": ca_config(lab), "template": "WebServer"}}],
        },
        "renewal_group_concurrency": concurrency,
        "renewal_ledger": str(work / "ledger.jsonl"),
        "renewal_state_dir": str(work / "state"),
        "renewal_ca_path": str(lab / "ca.pem"),
        "renew_report": False,
        "report_show_summary": False,
    }
    (work / "renewal.yml").write_text(yaml.safe_dump(variables), encoding="utf-8")
    return playbook


def run_once(servers: int, concurrency: int, forks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="exchange-pki-bench-renewal-") as tmp:
        work = Path(tmp)
        with lab_fleet(servers, work / "lab") as lab:
            playbook = write_run(work, lab, servers, concurrency)
            times = work / "times.json"
            env = dict(
                os.environ,
                ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
                ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent),
                ANSIBLE_CALLBACKS_ENABLED=CallbackModule.CALLBACK_NAME,
                ANSIBLE_FORKS=str(forks),
                ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                ANSIBLE_HOST_KEY_CHECKING="false",
                ANSIBLE_LOCALHOST_WARNING="false",
                BENCH_TIMES=str(times),
            )
            ansible_playbook = Path(sys.executable).with_name("ansible-playbook")
            proc = subprocess.run(
                [str(ansible_playbook), "-i", str(lab / "inventory.yml"), "-i", str(work / "probe_ports.yml"),
                 "-e", f"@{work / 'renewal.yml'}", str(playbook)],
                cwd=work, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"ansible-playbook failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n"
                                 f"{proc.stderr[-3000:]}")
            recorded = json.loads(times.read_text(encoding="utf-8"))
            done = [json.loads(line) for line in (work / "ledger.jsonl").read_text(encoding="utf-8").splitlines()
                    if '"renewal_done"' in line]
    return measure(recorded, servers, len(done))


def measure(recorded: dict[str, Any], servers: int, groups_done: int) -> dict[str, float]:
    events = recorded["events"]
    plays = [(index, name) for index, (kind, name, _t) in enumerate(events) if kind == "play"]
    baseline_start = next(events[index][2] for index, name in plays if name == BASELINE_PLAY)
    renew_start = next(events[index][2] for index, name in plays if name != BASELINE_PLAY)
    rollout = next(index for index, (kind, name, _t) in enumerate(events) if kind == "task" and name == ROLLOUT_TASK)
    rollout_end = next(t for kind, name, t in events[rollout + 1:] if kind == "play" and name.startswith(AFTER_PLAY))
    steps = recorded["steps"]
    ping = (renew_start - baseline_start) / servers
    role = rollout_end - events[rollout][2]
    return {
        "ping_step": ping,
        "role": role,
        "steps": len(steps),
        "remote_steps": sum(1 for _file, remote in steps if remote),
        "per_step_ratio": role / len(steps) / ping,
        "per_server_ratio": role / servers / ping,
        "renew_wall": events[-1][2] - renew_start,
        "groups_done": groups_done,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[25, 100])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--group-concurrency", type=int, nargs="+", default=[1])
    parser.add_argument("--forks", type=int, default=10)
    args = parser.parse_args(argv)

    rows = []
    for servers in args.servers:
        for concurrency in args.group_concurrency:
            runs = [run_once(servers, concurrency, args.forks) for _run in range(args.repeat)]
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            rows.append((servers, concurrency, median))
            print(f"done: {servers} servers, group_concurrency {concurrency}: "
                  + ", ".join(f"{key} {[round(run[key], 3) for run in runs]}" for key in runs[0]), flush=True)

    print(f"\nforks {args.forks}, medians of {args.repeat} runs (a fresh lab each); seconds unless marked")
    print(f"{'servers':>7} {'conc.':>5} {'groups':>6} {'steps':>6} {'remote':>6} {'win_ping/step':>13}"
          f" {'role':>8} {'role/step':>9} {'ratio':>6} {'role/server':>11} {'ratio':>6} {'renew wall':>10}"
          f" {'vs first':>8}")
    first = rows[0][2]["renew_wall"]
    for servers, concurrency, m in rows:
        print(f"{servers:>7} {concurrency:>5} {m['groups_done']:>6.0f} {m['steps']:>6.0f} {m['remote_steps']:>6.0f}"
              f" {m['ping_step']:>13.3f} {m['role']:>8.1f} {m['role'] / m['steps']:>9.3f} {m['per_step_ratio']:>6.2f}"
              f" {m['role'] / servers:>11.3f} {m['per_server_ratio']:>6.2f} {m['renew_wall']:>10.1f}"
              f" {m['renew_wall'] / first:>8.2f}")


if __name__ == "__main__":
    main()
