# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emulation of exchange.pki.exchange_batch (docs/remote-protocol.md), operation by operation.

Argument errors fail the module as Ansible.Basic would (``failed``/``msg``); operation errors never do.
The result carries no secret: secrets are decoded into :class:`Secret` objects that never print.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import cmdlets, hostops
from .cmdlets import Context
from .errors import DroppedConnection, ErrorRecord, OperationError
from .faults import FaultTable
from .organization import Account, Organization, Server

MODULE = "exchange.pki.exchange_batch"
_MODULE_OPTIONS = (
    "operations",
    "secrets",
    "exchange_uri",
    "exchange_username",
    "exchange_password",
    "exchange_authentication",
)
_AUTHENTICATIONS = ("Kerberos", "Negotiate", "Default", "Basic")

Handler = Callable[[Context, dict[str, Any]], Any]


class Secret:
    """A SecureString stand-in: the value is only reachable through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "System.Security.SecureString"


@dataclass(frozen=True)
class Operation:
    """An allow-listed operation: parameters (name -> kind), whether it changes state, whether it is a cmdlet."""

    handler: Handler
    params: dict[str, str]
    changes: bool
    exchange: bool


def _cmdlet(handler: Handler, changes: bool = False, **params: str) -> Operation:
    return Operation(handler, params, changes, True)


def _host(handler: Handler, changes: bool = False, **params: str) -> Operation:
    return Operation(handler, params, changes, False)


OPERATIONS: dict[str, Operation] = {
    "Get-ExchangeCertificate": _cmdlet(
        cmdlets.get_exchange_certificate, Server="server", Thumbprint="str", DomainName="list"
    ),
    "New-ExchangeCertificate": _cmdlet(
        cmdlets.new_exchange_certificate,
        True,
        Server="server",
        GenerateRequest="bool",
        BinaryEncoded="bool",
        SubjectName="str",
        DomainName="list",
        KeySize="int",
        PrivateKeyExportable="bool",
        FriendlyName="str",
        Services="list",
        Force="bool",
        IncludeServerFQDN="bool",
        IncludeServerNetBIOSName="bool",
        IncludeAutoDiscover="bool",
        Thumbprint="str",
    ),  # fmt: skip
    "Import-ExchangeCertificate": _cmdlet(
        cmdlets.import_exchange_certificate,
        True,
        Server="server",
        FileData="bytes",
        Password="secret",
        PrivateKeyExportable="bool",
        FriendlyName="str",
    ),
    "Enable-ExchangeCertificate": _cmdlet(
        cmdlets.enable_exchange_certificate,
        True,
        Server="server",
        Thumbprint="str",
        Services="list",
        DoNotRequireSsl="bool",
        Force="bool",
        NetworkServiceAllowed="bool",
    ),
    "Export-ExchangeCertificate": _cmdlet(
        cmdlets.export_exchange_certificate, Server="server", Thumbprint="str", Password="secret"
    ),
    "Remove-ExchangeCertificate": _cmdlet(cmdlets.remove_exchange_certificate, True, Server="server", Thumbprint="str"),
    "Get-AuthConfig": _cmdlet(cmdlets.get_auth_config),
    "Set-AuthConfig": _cmdlet(
        cmdlets.set_auth_config,
        True,
        NewCertificateThumbprint="str",
        NewCertificateEffectiveDate="datetime",
        PublishCertificate="bool",
        ClearPreviousCertificate="bool",
        Force="bool",
    ),  # fmt: skip
    "Get-TransportService": _cmdlet(cmdlets.get_transport_service, Identity="server"),
    "Get-SendConnector": _cmdlet(cmdlets.get_send_connector, Identity="str"),
    "Set-SendConnector": _cmdlet(cmdlets.set_send_connector, True, Identity="str", TlsCertificateName="str"),
    "Get-ReceiveConnector": _cmdlet(cmdlets.get_receive_connector, Identity="str", Server="server"),
    "Set-ReceiveConnector": _cmdlet(cmdlets.set_receive_connector, True, Identity="str", TlsCertificateName="str"),
    "Get-ImapSettings": _cmdlet(cmdlets.get_imap_settings, Server="server"),
    "Set-ImapSettings": _cmdlet(cmdlets.set_imap_settings, True, Server="server", X509CertificateName="str"),
    "Get-PopSettings": _cmdlet(cmdlets.get_pop_settings, Server="server"),
    "Set-PopSettings": _cmdlet(cmdlets.set_pop_settings, True, Server="server", X509CertificateName="str"),
    "Get-HybridConfiguration": _cmdlet(cmdlets.get_hybrid_configuration),
    "Get-ExchangeServer": _cmdlet(cmdlets.get_exchange_server, Identity="server"),
    "Get-DatabaseAvailabilityGroup": _cmdlet(
        cmdlets.get_database_availability_group, Identity="str", Status="bool", Server="server"
    ),
    "host.info": _host(hostops.info),
    "host.certificates": _host(hostops.certificates, stores="list", subject_pattern="str", issuer_pattern="str"),
    "host.iis_bindings": _host(hostops.iis_bindings),
    "host.set_iis_binding": _host(
        hostops.set_iis_binding,
        True,
        site="str",
        binding_information="str",
        certificate_hash="str",
        certificate_store="str",
    ),
    "host.cluster": _host(hostops.cluster),
    "host.add_certificate": _host(hostops.add_certificate, True, store="str", certificate="bytes"),
    "host.restart_service": _host(hostops.restart_service, True, name="str"),
    "host.recycle_app_pool": _host(hostops.recycle_app_pool, True, name="str"),
    "host.iis_reset": _host(hostops.iis_reset, True),
    "host.certreq_submit": _host(
        hostops.certreq_submit, True, request="bytes", config="str", template="str", attributes="list"
    ),
    "host.certreq_retrieve": _host(hostops.certreq_retrieve, config="str", request_id="int"),
    "host.acme_challenge": _host(hostops.acme_challenge, True, action="str", token="str", content="str"),
}


class ArgumentError(Exception):
    """The module fails as a whole (docs/remote-protocol.md: argument errors only)."""


class LocalServer:
    """The decoded ``{"$local": "server"}``: the Exchange server the executor runs on, resolved when the
    operation runs (:func:`resolve_local_server`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the local Exchange server>"


LOCAL_SERVER = LocalServer()


# --------------------------------------------------------------------------------------------
# Argument validation and typed values
# --------------------------------------------------------------------------------------------
def _decode(value: Any, secrets: dict[str, str], where: str) -> Any:
    """Replace typed values ($bytes, $secret, $datetime) anywhere inside ``value``."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in ("$bytes", "$secret", "$datetime", "$local"):
            kind, raw = next(iter(value.items()))
            return _typed(kind, raw, secrets, where)
        return {key: _decode(item, secrets, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, secrets, where) for item in value]
    return value


def _typed(kind: str, raw: Any, secrets: dict[str, str], where: str) -> Any:
    if not isinstance(raw, str):
        raise ArgumentError(f"{where}: {kind} needs a string value")
    if kind == "$local":
        if raw != "server":
            raise ArgumentError(f"{where}: $local only names the local 'server', got '{raw}'")
        return LOCAL_SERVER
    if kind == "$bytes":
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ArgumentError(f"{where}: invalid base64 in $bytes") from None
    if kind == "$secret":
        if raw not in secrets:
            raise ArgumentError(f"{where}: secret '{raw}' is not in secrets")
        return Secret(secrets[raw])
    try:
        instant = datetime.fromisoformat(raw) if raw.endswith("Z") else None
    except ValueError:
        instant = None
    if instant is None:
        raise ArgumentError(f"{where}: invalid $datetime '{raw}' (ISO-8601 UTC ending in Z)")
    return instant.astimezone(timezone.utc)


# Parameters the executor refuses to run without (the allow-list of exchange_batch.ps1).
REQUIRED: dict[str, tuple[str, ...]] = {
    "Import-ExchangeCertificate": ("FileData",),
    "Enable-ExchangeCertificate": ("Thumbprint", "Services"),
    "Export-ExchangeCertificate": ("Thumbprint",),
    "Remove-ExchangeCertificate": ("Thumbprint",),
    "Set-SendConnector": ("Identity",),
    "Set-ReceiveConnector": ("Identity",),
    "Set-ImapSettings": ("X509CertificateName",),
    "Set-PopSettings": ("X509CertificateName",),
    "host.set_iis_binding": ("site", "binding_information", "certificate_hash"),
    "host.add_certificate": ("store", "certificate"),
    "host.restart_service": ("name",),
    "host.recycle_app_pool": ("name",),
    "host.certreq_submit": ("request", "config"),
    "host.certreq_retrieve": ("config", "request_id"),
    "host.acme_challenge": ("action", "token"),
}

_KINDS: dict[str, Callable[[Any], bool]] = {
    "str": lambda value: isinstance(value, str),
    "server": lambda value: isinstance(value, (str, LocalServer)),
    "bool": lambda value: isinstance(value, bool),
    "int": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "list": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "bytes": lambda value: isinstance(value, bytes),
    "secret": lambda value: isinstance(value, Secret),
    "datetime": lambda value: isinstance(value, datetime),
}


def _valid_uri(uri: Any) -> bool:
    """What the executor's [Uri]::TryCreate check accepts: an absolute http(s) URL with a host, no user info."""
    if not isinstance(uri, str) or re.search(r"[\x00-\x20\x7f]", uri):
        return False
    try:
        parsed = urllib.parse.urlsplit(uri)
        parsed.port  # noqa: B018 - raises ValueError for a port outside 0-65535
    except ValueError:
        return False
    return parsed.scheme.lower() in ("http", "https") and bool(parsed.hostname) and not parsed.username


def _check_module_options(args: dict[str, Any]) -> None:
    unknown = sorted(key for key in args if key not in _MODULE_OPTIONS and not key.startswith("_ansible_"))
    if unknown:
        raise ArgumentError(
            f"Unsupported parameters for (exchange_batch) module: {', '.join(unknown)}. "
            f"Supported parameters include: {', '.join(sorted(_MODULE_OPTIONS))}"
        )
    if not isinstance(args.get("operations"), list):
        raise ArgumentError(
            "missing required arguments: operations"
            if "operations" not in args
            else "argument operations is of type list and we were unable to convert"
        )
    if not isinstance(args.get("secrets") or {}, dict):
        raise ArgumentError("argument secrets is of type dict and we were unable to convert")
    username, password = args.get("exchange_username"), args.get("exchange_password")
    if bool(username) != bool(password):
        raise ArgumentError(
            "exchange_username and exchange_password must both be given (not empty) or both be left out"
        )
    uri = args.get("exchange_uri")
    if uri is not None and not _valid_uri(uri):
        raise ArgumentError(
            "exchange_uri must be an http:// or https:// URL with a host, without credentials, whitespace or "
            "control characters"
        )
    authentication = args.get("exchange_authentication") or "Kerberos"
    if authentication not in _AUTHENTICATIONS:
        raise ArgumentError(
            f"value of exchange_authentication must be one of: {', '.join(_AUTHENTICATIONS)}, got: {authentication}"
        )


def parse_operations(args: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Validate the whole batch before anything runs: (id, op, decoded args) per operation."""
    _check_module_options(args)
    secrets = {str(key): str(value) for key, value in (args.get("secrets") or {}).items()}
    parsed: list[tuple[str, str, dict[str, Any]]] = []
    seen: set[str] = set()
    for index, item in enumerate(args["operations"]):
        where = f"operations[{index}]"
        if not isinstance(item, dict) or set(item) - {"id", "op", "args"}:
            raise ArgumentError(f"{where}: an operation is a dict with id, op and optional args")
        op_id, name, op_args = item.get("id"), item.get("op"), item.get("args") or {}
        if not isinstance(op_id, str) or not op_id or op_id in seen:
            raise ArgumentError(f"{where}: id must be a unique non-empty string")
        seen.add(op_id)
        operation = OPERATIONS.get(name) if isinstance(name, str) else None
        if operation is None:
            raise ArgumentError(f"{where} ({op_id}): unknown op '{name}'; allowed: {', '.join(OPERATIONS)}")
        if not isinstance(op_args, dict):
            raise ArgumentError(f"{where} ({op_id}): args must be a dict")
        missing = [param for param in REQUIRED.get(name, ()) if op_args.get(param) is None]
        if missing:
            raise ArgumentError(f"operation '{op_id}' ({name}): missing required parameter '{missing[0]}'")
        unknown = sorted(set(op_args) - set(operation.params))
        if unknown:
            allowed = ", ".join(operation.params) or "none"
            raise ArgumentError(f"{where} ({op_id}): unknown parameter '{unknown[0]}' for {name}; allowed: {allowed}")
        decoded = _decode(op_args, secrets, f"{where} ({op_id})")
        for param, value in decoded.items():
            if value is not None and not _KINDS[operation.params[param]](value):
                raise ArgumentError(
                    f"{where} ({op_id}): parameter {param} of {name} expects a {operation.params[param]} value"
                )
        parsed.append((op_id, name, decoded))
    return parsed


# --------------------------------------------------------------------------------------------
# The Exchange session (EF "Running Exchange cmdlets from a WinRM session", "Double hop")
# --------------------------------------------------------------------------------------------
def access_denied(server: Server) -> ErrorRecord:
    return ErrorRecord(
        f"Connecting to remote server {server.fqdn} failed with the following error message : Access is denied. "
        "For more information, see the about_Remote_Troubleshooting Help topic.",
        "OpenError", "AccessDenied,PSSessionOpenFailed", "PSRemotingTransportException", server.fqdn,
    )  # fmt: skip


def logon_failure(server: Server) -> ErrorRecord:
    """An explicit credential the domain rejects (ERROR_LOGON_FAILURE from New-PSSession)."""
    return ErrorRecord(
        f"Connecting to remote server {server.fqdn} failed with the following error message : The user name or "
        "password is incorrect. For more information, see the about_Remote_Troubleshooting Help topic.",
        "OpenError", "LogonFailure,PSSessionOpenFailed", "PSRemotingTransportException", server.fqdn,
    )  # fmt: skip


def endpoint_missing(server: Server) -> ErrorRecord:
    return ErrorRecord(
        f"Connecting to remote server {server.fqdn} failed with the following error message : "
        "WinRM cannot complete the operation. Verify that the specified computer name is valid, that the "
        "computer is accessible over the network, and that a firewall exception for the WinRM service is "
        "enabled and allows access from this computer. By default, the WinRM firewall exception for public "
        "profiles limits access to remote computers within the same local subnet. For more information, see "
        "the about_Remote_Troubleshooting Help topic.",
        "OpenError", "WinRMOperationTimeout,PSSessionStateBroken", "PSRemotingTransportException", server.fqdn,
    )  # fmt: skip


def command_not_found(name: str) -> ErrorRecord:
    """A cmdlet outside the caller's RBAC roles is not in the session at all."""
    return ErrorRecord(
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
        "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
        "and try again.",
        "ObjectNotFound", "CommandNotFoundException", "CommandNotFoundException", name,
    )  # fmt: skip


def open_session(
    org: Organization, server: Server, args: dict[str, Any], *, become: bool, remote_user: str | None
) -> tuple[Account | None, ErrorRecord | None]:
    """Who the Exchange session runs as, or why it cannot open.

    ``double_hop``: the connection's network logon cannot authenticate onward unless become (runas) or an
    explicit credential is used; ``no_exchange``: the /PowerShell endpoint is absent. An explicit credential
    the domain does not know (unknown user, wrong password) is a logon failure. A run_module call without
    ``remote_user`` acts as the scenario's first exchange_admin account.
    """
    if server.exchange_session == "no_exchange":
        return None, endpoint_missing(server)
    username = args.get("exchange_username")
    if username:
        account = org.account(username)
        if account is None or account.password != (args.get("exchange_password") or ""):
            return None, logon_failure(server)
        return account, None
    if server.exchange_session == "double_hop" and not become:
        return None, access_denied(server)
    if remote_user is None:
        return next(account for account in org.accounts if account.exchange_admin), None
    account = org.account(remote_user)
    return (account, None) if account is not None else (None, access_denied(server))


def resolve_local_server(context: Context, name: str) -> str:
    """The Name of the Exchange server the executor runs on, as the executor resolves it: Get-ExchangeServer
    -Identity <computer name>, else the server whose Fqdn is the host's DNS name."""
    org, host = context.org, context.server
    server = org.server(host.exchange_name) or next(
        (candidate for candidate in org.servers.values() if candidate.fqdn.casefold() == host.fqdn.casefold()), None
    )
    if server is None:
        raise OperationError(
            ErrorRecord(
                f"The local computer '{host.exchange_name}' is not an Exchange server of this organization "
                "(no server has that name or its FQDN).",
                "ObjectNotFound", "System.Management.Automation.ItemNotFoundException", "ItemNotFoundException", name,
            )  # fmt: skip
        )
    return server.exchange_name


def _resolve_arguments(context: Context, name: str, op_args: dict[str, Any]) -> dict[str, Any]:
    if not any(value is LOCAL_SERVER for value in op_args.values()):
        return op_args
    local = resolve_local_server(context, name)
    return {param: local if value is LOCAL_SERVER else value for param, value in op_args.items()}


# --------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------
@dataclass
class BatchRun:
    org: Organization
    server: Server
    faults: FaultTable
    lock: threading.RLock

    def run(self, args: dict[str, Any], *, check_mode: bool, become: bool, remote_user: str | None) -> dict[str, Any]:
        with self.lock:
            try:
                operations = parse_operations(args)
            except ArgumentError as error:
                return {"failed": True, "msg": str(error)}
        check_mode = check_mode or bool(args.get("_ansible_check_mode"))
        session = {
            "uri": args.get("exchange_uri") or f"http://{self.server.fqdn}/PowerShell/",
            "opened": False,
            "removed": False,
        }
        context = Context(self.org, self.server)
        session_error: ErrorRecord | None = None
        session_tried = False
        results: list[dict[str, Any]] = []
        stopped = False
        for op_id, name, op_args in operations:
            operation = OPERATIONS[name]
            result: dict[str, Any] = {"id": op_id, "op": name, "status": "skipped", "changed": False}
            results.append(result)
            if stopped:
                continue
            if operation.changes and check_mode:
                result["check_mode"] = True
                continue
            fault_error = self._apply_faults(name)
            with self.lock:
                if operation.exchange and not session_tried:
                    session_tried = True
                    context.identity, session_error = open_session(
                        self.org, self.server, args, become=become, remote_user=remote_user
                    )
                    session["opened"] = session["removed"] = session_error is None
                error = fault_error or (session_error if operation.exchange else None)
                if (
                    error is None
                    and operation.exchange
                    and context.identity is not None
                    and not context.identity.exchange_admin
                ):
                    error = command_not_found(name)
                if error is None:
                    try:
                        value = operation.handler(context, _resolve_arguments(context, name, op_args))
                        changed = operation.changes and not isinstance(value, cmdlets.Unchanged)
                        if isinstance(value, cmdlets.Unchanged):
                            value = value.value
                        result.update(status="ok", value=value, changed=changed)
                    except OperationError as failure:
                        error = failure.record
                if error is not None:
                    result.update(status="failed", changed=False, error=error.as_dict())
                    stopped = operation.changes
        return {
            "changed": any(result["changed"] for result in results),
            "exchange_session": session if session_tried else None,
            "results": results,
        }

    def _apply_faults(self, name: str) -> ErrorRecord | None:
        """Latency sleeps outside the lock, drop aborts the call; the error (if any) fails the operation."""
        with self.lock:
            fault = self.faults.take(self.server.name, name)
        if fault is None:
            return None
        if fault.latency:
            time.sleep(fault.latency)
        if fault.drop:
            raise DroppedConnection(f"{self.server.name}: connection dropped during {name}")
        return fault.error_record()
