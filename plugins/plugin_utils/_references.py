# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The references graph: what on a server points at which certificate, and the roles that follow.

Kinds and roles are those of docs/facts.md. Connector and hybrid ``TlsCertificateName`` values
(``<I>issuer<S>subject``) are matched the way Exchange compares them (exchange-facts.md "Remove":
a tag blocks removal when issuer and subject match): names are parsed as X.500, compared RDN by RDN
case-insensitively, in either order (Windows writes the most specific RDN first, X.500 the least).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    DistinguishedName,
    LocatedCertificate,
    is_cluster_certificate,
    name_orders,
    parse_distinguished_name,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._values import IisBinding

if TYPE_CHECKING:
    from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot

ReferenceKind = Literal[
    "exchange_service", "iis_binding", "internal_transport", "auth_current", "auth_next", "auth_previous",
    "send_connector", "receive_connector", "hybrid", "cluster",
]
ConnectorKind = Literal["send", "receive", "hybrid"]

DEFAULT_WEB_SITE = "Default Web Site"
BACK_END_SITE = "Exchange Back End"
FRONT_END_PORT = 443
BACK_END_PORT = 444

# Role groupings: the one place that says which roles belong together (docs/facts.md lists every role).
#: The roles of the Auth certificates Get-AuthConfig names; they share one subject by design.
AUTH_ROLES = frozenset({"auth_current", "auth_next", "auth_previous"})
#: Roles clients reach through a load balancer: every member of a site or DAG must serve the same certificate.
CLIENT_FACING_ROLES = frozenset({"iis", "smtp"})
#: Roles every member of a DAG should hold with the same certificate (one namespace, one Auth configuration).
DAG_SHARED_ROLES = frozenset({"iis", "smtp", "imap", "pop", "connector", "hybrid", "auth_current", "auth_next"})
#: Each server's own certificates by design (Exchange's self-signed certificate, which also holds the Back End
#: binding and so shows IIS, and the internal transport certificate): never a difference between DAG members.
PER_SERVER_ROLES = frozenset({"exchange_default", "internal_transport"})
#: Every role of docs/facts.md, in the order reports list them.
ROLE_ORDER = (
    "iis", "smtp", "imap", "pop", "connector", "hybrid", "auth_current", "auth_next", "auth_previous",
    "back_end", "internal_transport", "cluster", "exchange_default", "wmsvc", "pending_request",
)

# Roles from a reference kind; exchange_service and iis_binding roles depend on the name.
_KIND_ROLES: Mapping[str, str] = MappingProxyType({
    "internal_transport": "internal_transport",
    "auth_current": "auth_current",
    "auth_next": "auth_next",
    "auth_previous": "auth_previous",
    "send_connector": "connector",
    "receive_connector": "connector",
    "hybrid": "hybrid",
    "cluster": "cluster",
})
_CONNECTOR_REFERENCES: Mapping[str, ReferenceKind] = MappingProxyType({
    "send": "send_connector", "receive": "receive_connector", "hybrid": "hybrid",
})
_SERVICE_ROLES: Mapping[str, str] = MappingProxyType({"IIS": "iis", "SMTP": "smtp", "IMAP": "imap", "POP": "pop"})
_TLS_CERTIFICATE_NAME = re.compile(r"^\s*<I>(?P<issuer>.+?)<S>(?P<subject>.+?)\s*$", re.IGNORECASE | re.DOTALL)


@dataclasses.dataclass(frozen=True, order=True)
class Reference:
    """One thing that points at a certificate."""

    kind: ReferenceKind
    name: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name}


@dataclasses.dataclass(frozen=True)
class ConnectorMatch:
    """A connector's TlsCertificateName and the local certificates it names.

    ``applies_here``: the connector is used by this server (a Send connector lists it as a source
    transport server, a Receive connector belongs to it, the hybrid configuration names it as a sending
    or receiving transport server or names none). ``syntax_error`` explains a value that is not in the
    ``<I>issuer<S>subject`` form; such a value matches nothing.
    """

    kind: ConnectorKind
    name: str
    tls_certificate_name: str
    matched_thumbprints: tuple[str, ...]
    applies_here: bool
    syntax_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "tls_certificate_name": self.tls_certificate_name,
            "matched_thumbprints": list(self.matched_thumbprints),
        }


