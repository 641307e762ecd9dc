# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The executor's host operations (docs/remote-protocol.md "Host operations"): no Exchange session."""

from __future__ import annotations

import re
from typing import Any

from cryptography import x509

from .. import pki
from . import views
from .certificates import INTERMEDIATE, MY, ROOT, Material, StoredCertificate
from .clock import iso
from .cmdlets import Context, Unchanged
from .errors import ErrorRecord, OperationError
from .organization import IIS_SITE_IDS, OS_BUILDS, POWERSHELL_BUILDS, IisBinding

EXCHANGE_INSTALL_PATH = "C:\\Program Files\\Microsoft\\Exchange Server\\V15\\"
SERVICES = (
    "MSExchangeServiceHost", "MSExchangeTransport", "MSExchangeFrontEndTransport", "MSExchangeIMAP4", "MSExchangePOP3",
    "MSExchangeIMAP4BE", "MSExchangePOP3BE", "MSExchangeIS", "MSExchangeRepl", "MSExchangeADTopology", "W3SVC", "WAS",
)  # fmt: skip
APP_POOLS = (
    "MSExchangeOWAAppPool", "MSExchangeECPAppPool", "MSExchangeServicesAppPool",
    "MSExchangeAutodiscoverAppPool", "MSExchangeSyncAppPool", "MSExchangeRpcProxyAppPool",
    "MSExchangeMapiFrontEndAppPool", "MSExchangePowerShellAppPool", "MSExchangeOABAppPool", "DefaultAppPool",
)  # fmt: skip
#: App pools that cache the Auth certificate until recycled (EF "Auth": recycle OWA and ECP).
AUTH_CACHING_POOLS = frozenset({"MSExchangeOWAAppPool", "MSExchangeECPAppPool"})


def _error(message: str, category: str, fqid: str, reason: str, target: str | None = None) -> OperationError:
    return OperationError(ErrorRecord(message, category, fqid, reason, target))


