# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal stand-in for tests.lab.model.Fleet (ARCHITECTURE.md) to test the transport on its own.

It has real certificates (a lab CA, a WinRM listener certificate and one served certificate per
endpoint) and one module, ``exchange.pki.exchange_batch``, that echoes its call.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lab.model.errors import DroppedConnection, LabError, UnknownModule
from tests.lab.model.faults import Fault, FaultTable

BATCH = "exchange.pki.exchange_batch"
PASSWORD = "Lab-Passw0rd!"


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, PEM."""

    certificate: x509.Certificate
    key_pem: bytes

    @property
    def pair(self) -> tuple[bytes, bytes]:
        return self.certificate.public_bytes(serialization.Encoding.PEM), self.key_pem


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(common_name: str, dns_names: list[str], issuer: Issued | None = None) -> Issued:
    """A certificate for ``common_name``, signed by ``issuer`` (self-signed CA when None)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if dns_names:
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        if "localhost" in dns_names:
            names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    signer = serialization.load_pem_private_key(issuer.key_pem, None) if issuer else key
    certificate = builder.sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Issued(certificate, key_pem)


@dataclass
class FakeServer:
    name: str
    fqdn: str
    listener: Issued
    served: dict[str, Issued | None] = field(default_factory=dict)
    unreachable: bool = False
    rawdata_only: bool = False


class FakeFleet:
    """Implements the Fleet interface of ARCHITECTURE.md with canned data."""

    def __init__(self, names: tuple[str, ...] = ("ex1", "ex2")) -> None:
        self.lock = threading.RLock()
        self.ca = issue("Lab Test CA", [])
        self.calls: list[dict[str, Any]] = []
        self.mutations: list[dict[str, Any]] = []
        self.clock_seconds = 0.0
        self._faults = FaultTable()
        self.servers = {name: self._server(name) for name in names}
        #: (server, token) -> key authorization: the http-01 files the plain HTTP endpoint serves
        self.acme_files: dict[tuple[str, str], str] = {}

    def _server(self, name: str) -> FakeServer:
        fqdn = f"{name}.contoso.lab"
        served: dict[str, Issued | None] = {
            e: issue(f"{e}.{fqdn}", [fqdn]) for e in ("https", "back_end", "smtp", "imap", "pop")
        }
        return FakeServer(name, fqdn, issue(fqdn, [fqdn, "localhost"], self.ca), served)

    @classmethod
    def from_scenario(cls, scenario: object, *, now: datetime.datetime | None = None) -> FakeFleet:
        return cls()

    def server_names(self) -> list[str]:
        return list(self.servers)

    def server_info(self, name: str) -> dict[str, Any]:
        server = self._get(name)
        return {
            "name": name,
            "fqdn": server.fqdn,
            "site": "Default-First-Site Name",
            "dag": "DAG1",
            "version": "2019",
            "os": "2019",
        }

    def groups(self) -> dict[str, list[str]]:
        return {
            "exchange": self.server_names(),
            "dag_dag1": self.server_names(),
            "site_default_first_site_name": self.server_names(),
        }

    def accounts(self) -> list[dict[str, Any]]:
        return [{"domain": "CONTOSO.LAB", "username": "labadmin", "password": PASSWORD, "exchange_admin": True}]

    def lab_ca_pem(self) -> bytes:
        return self.ca.pair[0]

    def listener_certificate(self, server: str) -> tuple[bytes, bytes]:
        return self._get(server).listener.pair

    def served_certificate(self, server: str, endpoint: str) -> tuple[bytes, bytes] | None:
        issued = self._get(server).served.get(endpoint)
        return issued.pair if issued else None

    def acme_challenge(self, server: str, token: str) -> str | None:
        self._get(server)
        return self.acme_files.get((server, token))

    def bind(self, server: str, endpoint: str, issued: Issued | None) -> None:
        """Test helper: bind another certificate (or none) to an endpoint."""
        self._get(server).served[endpoint] = issued

    def run_module(
        self,
        server: str,
        module: str,
        args: dict[str, Any],
        *,
        check_mode: bool = False,
        become: bool = False,
        remote_user: str | None = None,
    ) -> dict[str, Any]:
        self._get(server)
        if module != BATCH:
            raise UnknownModule(module)
        fault = self.take_fault(server, "*")
        if fault and fault.latency:
            threading.Event().wait(fault.latency)
        if fault and fault.drop:
            raise DroppedConnection(server)
        call = {"server": server, "args": args, "check_mode": check_mode, "become": become, "remote_user": remote_user}
        self.calls.append(call)
        if fault and fault.error:
            return {"changed": False, "failed": True, "msg": fault.error}
        return {"changed": False, "call": call, "diff": {"before": "", "after": ""}}

    def take_fault(self, server: str, operation: str) -> Fault | None:
        with self.lock:
            return self._faults.take(server, operation)

    def set_fault(
        self,
        server: str,
        operation: str,
        *,
        error: str | None = None,
        latency: float | None = None,
        drop: bool = False,
        times: int | None = None,
        after: int = 0,
    ) -> None:
        self._get(server)
        with self.lock:
            self._faults.set(Fault(server, operation, error, latency, drop, times, after))

    def clear_faults(self, server: str | None = None) -> None:
        with self.lock:
            self._faults.clear(server)

    def set_unreachable(self, server: str, unreachable: bool) -> None:
        self._get(server).unreachable = unreachable

    def is_unreachable(self, server: str) -> bool:
        return self._get(server).unreachable

    def set_rawdata_only(self, server: str, on: bool) -> None:
        self._get(server).rawdata_only = on

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        self.clock_seconds += seconds
        return {"advanced_seconds": seconds}

    def ca_decide(self, request_id: int, approve: bool) -> dict[str, Any]:
        if request_id != 1:
            raise LabError(f"no pending request {request_id}")
        return {"request_id": request_id, "status": "Issued" if approve else "Denied"}

    def dump(self) -> dict[str, Any]:
        return {
            "servers": {n: self.server_info(n) for n in self.servers},
            "clock_seconds": self.clock_seconds,
            "mutations": self.mutations,
        }

    def _get(self, server: str) -> FakeServer:
        try:
            return self.servers[server]
        except KeyError:
            raise LabError(f"unknown server {server!r}") from None
