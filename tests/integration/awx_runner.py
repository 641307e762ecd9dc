# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a playbook the way AWX / Automation Controller runs a job: through ``ansible-runner``.

AWX gives every job a private data directory and hands it to ansible-runner (inside the execution
environment). :func:`run_job` lays the directory out the same way::

    <private_data_dir>/
      env/extravars      the job's extra variables (survey answers, job template variables)   YAML
      env/envvars        environment variables (credential injectors, the collections path)  YAML
      env/settings       runner settings: fact cache type, job timeout                        YAML
      env/cmdline        ansible-playbook arguments: -u USER --ask-pass (machine credential), --check
      env/passwords      prompt pattern -> answer: the machine credential's password          YAML
      inventory/hosts    the job's inventory (a copy: AWX writes its own inventory file)
      project/<name>.yml the playbook of the job template (a collection playbook is imported
                         from a one-line playbook, as an AWX project would)
      artifacts/<ident>/ what the job leaves behind: stdout, job_events/, fact_cache/ (jsonfile), rc, status

then calls ``ansible_runner.run`` with the same options AWX passes (forks, limit, check mode, fact cache
``jsonfile`` in the artifacts, the ``awx_display`` stdout callback) and returns a :class:`Job`.

``Job.stats`` is what AWX stores as the job's artifacts: the aggregate custom stats of ``set_stats``
(``artifact_data`` of the ``playbook_on_stats`` event).
"""

from __future__ import annotations

import json
import shlex
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

try:
    import ansible_runner
except ImportError:  # pragma: no cover - reported by the tests that need it
    ansible_runner = None

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"


@dataclass
class Job:
    """The outcome of one job: what AWX shows (status, output) and keeps (artifacts)."""

    status: str  # ansible-runner's: successful | failed | timeout | canceled
    rc: int
    stdout: str  # the job output (what AWX shows)
    artifacts: Path  # <private_data_dir>/artifacts/<ident>
    stats: dict[str, Any]  # the set_stats artifacts (custom stats) of the job, {} when none

    @property
    def fact_cache_dir(self) -> Path:
        return self.artifacts / "fact_cache"

    def fact_cache(self, host: str) -> dict[str, Any]:
        """The host's facts in the job's jsonfile fact cache ({} when the job cached none for it).

        ansible-core 2.19 names the file ``s<schema>_<host>`` and stores ``{"__payload__": "<JSON>"}`` whose
        values carry data tags (``{"value": ..., "tags": [...], "__ansible_type": ...}``); older versions store
        the facts as they are in ``<host>``. Both read back as plain values.
        """
        schema = sorted(p for p in self.fact_cache_dir.glob(f"s*_{host}") if p.name[1:-len(host) - 1].isdigit())
        paths = [p for p in (*schema[-1:], self.fact_cache_dir / host) if p.is_file()]
        if not paths:
            return {}
        path = paths[0]
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and set(data) == {"__payload__"}:
            data = json.loads(data["__payload__"])
        return _untag(data)

    def events(self) -> list[dict[str, Any]]:
        """The job events in the order ansible emitted them (event, counter, event_data: host, task, res ...)."""
        found = []
        for path in (self.artifacts / "job_events").glob("*.json"):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except json.JSONDecodeError:  # a partial event (the job was killed while writing it)
                continue
        return sorted(found, key=lambda e: e.get("counter", 0))

    def host_events(self, event: str) -> dict[str, list[dict[str, Any]]]:
        """Host -> the event_data of every event named ``event`` (e.g. runner_on_ok, runner_on_failed)."""
        out: dict[str, list[dict[str, Any]]] = {}
        for e in self.events():
            if e.get("event") == event:
                data = e.get("event_data", {})
                out.setdefault(data.get("host", ""), []).append(data)
        return out

    def summary(self) -> dict[str, dict[str, int]]:
        """The play recap: stat (ok, changed, failures, dark, skipped, ...) -> host -> count."""
        for e in reversed(self.events()):
            if e.get("event") == "playbook_on_stats":
                data = e.get("event_data", {})
                return {k: v for k, v in data.items() if isinstance(v, dict) and k != "artifact_data"}
        return {}


def _untag(value: Any) -> Any:
    """Plain JSON values from ansible-core 2.19's tagged cache payload."""
    if isinstance(value, dict):
        if "__ansible_type" in value:
            return _untag(value.get("value"))
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def _write_yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, default_flow_style=False), encoding="utf-8")
    path.chmod(0o600)


def _project_playbook(project: Path, playbook: str) -> str:
    """Put the job template's playbook into project/ and return its name relative to the project."""
    candidate = Path(playbook)
    if candidate.suffix in (".yml", ".yaml") and candidate.exists():
        target = project / candidate.name
        shutil.copyfile(candidate, target)
        return target.name
    if "." not in playbook or "/" in playbook:
        raise ValueError(f"playbook {playbook!r} is neither a file nor a collection playbook (namespace.name.playbook)")
    # A collection playbook: an AWX project names it in a playbook of its own.
    name = playbook.rsplit(".", 1)[-1] + ".yml"
    (project / name).write_text(f"---\n- name: Run {playbook}\n  ansible.builtin.import_playbook: {playbook}\n",
                                encoding="utf-8")
    return name


