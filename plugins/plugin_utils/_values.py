# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Typed values parsed from the results of the remote executor (docs/remote-protocol.md).

Every ``parse_<kind>(value)`` takes the JSON value of one operation result and returns a frozen
dataclass. Parsers are tolerant of nulls (any projected property may be null, e.g. for RawData-only
certificates) and strict about types: anything else raises RemoteProtocolError naming the field.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import RemoteProtocolError
from ansible_collections.exchange.pki.plugins.plugin_utils._time import parse_utc_datetime

T = TypeVar("T")


class _Fields:
    """Typed, null-tolerant access to the properties of one projected object."""

    def __init__(self, value: Any, kind: str) -> None:
        if not isinstance(value, Mapping):
            raise RemoteProtocolError(f"{kind}: expected an object, got {_type_name(value)}")
        self._data = value
        self._kind = kind

    def _error(self, name: str, expected: str, value: Any) -> RemoteProtocolError:
        return RemoteProtocolError(f"{self._kind}.{name}: expected {expected}, got {_type_name(value)}")

    def _typed(self, name: str, expected_type: type, expected: str) -> Any:
        value = self._data.get(name)
        if value is None:
            return None
        # bool is a subclass of int: an integer field must not accept true/false.
        if not isinstance(value, expected_type) or (isinstance(value, bool) and expected_type is not bool):
            raise self._error(name, expected, value)
        return value

    def opt_str(self, name: str) -> str | None:
        return self._typed(name, str, "a string")

    def req_str(self, name: str) -> str:
        value = self.opt_str(name)
        if value is None:
            raise self._error(name, "a string", None)
        return value

    def opt_bool(self, name: str) -> bool | None:
        return self._typed(name, bool, "a boolean")

    def opt_int(self, name: str) -> int | None:
        return self._typed(name, int, "an integer")

    def opt_thumbprint(self, name: str) -> str | None:
        """A thumbprint in upper case; null or empty means none."""
        value = self.opt_str(name)
        if value is None:
            return None
        return value.strip().upper() or None

    def strings(self, name: str) -> tuple[str, ...]:
        """A list of strings; null is the empty list."""
        return self.opt_strings(name) or ()

    def opt_strings(self, name: str) -> tuple[str, ...] | None:
        value = self._data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._error(name, "a list of strings", value)
        return tuple(value)

    def opt_datetime(self, name: str) -> datetime.datetime | None:
        value = self.opt_str(name)
        if value is None:
            return None
        try:
            return parse_utc_datetime(value)
        except ValueError:
            message = f"{self._kind}.{name}: expected an ISO-8601 UTC date/time, got {value!r}"
            raise RemoteProtocolError(message) from None

    def req_datetime(self, name: str) -> datetime.datetime:
        value = self.opt_datetime(name)
        if value is None:
            raise self._error(name, "an ISO-8601 UTC date/time", None)
        return value

    def opt_bytes(self, name: str) -> bytes | None:
        value = self.opt_str(name)
        if value is None:
            return None
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise RemoteProtocolError(f"{self._kind}.{name}: expected base64 data") from None

    def req_bytes(self, name: str) -> bytes:
        value = self.opt_bytes(name)
        if value is None:
            raise self._error(name, "base64 data", None)
        return value

    def opt_object(self, name: str) -> Mapping[str, Any] | None:
        value = self._data.get(name)
        if value is not None and not isinstance(value, Mapping):
            raise self._error(name, "an object", value)
        return value

    def items(self, name: str) -> Sequence[Any]:
        value = self._data.get(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self._error(name, "a list", value)
        return value


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def parse_list(value: Any, parse_item: Callable[[Any], T], kind: str) -> tuple[T, ...]:
    """Parse a list result (e.g. of Get-ExchangeCertificate) item by item; null is the empty list."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RemoteProtocolError(f"{kind}: expected a list, got {_type_name(value)}")
    return tuple(parse_item(item) for item in value)


# --- Exchange versions ------------------------------------------------------------------------------

_FAMILIES: Mapping[tuple[int, int], str] = {
    (15, 0): "Exchange Server 2013",
    (15, 1): "Exchange Server 2016",
    (15, 2): "Exchange Server 2019",
}
_SE_FIRST_BUILD = 2562  # Subscription Edition continues the 15.2 line from this build on
# (major, minor, build) -> product name; the revision (security update) does not change the CU.
_KNOWN_BUILDS: Mapping[tuple[int, int, int], str] = {
    (15, 1, 2375): "Exchange Server 2016 CU22",
    (15, 1, 2507): "Exchange Server 2016 CU23",
    (15, 2, 986): "Exchange Server 2019 CU11",
    (15, 2, 1118): "Exchange Server 2019 CU12",
    (15, 2, 1258): "Exchange Server 2019 CU13",
    (15, 2, 1544): "Exchange Server 2019 CU14",
    (15, 2, 1748): "Exchange Server 2019 CU15",
    (15, 2, 2562): "Exchange Server SE RTM",
}
_ADMIN_DISPLAY_VERSION = re.compile(r"^Version (\d+)\.(\d+) \(Build (\d+)\.(\d+)\)$")
_DOTTED_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?$")


@dataclasses.dataclass(frozen=True, order=True)
class ExchangeVersion:
    """An Exchange build number, from ExSetup.exe's file version or Get-ExchangeServer."""

    major: int
    minor: int
    build: int
    revision: int = 0

    @classmethod
    def parse(cls, text: str) -> ExchangeVersion:
        """Parse ``15.2.1544.4``, ``15.02.1544.004`` or ``Version 15.2 (Build 1544.4)``."""
        match = _ADMIN_DISPLAY_VERSION.match(text.strip()) or _DOTTED_VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"not an Exchange version: {text!r}")
        major, minor, build, revision = match.groups()
        return cls(int(major), int(minor), int(build), int(revision or 0))

    @property
    def product_name(self) -> str:
        """E.g. ``Exchange Server 2019 CU14``; unknown builds name the family and the build."""
        known = _KNOWN_BUILDS.get((self.major, self.minor, self.build))
        if known is not None:
            return known
        family = _FAMILIES.get((self.major, self.minor), "Exchange Server")
        if (self.major, self.minor) == (15, 2) and self.build >= _SE_FIRST_BUILD:
            family = "Exchange Server SE"
        return f"{family} (build {self})"

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.build}.{self.revision}"


