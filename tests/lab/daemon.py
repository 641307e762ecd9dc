# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab daemon: every listener of every simulated server, the control API and the state directory.

`Lab` runs in-process (tests) or as the background process that ``python -m tests.lab start`` spawns.
The state directory holds what clients need: inventory.yml, endpoints.json, ca.pem, ntlm_users,
control.json (control port and token) and lab.pid.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.lab.control import CONTROL_FILE, PID_FILE, TOKEN_HEADER
from tests.lab.endpoints import HTTP_ENDPOINT, HTTPS_ENDPOINTS, MAIL_ENDPOINTS, SMTP_ENDPOINT, Endpoints
from tests.lab.model.errors import LabError
from tests.lab.transport.auth import accounts_from, write_ntlm_user_file
from tests.lab.transport.files import FileSystem
from tests.lab.transport.host import WindowsHost
from tests.lab.transport.listener import Acceptor
from tests.lab.transport.tls import ContextCache
from tests.lab.transport.wsman import DEFAULT_RECEIVE_WAIT, ShellService, WSManEndpoint

LOG = logging.getLogger("tests.lab")

ENDPOINTS_FILE = "endpoints.json"
INVENTORY_FILE = "inventory.yml"
CA_FILE = "ca.pem"
NTLM_USERS_FILE = "ntlm_users"
#: pywinrm's defaults as Ansible sets them (operation timeout 20 s, read timeout 30 s).
OPERATION_TIMEOUT_SEC = 20
READ_TIMEOUT_SEC = 30


@dataclass(frozen=True)
class LabOptions:
    """How the lab serves and what the inventory tells Ansible to use."""

    transport: str = "ntlm"
    scheme: str = "http"
    receive_wait: float = DEFAULT_RECEIVE_WAIT
    connection_workers: int = 256
    command_workers: int = 64