def info(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    server = ctx.server
    return {
        "ComputerName": server.exchange_name,
        "Fqdn": server.fqdn,
        "Domain": ctx.org.domain,
        "OSVersion": OS_BUILDS[server.os],
        "PowerShellVersion": POWERSHELL_BUILDS[server.os],
        "ExchangeInstallPath": EXCHANGE_INSTALL_PATH,
        "ExchangeVersion": server.version.build,
        "UtcNow": iso(ctx.org.now()),
    }


def certificates(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Cert:\\LocalMachine\\<store>, ``*`` for every store.

    ``subject_pattern`` / ``issuer_pattern`` are case-insensitive regexes: with either, a certificate is listed
    when its Subject matches the one or its Issuer matches the other.
    """
    server = ctx.server
    names = list(args.get("stores") or [MY])
    if "*" in names:
        names = sorted(server.stores)
    for name in names:
        if name not in server.stores:
            raise _error(
                f"Cannot find path 'Cert:\\LocalMachine\\{name}' because it does not exist.",
                "ObjectNotFound", "PathNotFound,Microsoft.PowerShell.Commands.GetChildItemCommand",
                "ItemNotFoundException", name,
            )  # fmt: skip
    subject, issuer = _pattern(args.get("subject_pattern")), _pattern(args.get("issuer_pattern"))

    def selected(material: Material) -> bool:
        if subject is None and issuer is None:
            return True
        return bool((subject and subject.search(material.subject)) or (issuer and issuer.search(material.issuer)))

    return [
        views.store_certificate(stored)
        for name in names
        for stored in server.stores[name].values()
        if selected(stored.material)
    ]


def _pattern(text: str | None) -> re.Pattern[str] | None:
    if not text:
        return None
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as error:
        raise _error(
            f"Invalid regular expression pattern: {text} ({error})",
            "InvalidArgument",
            "InvalidRegularExpression",
            "ArgumentException",
        ) from None


def iis_bindings(ctx: Context, args: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "Site": binding.site,
            "Protocol": "https",
            "BindingInformation": binding.binding_information,
            "HostHeader": binding.host_header,
            "CertificateHash": binding.certificate_hash,
            "CertificateStoreName": binding.certificate_store,
            "SslFlags": binding.ssl_flags,
        }
        for binding in ctx.server.bindings
    ]


def set_iis_binding(ctx: Context, args: dict[str, Any]) -> None:
    """Bind a certificate to an https binding, creating it if absent (the only way to change :444)."""
    server = ctx.server
    for name in ("site", "binding_information", "certificate_hash"):
        if not args.get(name):
            raise _error(
                f"Missing required argument {name}.", "InvalidArgument", "MissingArgument", "ArgumentException"
            )
    site = next((known for known in IIS_SITE_IDS if known.casefold() == args["site"].casefold()), None)
    if site is None:
        raise _error(
            f"Cannot find web site '{args['site']}'.",
            "ObjectNotFound",
            "SiteNotFound",
            "ItemNotFoundException",
            args["site"],
        )
    store = args.get("certificate_store") or MY
    stored = server.find(args["certificate_hash"], store)
    if stored is None:
        raise _error(
            f"A certificate with thumbprint {args['certificate_hash']} was not found in Cert:\\LocalMachine\\{store}.",
            "ObjectNotFound", "CertificateNotFound", "ItemNotFoundException", args["certificate_hash"],
        )  # fmt: skip
    if not stored.has_private_key:  # what http.sys answers for a certificate without its key
        raise _error(
            "A specified logon session does not exist. It may already have been terminated. "
            "(Exception from HRESULT: 0x80070520)",
            "NotSpecified", "COMException", "COMException", stored.thumbprint,
        )  # fmt: skip
    binding = server.binding(site, args["binding_information"])
    before = binding.certificate_hash if binding else None
    if binding is None:
        server.bindings.append(IisBinding(site, args["binding_information"], stored.thumbprint, store))
    else:
        binding.certificate_hash, binding.certificate_store = stored.thumbprint, store
    ctx.org.record(
        server.name,
        "host.set_iis_binding",
        site=site,
        binding_information=args["binding_information"],
        before=before,
        after=stored.thumbprint,
    )


def add_certificate(ctx: Context, args: dict[str, Any]) -> Unchanged | dict[str, Any]:
    """Add a certificate (no key) to LocalMachine\\CA or Root, as X509Store.Add does; present already: no change."""
    store = args.get("store")
    if store not in (INTERMEDIATE, ROOT):
        raise _error(
            f"host.add_certificate: store must be 'CA' or 'Root', got '{store}'",
            "InvalidArgument", "RuntimeException", "RuntimeException", str(store),
        )  # fmt: skip
    try:
        material = Material(x509.load_der_x509_certificate(args.get("certificate") or b""))
    except ValueError:
        raise _error(
            "Cannot find the requested object. (Exception from HRESULT: 0x80092004)",
            "NotSpecified", "CryptographicException", "CryptographicException",
        ) from None  # fmt: skip
    value = {"Thumbprint": material.thumbprint, "Store": store, "Added": False}
    if ctx.server.find(material.thumbprint, store) is not None:
        return Unchanged(value)
    ctx.server.add(StoredCertificate(material, store, has_private_key=False))
    ctx.org.record(ctx.server.name, "host.add_certificate", store=store, thumbprint=material.thumbprint,
                   subject=material.subject)
    return {**value, "Added": True}


def cluster(ctx: Context, args: dict[str, Any]) -> dict[str, Any] | None:
    server = ctx.server
    if server.dag is None:
        return None
    dag = ctx.org.dags[server.dag]
    return {
        "Name": dag.name,
        "Nodes": [{"Name": ctx.org.servers[name].exchange_name, "State": "Up"} for name in dag.members],
        "CliusrAccount": {"Exists": True, "Enabled": True, "PasswordLastSet": iso(server.cliusr_password_last_set)},
    }


def restart_service(ctx: Context, args: dict[str, Any]) -> dict[str, str]:
    """Restarting MSExchangeServiceHost runs the AuthAdmin servicelet (EF "Auth": runs at start)."""
    server = ctx.server
    name = next((known for known in SERVICES if known.casefold() == str(args.get("name", "")).casefold()), None)
    if name is None:
        raise _error(
            f"Cannot find any service with service name '{args.get('name')}'.",
            "ObjectNotFound", "NoServiceFoundForGivenName,Microsoft.PowerShell.Commands.RestartServiceCommand",
            "ServiceCommandException", args.get("name"),
        )  # fmt: skip
    server.service_restarts.append({"name": name, "lab_time": iso(ctx.org.now())})
    ctx.org.record(server.name, "host.restart_service", name=name)
    if name == "MSExchangeServiceHost":
        ctx.org.servicelet_tick(server)
    return {"Name": name, "Status": "Running"}


def recycle_app_pool(ctx: Context, args: dict[str, Any]) -> None:
    server = ctx.server
    name = next((known for known in APP_POOLS if known.casefold() == str(args.get("name", "")).casefold()), None)
    if name is None:
        raise _error(
            f"Cannot find application pool '{args.get('name')}'.",
            "ObjectNotFound",
            "AppPoolNotFound",
            "ItemNotFoundException",
            args.get("name"),
        )
    server.app_pool_recycles.append({"name": name, "lab_time": iso(ctx.org.now())})
    if name in AUTH_CACHING_POOLS:
        server.owa_auth_certificate = ctx.org.auth.current
    ctx.org.record(server.name, "host.recycle_app_pool", name=name)


def iis_reset(ctx: Context, args: dict[str, Any]) -> None:
    server = ctx.server
    server.iis_resets.append(iso(ctx.org.now()))
    server.owa_auth_certificate = ctx.org.auth.current
    ctx.org.record(server.name, "host.iis_reset")


def _certreq_result(result: pki.EnrolmentResult) -> dict[str, Any]:
    certificate = result.certificate
    return {
        "Status": result.status,
        "RequestId": result.request_id,
        "Disposition": result.disposition,
        "Certificate": Material(certificate).raw_data if certificate is not None else None,
    }


def certreq_submit(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """certreq -submit (EF "AD CS enrolment"); the lab hosts are always domain-joined."""
    if args.get("request") is None or not args.get("config"):
        raise _error(
            "certreq: a request and -config are required.", "InvalidArgument", "MissingArgument", "ArgumentException"
        )
    result = ctx.org.enrolment.submit(
        args["request"],
        config=args["config"],
        template=args.get("template"),
        attributes=list(args.get("attributes") or []),
        now=ctx.org.now(),
    )
    ctx.org.record(
        ctx.server.name,
        "host.certreq_submit",
        config=args["config"],
        request_id=result.request_id,
        status=result.status,
    )
    return _certreq_result(result)


def certreq_retrieve(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    if not args.get("config") or args.get("request_id") is None:
        raise _error(
            "certreq: -config and a request id are required.", "InvalidArgument", "MissingArgument", "ArgumentException"
        )
    return _certreq_result(
        ctx.org.enrolment.retrieve(int(args["request_id"]), config=args["config"], now=ctx.org.now())
    )


#: The Default Web Site's physical path on a default IIS install (%SystemDrive%\inetpub\wwwroot).
DEFAULT_WEB_SITE_PATH = "C:\\inetpub\\wwwroot"
_ACME_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_ACME_CONTENT = re.compile(r"[A-Za-z0-9_.-]{1,1024}")


def acme_challenge(ctx: Context, args: dict[str, Any]) -> Unchanged | dict[str, Any]:
    """Write or remove an http-01 token file under the Default Web Site (EF "Field traps": ACME http-01)."""
    action, token, content = args.get("action"), args.get("token"), args.get("content")
    if action not in ("add", "remove"):
        raise _error(f"host.acme_challenge: action must be 'add' or 'remove', got '{action}'",
                     "NotSpecified", "RuntimeException", "RuntimeException", str(action))
    if not isinstance(token, str) or not _ACME_TOKEN.fullmatch(token):
        raise _error("host.acme_challenge: token must be base64url (A-Z, a-z, 0-9, - and _), 1 to 256 characters",
                     "NotSpecified", "RuntimeException", "RuntimeException", str(token))
    if action == "add" and (not isinstance(content, str) or not _ACME_CONTENT.fullmatch(content)):
        raise _error("host.acme_challenge: content must be an ACME key authorization (base64url and dots, 1 to 1024 "
                     "characters)", "NotSpecified", "RuntimeException", "RuntimeException", None)
    server = ctx.server
    path = f"{DEFAULT_WEB_SITE_PATH}\\.well-known\\acme-challenge\\{token}"
    if action == "remove":
        if token not in server.acme_challenges:
            return Unchanged({"Path": path, "Present": False})
        del server.acme_challenges[token]
        ctx.org.record(server.name, "host.acme_challenge", action=action, token=token)
        return {"Path": path, "Present": False}
    if server.acme_challenges.get(token) == content:
        return Unchanged({"Path": path, "Present": True})
    server.acme_challenges[token] = content
    ctx.org.record(server.name, "host.acme_challenge", action=action, token=token)
    return {"Path": path, "Present": True}
