# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_remove: remove a certificate only when nothing references it.

What points at a certificate is ``_references``' graph over ``_snapshot``'s read (the same facts
certificate_info reports). Every reference blocks the removal (DESIGN.md safety invariant 1) except:

- a service flag (SMTP, IMAP, POP) or a Receive connector / hybrid ``TlsCertificateName`` that another usable
  certificate of the server takes over (a *stand-in*: in My, with a private key, time-valid, holding the same
  service and covering every DNS name of this one, or matched by the same ``TlsCertificateName``). Exchange
  services are additive, so a renewed certificate's predecessor keeps SMTP forever; without this rule it could
  never be removed without ``force``. Time-valid means by the server's clock (``host.info`` UtcNow): Exchange
  picks the certificate it serves by its own time, so a controller clock that runs ahead or behind must not make
  an expired or not yet valid certificate look like a stand-in;
- a Send connector whose source transport servers do not include this server (Exchange does not block it).

``force`` overrides every reference except a cluster certificate's, which is never removed. A Send connector
that tags the certificate (``<I>issuer<S>subject``) and is sourced from this server blocks even with ``force``:
Exchange's Remove-ExchangeCertificate refuses it itself (exchange-facts.md "Remove"), so the task says so before
sending anything. A read that fails (IIS bindings, transport, Auth, connectors, hybrid, cluster, Exchange's own
certificate list) leaves its references unknown: the removal is refused unless forced.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ChangingAction
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    LocatedCertificate,
    is_cluster_certificate,
    normalize_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ledger_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, Step
from ansible_collections.exchange.pki.plugins.plugin_utils._references import (
    ConnectorMatch,
    Reference,
    build_references,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    LOCAL_SERVER,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import (
    READS,
    ServerSnapshot,
    collect_certificates,
    server_time,
)

#: What the server's clock decides here (named in the warning when it is unknown and the controller's is used).
CLOCK_JUDGES = "whether another certificate is valid to take over a service"

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        **exchange_session_argspec(),
        **ledger_argspec(),
        "thumbprint": {"type": "str", "required": True},
        "force": {"type": "bool", "default": False},
    },
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)

#: Service flags another certificate can take over (IIS is its binding; other flags always block).
SHARED_SERVICES = frozenset({"SMTP", "IMAP", "POP"})
#: The reads that tell what references a certificate, and what is unknown when one failed.
REFERENCE_READS = {
    "exchange_certificates": "Exchange services",
    "iis_bindings": "IIS bindings",
    "transport_services": "the internal transport certificate",
    "auth_config": "the Auth certificates",
    "send_connectors": "Send connector TlsCertificateName",
    "receive_connectors": "Receive connector TlsCertificateName",
    "hybrid": "the hybrid TlsCertificateName",
    "cluster": "the cluster",
}
READ_NAMES = {read.id: read.name for read in READS}


def parse_thumbprint(text: str) -> str:
    try:
        return normalize_thumbprint(text)
    except ValueError as error:
        raise AnsibleActionFail(f"thumbprint: {error}") from None


@dataclasses.dataclass(frozen=True)
class Found:
    """One reference to the certificate and whether it blocks the removal."""

    reference: Reference
    blocking: bool
    stand_in: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.reference.kind, "name": self.reference.name, "blocking": self.blocking,
                "stand_in": self.stand_in, "note": self.note}

    def describe(self) -> str:
        text = f"{self.reference.kind} '{self.reference.name}'"
        return f"{text} ({self.note})" if self.note else text


def usable(certificate: LocatedCertificate, now: datetime.datetime) -> bool:
    """Whether a certificate can serve TLS at ``now``: in My, not a request, a private key, inside its validity."""
    return (certificate.in_my_store and not certificate.is_pending_request
            and certificate.has_private_key is not False
            and not certificate.facts.is_expired(now) and not certificate.facts.is_not_yet_valid(now))


