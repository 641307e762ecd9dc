# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The endpoints of a simulated Exchange server: IIS Default Web Site (:443, and :80 plain HTTP), Exchange Back
End (:444), SMTP, IMAP4 (:143) and POP3 (:110).

Each handshake asks the fleet which certificate the real server would serve at that moment
(``Fleet.served_certificate``), so a certificate bound by a module is served by the next handshake.
A binding without a certificate (None) fails the handshake. The plain HTTP endpoint (the Default Web Site's
port 80 binding) serves only what ACME http-01 needs: ``/.well-known/acme-challenge/<token>`` from the token files
``host.acme_challenge`` wrote (``Fleet.acme_challenge``), 404 for anything else. SMTP speaks enough ESMTP for STARTTLS
(RFC 3207): banner, EHLO advertising STARTTLS, STARTTLS, EHLO again, NOOP, RSET, QUIT. IMAP4 speaks enough for
STARTTLS (RFC 9051 section 6.2.1: greeting, CAPABILITY, STARTTLS, NOOP, LOGOUT) and POP3 enough for STLS (RFC 2595:
greeting, CAPA, STLS, NOOP, QUIT), both with the certificate Exchange would present for the protocol
(``Fleet.served_certificate(server, "imap" | "pop")``: X509CertificateName of Get-ImapSettings/Get-PopSettings,
else the certificate enabled for the service). Nothing logs in.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from collections.abc import Callable
from typing import Protocol

from tests.lab.transport.listener import ConnectionHandler
from tests.lab.transport.tls import ContextCache

#: Seconds a TLS endpoint waits for a client before closing the connection.
CLIENT_TIMEOUT = 30.0
HTTPS_ENDPOINTS = ("https", "back_end")
SMTP_ENDPOINT = "smtp"
IMAP_ENDPOINT = "imap"
POP_ENDPOINT = "pop"
MAIL_ENDPOINTS = (IMAP_ENDPOINT, POP_ENDPOINT)
HTTP_ENDPOINT = "http"
ACME_PREFIX = "/.well-known/acme-challenge/"
_MAX_LINE = 4096


class CertificateSource(Protocol):
    """The part of the Fleet the endpoints need."""

    def served_certificate(self, server: str, endpoint: str) -> tuple[bytes, bytes] | None: ...

    def acme_challenge(self, server: str, token: str) -> str | None: ...


