# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-stage CPU of every ansible-playbook worker, for benchmarks/worker_cpu.py (not a collection file).

Python imports this module at start-up when its directory is on PYTHONPATH and WORKER_CPU_LOG names a file;
without WORKER_CPU_LOG it does nothing. Once ansible-core's task queue manager is imported (so before any worker
is forked) it wraps, in the controller process:

- ``WorkerProcess._run``: one worker, from fork to its result (``worker``);
- ``TaskExecutor._execute``: the task (templating and the action plugin; ``task``);
- ``ActionBase._configure_module``: building the module's payload (``build``);
- the winrm connection's ``_connect`` (``connect``) and ``exec_command`` (``exec``);
- ``ActionBase._parse_returned_data``: decoding the module's answer (``decode``).

Each wrapper adds the CPU time (``time.process_time``) spent inside it, less that of the wrapped stages it calls
(the connection's ``exec_command`` connects first), to the worker's totals, so the stages add up to the worker's CPU
(``task`` is then the task outside the other stages, ``worker`` the worker outside the task). A worker appends one
JSON line of its totals to WORKER_CPU_LOG when it ends. The controller's main process appends
``{"main": cpu}`` (its own CPU, children excluded) when it exits.
"""

from __future__ import annotations

import atexit
import builtins
import json
import os
import resource
import time
from typing import Any

LOG = os.environ.get("WORKER_CPU_LOG")
TRIGGER = "ansible.executor.task_queue_manager"


def _append(record: dict[str, float]) -> None:
    with open(LOG, "a", encoding="utf-8") as stream:  # type: ignore[arg-type]
        stream.write(json.dumps(record) + "\n")


def _install() -> None:
    from ansible.executor import task_executor  # noqa: PLC0415 - only once the controller has imported it
    from ansible.executor.process import worker  # noqa: PLC0415
    from ansible.plugins.action import ActionBase  # noqa: PLC0415
    from ansible.plugins.connection import winrm  # noqa: PLC0415

    totals: dict[str, float] = {}
    nested: list[float] = []  # per open stage: the CPU of the stages it called

    def timed(owner: Any, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            nested.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.process_time() - start
                totals[stage] = totals.get(stage, 0.0) + spent - nested.pop()
                if nested:
                    nested[-1] += spent

        setattr(owner, name, wrapper)

    for owner, name, stage in (
        (task_executor.TaskExecutor, "_execute", "task"),
        (ActionBase, "_configure_module", "build"),
        (ActionBase, "_parse_returned_data", "decode"),
        (winrm.Connection, "_connect", "connect"),
        (winrm.Connection, "exec_command", "exec"),
    ):
        timed(owner, name, stage)

    timed(worker.WorkerProcess, "_run", "worker")
    run = worker.WorkerProcess._run  # noqa: SLF001

    def worker_run(self: Any) -> Any:
        totals.clear()
        try:
            return run(self)
        finally:
            _append(dict(totals))

    worker.WorkerProcess._run = worker_run  # noqa: SLF001


if LOG:
    _import = builtins.__import__
    _main_pid = os.getpid()

    def _import_and_install(name: str, *args: Any, **kwargs: Any) -> Any:
        module = _import(name, *args, **kwargs)
        if name == TRIGGER:
            builtins.__import__ = _import
            _install()
        return module

    def _main_cpu() -> None:
        if os.getpid() == _main_pid:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            _append({"main": usage.ru_utime + usage.ru_stime})

    builtins.__import__ = _import_and_install
    atexit.register(_main_cpu)