def service_stand_in(certificate: LocatedCertificate, service: str,
                     certificates: Mapping[str, LocatedCertificate], now: datetime.datetime) -> str | None:
    """Another usable certificate holding ``service`` that covers every DNS name of ``certificate``."""
    names = certificate.facts.dns_names
    if names is None:
        return None
    for other in certificates.values():
        if other.thumbprint == certificate.thumbprint or service not in other.services or not usable(other, now):
            continue
        if all(other.facts.covers(name) for name in names):
            return other.thumbprint
    return None


def tag_stand_in(certificate: LocatedCertificate, match: ConnectorMatch,
                 certificates: Mapping[str, LocatedCertificate], now: datetime.datetime) -> str | None:
    """Another usable certificate the same TlsCertificateName names (a renewal keeps issuer and subject)."""
    return next((thumbprint for thumbprint in match.matched_thumbprints
                 if thumbprint != certificate.thumbprint and thumbprint in certificates
                 and usable(certificates[thumbprint], now)), None)


_CONNECTOR_KINDS = {"send_connector": "send", "receive_connector": "receive", "hybrid": "hybrid"}


def judge(reference: Reference, certificate: LocatedCertificate, certificates: Mapping[str, LocatedCertificate],
          connectors: tuple[ConnectorMatch, ...], now: datetime.datetime) -> Found:
    """Whether one reference blocks removing ``certificate``; ``now`` is the server's time (a stand-in's validity)."""
    if reference.kind == "exchange_service" and reference.name.upper() in SHARED_SERVICES:
        stand_in = service_stand_in(certificate, reference.name.upper(), certificates, now)
        if stand_in is not None:
            return Found(reference, False, stand_in, f"{stand_in} also holds {reference.name} and covers its names")
        return Found(reference, True, note="no other valid certificate with this service covers its names")
    if reference.kind in _CONNECTOR_KINDS:
        match = next((c for c in connectors if c.kind == _CONNECTOR_KINDS[reference.kind]
                      and c.name == reference.name and certificate.thumbprint in c.matched_thumbprints), None)
        if match is not None and not match.applies_here:
            return Found(reference, False, note="the connector is not used by this server")
        if reference.kind == "send_connector":
            return Found(reference, True, note="Exchange refuses to remove a certificate a Send connector of this "
                                               "server names, whatever else matches")
        stand_in = tag_stand_in(certificate, match, certificates, now) if match is not None else None
        if stand_in is not None:
            return Found(reference, False, stand_in, f"{stand_in} matches the same TlsCertificateName")
        return Found(reference, True)
    return Found(reference, True)