def _inventory(inventory_dir: Path, inventory: str | Path) -> None:
    inventory_dir.mkdir(parents=True, exist_ok=True)
    source = Path(inventory) if isinstance(inventory, Path) or "\n" not in str(inventory) else None
    if source is not None and source.is_dir():
        shutil.copytree(source, inventory_dir, dirs_exist_ok=True)
    elif source is not None and source.is_file():
        suffix = source.suffix if source.suffix in (".yml", ".yaml") else ""
        shutil.copyfile(source, inventory_dir / f"hosts{suffix}")
    elif source is not None:
        raise FileNotFoundError(f"inventory {inventory} does not exist")
    else:  # inventory text
        (inventory_dir / "hosts").write_text(str(inventory), encoding="utf-8")


def default_envvars() -> dict[str, str]:
    """What the execution environment provides: this collection and its dependencies, quiet output."""
    return {
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_HOST_KEY_CHECKING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
    }


def machine_credential(username: str, password: str) -> dict[str, Any]:
    """What AWX makes of a Machine credential: ``-u USER --ask-pass`` and the answer to the password prompt.

    Use as ``run_job(..., **machine_credential(user, password))``. The password is in env/passwords only (the
    private data directory is private to the job), never in the inventory, the extra variables or the command.
    """
    return {"cmdline": f"-u {shlex.quote(username)} --ask-pass", "passwords": {r"^SSH password:\s*?$": password}}


def run_job(private_data_dir: Path, playbook: str, *, inventory: str | Path, extravars: dict | None = None,
            envvars: dict | None = None, limit: str | None = None, forks: int = 5, check: bool = False,
            fact_cache: bool = True, timeout: int | None = None, ident: str | None = None,
            cmdline: str | None = None, passwords: dict[str, str] | None = None) -> Job:
    """Run ``playbook`` as an AWX job in ``private_data_dir`` and return the :class:`Job`.

    ``playbook`` is a collection playbook ("exchange.pki.renew") or a playbook file. ``envvars`` are added to
    :func:`default_envvars` (credential injectors put WinRM and Exchange session variables here). The private
    data directory may be reused for several jobs (each gets its own ``artifacts/<ident>``); its env/ and
    inventory/ are rewritten for each job, as AWX prepares them for each job.

    ``cmdline`` (env/cmdline) and ``passwords`` (env/passwords: prompt regex -> answer) are how AWX passes a
    machine credential: see :func:`machine_credential`.
    """
    if ansible_runner is None:
        raise RuntimeError("ansible-runner is not installed (requirements/dev.txt)")
    private_data_dir = Path(private_data_dir).resolve()
    project = private_data_dir / "project"
    project.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(private_data_dir / "inventory", ignore_errors=True)
    _inventory(private_data_dir / "inventory", inventory)
    name = _project_playbook(project, playbook)

    env = {**default_envvars(), **{str(k): str(v) for k, v in (envvars or {}).items()}}
    _write_yaml(private_data_dir / "env" / "envvars", env)
    _write_yaml(private_data_dir / "env" / "extravars", dict(extravars or {}))
    settings: dict[str, Any] = {"suppress_ansible_output": True}
    if fact_cache:
        settings.update(fact_cache_type="jsonfile", fact_cache="fact_cache")
    if timeout:
        settings["job_timeout"] = int(timeout)
    _write_yaml(private_data_dir / "env" / "settings", settings)
    arguments = " ".join(a for a in (cmdline, "--check" if check else "") if a)
    for file, content in (("cmdline", arguments), ("passwords", passwords)):
        path = private_data_dir / "env" / file
        path.unlink(missing_ok=True)
        if content and isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        elif content:
            _write_yaml(path, content)

    ident = ident or uuid.uuid4().hex
    kwargs: dict[str, Any] = {
        "private_data_dir": str(private_data_dir),
        "playbook": name,
        "ident": ident,
        "forks": forks,
        "quiet": True,
        "fact_cache_type": "jsonfile" if fact_cache else "",
    }
    if limit:
        kwargs["limit"] = limit
    if timeout:
        kwargs["timeout"] = int(timeout)
    runner = ansible_runner.run(**kwargs)

    artifacts = Path(runner.config.artifact_dir)
    stdout_path = artifacts / "stdout"
    stdout = stdout_path.read_text(encoding="utf-8", errors="replace") if stdout_path.exists() else ""
    stats: dict[str, Any] = {}
    for event in runner.events:
        if event.get("event") == "playbook_on_stats":
            stats = dict(event.get("event_data", {}).get("artifact_data") or {})
    return Job(status=runner.status, rc=runner.rc if runner.rc is not None else -1, stdout=stdout,
               artifacts=artifacts, stats=stats)
