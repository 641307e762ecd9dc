# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Exchange cmdlets the executor allows (docs/remote-protocol.md), with Exchange's semantics.

"EF <section>" cites /work/shared/reference/exchange-facts.md; "assumption" marks a behaviour the facts
do not pin down (listed in the lab README). Every handler takes the batch context and the decoded
arguments, returns the value, and raises :class:`OperationError` with Exchange's error record.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from .. import pki
from . import views
from .build import tls_certificate_name
from .certificates import INTERMEDIATE, MY, REQUEST, ROOT, Material, StoredCertificate, common_name, is_host_name
from .errors import ErrorRecord, OperationError
from .organization import DEFAULT_WEB_SITE, SINGLE_INSTANCE_SERVICES, Account, IisBinding, Organization, Server
from .scenario import SERVICES

_TASKS = "Microsoft.Exchange.Management.SystemConfigurationTasks"
_SUBJECT_KEYS = {
    "C": NameOID.COUNTRY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "CN": NameOID.COMMON_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
}
_TLS_CERTIFICATE_NAME = re.compile(r"^<I>.+<S>.+$")
#: New-ExchangeCertificate's self-signed lifetime (EF "Default certificates": 5 y).
SELF_SIGNED_LIFETIME = timedelta(days=5 * 365)
#: Set-AuthConfig's minimum lead time before it asks for confirmation (EF "Auth": >= 48 h).
AUTH_LEAD_TIME = timedelta(hours=48)
NON_INTERACTIVE = "Windows PowerShell is in NonInteractive mode. Read and Prompt functionality is not available."
PKCS12_NOT_EXPORTABLE = (
    "The private key couldn't be exported as PKCS-12. It either couldn't be accessed or isn't exportable."
)
WRONG_PFX_PASSWORD = pki.BadPfxPassword.WINDOWS_MESSAGE
ASN1_BAD_TAG = "ASN1 bad tag value met. 0x8009310b (ASN: 267 CRYPT_E_ASN1_BADTAG)"
REQUEST_NOT_FOUND = "Cannot find object or property. 0x80092004 (-2146885628 CRYPT_E_NOT_FOUND)"


@dataclass
class Context:
    """One batch's view: the organisation, the connected host and the Exchange session's identity."""

    org: Organization
    server: Server
    identity: Account | None = None


@dataclass(frozen=True)
class Unchanged:
    """The value of a changing operation that found nothing to change (the executor then reports changed false)."""

    value: Any


# --------------------------------------------------------------------------------------------
# Error records
# --------------------------------------------------------------------------------------------
def _fqid(reason: str, cmdlet: str) -> str:
    return f"{reason},{_TASKS}.{cmdlet.replace('-', '')}"


def certificate_not_found(server: Server, thumbprint: str, cmdlet: str) -> OperationError:
    """EF "Get-ExchangeCertificate": not found on a server."""
    message = (
        f"A special Rpc error occurs on server {server.exchange_name}: "
        f"The certificate with thumbprint {thumbprint} was not found."
    )
    return OperationError(
        ErrorRecord(
            message,
            "InvalidOperation",
            _fqid("InvalidOperationException", cmdlet),
            "InvalidOperationException",
            thumbprint,
        )
    )


def server_unavailable(server: Server, cmdlet: str) -> OperationError:
    """-Server naming a host that is down (EF "MonitorExchangeAuthCertificate": unreachable servers). The wording
    and the Reason are assumptions; what the facts fix is that it is not "not found" (InvalidOperationException)."""
    message = f"A special Rpc error occurs on server {server.exchange_name}: The RPC server is unavailable."
    return OperationError(
        ErrorRecord(message, "ResourceUnavailable", _fqid("RpcException", cmdlet), "RpcException", server.exchange_name)
    )


def object_not_found(org: Organization, identity: str, cmdlet: str) -> OperationError:
    message = (
        f"The operation couldn't be performed because object '{identity}' couldn't be found "
        f"on '{org.domain_controller}'."
    )
    return OperationError(
        ErrorRecord(
            message,
            "NotSpecified",
            _fqid("ManagementObjectNotFoundException", cmdlet),
            "ManagementObjectNotFoundException",
            identity,
        )
    )


def prompt_refused(cmdlet: str) -> OperationError:
    """A ShouldContinue prompt in the non-interactive remote session (EF "New"/"Enable": SMTP prompt)."""
    return OperationError(
        ErrorRecord(
            NON_INTERACTIVE,
            "InvalidOperation",
            _fqid("PSInvalidOperationException", cmdlet),
            "PSInvalidOperationException",
        )
    )


