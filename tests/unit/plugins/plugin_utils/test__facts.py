# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of build_facts: merging, the docs/facts.md shape, every finding rule, and the lab's scenarios.

Every finding id has a case where it fires (exactly the expected findings, with thumbprint and severity)
and a close case where it must not. The server in :func:`server` is healthy: it produces no finding.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import pathlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import cryptography_vectors
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.exchange.pki.plugins.plugin_utils import _snapshot
from ansible_collections.exchange.pki.plugins.plugin_utils import _values as values
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import sha1_thumbprint
from ansible_collections.exchange.pki.plugins.plugin_utils._facts import build_facts
from ansible_collections.exchange.pki.plugins.plugin_utils._findings import EXCLUSIONS
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import CATALOGUE, Policy
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    AuthConfig,
    ClusterFacts,
    ClusterNode,
    DagInfo,
    ExchangeCertificateRecord,
    ExchangeServer,
    ExchangeVersion,
    HostInfo,
    IisBinding,
    SendConnector,
    StoreCertificate,
    TransportService,
)
from tests.lab.model import Fleet
from tests.lab.pki import AuthorityRegistry, CertificateSpec, IssuedCertificate, generate_key, make_certificate
from tests.unit.clock import NOW

FACTS_DOC = pathlib.Path(__file__).parents[4] / "docs" / "facts.md"
AUTH_SUBJECT = "CN=Microsoft Exchange Server Auth Certificate"


@functools.cache
def _authorities() -> AuthorityRegistry:
    return AuthorityRegistry(now=NOW)


@functools.cache
def issue(subject: str, *, dns: tuple[str, ...] = (), issuer: str = "lab-ca", days: tuple[int, int] = (-30, 335),
          key: tuple[str, int] = ("rsa", 2048), signature_hash: str = "sha256",
          ekus: tuple[str, ...] = ("server_auth",), serial: int | None = None) -> IssuedCertificate:
    """A certificate from the lab's factory (cryptography's CertificateBuilder), cached per arguments."""
    spec = CertificateSpec(subject, dns_names=dns, key_type=key[0], key_size=key[1],  # type: ignore[arg-type]
                           signature_hash=signature_hash,  # type: ignore[arg-type]
                           not_before=datetime.timedelta(days=days[0]), not_after=datetime.timedelta(days=days[1]),
                           issuer=issuer, ekus=ekus, serial_number=serial)
    return make_certificate(spec, now=NOW, authorities=_authorities(),
                            key=generate_key(key[0], key[1], cache_key=f"{subject}/{serial}"))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Install:
    """One certificate on the server: what host.certificates and Get-ExchangeCertificate report for it."""

    issued: IssuedCertificate
    store: str = "My"
    status: str | None = "Valid"
    services: tuple[str, ...] = ()
    exportable: bool = False
    has_key: bool | None = True
    provider: str = "csp"

    @property
    def thumbprint(self) -> str:
        return self.issued.thumbprint

    def store_entry(self) -> StoreCertificate:
        return StoreCertificate(self.store, self.thumbprint, self.issued.der(), None, self.has_key,
                                self.provider if self.has_key else None, None,  # type: ignore[arg-type]
                                self.exportable if self.has_key else None, True)

    def exchange_record(self) -> ExchangeCertificateRecord | None:
        if self.store not in ("My", "REQUEST"):
            return None  # the Exchange cmdlets do not see the cluster stores
        return ExchangeCertificateRecord(raw_data=self.issued.der(), thumbprint=self.thumbprint,
                                         subject=self.issued.certificate.subject.rfc4514_string(),
                                         status=self.status, services=self.services, has_private_key=self.has_key,
                                         private_key_exportable=self.exportable)


def baseline() -> dict[str, Install]:
    """A healthy Exchange 2019 server: default, Auth, WMSvc and a CA-issued exportable SAN certificate."""
    return {
        "default": Install(issue("CN=EX1", dns=("EX1", "ex1.contoso.lab"), issuer="self", days=(-100, 1725)),
                           services=("IMAP", "POP", "IIS", "SMTP")),
        "auth": Install(issue(AUTH_SUBJECT, issuer="self", days=(-100, 1725)), services=("SMTP",), exportable=True),
        "wmsvc": Install(issue("CN=WMSvc-SHA2-EX1", dns=("WMSvc-SHA2-EX1",), issuer="self", days=(-100, 3550)),
                         exportable=True),
        "mail": Install(issue("CN=mail.contoso.lab", dns=("mail.contoso.lab", "autodiscover.contoso.lab")),
                        services=("IMAP", "POP", "IIS", "SMTP"), exportable=True),
    }


def binding(site: str, info: str, thumbprint: str | None) -> IisBinding:
    return IisBinding(site, "https", info, None, thumbprint, "My", 0)


def server(changes: Mapping[str, Install | None] | None = None, **fields: Any) -> ServerSnapshot:
    """The healthy server with certificates added/replaced (or removed with None) and snapshot fields set."""
    installs = {**baseline(), **(changes or {})}
    certs = {name: install for name, install in installs.items() if install is not None}
    default, auth = installs["default"], installs["auth"]
    snapshot: dict[str, Any] = {
        "host_info": HostInfo("EX1", "ex1.contoso.lab", "contoso.lab", "10.0.17763", "5.1",
                              None, ExchangeVersion(15, 2, 1544, 4), NOW),
        "exchange_server": ExchangeServer("EX1", "ex1.contoso.lab", "Version 15.2 (Build 1544.4)",
                                          ExchangeVersion(15, 2, 1544, 4), ("Mailbox",), "Site-A", "Enterprise", False),
        "exchange_certificates": tuple(filter(None, (install.exchange_record() for install in certs.values()))),
        "store_certificates": tuple(install.store_entry() for install in certs.values()),
        "iis_bindings": (binding("Default Web Site", "*:443:", certs["mail"].thumbprint if "mail" in certs else None),
                         binding("Exchange Back End", "*:444:", default.thumbprint if default else None)),
        "auth_config": AuthConfig(auth.thumbprint if auth else None, None, None, None, None, None),
        "transport_services": (TransportService("EX1", "ex1.contoso.lab", default.thumbprint if default else None),),
    }
    snapshot.update(fields)
    return ServerSnapshot(**snapshot)