@dataclasses.dataclass(frozen=True)
class ReferenceGraph:
    """References and roles per thumbprint, plus every connector's match."""

    references: Mapping[str, tuple[Reference, ...]]
    roles: Mapping[str, frozenset[str]]
    connectors: tuple[ConnectorMatch, ...]

    def references_of(self, thumbprint: str) -> tuple[Reference, ...]:
        return self.references.get(thumbprint, ())

    def roles_of(self, thumbprint: str) -> frozenset[str]:
        return self.roles.get(thumbprint, frozenset())


class _NameIndex:
    """Usable certificates (My, not pending) by (issuer, subject), for O(1) TlsCertificateName lookups."""

    def __init__(self, certificates: Iterable[LocatedCertificate]) -> None:
        self._index: dict[tuple[DistinguishedName, DistinguishedName], list[str]] = collections.defaultdict(list)
        for certificate in certificates:
            if certificate.in_my_store and not certificate.is_pending_request:
                key = (certificate.facts.issuer_name, certificate.facts.subject_name)
                self._index[key].append(certificate.thumbprint)

    def lookup(self, issuer: DistinguishedName, subject: DistinguishedName) -> tuple[str, ...]:
        """Thumbprints whose issuer and subject equal the written names, each written in either RDN order."""
        found = set()
        for key in itertools.product(name_orders(issuer), name_orders(subject)):
            found.update(self._index.get(key, ()))
        return tuple(sorted(found))


def parse_tls_certificate_name(text: str) -> tuple[DistinguishedName, DistinguishedName]:
    """Parse ``<I>issuer<S>subject`` into (issuer, subject). Raises ValueError naming the problem."""
    match = _TLS_CERTIFICATE_NAME.match(text)
    if match is None:
        raise ValueError("expected the form <I>issuer<S>subject")
    try:
        return parse_distinguished_name(match.group("issuer")), parse_distinguished_name(match.group("subject"))
    except ValueError as error:
        raise ValueError(f"invalid X.500 name: {error}") from None


def binding_name(binding: IisBinding) -> str:
    """``Default Web Site *:443:`` as docs/facts.md names IIS binding references."""
    return f"{binding.site} {binding.binding_information}"


def binding_role(binding: IisBinding) -> str | None:
    """``iis`` for the Default Web Site on 443, ``back_end`` for Exchange Back End on 444."""
    site = binding.site.casefold()
    if site == DEFAULT_WEB_SITE.casefold() and binding.port == FRONT_END_PORT:
        return "iis"
    if site == BACK_END_SITE.casefold() and binding.port == BACK_END_PORT:
        return "back_end"
    return None


class _GraphBuilder:
    def __init__(self, certificates: Mapping[str, LocatedCertificate]) -> None:
        self._certificates = certificates
        self._references: dict[str, set[Reference]] = collections.defaultdict(set)
        self._roles: dict[str, set[str]] = collections.defaultdict(set)

    def add(self, thumbprint: str | None, kind: ReferenceKind, name: str, role: str | None = None) -> None:
        """Record a reference; one to a certificate that is not on the server is no reference to anything here."""
        if thumbprint is None or thumbprint not in self._certificates:
            return
        self._references[thumbprint].add(Reference(kind, name))
        role = role or _KIND_ROLES.get(kind)
        if role is not None:
            self._roles[thumbprint].add(role)

    def add_role(self, thumbprint: str, role: str) -> None:
        self._roles[thumbprint].add(role)

    def graph(self, connectors: tuple[ConnectorMatch, ...]) -> ReferenceGraph:
        return ReferenceGraph(
            references=MappingProxyType({t: tuple(sorted(refs)) for t, refs in self._references.items()}),
            roles=MappingProxyType({t: frozenset(roles) for t, roles in self._roles.items()}),
            connectors=connectors,
        )