def invalid_argument(
    message: str, cmdlet: str, reason: str = "ParameterBindingException", target: str | None = None
) -> OperationError:
    return OperationError(ErrorRecord(message, "InvalidArgument", _fqid(reason, cmdlet), reason, target))


def invalid_operation(message: str, cmdlet: str, target: str | None = None) -> OperationError:
    return OperationError(
        ErrorRecord(
            message, "InvalidOperation", _fqid("InvalidOperationException", cmdlet), "InvalidOperationException", target
        )
    )


def missing_mandatory(name: str, cmdlet: str) -> OperationError:
    return invalid_argument(
        f"Cannot process command because of one or more missing mandatory parameters: {name}.",
        cmdlet,
        "MissingMandatoryParameter",
    )


def not_valid_for_exchange(thumbprint: str, reason: str, cmdlet: str) -> OperationError:
    """Enable refuses certificates it cannot use (assumption on the wording; README "Enable")."""
    message = (
        f"The certificate with thumbprint {thumbprint} was found but is not valid for use with Exchange Server "
        f"(reason: {reason})."
    )
    return invalid_operation(message, cmdlet, thumbprint)


# --------------------------------------------------------------------------------------------
# Argument helpers
# --------------------------------------------------------------------------------------------
def target_server(ctx: Context, args: dict[str, Any], cmdlet: str) -> Server:
    """-Server names any server of the organisation (EF "Import": remote push); default the local one."""
    name = args.get("Server")
    if name is None:
        return ctx.server
    server = ctx.org.server(name)
    if server is None:
        raise object_not_found(ctx.org, name, cmdlet)
    if not server.reachable and server is not ctx.server:
        raise server_unavailable(server, cmdlet)
    return server


