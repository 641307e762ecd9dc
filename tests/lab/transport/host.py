# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a simulated Windows host does with a command: read Ansible's exec-wrapper manifest and dispatch.

ansible-core 2.19 runs every PowerShell step through bootstrap_wrapper.ps1 and pipes a manifest on
stdin: ``<exec_wrapper JSON>\\n\\0\\0\\0\\0\\n<manifest JSON>[\\n\\0\\0\\0\\0\\n<input>]``. The manifest's
``actions`` name the step, so the lab never runs PowerShell: it serves mkdtemp, expand_user, put_file,
fetch_file and modules (``module_wrapper.ps1``) by name and arguments. See TRANSPORT.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tests.lab.model.errors import DroppedConnection, UnknownModule
from tests.lab.transport.files import FileSystem, FileSystemError

SEPARATOR = b"\n\0\0\0\0\n"
_COLLECTION_MODULE = re.compile(r"^ansible_collections\.(\w+)\.(\w+)\.plugins\.modules\.(\w+)\.ps1$")
WIN_PING = "ansible.windows.win_ping"
#: When set, every module call appends "<module>\t<stdin bytes>\t<answer bytes>" to this file (benchmarks).
STDIN_LOG_ENV = "EXCHANGE_PKI_LAB_STDIN_LOG"
#: Ansible's temp-dir cleanup (PowerShell shell plugin ``remove``) is the one plain script the lab serves.
_REMOVE_ITEM = re.compile(r"^Remove-Item '(?P<path>(?:[^']|'')+)' -Force(?P<recurse> -Recurse)?;", re.MULTILINE)


class Fleet(Protocol):
    """The part of tests.lab.model.Fleet that a host needs (see ARCHITECTURE.md)."""

    def run_module(
        self,
        server: str,
        module: str,
        args: dict[str, Any],
        *,
        check_mode: bool = False,
        become: bool = False,
        remote_user: str | None = None,
    ) -> dict[str, Any]: ...

    def take_fault(self, server: str, operation: str) -> Any: ...


@dataclass(frozen=True)
class CommandResult:
    """What the command writes and its exit code."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0

    @classmethod
    def module(cls, result: Mapping[str, Any]) -> CommandResult:
        """A module's JSON result; Ansible.Basic's FailJson exits 1, ExitJson 0."""
        return cls(json.dumps(result).encode(), b"", 1 if result.get("failed") else 0)

    @classmethod
    def error(cls, message: str) -> CommandResult:
        """A script that wrote an error and exited 1."""
        return cls(b"", f"{message}\r\n".encode(), 1)


class CommandError(Exception):
    """The command fails with this message on stderr and exit code 1."""


@dataclass(frozen=True)
class Invocation:
    """A decoded command: the PowerShell script (when -EncodedCommand) and its stdin."""

    script: str
    stdin: bytes
    user: str


def decode_command(arguments: list[str]) -> str:
    """The script of ``powershell.exe ... -EncodedCommand <base64 UTF-16-LE>`` (empty when absent)."""
    lowered = [argument.casefold() for argument in arguments]
    for flag in ("-encodedcommand", "-enc", "-e"):
        if flag in lowered and lowered.index(flag) + 1 < len(arguments):
            try:
                return base64.b64decode(arguments[lowered.index(flag) + 1]).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError):
                return ""
    return ""


def split_pipeline_input(stdin: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The exec-wrapper manifest and the data after it, or None when stdin is not a bootstrap input."""
    parts = stdin.split(SEPARATOR, 2)
    if len(parts) < 2:
        return None
    try:
        bootstrap = json.loads(parts[0])
        manifest = json.loads(parts[1])
    except ValueError:
        return None
    if not isinstance(bootstrap, dict) or bootstrap.get("name") != "exec_wrapper" or not isinstance(manifest, dict):
        return None
    return manifest, parts[2] if len(parts) == 3 else b""


def module_from_script(script: str) -> str:
    """The FQCN of ``ansible_collections.<ns>.<coll>.plugins.modules.<name>.ps1`` (module_wrapper's Script)."""
    match = _COLLECTION_MODULE.match(script)
    return f"{match[1]}.{match[2]}.{match[3]}" if match else script.removesuffix(".ps1")