def _opt_version(fields: _Fields, name: str, kind: str) -> ExchangeVersion | None:
    text = fields.opt_str(name)
    if text is None:
        return None
    try:
        return ExchangeVersion.parse(text)
    except ValueError:
        raise RemoteProtocolError(f"{kind}.{name}: expected an Exchange version, got {text!r}") from None


# --- Exchange objects -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExchangeCertificateRecord:
    """One certificate as Get-ExchangeCertificate reports it. Only ``raw_data`` is always present."""

    raw_data: bytes
    thumbprint: str | None = None
    subject: str | None = None
    issuer: str | None = None
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    services: tuple[str, ...] = ()
    iis_services: tuple[str, ...] = ()
    status: str | None = None
    certificate_domains: tuple[str, ...] = ()
    has_private_key: bool | None = None
    is_self_signed: bool | None = None
    public_key_size: int | None = None
    root_ca_type: str | None = None
    serial_number: str | None = None
    friendly_name: str | None = None
    private_key_exportable: bool | None = None
    signature_algorithm: str | None = None
    enhanced_key_usage_list: tuple[str, ...] = ()
    identity: str | None = None

    @property
    def rawdata_only(self) -> bool:
        """True when Exchange's metadata was lost in deserialization (exchange-facts: RawData-only)."""
        return self.thumbprint is None and self.subject is None


def parse_exchange_certificate(value: Any) -> ExchangeCertificateRecord:
    kind = "ExchangeCertificate"
    f = _Fields(value, kind)
    return ExchangeCertificateRecord(
        raw_data=f.req_bytes("RawData"),
        thumbprint=f.opt_thumbprint("Thumbprint"),
        subject=f.opt_str("Subject"),
        issuer=f.opt_str("Issuer"),
        not_before=f.opt_datetime("NotBefore"),
        not_after=f.opt_datetime("NotAfter"),
        services=f.strings("Services"),
        iis_services=f.strings("IISServices"),
        status=f.opt_str("Status"),
        certificate_domains=f.strings("CertificateDomains"),
        has_private_key=f.opt_bool("HasPrivateKey"),
        is_self_signed=f.opt_bool("IsSelfSigned"),
        public_key_size=f.opt_int("PublicKeySize"),
        root_ca_type=f.opt_str("RootCAType"),
        serial_number=f.opt_str("SerialNumber"),
        friendly_name=f.opt_str("FriendlyName"),
        private_key_exportable=f.opt_bool("PrivateKeyExportable"),
        signature_algorithm=f.opt_str("SignatureAlgorithm"),
        enhanced_key_usage_list=f.strings("EnhancedKeyUsageList"),
        identity=f.opt_str("Identity"),
    )


