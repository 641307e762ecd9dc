# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn a validated scenario into an :class:`Organization` with real certificates and keys."""

from __future__ import annotations

import pathlib
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization

from .. import pki
from .certificates import MY, PKU2U, REQUEST, ROOT, Material, StoredCertificate
from .clock import LabClock
from .errors import ScenarioError
from .organization import (
    BACK_END,
    DEFAULT_WEB_SITE,
    VERSIONS,
    Account,
    AuthConfig,
    Dag,
    HybridConfiguration,
    IisBinding,
    Organization,
    ReceiveConnector,
    SendConnector,
    Server,
    Trust,
)
from .scenario import AUTH_DEFAULT, EXCHANGE_DEFAULT, WMSVC_DEFAULT, Scenario

AUTH_SUBJECT = "CN=Microsoft Exchange Server Auth Certificate"
AUTH_FRIENDLY_NAME = "Microsoft Exchange Server Auth Certificate"
# When the defaults were made: an install about half a year before the lab starts.
_INSTALLED = timedelta(days=-180)
_YEAR = timedelta(days=365)


def tls_certificate_name(material: Material) -> str:
    """A connector's TlsCertificateName for a certificate: ``<I>issuer<S>subject`` (EF "Remove")."""
    return f"<I>{material.issuer}<S>{material.subject}"


def exchange_default_spec(server: Server) -> dict[str, Any]:
    """The "Microsoft Exchange" self-signed certificate (EF "Default certificates": CN=<Server>, 5 y)."""
    return {
        "subject": f"CN={server.exchange_name}",
        "dns_names": [server.exchange_name, server.fqdn],
        "not_before": _INSTALLED,
        "not_after": _INSTALLED + 5 * _YEAR,
        "issuer": "self",
    }


def wmsvc_spec(server: Server) -> dict[str, Any]:
    """The WMSvc certificate (EF "Default certificates": CN=WMSvc-SHA2-<Server>, 10 y)."""
    return {
        "subject": f"CN=WMSvc-SHA2-{server.exchange_name}",
        "dns_names": [f"WMSvc-SHA2-{server.exchange_name}"],
        "not_before": _INSTALLED,
        "not_after": _INSTALLED + 10 * _YEAR,
        "issuer": "self",
    }


AUTH_SPEC = {
    "subject": AUTH_SUBJECT,
    "dns_names": [],
    "not_before": _INSTALLED,
    "not_after": _INSTALLED + 5 * _YEAR,
    "issuer": "self",
}


