# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The result of certificate_info for one server: the facts of docs/facts.md, shaped from the snapshot.

Reading is ``_snapshot``'s job and deciding ``_findings``'; this file only puts what they produced into the
documented shape (a unit test keeps the shape and docs/facts.md equal).
"""

from __future__ import annotations

import collections
import datetime
from types import MappingProxyType
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import LocatedCertificate
from ansible_collections.exchange.pki.plugins.plugin_utils._findings import Context, evaluate
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import SEVERITIES, SEVERITY_RANK, Finding, Policy
from ansible_collections.exchange.pki.plugins.plugin_utils._references import build_references
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot, collect_certificates
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime
from ansible_collections.exchange.pki.plugins.plugin_utils._values import ExchangeVersion

# The reads whose failure makes the connector facts unknown.
_CONNECTOR_READS = ("send_connectors", "receive_connectors", "hybrid")


def build_facts(snapshot: ServerSnapshot, *, policy: Policy, now: datetime.datetime) -> dict[str, Any]:
    """The docs/facts.md dictionary for one server. ``now`` is the controller time (timezone-aware)."""
    collected = collect_certificates(snapshot)
    certificates = collected.parsed
    graph = build_references(snapshot, certificates)
    ctx = Context(snapshot, MappingProxyType(certificates), graph, policy, now, collected.unreadable)
    findings = evaluate(ctx)
    return {
        "changed": False,
        "collected_at": format_utc_datetime(now),
        "server": _server_facts(snapshot),
        "certificates": [_certificate_facts(ctx, certificate) for certificate in certificates.values()],
        "unparseable_certificates": [unreadable.as_dict() for unreadable in collected.unreadable.values()],
        "auth": _auth_facts(ctx),
        "iis_bindings": _iis_binding_facts(ctx),
        "connectors": [connector.as_dict() for connector in graph.connectors]
        if all(snapshot.has(read_id) for read_id in _CONNECTOR_READS) else None,
        "internal_transport_thumbprint": _internal_transport(snapshot),
        "cluster": _cluster_facts(snapshot),
        "findings": [finding.as_dict() for finding in findings],
        "summary": _summary(ctx, findings),
        "unavailable": dict(sorted(snapshot.unavailable.items())),
    }


def _server_facts(snapshot: ServerSnapshot) -> dict[str, Any]:
    server, host = snapshot.exchange_server, snapshot.host_info
    version: ExchangeVersion | None = (host.exchange_version if host else None) or (server.version if server else None)
    dag = snapshot.dag
    return {
        "name": snapshot.server_name,
        "fqdn": (server.fqdn if server else None) or (host.fqdn if host else None),
        "version": str(version) if version else None,
        "product": version.product_name if version else None,
        "roles": list(server.server_role) if server else None,
        "site": server.site if server else None,
        "dag": dag.name if dag else None,
    }


def _certificate_facts(ctx: Context, certificate: LocatedCertificate) -> dict[str, Any]:
    facts = certificate.facts
    return {
        "thumbprint": facts.thumbprint,
        "subject": facts.subject,
        "issuer": facts.issuer,
        "serial_number": facts.serial_number,
        "not_before": format_utc_datetime(facts.not_before),
        "not_after": format_utc_datetime(facts.not_after),
        "days_remaining": facts.days_remaining(ctx.now),
        "lifetime_days": facts.lifetime_days(),
        "dns_names": _list_or_none(facts.dns_names),
        "key_type": facts.key_type,
        "key_size": facts.key_size,
        "signature_hash": facts.signature_hash,
        "ekus": _list_or_none(facts.ekus),
        "is_self_signed": facts.is_self_signed,
        "has_private_key": certificate.has_private_key,
        "private_key_exportable": certificate.private_key_exportable,
        "key_provider": certificate.key_provider,
        "network_service_can_read_key": certificate.network_service_can_read_key,
        "store": certificate.store,
        "friendly_name": certificate.friendly_name,
        "status": certificate.status,
        "services": list(certificate.services),
        "roles": sorted(ctx.roles(certificate)),
        "references": [reference.as_dict() for reference in ctx.graph.references_of(certificate.thumbprint)],
        "parse_problems": list(facts.problems),
    }


def _list_or_none(values: tuple[str, ...] | None) -> list[str] | None:
    """A list, or None when the part of the certificate it comes from could not be read."""
    return None if values is None else list(values)


def _auth_facts(ctx: Context) -> dict[str, Any] | None:
    auth = ctx.snapshot.auth_config
    if auth is None or not ctx.snapshot.has("auth_config"):
        return None
    return {
        "current_thumbprint": auth.current_certificate_thumbprint,
        "next_thumbprint": auth.next_certificate_thumbprint,
        "previous_thumbprint": auth.previous_certificate_thumbprint,
        "next_effective_date": format_utc_datetime(auth.next_certificate_effective_date)
        if auth.next_certificate_effective_date else None,
        "current_present_locally": ctx.local(auth.current_certificate_thumbprint) is not None,
    }


def _iis_binding_facts(ctx: Context) -> list[dict[str, Any]] | None:
    if not ctx.snapshot.has("iis_bindings"):
        return None
    return [
        {
            "site": binding.site,
            "binding": binding.binding_information,
            "certificate_hash": binding.certificate_hash,
            "certificate_store": binding.certificate_store_name,
            "certificate_found": ctx.local(binding.certificate_hash) is not None,
        }
        for binding in ctx.snapshot.iis_bindings
    ]


def _internal_transport(snapshot: ServerSnapshot) -> str | None:
    service = snapshot.local_transport_service if snapshot.has("transport_services") else None
    return service.internal_transport_certificate_thumbprint if service else None


def _cluster_facts(snapshot: ServerSnapshot) -> dict[str, Any] | None:
    cluster = snapshot.cluster
    if cluster is None or not snapshot.has("cluster"):
        return None
    account = cluster.cliusr_account
    return {
        "name": cluster.name,
        "nodes": [{"name": node.name, "state": node.state} for node in cluster.nodes],
        "cliusr_account": None if account is None else {
            "exists": account.exists,
            "enabled": account.enabled,
            "password_last_set": format_utc_datetime(account.password_last_set) if account.password_last_set else None,
        },
    }


def _summary(ctx: Context, findings: list[Finding]) -> dict[str, Any]:
    counts = collections.Counter(finding.severity for finding in findings)
    dated = [c for c in ctx.certificates.values() if not c.is_pending_request]
    earliest = min(dated, key=lambda c: (c.facts.not_after, c.thumbprint), default=None)
    return {
        "certificates": len(ctx.certificates),
        "findings": {severity: counts.get(severity, 0) for severity in SEVERITIES},
        "worst_severity": min(counts, key=SEVERITY_RANK.__getitem__, default=None),
        "earliest_expiry": format_utc_datetime(earliest.facts.not_after) if earliest else None,
        "earliest_expiry_thumbprint": earliest.thumbprint if earliest else None,
    }