def parse_exchange_certificates(value: Any) -> tuple[ExchangeCertificateRecord, ...]:
    return parse_list(value, parse_exchange_certificate, "ExchangeCertificate[]")


def parse_file_data(value: Any) -> bytes:
    """The ``{"FileData": <base64>}`` of a generated request or an exported PFX."""
    return _Fields(value, "FileData").req_bytes("FileData")


@dataclasses.dataclass(frozen=True)
class AuthConfig:
    current_certificate_thumbprint: str | None
    previous_certificate_thumbprint: str | None
    next_certificate_thumbprint: str | None
    next_certificate_effective_date: datetime.datetime | None
    service_name: str | None
    realm: str | None


def parse_auth_config(value: Any) -> AuthConfig:
    f = _Fields(value, "AuthConfig")
    return AuthConfig(
        current_certificate_thumbprint=f.opt_thumbprint("CurrentCertificateThumbprint"),
        previous_certificate_thumbprint=f.opt_thumbprint("PreviousCertificateThumbprint"),
        next_certificate_thumbprint=f.opt_thumbprint("NextCertificateThumbprint"),
        next_certificate_effective_date=f.opt_datetime("NextCertificateEffectiveDate"),
        service_name=f.opt_str("ServiceName"),
        realm=f.opt_str("Realm"),
    )


@dataclasses.dataclass(frozen=True)
class TransportService:
    name: str
    fqdn: str | None
    internal_transport_certificate_thumbprint: str | None


def parse_transport_service(value: Any) -> TransportService:
    f = _Fields(value, "TransportService")
    return TransportService(
        name=f.req_str("Name"),
        fqdn=f.opt_str("Fqdn"),
        internal_transport_certificate_thumbprint=f.opt_thumbprint("InternalTransportCertificateThumbprint"),
    )


@dataclasses.dataclass(frozen=True)
class SendConnector:
    identity: str
    name: str | None
    enabled: bool | None
    fqdn: str | None
    require_tls: bool | None
    tls_certificate_name: str | None
    source_transport_servers: tuple[str, ...]
    address_spaces: tuple[str, ...]
    cloud_services_mail_enabled: bool | None


def parse_send_connector(value: Any) -> SendConnector:
    f = _Fields(value, "SendConnector")
    return SendConnector(
        identity=f.req_str("Identity"),
        name=f.opt_str("Name"),
        enabled=f.opt_bool("Enabled"),
        fqdn=f.opt_str("Fqdn"),
        require_tls=f.opt_bool("RequireTLS"),
        tls_certificate_name=f.opt_str("TlsCertificateName") or None,
        source_transport_servers=f.strings("SourceTransportServers"),
        address_spaces=f.strings("AddressSpaces"),
        cloud_services_mail_enabled=f.opt_bool("CloudServicesMailEnabled"),
    )


@dataclasses.dataclass(frozen=True)
class ReceiveConnector:
    identity: str
    name: str | None
    server: str | None
    enabled: bool | None
    fqdn: str | None
    bindings: tuple[str, ...]
    transport_role: str | None
    tls_certificate_name: str | None
    auth_mechanism: tuple[str, ...]


def parse_receive_connector(value: Any) -> ReceiveConnector:
    f = _Fields(value, "ReceiveConnector")
    return ReceiveConnector(
        identity=f.req_str("Identity"),
        name=f.opt_str("Name"),
        server=f.opt_str("Server"),
        enabled=f.opt_bool("Enabled"),
        fqdn=f.opt_str("Fqdn"),
        bindings=f.strings("Bindings"),
        transport_role=f.opt_str("TransportRole"),
        tls_certificate_name=f.opt_str("TlsCertificateName") or None,
        auth_mechanism=f.strings("AuthMechanism"),
    )


@dataclasses.dataclass(frozen=True)
class HybridConfiguration:
    name: str | None
    tls_certificate_name: str | None
    sending_transport_servers: tuple[str, ...]
    receiving_transport_servers: tuple[str, ...]
    domains: tuple[str, ...]
    features: tuple[str, ...]


