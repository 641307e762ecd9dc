# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client side of the lab: start and stop the daemon process, and call its control API."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTROL_FILE = "control.json"
PID_FILE = "lab.pid"
LOG_FILE = "lab.log"
TOKEN_HEADER = "X-Lab-Token"
#: Seconds ``start`` waits for the daemon to listen on every port, and ``stop`` for it to exit.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile("".join(rf"(?:(?P<{unit}>\d+){unit})?" for unit in _UNITS))


class ControlError(Exception):
    """A control request failed; the message is for the user (CLI exit code 2)."""


def parse_duration(text: str) -> int:
    """Seconds in ``90s``, ``15m``, ``49h``, ``3d``, ``1w`` or a combination in that order (``2d12h``)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(
            f"invalid duration {text!r}: use numbers with units w, d, h, m, s in that order, e.g. 90s, 49h, 2d12h"
        )
    seconds = sum(int(match[unit] or 0) * factor for unit, factor in _UNITS.items())
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than zero")
    return seconds


class ControlClient:
    """Calls the control API of the daemon whose state directory is given."""

    def __init__(self, state_dir: Path) -> None:
        try:
            control = json.loads((state_dir / CONTROL_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ControlError(f"no lab is running with state directory {state_dir}") from None
        self._url = f"http://127.0.0.1:{control['port']}"
        self._token = str(control["token"])
        self.pid = int(control["pid"])

    def call(self, command: str, **args: Any) -> Any:
        """POST one command; return its result or raise ControlError with the daemon's message."""
        request = urllib.request.Request(
            f"{self._url}/{command}",
            data=json.dumps(args).encode(),
            method="POST",
            headers={"Content-Type": "application/json", TOKEN_HEADER: self._token},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - fixed loopback URL
                return json.load(response)["result"]
        except urllib.error.HTTPError as exc:
            try:
                message = json.load(exc)["error"]
            except (ValueError, KeyError):
                message = f"HTTP {exc.code}"
            raise ControlError(message) from None
        except (urllib.error.URLError, ConnectionError) as exc:
            raise ControlError(f"the lab does not answer on {self._url}: {exc}") from None


def is_running(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _log_tail(state_dir: Path, lines: int = 30) -> str:
    try:
        return "\n".join((state_dir / LOG_FILE).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_daemon(state_dir: Path, serve_args: Sequence[str]) -> int:
    """Spawn ``python -m tests.lab serve`` in its own session; return its pid once it listens everywhere."""
    state_dir.mkdir(parents=True, exist_ok=True)
    running = _running_pid(state_dir)
    if running is not None:
        raise ControlError(f"a lab is already running from {state_dir} (pid {running}); stop it first")
    (state_dir / CONTROL_FILE).unlink(missing_ok=True)
    with open(state_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "tests.lab", "serve", "--state-dir", str(state_dir), *serve_args],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ControlError(f"the lab exited with code {process.returncode} while starting:\n{_log_tail(state_dir)}")
        if (state_dir / CONTROL_FILE).exists():
            ControlClient(state_dir).call("ping")
            return process.pid
        time.sleep(0.05)
    process.kill()
    raise ControlError(f"the lab did not start within {START_TIMEOUT:.0f} s:\n{_log_tail(state_dir)}")


def _running_pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_running(pid) else None


def stop_daemon(state_dir: Path) -> bool:
    """Stop the daemon (politely, then by signal); False when none was running."""
    pid = _running_pid(state_dir)
    if pid is None:
        _forget(state_dir)
        return False
    try:
        ControlClient(state_dir).call("stop")
    except ControlError:
        os.kill(pid, signal.SIGTERM)
    for sig in (None, signal.SIGKILL):
        if sig is not None:
            os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and is_running(pid):
            time.sleep(0.05)
        if not is_running(pid):
            break
    _forget(state_dir)
    return True


def _forget(state_dir: Path) -> None:
    for name in (CONTROL_FILE, PID_FILE):
        (state_dir / name).unlink(missing_ok=True)
