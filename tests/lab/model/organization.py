# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Exchange organisation (what lives in AD) and its servers (what lives on each Windows host).

Facts cited as "EF <section>" come from /work/shared/reference/exchange-facts.md (summarised in the
lab README's fidelity table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from .. import pki
from .certificates import MY, REQUEST, ROOT, Material, StoredCertificate
from .clock import LabClock, iso

# Exchange's AllowedServices flag order (EF "Get-ExchangeCertificate": Services flags).
SERVICE_ORDER = ("IMAP", "POP", "UM", "IIS", "SMTP", "Federation", "UMCallRouter")
#: Services only one certificate holds at a time; enabling them elsewhere moves them (lab README, "Enable").
SINGLE_INSTANCE_SERVICES = frozenset({"IMAP", "POP"})
DEFAULT_WEB_SITE = "Default Web Site"
BACK_END = "Exchange Back End"
#: IIS site ids: what IISServices entries ("IIS://<fqdn>/W3SVC/<id>") carry.
IIS_SITE_IDS = {DEFAULT_WEB_SITE: 1, BACK_END: 2}
#: The AuthAdmin servicelet's period (EF "Auth (OAuth) certificate": runs at start and every 12 h).
SERVICELET_PERIOD = timedelta(hours=12)
#: Exchange's OAuth ServiceName: the well-known Exchange application id.
AUTH_SERVICE_NAME = "00000002-0000-0ff1-ce00-000000000000"


@dataclass(frozen=True)
class ExchangeVersion:
    """One supported Exchange build (Exchange Server build numbers and release dates)."""

    key: str
    label: str
    build: str  # ExSetup.exe file version
    default_os: str
    supported_os: tuple[str, ...]

    @property
    def admin_display_version(self) -> str:
        major, minor, build, revision = self.build.split(".")
        return f"Version {major}.{minor} (Build {build}.{revision})"


VERSIONS = {
    version.key: version
    for version in (
        ExchangeVersion("2016-cu23", "Exchange Server 2016 CU23", "15.1.2507.6", "2016", ("2016",)),
        ExchangeVersion("2019-cu14", "Exchange Server 2019 CU14", "15.2.1544.4", "2019", ("2019", "2022")),
        ExchangeVersion("2019-cu15", "Exchange Server 2019 CU15", "15.2.1748.10", "2022", ("2019", "2022", "2025")),
        ExchangeVersion(
            "se", "Exchange Server Subscription Edition RTM", "15.2.2562.17", "2022", ("2019", "2022", "2025")
        ),
    )
}
OS_BUILDS = {"2016": "10.0.14393", "2019": "10.0.17763", "2022": "10.0.20348", "2025": "10.0.26100"}
#: PowerShell 5.1 builds per OS (what $PSVersionTable.PSVersion shows).
POWERSHELL_BUILDS = {
    "2016": "5.1.14393.7428",
    "2019": "5.1.17763.6414",
    "2022": "5.1.20348.2849",
    "2025": "5.1.26100.2161",
}


@dataclass
class IisBinding:
    site: str
    binding_information: str
    certificate_hash: str | None
    certificate_store: str = MY
    host_header: str = ""
    ssl_flags: int = 0


@dataclass
class ReceiveConnector:
    name: str
    server: str
    fqdn: str
    bindings: list[str]
    transport_role: str
    auth_mechanism: list[str]
    tls_certificate_name: str | None = None
    enabled: bool = True


@dataclass
class SendConnector:
    name: str
    fqdn: str | None
    address_spaces: list[str]
    source_servers: list[str]
    require_tls: bool = False
    enabled: bool = True
    cloud_services_mail_enabled: bool = False
    tls_certificate_name: str | None = None


@dataclass
class HybridConfiguration:
    name: str
    tls_certificate_name: str | None
    sending_servers: list[str]
    receiving_servers: list[str]
    domains: list[str]
    features: list[str]


@dataclass
class Dag:
    name: str
    members: list[str]
    witness: str | None


@dataclass
class AuthConfig:
    """Get-AuthConfig (EF "Auth (OAuth) certificate"): org-wide, stored in AD."""

    current: str | None
    previous: str | None = None
    next: str | None = None
    next_effective: datetime | None = None
    realm: str = ""

    def project(self) -> dict[str, Any]:
        return {
            "CurrentCertificateThumbprint": self.current,
            "PreviousCertificateThumbprint": self.previous,
            "NextCertificateThumbprint": self.next,
            "NextCertificateEffectiveDate": iso(self.next_effective),
            "ServiceName": AUTH_SERVICE_NAME,
            "Realm": self.realm,
        }

    def publish(self) -> None:
        """Next becomes current, current becomes previous (EF: -PublishCertificate / the servicelet)."""
        self.previous, self.current = self.current, self.next
        self.next, self.next_effective = None, None


@dataclass(frozen=True)
class Account:
    domain: str
    username: str
    password: str = field(repr=False)
    exchange_admin: bool


class Trust:
    """Chain building as a domain-joined Windows host does it, on the lab's CAs (names, not signatures)."""

    def __init__(self, authorities: pki.AuthorityRegistry) -> None:
        self._by_subject: dict[x509.Name, pki.Authority] = {
            authority.certificate.subject: authority for authority in authorities
        }
        self._trusted = {pki.thumbprint(anchor) for anchor in authorities.trust_anchors()}

    def root_of(self, material: Material) -> pki.Authority | None:
        """The self-signed CA at the top of the certificate's chain, None when a link is unknown."""
        name = material.certificate.issuer
        for _step in range(8):  # chains are short; the bound guards against a naming loop
            authority = self._by_subject.get(name)
            if authority is None:
                return None
            if authority.certificate.issuer == authority.certificate.subject:
                return authority
            name = authority.certificate.issuer
        return None

    def chain_trusted(self, material: Material) -> bool:
        root = self.root_of(material)
        return root is not None and pki.thumbprint(root.certificate) in self._trusted


class Server:
    """One Exchange server: its LocalMachine stores and the host-side and Exchange per-server settings."""

    def __init__(self, *, name: str, domain: str, site: str, version: ExchangeVersion, os: str) -> None:
        self.name = name  # inventory name, lowercase
        self.exchange_name = name.upper()  # Exchange's Name / the NetBIOS computer name
        self.fqdn = f"{name}.{domain}"
        self.site = site
        self.version = version
        self.os = os
        self.dag: str | None = None
        self.exchange_session = "ok"
        self.rawdata_only = False
        self.stores: dict[str, dict[str, StoredCertificate]] = {MY: {}, REQUEST: {}, ROOT: {}}
        self.internal_transport: str | None = None
        self.bindings: list[IisBinding] = []
        self.require_ssl = True
        self.receive_connectors: list[ReceiveConnector] = []
        self.service_restarts: list[dict[str, str | None]] = []
        self.app_pool_recycles: list[dict[str, str | None]] = []
        self.iis_resets: list[str | None] = []
        self.application_log: list[dict[str, Any]] = []
        #: The Auth certificate OWA/ECP use until their app pools recycle (EF "Auth": recycle / IISReset).
        self.owa_auth_certificate: str | None = None
        self.next_servicelet_tick: datetime | None = None
        self.cliusr_password_last_set: datetime | None = None
        #: False while the host is down (Fleet.set_unreachable): WinRM to it fails, and so do the Exchange cmdlets
        #: that other servers run against it with -Server (EF "MonitorExchangeAuthCertificate": unreachable servers).
        self.reachable = True
        #: Set-ImapSettings / Set-PopSettings -X509CertificateName (EF "Enable": IMAP/POP with wildcard
        #: certificates). Exchange's value after setup is not documented in exchange-facts: modelled as unset.
        self.x509_certificate_names: dict[str, str | None] = {"IMAP": None, "POP": None}
        #: ACME http-01 token -> key authorization, the files under the Default Web Site's
        #: .well-known\acme-challenge (EF "Field traps": ACME http-01 on Exchange); served over plain HTTP.
        self.acme_challenges: dict[str, str] = {}

    # -- stores ------------------------------------------------------------------------------
    def store(self, name: str) -> dict[str, StoredCertificate]:
        return self.stores.setdefault(name, {})

    def find(self, thumbprint: str | None, store: str = MY) -> StoredCertificate | None:
        """Exact, case-insensitive thumbprint match (EF: Get-ExchangeCertificate -Thumbprint)."""
        if not thumbprint:
            return None
        return self.stores.get(store, {}).get(thumbprint.upper())

    def find_exchange(self, thumbprint: str | None) -> StoredCertificate | None:
        """A certificate the Exchange cmdlets can see: My, then the pending requests."""
        return self.find(thumbprint, MY) or self.find(thumbprint, REQUEST)

    def add(self, stored: StoredCertificate) -> None:
        self.store(stored.store)[stored.thumbprint] = stored

    def exchange_certificates(self) -> list[StoredCertificate]:
        return [*self.stores[MY].values(), *self.stores[REQUEST].values()]

    # -- derived Exchange properties ---------------------------------------------------------------
    def iis_sites_of(self, thumbprint: str) -> list[str]:
        return [binding.site for binding in self.bindings if (binding.certificate_hash or "").upper() == thumbprint]

    def services_of(self, stored: StoredCertificate) -> list[str]:
        """Services flags; IIS is set while an IIS site is bound to the certificate (lab README, "IIS")."""
        flags = set(stored.services)
        if stored.store == MY and self.iis_sites_of(stored.thumbprint):
            flags.add("IIS")
        return [name for name in SERVICE_ORDER if name in flags]

    def binding(self, site: str, binding_information: str) -> IisBinding | None:
        for binding in self.bindings:
            if binding.site.casefold() == site.casefold() and binding.binding_information == binding_information:
                return binding
        return None

    def site_binding(self, site: str) -> IisBinding | None:
        return next((binding for binding in self.bindings if binding.site == site), None)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fqdn": self.fqdn,
            "site": self.site,
            "dag": self.dag,
            "version": self.version.key,
            "os": self.os,
        }