def parse_hybrid_configuration(value: Any) -> HybridConfiguration | None:
    """Null when the organization has no hybrid configuration."""
    if value is None:
        return None
    f = _Fields(value, "HybridConfiguration")
    return HybridConfiguration(
        name=f.opt_str("Name"),
        tls_certificate_name=f.opt_str("TlsCertificateName") or None,
        sending_transport_servers=f.strings("SendingTransportServers"),
        receiving_transport_servers=f.strings("ReceivingTransportServers"),
        domains=f.strings("Domains"),
        features=f.strings("Features"),
    )


@dataclasses.dataclass(frozen=True)
class ExchangeServer:
    name: str
    fqdn: str | None
    admin_display_version: str | None
    version: ExchangeVersion | None
    server_role: tuple[str, ...]
    site: str | None
    edition: str | None
    is_exchange_trial_edition: bool | None


def parse_exchange_server(value: Any) -> ExchangeServer:
    kind = "ExchangeServer"
    f = _Fields(value, kind)
    return ExchangeServer(
        name=f.req_str("Name"),
        fqdn=f.opt_str("Fqdn"),
        admin_display_version=f.opt_str("AdminDisplayVersion"),
        version=_opt_version(f, "AdminDisplayVersion", kind),
        server_role=f.strings("ServerRole"),
        site=f.opt_str("Site"),
        edition=f.opt_str("Edition"),
        is_exchange_trial_edition=f.opt_bool("IsExchangeTrialEdition"),
    )


@dataclasses.dataclass(frozen=True)
class DagInfo:
    """A DatabaseAvailabilityGroup; the operational fields are None unless queried with Status."""

    name: str
    servers: tuple[str, ...]
    witness_server: str | None
    operational_servers: tuple[str, ...] | None
    primary_active_manager: str | None


def parse_dag(value: Any) -> DagInfo:
    f = _Fields(value, "DatabaseAvailabilityGroup")
    return DagInfo(
        name=f.req_str("Name"),
        servers=f.strings("Servers"),
        witness_server=f.opt_str("WitnessServer"),
        operational_servers=f.opt_strings("OperationalServers"),
        primary_active_manager=f.opt_str("PrimaryActiveManager"),
    )


# --- host objects ---------------------------------------------------------------------------------

KeyProvider = Literal["csp", "cng"]


@dataclasses.dataclass(frozen=True)
class StoreCertificate:
    """A certificate read from a LocalMachine store through .NET, with its private key facts."""

    store: str
    thumbprint: str
    raw_data: bytes
    friendly_name: str | None = None
    has_private_key: bool | None = None
    key_provider: KeyProvider | None = None
    key_provider_name: str | None = None
    key_exportable: bool | None = None
    network_service_can_read_key: bool | None = None
    archived: bool | None = None


def parse_store_certificate(value: Any) -> StoreCertificate:
    kind = "StoreCertificate"
    f = _Fields(value, kind)
    provider = f.opt_str("KeyProvider")
    if provider not in (None, "csp", "cng"):
        raise RemoteProtocolError(f"{kind}.KeyProvider: expected csp, cng or null, got {provider!r}")
    thumbprint = f.opt_thumbprint("Thumbprint")
    if thumbprint is None:
        raise RemoteProtocolError(f"{kind}.Thumbprint: expected a string, got null")
    return StoreCertificate(
        store=f.req_str("Store"),
        thumbprint=thumbprint,
        raw_data=f.req_bytes("RawData"),
        friendly_name=f.opt_str("FriendlyName") or None,
        has_private_key=f.opt_bool("HasPrivateKey"),
        key_provider=provider,  # type: ignore[arg-type]  # checked above
        key_provider_name=f.opt_str("KeyProviderName"),
        key_exportable=f.opt_bool("KeyExportable"),
        network_service_can_read_key=f.opt_bool("NetworkServiceCanReadKey"),
        archived=f.opt_bool("Archived"),
    )


def parse_store_certificates(value: Any) -> tuple[StoreCertificate, ...]:
    return parse_list(value, parse_store_certificate, "StoreCertificate[]")