class ActionModule(ChangingAction):
    """exchange.pki.certificate_remove: remove one certificate, after proving nothing needs it."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def read(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> ServerSnapshot:
        parse_thumbprint(args["thumbprint"])  # a bad thumbprint fails before the host is contacted
        return super().read(args, task_vars)

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        thumbprint = parse_thumbprint(args["thumbprint"])
        force = bool(args["force"])
        server = snapshot.server_name or "the server"
        collected = collect_certificates(snapshot)
        certificate = collected.parsed.get(thumbprint)
        if certificate is None and thumbprint in collected.unreadable:
            return self._unreadable(thumbprint, collected.unreadable[thumbprint], snapshot, force, server)
        if certificate is None:
            absent = {"thumbprint": thumbprint, "present": False}
            return Plan("remove", before=absent, after=absent,
                        result={"thumbprint": thumbprint, "removed": False, "references": []})

        warnings: list[str] = []
        now = server_time(snapshot, server, warnings, CLOCK_JUDGES)
        graph = build_references(snapshot, collected.parsed)
        found = [judge(reference, certificate, collected.parsed, graph.connectors, now)
                 for reference in graph.references_of(thumbprint)]
        references = [item.as_dict() for item in found]
        if is_cluster_certificate(certificate) or any(item.reference.kind == "cluster" for item in found):
            raise ExchangePkiError(
                f"{thumbprint} on {server} is a failover-cluster certificate ({certificate.facts.subject}, store "
                f"{certificate.store}); the cluster manages it and it is never removed, not even with force "
                "(exchange-facts: CLIUSR). Nothing was changed."
            )
        blocking = [item for item in found if item.blocking]
        unknown = [f"{what} ({READ_NAMES[read]}: {snapshot.unavailable.get(READ_NAMES[read])})"
                   for read, what in REFERENCE_READS.items() if not snapshot.has(read)]
        if snapshot.has("exchange_certificates") and (certificate.exchange is None
                                                      or certificate.exchange.thumbprint is None):
            unknown.append("Exchange services (Get-ExchangeCertificate did not describe it, or returned only RawData)")
        if (blocking or unknown) and not force:
            lines = [item.describe() for item in blocking] + [f"unknown: {text}" for text in unknown]
            raise ExchangePkiError(
                f"refusing to remove {thumbprint} ({certificate.facts.subject}) from {server}: "
                f"{len(lines)} reference(s) keep it: " + "; ".join(lines) + ". Move each one to another "
                "certificate first (exchange.pki.certificate_services, Set-SendConnector/Set-ReceiveConnector "
                "TlsCertificateName, exchange.pki.auth_certificate), or set force: true. Nothing was changed."
            )
        tagged = [item for item in blocking if item.reference.kind == "send_connector"]
        if tagged:
            raise ExchangePkiError(
                f"{thumbprint} on {server} is named by the TlsCertificateName of Send connector(s) "
                f"{', '.join(item.reference.name for item in tagged)}, and Exchange's Remove-ExchangeCertificate "
                "refuses such a certificate even when forced (exchange-facts: Remove). Point the connector's "
                "TlsCertificateName elsewhere (or clear it) first. Nothing was changed."
            )
        if force:
            warnings.extend(f"force: removing {thumbprint} although {item.describe()} references it"
                            for item in blocking)
            warnings.extend(f"force: removing {thumbprint} although {text} could not be read" for text in unknown)
        if "wmsvc" in graph.roles_of(thumbprint):
            warnings.append(f"{thumbprint} is the WMSvc certificate of {server}; the IIS Web Management Service "
                            "(remote IIS Manager) needs a certificate bound to its port")
        before = {"thumbprint": thumbprint, "present": True, "store": certificate.store,
                  "subject": certificate.facts.subject, "references": references}
        after = {"thumbprint": thumbprint, "present": False}
        step = Step("remove", "Remove-ExchangeCertificate", {"Server": LOCAL_SERVER, "Thumbprint": thumbprint},
                    f"{server}: {thumbprint} ({certificate.facts.subject}, store {certificate.store}) "
                    + ("is referenced by nothing that needs it" if not blocking and not unknown
                       else "is removed by force"))
        return Plan("remove", (step,), before=before, after=after,
                    result={"thumbprint": thumbprint, "removed": True, "references": references},
                    warnings=tuple(warnings))

    @staticmethod
    def _unreadable(thumbprint: str, unreadable: Any, snapshot: ServerSnapshot, force: bool, server: str) -> Plan:
        """A certificate that cannot be parsed: its name references cannot be checked; only force removes it."""
        if unreadable.store.casefold() not in {"my", "request"}:
            raise ExchangePkiError(
                f"{thumbprint} on {server} is in store {unreadable.store} (found by the cluster certificate search) "
                "and cannot be parsed; it is never removed. Nothing was changed."
            )
        if not force:
            raise ExchangePkiError(
                f"refusing to remove {thumbprint} from {server}: it cannot be parsed ({unreadable.reason}), so what "
                "references it cannot be checked. Set force: true to remove it anyway. Nothing was changed."
            )
        before = {"thumbprint": thumbprint, "present": True, "store": unreadable.store, "subject": None,
                  "references": []}
        step = Step("remove", "Remove-ExchangeCertificate", {"Server": LOCAL_SERVER, "Thumbprint": thumbprint},
                    f"{server}: {thumbprint} cannot be parsed; removed by force")
        return Plan("remove", (step,), before=before, after={"thumbprint": thumbprint, "present": False},
                    result={"thumbprint": thumbprint, "removed": True, "references": []},
                    warnings=(f"force: removing {thumbprint}, whose references could not be checked",))