def group_name(name: str) -> str:
    """An Ansible-safe group name: lowercase, anything but [a-z0-9_] becomes ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (it holds a secret), atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    temporary.replace(path)


class Lab:
    """All listeners of a fleet on 127.0.0.1, and the control API."""

    def __init__(self, fleet: Any, state_dir: Path, options: LabOptions = LabOptions()) -> None:
        self.fleet = fleet
        self.state_dir = state_dir
        self.options = options
        self.token = secrets.token_urlsafe(24)
        self.ports: dict[str, dict[str, int]] = {}
        self.control_port = 0
        self._accounts = accounts_from(fleet.accounts())
        self._acceptor = Acceptor(options.connection_workers)
        self._commands = ThreadPoolExecutor(max_workers=options.command_workers, thread_name_prefix="lab-cmd")
        self._contexts = ContextCache()
        self._control: ThreadingHTTPServer | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        """Bind every port, start serving, and write the state directory."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        write_ntlm_user_file(self.state_dir / NTLM_USERS_FILE, self._accounts)
        endpoints = Endpoints(self.fleet, self._contexts, lambda name: self.fleet.server_info(name)["fqdn"])
        for server in self.fleet.server_names():
            self.ports[server] = self._listen(server, endpoints)
        self._control = ThreadingHTTPServer(("127.0.0.1", 0), _control_handler(self))
        self._control.daemon_threads = True
        self.control_port = int(self._control.server_address[1])
        self._acceptor.start()
        threading.Thread(target=self._control.serve_forever, name="lab-control", daemon=True).start()
        self._write_state()
        LOG.info("lab serving %d servers, control port %d", len(self.ports), self.control_port)

    def _listen(self, server: str, endpoints: Endpoints) -> dict[str, int]:
        service = ShellService(WindowsHost(self.fleet, server, FileSystem()), self._commands, self.options.receive_wait)
        unreachable = functools.partial(self.fleet.is_unreachable, server)
        http = WSManEndpoint(service, self._accounts, unreachable)
        https = WSManEndpoint(
            service, self._accounts, unreachable, lambda: self.fleet.listener_certificate(server), self._contexts
        )
        ports = {"winrm": self._acceptor.listen(http.serve), "winrm_https": self._acceptor.listen(https.serve)}
        for endpoint in (*HTTPS_ENDPOINTS, HTTP_ENDPOINT, SMTP_ENDPOINT, *MAIL_ENDPOINTS):
            ports[endpoint] = self._acceptor.listen(endpoints.handler(server, endpoint))
        return ports

    def wait(self) -> None:
        """Block until a stop request."""
        self._stopped.wait()

    def request_stop(self) -> None:
        self._stopped.set()

    def stop(self) -> None:
        """Close every listener and wait for the workers."""
        self._stopped.set()
        if self._control is not None:
            self._control.shutdown()
            self._control.server_close()
        self._acceptor.stop()
        self._commands.shutdown(wait=True, cancel_futures=True)
        self._contexts.close()

    # -- state directory ---------------------------------------------------------------------------------
    def endpoints(self) -> dict[str, Any]:
        servers = {name: {"fqdn": self.fleet.server_info(name)["fqdn"], **ports} for name, ports in self.ports.items()}
        return {"servers": servers, "control": self.control_port}

    def inventory(self) -> dict[str, Any]:
        """The Ansible inventory of the fleet (every connection variable; groups from Fleet.groups())."""
        admin = next((a for a in self.fleet.accounts() if a.get("exchange_admin")), None)
        if admin is None:
            raise LabError("the scenario has no exchange_admin account for the inventory")
        https = self.options.scheme == "https"
        variables: dict[str, Any] = {
            "ansible_connection": "winrm",
            "ansible_winrm_scheme": self.options.scheme,
            "ansible_winrm_transport": self.options.transport,
            "ansible_user": f"{admin['username']}@{admin['domain']}",
            "ansible_password": admin["password"],
            "ansible_winrm_operation_timeout_sec": OPERATION_TIMEOUT_SEC,
            "ansible_winrm_read_timeout_sec": READ_TIMEOUT_SEC,
        }
        if https:
            variables["ansible_winrm_server_cert_validation"] = "validate"
            variables["ansible_winrm_ca_trust_path"] = str(self.state_dir / CA_FILE)
        hosts = {
            name: {
                "ansible_host": "127.0.0.1",
                "ansible_port": ports["winrm_https" if https else "winrm"],
                "exchange_pki_fqdn": self.fleet.server_info(name)["fqdn"],
                "exchange_pki_lab_ports": dict(ports),
            }
            for name, ports in self.ports.items()
        }
        children: dict[str, Any] = {"exchange": {"hosts": hosts}}
        for group, members in self.fleet.groups().items():
            if group_name(group) != "exchange":
                children[group_name(group)] = {"hosts": {member: None for member in members}}
        return {"all": {"vars": variables, "children": children}}

    def _write_state(self) -> None:
        directory = self.state_dir
        (directory / CA_FILE).write_bytes(self.fleet.lab_ca_pem())
        write_private(directory / INVENTORY_FILE, yaml.safe_dump(self.inventory(), sort_keys=False))
        (directory / ENDPOINTS_FILE).write_text(json.dumps(self.endpoints(), indent=2) + "\n", encoding="utf-8")
        (directory / PID_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
        control = {"port": self.control_port, "token": self.token, "pid": os.getpid()}
        write_private(directory / CONTROL_FILE, json.dumps(control) + "\n")  # last: its presence means ready

    # -- control API ---------------------------------------------------------------------------------
    def control(self, command: str, args: Mapping[str, Any]) -> Any:
        """Run one control command; raise LabError (unknown server, bad request) or KeyError (unknown command)."""
        if "server" in args and args["server"] not in self.ports:
            raise LabError(f"unknown server {args['server']!r} (known: {', '.join(self.ports)})")
        return _COMMANDS[command](self, dict(args))

    def _fault(self, args: dict[str, Any]) -> dict[str, Any]:
        server = args["server"]
        if args.get("clear"):
            self.fleet.clear_faults(server)
        elif "unreachable" in args:
            self.fleet.set_unreachable(server, bool(args["unreachable"]))
        else:
            self.fleet.set_fault(
                server,
                args["operation"],
                error=args.get("error"),
                latency=args.get("latency"),
                drop=bool(args.get("drop")),
                times=args.get("times"),
                after=int(args.get("after") or 0),
            )
        return {"server": server, "unreachable": self.fleet.is_unreachable(server)}

    def _stop_command(self, _args: dict[str, Any]) -> dict[str, Any]:
        threading.Thread(target=self.request_stop, daemon=True).start()
        return {"stopping": True}


_COMMANDS: dict[str, Callable[[Lab, dict[str, Any]], Any]] = {
    "ping": lambda lab, _args: {"pid": os.getpid(), "servers": len(lab.ports)},
    "dump": lambda lab, _args: lab.fleet.dump(),
    "fault": Lab._fault,
    "clock": lambda lab, args: lab.fleet.advance_clock(float(args["seconds"])),
    "ca": lambda lab, args: lab.fleet.ca_decide(int(args["request_id"]), bool(args["approve"])),
    "mode": lambda lab, args: lab.fleet.set_rawdata_only(args["server"], bool(args["rawdata_only"])),
    "stop": Lab._stop_command,
}


def _control_handler(lab: Lab) -> type[BaseHTTPRequestHandler]:
    class ControlHandler(BaseHTTPRequestHandler):
        """POST /<command> with a JSON object; the token header is required on every request."""

        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base class signature
            LOG.debug("control: " + format, *args)

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            if not hmac.compare_digest(self.headers.get(TOKEN_HEADER, ""), lab.token):
                self._reply(401, {"error": "missing or wrong control token"})
                return
            try:
                args = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                result = lab.control(self.path.strip("/"), args)
            except KeyError as exc:
                self._reply(400, {"error": f"bad control request: missing or unknown {exc}"})
            except (LabError, ValueError, TypeError) as exc:
                self._reply(400, {"error": str(exc)})
            else:
                self._reply(200, {"result": result})

        def _reply(self, status: int, document: dict[str, Any]) -> None:
            body = json.dumps(document, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ControlHandler