@dataclasses.dataclass(frozen=True)
class IisBinding:
    site: str
    protocol: str
    binding_information: str
    host_header: str | None
    certificate_hash: str | None
    certificate_store_name: str | None
    ssl_flags: int

    @property
    def port(self) -> int | None:
        """The port of ``ip:port:host``; None when the binding information is malformed."""
        parts = self.binding_information.split(":")
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def parse_iis_binding(value: Any) -> IisBinding:
    f = _Fields(value, "IisBinding")
    return IisBinding(
        site=f.req_str("Site"),
        protocol=f.req_str("Protocol"),
        binding_information=f.req_str("BindingInformation"),
        host_header=f.opt_str("HostHeader") or None,
        certificate_hash=f.opt_thumbprint("CertificateHash"),
        certificate_store_name=f.opt_str("CertificateStoreName") or None,
        ssl_flags=f.opt_int("SslFlags") or 0,
    )


def parse_iis_bindings(value: Any) -> tuple[IisBinding, ...]:
    return parse_list(value, parse_iis_binding, "IisBinding[]")


@dataclasses.dataclass(frozen=True)
class ClusterNode:
    name: str
    state: str | None


@dataclasses.dataclass(frozen=True)
class CliusrAccount:
    exists: bool
    enabled: bool | None
    password_last_set: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class ClusterFacts:
    name: str
    nodes: tuple[ClusterNode, ...]
    cliusr_account: CliusrAccount | None


def _parse_cluster_node(value: Any) -> ClusterNode:
    f = _Fields(value, "ClusterNode")
    return ClusterNode(name=f.req_str("Name"), state=f.opt_str("State"))


def _parse_cliusr_account(value: Any) -> CliusrAccount | None:
    if value is None:
        return None
    f = _Fields(value, "CliusrAccount")
    exists = f.opt_bool("Exists")
    if exists is None:
        raise RemoteProtocolError("CliusrAccount.Exists: expected a boolean, got null")
    return CliusrAccount(
        exists=exists, enabled=f.opt_bool("Enabled"), password_last_set=f.opt_datetime("PasswordLastSet"),
    )


def parse_cluster(value: Any) -> ClusterFacts | None:
    """Null when the host is not a failover-cluster node."""
    if value is None:
        return None
    f = _Fields(value, "Cluster")
    return ClusterFacts(
        name=f.req_str("Name"),
        nodes=tuple(_parse_cluster_node(node) for node in f.items("Nodes")),
        cliusr_account=_parse_cliusr_account(f.opt_object("CliusrAccount")),
    )


CertReqStatus = Literal["Issued", "Pending", "Denied", "Failed"]
_CERTREQ_STATUSES = ("Issued", "Pending", "Denied", "Failed")


@dataclasses.dataclass(frozen=True)
class CertReqResult:
    status: CertReqStatus
    request_id: int | None
    disposition: str | None
    certificate: bytes | None


def parse_certreq_result(value: Any) -> CertReqResult:
    kind = "CertReqResult"
    f = _Fields(value, kind)
    status = f.req_str("Status")
    if status not in _CERTREQ_STATUSES:
        raise RemoteProtocolError(f"{kind}.Status: expected one of {', '.join(_CERTREQ_STATUSES)}, got {status!r}")
    certificate = f.opt_bytes("Certificate")
    if status == "Issued" and certificate is None:
        raise RemoteProtocolError(f"{kind}.Certificate: an issued request must carry the certificate")
    return CertReqResult(
        status=status,  # type: ignore[arg-type]  # checked above
        request_id=f.opt_int("RequestId"),
        disposition=f.opt_str("Disposition"),
        certificate=certificate,
    )


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    name: str
    status: str


def parse_service_status(value: Any) -> ServiceStatus:
    f = _Fields(value, "ServiceStatus")
    return ServiceStatus(name=f.req_str("Name"), status=f.req_str("Status"))


@dataclasses.dataclass(frozen=True)
class HostInfo:
    computer_name: str
    fqdn: str | None
    domain: str | None
    os_version: str | None
    powershell_version: str | None
    exchange_install_path: str | None
    exchange_version: ExchangeVersion | None
    utc_now: datetime.datetime


def parse_host_info(value: Any) -> HostInfo:
    kind = "HostInfo"
    f = _Fields(value, kind)
    return HostInfo(
        computer_name=f.req_str("ComputerName"),
        fqdn=f.opt_str("Fqdn"),
        domain=f.opt_str("Domain"),
        os_version=f.opt_str("OSVersion"),
        powershell_version=f.opt_str("PowerShellVersion"),
        exchange_install_path=f.opt_str("ExchangeInstallPath"),
        exchange_version=_opt_version(f, "ExchangeVersion", kind),
        utc_now=f.req_datetime("UtcNow"),
    )
