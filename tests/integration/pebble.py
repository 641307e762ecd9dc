# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian's pebble (an ACME test CA) and pebble-challtestsrv (its DNS), started on free loopback ports.

``start_pebble(directory, http_port)`` starts pebble-challtestsrv as a DNS server that answers every A query with
127.0.0.1 (and no AAAA, so pebble never tries IPv6), and pebble with that DNS server, its own TLS certificate
(made here for 127.0.0.1/localhost) and ``httpPort`` = ``http_port``: http-01 validation of any name fetches
``http://127.0.0.1:<http_port>/.well-known/acme-challenge/<token>``, the lab's plain HTTP endpoint of one server.
Validation is real (``PEBBLE_VA_ALWAYS_VALID`` is not set); ``PEBBLE_VA_NOSLEEP=1`` removes pebble's random
delays. dns-01 records are set through challtestsrv's management API (``/set-txt``, ``/clear-txt``), the way a
DNS provider's API is used. Tests are skipped when pebble is not installed (``apt-get install pebble``).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PEBBLE = shutil.which("pebble") or ("/usr/bin/pebble" if Path("/usr/bin/pebble").exists() else None)
CHALLTESTSRV = shutil.which("pebble-challtestsrv") or (
    "/usr/bin/pebble-challtestsrv" if Path("/usr/bin/pebble-challtestsrv").exists() else None)
STARTUP_SECONDS = 30

requires_pebble = pytest.mark.skipif(PEBBLE is None or CHALLTESTSRV is None,
                                     reason="needs Debian's pebble and pebble-challtestsrv (apt-get install pebble)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _tls_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for pebble's HTTPS directory (127.0.0.1 and localhost); it is its own CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test directory")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pebble-tls.pem", directory / "pebble-tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Pebble:
    """A running pebble: its ACME directory, the CA file of its HTTPS endpoint, and challtestsrv's API."""

    directory_url: str
    tls_ca_path: Path
    management_url: str
    challtestsrv_url: str
    http_port: int
    log_path: Path

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tls_ca_path))

    def roots(self) -> list[x509.Certificate]:
        """The issuing chain's roots (pebble makes a new one at every start)."""
        with urllib.request.urlopen(f"{self.management_url}/roots/0", context=self._context(),  # noqa: S310
                                    timeout=10) as answer:
            return x509.load_pem_x509_certificates(answer.read())

    def intermediates(self) -> list[x509.Certificate]:
        with urllib.request.urlopen(f"{self.management_url}/intermediates/0", context=self._context(),  # noqa: S310
                                    timeout=10) as answer:
            return x509.load_pem_x509_certificates(answer.read())

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


def _wait_for(url: str, context: ssl.SSLContext | None, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited ({process.returncode}):\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, context=context, timeout=2):  # noqa: S310 - loopback test service
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {STARTUP_SECONDS}s:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def start_pebble(directory: Path, http_port: int) -> Iterator[Pebble]:
    """Start challtestsrv and pebble (http-01 validated against 127.0.0.1:``http_port``); stop both afterwards."""
    if PEBBLE is None or CHALLTESTSRV is None:
        pytest.skip("needs Debian's pebble and pebble-challtestsrv (apt-get install pebble)")
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = _tls_certificate(directory)
    acme_port, management_port, tls_port = free_port(), free_port(), free_port()
    dns_port, challtest_port = free_port(), free_port()
    config = directory / "pebble-config.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme_port}", "managementListenAddress": f"127.0.0.1:{management_port}",
        "certificate": str(cert_path), "privateKey": str(key_path), "httpPort": http_port, "tlsPort": tls_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}), encoding="utf-8")
    challtest_log, pebble_log = directory / "challtestsrv.log", directory / "pebble.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with challtest_log.open("wb") as output:
            challtest = subprocess.Popen(  # noqa: S603 - fixed arguments
                [CHALLTESTSRV, "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                 "-management", f"127.0.0.1:{challtest_port}", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
                stdout=output, stderr=subprocess.STDOUT)
        processes.append(challtest)
        challtestsrv_url = f"http://127.0.0.1:{challtest_port}"
        _wait_for(f"{challtestsrv_url}/clear-txt", None, challtest, challtest_log)
        with pebble_log.open("wb") as output:
            pebble = subprocess.Popen(  # noqa: S603 - fixed arguments
                [PEBBLE, "-config", str(config), "-dnsserver", f"127.0.0.1:{dns_port}"],
                stdout=output, stderr=subprocess.STDOUT, cwd=directory,
                env={"PATH": "/usr/bin:/bin", "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"})
        processes.append(pebble)
        started = Pebble(f"https://127.0.0.1:{acme_port}/dir", cert_path, f"https://127.0.0.1:{management_port}",
                         challtestsrv_url, http_port, pebble_log)
        _wait_for(started.directory_url, started._context(), pebble, pebble_log)
        yield started
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