class Builder:
    """One-shot builder; :func:`build` is the entry point."""

    def __init__(self, scenario: Scenario, now: datetime) -> None:
        self.scenario = scenario
        self.data = scenario.data
        self.now = now
        organization = self.data["organization"]
        self.org = Organization(
            name=organization["name"],
            domain=organization["domain"],
            netbios=organization["netbios"],
            domain_controller=organization["domain_controller"],
            clock=LabClock(now),
        )
        self.materials: dict[str, Material] = {}
        self.status_overrides: dict[str, str | None] = {}
        self.per_server: dict[str, dict[str, Material]] = {}

    def fail(self, path: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.scenario.name}: {path}: {message}")

    # -- authorities, CA, accounts ----------------------------------------------------------------
    def authorities(self) -> None:
        registry = pki.AuthorityRegistry(now=self.now, organization=self.org.name)
        pending = dict(self.data["authorities"])
        while pending:
            ready = [name for name, spec in pending.items() if spec["parent"] is None or spec["parent"] in registry]
            if not ready:
                raise self.fail("authorities", f"circular parents among {', '.join(sorted(pending))}")
            for name in ready:
                spec = pending.pop(name)
                registry.add(
                    name,
                    subject=spec["subject"],
                    not_before=spec["not_before"],
                    not_after=spec["not_after"],
                    parent=spec["parent"],
                    trusted=spec["trusted"],
                )
        self.org.authorities = registry
        self.org.trust = Trust(registry)
        ca = self.data["ca"]
        host = ca["host"] if "." in ca["host"] else f"{ca['host']}.{self.org.domain}"
        ca_name = ca["name"] or f"{self.org.name} Lab Issuing CA"
        templates = ca["templates"] or {
            "WebServer": {"approval": "auto", "validity": 2 * _YEAR, "ekus": ["server_auth"]}
        }
        self.org.enrolment = pki.Enrolment(
            registry.lab_ca,
            config=f"{host}\\{ca_name}",
            templates={
                name: pki.TemplateSpec(name, spec["approval"], spec["validity"], tuple(spec["ekus"]))
                for name, spec in templates.items()
            },
        )
        self.org.accounts = [
            Account(self.org.netbios, account["username"], account["password"], account["exchange_admin"])
            for account in self.data["accounts"]
        ]

    # -- certificate material -----------------------------------------------------------------------
    def generate(self, label: str, spec: dict[str, Any], path: str) -> Material:
        try:
            certificate_spec = pki.CertificateSpec(
                subject=spec["subject"],
                dns_names=tuple(spec.get("dns_names") or ()),
                key_type=spec.get("key_type") or "rsa",
                key_size=spec.get("key_size") or 2048,
                signature_hash=spec.get("signature_hash") or "sha256",
                not_before=spec["not_before"] if spec.get("not_before") is not None else timedelta(days=-1),
                not_after=spec["not_after"] if spec.get("not_after") is not None else _YEAR,
                issuer=spec.get("issuer") or "lab-ca",
                ekus=tuple(spec["ekus"]) if spec.get("ekus") is not None else ("server_auth",),
            )
            key = pki.generate_key(certificate_spec.key_type, certificate_spec.key_size, cache_key=label)
            issued = pki.make_certificate(certificate_spec, now=self.now, authorities=self.org.authorities, key=key)
        except (ValueError, pki.PkiError) as error:
            raise self.fail(path, str(error)) from None
        return Material.from_issued(issued)

    def from_files(self, files: dict[str, Any], path: str) -> Material:
        base = self.scenario.base_dir or pathlib.Path.cwd()

        def read(name: str) -> bytes:
            try:
                return (base / files[name]).read_bytes()
            except OSError as error:
                raise self.fail(f"{path}.files.{name}", f"cannot read {files[name]}: {error.strerror}") from None

        try:
            if files["pfx"]:
                contents = pki.import_pfx(read("pfx"), files["password"])
                return Material(contents.certificate, contents.private_key, contents.chain)
            blob = read("pem") if files["pem"] else read("der") if files["der"] else None
            if blob is None:
                raise self.fail(f"{path}.files", "give pfx, pem or der")
            certificate, *chain = pki.load_certificates(blob)
            key = serialization.load_pem_private_key(read("key"), None) if files["key"] else None
            return Material(certificate, key, tuple(chain))  # type: ignore[arg-type]
        except (ValueError, pki.PkiError) as error:
            raise self.fail(f"{path}.files", str(error)) from None

    def certificates(self) -> None:
        for cert_id, definition in self.data["certificates"].items():
            path = f"certificates.{cert_id}"
            self.materials[cert_id] = (
                self.from_files(definition["files"], path)
                if "files" in definition
                else self.generate(cert_id, definition, path)
            )
            self.status_overrides[cert_id] = definition.get("status")
        auth_spec = {**AUTH_SPEC, **_given(self.data["auth"]["certificate"])}
        self.materials[AUTH_DEFAULT] = self.generate("exchange-auth", auth_spec, "auth.certificate")

    # -- servers --------------------------------------------------------------------------------
    def servers(self) -> None:
        for index, spec in enumerate(self.data["servers"]):
            path = f"servers[{index}]"
            server = Server(
                name=spec["name"],
                domain=self.org.domain,
                site=spec["site"],
                version=VERSIONS[spec["version"]],
                os=spec["os"],
            )
            server.exchange_session = spec["exchange_session"]
            server.rawdata_only = spec["rawdata_only"]
            server.require_ssl = spec["iis"]["require_ssl"]
            self.org.servers[server.name] = server
            self.anchors(server)
            self.defaults(server, spec["defaults"], path)
            for position, install in enumerate(spec["certificates"]):
                self.install(server, install, f"{path}.certificates[{position}]")
            for request in spec["pending_requests"]:
                self.pending_request(server, request)
            self.bindings(server, spec)
            self.receive_connectors(server, spec["receive_connectors"], path)

    def anchors(self, server: Server) -> None:
        """The Root and intermediate stores of a domain-joined host (the lab CAs via group policy)."""
        for anchor in self.org.authorities.trust_anchors():
            server.add(StoredCertificate(Material(anchor), store=ROOT, has_private_key=False))
        server.add(
            StoredCertificate(Material(self.org.authorities.lab_ca.certificate), store="CA", has_private_key=False)
        )

    def defaults(self, server: Server, defaults: dict[str, Any], path: str) -> None:
        """Exchange's default certificates (EF "Default certificates on a server")."""
        own: dict[str, Material] = {}
        if defaults["exchange"] is not False:
            spec = {**exchange_default_spec(server), **_given(defaults["exchange"])}
            own[EXCHANGE_DEFAULT] = self.generate(f"exchange-{server.name}", spec, f"{path}.defaults.exchange")
            self.exchange_self_signed(
                server, own[EXCHANGE_DEFAULT], "Microsoft Exchange", {"IMAP", "POP", "SMTP"}, exportable=False
            )
        if defaults["wmsvc"] is not False:
            spec = {**wmsvc_spec(server), **_given(defaults["wmsvc"])}
            own[WMSVC_DEFAULT] = self.generate(f"wmsvc-{server.name}", spec, f"{path}.defaults.wmsvc")
            self.exchange_self_signed(server, own[WMSVC_DEFAULT], "WMSVC-SHA2", set(), exportable=True)
        self.per_server[server.name] = own
        if defaults["auth"] is not False:
            overrides = _given(defaults["auth"])
            stored = self.exchange_self_signed(
                server, self.materials[AUTH_DEFAULT], AUTH_FRIENDLY_NAME, {"SMTP"}, exportable=True
            )
            self.apply_install(stored, overrides)

    def exchange_self_signed(
        self, server: Server, material: Material, friendly: str, services: set[str], *, exportable: bool
    ) -> StoredCertificate:
        stored = StoredCertificate(material, MY, True, pki.KeyInfo("csp", exportable, True), friendly, set(services))
        server.add(stored)
        server.add(StoredCertificate(material, store=ROOT, has_private_key=False))
        return stored

    def resolve(self, server: Server, ref: str) -> Material:
        return self.per_server[server.name].get(ref) or self.materials.get(ref) or self._missing_default(server, ref)

    def _missing_default(self, server: Server, ref: str) -> Material:
        # A built-in the scenario switched off (defaults.exchange: false) has no material on this server.
        raise self.fail(
            f"servers.{server.name}", f"refers to {ref!r}, but that default certificate is disabled on this server"
        )

    def install(self, server: Server, install: dict[str, Any], path: str) -> None:
        if "IIS" in install["services"]:
            raise self.fail(
                f"{path}.services", "IIS comes from the IIS bindings: use iis.default_web_site / iis.back_end"
            )
        if install["store"] == REQUEST:
            raise self.fail(f"{path}.store", "use pending_requests for the request store")
        material = self.resolve(server, install["ref"])
        stored = StoredCertificate(
            material, install["store"], status_override=self.status_overrides.get(install["ref"])
        )
        self.apply_install(stored, install)
        server.add(stored)

    @staticmethod
    def apply_install(stored: StoredCertificate, install: dict[str, Any]) -> None:
        if install.get("services"):
            stored.services = set(install["services"]) - {"None"}
        info = stored.key_info
        provider = install.get("key_provider") or info.provider
        exportable = install["exportable"] if install.get("exportable") is not None else info.exportable
        network = (
            install["network_service_read"]
            if install.get("network_service_read") is not None
            else info.network_service_read
        )
        stored.key_info = pki.KeyInfo(provider, exportable, network)
        if install.get("friendly_name") is not None:
            stored.friendly_name = install["friendly_name"]
        if install.get("has_private_key") is False or stored.material.private_key is None:
            stored.has_private_key = False

    def pending_request(self, server: Server, request: dict[str, Any]) -> None:
        """A request New-ExchangeCertificate -GenerateRequest left in the REQUEST store (fresh key)."""
        key = pki.generate_key("rsa", request["key_size"])
        placeholder = pki.placeholder_for_request(key, request["subject"], now=self.now + request["created"])
        server.add(
            StoredCertificate(
                Material(placeholder, key),
                REQUEST,
                key_info=pki.KeyInfo("csp", request["exportable"], True),
                friendly_name=request["friendly_name"] or "",
                requested_domains=list(request["dns_names"]),
            )
        )

    def bindings(self, server: Server, spec: dict[str, Any]) -> None:
        iis = spec["iis"]
        for site, ref, port in ((DEFAULT_WEB_SITE, iis["default_web_site"], 443), (BACK_END, iis["back_end"], 444)):
            if ref is not None:
                server.bindings.append(IisBinding(site, f"*:{port}:", self.resolve(server, ref).thumbprint))
        if spec["internal_transport"] is not None:
            server.internal_transport = self.resolve(server, spec["internal_transport"]).thumbprint

    def receive_connectors(self, server: Server, overrides: dict[str, Any], path: str) -> None:
        """Exchange's default Receive connectors (names "<kind> <SERVER>")."""
        kinds = {
            "Default": (
                "HubTransport",
                ["0.0.0.0:2525", "[::]:2525"],
                ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
            ),
            "Client Proxy": (
                "HubTransport",
                ["0.0.0.0:465", "[::]:465"],
                ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
            ),
            "Default Frontend": (
                "FrontendTransport",
                ["0.0.0.0:25", "[::]:25"],
                ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
            ),
            "Outbound Proxy Frontend": (
                "FrontendTransport",
                ["0.0.0.0:717", "[::]:717"],
                ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
            ),
            "Client Frontend": (
                "FrontendTransport",
                ["0.0.0.0:587", "[::]:587"],
                ["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"],
            ),
        }
        for kind in overrides:
            if kind not in kinds:
                raise self.fail(
                    f"{path}.receive_connectors.{kind}", f"unknown connector kind (known: {', '.join(kinds)})"
                )
        for kind, (role, bindings, auth) in kinds.items():
            settings = overrides.get(kind) or {}
            name = settings.get("tls_certificate_name")
            if settings.get("tls_certificate"):
                name = tls_certificate_name(self.resolve(server, settings["tls_certificate"]))
            server.receive_connectors.append(
                ReceiveConnector(f"{kind} {server.exchange_name}", server.name, server.fqdn, bindings, role, auth, name)
            )

    # -- organisation-wide -------------------------------------------------------------------------
    def dags(self) -> None:
        for index, spec in enumerate(self.data["dags"]):
            dag = Dag(spec["name"], list(spec["members"]), spec["witness"])
            for member in dag.members:
                server = self.org.servers[member]
                if server.dag is not None:
                    raise self.fail(f"dags[{index}].members", f"{member} is already in DAG {server.dag}")
                server.dag = dag.name
                self.cliusr(server, spec["cliusr_validity"], self._server_spec(member)["cliusr"] or {})
            self.org.dags[dag.name] = dag

    def _server_spec(self, name: str) -> dict[str, Any]:
        return next(spec for spec in self.data["servers"] if spec["name"] == name)

    def cliusr(self, server: Server, validity: timedelta, override: dict[str, Any]) -> None:
        """The node's Cluster_PKU2U certificate, subject CN=CLIUSR ([MS-CSVP] GenerateClusterCertV2)."""
        spec = {
            "subject": "CN=CLIUSR",
            "issuer": "self",
            "ekus": ["server_auth", "client_auth"],
            "not_before": timedelta(days=-30),
            "not_after": validity - timedelta(days=30),
            **_given(override),
        }
        material = self.generate(f"cliusr-{server.name}", spec, f"servers.{server.name}.cliusr")
        server.add(StoredCertificate(material, PKU2U, True, pki.KeyInfo("cng", False, False), "Cluster PKU2U"))
        server.cliusr_password_last_set = self.now - timedelta(days=30)

    def connectors(self) -> None:
        all_servers = list(self.org.servers)
        for spec in self.data["send_connectors"]:
            name = spec["tls_certificate_name"]
            if spec["tls_certificate"]:
                name = tls_certificate_name(self.shared(spec["tls_certificate"], f"send_connectors.{spec['name']}"))
            self.org.send_connectors.append(
                SendConnector(
                    spec["name"],
                    spec["fqdn"],
                    spec["address_spaces"],
                    spec["source_servers"] or all_servers,
                    spec["require_tls"],
                    spec["enabled"],
                    spec["cloud_services_mail_enabled"],
                    name,
                )  # fmt: skip
            )
        hybrid = self.data["hybrid"]
        if hybrid is not None:
            name = hybrid["tls_certificate_name"]
            if hybrid["tls_certificate"]:
                name = tls_certificate_name(self.shared(hybrid["tls_certificate"], "hybrid.tls_certificate"))
            self.org.hybrid = HybridConfiguration(
                hybrid["name"], name,
                hybrid["sending_servers"] or all_servers, hybrid["receiving_servers"] or all_servers,
                hybrid["domains"] or [self.org.domain], hybrid["features"],
            )  # fmt: skip

    def shared(self, ref: str, path: str) -> Material:
        if ref not in self.materials:
            raise self.fail(path, f"{ref!r} is a per-server default certificate; name a shared certificate")
        return self.materials[ref]

    def auth(self) -> None:
        auth = self.data["auth"]

        def thumbprint(key: str) -> str | None:
            return self.shared(auth[key], f"auth.{key}").thumbprint if auth[key] else None

        effective = self.now + auth["next_effective"] if auth["next_effective"] is not None else None
        self.org.auth = AuthConfig(
            thumbprint("current"), thumbprint("previous"), thumbprint("next"), effective, auth["realm"]
        )
        for server in self.org.servers.values():
            server.owa_auth_certificate = self.org.auth.current
            server.next_servicelet_tick = self.now  # the servicelet runs when MSExchangeServiceHost starts


def _given(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The keys an override mapping actually sets."""
    return {key: value for key, value in (overrides or {}).items() if value is not None}


def build(scenario: Scenario, now: datetime) -> Organization:
    builder = Builder(scenario, now)
    builder.authorities()
    builder.certificates()
    builder.servers()
    builder.dags()
    builder.connectors()
    builder.auth()
    org = builder.org
    org.run_due_servicelets(org.now())
    return org
