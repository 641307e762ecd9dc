# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The object projections docs/remote-protocol.md returns (PascalCase, the cmdlets' own property names)."""

from __future__ import annotations

from typing import Any

from .certificates import KEY_PROVIDER_NAMES, REQUEST, ROOT, StoredCertificate
from .clock import iso
from .organization import (
    IIS_SITE_IDS,
    Dag,
    HybridConfiguration,
    Organization,
    ReceiveConnector,
    SendConnector,
    Server,
)

EXCHANGE_CERTIFICATE_FIELDS = (
    "Thumbprint", "Subject", "Issuer", "NotBefore", "NotAfter", "Services", "IISServices", "Status",
    "CertificateDomains", "HasPrivateKey", "IsSelfSigned", "PublicKeySize", "RootCAType", "SerialNumber",
    "FriendlyName", "PrivateKeyExportable", "SignatureAlgorithm", "EnhancedKeyUsageList", "Identity",
)  # fmt: skip


def status(org: Organization, server: Server, stored: StoredCertificate) -> str:
    """Exchange's Status (EF "Get-ExchangeCertificate": Status values).

    PendingRequest for the request store; a scenario override (Revoked, RevocationCheckFailure, Invalid,
    Unknown: outcomes of revocation checking the lab does not run); DateInvalid outside NotBefore..NotAfter;
    self-signed certificates are Valid when the server trusts them (Exchange's own self-signed certificates
    sit in its Root store, EF "Exchange self-signed certs report Valid"), else Untrusted; issued ones are
    Valid when their chain ends at a trusted root, else Untrusted.
    """
    if stored.store == REQUEST:
        return "PendingRequest"
    if stored.status_override:
        return stored.status_override
    material = stored.material
    if not material.time_valid(org.now()):
        return "DateInvalid"
    if material.is_self_signed:
        return "Valid" if server.find(material.thumbprint, ROOT) else "Untrusted"
    return "Valid" if org.trust.chain_trusted(material) else "Untrusted"


def root_ca_type(org: Organization, stored: StoredCertificate) -> str:
    """RootCAType: Unknown for requests, None for self-signed, Enterprise for the AD CS hierarchy, else ThirdParty."""
    if stored.store == REQUEST:
        return "Unknown"
    if stored.material.is_self_signed:
        return "None"
    root = org.trust.root_of(stored.material)
    return "Enterprise" if root is not None and root.name == "lab-root" else "ThirdParty"


def exchange_certificate(org: Organization, server: Server, stored: StoredCertificate) -> dict[str, Any]:
    """An ExchangeCertificate; RawData only (everything else null) in the server's RawData-only mode
    (EF "Get-ExchangeCertificate": objects can arrive with ONLY RawData)."""
    material = stored.material
    if server.rawdata_only:
        return {**dict.fromkeys(EXCHANGE_CERTIFICATE_FIELDS), "RawData": material.raw_data}
    pending = stored.store == REQUEST
    return {
        "Thumbprint": material.thumbprint,
        "Subject": material.subject,
        "Issuer": material.issuer,
        "NotBefore": iso(material.not_before),
        "NotAfter": iso(material.not_after),
        "Services": server.services_of(stored),
        "IISServices": [
            f"IIS://{server.fqdn}/W3SVC/{IIS_SITE_IDS[site]}" for site in server.iis_sites_of(material.thumbprint)
        ],
        "Status": status(org, server, stored),
        "CertificateDomains": list(stored.requested_domains if pending else material.certificate_domains),
        "HasPrivateKey": stored.has_private_key,
        "IsSelfSigned": material.is_self_signed and not pending,
        "PublicKeySize": material.public_key_size,
        "RootCAType": root_ca_type(org, stored),
        "SerialNumber": material.serial_number,
        "FriendlyName": stored.friendly_name,
        "PrivateKeyExportable": stored.has_private_key and stored.key_info.exportable,
        "SignatureAlgorithm": material.signature_algorithm,
        "EnhancedKeyUsageList": list(material.enhanced_key_usage),
        "Identity": f"{server.exchange_name}\\{material.thumbprint}",
        "RawData": material.raw_data,
    }