class Endpoints:
    """Connection handlers for the TLS endpoints of every server."""

    def __init__(self, fleet: CertificateSource, contexts: ContextCache, fqdn: Callable[[str], str]) -> None:
        self._fleet = fleet
        self._contexts = contexts
        self._fqdn = fqdn

    def handler(self, server: str, endpoint: str) -> ConnectionHandler:
        """The handler serving ``endpoint`` ("https", "back_end", "http", "smtp", "imap" or "pop") of ``server``."""
        if endpoint == HTTP_ENDPOINT:
            return lambda conn, _address: self._serve_http(conn, server)
        if endpoint in HTTPS_ENDPOINTS:
            return lambda conn, _address: self._serve_https(conn, server, endpoint)
        if endpoint == SMTP_ENDPOINT:
            return lambda conn, _address: SmtpSession(
                conn, self._fqdn(server), lambda: self._tls(server, endpoint)
            ).run()
        if endpoint in MAIL_ENDPOINTS:
            session = ImapSession if endpoint == IMAP_ENDPOINT else Pop3Session
            return lambda conn, _address: session(conn, lambda: self._tls(server, endpoint)).run()
        raise ValueError(f"unknown TLS endpoint {endpoint!r}")

    def _tls(self, server: str, endpoint: str) -> ssl.SSLContext:
        return self._contexts.context(self._fleet.served_certificate(server, endpoint))

    def _serve_https(self, conn: socket.socket, server: str, endpoint: str) -> None:
        conn.settimeout(CLIENT_TIMEOUT)
        try:
            tls = self._tls(server, endpoint).wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with tls, tls.makefile("rb") as reader:
            try:
                while reader.readline(_MAX_LINE).strip():
                    pass  # the request head; its content does not matter
                body = f"{self._fqdn(server)} {endpoint}\n".encode()
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nServer: Microsoft-IIS/10.0\r\nContent-Type: text/plain\r\n"
                    + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                    + body
                )
            except (ssl.SSLError, OSError):
                return

    def _serve_http(self, conn: socket.socket, server: str) -> None:
        """One plain HTTP request: the ACME token file it names, or 404 (IIS's answer for a missing file)."""
        conn.settimeout(CLIENT_TIMEOUT)
        with conn, conn.makefile("rb") as reader:
            try:
                request = reader.readline(_MAX_LINE).decode("latin-1").split()
                while reader.readline(_MAX_LINE).strip():
                    pass  # the headers; Host does not matter (one site)
                path = request[1].split("?", 1)[0] if len(request) >= 2 and request[0] in ("GET", "HEAD") else ""
                token = path[len(ACME_PREFIX):] if path.startswith(ACME_PREFIX) else ""
                content = self._fleet.acme_challenge(server, token) if token and "/" not in token else None
                status = "200 OK" if content is not None else "404 Not Found"
                body = (content if content is not None else "The resource cannot be found.").encode()
                head = (f"HTTP/1.1 {status}\r\nServer: Microsoft-IIS/10.0\r\nContent-Type: text/plain\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
                conn.sendall(head + (body if request and request[0] == "GET" else b""))
            except (OSError, IndexError):
                return


class SmtpSession:
    """One SMTP conversation; STARTTLS switches the connection to TLS with the bound SMTP certificate."""

    def __init__(self, conn: socket.socket, fqdn: str, tls_context: Callable[[], ssl.SSLContext]) -> None:
        self._conn: socket.socket = conn
        self._fqdn = fqdn
        self._tls_context = tls_context
        self._tls = False

    def run(self) -> None:
        self._conn.settimeout(CLIENT_TIMEOUT)
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
        try:
            self._send(f"220 {self._fqdn} Microsoft ESMTP MAIL Service ready at {now}")
            reader = self._conn.makefile("rb")
            while True:
                line = reader.readline(_MAX_LINE)
                if not line:
                    return
                verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
                if verb == "QUIT":
                    self._send("221 2.0.0 Service closing transmission channel")
                    return
                if verb == "STARTTLS" and not self._tls:
                    reader.close()
                    if not self._start_tls():
                        return
                    reader = self._conn.makefile("rb")
                    continue
                self._send(self._answer(verb))
        except (ssl.SSLError, OSError):
            return
        finally:
            self._conn.close()

    def _answer(self, verb: str) -> str:
        if verb in ("EHLO", "HELO"):
            greeting = f"250-{self._fqdn} Hello [127.0.0.1]"
            if verb == "HELO":
                return greeting.replace("250-", "250 ")
            extensions = ["SIZE 37748736", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES"]
            extensions += ["AUTH NTLM LOGIN"] if self._tls else ["STARTTLS"]
            extensions += ["8BITMIME", "BINARYMIME", "CHUNKING"]
            return "\r\n".join([greeting, *(f"250-{e}" for e in extensions[:-1]), f"250 {extensions[-1]}"])
        if verb == "STARTTLS":
            return "503 5.5.1 TLS already active"
        if verb == "NOOP":
            return "250 2.0.0 OK"
        if verb == "RSET":
            return "250 2.0.0 Resetting"
        return "500 5.3.3 Unrecognized command"

    def _start_tls(self) -> bool:
        self._send("220 2.0.0 SMTP server ready")
        try:
            self._conn = self._tls_context().wrap_socket(self._conn, server_side=True)
        except (ssl.SSLError, OSError):
            return False
        self._tls = True
        return True

    def _send(self, reply: str) -> None:
        self._conn.sendall(reply.encode("ascii") + b"\r\n")


class _LineSession:
    """A line protocol that can switch to TLS: subclasses give the greeting and answer each command line."""

    greeting = ""

    def __init__(self, conn: socket.socket, tls_context: Callable[[], ssl.SSLContext]) -> None:
        self._conn: socket.socket = conn
        self._tls_context = tls_context
        self._tls = False

    def answer(self, line: str) -> tuple[str, str | None]:
        """The reply to one command line, and "tls" (switch after replying), "quit" (close) or None."""
        raise NotImplementedError

    def run(self) -> None:
        self._conn.settimeout(CLIENT_TIMEOUT)
        try:
            self._send(self.greeting)
            reader = self._conn.makefile("rb")
            while True:
                line = reader.readline(_MAX_LINE)
                if not line:
                    return
                reply, then = self.answer(line.decode("ascii", "replace").strip())
                self._send(reply)
                if then == "quit":
                    return
                if then == "tls":
                    reader.close()
                    try:
                        self._conn = self._tls_context().wrap_socket(self._conn, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                    self._tls = True
                    reader = self._conn.makefile("rb")
        except (ssl.SSLError, OSError):
            return
        finally:
            self._conn.close()

    def _send(self, reply: str) -> None:
        self._conn.sendall(reply.encode("ascii") + b"\r\n")


class ImapSession(_LineSession):
    """One IMAP4 conversation (Exchange's IMAP4 service); STARTTLS switches to TLS with the IMAP certificate."""

    greeting = "* OK The Microsoft Exchange IMAP4 service is ready."

    def answer(self, line: str) -> tuple[str, str | None]:
        tag, rest = (line.split(" ", 1) + [""])[:2]
        command = rest.split(" ", 1)[0].upper()
        if not tag or not command:
            return "* BAD Command Error. 10", None
        if command == "CAPABILITY":
            auth = "AUTH=NTLM AUTH=GSSAPI AUTH=PLAIN" if self._tls else "AUTH=NTLM AUTH=GSSAPI LOGINDISABLED STARTTLS"
            return (f"* CAPABILITY IMAP4 IMAP4rev1 {auth} UIDPLUS MOVE ID UNSELECT CHILDREN IDLE NAMESPACE LITERAL+"
                    f"\r\n{tag} OK CAPABILITY completed."), None
        if command == "STARTTLS":
            if self._tls:
                return f"{tag} BAD Command received in Invalid state.", None
            return f"{tag} OK Begin TLS negotiation now.", "tls"
        if command == "NOOP":
            return f"{tag} OK NOOP completed.", None
        if command == "LOGOUT":
            return f"* BYE Microsoft Exchange Server IMAP4 server signing off.\r\n{tag} OK LOGOUT completed.", "quit"
        return f"{tag} BAD Command Error. 12", None


class Pop3Session(_LineSession):
    """One POP3 conversation (Exchange's POP3 service); STLS switches to TLS with the POP certificate."""

    greeting = "+OK The Microsoft Exchange POP3 service is ready."

    def answer(self, line: str) -> tuple[str, str | None]:
        command = line.split(" ", 1)[0].upper()
        if command == "CAPA":
            tail = ["SASL NTLM GSSAPI PLAIN", "USER"] if self._tls else ["SASL NTLM GSSAPI", "STLS"]
            return "\r\n".join(["+OK", "TOP", "UIDL", *tail, "."]), None
        if command == "STLS":
            if self._tls:
                return "-ERR Command is not valid in this state.", None
            return "+OK Begin TLS negotiation.", "tls"
        if command == "NOOP":
            return "+OK", None
        if command == "QUIT":
            return "+OK Microsoft Exchange Server POP3 server signing off.", "quit"
        return "-ERR Protocol error. 14", None