def parse_services(value: Any, cmdlet: str) -> list[str]:
    """-Services as a list or comma string, case-insensitive, into AllowedServices names."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    canonical = {name.casefold(): name for name in SERVICES}
    services = []
    for item in (str(item).strip() for item in items):
        if item.casefold() not in canonical:
            message = (
                f"Cannot bind parameter 'Services'. Cannot convert value \"{item}\" to type "
                f'"{_TASKS}.AllowedServices". Error: "Unable to match the identifier name {item} to a valid '
                "enumerator name. Specify one of the "
                f'following enumerator names and try again: {", ".join(SERVICES)}"'
            )
            raise invalid_argument(message, cmdlet, "CannotConvertArgumentNoMessage", item)
        services.append(canonical[item.casefold()])
    return services


def parse_subject(text: str, cmdlet: str) -> x509.Name:
    """-SubjectName "C=US,O=Contoso,CN=mail.contoso.lab": X.500 order as written (EF "New")."""
    attributes = []
    for part in (piece.strip() for piece in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", text) if piece.strip()):
        key, separator, value = part.partition("=")
        oid = _SUBJECT_KEYS.get(key.strip().upper())
        if not separator or oid is None or not value.strip():
            raise invalid_argument(
                f"The subject name '{text}' isn't valid. "
                "Use the X.500 form, for example C=US,O=Contoso,CN=mail.contoso.com.",
                cmdlet,
                "ParameterBindingException",
                text,
            )
        attributes.append(x509.NameAttribute(oid, value.strip().strip('"')))
    if not attributes:
        raise invalid_argument(f"The subject name '{text}' isn't valid.", cmdlet, "ParameterBindingException", text)
    return x509.Name(attributes)


def secret_text(value: Any) -> str | None:
    return None if value is None else value.reveal()


# --------------------------------------------------------------------------------------------
# Get-ExchangeCertificate
# --------------------------------------------------------------------------------------------
def get_exchange_certificate(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    cmdlet = "Get-ExchangeCertificate"
    server = target_server(ctx, args, cmdlet)
    if args.get("Thumbprint"):
        stored = server.find_exchange(args["Thumbprint"])
        if stored is None:
            raise certificate_not_found(server, args["Thumbprint"], cmdlet)
        certificates = [stored]
    else:
        certificates = server.exchange_certificates()
    domains = args.get("DomainName")
    if domains:
        wanted = [domains] if isinstance(domains, str) else list(domains)
        certificates = [stored for stored in certificates if any(_covers(stored, name) for name in wanted)]
    return [views.exchange_certificate(ctx.org, server, stored) for stored in certificates]


def _covers(stored: StoredCertificate, domain: str) -> bool:
    if stored.store == REQUEST:
        return domain.lower() in (name.lower() for name in stored.requested_domains)
    return stored.material.matches_name(domain)


# --------------------------------------------------------------------------------------------
# New-ExchangeCertificate
# --------------------------------------------------------------------------------------------
def new_exchange_certificate(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    cmdlet = "New-ExchangeCertificate"
    server = target_server(ctx, args, cmdlet)
    if args.get("GenerateRequest") and args.get("Services") is not None:
        raise invalid_argument(
            "Parameter set cannot be resolved using the specified named parameters.", cmdlet, "AmbiguousParameterSet"
        )
    friendly_name = args.get("FriendlyName")
    if friendly_name is not None and len(friendly_name) >= 64:
        raise invalid_argument(
            "The FriendlyName parameter value must be shorter than 64 characters.",
            cmdlet,
            "ArgumentException",
            friendly_name,
        )
    source = None
    if args.get("Thumbprint"):
        source = server.find_exchange(args["Thumbprint"])
        if source is None:
            raise certificate_not_found(server, args["Thumbprint"], cmdlet)
    key_size = args.get("KeySize") or (source.material.public_key_size if source else 2048)
    if key_size not in (1024, 2048, 4096):
        message = (
            f"Cannot validate argument on parameter 'KeySize'. The argument \"{key_size}\" does not belong to the set "
            '"1024,2048,4096" specified by the ValidateSet attribute. Supply an argument that is in the set '
            "and then try the command again."
        )
        raise invalid_argument(message, cmdlet, "ParameterArgumentValidationError", str(key_size))
    subject, domains = _requested_names(ctx, server, args, source, cmdlet)
    exportable = bool(args.get("PrivateKeyExportable", False))
    if args.get("GenerateRequest"):
        return _generate_request(ctx, server, subject, domains, key_size, exportable, friendly_name or "")
    services = parse_services(args["Services"], cmdlet) if args.get("Services") is not None else ["IMAP", "POP", "SMTP"]
    if "SMTP" in services:
        _check_smtp_prompt(ctx, server, None, bool(args.get("Force")), cmdlet)
    key = pki.generate_key("rsa", key_size)
    spec = pki.CertificateSpec(
        subject=subject.rfc4514_string(),
        dns_names=tuple(domains),
        key_size=key_size,
        not_before=timedelta(0),
        not_after=SELF_SIGNED_LIFETIME,
        issuer="self",
    )
    material = Material.from_issued(
        pki.make_certificate(spec, now=ctx.org.now(), authorities=ctx.org.authorities, key=key)
    )
    stored = StoredCertificate(material, MY, True, pki.KeyInfo("csp", exportable, True), friendly_name or "")
    server.add(stored)
    server.add(StoredCertificate(material, ROOT, has_private_key=False))  # Exchange trusts its self-signed certificates
    changes = _enable(ctx, server, stored, services, force=bool(args.get("Force")), require_ssl=True)
    ctx.org.record(
        server.name, cmdlet, thumbprint=material.thumbprint, self_signed=True, subject=material.subject, **changes
    )
    return views.exchange_certificate(ctx.org, server, stored)


def _requested_names(
    ctx: Context, server: Server, args: dict[str, Any], source: StoredCertificate | None, cmdlet: str
) -> tuple[x509.Name, list[str]]:
    """Subject and SANs (EF "New": DomainName -> SANs, CN added; default CN=<Server>, SAN server + FQDN)."""
    given = args.get("DomainName")
    domains = [given] if isinstance(given, str) else list(given or [])
    if args.get("SubjectName"):
        subject = parse_subject(args["SubjectName"], cmdlet)
    elif source is not None:
        subject = source.material.certificate.subject
        domains = domains or list(
            source.requested_domains if source.store == REQUEST else source.material.certificate_domains
        )
    elif domains:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    else:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server.exchange_name)])
        domains = [server.exchange_name, server.fqdn]
    cn = common_name(subject)
    if cn and is_host_name(cn) and cn.lower() not in (name.lower() for name in domains):
        domains.insert(0, cn)
    extra = []
    if args.get("IncludeServerFQDN"):
        extra.append(server.fqdn)
    if args.get("IncludeServerNetBIOSName"):
        extra.append(server.exchange_name)
    if args.get("IncludeAutoDiscover"):
        extra.append(f"autodiscover.{ctx.org.domain}")
    for name in extra:
        if name.lower() not in (known.lower() for known in domains):
            domains.append(name)
    return subject, domains


def _generate_request(
    ctx: Context,
    server: Server,
    subject: x509.Name,
    domains: list[str],
    key_size: int,
    exportable: bool,
    friendly_name: str,
) -> dict[str, Any]:
    """-GenerateRequest: the key stays on the server, a placeholder waits in REQUEST (EF "New")."""
    key = pki.generate_key("rsa", key_size)
    csr = pki.build_csr(key, subject=subject.rfc4514_string(), dns_names=domains)
    placeholder = pki.placeholder_for_request(key, subject.rfc4514_string(), now=ctx.org.now())
    stored = StoredCertificate(
        Material(placeholder, key),
        REQUEST,
        True,
        pki.KeyInfo("csp", exportable, True),
        friendly_name,
        requested_domains=list(domains),
    )
    server.add(stored)
    ctx.org.record(
        server.name,
        "New-ExchangeCertificate",
        request_thumbprint=stored.thumbprint,
        subject=stored.material.subject,
        domains=domains,
    )
    return {"FileData": base64.b64encode(csr).decode("ascii")}


# --------------------------------------------------------------------------------------------
# Enable-ExchangeCertificate
# --------------------------------------------------------------------------------------------
def enable_exchange_certificate(ctx: Context, args: dict[str, Any]) -> None:
    cmdlet = "Enable-ExchangeCertificate"
    for name in ("Thumbprint", "Services"):
        if args.get(name) is None:
            raise missing_mandatory(name, cmdlet)
    server = target_server(ctx, args, cmdlet)
    services = parse_services(args["Services"], cmdlet)
    stored = server.find_exchange(args["Thumbprint"])
    if stored is None:
        raise certificate_not_found(server, args["Thumbprint"], cmdlet)
    if stored.store == REQUEST:
        raise not_valid_for_exchange(stored.thumbprint, "PendingRequest", cmdlet)
    if not stored.has_private_key:
        raise not_valid_for_exchange(stored.thumbprint, "PrivateKeyMissing", cmdlet)
    if views.status(ctx.org, server, stored) == "DateInvalid":
        raise not_valid_for_exchange(stored.thumbprint, "Expired", cmdlet)
    force = bool(args.get("Force"))
    if "SMTP" in services:
        _check_smtp_prompt(ctx, server, stored, force, cmdlet)
    changes = _enable(ctx, server, stored, services, force=force, require_ssl=not args.get("DoNotRequireSsl"))
    if args.get("NetworkServiceAllowed"):
        stored.key_info = pki.KeyInfo(stored.key_info.provider, stored.key_info.exportable, True)
    ctx.org.record(server.name, cmdlet, thumbprint=stored.thumbprint, services=services, **changes)


def _check_smtp_prompt(
    ctx: Context, server: Server, stored: StoredCertificate | None, force: bool, cmdlet: str
) -> None:
    """EF "Enable": SMTP asks "Overwrite the existing default SMTP certificate?" unless -Force.

    The prompt appears when another certificate of this server is the internal transport certificate;
    in the executor's non-interactive session it fails the cmdlet before anything changes.
    """
    current = server.find(server.internal_transport)
    if current is not None and (stored is None or current.thumbprint != stored.thumbprint) and not force:
        raise prompt_refused(cmdlet)


def _enable(
    ctx: Context, server: Server, stored: StoredCertificate, services: list[str], *, force: bool, require_ssl: bool
) -> dict[str, Any]:
    """Add services to ``stored`` (EF "Enable": services are ADDITIVE) and move single-instance ones."""
    changes: dict[str, Any] = {}
    for service in services:
        if service == "None":
            continue
        if service == "IIS":
            binding = server.binding(DEFAULT_WEB_SITE, "*:443:")
            changes["iis_before"] = binding.certificate_hash if binding else None
            if binding is None:
                server.bindings.append(IisBinding(DEFAULT_WEB_SITE, "*:443:", stored.thumbprint))
            else:
                binding.certificate_hash, binding.certificate_store = stored.thumbprint, MY
            server.require_ssl = require_ssl
            changes["require_ssl"] = require_ssl
            continue
        if service in SINGLE_INSTANCE_SERVICES:
            for other in server.stores[MY].values():
                other.services.discard(service)
        if service == "SMTP":
            current = server.find(server.internal_transport)
            if current is None or force:  # EF "New"/"Enable": -Force overwrites the default SMTP certificate
                changes["internal_transport_before"] = server.internal_transport
                server.internal_transport = stored.thumbprint
                changes["internal_transport_after"] = stored.thumbprint
        stored.services.add(service)
    return changes


# --------------------------------------------------------------------------------------------
# Import-ExchangeCertificate
# --------------------------------------------------------------------------------------------
def import_exchange_certificate(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    cmdlet = "Import-ExchangeCertificate"
    if args.get("FileData") is None:
        raise missing_mandatory("FileData", cmdlet)
    server = target_server(ctx, args, cmdlet)
    data: bytes = args["FileData"]
    try:
        encryption = pki.pfx_encryption(data)
    except pki.PkiError:
        encryption = None
    if encryption is not None:
        imported = [_import_pfx(ctx, server, data, args, encryption, cmdlet)]
    else:
        imported = _import_certificates(ctx, server, data, args, cmdlet)
    ctx.org.record(
        server.name,
        cmdlet,
        thumbprints=[stored.thumbprint for stored in imported],
        has_private_key=[stored.has_private_key for stored in imported],
    )
    return [views.exchange_certificate(ctx.org, server, stored) for stored in imported]


def _import_pfx(
    ctx: Context, server: Server, data: bytes, args: dict[str, Any], encryption: str, cmdlet: str
) -> StoredCertificate:
    """PKCS#12 (EF "Import"): AES-encrypted PFX fails on Server 2016 with the wrong-password message."""
    wrong_password = OperationError(
        ErrorRecord(
            WRONG_PFX_PASSWORD, "NotSpecified", _fqid("CryptographicException", cmdlet), "CryptographicException"
        )
    )
    if encryption == "aes" and server.os == "2016":
        raise wrong_password
    try:
        contents = pki.import_pfx(data, secret_text(args.get("Password")))
    except pki.BadPfxPassword:
        raise wrong_password from None
    except pki.PkiError:
        raise OperationError(
            ErrorRecord(ASN1_BAD_TAG, "NotSpecified", _fqid("CryptographicException", cmdlet), "CryptographicException")
        ) from None
    material = Material(contents.certificate, contents.private_key, contents.chain)
    _refuse_duplicate(server, material, cmdlet)
    stored = StoredCertificate(
        material,
        MY,
        contents.private_key is not None,
        pki.KeyInfo("csp", bool(args.get("PrivateKeyExportable", False)), True),
        args.get("FriendlyName") or contents.friendly_name or "",
    )
    _add_intermediates(server, contents.chain)
    _drop_request_for(server, material)
    server.add(stored)
    return stored


