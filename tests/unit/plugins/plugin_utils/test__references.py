# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the references graph: every reference kind, roles, and TlsCertificateName matching."""

from __future__ import annotations

import dataclasses
import datetime
import functools
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import LocatedCertificate, parse_certificate
from ansible_collections.exchange.pki.plugins.plugin_utils._references import (
    Reference,
    ReferenceGraph,
    build_references,
    parse_tls_certificate_name,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    AuthConfig,
    ExchangeCertificateRecord,
    ExchangeServer,
    HybridConfiguration,
    IisBinding,
    ReceiveConnector,
    SendConnector,
    TransportService,
)
from tests.unit.clock import NOW

ISSUER = "CN=Contoso Issuing CA, O=Contoso, C=US"
RELAY = "CN=relay.contoso.lab, O=Contoso, C=US"


@functools.cache
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _windows_name(text: str) -> x509.Name:
    """``CN=a, O=b, C=c`` (Windows order, most specific first) as an x509.Name."""
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "C": NameOID.COUNTRY_NAME}
    pairs = [part.strip().split("=", 1) for part in text.split(",")]
    return x509.Name([x509.NameAttribute(oids[kind], value) for kind, value in reversed(pairs)])


def certificate(subject: str, *, issuer: str | None = None, store: str = "My", services: tuple[str, ...] = (),
                status: str | None = "Valid") -> LocatedCertificate:
    """A certificate signed by one fixed key: self-signed when ``issuer`` is None."""
    name = _windows_name(subject)
    der = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(_windows_name(issuer) if issuer else name)
        .public_key(_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .sign(_key(), hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    record = ExchangeCertificateRecord(raw_data=der, services=services, status=status) if store != "PKU2U" else None
    return LocatedCertificate(parse_certificate(der), store, exchange=record)


def graph_of(certificates: list[LocatedCertificate], **snapshot: Any) -> ReferenceGraph:
    snapshot.setdefault("exchange_server", ExchangeServer("EX1", "ex1.contoso.lab", None, None, ("Mailbox",),
                                                          "Site-A", None, None))
    by_thumbprint = {c.thumbprint: c for c in certificates}
    return build_references(ServerSnapshot(**snapshot), by_thumbprint)


def _binding(site: str, info: str, thumbprint: str | None) -> IisBinding:
    return IisBinding(site, "https", info, None, thumbprint, "My", 0)


def _send(tls_name: str | None, sources: tuple[str, ...] = ("EX1",)) -> SendConnector:
    return SendConnector("Partner", "Partner", True, None, True, tls_name, sources, ("SMTP:*;1",), False)


def _receive(tls_name: str | None, server: str = "EX1") -> ReceiveConnector:
    return ReceiveConnector(f"{server}\\Default Frontend {server}", f"Default Frontend {server}", server, True, None,
                            ("0.0.0.0:25",), "FrontendTransport", tls_name, ())


def _hybrid(tls_name: str, servers: tuple[str, ...] = ()) -> HybridConfiguration:
    return HybridConfiguration("Hybrid Configuration", tls_name, servers, (), ("contoso.lab",), ())


# --- references of each kind ----------------------------------------------------------------------


def test_exchange_services_give_roles_and_references() -> None:
    mail = certificate(RELAY, issuer=ISSUER, services=("IIS", "SMTP", "IMAP", "POP", "UM"))
    graph = graph_of([mail])
    assert graph.roles_of(mail.thumbprint) == {"iis", "smtp", "imap", "pop"}
    assert graph.references_of(mail.thumbprint) == tuple(
        Reference("exchange_service", name) for name in ("IIS", "IMAP", "POP", "SMTP", "UM"))


@pytest.mark.parametrize(
    ("site", "info", "role"),
    [
        ("Default Web Site", "*:443:", "iis"),
        ("default web site", "10.0.0.5:443:mail.contoso.lab", "iis"),
        ("Exchange Back End", "*:444:", "back_end"),
        ("Exchange Back End", "*:443:", None),
        ("Default Web Site", "*:8443:", None),
    ],
)
def test_iis_bindings(site: str, info: str, role: str | None) -> None:
    mail = certificate(RELAY, issuer=ISSUER)
    graph = graph_of([mail], iis_bindings=(_binding(site, info, mail.thumbprint),))
    assert graph.references_of(mail.thumbprint) == (Reference("iis_binding", f"{site} {info}"),)
    assert graph.roles_of(mail.thumbprint) == ({role} if role else set())


def test_internal_transport_uses_the_local_transport_service_only() -> None:
    default, other = certificate("CN=EX1"), certificate("CN=other")
    graph = graph_of([default, other], transport_services=(
        TransportService("EX2", None, other.thumbprint), TransportService("ex1", None, default.thumbprint)))
    assert graph.references_of(default.thumbprint) == (Reference("internal_transport", "ex1"),)
    assert "internal_transport" in graph.roles_of(default.thumbprint)
    assert graph.references_of(other.thumbprint) == ()


def test_auth_current_next_previous() -> None:
    current, following, previous = (certificate(f"CN=Auth {n}") for n in range(3))
    auth = AuthConfig(current.thumbprint, previous.thumbprint, following.thumbprint, NOW, None, None)
    graph = graph_of([current, following, previous], auth_config=auth)
    for located, kind in ((current, "auth_current"), (following, "auth_next"), (previous, "auth_previous")):
        assert graph.references_of(located.thumbprint) == (Reference(kind, "AuthConfig"),)  # type: ignore[arg-type]
        assert graph.roles_of(located.thumbprint) == {kind}


def test_a_reference_to_a_certificate_not_on_the_server_is_dropped() -> None:
    graph = graph_of([], iis_bindings=(_binding("Default Web Site", "*:443:", "AB" * 20),))
    assert graph.references == {} and graph.roles == {}


@pytest.mark.parametrize(
    ("subject", "issuer", "store", "roles"),
    [
        ("CN=EX1", None, "My", {"exchange_default"}),
        ("CN=ex1", None, "My", {"exchange_default"}),
        ("CN=EX1", ISSUER, "My", set()),  # CA-issued: not Exchange's own certificate
        ("CN=EX2", None, "My", set()),
        ("CN=WMSvc-SHA2-EX1", None, "My", {"wmsvc"}),
        ("CN=CLIUSR", None, "PKU2U", {"cluster"}),
        ("CN=node1", "CN=CSUSR", "PKU2U", {"cluster"}),
        ("CN=CLIUSR", None, "My", set()),  # cluster certificates live outside My
        ("CN=mail.contoso.lab", None, "REQUEST", {"pending_request"}),
    ],
)
def test_intrinsic_roles(subject: str, issuer: str | None, store: str, roles: set[str]) -> None:
    located = certificate(subject, issuer=issuer, store=store)
    assert graph_of([located]).roles_of(located.thumbprint) == roles


def test_cluster_reference_names_the_cluster_or_the_store() -> None:
    cliusr = certificate("CN=CLIUSR", store="PKU2U")
    assert graph_of([cliusr]).references_of(cliusr.thumbprint) == (Reference("cluster", "PKU2U"),)


def test_pending_request_status_alone_makes_a_pending_request() -> None:
    located = dataclasses.replace(certificate("CN=mail.contoso.lab", status="PendingRequest"), store="My")
    assert graph_of([located]).roles_of(located.thumbprint) == {"pending_request"}


# --- TlsCertificateName ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tls_name", "matches"),
    [
        (f"<I>{ISSUER}<S>{RELAY}", True),  # Windows: "CN=..., O=..., C=US"
        ("<I>CN=Contoso Issuing CA,O=Contoso,C=US<S>CN=relay.contoso.lab,O=Contoso,C=US", True),  # RFC 4514
        ("<I>C=US, O=Contoso, CN=Contoso Issuing CA<S>C=US, O=Contoso, CN=relay.contoso.lab", True),  # X.500 order
        ("<I>C=US,O=Contoso,CN=Contoso Issuing CA<S>CN=relay.contoso.lab, O=Contoso, C=US", True),  # mixed orders
        ("<i>cn=contoso issuing ca, o=CONTOSO, c=us<s>CN=RELAY.contoso.lab, O=Contoso, C=US", True),
        (f"  <I>{ISSUER}<S>{RELAY}  ", True),
        (f"<I>CN=Fabrikam CA, O=Contoso, C=US<S>{RELAY}", False),
        (f"<I>{RELAY}<S>{ISSUER}", False),  # issuer and subject swapped
        ("<I>CN=Contoso Issuing CA<S>CN=relay.contoso.lab", False),  # O and C missing
        (f"<I>{ISSUER}<S>CN=relay.contoso.lab, C=US, O=Contoso", False),  # RDNs in no valid order
    ],
)
def test_send_connector_tls_certificate_name_matching(tls_name: str, matches: bool) -> None:
    relay = certificate(RELAY, issuer=ISSUER)
    graph = graph_of([relay], send_connectors=(_send(tls_name),))
    (connector,) = graph.connectors
    assert connector.matched_thumbprints == ((relay.thumbprint,) if matches else ())
    assert graph.references_of(relay.thumbprint) == ((Reference("send_connector", "Partner"),) if matches else ())
    assert ("connector" in graph.roles_of(relay.thumbprint)) is matches


def test_tls_certificate_name_matches_only_usable_certificates_and_all_of_them() -> None:
    renewed, old = certificate(RELAY, issuer=ISSUER), certificate(RELAY, issuer=ISSUER)
    pending = certificate(RELAY, issuer=ISSUER, store="REQUEST")
    graph = graph_of([renewed, old, pending], send_connectors=(_send(f"<I>{ISSUER}<S>{RELAY}"),))
    assert graph.connectors[0].matched_thumbprints == tuple(sorted((renewed.thumbprint, old.thumbprint)))


@pytest.mark.parametrize(
    ("snapshot", "kind", "applies"),
    [
        ({"send_connectors": (_send(f"<I>{ISSUER}<S>{RELAY}", ("ex1", "EX2")),)}, "send", True),
        ({"send_connectors": (_send(f"<I>{ISSUER}<S>{RELAY}", ("EX2",)),)}, "send", False),
        ({"receive_connectors": (_receive(f"<I>{ISSUER}<S>{RELAY}"),)}, "receive", True),
        ({"receive_connectors": (_receive(f"<I>{ISSUER}<S>{RELAY}", "EX2"),)}, "receive", False),
        ({"hybrid": _hybrid(f"<I>{ISSUER}<S>{RELAY}")}, "hybrid", True),
        ({"hybrid": _hybrid(f"<I>{ISSUER}<S>{RELAY}", ("EX1",))}, "hybrid", True),
        ({"hybrid": _hybrid(f"<I>{ISSUER}<S>{RELAY}", ("EX2",))}, "hybrid", False),
    ],
)
def test_connector_kinds_and_where_they_apply(snapshot: dict[str, Any], kind: str, applies: bool) -> None:
    relay = certificate(RELAY, issuer=ISSUER)
    graph = graph_of([relay], **snapshot)
    (connector,) = graph.connectors
    assert (connector.kind, connector.applies_here) == (kind, applies)
    assert connector.matched_thumbprints == (relay.thumbprint,)
    reference_kind = "hybrid" if kind == "hybrid" else f"{kind}_connector"
    assert graph.references_of(relay.thumbprint)[0].kind == reference_kind
    assert ("hybrid" if kind == "hybrid" else "connector") in graph.roles_of(relay.thumbprint)
    assert connector.as_dict() == {"kind": kind, "name": connector.name,
                                   "tls_certificate_name": f"<I>{ISSUER}<S>{RELAY}",
                                   "matched_thumbprints": [relay.thumbprint]}


def test_connectors_without_tls_certificate_name_are_not_listed() -> None:
    assert graph_of([], send_connectors=(_send(None),), receive_connectors=(_receive(None),)).connectors == ()


@pytest.mark.parametrize(
    ("tls_name", "message"),
    [
        ("CN=relay.contoso.lab", "expected the form <I>issuer<S>subject"),
        ("<S>CN=relay<I>CN=CA", "expected the form <I>issuer<S>subject"),
        ("<I>CN=CA<S>relay.contoso.lab", "invalid X.500 name: 'relay.contoso.lab' is not an attribute=value pair"),
    ],
)
def test_invalid_tls_certificate_names(tls_name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_tls_certificate_name(tls_name)
    (connector,) = graph_of([], send_connectors=(_send(tls_name),)).connectors
    assert connector.syntax_error == message and connector.matched_thumbprints == ()
