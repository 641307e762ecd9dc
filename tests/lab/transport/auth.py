# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP authentication of a WS-Management listener: Basic, and NTLM with WinRM message encryption.

NTLM is accepted with pyspnego; its acceptor reads the users from the file named by the environment
variable ``NTLM_USER_FILE`` (lines ``DOMAIN:user:password``), which `write_ntlm_user_file` produces.
The NTLM context belongs to one TCP connection (HTTP/1.1 keep-alive), as with a real WinRM service.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import spnego
import spnego.exceptions
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from spnego.channel_bindings import GssChannelBindings

BOUNDARY = b"--Encrypted Boundary"
ENCRYPTED_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
ENCRYPTED_CONTENT_TYPE = f'multipart/encrypted;protocol="{ENCRYPTED_PROTOCOL}";boundary="Encrypted Boundary"'
#: What the listener offers in WWW-Authenticate (a real WinRM offers Negotiate, plus Basic when enabled).
CHALLENGES = ("Negotiate", 'Basic realm="WSMAN"')


class AuthFailed(Exception):
    """Credentials were offered and rejected (the listener answers HTTP 401)."""


class EncryptionError(ValueError):
    """An encrypted body could not be unwrapped (the listener answers HTTP 400)."""


@dataclass(frozen=True)
class Account:
    """A Windows account that may log on to the lab's hosts."""

    domain: str
    username: str
    password: str

    @property
    def principal(self) -> str:
        return f"{self.domain}\\{self.username}"

    def matches(self, name: str) -> bool:
        """True for ``user``, ``DOMAIN\\user`` and ``user@domain`` forms (case-insensitive, like Windows)."""
        name = name.casefold()
        user, domain = self.username.casefold(), self.domain.casefold()
        if "\\" in name:
            given_domain, _sep, given_user = name.partition("\\")
            return given_user == user and (given_domain == domain or domain.startswith(f"{given_domain}."))
        if "@" in name:
            given_user, _sep, given_domain = name.partition("@")
            return given_user == user and (given_domain == domain or given_domain.startswith(f"{domain}."))
        return name == user


def accounts_from(records: Iterable[Mapping[str, object]]) -> tuple[Account, ...]:
    """Build accounts from ``Fleet.accounts()`` records."""
    return tuple(Account(str(r["domain"]), str(r["username"]), str(r["password"])) for r in records)


def write_ntlm_user_file(path: Path, accounts: Iterable[Account]) -> Path:
    """Write the pyspnego acceptor's user file (mode 0600) and point ``NTLM_USER_FILE`` at it.

    One line per logon form a client may use: ``DOMAIN\\user`` with the DNS and the NetBIOS domain name,
    ``user@domain`` (UPN; pyspnego stores it with an empty domain) and a bare ``user``.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for account in accounts:
            netbios = account.domain.split(".", 1)[0]
            for domain, user in (
                (account.domain, account.username),
                (netbios, account.username),
                ("", f"{account.username}@{account.domain}"),
                ("", account.username),
            ):
                handle.write(f"{domain}:{user}:{account.password}\n")
    os.environ["NTLM_USER_FILE"] = str(path)
    return path


def tls_channel_bindings(certificate_pem: bytes) -> GssChannelBindings:
    """RFC 5929 tls-server-end-point bindings of the served certificate (what pywinrm sends with NTLM over HTTPS)."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    algorithm = certificate.signature_hash_algorithm
    if not isinstance(algorithm, (hashes.SHA384, hashes.SHA512)):
        algorithm = hashes.SHA256()
    digest = hashlib.new(algorithm.name, certificate.public_bytes(serialization.Encoding.DER)).digest()
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest)


class Outcome(enum.Enum):
    """Result of looking at one request's Authorization header."""

    AUTHENTICATED = "authenticated"
    CHALLENGE = "challenge"


@dataclass(frozen=True)
class AuthStep:
    outcome: Outcome
    #: value for a WWW-Authenticate header (an NTLM challenge or the final token), if any
    token_header: str | None = None