def _import_certificates(
    ctx: Context, server: Server, data: bytes, args: dict[str, Any], cmdlet: str
) -> list[StoredCertificate]:
    """PEM / DER / PKCS#7: completes the matching pending request of THIS server (EF "Import", "New")."""
    try:
        certificates = pki.load_certificates(data)
    except pki.PkiError:
        raise OperationError(
            ErrorRecord(ASN1_BAD_TAG, "NotSpecified", _fqid("CryptographicException", cmdlet), "CryptographicException")
        ) from None
    authorities = tuple(certificate for certificate in certificates if Material(certificate).is_ca)
    leaves = [
        Material(certificate, None, authorities) for certificate in certificates if not Material(certificate).is_ca
    ]
    imported = []
    for material in leaves:
        _refuse_duplicate(server, material, cmdlet)
        request = _request_for(server, material)
        if request is None and any(
            _request_for(other, material) for other in ctx.org.servers.values() if other is not server
        ):
            # The key exists only where the request was generated (assumption on the wording, README "Import").
            raise OperationError(
                ErrorRecord(
                    REQUEST_NOT_FOUND,
                    "NotSpecified",
                    _fqid("CryptographicException", cmdlet),
                    "CryptographicException",
                    material.thumbprint,
                )
            )
        if request is not None:
            del server.stores[REQUEST][request.thumbprint]
            stored = StoredCertificate(
                material.with_key(request.material.private_key),
                MY,
                True,
                request.key_info,
                args.get("FriendlyName") or request.friendly_name,
            )
        else:
            stored = StoredCertificate(material, MY, False, pki.KeyInfo(), args.get("FriendlyName") or "")
        server.add(stored)
        imported.append(stored)
    _add_intermediates(server, authorities)
    return imported


