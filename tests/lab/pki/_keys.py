# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Private keys for lab certificates: generation, a reusable key pool, and key metadata.

Trade-off of the key pool: RSA-2048 generation costs ~40-100 ms, so a 100-server fleet with ~400
certificates would take tens of seconds to build with fresh keys. :class:`KeyPool` hands out a bounded
set of keys keyed by a label: the same label always gets the same key, and once ``limit`` distinct
keys exist, further labels reuse them round-robin. Certificates built on a shared key still get their
own random serial number, hence distinct DER bytes and thumbprints; what they share is the public key
(and the Subject Key Identifier derived from it). With the default limit of 16 keys per type and size,
400 certificates build in about a second on two cores. Never pool keys whose identity matters to the model:
a pending request's key must be fresh, because Windows matches an issued certificate to its request by
public key (exchange-facts.md: "A pending request can only be completed on the server that generated it").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec, rsa

KeyType = Literal["rsa", "ec"]
KeyProvider = Literal["csp", "cng"]
#: The keys the lab makes and certificates carry.
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_KEY_SIZES = (1024, 2048, 3072, 4096)
_EC_CURVES: dict[int, type[ec.EllipticCurve]] = {
    256: ec.SECP256R1,
    384: ec.SECP384R1,
    521: ec.SECP521R1,
}


@dataclass(frozen=True)
class KeyInfo:
    """How Windows holds a certificate's private key (the facts host.certificates reports).

    ``provider``: legacy CryptoAPI CSP or CNG KSP (the Auth certificate must be CSP, exchange-facts.md
    "Auth (OAuth) certificate"); ``exportable``: PrivateKeyExportable; ``network_service_read``: whether
    NETWORK SERVICE may read the key file (needed by Exchange services).
    """

    provider: KeyProvider = "csp"
    exportable: bool = False
    network_service_read: bool = True


def generate_key(key_type: KeyType = "rsa", key_size: int = 2048, *, cache_key: str | None = None) -> PrivateKey:
    """Return a new private key, or the process-wide pool's key for ``cache_key`` (see :class:`KeyPool`).

    RSA sizes: 1024, 2048, 3072, 4096; EC sizes pick the curve: 256 (P-256), 384 (P-384), 521 (P-521).
    """
    if cache_key is not None:
        return DEFAULT_KEY_POOL.key(key_type, key_size, cache_key)
    return _new_key(key_type, key_size)


class KeyPool:
    """A thread-safe, bounded pool of keys handed out by label (see the module docstring)."""

    def __init__(self, *, limit: int | None = 16) -> None:
        """``limit``: the most distinct keys per (type, size); ``None`` = one key per label."""
        if limit is not None and limit < 1:
            raise ValueError("a key pool limit must be at least 1")
        self._limit = limit
        self._lock = threading.Lock()
        self._slots: dict[tuple[KeyType, int], list[PrivateKey]] = {}
        self._labels: dict[tuple[KeyType, int, str], PrivateKey] = {}
        self._handed_out: dict[tuple[KeyType, int], int] = {}

    def key(self, key_type: KeyType, key_size: int, label: str) -> PrivateKey:
        """The key for ``label``: the same object for the same label, type and size."""
        with self._lock:
            labelled = (key_type, key_size, label)
            if labelled not in self._labels:
                self._labels[labelled] = self._assign(key_type, key_size)
            return self._labels[labelled]

    def _assign(self, key_type: KeyType, key_size: int) -> PrivateKey:
        kind = (key_type, key_size)
        slots = self._slots.setdefault(kind, [])
        count = self._handed_out.get(kind, 0)
        self._handed_out[kind] = count + 1
        if self._limit is None or len(slots) < self._limit:
            slots.append(_new_key(key_type, key_size))
            return slots[-1]
        return slots[count % self._limit]


DEFAULT_KEY_POOL = KeyPool()


def _new_key(key_type: KeyType, key_size: int) -> PrivateKey:
    if key_type == "rsa":
        if key_size not in RSA_KEY_SIZES:
            raise ValueError(f"unsupported RSA key size {key_size}; use one of {RSA_KEY_SIZES}")
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    if key_type == "ec":
        if key_size not in _EC_CURVES:
            raise ValueError(f"unsupported EC key size {key_size}; use one of {tuple(_EC_CURVES)}")
        return ec.generate_private_key(_EC_CURVES[key_size]())
    raise ValueError(f"unsupported key type {key_type!r}; use 'rsa' or 'ec'")