def facts_of(snapshot: ServerSnapshot, **policy: Any) -> dict[str, Any]:
    return build_facts(snapshot, policy=Policy.from_options(policy), now=NOW)


def findings_of(snapshot: ServerSnapshot, **policy: Any) -> set[tuple[str, str, str | None]]:
    return {(f["id"], f["severity"], f["thumbprint"]) for f in facts_of(snapshot, **policy)["findings"]}


def test_the_baseline_server_is_healthy() -> None:
    assert facts_of(server(), required_names=["mail.contoso.lab", "Autodiscover.contoso.lab"])["findings"] == []


# --- every finding: where it fires and a close case where it must not -------------------------------

EXPIRED = Install(issue("CN=old.contoso.lab", dns=("old.contoso.lab",), days=(-400, -1)), status="DateInvalid")
SOON_20 = Install(issue("CN=soon.contoso.lab", dns=("soon.contoso.lab",), days=(-345, 20)))
PENDING_40 = Install(issue("CN=mail.contoso.lab", dns=("mail.contoso.lab",), issuer="self", days=(-40, 325)),
                     store="REQUEST", status="PendingRequest")
RELAY_NAME = "<I>CN=Retired Issuing CA<S>CN=relay.contoso.lab"


def _with(install: Install, **changes: Any) -> Install:
    return dataclasses.replace(install, **changes)


def _auth_config(current: str | None, following: str | None = None, *, effective_in: float = 3) -> AuthConfig:
    """Get-AuthConfig naming ``current`` and a ``following`` certificate effective in ``effective_in`` days."""
    effective = NOW + datetime.timedelta(days=effective_in) if following else None
    return AuthConfig(current, None, following, effective, None, None)


def _auth_in(days: int) -> Install:
    return Install(issue(AUTH_SUBJECT, issuer="self", days=(-1800, days)), services=("SMTP",), exportable=True)


def _next_auth(days: int) -> Install:
    return Install(issue(AUTH_SUBJECT, issuer="self", days=(-1, days), serial=days), exportable=True)


def _auth_case(current_days: int, next_days: int | None = None, *, install_next: bool = True,
               effective_in: float = 3) -> ServerSnapshot:
    auth = _auth_in(current_days)
    following = _next_auth(next_days) if next_days is not None else None
    changes = {"auth": auth, "next": following if install_next else None}
    return server(changes, auth_config=_auth_config(auth.thumbprint, following.thumbprint if following else None,
                                                    effective_in=effective_in))


def _auth_window(days: int, *, staged: bool = False) -> set[tuple[str, str, str | None]]:
    """The findings of a current Auth certificate with ``days`` left, with or without a usable next one."""
    current = _auth_in(days).thumbprint
    expiring = {("auth_expiring", "warning", current)}
    return expiring if staged else expiring | {("auth_next_not_staged", "critical", current)}


def _cluster_case(days: int) -> ServerSnapshot:
    cliusr = Install(issue("CN=CLIUSR", issuer="self", days=(-300, days), key=("ec", 256)), store="PKU2U",
                     provider="cng")
    return server({"cliusr": cliusr}, cluster=ClusterFacts("DAG1", (ClusterNode("EX1", "Up"),), None))


def _duplicate(serial: int, days: tuple[int, int] = (-30, 335)) -> Install:
    return Install(issue("CN=smtp.contoso.lab", dns=("smtp.contoso.lab",), days=days, serial=serial))


def _send_connector(tls_name: str, sources: tuple[str, ...] = ("EX1", "EX2")) -> SendConnector:
    return SendConnector("Outbound", "Outbound", True, None, True, tls_name, sources, ("SMTP:partner.example;1",),
                         False)


def _thumb(issued: IssuedCertificate | Install) -> str:
    return issued.thumbprint


