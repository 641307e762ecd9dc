# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's command line and background process: start, state directory, control commands, stop."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lab.control import is_running, parse_duration

REPO_ROOT = Path(__file__).resolve().parents[3]
FAKE_FLEET = "tests.lab.tests._fake_fleet:FakeFleet"
COLLECTIONS_PATH = REPO_ROOT / ".ansible" / "collections"


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.lab", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def ansible_tool(name: str) -> str | None:
    """An Ansible command next to the running interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A lab daemon started through the CLI with the fake fleet; stopped (and checked gone) afterwards."""
    directory = tmp_path_factory.mktemp("lab")
    started = lab_cli(
        "start",
        "--scenario",
        "fake",
        "--fleet-class",
        FAKE_FLEET,
        "--receive-wait",
        "0.2",
        "--state-dir",
        str(directory),
    )
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    yield directory
    stopped = lab_cli("stop", "--state-dir", str(directory))
    assert stopped.returncode == 0, stopped.stderr
    assert not is_running(pid)
    assert not (directory / "lab.pid").exists()


def test_state_directory_files_and_modes(state_dir: Path) -> None:
    for name in ("inventory.yml", "control.json", "ntlm_users"):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name
    assert (state_dir / "ca.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert is_running(int((state_dir / "lab.pid").read_text()))
    assert "CONTOSO.LAB:labadmin:" in (state_dir / "ntlm_users").read_text()


def test_every_endpoint_port_listens(state_dir: Path) -> None:
    endpoints = json.loads((state_dir / "endpoints.json").read_text())
    assert set(endpoints["servers"]) == {"ex1", "ex2"}
    for server in endpoints["servers"].values():
        assert server["fqdn"].endswith(".contoso.lab")
        for endpoint in ("winrm", "winrm_https", "https", "back_end", "smtp", "http", "imap", "pop"):
            socket.create_connection(("127.0.0.1", server[endpoint]), timeout=5).close()


@pytest.mark.skipif(ansible_tool("ansible-inventory") is None, reason="ansible-inventory is not installed")
def test_inventory_parses_with_ansible_inventory(state_dir: Path) -> None:
    listed = subprocess.run(
        [str(ansible_tool("ansible-inventory")), "-i", str(state_dir / "inventory.yml"), "--list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    inventory: dict[str, Any] = json.loads(listed.stdout)
    assert sorted(inventory["exchange"]["hosts"]) == ["ex1", "ex2"]
    assert sorted(inventory["dag_dag1"]["hosts"]) == ["ex1", "ex2"]
    assert sorted(inventory["site_default_first_site_name"]["hosts"]) == ["ex1", "ex2"]
    ports = json.loads((state_dir / "endpoints.json").read_text())["servers"]["ex1"]
    host = inventory["_meta"]["hostvars"]["ex1"]
    assert host["ansible_port"] == ports["winrm"]
    assert host["exchange_pki_lab_ports"]["smtp"] == ports["smtp"]
    assert host["ansible_winrm_transport"] == "ntlm"
    assert host["ansible_connection"] == "winrm"


def test_dump_prints_the_model_as_json(state_dir: Path) -> None:
    dumped = lab_cli("dump", "--state-dir", str(state_dir))
    assert dumped.returncode == 0, dumped.stderr
    assert json.loads(dumped.stdout)["mutations"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fault", "--server", "nope", "--operation", "*", "--drop"], "unknown server 'nope'"),
        (["fault", "--server", "ex1", "--drop"], "--operation is required"),
        (["fault", "--server", "ex1", "--operation", "*", "--latency", "-1"], "must not be negative"),
        (["fault", "--server", "ex1", "--operation", "*", "--drop", "--times", "0"], "must be at least 1"),
        (["fault", "--server", "ex1", "--operation", "*", "--drop", "--after", "0"], "must be at least 1"),
        (["fault", "--server", "ex1", "--operation", "*", "--drop", "--after", "-3"], "must be at least 1"),
        (["fault", "--server", "ex1", "--operation", "*", "--drop", "--after", "two"], "--after: invalid"),
        (["clock", "--advance", "2h2d"], "invalid duration '2h2d'"),
        (["mode", "--server", "ex1", "--rawdata-only", "maybe"], "expected on or off"),
        (["ca", "approve", "7"], "no pending request 7"),
    ],
)
def test_bad_requests_exit_2_naming_the_problem(state_dir: Path, args: list[str], message: str) -> None:
    result = lab_cli(*args, "--state-dir", str(state_dir))
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["fault", "--server", "ex1", "--operation", "win_ping", "--error", "boom", "--times", "2"],
        ["fault", "--server", "ex1", "--operation", "host.info", "--drop", "--times", "1", "--after", "1"],
        ["fault", "--server", "ex1", "--clear"],
        ["fault", "--server", "ex2", "--unreachable"],
        ["fault", "--server", "ex2", "--reachable"],
        ["clock", "--advance", "2d12h"],
        ["ca", "deny", "1"],
        ["mode", "--server", "ex1", "--rawdata-only", "on"],
    ],
)
def test_control_commands_succeed(state_dir: Path, args: list[str]) -> None:
    result = lab_cli(*args, "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout)


@pytest.mark.skipif(ansible_tool("ansible") is None, reason="the ansible command is not installed")
@pytest.mark.skipif(
    not (COLLECTIONS_PATH / "ansible_collections" / "ansible" / "windows").exists(),
    reason="ansible.windows is missing from .ansible/collections (run `make collections`)",
)
def test_ansible_adhoc_win_ping_against_the_started_lab(state_dir: Path) -> None:
    environment = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [
            str(ansible_tool("ansible")),
            "-i",
            str(state_dir / "inventory.yml"),
            "exchange",
            "-m",
            "ansible.windows.win_ping",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=environment,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 2


def test_a_lab_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    result = lab_cli(
        "start", "--scenario", "x", "--fleet-class", "tests.lab.tests._fake_fleet:Missing", "--state-dir", str(tmp_path)
    )
    assert result.returncode == 1
    assert "exited with code 1 while starting" in result.stderr
    assert "AttributeError" in result.stderr
    assert not (tmp_path / "lab.pid").exists()


def test_stop_without_a_running_lab_exits_0(tmp_path: Path) -> None:
    assert lab_cli("stop", "--state-dir", str(tmp_path)).returncode == 0


def test_control_without_a_running_lab_is_a_clear_error(tmp_path: Path) -> None:
    result = lab_cli("dump", "--state-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no lab is running" in result.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("49h", 176400),
        ("3d", 259200),
        ("1w", 604800),
        ("2d12h", 216000),
        ("1w2d3h4m5s", 788645),
        (" 1H ", 3600),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "12", "2h2d", "0s", "5x", "-3h", "1h 2m", "1.5h", "h"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
