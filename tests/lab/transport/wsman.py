# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WS-Management (WinRS) service of one simulated host and its HTTP(S) listener handler.

Shell lifecycle as pywinrm drives it: Create -> Command -> [Send stdin, End] -> Receive until Done ->
Signal -> Delete. A command runs in a worker thread from the moment it has all its input; a Receive
waits a few seconds at most and otherwise answers the operation-timeout fault, so the client polls
(WinRM does the same within the request's OperationTimeout).
"""

from __future__ import annotations

import base64
import binascii
import socket
import ssl
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.lab.model.errors import DroppedConnection
from tests.lab.transport import soap
from tests.lab.transport.auth import (
    CHALLENGES,
    ENCRYPTED_CONTENT_TYPE,
    Account,
    AuthFailed,
    ConnectionAuth,
    EncryptionError,
    Outcome,
    tls_channel_bindings,
)
from tests.lab.transport.host import CommandResult, Invocation, WindowsHost, decode_command
from tests.lab.transport.listener import reset_on_close
from tests.lab.transport.tls import ContextCache

#: Seconds a Receive waits for a running command before answering the operation-timeout fault.
DEFAULT_RECEIVE_WAIT = 5.0
#: Keep-alive connections idle longer than this are closed (WinRM's idle timeout is longer; this frees workers).
IDLE_TIMEOUT = 120.0


class Dropped(Exception):
    """The listener must close the connection without answering (a --drop fault)."""


class WSManFault(Exception):
    """Answer with this SOAP fault and HTTP 500."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass
class Command:
    """One command of a shell: its input, and its result once the worker finished."""

    id: str
    arguments: list[str]
    user: str
    stdin: bytearray = field(default_factory=bytearray)
    started: bool = False
    finished: threading.Event = field(default_factory=threading.Event)
    result: CommandResult | None = None
    dropped: bool = False


class ShellService:
    """The WinRS shells of one simulated host."""

    def __init__(self, host: WindowsHost, executor: Executor, receive_wait: float = DEFAULT_RECEIVE_WAIT) -> None:
        self.host = host
        self.receive_wait = receive_wait
        self._executor = executor
        self._shells: dict[str, dict[str, Command]] = {}
        self._lock = threading.Lock()

    def handle(self, request: soap.Request, user: str) -> bytes:
        """Answer one request; raise WSManFault or Dropped."""
        handler = self._handlers.get(request.action)
        if handler is None:
            raise WSManFault(soap.INVALID_SELECTORS_CODE, f"The lab does not implement the action {request.action}.")
        return handler(self, request, user)

    def _create(self, request: soap.Request, _user: str) -> bytes:
        shell_id = str(uuid.uuid4()).upper()
        with self._lock:
            self._shells[shell_id] = {}
        return soap.create_response(request, shell_id)

    def _command(self, request: soap.Request, user: str) -> bytes:
        commands = self._shell(request)
        line = request.find("rsp:CommandLine")  # rsp:Command then rsp:Arguments, as pywinrm sends them
        words = [word for element in (line if line is not None else ()) for word in (element.text or "").split()]
        command = Command(str(uuid.uuid4()).upper(), words, user)
        with self._lock:
            commands[command.id] = command
        if request.options.get("WINRS_CONSOLEMODE_STDIN", "").upper() == "TRUE":
            self._start(command)  # no stdin will follow
        return soap.command_response(request, command.id)

    def _send(self, request: soap.Request, _user: str) -> bytes:
        commands = self._shell(request)
        send = request.find("rsp:Send")
        streams = send.iterfind("rsp:Stream", {"rsp": soap.SHELL}) if send is not None else ()
        for stream in streams:
            command = commands.get(stream.get("CommandId", "").upper())
            if command is None:
                raise WSManFault(soap.INVALID_SELECTORS_CODE, "The command id in the Send request is unknown.")
            try:
                command.stdin += base64.b64decode(stream.text or "")
            except binascii.Error as exc:
                raise WSManFault(soap.INVALID_SELECTORS_CODE, f"stdin is not base64: {exc}") from exc
            if stream.get("End", "").lower() == "true":
                self._start(command)
        return soap.empty_response(request)

    def _receive(self, request: soap.Request, _user: str) -> bytes:
        desired = request.find("rsp:Receive/rsp:DesiredStream")
        command = self._command_of(request, desired.get("CommandId", "") if desired is not None else "")
        wait = self.receive_wait
        if request.operation_timeout:
            wait = max(0.0, min(wait, request.operation_timeout - 1.0))
        if not command.finished.wait(wait):
            raise WSManFault(soap.OPERATION_TIMEOUT_CODE, "operation timeout")
        if command.dropped:
            raise Dropped()
        assert command.result is not None
        result = command.result
        return soap.receive_response(
            request,
            command.id,
            base64.b64encode(result.stdout).decode(),
            base64.b64encode(result.stderr).decode(),
            result.exit_code,
        )

    def _signal(self, request: soap.Request, _user: str) -> bytes:
        signal = request.find("rsp:Signal")
        self._command_of(request, signal.get("CommandId", "") if signal is not None else "")
        # Terminating keeps the result: Ansible may Receive once more after a failed Send.
        return soap.empty_response(request)

    def _delete(self, request: soap.Request, _user: str) -> bytes:
        with self._lock:
            self._shells.pop((request.shell_id or "").upper(), None)
        return soap.empty_response(request)

    _handlers: dict[str, Callable[[ShellService, soap.Request, str], bytes]] = {
        soap.ACTION_CREATE: _create,
        soap.ACTION_COMMAND: _command,
        soap.ACTION_SEND: _send,
        soap.ACTION_RECEIVE: _receive,
        soap.ACTION_SIGNAL: _signal,
        soap.ACTION_DELETE: _delete,
    }

    def _shell(self, request: soap.Request) -> dict[str, Command]:
        with self._lock:
            commands = self._shells.get((request.shell_id or "").upper())
        if commands is None:
            raise WSManFault(
                soap.INVALID_SELECTORS_CODE,
                "The request for the Windows Remote Shell with ShellId "
                f"{request.shell_id} failed because the shell was not found on the server.",
            )
        return commands

    def _command_of(self, request: soap.Request, command_id: str) -> Command:
        command = self._shell(request).get(command_id.upper())
        if command is None:
            raise WSManFault(soap.INVALID_SELECTORS_CODE, f"The command {command_id} is unknown to the shell.")
        return command

    def _start(self, command: Command) -> None:
        with self._lock:
            if command.started:
                return
            command.started = True
        self._executor.submit(self._run, command)

    def _run(self, command: Command) -> None:
        try:
            command.result = self.host.run(
                Invocation(decode_command(command.arguments), bytes(command.stdin), command.user)
            )
        except DroppedConnection:
            command.dropped = True
        except Exception as exc:  # noqa: BLE001 - a crash of the lab becomes the command's error, never a hang
            command.result = CommandResult.error(f"lab error: {exc!r}")
        finally:
            command.finished.set()


@dataclass
class WSManEndpoint:
    """Configuration of one WinRM listener (HTTP, or HTTPS when ``certificate`` is given)."""

    service: ShellService
    accounts: tuple[Account, ...]
    is_unreachable: Callable[[], bool]
    certificate: Callable[[], tuple[bytes, bytes]] | None = None
    contexts: ContextCache | None = None

    def serve(self, conn: socket.socket, address: tuple[str, int]) -> None:
        """Serve one accepted connection (the Acceptor's handler)."""
        if self.is_unreachable():
            reset_on_close(conn)  # the Acceptor closes it
            return
        bindings = None
        if self.certificate is not None:
            assert self.contexts is not None
            pair = self.certificate()
            conn.settimeout(IDLE_TIMEOUT)
            try:
                conn = self.contexts.context(pair).wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                return
            bindings = tls_channel_bindings(pair[0])
        WSManHandler(conn, address, self, ConnectionAuth(self.accounts, bindings))


class WSManHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler of POST /wsman; one instance per connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: avoid the delayed-ACK stall
    timeout = IDLE_TIMEOUT
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def __init__(
        self, conn: socket.socket, address: tuple[str, int], endpoint: WSManEndpoint, auth: ConnectionAuth
    ) -> None:
        self.endpoint = endpoint
        self.auth = auth
        super().__init__(conn, address, endpoint)  # type: ignore[arg-type]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        """Requests are not logged: the model's mutation log is the record."""

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        if self.endpoint.is_unreachable():
            reset_on_close(self.connection)
            self.close_connection = True
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            step = self.auth.step(self.headers.get("Authorization"))
        except AuthFailed:
            self._reply(401, b"", challenge=True)
            return
        if step.outcome is Outcome.CHALLENGE:
            self._reply(401, b"", challenge=step.token_header is None, token=step.token_header)
            return
        if not body:
            self._reply(200, b"", token=step.token_header)  # pywinrm's empty POST that sets up NTLM encryption
            return
        encrypted = self.headers.get("Content-Type", "").startswith("multipart/encrypted")
        try:
            payload = self._answer(self.auth.unwrap(body) if encrypted else body)
        except EncryptionError:
            self._reply(400, b"")
            return
        except Dropped:
            self.close_connection = True  # no answer: the Acceptor closes the connection
            return
        status, message = payload
        self._reply(
            status, self.auth.wrap(message) if encrypted else message, encrypted=encrypted, token=step.token_header
        )

    def _answer(self, body: bytes) -> tuple[int, bytes]:
        try:
            request = soap.parse_request(body)
        except soap.SoapError as exc:
            return 500, soap.fault("", soap.INVALID_SELECTORS_CODE, str(exc))
        try:
            return 200, self.endpoint.service.handle(request, self.auth.user or "")
        except WSManFault as exc:
            if exc.code == soap.OPERATION_TIMEOUT_CODE:
                return 500, soap.operation_timeout_fault(request)
            return 500, soap.fault(request.message_id, exc.code, str(exc), subcode="w:InvalidSelectors")

    def _reply(
        self, status: int, body: bytes, *, encrypted: bool = False, challenge: bool = False, token: str | None = None
    ) -> None:
        self.send_response(status)
        if token:
            self.send_header("WWW-Authenticate", token)
        if challenge:
            for offer in CHALLENGES:
                self.send_header("WWW-Authenticate", offer)
        if body:
            self.send_header(
                "Content-Type", ENCRYPTED_CONTENT_TYPE if encrypted else "application/soap+xml;charset=UTF-8"
            )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