class Organization:
    """The AD side: servers, Auth config, connectors, hybrid, DAGs, the enterprise CA; plus the lab clock
    and the mutation log every state change appends to."""

    def __init__(self, *, name: str, domain: str, netbios: str, domain_controller: str, clock: LabClock) -> None:
        self.name = name
        self.domain = domain
        self.netbios = netbios
        self.domain_controller = domain_controller if "." in domain_controller else f"{domain_controller}.{domain}"
        self.clock = clock
        self.servers: dict[str, Server] = {}
        self.accounts: list[Account] = []
        self.auth = AuthConfig(current=None)
        self.send_connectors: list[SendConnector] = []
        self.hybrid: HybridConfiguration | None = None
        self.dags: dict[str, Dag] = {}
        self.authorities: pki.AuthorityRegistry
        self.trust: Trust
        self.enrolment: pki.Enrolment
        self.mutations: list[dict[str, Any]] = []

    def now(self) -> datetime:
        return self.clock.now()

    def server(self, identity: str | None) -> Server | None:
        """A server by name or FQDN, case-insensitively (what -Server / -Identity accept)."""
        if not identity:
            return None
        key = identity.strip().lower()
        return self.servers.get(key) or self.servers.get(key.removesuffix(f".{self.domain}"))

    def record(self, server: str | None, operation: str, **summary: Any) -> None:
        """Append to the mutation log: never secrets, only names, thumbprints and flags."""
        self.mutations.append(
            {
                "seq": len(self.mutations) + 1,
                "lab_time": iso(self.now()),
                "server": server,
                "operation": operation,
                "summary": summary,
            }
        )

    def account(self, user: str | None) -> Account | None:
        """An account by ``user``, ``DOMAIN\\user`` or ``user@domain`` (case-insensitive)."""
        if not user:
            return None
        name = user.rpartition("\\")[2].partition("@")[0].casefold()
        return next((account for account in self.accounts if account.username.casefold() == name), None)

    # -- the AuthAdmin servicelet (EF "Auth (OAuth) certificate") ---------------------------------
    def servicelet_tick(self, server: Server) -> bool:
        """One AuthAdmin run on ``server``: publish the next Auth certificate when its date has come."""
        server.next_servicelet_tick = self.now() + SERVICELET_PERIOD
        auth = self.auth
        if auth.next is None or auth.next_effective is None or auth.next_effective > self.now():
            return False
        before = auth.current
        auth.publish()
        server.application_log.append(
            {
                "lab_time": iso(self.now()),
                "source": "MSExchange AuthAdmin",
                "event_id": 2014,
                "message": f"The Auth certificate {auth.current} was published as the current certificate.",
            }
        )
        self.record(
            server.name, "AuthAdmin.publish", current_before=before, current_after=auth.current, previous=auth.previous
        )
        return True

    def run_due_servicelets(self, until: datetime) -> int:
        """Run every servicelet tick due up to ``until`` in time order, moving the clock to each."""
        runs = 0
        while True:
            due = [
                server
                for server in self.servers.values()
                if server.next_servicelet_tick and server.next_servicelet_tick <= until
            ]
            if not due:
                break
            server = min(due, key=lambda item: (item.next_servicelet_tick, item.name))
            assert server.next_servicelet_tick is not None
            self.clock.set(max(self.now(), server.next_servicelet_tick))
            self.servicelet_tick(server)
            runs += 1
        self.clock.set(until)
        return runs