MAIL = baseline()["mail"]
DEFAULT = baseline()["default"]
AUTH = baseline()["auth"]
# Each case: a snapshot (and policy options) and exactly the findings expected, as (id, severity, thumbprint).
Case = Callable[[], tuple[ServerSnapshot, dict[str, Any], set[tuple[str, str, str | None]]]]
FIRES: dict[str, Case] = {
    "expired": lambda: (server({"old": EXPIRED}), {}, {("expired", "critical", EXPIRED.thumbprint)}),
    "expiring_critical": lambda: (server({"soon": SOON_20}), {},
                                  {("expiring_critical", "critical", SOON_20.thumbprint)}),
    "expiring_warning": lambda: (server({"soon": SOON_20}), {"warning_days": 21, "critical_days": 20},
                                 {("expiring_warning", "warning", SOON_20.thumbprint)}),
    "not_yet_valid": lambda: (
        server({"future": (future := Install(issue("CN=f.contoso.lab", days=(1, 366)), status="DateInvalid"))}), {},
        {("not_yet_valid", "warning", future.thumbprint)}),
    "weak_key": lambda: (server({"weak": (weak := Install(issue("CN=weak", key=("rsa", 1024))))}), {},
                         {("weak_key", "critical", weak.thumbprint)}),
    "weak_key_ec": lambda: (server({"ec": (ec := Install(issue("CN=ec", key=("ec", 256))))}),
                            {"min_ec_key_size": 384}, {("weak_key", "critical", ec.thumbprint)}),
    "weak_signature": lambda: (server({"sha1": (sha1 := Install(issue("CN=old", signature_hash="sha1")))}), {},
                               {("weak_signature", "warning", sha1.thumbprint)}),
    "missing_private_key": lambda: (server({"nokey": (nokey := Install(issue("CN=nokey"), has_key=False))}), {},
                                    {("missing_private_key", "warning", nokey.thumbprint)}),
    "untrusted": lambda: (server({"mail": _with(MAIL, status="Untrusted")}), {},
                          {("untrusted", "warning", MAIL.thumbprint)}),
    "untrusted_revoked": lambda: (server({"mail": _with(MAIL, status="Revoked")}), {},
                                  {("untrusted", "critical", MAIL.thumbprint)}),
    "untrusted_unknown": lambda: (server({"mail": _with(MAIL, status="Unknown")}), {},  # HealthChecker: warning
                                  {("untrusted", "warning", MAIL.thumbprint)}),
    "untrusted_date_invalid_in_validity": lambda: (server({"mail": _with(MAIL, status="DateInvalid")}), {},
                                                   {("untrusted", "critical", MAIL.thumbprint)}),
    "name_mismatch": lambda: (server(), {"required_names": ["mail.contoso.lab", "owa.contoso.lab"]},
                              {("name_mismatch", "warning", MAIL.thumbprint)}),
    "missing_server_auth_eku": lambda: (server({"c": (client := Install(issue("CN=c", ekus=("client_auth",))))}), {},
                                        {("missing_server_auth_eku", "warning", client.thumbprint)}),
    "auth_missing_not_installed": lambda: (server({"auth": None}, auth_config=_auth_config(AUTH.thumbprint)), {},
                                           {("auth_missing", "critical", AUTH.thumbprint)}),
    "auth_missing_none_configured": lambda: (server(auth_config=_auth_config(None)), {},
                                             {("auth_missing", "critical", None)}),
    "auth_expiring": lambda: (_auth_case(45, 400), {}, _auth_window(45, staged=True)),
    "auth_next_not_staged": lambda: (_auth_case(45), {}, _auth_window(45)),
    "auth_next_too_short": lambda: (_auth_case(45, 120), {}, _auth_window(45)),
    # MEAC NextAuthCertificateImportRequired: whenever a next one is configured, whatever the current's dates.
    "auth_next_missing": lambda: (_auth_case(1000, 400, install_next=False, effective_in=30), {},
                                  {("auth_next_missing", "warning", _next_auth(400).thumbprint)}),
    "auth_next_missing_effective_soon": lambda: (_auth_case(1000, 400, install_next=False, effective_in=1.5), {},
                                                 {("auth_next_missing", "critical", _next_auth(400).thumbprint)}),
    # Missing here is an import to do, not a next certificate to configure: no auth_next_not_staged beside it.
    "auth_next_missing_in_window": lambda: (_auth_case(45, 400, install_next=False), {}, {
        ("auth_expiring", "warning", _auth_in(45).thumbprint),
        ("auth_next_missing", "warning", _next_auth(400).thumbprint)}),
    # Expired: only the emergency path (MEAC ReplaceRequired, no ConfigureNext).
    "auth_expired_without_next": lambda: (_auth_case(-1), {}, {("expired", "critical", _auth_in(-1).thumbprint)}),
    "auth_key_not_csp": lambda: (server({"auth": _with(AUTH, provider="cng")}), {},
                                 {("auth_key_not_csp", "warning", AUTH.thumbprint)}),
    "no_internal_transport": lambda: (server(transport_services=(TransportService("EX1", None, None),)), {},
                                      {("no_internal_transport", "critical", None)}),
    "no_internal_transport_not_installed": lambda: (
        server(transport_services=(TransportService("EX1", None, "AB" * 20),)), {},
        {("no_internal_transport", "critical", "AB" * 20)}),
    "internal_transport_expired": lambda: (
        server({"old": EXPIRED}, transport_services=(TransportService("EX1", None, EXPIRED.thumbprint),)), {},
        {("expired", "critical", EXPIRED.thumbprint),
         ("internal_transport_expired", "critical", EXPIRED.thumbprint)}),
    "iis_binding_missing_cert": lambda: (server({"mail": None}), {},
                                         {("iis_binding_missing_cert", "critical", None)}),
    "iis_binding_missing_hash": lambda: (
        server(iis_bindings=(binding("Default Web Site", "*:443:", "CD" * 20),
                             binding("Exchange Back End", "*:444:", DEFAULT.thumbprint))), {},
        {("iis_binding_missing_cert", "critical", "CD" * 20)}),
    "iis_binding_expired": lambda: (
        server({"mail": _with(MAIL, issued=EXPIRED.issued, status="DateInvalid", exportable=False)}), {},
        {("expired", "critical", EXPIRED.thumbprint), ("iis_binding_expired", "critical", EXPIRED.thumbprint)}),
    "back_end_binding_missing": lambda: (
        server(iis_bindings=(binding("Default Web Site", "*:443:", MAIL.thumbprint),)), {},
        {("back_end_binding_missing", "critical", None)}),
    "connector_certificate_not_found": lambda: (server(send_connectors=(_send_connector(RELAY_NAME),)), {},
                                                {("connector_certificate_not_found", "critical", None)}),
    "connector_syntax_invalid": lambda: (server(send_connectors=(_send_connector("CN=relay.contoso.lab"),)), {},
                                         {("connector_certificate_not_found", "critical", None)}),
    "cluster_certificate_expired": lambda: (_cluster_case(-2), {},
                                            {("cluster_certificate_expired", "critical", _cliusr(-2))}),
    "cluster_certificate_expiring": lambda: (_cluster_case(10), {},
                                             {("cluster_certificate_expiring", "warning", _cliusr(10))}),
    "pending_request_stale": lambda: (server({"pending": PENDING_40}), {},
                                      {("pending_request_stale", "info", PENDING_40.thumbprint)}),
    "duplicate_certificates": lambda: (server({"a": _duplicate(1), "b": _duplicate(2)}), {}, {
        ("duplicate_certificates", "info", _duplicate(1).thumbprint),
        ("duplicate_certificates", "info", _duplicate(2).thumbprint)}),
    "shared_key_not_exportable": lambda: (server({"mail": _with(MAIL, exportable=False)}), {},
                                          {("shared_key_not_exportable", "warning", MAIL.thumbprint)}),
    "unparseable_certificate": lambda: (_with_raw(server(), GARBAGE), {},
                                        {("unparseable_certificate", "warning", sha1_thumbprint(GARBAGE))}),
    # Parts unreadable (two basicConstraints): info, and no rule guesses from the null parts (EKUs, names).
    "unparseable_certificate_partial": lambda: (_with_raw(server(), _partial_der()), {},
                                                {("unparseable_certificate", "info", sha1_thumbprint(_partial_der())),
                                                 ("expired", "critical", sha1_thumbprint(_partial_der())),
                                                 ("weak_signature", "warning", sha1_thumbprint(_partial_der()))}),
}
CLOSE: dict[str, Case] = {
    "expired": lambda: (server({"last": (last := Install(issue("CN=last", days=(-365, 1))))}), {},
                        {("expiring_critical", "critical", last.thumbprint)}),  # expires tomorrow
    "expiring_critical": lambda: (server({"soon": SOON_20}), {"critical_days": 20, "warning_days": 60},
                                  {("expiring_warning", "warning", SOON_20.thumbprint)}),
    "expiring_warning": lambda: (server({"soon": SOON_20}), {"critical_days": 10, "warning_days": 20}, set()),
    "not_yet_valid": lambda: (server({"now": Install(issue("CN=n", days=(0, 365)))}), {}, set()),
    "weak_key": lambda: (server({"ok": Install(issue("CN=ok", key=("ec", 256)))}), {}, set()),
    "weak_signature": lambda: (server({"sha1": Install(issue("CN=old", signature_hash="sha1"))}),
                               {"weak_signature_hashes": ["md5"]}, set()),
    "missing_private_key": lambda: (server({"unknown": Install(issue("CN=u"), has_key=None)}), {}, set()),
    "untrusted": lambda: (server({"default": _with(DEFAULT, status="Untrusted")}), {}, set()),
    "untrusted_date_invalid_expired": lambda: (server({"old": EXPIRED}), {},
                                               {("expired", "critical", EXPIRED.thumbprint)}),
    "untrusted_rawdata_only": lambda: (server(exchange_certificates=()), {}, set()),
    "name_mismatch": lambda: (server({"mail": _with(MAIL, issued=issue("CN=w", dns=("*.contoso.lab",)))}),
                              {"required_names": ["mail.contoso.lab", "autodiscover.contoso.lab"]}, set()),
    "name_mismatch_wildcard_bare_domain": lambda: (
        server({"mail": (wild := _with(MAIL, issued=issue("CN=w", dns=("*.contoso.lab",))))}),
        {"required_names": ["contoso.lab"]}, {("name_mismatch", "warning", wild.thumbprint)}),
    "missing_server_auth_eku": lambda: (server({"any": Install(issue("CN=any", ekus=()))}), {}, set()),
    "auth_missing": lambda: (server(auth_config=None, unavailable={"Get-AuthConfig": "Access is denied."}), {},
                             set()),
    "auth_expiring": lambda: (_auth_case(60), {}, set()),
    "auth_next_not_staged": lambda: (_auth_case(45, 121), {}, _auth_window(45, staged=True)),
    "auth_next_missing": lambda: (_auth_case(1000, 400), {}, set()),
    "auth_key_not_csp": lambda: (server({"wmsvc": _with(baseline()["wmsvc"], provider="cng")}), {}, set()),
    "no_internal_transport": lambda: (server(transport_services=(TransportService("EX2", None, None),)), {}, set()),
    "no_internal_transport_unavailable": lambda: (
        server(transport_services=(), unavailable={"Get-TransportService": "failed"}), {}, set()),
    "internal_transport_expired": lambda: (
        server({"soon": SOON_20}, transport_services=(TransportService("EX1", None, SOON_20.thumbprint),)), {},
        {("expiring_critical", "critical", SOON_20.thumbprint)}),
    "iis_binding_missing_cert": lambda: (server(iis_bindings=(), unavailable={"host.iis_bindings": "failed"}), {},
                                         set()),
    "iis_binding_expired": lambda: (server({"mail": _with(MAIL, issued=SOON_20.issued)}), {},
                                    {("expiring_critical", "critical", SOON_20.thumbprint)}),
    "back_end_binding_missing": lambda: (
        server(iis_bindings=(binding("Default Web Site", "*:443:", MAIL.thumbprint),),
               exchange_server=dataclasses.replace(server().exchange_server, server_role=("Edge",))), {}, set()),
    "connector_certificate_not_found": lambda: (server(send_connectors=(_send_connector(RELAY_NAME, ("EX2",)),)), {},
                                                set()),
    "connector_certificate_found": lambda: (
        server(send_connectors=(_send_connector("<I>CN=Contoso Lab Issuing CA<S>CN=mail.contoso.lab"),)), {}, set()),
    "cluster_certificate_expired": lambda: (_cluster_case(300), {}, set()),
    "cluster_certificate_expiring": lambda: (_cluster_case(30), {}, set()),
    "pending_request_stale": lambda: (
        server({"pending": _with(PENDING_40, issued=issue("CN=p", issuer="self", days=(-30, 335)))}), {}, set()),
    "duplicate_certificates": lambda: (
        server({"a": _duplicate(1),
                "b": Install(issue("CN=smtp.contoso.lab", dns=("smtp.contoso.lab", "smtp2.contoso.lab")))}),
        {}, set()),
    "duplicate_certificates_azure_fabric": lambda: (server({"a": AZURE_FABRIC, "b": AZURE_FABRIC_2}), {}, set()),
    "duplicate_certificates_expired": lambda: (
        server({"a": _duplicate(1), "b": _duplicate(3, days=(-400, -1))}), {},
        {("expired", "critical", _duplicate(3, days=(-400, -1)).thumbprint)}),
    # An IIS binding and the internal transport certificate pointing at the unreadable certificate: it is installed,
    # so neither is "missing"; unparseable_certificate alone says what is wrong.
    "unparseable_certificate": lambda: (
        dataclasses.replace(
            _with_raw(server(), GARBAGE),
            iis_bindings=(binding("Default Web Site", "*:443:", sha1_thumbprint(GARBAGE)),
                          binding("Exchange Back End", "*:444:", DEFAULT.thumbprint)),
            transport_services=(TransportService("EX1", None, sha1_thumbprint(GARBAGE)),)),
        {}, {("unparseable_certificate", "warning", sha1_thumbprint(GARBAGE))}),
    "shared_key_not_exportable": lambda: (  # neither IIS nor SMTP: nothing to distribute behind a load balancer
        server({"owa": _with(MAIL, issued=issue("CN=owa"), services=("IMAP",), exportable=False)}), {}, set()),
}


