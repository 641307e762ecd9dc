# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WS-Management transport driven by the real client: Ansible's winrm connection plugin over pywinrm."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.executor.powershell.module_manifest import _bootstrap_powershell_script
from ansible.playbook.play_context import PlayContext
from ansible.plugins.connection.winrm import Connection
from ansible.plugins.loader import connection_loader

from tests.lab.daemon import CA_FILE, Lab
from tests.lab.tests._fake_fleet import BATCH, PASSWORD, FakeFleet

WIN_PING_SCRIPT = "ansible_collections.ansible.windows.plugins.modules.win_ping.ps1"
BATCH_SCRIPT = "ansible_collections.exchange.pki.plugins.modules.exchange_batch.ps1"
TRANSPORTS = [("http", "basic"), ("http", "ntlm"), ("https", "basic"), ("https", "ntlm")]


def connect(lab: Lab, server: str = "ex1", scheme: str = "http", transport: str = "ntlm", **extra: Any) -> Connection:
    """Ansible's winrm connection to one lab server, configured like the lab's inventory does."""
    options = {
        "ansible_host": "127.0.0.1",
        "ansible_port": lab.ports[server]["winrm_https" if scheme == "https" else "winrm"],
        "ansible_user": "labadmin@CONTOSO.LAB",
        "ansible_password": extra.pop("password", PASSWORD),
        "ansible_winrm_transport": transport,
        "ansible_winrm_scheme": scheme,
        "_extras": {"ansible_winrm_ca_trust_path": str(lab.state_dir / CA_FILE)} if scheme == "https" else {},
        **extra,
    }
    connection = connection_loader.get("winrm", PlayContext(), None)
    connection.set_options(var_options=options)
    return connection


@pytest.fixture
def connection(lab: Lab) -> Iterator[Connection]:
    opened = connect(lab)
    opened._connect()
    yield opened
    opened.close()


def run_module(
    connection: Connection, script: str, args: dict[str, Any], *, become: bool = False
) -> tuple[int, dict[str, Any]]:
    """Run a module the way Ansible pipelines it (bootstrap wrapper + manifest on stdin); return rc and JSON result."""
    command, stdin = _bootstrap_powershell_script(
        "module_wrapper.ps1",
        {
            "Script": script,
            "Variables": [{"Name": "complex_args", "Value": args, "Scope": "Global"}],
            "ForModule": True,
        },
    )
    if become:
        prefix, _sep, manifest = stdin.partition(b"\n\0\0\0\0\n")
        document = json.loads(manifest)
        document["actions"].insert(
            0, {"name": "become_wrapper.ps1", "params": {"BecomeUser": "SYSTEM"}, "secure_params": {}}
        )
        stdin = prefix + b"\n\0\0\0\0\n" + json.dumps(document).encode()
    rc, stdout, _stderr = connection.exec_command(
        connection._shell._encode_script(command, strict_mode=False, preserve_rc=False), in_data=stdin
    )
    return rc, json.loads(stdout)


@pytest.mark.parametrize(("scheme", "transport"), TRANSPORTS)
def test_win_ping_over_every_transport(lab: Lab, scheme: str, transport: str) -> None:
    connection = connect(lab, scheme=scheme, transport=transport)
    connection._connect()
    try:
        rc, result = run_module(
            connection, WIN_PING_SCRIPT, {"data": "hello", "_ansible_module_name": "ansible.windows.win_ping"}
        )
        encrypted = connection.protocol.transport.encryption is not None
    finally:
        connection.close()
    assert (rc, result) == (0, {"changed": False, "ping": "hello"})
    assert encrypted is (scheme == "http" and transport == "ntlm")


@pytest.mark.parametrize("transport", ["basic", "ntlm"])
def test_wrong_password_is_a_connection_failure(lab: Lab, transport: str) -> None:
    connection = connect(lab, transport=transport, password="wrong")
    with pytest.raises(AnsibleConnectionFailure, match="401|credentials"):
        connection._connect()


def test_win_ping_crash_fails_like_the_real_module(connection: Connection) -> None:
    rc, result = run_module(connection, WIN_PING_SCRIPT, {"data": "crash"})
    assert rc == 1
    assert result["failed"] is True
    assert result["msg"] == "Unhandled exception while executing module: boom"


def test_unknown_module_is_a_module_failure_naming_it(connection: Connection) -> None:
    rc, result = run_module(
        connection, "ansible_collections.ansible.windows.plugins.modules.win_shell.ps1", {"cmd": "x"}
    )
    assert rc == 1
    assert result["failed"] is True
    assert "ansible.windows.win_shell" in result["msg"]


