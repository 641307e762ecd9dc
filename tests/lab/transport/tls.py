# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server-side TLS contexts built from in-memory PEM, cached by content.

``ssl`` loads certificates only from files, so each distinct (chain, key) pair is written once to a
private 0700 directory, loaded, and the key file removed at once. Asking the fleet for the certificate
at every handshake and looking the context up here serves a re-bound certificate immediately.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import tempfile
import threading
from pathlib import Path


class ContextCache:
    """SSLContexts for (chain PEM, key PEM) pairs; thread-safe."""

    def __init__(self) -> None:
        self._contexts: dict[bytes, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._directory = Path(tempfile.mkdtemp(prefix="lab-tls-"))
        self._empty = self._new_context()

    def context(self, pair: tuple[bytes, bytes] | None) -> ssl.SSLContext:
        """The context serving ``pair``; without a pair, one with no certificate (every handshake fails)."""
        if pair is None:
            return self._empty
        digest = hashlib.sha256(pair[0] + b"\0" + pair[1]).digest()
        with self._lock:
            context = self._contexts.get(digest)
            if context is None:
                context = self._contexts[digest] = self._load(digest.hex(), *pair)
        return context

    def close(self) -> None:
        shutil.rmtree(self._directory, ignore_errors=True)

    @staticmethod
    def _new_context() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _load(self, name: str, chain: bytes, key: bytes) -> ssl.SSLContext:
        chain_path = self._directory / f"{name}.crt"
        key_path = self._directory / f"{name}.key"
        chain_path.write_bytes(chain)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        try:
            context = self._new_context()
            context.load_cert_chain(chain_path, key_path)
        finally:
            key_path.unlink()
            chain_path.unlink()
        return context