def _refuse_duplicate(server: Server, material: Material, cmdlet: str) -> None:
    if server.find(material.thumbprint) is not None:
        message = f"The certificate with thumbprint {material.thumbprint} already exists in the certificate store."
        raise invalid_operation(message, cmdlet, material.thumbprint)


def _request_for(server: Server, material: Material) -> StoredCertificate | None:
    return next(
        (
            request
            for request in server.stores[REQUEST].values()
            if request.material.public_key_der == material.public_key_der
        ),
        None,
    )


def _drop_request_for(server: Server, material: Material) -> None:
    request = _request_for(server, material)
    if request is not None:
        del server.stores[REQUEST][request.thumbprint]


def _add_intermediates(server: Server, chain: tuple[x509.Certificate, ...]) -> None:
    for certificate in chain:
        material = Material(certificate)
        if not material.is_self_signed and server.find(material.thumbprint, INTERMEDIATE) is None:
            server.add(StoredCertificate(material, INTERMEDIATE, has_private_key=False))


# --------------------------------------------------------------------------------------------
# Export-ExchangeCertificate / Remove-ExchangeCertificate
# --------------------------------------------------------------------------------------------
def export_exchange_certificate(ctx: Context, args: dict[str, Any]) -> dict[str, str]:
    """EF "Export": only when PrivateKeyExportable. Encryption: Windows Server 2016 writes legacy
    3DES/SHA-1 PKCS#12, later Windows AES-256 (assumption matching EF "Import": 2016 only reads legacy)."""
    cmdlet = "Export-ExchangeCertificate"
    if args.get("Thumbprint") is None:
        raise missing_mandatory("Thumbprint", cmdlet)
    server = target_server(ctx, args, cmdlet)
    pending = server.find(args["Thumbprint"], REQUEST)
    if pending is not None:
        # Microsoft's Export-ExchangeCertificate page: it exports "existing certificates and pending certificate
        # requests (also known as CSRs)"; with -BinaryEncoded the request's DER. The request is rebuilt from the
        # key that waits on the server (PKCS#1 v1.5 signatures are deterministic: the same bytes as at creation).
        csr = pki.build_csr(
            pending.private_key,  # type: ignore[arg-type]
            subject=pending.material.certificate.subject.rfc4514_string(),
            dns_names=pending.requested_domains,
        )
        return {"FileData": base64.b64encode(csr).decode("ascii")}
    if args.get("Password") is None:
        raise missing_mandatory("Password", cmdlet)
    stored = server.find(args["Thumbprint"])
    if stored is None:
        raise certificate_not_found(server, args["Thumbprint"], cmdlet)
    if stored.private_key is None or not stored.key_info.exportable:
        raise OperationError(
            ErrorRecord(
                PKCS12_NOT_EXPORTABLE,
                "NotSpecified",
                _fqid("CryptographicException", cmdlet),
                "CryptographicException",
                stored.thumbprint,
            )
        )
    material = stored.material
    data = pki.export_pfx(
        material.certificate,
        stored.private_key,  # type: ignore[arg-type]
        material.chain,
        secret_text(args["Password"]) or "",
        encryption="legacy" if server.os == "2016" else "aes",
        friendly_name=stored.friendly_name or None,
    )
    return {"FileData": base64.b64encode(data).decode("ascii")}