def build_references(snapshot: ServerSnapshot, certificates: Mapping[str, LocatedCertificate]) -> ReferenceGraph:
    """Everything in ``snapshot`` that points at one of ``certificates`` (the server's, by thumbprint)."""
    builder = _GraphBuilder(certificates)
    server = snapshot.server_name
    for certificate in certificates.values():
        _add_intrinsic(builder, certificate, server, snapshot.cluster_name)
    for binding in snapshot.iis_bindings:
        role = binding_role(binding)
        builder.add(binding.certificate_hash, "iis_binding", binding_name(binding), role)
    local_transport = snapshot.local_transport_service
    if local_transport is not None:
        builder.add(local_transport.internal_transport_certificate_thumbprint, "internal_transport",
                    local_transport.name)
    if snapshot.auth_config is not None:
        auth = snapshot.auth_config
        builder.add(auth.current_certificate_thumbprint, "auth_current", "AuthConfig")
        builder.add(auth.next_certificate_thumbprint, "auth_next", "AuthConfig")
        builder.add(auth.previous_certificate_thumbprint, "auth_previous", "AuthConfig")
    connectors = _match_connectors(snapshot, _NameIndex(certificates.values()))
    for connector in connectors:
        for thumbprint in connector.matched_thumbprints:
            builder.add(thumbprint, _CONNECTOR_REFERENCES[connector.kind], connector.name)
    return builder.graph(connectors)


def _add_intrinsic(builder: _GraphBuilder, certificate: LocatedCertificate, server: str | None,
                   cluster_name: str | None) -> None:
    """Roles a certificate has by what it is: Exchange services, default certificates, cluster, pending."""
    thumbprint = certificate.thumbprint
    for service in certificate.services:
        builder.add(thumbprint, "exchange_service", service, _SERVICE_ROLES.get(service.upper()))
    if certificate.is_pending_request:
        builder.add_role(thumbprint, "pending_request")
    elif is_cluster_certificate(certificate):
        builder.add(thumbprint, "cluster", cluster_name or certificate.store)
    common_name = certificate.facts.common_name
    if common_name is None or not certificate.in_my_store:
        return
    if certificate.facts.is_self_signed and server is not None and common_name == server.casefold():
        builder.add_role(thumbprint, "exchange_default")
    if common_name.startswith("wmsvc-"):
        builder.add_role(thumbprint, "wmsvc")


def _match_connectors(snapshot: ServerSnapshot, index: _NameIndex) -> tuple[ConnectorMatch, ...]:
    server = (snapshot.server_name or "").casefold()
    matches = []
    for connector in snapshot.send_connectors:
        sources = {name.casefold() for name in connector.source_transport_servers}
        matches.append(_match("send", connector.name or connector.identity, connector.tls_certificate_name,
                              server in sources, index))
    for receive in snapshot.receive_connectors:
        applies = receive.server is None or receive.server.casefold() == server
        matches.append(_match("receive", receive.identity, receive.tls_certificate_name, applies, index))
    hybrid = snapshot.hybrid
    if hybrid is not None:
        transport_servers = {name.casefold()
                             for name in (*hybrid.sending_transport_servers, *hybrid.receiving_transport_servers)}
        applies = not transport_servers or server in transport_servers
        matches.append(_match("hybrid", hybrid.name or "Hybrid Configuration", hybrid.tls_certificate_name,
                              applies, index))
    return tuple(match for match in matches if match is not None)


def _match(kind: ConnectorKind, name: str, tls_certificate_name: str | None, applies_here: bool,
           index: _NameIndex) -> ConnectorMatch | None:
    if tls_certificate_name is None:
        return None
    try:
        issuer, subject = parse_tls_certificate_name(tls_certificate_name)
    except ValueError as error:
        return ConnectorMatch(kind, name, tls_certificate_name, (), applies_here, str(error))
    return ConnectorMatch(kind, name, tls_certificate_name, index.lookup(issuer, subject), applies_here)
