# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the typed values parsed from the remote executor's results."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import RemoteProtocolError
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    ExchangeVersion,
    parse_auth_config,
    parse_certreq_result,
    parse_cluster,
    parse_dag,
    parse_exchange_certificate,
    parse_exchange_certificates,
    parse_exchange_server,
    parse_file_data,
    parse_host_info,
    parse_hybrid_configuration,
    parse_iis_bindings,
    parse_receive_connector,
    parse_send_connector,
    parse_service_status,
    parse_store_certificate,
    parse_store_certificates,
    parse_transport_service,
)

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def certificate_der() -> bytes:
    """A small self-signed certificate, as Exchange's RawData would carry it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EX1")])
    now = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365 * 5))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def exchange_certificate(certificate_der: bytes) -> dict[str, Any]:
    thumbprint = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
    return {
        "Thumbprint": thumbprint,
        "Subject": "CN=EX1",
        "Issuer": "CN=EX1",
        "NotBefore": "2026-01-01T00:00:00.000Z",
        "NotAfter": "2030-12-31T00:00:00.0000000Z",
        "Services": ["IMAP", "POP", "IIS", "SMTP"],
        "IISServices": ["IIS://EX1/W3SVC/1"],
        "Status": "Valid",
        "CertificateDomains": ["EX1", "ex1.contoso.lab"],
        "HasPrivateKey": True,
        "IsSelfSigned": True,
        "PublicKeySize": 2048,
        "RootCAType": "Registry",
        "SerialNumber": "5E1A",
        "FriendlyName": "Microsoft Exchange",
        "PrivateKeyExportable": False,
        "SignatureAlgorithm": "sha256RSA",
        "EnhancedKeyUsageList": ["Server Authentication (1.3.6.1.5.5.7.3.1)"],
        "Identity": f"EX1\\{thumbprint.upper()}",
        "RawData": base64.b64encode(certificate_der).decode(),
    }


# --- Exchange certificates ------------------------------------------------------------------------


def test_parse_exchange_certificate(exchange_certificate: dict[str, Any], certificate_der: bytes) -> None:
    record = parse_exchange_certificate(exchange_certificate)
    assert record.raw_data == certificate_der
    assert record.thumbprint == "0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C"
    assert record.services == ("IMAP", "POP", "IIS", "SMTP")
    assert record.not_after == datetime.datetime(2030, 12, 31, tzinfo=UTC)
    assert record.public_key_size == 2048
    assert record.private_key_exportable is False
    assert not record.rawdata_only


def test_parse_rawdata_only_certificate(certificate_der: bytes) -> None:
    record = parse_exchange_certificate(
        {"RawData": base64.b64encode(certificate_der).decode(), "Thumbprint": None, "Services": None, "NotAfter": None}
    )
    assert record.rawdata_only
    assert record.services == ()
    assert record.not_after is None
    assert record.raw_data == certificate_der


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("RawData", None, "ExchangeCertificate.RawData: expected base64 data, got null"),
        ("RawData", "not base64!", "ExchangeCertificate.RawData: expected base64 data"),
        ("Services", "IMAP, POP, IIS, SMTP", "ExchangeCertificate.Services: expected a list of strings, got str"),
        ("Services", [1], "ExchangeCertificate.Services: expected a list of strings"),
        ("PublicKeySize", True, "ExchangeCertificate.PublicKeySize: expected an integer, got bool"),
        ("PublicKeySize", "2048", "ExchangeCertificate.PublicKeySize: expected an integer, got str"),
        ("HasPrivateKey", "True", "ExchangeCertificate.HasPrivateKey: expected a boolean, got str"),
        ("NotAfter", "2030-12-31T00:00:00", "ExchangeCertificate.NotAfter: expected an ISO-8601 UTC date/time"),
        ("Thumbprint", 12, "ExchangeCertificate.Thumbprint: expected a string, got int"),
    ],
)
def test_parse_exchange_certificate_rejects_bad_fields(
    exchange_certificate: dict[str, Any],
    field: str,
    value: Any,
    message: str,
) -> None:
    exchange_certificate[field] = value
    with pytest.raises(RemoteProtocolError) as raised:
        parse_exchange_certificate(exchange_certificate)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [("x", "ExchangeCertificate[]: expected a list, got str"), ([None], "ExchangeCertificate: expected an object")],
)
def test_parse_exchange_certificates_rejects_non_lists(value: Any, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_exchange_certificates(value)


def test_parse_exchange_certificates_null_is_empty() -> None:
    assert parse_exchange_certificates(None) == ()


def test_parse_file_data() -> None:
    assert parse_file_data({"FileData": "MAA="}) == b"\x30\x00"
    with pytest.raises(RemoteProtocolError, match="FileData.FileData"):
        parse_file_data({"FileData": None})


# --- other Exchange objects -----------------------------------------------------------------------


def test_parse_auth_config() -> None:
    auth = parse_auth_config(
        {
            "CurrentCertificateThumbprint": "ab" * 20,
            "PreviousCertificateThumbprint": "",
            "NextCertificateThumbprint": "CD" * 20,
            "NextCertificateEffectiveDate": "2026-11-27T11:00:00.000Z",
            "ServiceName": "00000002-0000-0ff1-ce00-000000000000",
            "Realm": "",
        }
    )
    assert auth.current_certificate_thumbprint == "AB" * 20
    assert auth.previous_certificate_thumbprint is None
    assert auth.next_certificate_effective_date == datetime.datetime(2026, 11, 27, 11, tzinfo=UTC)


def test_parse_transport_service() -> None:
    service = parse_transport_service(
        {"Name": "EX1", "Fqdn": "ex1.contoso.lab", "InternalTransportCertificateThumbprint": None}
    )
    assert service.internal_transport_certificate_thumbprint is None
    with pytest.raises(RemoteProtocolError, match="TransportService.Name: expected a string, got null"):
        parse_transport_service({"Fqdn": "ex1.contoso.lab"})


def test_parse_connectors() -> None:
    send = parse_send_connector(
        {
            "Identity": "Outbound to Office 365",
            "Name": "Outbound to Office 365",
            "Enabled": True,
            "Fqdn": "mail.contoso.com",
            "RequireTLS": True,
            "TlsCertificateName": "<I>CN=Contoso Issuing CA 1<S>CN=mail.contoso.com",
            "SourceTransportServers": ["EX1", "EX2"],
            "AddressSpaces": ["smtp:*.mail.onmicrosoft.com;1"],
            "CloudServicesMailEnabled": True,
        }
    )
    assert send.source_transport_servers == ("EX1", "EX2")
    assert send.tls_certificate_name.startswith("<I>")
    receive = parse_receive_connector(
        {
            "Identity": "EX1\\Default Frontend EX1",
            "Name": "Default Frontend EX1",
            "Server": "EX1",
            "Enabled": True,
            "Fqdn": "ex1.contoso.lab",
            "Bindings": ["0.0.0.0:25", "[::]:25"],
            "TransportRole": "FrontendTransport",
            "TlsCertificateName": "",
            "AuthMechanism": ["Tls", "Integrated", "BasicAuth"],
        }
    )
    assert receive.tls_certificate_name is None
    assert receive.auth_mechanism == ("Tls", "Integrated", "BasicAuth")
    with pytest.raises(RemoteProtocolError, match="SendConnector.Enabled: expected a boolean"):
        parse_send_connector({"Identity": "x", "Enabled": "true"})


def test_parse_hybrid_configuration() -> None:
    assert parse_hybrid_configuration(None) is None
    hybrid = parse_hybrid_configuration(
        {
            "Name": "Hybrid Configuration",
            "TlsCertificateName": "<I>CN=CA<S>CN=mail.contoso.com",
            "SendingTransportServers": ["EX1"],
            "ReceivingTransportServers": ["EX1", "EX2"],
            "Domains": ["contoso.com"],
            "Features": ["FreeBusy", "MoveMailbox"],
        }
    )
    assert hybrid.receiving_transport_servers == ("EX1", "EX2")
    with pytest.raises(RemoteProtocolError, match="HybridConfiguration: expected an object, got list"):
        parse_hybrid_configuration([])


def test_parse_exchange_server() -> None:
    server = parse_exchange_server(
        {
            "Name": "EX1",
            "Fqdn": "ex1.contoso.lab",
            "AdminDisplayVersion": "Version 15.2 (Build 1748.10)",
            "ServerRole": ["Mailbox"],
            "Site": "Default-First-Site-Name",
            "Edition": "StandardEvaluation",
            "IsExchangeTrialEdition": True,
        }
    )
    assert server.version == ExchangeVersion(15, 2, 1748, 10)
    assert server.version.product_name == "Exchange Server 2019 CU15"
    with pytest.raises(RemoteProtocolError, match="ExchangeServer.AdminDisplayVersion: expected an Exchange version"):
        parse_exchange_server({"Name": "EX1", "AdminDisplayVersion": "Version 15"})


def test_parse_dag_with_and_without_status() -> None:
    plain = parse_dag({"Name": "DAG1", "Servers": ["EX1", "EX2"], "WitnessServer": "fs1.contoso.lab"})
    assert plain.operational_servers is None
    assert plain.primary_active_manager is None
    status = parse_dag(
        {
            "Name": "DAG1",
            "Servers": ["EX1", "EX2"],
            "WitnessServer": "fs1.contoso.lab",
            "OperationalServers": ["EX1"],
            "PrimaryActiveManager": "EX1",
        }
    )
    assert status.operational_servers == ("EX1",)


# --- host objects ---------------------------------------------------------------------------------


def _store_certificate(**overrides: Any) -> dict[str, Any]:
    value = {
        "Store": "My",
        "Thumbprint": "ab" * 20,
        "FriendlyName": "",
        "HasPrivateKey": True,
        "KeyProvider": "csp",
        "KeyProviderName": "Microsoft Enhanced RSA and AES Cryptographic Provider",
        "KeyExportable": True,
        "NetworkServiceCanReadKey": None,
        "Archived": False,
        "RawData": "MAA=",
    }
    value.update(overrides)
    return value


def test_parse_store_certificate() -> None:
    record = parse_store_certificate(_store_certificate())
    assert record.thumbprint == "AB" * 20
    assert record.friendly_name is None
    assert record.key_provider == "csp"
    assert record.network_service_can_read_key is None
    assert parse_store_certificates([_store_certificate(KeyProvider=None)])[0].key_provider is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"KeyProvider": "ksp"}, "StoreCertificate.KeyProvider: expected csp, cng or null, got 'ksp'"),
        ({"Thumbprint": None}, "StoreCertificate.Thumbprint: expected a string, got null"),
        ({"Store": None}, "StoreCertificate.Store: expected a string, got null"),
        ({"KeyExportable": 1}, "StoreCertificate.KeyExportable: expected a boolean, got int"),
    ],
)
def test_parse_store_certificate_rejects_bad_fields(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        parse_store_certificate(_store_certificate(**overrides))
    assert message in str(raised.value)


def test_parse_iis_bindings() -> None:
    (binding,) = parse_iis_bindings(
        [
            {
                "Site": "Exchange Back End",
                "Protocol": "https",
                "BindingInformation": "*:444:",
                "HostHeader": "",
                "CertificateHash": "ab" * 20,
                "CertificateStoreName": "My",
                "SslFlags": 0,
            }
        ]
    )
    assert (binding.port, binding.host_header, binding.certificate_hash) == (444, None, "AB" * 20)
    with pytest.raises(RemoteProtocolError, match="IisBinding.SslFlags: expected an integer"):
        parse_iis_bindings([{"Site": "s", "Protocol": "https", "BindingInformation": "*:443:", "SslFlags": "0"}])


def test_parse_cluster() -> None:
    assert parse_cluster(None) is None
    cluster = parse_cluster(
        {
            "Name": "DAG1",
            "Nodes": [{"Name": "EX1", "State": "Up"}, {"Name": "EX2", "State": "Down"}],
            "CliusrAccount": {"Exists": True, "Enabled": True, "PasswordLastSet": "2026-10-01T00:00:00.000Z"},
        }
    )
    assert [node.state for node in cluster.nodes] == ["Up", "Down"]
    assert cluster.cliusr_account.password_last_set == datetime.datetime(2026, 10, 1, tzinfo=UTC)
    unknown = parse_cluster({"Name": "DAG1", "Nodes": [], "CliusrAccount": None})
    assert unknown.cliusr_account is None
    with pytest.raises(RemoteProtocolError, match="CliusrAccount.Exists"):
        parse_cluster({"Name": "DAG1", "Nodes": [], "CliusrAccount": {"Exists": None}})
    with pytest.raises(RemoteProtocolError, match="Cluster.Nodes: expected a list"):
        parse_cluster({"Name": "DAG1", "Nodes": {"Name": "EX1"}})


def test_parse_certreq_result(certificate_der: bytes) -> None:
    issued = parse_certreq_result(
        {
            "Status": "Issued",
            "RequestId": 17,
            "Disposition": "Issued",
            "Certificate": base64.b64encode(certificate_der).decode(),
        }
    )
    assert (issued.request_id, issued.certificate) == (17, certificate_der)
    pending = parse_certreq_result(
        {"Status": "Pending", "RequestId": 18, "Disposition": "Taken Under Submission", "Certificate": None}
    )
    assert pending.certificate is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Status": "Issued", "RequestId": 1, "Certificate": None}, "an issued request must carry the certificate"),
        (
            {"Status": "Approved", "RequestId": 1},
            "CertReqResult.Status: expected one of Issued, Pending, Denied, Failed",
        ),
        ({"Status": "Denied", "RequestId": "1"}, "CertReqResult.RequestId: expected an integer"),
    ],
)
def test_parse_certreq_result_rejects_bad_data(value: dict[str, Any], message: str) -> None:
    with pytest.raises(RemoteProtocolError) as raised:
        parse_certreq_result(value)
    assert message in str(raised.value)


def test_parse_service_status() -> None:
    assert parse_service_status({"Name": "MSExchangeServiceHost", "Status": "Running"}).status == "Running"


def test_parse_host_info() -> None:
    info = parse_host_info(
        {
            "ComputerName": "EX1",
            "Fqdn": "ex1.contoso.lab",
            "Domain": "contoso.lab",
            "OSVersion": "10.0.20348.0",
            "PowerShellVersion": "5.1.20348.2849",
            "ExchangeInstallPath": None,
            "ExchangeVersion": "15.02.2562.017",
            "UtcNow": "2026-11-25T10:00:00.000Z",
        }
    )
    assert info.exchange_version == ExchangeVersion(15, 2, 2562, 17)
    assert info.exchange_version.product_name == "Exchange Server SE RTM"
    with pytest.raises(RemoteProtocolError, match="HostInfo.UtcNow"):
        parse_host_info({"ComputerName": "EX1"})


@pytest.mark.parametrize(
    "parser",
    [
        parse_auth_config,
        parse_transport_service,
        parse_send_connector,
        parse_receive_connector,
        parse_exchange_server,
        parse_dag,
        parse_store_certificate,
        parse_certreq_result,
        parse_service_status,
        parse_host_info,
    ],
)
def test_parsers_reject_non_objects(parser: Callable[[Any], Any]) -> None:
    with pytest.raises(RemoteProtocolError, match="expected an object, got str"):
        parser("not an object")


# --- Exchange versions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "version", "product"),
    [
        ("15.1.2507.6", ExchangeVersion(15, 1, 2507, 6), "Exchange Server 2016 CU23"),
        ("Version 15.1 (Build 2507.39)", ExchangeVersion(15, 1, 2507, 39), "Exchange Server 2016 CU23"),
        ("15.2.1544.4", ExchangeVersion(15, 2, 1544, 4), "Exchange Server 2019 CU14"),
        ("15.02.1748.010", ExchangeVersion(15, 2, 1748, 10), "Exchange Server 2019 CU15"),
        ("Version 15.2 (Build 2562.17)", ExchangeVersion(15, 2, 2562, 17), "Exchange Server SE RTM"),
        ("15.2.1600.1", ExchangeVersion(15, 2, 1600, 1), "Exchange Server 2019 (build 15.2.1600.1)"),
        ("15.2.2600.3", ExchangeVersion(15, 2, 2600, 3), "Exchange Server SE (build 15.2.2600.3)"),
        ("15.1.2044", ExchangeVersion(15, 1, 2044, 0), "Exchange Server 2016 (build 15.1.2044.0)"),
    ],
)
def test_exchange_version_table(text: str, version: ExchangeVersion, product: str) -> None:
    parsed = ExchangeVersion.parse(text)
    assert parsed == version
    assert parsed.product_name == product


@pytest.mark.parametrize("text", ["", "15", "15.2", "Version 15.2", "15.2.x.4"])
def test_exchange_version_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        ExchangeVersion.parse(text)


def test_exchange_versions_order() -> None:
    assert ExchangeVersion.parse("15.2.1544.4") < ExchangeVersion.parse("15.2.1748.10") < ExchangeVersion(15, 2, 2562)