def remove_exchange_certificate(ctx: Context, args: dict[str, Any]) -> None:
    """EF "Remove": blocked by a Send connector's TlsCertificateName; IIS bindings are left dangling."""
    cmdlet = "Remove-ExchangeCertificate"
    if args.get("Thumbprint") is None:
        raise missing_mandatory("Thumbprint", cmdlet)
    server = target_server(ctx, args, cmdlet)
    stored = server.find_exchange(args["Thumbprint"])
    if stored is None:
        raise certificate_not_found(server, args["Thumbprint"], cmdlet)
    if stored.store == MY:
        name = tls_certificate_name(stored.material).casefold()
        tagged = [
            connector.name
            for connector in ctx.org.send_connectors
            if (connector.tls_certificate_name or "").casefold() == name and server.name in connector.source_servers
        ]
        if tagged:
            raise invalid_operation(
                f"These certificates are tagged with following Send Connectors : {', '.join(tagged)}",
                cmdlet,
                stored.thumbprint,
            )
    del server.stores[stored.store][stored.thumbprint]
    dangling = server.iis_sites_of(stored.thumbprint)
    ctx.org.record(
        server.name,
        cmdlet,
        thumbprint=stored.thumbprint,
        store=stored.store,
        dangling_iis_bindings=dangling,
        was_internal_transport=server.internal_transport == stored.thumbprint,
    )


