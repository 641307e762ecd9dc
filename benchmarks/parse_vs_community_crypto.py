# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificates parsed and evaluated per second on the controller, against community.crypto's parser.

Generates a mixed set of certificates with the lab's PKI (RSA 2048/4096 and EC P-256 keys from a key pool,
SHA-256 and SHA-1 signatures, 0-5 SAN names, lab-CA-issued and self-signed, expired to five years left), then
times, in the same process and over the same bytes:

- exchange.pki: what certificate_info does with them on the controller. The certificates are grouped
  into servers of ``--per-server`` certificates (a ``ServerSnapshot`` of their RawData), and
  ``_facts.build_facts`` parses each one (``_certificate.parse_certificate``), builds the references,
  evaluates every rule of the default policy and shapes the facts dictionary;
- community.crypto: the code path of its ``x509_certificate_info`` module, ``select_backend(...).get_info()``
  of ``plugins/module_utils/_crypto/module_backends/certificate_info.py``, on the PEM of each certificate.

Each side runs ``--repeat`` times, alternating; the best run counts (the least disturbed by the machine).
Run from the repository root after ``make collections``:

    .venv/bin/python benchmarks/parse_vs_community_crypto.py [--certificates 2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / ".ansible" / "collections")]

from ansible_collections.community.crypto.plugins.module_utils._crypto.module_backends.certificate_info import (  # noqa: E402
    select_backend,
)

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import parse_certificate  # noqa: E402
from ansible_collections.exchange.pki.plugins.plugin_utils._facts import build_facts  # noqa: E402
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import Policy  # noqa: E402
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot  # noqa: E402
from ansible_collections.exchange.pki.plugins.plugin_utils._values import StoreCertificate  # noqa: E402
from tests.lab.pki import AuthorityRegistry, CertificateSpec, KeyPool, make_certificate  # noqa: E402

KEYS = (("rsa", 2048), ("rsa", 2048), ("rsa", 4096), ("ec", 256))
LIFETIMES = (-30, 10, 45, 200, 400, 1800)  # days left: expired, critical, warning, fine


class _ModuleStub:
    """What community.crypto's backend reads of its AnsibleModule: the module's defaults and its error path."""

    params: dict[str, Any] = {"name_encoding": "ignore", "select_crypto_backend": "auto"}  # noqa: RUF012

    def fail_json(self, msg: str, **kwargs: Any) -> None:
        raise RuntimeError(msg)

    def warn(self, warning: str) -> None:
        pass

    def deprecate(self, msg: str, **kwargs: Any) -> None:
        pass


def generate(count: int, now: datetime.datetime) -> list[bytes]:
    """``count`` distinct DER certificates of varied shapes from the lab's PKI."""
    authorities, pool = AuthorityRegistry(now=now), KeyPool(limit=4)
    shapes = itertools.cycle(itertools.product(KEYS, LIFETIMES, ("sha256", "sha1"), ("lab-ca", "self")))
    certificates = []
    for index, ((key_type, key_size), days_left, signature, issuer) in zip(range(count), shapes):
        spec = CertificateSpec(
            subject=f"CN=host{index}.contoso.lab",
            dns_names=tuple(f"name{n}.host{index}.contoso.lab" for n in range(index % 6)),
            key_type=key_type,
            key_size=key_size,
            signature_hash=signature if key_type == "rsa" else "sha256",
            not_before=datetime.timedelta(days=days_left - 365),
            not_after=datetime.timedelta(days=days_left),
            issuer=issuer,
            serial_number=index + 1,
        )
        key = pool.key(key_type, key_size, str(index))
        certificates.append(make_certificate(spec, now=now, authorities=authorities, key=key).der())
    return certificates


def snapshots(ders: Sequence[bytes], per_server: int) -> list[ServerSnapshot]:
    """The certificates as the store reads (RawData) of servers holding ``per_server`` certificates each."""
    stored = [StoreCertificate(store="My", thumbprint=parse_certificate(der).thumbprint, raw_data=der) for der in ders]
    groups = (stored[start:start + per_server] for start in range(0, len(stored), per_server))
    return [ServerSnapshot(store_certificates=tuple(group)) for group in groups]


def exchange_pki(servers: Sequence[ServerSnapshot], now: datetime.datetime) -> Callable[[], int]:
    policy = Policy()

    def run() -> int:
        return sum(len(build_facts(server, policy=policy, now=now)["certificates"]) for server in servers)

    return run


def community_crypto(pems: Sequence[bytes]) -> Callable[[], int]:
    module = _ModuleStub()

    def run() -> int:
        return sum(1 for pem in pems if select_backend(module=module, content=pem).get_info())

    return run


def rate(run: Callable[[], int], expected: int) -> float:
    """Certificates per second of one run, checking that every certificate was handled."""
    start = time.perf_counter()
    handled = run()
    elapsed = time.perf_counter() - start
    if handled != expected:
        raise SystemExit(f"handled {handled} certificates, expected {expected}")
    return expected / elapsed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--certificates", type=int, default=2000)
    parser.add_argument("--per-server", type=int, default=12, help="certificates per simulated server")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    now = datetime.datetime.now(datetime.timezone.utc)
    started = time.perf_counter()
    ders = generate(args.certificates, now)
    print(f"generated {len(ders)} certificates in {time.perf_counter() - started:.1f} s")
    pems = [x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM) for der in ders]
    sides = {
        "exchange.pki build_facts (parse + policy)": exchange_pki(snapshots(ders, args.per_server), now),
        "community.crypto x509_certificate_info": community_crypto(pems),
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _repetition in range(args.repeat):
        for name, run in sides.items():
            rates[name].append(rate(run, len(ders)))

    ours, theirs = (max(values) for values in rates.values())
    print(f"\n{'':45} {'best cert/s':>12} {'median cert/s':>14}")
    for name, values in rates.items():
        print(f"{name:45} {max(values):12,.0f} {statistics.median(values):14,.0f}")
    print(f"\nratio exchange.pki / community.crypto (best): {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