# The certificate Azure places on every VM: expired and duplicated there, and still skipped (HealthChecker).
AZURE_FABRIC = Install(issue("DC=Windows Azure CRP Certificate Generator", issuer="self", days=(-400, -10),
                             ekus=("client_auth",), key=("rsa", 1024), serial=1))
AZURE_FABRIC_2 = Install(issue("DC=Windows Azure CRP Certificate Generator", issuer="self", days=(-400, -10),
                               ekus=("client_auth",), key=("rsa", 1024), serial=2))


GARBAGE = b"\x30\x03\x02\x01\x00"  # a DER SEQUENCE that is no certificate
TWO_BASIC_CONSTRAINTS = (pathlib.Path(cryptography_vectors.__file__).parent / "x509" / "custom"
                         / "two_basic_constraints.pem").read_bytes()


def _with_raw(snapshot: ServerSnapshot, raw: bytes, store: str = "My",
              friendly: str | None = "legacy") -> ServerSnapshot:
    """The snapshot with one more certificate in ``store``, given as raw bytes (the host's answer)."""
    entry = StoreCertificate(store, sha1_thumbprint(raw), raw, friendly, True, "csp", None, False, True)
    return dataclasses.replace(snapshot, store_certificates=(*snapshot.store_certificates, entry))


def _partial_der() -> bytes:
    return x509.load_pem_x509_certificate(TWO_BASIC_CONSTRAINTS).public_bytes(serialization.Encoding.DER)