# --------------------------------------------------------------------------------------------
# Auth config
# --------------------------------------------------------------------------------------------
def get_auth_config(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    return ctx.org.auth.project()


def set_auth_config(ctx: Context, args: dict[str, Any]) -> None:
    """EF "Auth (OAuth) certificate": stage next (>= 48 h ahead unless -Force), publish, clear previous.

    The certificate must exist on the server the session runs on (the cmdlet's own check); that it also
    exists on every other Mailbox server is the caller's job (EF: must exist on EVERY server).
    """
    cmdlet = "Set-AuthConfig"
    auth = ctx.org.auth
    before = auth.project()
    force = bool(args.get("Force"))
    if args.get("NewCertificateThumbprint"):
        stored = ctx.server.find(args["NewCertificateThumbprint"])
        if stored is None:
            raise certificate_not_found(ctx.server, args["NewCertificateThumbprint"], cmdlet)
        effective = args.get("NewCertificateEffectiveDate") or ctx.org.now()
        if effective < ctx.org.now() + AUTH_LEAD_TIME and not force:
            raise prompt_refused(cmdlet)  # Exchange asks to confirm an effective date less than 48 h ahead
        auth.next, auth.next_effective = stored.thumbprint, effective
    elif args.get("NewCertificateEffectiveDate") is not None:
        raise missing_mandatory("NewCertificateThumbprint", cmdlet)
    if args.get("PublishCertificate"):
        if auth.next is None:
            raise invalid_operation(
                "There is no next certificate to publish. Set NewCertificateThumbprint first.", cmdlet
            )
        auth.publish()
    if args.get("ClearPreviousCertificate"):
        auth.previous = None
    ctx.org.record(ctx.server.name, cmdlet, before=before, after=auth.project())


# --------------------------------------------------------------------------------------------
# Transport, connectors, hybrid, servers, DAGs
# --------------------------------------------------------------------------------------------
def get_transport_service(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    servers = list(ctx.org.servers.values())
    if args.get("Identity"):
        server = ctx.org.server(args["Identity"])
        if server is None:
            raise object_not_found(ctx.org, args["Identity"], "Get-TransportService")
        servers = [server]
    return [views.transport_service(server) for server in servers]


def _send_connectors(ctx: Context, identity: str | None, cmdlet: str) -> list[Any]:
    connectors = ctx.org.send_connectors
    if identity:
        connectors = [connector for connector in connectors if connector.name.casefold() == identity.casefold()]
        if not connectors:
            raise object_not_found(ctx.org, identity, cmdlet)
    return connectors


def get_send_connector(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        views.send_connector(ctx.org, connector)
        for connector in _send_connectors(ctx, args.get("Identity"), "Get-SendConnector")
    ]


def _check_tls_certificate_name(value: str | None, cmdlet: str) -> None:
    if value is not None and not _TLS_CERTIFICATE_NAME.match(value):
        message = (
            f"Cannot bind parameter 'TlsCertificateName' to the target. Exception setting \"TlsCertificateName\": "
            f"\"The value '{value}' isn't a valid certificate name. Use the format <I>issuer<S>subject.\""
        )
        raise invalid_argument(message, cmdlet, "ParameterBindingFailed", value)


def set_send_connector(ctx: Context, args: dict[str, Any]) -> None:
    cmdlet = "Set-SendConnector"
    if not args.get("Identity"):
        raise missing_mandatory("Identity", cmdlet)
    _check_tls_certificate_name(args.get("TlsCertificateName"), cmdlet)
    (connector,) = _send_connectors(ctx, args["Identity"], cmdlet)
    before, connector.tls_certificate_name = connector.tls_certificate_name, args.get("TlsCertificateName")
    ctx.org.record(
        ctx.server.name, cmdlet, connector=connector.name, before=before, after=connector.tls_certificate_name
    )


def _receive_connectors(ctx: Context, identity: str | None, server_name: str | None, cmdlet: str) -> list[Any]:
    connectors = [connector for server in ctx.org.servers.values() for connector in server.receive_connectors]
    if server_name:
        server = ctx.org.server(server_name)
        if server is None:
            raise object_not_found(ctx.org, server_name, cmdlet)
        connectors = [connector for connector in connectors if connector.server == server.name]
    if identity:
        host, _sep, name = identity.rpartition("\\")
        connectors = [
            connector
            for connector in connectors
            if connector.name.casefold() == name.casefold()
            and (not host or ctx.org.servers[connector.server] is ctx.org.server(host))
        ]
        if not connectors:
            raise object_not_found(ctx.org, identity, cmdlet)
    return connectors


def get_receive_connector(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    connectors = _receive_connectors(ctx, args.get("Identity"), args.get("Server"), "Get-ReceiveConnector")
    return [views.receive_connector(ctx.org, connector) for connector in connectors]


def set_receive_connector(ctx: Context, args: dict[str, Any]) -> None:
    cmdlet = "Set-ReceiveConnector"
    if not args.get("Identity"):
        raise missing_mandatory("Identity", cmdlet)
    _check_tls_certificate_name(args.get("TlsCertificateName"), cmdlet)
    connectors = _receive_connectors(ctx, args["Identity"], None, cmdlet)
    if len(connectors) > 1:
        raise invalid_operation(
            f"The operation couldn't be performed because '{args['Identity']}' matches multiple entries.",
            cmdlet,
            args["Identity"],
        )
    connector = connectors[0]
    before, connector.tls_certificate_name = connector.tls_certificate_name, args.get("TlsCertificateName")
    ctx.org.record(
        connector.server, cmdlet, connector=connector.name, before=before, after=connector.tls_certificate_name
    )


# --------------------------------------------------------------------------------------------
# IMAP / POP settings (EF "Enable": IMAP/POP with wildcard certificates: X509CertificateName)
# --------------------------------------------------------------------------------------------
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME_OR_WILDCARD = re.compile(rf"(\*\.)?({_LABEL}\.)*{_LABEL}", re.IGNORECASE)


def get_imap_settings(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [views.protocol_settings(target_server(ctx, args, "Get-ImapSettings"), "IMAP")]


def get_pop_settings(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [views.protocol_settings(target_server(ctx, args, "Get-PopSettings"), "POP")]


def _set_protocol_settings(ctx: Context, args: dict[str, Any], protocol: str, cmdlet: str) -> None:
    name = args.get("X509CertificateName")
    if name is None:
        raise missing_mandatory("X509CertificateName", cmdlet)
    if not _HOST_NAME_OR_WILDCARD.fullmatch(name) or len(name) > 253:
        raise invalid_argument(
            f"Cannot validate argument on parameter 'X509CertificateName'. '{name}' is not a valid host name.",
            cmdlet,
            "ParameterArgumentValidationError",
            name,
        )
    server = target_server(ctx, args, cmdlet)
    before = server.x509_certificate_names[protocol]
    server.x509_certificate_names[protocol] = name
    ctx.org.record(server.name, cmdlet, before=before, after=name)


def set_imap_settings(ctx: Context, args: dict[str, Any]) -> None:
    _set_protocol_settings(ctx, args, "IMAP", "Set-ImapSettings")


def set_pop_settings(ctx: Context, args: dict[str, Any]) -> None:
    _set_protocol_settings(ctx, args, "POP", "Set-PopSettings")


def get_hybrid_configuration(ctx: Context, args: dict[str, Any]) -> dict[str, Any] | None:
    return views.hybrid_configuration(ctx.org, ctx.org.hybrid) if ctx.org.hybrid else None


def get_exchange_server(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    servers = list(ctx.org.servers.values())
    if args.get("Identity"):
        server = ctx.org.server(args["Identity"])
        if server is None:
            raise object_not_found(ctx.org, args["Identity"], "Get-ExchangeServer")
        servers = [server]
    return [views.exchange_server(server) for server in servers]


def get_database_availability_group(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    dags = list(ctx.org.dags.values())
    if args.get("Identity"):
        dags = [dag for dag in dags if dag.name.casefold() == args["Identity"].casefold()]
        if not dags:
            raise object_not_found(ctx.org, args["Identity"], "Get-DatabaseAvailabilityGroup")
    if args.get("Server"):  # the executor's filter (the cmdlet has no -Server): the DAGs the server is in
        member = ctx.org.server(args["Server"])
        if member is None:
            raise object_not_found(ctx.org, args["Server"], "Get-DatabaseAvailabilityGroup")
        dags = [dag for dag in dags if member.name in dag.members]
    return [views.database_availability_group(ctx.org, dag, bool(args.get("Status"))) for dag in dags]