def test_module_dispatch_passes_check_mode_become_and_user(connection: Connection, fake_fleet: FakeFleet) -> None:
    args = {"operations": [], "_ansible_check_mode": True, "_ansible_diff": False, "_ansible_module_name": BATCH}
    rc, result = run_module(connection, BATCH_SCRIPT, args, become=True)
    assert rc == 0
    assert "diff" not in result
    assert fake_fleet.calls == [
        {
            "server": "ex1",
            "args": {"operations": []},
            "check_mode": True,
            "become": True,
            "remote_user": "CONTOSO.LAB\\labadmin",
        },
    ]


def test_module_keeps_the_diff_in_diff_mode(connection: Connection) -> None:
    _rc, result = run_module(connection, BATCH_SCRIPT, {"_ansible_diff": True})
    assert result["diff"] == {"before": "", "after": ""}


def test_error_fault_fails_win_ping_once(lab: Lab, connection: Connection, fake_fleet: FakeFleet) -> None:
    fake_fleet.set_fault("ex1", "win_ping", error="injected failure", times=1)
    assert run_module(connection, WIN_PING_SCRIPT, {}) == (
        1,
        {"failed": True, "changed": False, "msg": "injected failure"},
    )
    assert run_module(connection, WIN_PING_SCRIPT, {}) == (0, {"changed": False, "ping": "pong"})


def test_latency_longer_than_the_operation_timeout_still_succeeds(lab: Lab, fake_fleet: FakeFleet) -> None:
    # The client's read timeout (2 s) is shorter than the latency (3 s): only polling Receive can succeed.
    connection = connect(
        lab,
        ansible_winrm_connection_timeout=None,
        _extras={"ansible_winrm_operation_timeout_sec": 1, "ansible_winrm_read_timeout_sec": 2},
    )
    fake_fleet.set_fault("ex1", "win_ping", latency=3.0, times=1)
    connection._connect()
    try:
        assert run_module(connection, WIN_PING_SCRIPT, {}) == (0, {"changed": False, "ping": "pong"})
    finally:
        connection.close()


def test_drop_closes_the_connection_without_an_answer(lab: Lab, fake_fleet: FakeFleet) -> None:
    # Basic: after a drop, an NTLM-encrypted cleanup on a new socket gets HTTP 400, as from a real WinRM service.
    connection = connect(lab, transport="basic")
    fake_fleet.set_fault("ex1", "win_ping", drop=True, times=1)
    try:
        with pytest.raises(requests.exceptions.ConnectionError, match="without response"):
            run_module(connection, WIN_PING_SCRIPT, {})
        assert run_module(connection, WIN_PING_SCRIPT, {})[0] == 0
    finally:
        connection.close()


def test_unreachable_refuses_connections_until_cleared(lab: Lab, fake_fleet: FakeFleet) -> None:
    fake_fleet.set_unreachable("ex1", True)
    with pytest.raises(AnsibleConnectionFailure, match="reset"):
        connect(lab)._connect()
    fake_fleet.set_unreachable("ex1", False)
    connection = connect(lab)
    connection._connect()
    try:
        assert run_module(connection, WIN_PING_SCRIPT, {})[0] == 0
    finally:
        connection.close()


def test_mkdtemp_put_fetch_and_cleanup_roundtrip(connection: Connection, tmp_path: Path) -> None:
    mkdtemp = connection._shell._mkdtemp2(basefile="ansible-tmp-lab", tmpdir="%TEMP%")
    rc, stdout, _stderr = connection.exec_command(mkdtemp.command, in_data=mkdtemp.input_data)
    remote_dir = stdout.decode().strip()
    assert (rc, remote_dir) == (0, "C:\\Users\\labadmin\\AppData\\Local\\Temp\\ansible-tmp-lab")

    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(600_000))  # more than one put chunk (250 kB) and one fetch buffer (512 kB)
    connection.put_file(str(source), f"{remote_dir}\\payload.bin")
    connection.fetch_file(f"{remote_dir}\\payload.bin", str(tmp_path / "back.bin"))
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()

    rc, _stdout, stderr = connection.exec_command(connection._shell.remove(remote_dir, recurse=True))
    assert (rc, stderr) == (0, b"")
    with pytest.raises(AnsibleError, match="failed to transfer file"):
        connection.fetch_file(f"{remote_dir}\\payload.bin", str(tmp_path / "gone.bin"))


def test_arbitrary_powershell_is_refused_with_a_clear_error(connection: Connection) -> None:
    rc, stdout, stderr = connection.exec_command("Get-Date")
    assert rc == 1
    assert stdout == b""
    assert b"cannot run arbitrary PowerShell" in stderr
