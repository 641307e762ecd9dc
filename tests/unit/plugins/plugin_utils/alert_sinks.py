# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local sinks the alert tests deliver to: a minimal SMTP server and an HTTP server, each in a thread.

The SMTP sink speaks enough of RFC 5321 for smtplib (EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP,
QUIT) and keeps every message it accepted and every command verb; the HTTP(S) sink records every POST and answers
with a chosen status (and Location). Both count the connections they accepted, so a test can show that nothing
was sent. TLS uses a self-signed certificate for 127.0.0.1 (clients connect with validate_certs false).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import email
import email.message
import email.policy
import http.server
import ipaddress
import json
import re
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_CERTIFICATE_DIR = tempfile.TemporaryDirectory(prefix="alert-sinks-")


def _server_context() -> ssl.SSLContext:
    """A TLS server context with a self-signed certificate for 127.0.0.1 (made once per test run)."""
    cert_file, key_file = Path(_CERTIFICATE_DIR.name, "sink.pem"), Path(_CERTIFICATE_DIR.name, "sink.key")
    if not cert_file.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sink.test")])
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256())
        )
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context


@dataclasses.dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage
    authenticated_as: str | None
    tls: bool = False


def _address(argument: str) -> str:
    """The address of ``FROM:<a@b> BODY=8BITMIME`` or ``TO:<a@b>``."""
    match = re.search(r"<([^>]*)>", argument)
    return match.group(1) if match else ""


def _write(stream: Any, data: bytes, drip: float) -> None:
    """Write ``data``, one byte every ``drip`` seconds when ``drip`` is set (a server that holds its client)."""
    if not drip:
        stream.write(data)
        return
    for byte in data:
        try:
            stream.write(bytes([byte]))
            stream.flush()
        except OSError:  # the client gave up
            return
        time.sleep(drip)


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def reply(self, line: str) -> None:
        _write(self.wfile, line.encode() + b"\r\n", self.server.drip)

    def read_line(self) -> str:
        return self.rfile.readline().decode("utf-8", "replace").rstrip("\r\n")

    def handle(self) -> None:
        self.server.connections += 1
        self.reply("220 sink.test ESMTP ready")
        sender, recipients, user, tls = "", [], None, False
        while line := self.read_line():
            verb, _space, rest = line.partition(" ")
            verb = verb.upper()
            self.server.commands.append(verb)
            if verb == "EHLO":
                starttls = "250-STARTTLS\r\n" if self.server.starttls and not tls else ""
                self.wfile.write(f"250-sink.test\r\n{starttls}250-AUTH PLAIN\r\n250 8BITMIME\r\n".encode())
            elif verb == "STARTTLS" and self.server.starttls and not tls:
                self.reply("220 2.0.0 Ready to start TLS")
                self.wfile.flush()
                self.request = _server_context().wrap_socket(self.request, server_side=True)
                self.rfile, self.wfile = self.request.makefile("rb"), self.request.makefile("wb", buffering=0)
                tls = True
            elif verb == "AUTH":
                self.server.auth_over_tls.append(tls)
                _mechanism, _space, blob = rest.partition(" ")
                _authzid, login, password = base64.b64decode(blob).decode().split("\0")
                if (login, password) == self.server.credentials:
                    user = login
                    self.reply("235 2.7.0 Authentication successful")
                else:
                    self.reply("535 5.7.8 Authentication credentials invalid")
            elif verb == "MAIL":
                sender, recipients = _address(rest), []
                self.reply("250 OK")
            elif verb == "RCPT":
                recipients.append(_address(rest))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                self.server.received.append(ReceivedMail(sender, recipients, self._read_data(), user, tls))
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            else:
                self.reply("502 5.5.1 Command not implemented")

    def _read_data(self) -> email.message.EmailMessage:
        lines = []
        while (raw := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(raw[1:] if raw.startswith(b"..") else raw)
        return email.message_from_bytes(b"".join(lines), policy=email.policy.default)


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None, starttls: bool, drip: float) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.credentials = credentials
        self.starttls = starttls
        self.drip = drip
        self.connections = 0
        self.commands: list[str] = []
        self.auth_over_tls: list[bool] = []
        self.received: list[ReceivedMail] = []


@dataclasses.dataclass
class SmtpSink:
    host: str
    port: int
    received: list[ReceivedMail]
    server: _SmtpServer = dataclasses.field(repr=False)

    @property
    def connections(self) -> int:
        return self.server.connections

    @property
    def commands(self) -> list[str]:
        """Every command verb received, in order (EHLO, STARTTLS, AUTH, MAIL...)."""
        return self.server.commands

    @property
    def auth_over_tls(self) -> list[bool]:
        """For each AUTH command received, whether the connection was encrypted at that point."""
        return self.server.auth_over_tls


@contextlib.contextmanager
def smtp_sink(credentials: tuple[str, str] | None = None, *, starttls: bool = False,
              drip: float = 0) -> Iterator[SmtpSink]:
    """An SMTP server on 127.0.0.1 that accepts AUTH PLAIN with ``credentials``, offers STARTTLS if asked, and
    with ``drip`` sends every reply one byte every ``drip`` seconds."""
    server = _SmtpServer(credentials, starttls, drip)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SmtpSink("127.0.0.1", server.server_address[1], server.received, server)
    finally:
        server.shutdown()
        server.server_close()


@dataclasses.dataclass
class ReceivedPost:
    path: str
    headers: dict[str, str]
    body: Any


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, status: int, location: str | None, tls: bool, drip: float) -> None:
        super().__init__(("127.0.0.1", 0), _HttpHandler)
        self.status = status
        self.location = location
        self.drip = drip
        self.connections = 0
        self.received: list[ReceivedPost] = []
        if tls:
            self.socket = _server_context().wrap_socket(self.socket, server_side=True)

    def get_request(self) -> tuple[Any, Any]:
        self.connections += 1
        return super().get_request()


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(ReceivedPost(self.path, dict(self.headers.items()), json.loads(body)))
        if self.server.drip:
            _write(self.wfile, f"HTTP/1.1 {self.server.status} OK\r\nContent-Length: 0\r\n\r\n".encode(),
                   self.server.drip)
            return
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
        return


@dataclasses.dataclass
class HttpSink:
    url: str
    received: list[ReceivedPost]
    server: _HttpServer = dataclasses.field(repr=False)

    @property
    def connections(self) -> int:
        return self.server.connections


@contextlib.contextmanager
def http_sink(status: int = 200, path: str = "/hooks/T000/SECRET-TOKEN", *, location: str | None = None,
              tls: bool = False, drip: float = 0) -> Iterator[HttpSink]:
    """An HTTP (``tls``: HTTPS) server on 127.0.0.1 answering every POST with ``status`` (and ``location``),
    one byte every ``drip`` seconds when ``drip`` is set."""
    server = _HttpServer(status, location, tls, drip)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if tls else "http"
        yield HttpSink(f"{scheme}://127.0.0.1:{server.server_address[1]}{path}", server.received, server)
    finally:
        server.shutdown()
        server.server_close()