class WindowsHost:
    """One simulated Windows host: its files, and the fleet that models its Exchange server."""

    def __init__(self, fleet: Fleet, server: str, files: FileSystem | None = None) -> None:
        self.fleet = fleet
        self.server = server
        self.files = files or FileSystem()
        self._actions: dict[str, Callable[[dict[str, Any], bytes, Invocation, list[str]], CommandResult]] = {
            "powershell_mkdtemp.ps1": self._mkdtemp,
            "powershell_expand_user.ps1": self._expand_user,
            "winrm_put_file.ps1": self._put_file,
            "winrm_fetch_file.ps1": self._fetch_file,
            "module_wrapper.ps1": self._module,
        }

    def run(self, invocation: Invocation) -> CommandResult:
        """Run one command; DroppedConnection propagates (the listener closes the connection)."""
        self.files.ensure_profile(invocation.user)
        try:
            pipeline = split_pipeline_input(invocation.stdin)
            if pipeline is None:
                return self._plain_script(invocation)
            manifest, extra = pipeline
            names = [str(action.get("name")) for action in manifest.get("actions", [])]
            if not names or names[-1] not in self._actions or "async_wrapper.ps1" in names:
                raise CommandError(f"the lab host {self.server} does not serve the exec-wrapper actions {names}")
            return self._actions[names[-1]](manifest["actions"][-1].get("params") or {}, extra, invocation, names)
        except (CommandError, FileSystemError) as exc:
            return CommandResult.error(str(exc))

    def _transport_fault(self, operation: str) -> None:
        """Apply a --latency/--drop/--error fault set for a transport-level operation."""
        fault = self.fleet.take_fault(self.server, operation)
        if fault is None:
            return
        if fault.latency:
            time.sleep(fault.latency)
        if fault.drop:
            raise DroppedConnection(f"{self.server}: {operation}")
        if fault.error:
            raise CommandError(fault.error)

    def _plain_script(self, invocation: Invocation) -> CommandResult:
        match = _REMOVE_ITEM.search(invocation.script)
        if match is None:
            first_line = next((line for line in invocation.script.splitlines() if line.strip()), "<empty>")
            raise CommandError(
                f"the lab host {self.server} cannot run arbitrary PowerShell ({first_line[:80]!r}); it serves modules "
                "through Ansible's exec wrapper, mkdtemp, put_file, fetch_file and temp-dir cleanup only"
            )
        self.files.remove(match["path"].replace("''", "'"), recurse=bool(match["recurse"]))
        return CommandResult()

    def _mkdtemp(
        self, params: dict[str, Any], _extra: bytes, invocation: Invocation, _names: list[str]
    ) -> CommandResult:
        self._transport_fault("mkdtemp")
        directory = self.files.expand(str(params["Directory"]), invocation.user)
        created = self.files.make_directory(f"{directory}\\{params['Name']}")
        return CommandResult(f"{created}\r\n".encode())

    def _expand_user(
        self, params: dict[str, Any], _extra: bytes, invocation: Invocation, _names: list[str]
    ) -> CommandResult:
        path = str(params["Path"])
        profile = self.files.profile(invocation.user)
        if path == "~":
            path = profile
        elif path.startswith("~\\"):
            path = f"{profile}\\{path[2:]}"
        return CommandResult(f"{path}\r\n".encode())

    def _put_file(
        self, params: dict[str, Any], extra: bytes, _invocation: Invocation, _names: list[str]
    ) -> CommandResult:
        self._transport_fault("put_file")
        try:
            data = b"".join(base64.b64decode(line) for line in extra.split(b"\r\n") if line.strip())
        except binascii.Error as exc:
            raise CommandError(f"put_file: the input is not base64: {exc}") from exc
        self.files.write(str(params["Path"]), data)
        return CommandResult(json.dumps({"sha1": hashlib.sha1(data).hexdigest()}).encode() + b"\r\n")

    def _fetch_file(
        self, params: dict[str, Any], _extra: bytes, _invocation: Invocation, _names: list[str]
    ) -> CommandResult:
        self._transport_fault("fetch_file")
        chunk = self.files.read(str(params["Path"]), int(params["Offset"]), int(params["BufferSize"]))
        if chunk is None:
            return CommandResult(b"[DIR]\r\n")
        return CommandResult(base64.b64encode(chunk) + b"\r\n" if chunk else b"")

    def _module(self, params: dict[str, Any], _extra: bytes, invocation: Invocation, names: list[str]) -> CommandResult:
        variables = {v.get("Name"): v.get("Value") for v in params.get("Variables") or [] if isinstance(v, dict)}
        complex_args = dict(variables.get("complex_args") or {})
        internal = {
            k.removeprefix("_ansible_"): complex_args.pop(k) for k in list(complex_args) if k.startswith("_ansible_")
        }
        module = str(internal.get("module_name") or module_from_script(str(params.get("Script", ""))))
        try:
            if module == WIN_PING:
                result = self._win_ping(complex_args)
            else:
                result = self.fleet.run_module(
                    self.server,
                    module,
                    complex_args,
                    check_mode=bool(internal.get("check_mode")),
                    become="become_wrapper.ps1" in names,
                    remote_user=invocation.user,
                )
        except UnknownModule:
            result = {
                "failed": True,
                "changed": False,
                "msg": f"The lab host {self.server} does not implement the module {module}",
            }
        except CommandError as exc:
            result = {"failed": True, "changed": False, "msg": str(exc)}
        except DroppedConnection:
            raise
        except Exception as exc:  # noqa: BLE001 - an unhandled module exception, reported like module_wrapper.ps1
            result = {
                "failed": True,
                "msg": f"Unhandled exception while executing module: {exc}",
                "exception": repr(exc),
            }
        if not internal.get("diff"):
            result.pop("diff", None)
        answer = CommandResult.module(result)
        log = os.environ.get(STDIN_LOG_ENV)
        if log:
            with open(log, "a", encoding="utf-8") as stream:
                stream.write(f"{module}\t{len(invocation.stdin)}\t{len(answer.stdout)}\n")
        return answer

    def _win_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        """ansible.windows.win_ping: the benchmark baseline (``data=crash`` throws, like the real module)."""
        self._transport_fault("win_ping")
        unsupported = sorted(set(args) - {"data"})
        if unsupported:
            raise CommandError(
                f"Unsupported parameters for (win_ping) module: {', '.join(unsupported)}. "
                "Supported parameters include: data."
            )
        data = "pong" if args.get("data") is None else str(args["data"])
        if data == "crash":
            raise RuntimeError("boom")
        return {"changed": False, "ping": data}