def store_certificate(stored: StoredCertificate) -> dict[str, Any]:
    """A StoreCertificate (host.certificates): what .NET tells about the certificate and its key."""
    has_key = stored.has_private_key
    provider = stored.key_info.provider if has_key else None
    return {
        "Store": stored.store,
        "Thumbprint": stored.thumbprint,
        "FriendlyName": stored.friendly_name,
        "HasPrivateKey": has_key,
        "KeyProvider": provider,
        "KeyProviderName": KEY_PROVIDER_NAMES[provider] if provider else None,
        "KeyExportable": stored.key_info.exportable if has_key else None,
        "NetworkServiceCanReadKey": stored.key_info.network_service_read if has_key else None,
        "Archived": False,
        "RawData": stored.material.raw_data,
    }


def transport_service(server: Server) -> dict[str, Any]:
    return {
        "Name": server.exchange_name,
        "Fqdn": server.fqdn,
        "InternalTransportCertificateThumbprint": server.internal_transport,
    }


def send_connector(org: Organization, connector: SendConnector) -> dict[str, Any]:
    return {
        "Identity": connector.name,
        "Name": connector.name,
        "Enabled": connector.enabled,
        "Fqdn": connector.fqdn,
        "RequireTLS": connector.require_tls,
        "TlsCertificateName": connector.tls_certificate_name,
        "SourceTransportServers": [org.servers[name].exchange_name for name in connector.source_servers],
        "AddressSpaces": list(connector.address_spaces),
        "CloudServicesMailEnabled": connector.cloud_services_mail_enabled,
    }


def receive_connector(org: Organization, connector: ReceiveConnector) -> dict[str, Any]:
    server = org.servers[connector.server]
    return {
        "Identity": f"{server.exchange_name}\\{connector.name}",
        "Name": connector.name,
        "Server": server.exchange_name,
        "Enabled": connector.enabled,
        "Fqdn": connector.fqdn,
        "Bindings": list(connector.bindings),
        "TransportRole": connector.transport_role,
        "TlsCertificateName": connector.tls_certificate_name,
        "AuthMechanism": list(connector.auth_mechanism),
    }


def protocol_settings(server: Server, protocol: str) -> dict[str, Any]:
    """Get-ImapSettings / Get-PopSettings of one server (the projected properties)."""
    return {
        "Server": server.exchange_name,
        "X509CertificateName": server.x509_certificate_names[protocol],
    }


def hybrid_configuration(org: Organization, hybrid: HybridConfiguration) -> dict[str, Any]:
    return {
        "Name": hybrid.name,
        "TlsCertificateName": hybrid.tls_certificate_name,
        "SendingTransportServers": [org.servers[name].exchange_name for name in hybrid.sending_servers],
        "ReceivingTransportServers": [org.servers[name].exchange_name for name in hybrid.receiving_servers],
        "Domains": list(hybrid.domains),
        "Features": list(hybrid.features),
    }


def exchange_server(server: Server) -> dict[str, Any]:
    return {
        "Name": server.exchange_name,
        "Fqdn": server.fqdn,
        "AdminDisplayVersion": server.version.admin_display_version,
        "ServerRole": ["Mailbox"],
        "Site": server.site,
        "Edition": "Enterprise",
        "IsExchangeTrialEdition": False,
    }


def database_availability_group(org: Organization, dag: Dag, with_status: bool) -> dict[str, Any]:
    members = [org.servers[name].exchange_name for name in dag.members]
    return {
        "Name": dag.name,
        "Servers": members,
        "WitnessServer": dag.witness,
        "OperationalServers": members if with_status else None,
        "PrimaryActiveManager": (members[0] if members else None) if with_status else None,
    }