class ConnectionAuth:
    """Authentication state of one TCP connection."""

    def __init__(self, accounts: tuple[Account, ...], channel_bindings: GssChannelBindings | None = None) -> None:
        self._accounts = accounts
        self._channel_bindings = channel_bindings
        self._ntlm: spnego.ContextProxy | None = None
        self._basic_header: str | None = None
        self.user: str | None = None

    @property
    def can_encrypt(self) -> bool:
        return self._ntlm is not None and self._ntlm.complete

    def step(self, authorization: str | None) -> AuthStep:
        """Process one request's Authorization header; raise AuthFailed for rejected credentials."""
        if not authorization:
            # After the NTLM handshake the connection itself is authenticated; Basic sends a header every time.
            return AuthStep(Outcome.AUTHENTICATED if self.can_encrypt else Outcome.CHALLENGE)
        scheme, _sep, token = authorization.partition(" ")
        scheme = scheme.casefold()
        if scheme == "basic":
            return self._basic(authorization, token.strip())
        if scheme in ("negotiate", "ntlm"):
            return self._negotiate(scheme, token.strip())
        raise AuthFailed(f"unsupported authentication scheme {scheme!r}")

    def _basic(self, header: str, token: str) -> AuthStep:
        if header == self._basic_header:
            return AuthStep(Outcome.AUTHENTICATED)
        try:
            name, _sep, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise AuthFailed("malformed Basic credentials") from exc
        account = next((a for a in self._accounts if a.matches(name) and a.password == password), None)
        if account is None:
            raise AuthFailed("logon failure: unknown user name or bad password")
        self._basic_header, self.user = header, account.principal
        return AuthStep(Outcome.AUTHENTICATED)

    def _negotiate(self, scheme: str, token: str) -> AuthStep:
        if self._ntlm is None or self._ntlm.complete:
            self._ntlm = spnego.server(protocol="ntlm", channel_bindings=self._channel_bindings)
            self.user = None
        try:
            answer = self._ntlm.step(base64.b64decode(token))
        except (spnego.exceptions.SpnegoError, binascii.Error, ValueError) as exc:
            self._ntlm = None
            raise AuthFailed("logon failure: NTLM authentication was rejected") from exc
        header = (
            f"{'Negotiate' if scheme == 'negotiate' else 'NTLM'} {base64.b64encode(answer).decode()}"
            if answer
            else None
        )
        if not self._ntlm.complete:
            return AuthStep(Outcome.CHALLENGE, header)
        self.user = self._principal(self._ntlm.client_principal or "")
        return AuthStep(Outcome.AUTHENTICATED, header)

    def _principal(self, name: str) -> str:
        account = next((a for a in self._accounts if a.matches(name)), None)
        return account.principal if account else name

    def unwrap(self, body: bytes) -> bytes:
        """Decrypt a ``multipart/encrypted`` body sealed with this connection's NTLM session."""
        if not self.can_encrypt:
            raise EncryptionError("encrypted message on a connection without an NTLM session")
        assert self._ntlm is not None
        parts = [part for part in body.split(BOUNDARY + b"\r\n") if part]
        if len(parts) != 2 or b"Length=" not in parts[0]:
            raise EncryptionError("malformed multipart/encrypted body")
        expected = int(parts[0].split(b"Length=")[1].strip())
        payload = parts[1].removesuffix(BOUNDARY + b"--\r\n")
        payload = payload.removeprefix(b"\tContent-Type: application/octet-stream\r\n")
        (signature_length,) = struct.unpack("<i", payload[:4])
        header, sealed = payload[4 : 4 + signature_length], payload[4 + signature_length :]
        try:
            message = self._ntlm.unwrap_winrm(header, sealed)
        except spnego.exceptions.SpnegoError as exc:
            raise EncryptionError("the message signature does not verify") from exc
        if len(message) != expected:
            raise EncryptionError("decrypted length differs from the announced length")
        return message

    def wrap(self, message: bytes) -> bytes:
        """Seal a response the way WinRM does for NTLM message encryption."""
        assert self._ntlm is not None
        wrapped = self._ntlm.wrap_winrm(message)
        return (
            BOUNDARY + b"\r\n"
            b"\tContent-Type: " + ENCRYPTED_PROTOCOL.encode() + b"\r\n"
            b"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length="
            + str(len(message)).encode()
            + b"\r\n"
            + BOUNDARY
            + b"\r\n"
            b"\tContent-Type: application/octet-stream\r\n"
            + struct.pack("<i", len(wrapped.header))
            + wrapped.header
            + wrapped.data
            + BOUNDARY
            + b"--\r\n"
        )
