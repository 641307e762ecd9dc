# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hosts the inventory could not read: recorded with their reason, reported, failed, and no secret shown.

One run of ``ansible-playbook exchange.pki.inventory`` against the dag lab with a different fault on each of
three servers (refused WinRM connections, a WinRM password the server rejects, a connection dropped in the
middle of the batch) and one healthy server: every faulty host must end failed with its reason in the output,
carry ``exchange_pki_failure`` (``{reason, message}``) and appear in the report as not collected with that
reason, never as ``censored`` or without a reason, while the healthy host is reported as usual.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import ANSIBLE_PLAYBOOK, Lab, ansible_env

WINRM_PASSWORD = "Wrong-WinRM-Password-9c2e"  # noqa: S105 - a password the lab refuses
EXCHANGE_PASSWORD = "Wrong-Exchange-Password-77aa"  # noqa: S105 - must never reach any output
FAULTS = {"ex2": "unreachable", "ex3": "authentication_refused", "ex4": "connection_dropped"}


def run(lab: Lab, cwd: Path, inventory: Path, extra_vars: dict[str, Any], *args: str) -> tuple[int, str]:
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "exchange.pki.inventory", "-i", str(inventory),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(extra_vars), *args],
        cwd=cwd, env=ansible_env(), capture_output=True, text=True, check=False, timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr


def report_hosts(cwd: Path) -> dict[str, dict[str, Any]]:
    report = json.loads((cwd / "exchange_pki_report" / "exchange_pki_report.json").read_text(encoding="utf-8"))
    return {host["host"]: host for host in report["hosts"]}


@pytest.fixture(scope="module")
def faulty_run(dag_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    """The playbook with ex2 refusing connections, ex3 given a wrong WinRM password, ex4 dropping the batch."""
    tmp = tmp_path_factory.mktemp("faults")
    inventory = yaml.safe_load(dag_lab.inventory.read_text(encoding="utf-8"))
    inventory["all"]["children"]["exchange"]["hosts"]["ex3"]["ansible_password"] = WINRM_PASSWORD
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    dag_lab.control("fault", "--server", "ex2", "--unreachable")
    dag_lab.control("fault", "--server", "ex4", "--operation", "*", "--drop")
    try:
        code, output = run(dag_lab, tmp / "run", path, {"inventory_cache_dir": "facts"}, "-vvv")
    finally:
        dag_lab.control("fault", "--server", "ex2", "--reachable")
        dag_lab.control("fault", "--server", "ex4", "--clear")
    return code, output, tmp / "run"


def test_faulty_hosts_fail_with_their_reason_and_the_healthy_one_is_inventoried(faulty_run) -> None:
    code, output, cwd = faulty_run
    assert code == 2, output
    for host, reason in FAULTS.items():
        assert f"{host} was not inventoried ({reason}): " in output, (host, output[-6000:])
    assert "ex1 was not inventoried" not in output
    assert sorted(path.name for path in (cwd / "facts").iterdir()) == ["ex1.json"]


def test_report_shows_why_each_host_was_not_collected(faulty_run) -> None:
    cwd = faulty_run[2]
    hosts = report_hosts(cwd)
    assert "not_collected" not in hosts["ex1"]
    for host, reason in FAULTS.items():
        record = hosts[host]["not_collected"]
        assert record["reason"] == reason, (host, record)
        assert record["message"] and "censored" not in record["message"], (host, record)


def test_winrm_password_is_not_in_the_output(faulty_run) -> None:
    output = faulty_run[1]
    assert WINRM_PASSWORD not in output


def test_exchange_password_stays_hidden_but_the_reason_is_shown(dag_lab: Lab, tmp_path: Path) -> None:
    """A wrong explicit Exchange credential: the reason and Exchange's message are shown, the password never."""
    credential = {"inventory_exchange_username": "CONTOSO\\ansible", "inventory_exchange_password": EXCHANGE_PASSWORD,
                  "inventory_cache_dir": "facts"}
    code, output = run(dag_lab, tmp_path, dag_lab.inventory, credential, "-vvv")
    assert code == 2, output
    assert EXCHANGE_PASSWORD not in output
    assert "censored" not in output.split("PLAY RECAP")[0].split("Run exchange.pki.certificate_info", 1)[1]
    hosts = report_hosts(tmp_path)
    assert sorted(hosts) == ["ex1", "ex2", "ex3", "ex4"]
    for host, view in hosts.items():
        record = view["not_collected"]
        assert record["reason"] in {"access_denied", "authentication_refused"}, (host, record)
        assert f"{host} was not inventoried ({record['reason']}): " in output
        assert "exchange_username" in record["message"] or "Access is denied" in record["message"], record
        assert record["message"][:80] in output
        assert EXCHANGE_PASSWORD not in json.dumps(view)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert EXCHANGE_PASSWORD not in path.read_text(encoding="utf-8", errors="replace"), path