def _cliusr(days: int) -> str:
    return issue("CN=CLIUSR", issuer="self", days=(-300, days), key=("ec", 256)).thumbprint


@pytest.mark.parametrize("case", FIRES.values(), ids=FIRES.keys())
def test_finding_fires(case: Case) -> None:
    snapshot, policy, expected = case()
    assert findings_of(snapshot, **policy) == expected


@pytest.mark.parametrize("case", CLOSE.values(), ids=CLOSE.keys())
def test_finding_does_not_fire_in_the_close_case(case: Case) -> None:
    snapshot, policy, expected = case()
    assert findings_of(snapshot, **policy) == expected


def test_every_catalogue_id_has_a_firing_and_a_close_case() -> None:
    def ids(table: Mapping[str, Case]) -> set[str]:
        return {finding_id for finding_id in CATALOGUE if any(name.startswith(finding_id) for name in table)}

    assert ids(FIRES) == set(CATALOGUE)
    assert ids(CLOSE) == set(CATALOGUE)


def test_findings_carry_messages_and_remediations_without_secrets() -> None:
    snapshot = FIRES["auth_next_not_staged"]()[0]
    for finding in facts_of(snapshot)["findings"]:
        assert finding["message"].endswith(".") and finding["remediation"].endswith(".")
        assert "PRIVATE KEY" not in finding["message"] + finding["remediation"]
    (finding,) = facts_of(server({"nokey": Install(issue("CN=nokey"), has_key=False)}))["findings"]
    assert "CN=nokey" in finding["message"] and "Import-ExchangeCertificate" in finding["remediation"]


def test_ignore_findings() -> None:
    snapshot = FIRES["duplicate_certificates"]()[0]
    assert facts_of(snapshot, ignore_findings=["duplicate_certificates"])["findings"] == []


# --- the facts ------------------------------------------------------------------------------------


