# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Fleet: the lab's Exchange organisation behind one lock, as tests/lab/ARCHITECTURE.md specifies."""

from __future__ import annotations

import pathlib
import re
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives import serialization

from .. import pki
from . import scenario as scenario_module
from . import views
from .batch import MODULE, BatchRun
from .build import build
from .certificates import MY, Material, StoredCertificate
from .clock import iso
from .errors import LabError, UnknownModule
from .faults import Fault, FaultTable
from .organization import BACK_END, DEFAULT_WEB_SITE, Organization, Server

ENDPOINT_SITES = {"https": DEFAULT_WEB_SITE, "back_end": BACK_END}
#: The mail protocol endpoints and the Exchange service (and Get-ImapSettings/Get-PopSettings) behind each.
PROTOCOL_ENDPOINTS = {"imap": "IMAP", "pop": "POP"}


class Fleet:
    """A simulated Exchange organisation; every public method is thread-safe."""

    def __init__(self, org: Organization) -> None:
        self.lock = threading.RLock()
        self._org = org
        self._faults = FaultTable()
        self._unreachable: set[str] = set()
        self._listeners: dict[str, tuple[bytes, bytes]] = {}

    @classmethod
    def from_scenario(cls, scenario: str | pathlib.Path | Mapping[str, Any], *, now: datetime | None = None) -> Fleet:
        """Build from a scenario name ("dag" = tests/lab/scenarios/dag.yml), a path or a mapping."""
        start = now or datetime.now(timezone.utc)
        return cls(build(scenario_module.load(scenario), start))

    # -- inventory -----------------------------------------------------------------------------
    def server_names(self) -> list[str]:
        with self.lock:
            return list(self._org.servers)

    def server_info(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self._server(name).info()

    def groups(self) -> dict[str, list[str]]:
        with self.lock:
            groups: dict[str, list[str]] = {"exchange": list(self._org.servers)}
            for dag in self._org.dags.values():
                groups[f"dag_{_group_name(dag.name)}"] = list(dag.members)
            for server in self._org.servers.values():
                groups.setdefault(f"site_{_group_name(server.site)}", []).append(server.name)
            return groups

    def accounts(self) -> list[dict[str, Any]]:
        """Credentials for the transport's authentication (the one place passwords leave the model)."""
        with self.lock:
            return [
                {
                    "domain": account.domain,
                    "username": account.username,
                    "password": account.password,
                    "exchange_admin": account.exchange_admin,
                }
                for account in self._org.accounts
            ]

    # -- TLS material for the daemon's listeners ---------------------------------------------------------
    def lab_ca_pem(self) -> bytes:
        with self.lock:
            return b"".join(
                anchor.public_bytes(serialization.Encoding.PEM) for anchor in self._org.authorities.trust_anchors()
            )

    def listener_certificate(self, server: str) -> tuple[bytes, bytes]:
        """The WinRM HTTPS listener's certificate (lab CA, CN=<fqdn>); kept outside the modelled stores.

        It also names 127.0.0.1, the address the inventory connects to, so clients can validate it.
        """
        with self.lock:
            host = self._server(server)
            if host.name not in self._listeners:
                spec = pki.CertificateSpec(
                    f"CN={host.fqdn}", dns_names=(host.fqdn, host.name, "localhost", "127.0.0.1"), ekus=("server_auth",)
                )
                issued = pki.make_certificate(
                    spec,
                    now=self._org.now(),
                    authorities=self._org.authorities,
                    key=pki.generate_key(cache_key=f"listener-{host.name}"),
                )
                self._listeners[host.name] = (issued.pem_chain(), issued.key_pem())
            return self._listeners[host.name]

    def served_certificate(self, server: str, endpoint: str) -> tuple[bytes, bytes] | None:
        """What Exchange would serve now on ``endpoint`` ("https", "back_end", "smtp", "imap", "pop"); None if
        nothing can be."""
        with self.lock:
            host = self._server(server)
            if endpoint in ENDPOINT_SITES:
                binding = host.site_binding(ENDPOINT_SITES[endpoint])
                stored = host.find(binding.certificate_hash, binding.certificate_store) if binding else None
            elif endpoint == "smtp":
                stored = self._smtp_certificate(host)
            elif endpoint in PROTOCOL_ENDPOINTS:
                stored = self._protocol_certificate(host, PROTOCOL_ENDPOINTS[endpoint])
            else:
                raise LabError(f"unknown endpoint {endpoint!r} (https, back_end, smtp, imap, pop)")
            if stored is None or stored.private_key is None:
                return None
            return stored.material.chain_pem(), stored.material.with_key(stored.private_key).key_pem()

    def acme_challenge(self, server: str, token: str) -> str | None:
        """The key authorization IIS would serve at /.well-known/acme-challenge/<token> now, None if no such file."""
        with self.lock:
            return self._server(server).acme_challenges.get(token)

    def _protocol_certificate(self, server: Server, protocol: str) -> StoredCertificate | None:
        """IMAP STARTTLS / POP3 STLS (EF "Enable-ExchangeCertificate": IMAP/POP with wildcard certificates: set
        X509CertificateName via Set-ImapSettings/Set-PopSettings): the newest valid certificate with a key whose
        names cover X509CertificateName when it is set, else the certificate enabled for the service (IMAP and POP
        are single-instance services: Enable-ExchangeCertificate moves them)."""
        name = server.x509_certificate_names[protocol]
        if name:
            now = self._org.now()
            named = [
                stored
                for stored in server.stores[MY].values()
                if stored.has_private_key and stored.material.time_valid(now) and stored.material.matches_name(name)
            ]
            if named:
                return max(named, key=lambda stored: stored.material.not_before)
        enabled = [stored for stored in server.stores[MY].values() if protocol in stored.services]
        if not enabled:
            return None
        # A scenario may enable the service on several certificates (Exchange's self-signed default has IMAP and
        # POP): a CA-issued one before a self-signed one, then the newest (assumption, as for SMTP).
        return max(enabled, key=lambda stored: (not stored.material.is_self_signed, stored.material.not_before))

    def _smtp_certificate(self, server: Server) -> StoredCertificate | None:
        """STARTTLS on the Default Frontend connector (assumption, README "SMTP certificate selection"):
        its TlsCertificateName if set, else the newest valid SMTP-enabled certificate naming the server's
        FQDN, else the internal transport certificate."""
        now = self._org.now()
        usable = [
            stored
            for stored in server.stores[MY].values()
            if stored.has_private_key and stored.material.time_valid(now)
        ]
        frontend = next(
            (connector for connector in server.receive_connectors if connector.name.startswith("Default Frontend")),
            None,
        )
        if frontend is not None and frontend.tls_certificate_name:
            named = [
                stored
                for stored in usable
                if f"<I>{stored.material.issuer}<S>{stored.material.subject}".casefold()
                == frontend.tls_certificate_name.casefold()
            ]
            if named:
                return max(named, key=lambda stored: stored.material.not_before)
        smtp = [stored for stored in usable if "SMTP" in stored.services and stored.material.matches_name(server.fqdn)]
        if smtp:
            return max(smtp, key=lambda stored: stored.material.not_before)
        return server.find(server.internal_transport)

    # -- the remote module ------------------------------------------------------------------------
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
        if module != MODULE:
            raise UnknownModule(module)
        with self.lock:
            host = self._server(server)
        return BatchRun(self._org, host, self._faults, self.lock).run(
            args, check_mode=check_mode, become=become, remote_user=remote_user
        )

    # -- faults and modes ---------------------------------------------------------------------------
    def take_fault(self, server: str, operation: str) -> Fault | None:
        with self.lock:
            return self._faults.take(self._server(server).name, operation)

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
        with self.lock:
            self._faults.set(Fault(self._server(server).name, operation, error, latency, drop, times, after))

    def clear_faults(self, server: str | None = None) -> None:
        with self.lock:
            self._faults.clear(self._server(server).name if server else None)

    def set_unreachable(self, server: str, unreachable: bool) -> None:
        with self.lock:
            host = self._server(server)
            (self._unreachable.add if unreachable else self._unreachable.discard)(host.name)
            host.reachable = not unreachable  # -Server calls from the other hosts fail too

    def is_unreachable(self, server: str) -> bool:
        with self.lock:
            return self._server(server).name in self._unreachable

    def set_rawdata_only(self, server: str, on: bool) -> None:
        """EF "Get-ExchangeCertificate": objects with ONLY RawData (deserialization failure)."""
        with self.lock:
            self._server(server).rawdata_only = on

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the lab clock, running every AuthAdmin servicelet tick that falls due on the way."""
        if seconds < 0:
            raise LabError("the lab clock only moves forward")
        with self.lock:
            before = len(self._org.mutations)
            runs = self._org.run_due_servicelets(self._org.now() + timedelta(seconds=seconds))
            published = [entry for entry in self._org.mutations[before:] if entry["operation"] == "AuthAdmin.publish"]
            return {"now": iso(self._org.now()), "servicelet_runs": runs, "published": published}

    def ca_decide(self, request_id: int, approve: bool) -> dict[str, Any]:
        """An AD CS administrator issues or denies a pending request."""
        with self.lock:
            enrolment = self._org.enrolment
            try:
                result = enrolment.approve(request_id, now=self._org.now()) if approve else enrolment.deny(request_id)
            except pki.PkiError as error:
                raise LabError(str(error)) from None
            self._org.record(None, "ca.approve" if approve else "ca.deny", request_id=request_id, status=result.status)
            return {
                "request_id": result.request_id,
                "status": result.status,
                "disposition": result.disposition,
                "thumbprint": pki.thumbprint(result.certificate) if result.certificate is not None else None,
            }

    # -- state ----------------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        """The whole state, JSON-serialisable, without keys or passwords."""
        with self.lock:
            org = self._org
            return {
                "clock": {"start": iso(org.clock.start), "now": iso(org.now())},
                "organization": {
                    "name": org.name,
                    "domain": org.domain,
                    "auth_config": org.auth.project(),
                    "send_connectors": [views.send_connector(org, connector) for connector in org.send_connectors],
                    "hybrid": views.hybrid_configuration(org, org.hybrid) if org.hybrid else None,
                    "dags": [views.database_availability_group(org, dag, False) for dag in org.dags.values()],
                    "ca": org.enrolment.state(),
                    "accounts": [
                        {"username": account.username, "exchange_admin": account.exchange_admin}
                        for account in org.accounts
                    ],
                },
                "servers": {server.name: self._dump_server(server) for server in org.servers.values()},
                "mutations": [dict(entry) for entry in org.mutations],
            }

    def _dump_server(self, server: Server) -> dict[str, Any]:
        org = self._org
        return {
            **server.info(),
            "certificates": {
                store: [_dump_certificate(org, server, stored) for stored in certificates.values()]
                for store, certificates in server.stores.items()
            },
            "internal_transport_thumbprint": server.internal_transport,
            "iis_bindings": [
                {
                    "site": binding.site,
                    "binding_information": binding.binding_information,
                    "certificate_hash": binding.certificate_hash,
                    "certificate_store": binding.certificate_store,
                }
                for binding in server.bindings
            ],
            "require_ssl": server.require_ssl,
            "receive_connectors": [views.receive_connector(org, connector) for connector in server.receive_connectors],
            "services_restarted": list(server.service_restarts),
            "app_pool_recycles": list(server.app_pool_recycles),
            "iis_resets": list(server.iis_resets),
            "acme_challenges": dict(server.acme_challenges),
            "owa_auth_certificate": server.owa_auth_certificate,
            "application_log": list(server.application_log),
            "next_servicelet_tick": iso(server.next_servicelet_tick),
            "faults": self._faults.for_server(server.name),
            "unreachable": server.name in self._unreachable,
            "rawdata_only": server.rawdata_only,
            "exchange_session": server.exchange_session,
        }

    def _server(self, name: str) -> Server:
        server = self._org.server(name)
        if server is None:
            raise LabError(f"unknown server {name!r} (known: {', '.join(self._org.servers)})")
        return server


def _dump_certificate(org: Organization, server: Server, stored: StoredCertificate) -> dict[str, Any]:
    material: Material = stored.material
    return {
        "thumbprint": material.thumbprint,
        "subject": material.subject,
        "issuer": material.issuer,
        "not_before": iso(material.not_before),
        "not_after": iso(material.not_after),
        "services": server.services_of(stored),
        "status": views.status(org, server, stored),
        "key_provider": stored.key_info.provider if stored.has_private_key else None,
        "exportable": stored.has_private_key and stored.key_info.exportable,
        "friendly_name": stored.friendly_name,
        "has_private_key": stored.has_private_key,
    }


def _group_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())
