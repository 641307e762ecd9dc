# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Local sinks the alert tests deliver to: a minimal SMTP server and an HTTP server, each in a thread.

The SMTP sink speaks enough of RFC 5321 for smtplib (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
and keeps every message it accepted; the HTTP sink records every POST and answers with a chosen status.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import email
import email.message
import email.policy
import http.server
import json
import re
import socketserver
import threading
from collections.abc import Iterator
from typing import Any


@dataclasses.dataclass
class ReceivedMail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage
    authenticated_as: str | None


def _address(argument: str) -> str:
    """The address of ``FROM:<a@b> BODY=8BITMIME`` or ``TO:<a@b>``."""
    match = re.search(r"<([^>]*)>", argument)
    return match.group(1) if match else ""


class _SmtpHandler(socketserver.StreamRequestHandler):
    server: _SmtpServer

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def read_line(self) -> str:
        return self.rfile.readline().decode("utf-8", "replace").rstrip("\r\n")

    def handle(self) -> None:
        self.reply("220 sink.test ESMTP ready")
        sender, recipients, user = "", [], None
        while line := self.read_line():
            verb, _space, rest = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self.wfile.write(b"250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
            elif verb == "AUTH":
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
                self.server.received.append(ReceivedMail(sender, recipients, self._read_data(), user))
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:  # RSET, NOOP
                self.reply("250 OK")

    def _read_data(self) -> email.message.EmailMessage:
        lines = []
        while (raw := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(raw[1:] if raw.startswith(b"..") else raw)
        return email.message_from_bytes(b"".join(lines), policy=email.policy.default)


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, credentials: tuple[str, str] | None) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.credentials = credentials
        self.received: list[ReceivedMail] = []


@dataclasses.dataclass
class SmtpSink:
    host: str
    port: int
    received: list[ReceivedMail]


@contextlib.contextmanager
def smtp_sink(credentials: tuple[str, str] | None = None) -> Iterator[SmtpSink]:
    server = _SmtpServer(credentials)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield SmtpSink("127.0.0.1", server.server_address[1], server.received)
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

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _HttpHandler)
        self.status = status
        self.received: list[ReceivedPost] = []


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append(ReceivedPost(self.path, dict(self.headers.items()), json.loads(body)))
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence the access log
        return


@dataclasses.dataclass
class HttpSink:
    url: str
    received: list[ReceivedPost]


@contextlib.contextmanager
def http_sink(status: int = 200, path: str = "/hooks/T000/SECRET-TOKEN") -> Iterator[HttpSink]:
    server = _HttpServer(status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpSink(f"http://127.0.0.1:{server.server_address[1]}{path}", server.received)
    finally:
        server.shutdown()
        server.server_close()