def _doc_shape() -> dict[str, Any]:
    block = re.search(r"```yaml\n(.*?)```", FACTS_DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert block is not None
    return yaml.safe_load(block.group(1))


def test_facts_have_the_docs_facts_md_shape() -> None:
    doc = _doc_shape()
    facts = facts_of(server(send_connectors=(_send_connector(RELAY_NAME),),
                            cluster=ClusterFacts("DAG1", (ClusterNode("EX1", "Up"),),
                                                 values.CliusrAccount(True, True, NOW))))
    assert set(doc) <= set(facts)
    for key in ("server", "auth", "cluster", "summary"):
        assert set(doc[key]) == set(facts[key]), key
    assert set(doc["summary"]["findings"]) == set(facts["summary"]["findings"])
    assert set(doc["cluster"]["cliusr_account"]) == set(facts["cluster"]["cliusr_account"])
    for key in ("certificates", "iis_bindings", "connectors", "findings"):
        assert facts[key], key
        for item in facts[key]:
            assert set(item) == set(doc[key][0]), key
    for certificate in facts["certificates"]:
        for reference in certificate["references"]:
            assert set(reference) == {"kind", "name"}


def test_certificate_facts() -> None:
    facts = facts_of(server())
    by_subject = {certificate["subject"]: certificate for certificate in facts["certificates"]}
    mail = by_subject["CN=mail.contoso.lab"]
    assert mail == mail | {
        "thumbprint": MAIL.thumbprint, "issuer": "CN=Contoso Lab Issuing CA", "not_before": "2026-10-26T08:00:00Z",
        "not_after": "2027-10-26T08:00:00Z", "days_remaining": 335, "lifetime_days": 365,
        "dns_names": ["mail.contoso.lab", "autodiscover.contoso.lab"], "key_type": "rsa", "key_size": 2048,
        "signature_hash": "sha256", "ekus": ["1.3.6.1.5.5.7.3.1"], "is_self_signed": False, "has_private_key": True,
        "private_key_exportable": True, "key_provider": "csp", "network_service_can_read_key": True, "store": "My",
        "status": "Valid", "services": ["IMAP", "POP", "IIS", "SMTP"], "roles": ["iis", "imap", "pop", "smtp"],
    }
    assert {"kind": "iis_binding", "name": "Default Web Site *:443:"} in mail["references"]
    default = by_subject["CN=EX1"]
    assert default["roles"] == ["back_end", "exchange_default", "iis", "imap", "internal_transport", "pop", "smtp"]
    assert by_subject[AUTH_SUBJECT]["roles"] == ["auth_current", "smtp"]
    assert by_subject["CN=WMSvc-SHA2-EX1"]["roles"] == ["wmsvc"]
    assert facts["server"] == {"name": "EX1", "fqdn": "ex1.contoso.lab", "version": "15.2.1544.4",
                               "product": "Exchange Server 2019 CU14", "roles": ["Mailbox"], "site": "Site-A",
                               "dag": None}
    assert facts["auth"] == {"current_thumbprint": AUTH.thumbprint, "next_thumbprint": None,
                             "previous_thumbprint": None, "next_effective_date": None, "current_present_locally": True}
    assert facts["internal_transport_thumbprint"] == DEFAULT.thumbprint
    assert facts["iis_bindings"][0] == {"site": "Default Web Site", "binding": "*:443:",
                                        "certificate_hash": MAIL.thumbprint, "certificate_store": "My",
                                        "certificate_found": True}
    assert facts["collected_at"] == "2026-11-25T08:00:00Z" and facts["changed"] is False


def test_rawdata_only_certificates_still_give_full_facts_and_findings() -> None:
    """Exchange objects with only RawData and no store read: facts from DER, metadata null, no guessing."""
    installs = {**baseline(), "old": EXPIRED, "sha1": Install(issue("CN=old", signature_hash="sha1"))}
    snapshot = server({"old": EXPIRED, "sha1": installs["sha1"]},
                      exchange_certificates=tuple(ExchangeCertificateRecord(raw_data=i.issued.der())
                                                  for i in installs.values()),
                      store_certificates=(), unavailable={"host.certificates": "Access is denied."})
    facts = facts_of(snapshot)
    assert len(facts["certificates"]) == len(installs)
    old = next(c for c in facts["certificates"] if c["thumbprint"] == EXPIRED.thumbprint)
    assert (old["subject"], old["days_remaining"], old["dns_names"]) == ("CN=old.contoso.lab", -1, ["old.contoso.lab"])
    assert (old["status"], old["services"], old["has_private_key"], old["key_provider"]) == (None, [], None, None)
    assert findings_of(snapshot) == {("expired", "critical", EXPIRED.thumbprint),
                                     ("weak_signature", "warning", installs["sha1"].thumbprint)}
    assert facts["unavailable"] == {"host.certificates": "Access is denied."}


def test_a_certificate_is_keyed_by_its_computed_thumbprint_once() -> None:
    snapshot = server()
    record = dataclasses.replace(snapshot.exchange_certificates[0], thumbprint=None)
    facts = facts_of(dataclasses.replace(snapshot, exchange_certificates=(record, *snapshot.exchange_certificates[1:])))
    thumbprints = [certificate["thumbprint"] for certificate in facts["certificates"]]
    assert sorted(thumbprints) == sorted(install.thumbprint for install in baseline().values())


def test_unavailable_reads_give_null_facts() -> None:
    operations = ("Get-AuthConfig", "host.iis_bindings", "Get-TransportService", "Get-SendConnector", "host.cluster")
    failed = {op: "failed" for op in operations}
    facts = facts_of(server(auth_config=None, iis_bindings=(), transport_services=(), unavailable=failed))
    assert (facts["auth"], facts["iis_bindings"], facts["connectors"], facts["internal_transport_thumbprint"],
            facts["cluster"]) == (None, None, None, None, None)


def test_summary() -> None:
    auth = _auth_in(45)
    snapshot = server({"auth": auth, "soon": SOON_20, "pending": PENDING_40}, auth_config=_auth_config(auth.thumbprint),
                      dags=(DagInfo("DAG1", ("ex1", "EX2"), None, None, None),))
    facts = facts_of(snapshot)
    assert facts["summary"] == {
        "certificates": 6,
        "findings": {"critical": 2, "warning": 1, "info": 1},
        "worst_severity": "critical",
        "earliest_expiry": "2026-12-15T08:00:00Z",
        "earliest_expiry_thumbprint": SOON_20.thumbprint,
    }
    assert facts["server"]["dag"] == "DAG1"
    assert [finding["severity"] for finding in facts["findings"]] == ["critical", "critical", "warning", "info"]
    assert facts_of(server())["summary"]["worst_severity"] is None


# --- the lab's scenarios --------------------------------------------------------------------------

_BATCH: tuple[tuple[str, str, Callable[[Any], Any]], ...] = (
    ("host_info", "host.info", values.parse_host_info),
    ("exchange_server", "Get-ExchangeServer", lambda value: values.parse_exchange_server(value[0])),
    ("exchange_certificates", "Get-ExchangeCertificate", values.parse_exchange_certificates),
    ("store_certificates", "host.certificates", values.parse_store_certificates),
    ("iis_bindings", "host.iis_bindings", values.parse_iis_bindings),
    ("auth_config", "Get-AuthConfig", values.parse_auth_config),
    ("transport_services", "Get-TransportService",
     lambda value: values.parse_list(value, values.parse_transport_service, "TransportService[]")),
    ("send_connectors", "Get-SendConnector",
     lambda value: values.parse_list(value, values.parse_send_connector, "SendConnector[]")),
    ("receive_connectors", "Get-ReceiveConnector",
     lambda value: values.parse_list(value, values.parse_receive_connector, "ReceiveConnector[]")),
    ("hybrid", "Get-HybridConfiguration", values.parse_hybrid_configuration),
    ("dags", "Get-DatabaseAvailabilityGroup", lambda value: values.parse_list(value, values.parse_dag, "Dag[]")),
    ("cluster", "host.cluster", values.parse_cluster),
)


def _operation(field: str, op: str, server_name: str) -> dict[str, Any]:
    args = {
        "Get-ExchangeServer": {"Identity": server_name},
        "Get-ReceiveConnector": {"Server": server_name},
        "host.certificates": {"stores": ["*"]},
    }.get(op, {})
    return {"id": field, "op": op, "args": args}


def lab_facts(scenario: str, **policy: Any) -> dict[str, dict[str, Any]]:
    """certificate_info's facts for every server of a lab scenario, gathered by the in-process lab."""
    fleet = Fleet.from_scenario(scenario)
    result = {}
    for name in fleet.server_names():
        operations = [_operation(field, op, name) for field, op, _parse in _BATCH]
        answer = fleet.run_module(name, "exchange.pki.exchange_batch", {"operations": operations},
                                  remote_user="CONTOSO\\ansible")
        by_id = {item["id"]: item for item in answer["results"]}
        assert all(item["status"] == "ok" for item in by_id.values()), by_id
        snapshot = ServerSnapshot(**{field: parse(by_id[field]["value"]) for field, _op, parse in _BATCH})
        result[name] = build_facts(snapshot, policy=Policy.from_options(policy), now=snapshot.host_info.utc_now)
    return result


def _by_subject(facts: dict[str, Any]) -> set[tuple[str, str | None]]:
    subjects = {certificate["thumbprint"]: certificate["subject"] for certificate in facts["certificates"]}
    return {(finding["id"], subjects.get(finding["thumbprint"], finding["thumbprint"] and "<absent>"))
            for finding in facts["findings"]}


def test_dag_scenario_findings_are_where_the_scenario_says() -> None:
    facts = lab_facts("dag")
    auth = {("auth_expiring", AUTH_SUBJECT), ("auth_next_not_staged", AUTH_SUBJECT)}
    mail = {("expiring_critical", "CN=mail.contoso.lab")}
    assert {name: _by_subject(server_facts) for name, server_facts in facts.items()} == {
        "ex1": mail | auth,
        "ex2": mail | auth | {("cluster_certificate_expired", "CN=CLIUSR")},
        "ex3": mail | auth,
        "ex4": mail | auth,
    }
    assert facts["ex1"]["server"]["dag"] == "DAG1" and facts["ex4"]["server"]["dag"] is None


def test_broken_scenario_findings_are_where_the_scenario_says() -> None:
    """Each problem of broken.yml gives its finding on its server and nothing else fires."""
    facts = lab_facts("broken", required_names=["mail.contoso.lab", "autodiscover.contoso.lab"])
    connector = ("connector_certificate_not_found", None)
    assert {name: _by_subject(server_facts) for name, server_facts in facts.items()} == {
        "ex1": {
            ("expired", "CN=mail.contoso.lab"),
            ("iis_binding_expired", "CN=mail.contoso.lab"),
            ("weak_key", "CN=legacy.contoso.lab"),
            ("weak_signature", "CN=old.contoso.lab"),
            ("missing_private_key", "CN=nokey.contoso.lab"),
            ("untrusted", "CN=mail.fabrikam.lab"),
            ("untrusted", "CN=revoked.contoso.lab"),
            ("missing_server_auth_eku", "CN=client.contoso.lab"),
            ("duplicate_certificates", "CN=smtp.contoso.lab"),
            ("expiring_critical", "CN=ten.contoso.lab"),
            ("expiring_warning", "CN=fortyfive.contoso.lab"),
            ("not_yet_valid", "CN=future.contoso.lab"),
            ("pending_request_stale", "CN=mail.contoso.lab"),
            ("auth_key_not_csp", AUTH_SUBJECT),
            ("cluster_certificate_expired", "CN=CLIUSR"),
            ("shared_key_not_exportable", "CN=owa.contoso.lab"),
            connector,
        },
        "ex2": {
            ("auth_missing", "<absent>"),
            ("auth_next_missing", "<absent>"),
            ("no_internal_transport", None),
            ("iis_binding_missing_cert", "<absent>"),
            ("cluster_certificate_expiring", "CN=CLIUSR"),
            ("shared_key_not_exportable", "CN=owa.contoso.lab"),
            connector,
        },
        "ex3": {
            ("expired", "CN=EX3"),
            ("internal_transport_expired", "CN=EX3"),
            ("back_end_binding_missing", None),
            ("name_mismatch", "CN=webmail.contoso.lab"),
            connector,
        },
    }
    severities = {(f["id"], f["severity"]) for server_facts in facts.values() for f in server_facts["findings"]}
    assert ("untrusted", "critical") in severities and ("untrusted", "warning") in severities


def test_the_azure_fabric_certificate_is_listed_but_raises_nothing() -> None:
    facts = facts_of(server({"azure": AZURE_FABRIC}))
    assert AZURE_FABRIC.thumbprint in {certificate["thumbprint"] for certificate in facts["certificates"]}
    assert facts["findings"] == []


def test_every_exclusion_is_documented_with_its_source() -> None:
    text = (FACTS_DOC.parent / "findings.md").read_text(encoding="utf-8")
    section = text.split("## Certificates the rules skip", 1)[1].split("\n## ", 1)[0]
    for exclusion in EXCLUSIONS:
        assert f"`{exclusion.id}`" in section and exclusion.source.split(",")[0] in section


def _remediation(snapshot: ServerSnapshot, finding_id: str) -> str:
    return next(f["remediation"] for f in facts_of(snapshot)["findings"] if f["id"] == finding_id)


def test_an_expired_auth_certificate_gets_the_emergency_path_only() -> None:
    remediation = _remediation(_auth_case(-1), "expired")
    assert "effective now" in remediation and "-PublishCertificate" in remediation
    assert "AddHours(49)" not in remediation


def test_an_expired_auth_certificate_with_a_valid_next_one_is_told_to_publish_it() -> None:
    snapshot = _auth_case(-1, 400)
    assert {f["id"] for f in facts_of(snapshot)["findings"]} == {"expired"}
    remediation = _remediation(snapshot, "expired")
    assert _next_auth(400).thumbprint in remediation and "-PublishCertificate" in remediation
    assert "New-ExchangeCertificate" not in remediation


def _stale_auth(serial: int) -> Install:
    return Install(issue(AUTH_SUBJECT, issuer="self", days=(-700, 1000), serial=serial), services=("SMTP",),
                   exportable=True)


def test_duplicate_stale_auth_certificates_are_removed_not_moved() -> None:
    snapshot = server({"old1": _stale_auth(11), "old2": _stale_auth(12)})
    findings = [f for f in facts_of(snapshot)["findings"] if f["id"] == "duplicate_certificates"]
    assert {f["thumbprint"] for f in findings} == {_stale_auth(11).thumbprint, _stale_auth(12).thumbprint}
    for finding in findings:
        assert "Get-AuthConfig no longer names" in finding["remediation"]
        assert "Enable-ExchangeCertificate" not in finding["remediation"]


def test_duplicate_self_signed_defaults_keep_the_internal_transport_certificate() -> None:
    default = baseline()["default"]
    twin = Install(issue("CN=EX1", dns=("EX1", "ex1.contoso.lab"), issuer="self", days=(-10, 1815), serial=77),
                   services=("SMTP",))
    remediation = _remediation(server({"twin": twin}), "duplicate_certificates")
    assert "InternalTransportCertificateThumbprint" in remediation
    assert "Enable-ExchangeCertificate" not in remediation
    assert default.thumbprint != twin.thumbprint


def test_one_unparseable_certificate_does_not_hide_the_others() -> None:
    facts = facts_of(_with_raw(server(), GARBAGE, friendly="old import"))
    assert facts["unparseable_certificates"] == [{
        "thumbprint": sha1_thumbprint(GARBAGE), "store": "My", "friendly_name": "old import",
        "reason": facts["unparseable_certificates"][0]["reason"]}]
    assert facts["unparseable_certificates"][0]["reason"]  # names why
    (finding,) = facts["findings"]
    assert "old import" in finding["message"] and facts["unparseable_certificates"][0]["reason"] in finding["message"]
    healthy = facts_of(server())
    assert facts["certificates"] == healthy["certificates"]  # every other certificate keeps its full facts


def test_a_partly_readable_certificate_keeps_what_can_be_read() -> None:
    facts = facts_of(_with_raw(server(), _partial_der()))
    (partial,) = [c for c in facts["certificates"] if c["thumbprint"] == sha1_thumbprint(_partial_der())]
    assert partial["subject"] and partial["not_after"] and partial["serial_number"]
    assert partial["dns_names"] is None and partial["ekus"] is None  # unknown, not "none"
    assert partial["parse_problems"] == ["extensions: duplicate extension 2.5.29.19"]
    assert all(c["parse_problems"] == [] for c in facts["certificates"] if c is not partial)


def test_unknown_names_are_not_a_name_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bound certificate whose SAN cannot be read: its names are unknown, not missing."""
    parse = _snapshot.parse_certificate

    def names_unreadable(der: bytes) -> Any:
        facts = parse(der)
        if facts.thumbprint != MAIL.thumbprint:
            return facts
        return dataclasses.replace(facts, dns_names=None, problems=("extensions: malformed (test)",))

    monkeypatch.setattr(_snapshot, "parse_certificate", names_unreadable)
    findings = findings_of(server(), required_names=["mail.contoso.lab", "owa.contoso.lab"])
    assert findings == {("unparseable_certificate", "info", MAIL.thumbprint)}
