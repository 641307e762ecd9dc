# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for integration tests: a running lab fleet and real ``ansible-playbook`` runs against it.

Every test here goes through the real chain: ansible-playbook -> winrm connection (pywinrm) -> the lab's
WS-Management endpoint -> the lab's emulation of the collection's remote module. Results are checked
against the lab's own dump of its model state, never against values written in the test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"
SCENARIOS = REPO_ROOT / "tests" / "lab" / "scenarios"


def _ansible_playbook() -> str | None:
    """Locate ansible-playbook next to the running interpreter first (the project's .venv)."""
    beside = Path(sys.executable).with_name("ansible-playbook")
    if beside.exists():
        return str(beside)
    return shutil.which("ansible-playbook")


ANSIBLE_PLAYBOOK = _ansible_playbook()

pytestmark = pytest.mark.skipif(
    ANSIBLE_PLAYBOOK is None or not (COLLECTIONS_PATH / "ansible_collections" / "exchange" / "pki").exists(),
    reason="needs ansible-playbook and the collections path prepared by `make collections`",
)


@dataclass
class Lab:
    """A started lab: its state directory and the control commands the tests use."""

    state_dir: Path

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yml"

    def endpoints(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "endpoints.json").read_text())

    def control(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.lab", *args, "--state-dir", str(self.state_dir)],
            cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120,
        )
        if proc.returncode != 0:
            raise AssertionError(f"lab {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def dump(self) -> dict[str, Any]:
        return json.loads(self.control("dump"))

    def mutations(self) -> list[dict[str, Any]]:
        return self.dump()["mutations"]


def start_lab(state_dir: Path, *extra: str) -> Lab:
    lab = Lab(state_dir)
    lab.control("start", *extra)
    return lab


def start_variant_lab(tmp_path_factory: pytest.TempPathFactory, name: str, *, base: str = "single",
                      servers: tuple[dict[str, Any], ...] = (), accounts: tuple[dict[str, Any], ...] = ()) -> Lab:
    """Start a lab from a shipped scenario plus extra servers (copies of its first, with overrides) and accounts."""
    scenario = yaml.safe_load((SCENARIOS / f"{base}.yml").read_text(encoding="utf-8"))
    first = scenario["servers"][0]
    scenario["servers"] += [{**first, **overrides} for overrides in servers]
    scenario["accounts"] += list(accounts)
    path = tmp_path_factory.mktemp("scenario") / f"{name}.yml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    return start_lab(tmp_path_factory.mktemp(f"lab-{name}"), "--scenario", str(path))


def ansible_env() -> dict[str, str]:
    """The environment of every ansible-playbook the tests start: this collection's path, quiet, 10 forks."""
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
        ANSIBLE_HOST_KEY_CHECKING="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORKS="10",
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    env.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
    return env


@pytest.fixture
def fresh_lab(tmp_path: Path) -> Iterator[Lab]:
    """A `dag` lab of the test's own, for a test that changes it; stopped afterwards."""
    started = start_lab(tmp_path / "lab", "--scenario", "dag")
    try:
        yield started
    finally:
        started.control("stop")


@pytest.fixture(scope="module")
def dag_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The `dag` scenario, started once per test module and stopped afterwards."""
    lab = start_lab(tmp_path_factory.mktemp("lab-dag"), "--scenario", "dag")
    try:
        yield lab
    finally:
        lab.control("stop")


@dataclass
class PlaybookRun:
    returncode: int
    stdout: str
    stderr: str
    results: dict[str, Any]

    def result(self, host: str) -> dict[str, Any]:
        """The registered ``result`` of the play's task on ``host``, as written by the capture task."""
        try:
            return self.results[host]
        except KeyError:
            raise AssertionError(f"no result captured for {host}:\n{self.stdout}\n{self.stderr}") from None


def run_playbook(
    lab: Lab,
    tasks: str,
    tmp_path: Path,
    *,
    hosts: str = "exchange",
    host_vars: Mapping[str, Any] | None = None,
    extra_args: tuple[str, ...] = (),
) -> PlaybookRun:
    """Run a play whose ``tasks`` register ``result``; every host's ``result`` is captured to JSON.

    ``host_vars`` override connection variables (for example the winrm transport) for every host.
    """
    capture_dir = tmp_path / "captured"
    capture_dir.mkdir(exist_ok=True)
    play = textwrap.dedent(
        """\
        - name: Integration play
          hosts: {hosts}
          gather_facts: false
          vars: {host_vars}
          tasks:
        {tasks}
            - name: Capture the result on the controller
              ansible.builtin.copy:
                content: "{{{{ result | to_json }}}}"
                dest: "{capture_dir}/{{{{ inventory_hostname }}}}.json"
                mode: "0600"
              delegate_to: localhost
              check_mode: false
              when: result is defined
        """
    ).format(
        hosts=hosts,
        host_vars=json.dumps(dict(host_vars or {})),
        tasks=textwrap.indent(textwrap.dedent(tasks), "    "),
        capture_dir=capture_dir,
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(play)
    yaml.safe_load(play)  # fail early, with the text, on a malformed test play
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(lab.inventory), "-e", f"ansible_python_interpreter={sys.executable}",
         str(playbook), *extra_args],
        cwd=tmp_path, env=ansible_env(), capture_output=True, text=True, check=False, timeout=600,
    )
    results = {p.stem: json.loads(p.read_text()) for p in capture_dir.glob("*.json")}
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)


@pytest.fixture
def playbook(tmp_path: Path):
    """``playbook(lab, tasks, **kw)`` runs a play against the lab and returns a :class:`PlaybookRun`."""

    def _run(lab: Lab, tasks: str, **kwargs: Any) -> PlaybookRun:
        return run_playbook(lab, tasks, tmp_path, **kwargs)

    return _run
