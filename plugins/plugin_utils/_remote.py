# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Controller-side client of the remote executor ``exchange.pki.exchange_batch``.

An action plugin builds one :class:`Batch` of allow-listed operations, sends it with :func:`run_batch`
(one ``_execute_module`` round trip) and reads typed values from the :class:`BatchResult`. The contract
is docs/remote-protocol.md; :data:`OPERATIONS` mirrors the allow-list of plugins/modules/exchange_batch.ps1
(a unit test keeps both equal).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from ansible.errors import AnsibleConnectionFailure

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import (
    BatchDefinitionError,
    CertificateNotFound,
    ExchangeAccessDenied,
    ExchangeAuthenticationRefused,
    ExchangePermissionDenied,
    ExchangePkiError,
    ExchangeToolsMissing,
    HostUnreachable,
    OperationFailed,
    OperationSkipped,
    RemoteError,
    RemoteModuleError,
    RemoteProtocolError,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime

MODULE_NAME = "exchange.pki.exchange_batch"


# --- the allow-list -------------------------------------------------------------------------------


class ParamType(enum.Enum):
    """Wire type of an operation parameter (the strings are the .ps1 allow-list's type names)."""

    STRING = "string"
    SERVER = "server"  # a server name, or LOCAL_SERVER: the local Exchange server, resolved on the host
    LIST = "list"
    INT = "int"
    BOOL = "bool"
    SWITCH = "switch"
    BYTES = "bytes"
    SECRET = "secret"
    DATETIME = "datetime"


OperationKind = Literal["exchange", "host"]


@dataclasses.dataclass(frozen=True)
class OperationSpec:
    """What may run: one allow-listed operation, the parameters it accepts and those it requires."""

    name: str
    kind: OperationKind
    changes: bool
    parameters: Mapping[str, ParamType]
    required: frozenset[str] = frozenset()


def _operation(op_name: str, kind: OperationKind, /, *, changes: bool = False, required: Iterable[str] = (),
               **parameters: ParamType) -> OperationSpec:
    # Positional-only: a parameter may itself be called "name" (host.restart_service).
    return OperationSpec(op_name, kind, changes, MappingProxyType(parameters), frozenset(required))


_S, _L, _I, _B, _SW = ParamType.STRING, ParamType.LIST, ParamType.INT, ParamType.BOOL, ParamType.SWITCH
_SRV = ParamType.SERVER

OPERATIONS: Mapping[str, OperationSpec] = MappingProxyType({spec.name: spec for spec in (
    _operation("Get-ExchangeCertificate", "exchange", Server=_SRV, Thumbprint=_S, DomainName=_L),
    _operation(
        "New-ExchangeCertificate", "exchange", changes=True,
        Server=_SRV, GenerateRequest=_SW, BinaryEncoded=_SW, SubjectName=_S, DomainName=_L, KeySize=_I,
        PrivateKeyExportable=_B, FriendlyName=_S, Services=_L, Force=_SW, IncludeServerFQDN=_SW,
        IncludeServerNetBIOSName=_SW, IncludeAutoDiscover=_SW, Thumbprint=_S,
    ),
    _operation(
        "Import-ExchangeCertificate", "exchange", changes=True, required=("FileData",),
        Server=_SRV, FileData=ParamType.BYTES, Password=ParamType.SECRET, PrivateKeyExportable=_B, FriendlyName=_S,
    ),
    _operation(
        "Enable-ExchangeCertificate", "exchange", changes=True, required=("Thumbprint", "Services"),
        Server=_SRV, Thumbprint=_S, Services=_L, DoNotRequireSsl=_SW, Force=_SW, NetworkServiceAllowed=_SW,
    ),
    _operation("Export-ExchangeCertificate", "exchange", required=("Thumbprint",),
               Server=_SRV, Thumbprint=_S, Password=ParamType.SECRET),
    _operation("Remove-ExchangeCertificate", "exchange", changes=True, required=("Thumbprint",),
               Server=_SRV, Thumbprint=_S),
    _operation("Get-AuthConfig", "exchange"),
    _operation(
        "Set-AuthConfig", "exchange", changes=True,
        NewCertificateThumbprint=_S, NewCertificateEffectiveDate=ParamType.DATETIME, PublishCertificate=_SW,
        ClearPreviousCertificate=_SW, Force=_SW,
    ),
    _operation("Get-TransportService", "exchange", Identity=_SRV),
    _operation("Get-SendConnector", "exchange", Identity=_S),
    _operation("Set-SendConnector", "exchange", changes=True, required=("Identity",),
               Identity=_S, TlsCertificateName=_S),
    _operation("Get-ReceiveConnector", "exchange", Identity=_S, Server=_SRV),
    _operation("Set-ReceiveConnector", "exchange", changes=True, required=("Identity",),
               Identity=_S, TlsCertificateName=_S),
    _operation("Get-ImapSettings", "exchange", Server=_SRV),
    _operation("Set-ImapSettings", "exchange", changes=True, required=("X509CertificateName",),
               Server=_SRV, X509CertificateName=_S),
    _operation("Get-PopSettings", "exchange", Server=_SRV),
    _operation("Set-PopSettings", "exchange", changes=True, required=("X509CertificateName",),
               Server=_SRV, X509CertificateName=_S),
    _operation("Get-HybridConfiguration", "exchange"),
    _operation("Get-ExchangeServer", "exchange", Identity=_SRV),
    _operation("Get-DatabaseAvailabilityGroup", "exchange", Identity=_S, Status=_SW, Server=_SRV),
    _operation("host.info", "host"),
    _operation("host.certificates", "host", stores=_L, subject_pattern=_S, issuer_pattern=_S),
    _operation(
        "host.set_iis_binding", "host", changes=True, required=("site", "binding_information", "certificate_hash"),
        site=_S, binding_information=_S, certificate_hash=_S, certificate_store=_S,
    ),
    _operation("host.iis_bindings", "host"),
    _operation("host.cluster", "host"),
    _operation("host.add_certificate", "host", changes=True, required=("store", "certificate"),
               store=_S, certificate=ParamType.BYTES),
    _operation("host.restart_service", "host", changes=True, required=("name",), name=_S),
    _operation("host.recycle_app_pool", "host", changes=True, required=("name",), name=_S),
    _operation("host.iis_reset", "host", changes=True),
    _operation("host.certreq_submit", "host", changes=True, required=("request", "config"),
               request=ParamType.BYTES, config=_S, template=_S, attributes=_L),
    _operation("host.certreq_retrieve", "host", required=("config", "request_id"), config=_S, request_id=_I),
    _operation("host.acme_challenge", "host", changes=True, required=("action", "token"),
               action=_S, token=_S, content=_S),
)})


# --- typed values ---------------------------------------------------------------------------------

_MARKERS = {ParamType.BYTES: "$bytes", ParamType.SECRET: "$secret", ParamType.DATETIME: "$datetime"}
_LOCAL = "$local"

#: The value of a ``server`` parameter that names the Exchange server the executor runs on, resolved there
#: (Get-ExchangeServer -Identity <computer name>, else by FQDN): the inventory name is not always the
#: Exchange server's name, and reading only the local server's objects keeps the answer independent of the
#: organisation's size.
LOCAL_SERVER: Mapping[str, str] = MappingProxyType({_LOCAL: "server"})


def as_bytes(data: bytes) -> dict[str, str]:
    """The wire form of a byte string: ``{"$bytes": <base64>}``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"as_bytes() expects bytes, got {type(data).__name__}")
    return {"$bytes": base64.b64encode(bytes(data)).decode("ascii")}


def as_datetime(moment: datetime.datetime) -> dict[str, str]:
    """The wire form of an aware date/time, converted to UTC: ``{"$datetime": "...Z"}``."""
    if not isinstance(moment, datetime.datetime):
        raise TypeError(f"as_datetime() expects a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("as_datetime() needs a timezone-aware datetime")
    return {"$datetime": format_utc_datetime(moment)}


def _marker_of(value: Any) -> tuple[str, Any] | None:
    if isinstance(value, Mapping) and len(value) == 1:
        key, inner = next(iter(value.items()))
        if key in _MARKERS.values() or key == _LOCAL:
            return key, inner
    return None


# --- the Exchange session options -----------------------------------------------------------------

EXCHANGE_AUTHENTICATION_CHOICES = ("Kerberos", "Negotiate", "Default", "Basic")

# The one argument spec of the Exchange session credential; plugins/doc_fragments/exchange_session.py
# documents it (a unit test keeps both equal) and every action plugin that talks to Exchange reuses it.
EXCHANGE_SESSION_ARGSPEC: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "exchange_uri": MappingProxyType({"type": "str"}),
    "exchange_username": MappingProxyType({"type": "str"}),
    "exchange_password": MappingProxyType({"type": "str", "no_log": True}),
    "exchange_authentication": MappingProxyType({
        "type": "str", "default": "Kerberos", "choices": list(EXCHANGE_AUTHENTICATION_CHOICES),
    }),
})
EXCHANGE_SESSION_REQUIRED_TOGETHER: tuple[tuple[str, ...], ...] = (("exchange_username", "exchange_password"),)


def exchange_session_argspec() -> dict[str, dict[str, Any]]:
    """A fresh, mutable copy of the session options for an action plugin's argument spec."""
    return {name: {key: list(value) if isinstance(value, list) else value for key, value in spec.items()}
            for name, spec in EXCHANGE_SESSION_ARGSPEC.items()}


class SessionOptionError(ExchangePkiError, ValueError):
    """An Exchange session option is invalid; the message names the option and never shows the password."""


_MAX_USERNAME = 512
_MAX_URI = 2048


def _check_uri(uri: str) -> None:
    if not uri.strip():
        raise SessionOptionError(
            "exchange_uri must not be empty (leave it out for http://<FQDN of the host>/PowerShell/)",
        )
    if has_control(uri) or any(char.isspace() for char in uri):
        raise SessionOptionError("exchange_uri must not contain whitespace or control characters (CR, LF, NUL, ...)")
    if len(uri) > _MAX_URI:
        raise SessionOptionError(f"exchange_uri is longer than {_MAX_URI} characters")
    try:
        parsed = urllib.parse.urlsplit(uri)
        port = parsed.port  # raises ValueError when it is not a number in 0-65535
    except ValueError:
        raise SessionOptionError(f"exchange_uri is not a valid URL: {uri!r}") from None
    if parsed.username is not None or parsed.password is not None:  # never echo a URI that carries a password
        raise SessionOptionError("exchange_uri must not carry a user name or password: use exchange_username "
                                 "and exchange_password")
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        raise SessionOptionError(
            "exchange_uri must be an http:// or https:// URL with a host, like https://ex1.contoso.com/PowerShell/; "
            f"got {uri!r}",
        )
    if port == 0:
        raise SessionOptionError(f"exchange_uri has port 0, outside 1-65535: {uri!r}")
    if parsed.query or parsed.fragment:
        raise SessionOptionError(f"exchange_uri must not have a query or fragment: {uri!r}")


@dataclasses.dataclass(frozen=True)
class ExchangeSessionOptions:
    """How the executor opens the Exchange session; the default is the connection's own identity.

    An empty exchange_username together with an empty exchange_password means "not given" (the connection's
    identity), so that ``"{{ user | default('') }}"`` works; one empty and the other not is an error, as is
    a user name or password with control characters, and an exchange_uri that is not an http(s) URL with a host.
    Basic authentication is refused over http:// (the password would cross the network in clear).
    """

    uri: str | None = None
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    authentication: str = "Kerberos"

    def __post_init__(self) -> None:
        if self.authentication not in EXCHANGE_AUTHENTICATION_CHOICES:
            raise SessionOptionError(
                f"exchange_authentication must be one of {', '.join(EXCHANGE_AUTHENTICATION_CHOICES)}",
            )
        for name, value in (("exchange_uri", self.uri), ("exchange_username", self.username),
                            ("exchange_password", self.password)):
            if value is not None and not isinstance(value, str):
                raise SessionOptionError(f"{name} must be a string")
        if (self.username is None) != (self.password is None):
            raise SessionOptionError("exchange_username and exchange_password must be given together")
        if self.username is not None and self.password is not None:
            if not self.username.strip():
                raise SessionOptionError("exchange_username is empty, exchange_password is not: give both or neither")
            if not self.password:
                raise SessionOptionError("exchange_password is empty, exchange_username is not: give both or neither")
            if has_control(self.username) or len(self.username) > _MAX_USERNAME:
                raise SessionOptionError(
                    f"exchange_username must not contain control characters (CR, LF, NUL, ...) or exceed "
                    f"{_MAX_USERNAME} characters",
                )
            if any("\ud800" <= char <= "\udfff" for char in self.username):
                raise SessionOptionError("exchange_username holds a lone surrogate, which no account name can hold")
            if "\x00" in self.password:
                raise SessionOptionError("exchange_password must not contain a NUL character")
        if self.uri is not None:
            _check_uri(self.uri)
        if self.authentication == "Basic" and (self.uri is None or not self.uri.lower().startswith("https://")):
            raise SessionOptionError(
                "exchange_authentication Basic sends the password in clear over http://: give an https:// "
                "exchange_uri (Basic must also be enabled on the PowerShell virtual directory)",
            )

    @classmethod
    def from_task_args(cls, args: Mapping[str, Any]) -> ExchangeSessionOptions:
        """Build from validated task arguments that include :data:`EXCHANGE_SESSION_ARGSPEC`.

        Raises :class:`SessionOptionError` naming the option. Both credential options empty is "not given".
        """
        username, password = args.get("exchange_username"), args.get("exchange_password")
        if username == "" and password == "":  # noqa: PLC1901 - exactly the empty string, not any falsy value
            username = password = None
        return cls(
            uri=args.get("exchange_uri"),
            username=username,
            password=password,
            authentication=args.get("exchange_authentication") or "Kerberos",
        )

    def module_args(self) -> dict[str, str]:
        values = {
            "exchange_uri": self.uri,
            "exchange_username": self.username,
            "exchange_password": self.password,
            "exchange_authentication": self.authentication,
        }
        return {name: value for name, value in values.items() if value is not None}


# --- the batch ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Operation:
    id: str
    op: str
    args: Mapping[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "op": self.op, "args": dict(self.args)}


class Batch:
    """Builder of one batch of operations, validated against :data:`OPERATIONS` as it is built.

    Secrets are registered with :meth:`as_secret`; the arguments only ever hold the marker, the values
    travel in the module's ``secrets`` option (no_log).
    """

    def __init__(self) -> None:
        self._operations: list[Operation] = []
        self._secrets: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._operations)

    @property
    def operations(self) -> tuple[Operation, ...]:
        return tuple(self._operations)

    @property
    def has_changes(self) -> bool:
        """True when the batch holds a changing operation (never sent in check mode)."""
        return any(OPERATIONS[operation.op].changes for operation in self._operations)

    def as_secret(self, value: str) -> dict[str, str]:
        """Register a secret and return its marker ``{"$secret": <name>}`` for use in ``args``."""
        if not isinstance(value, str):
            raise TypeError("a secret must be a string")
        for name, known in self._secrets.items():
            if known == value:
                return {"$secret": name}
        name = f"secret{len(self._secrets) + 1}"
        self._secrets[name] = value
        return {"$secret": name}

    def add(self, op: str, args: Mapping[str, Any] | None = None, *, id: str | None = None) -> str:  # noqa: A002
        """Append an operation and return its id (``<op>-<n>`` unless given)."""
        spec = OPERATIONS.get(op)
        if spec is None:
            raise BatchDefinitionError(f"unknown operation {op!r}")
        arguments = dict(args or {})
        for name, value in arguments.items():
            if name not in spec.parameters:
                raise BatchDefinitionError(f"{op}: unknown parameter {name!r}")
            arguments[name] = self._checked_value(op, name, spec.parameters[name], value)
        missing = sorted(spec.required - arguments.keys())
        if missing:
            raise BatchDefinitionError(f"{op}: missing required parameter(s) {', '.join(missing)}")
        operation_id = id if id is not None else f"{op}-{len(self._operations) + 1}"
        if not operation_id or any(operation.id == operation_id for operation in self._operations):
            raise BatchDefinitionError(f"{op}: the operation id {operation_id!r} is empty or already used")
        self._operations.append(Operation(operation_id, op, MappingProxyType(arguments)))
        return operation_id

    def _checked_value(self, op: str, name: str, param_type: ParamType, value: Any) -> Any:
        def fail(expected: str) -> BatchDefinitionError:
            return BatchDefinitionError(f"{op}: parameter {name!r} expects {expected}, got {type(value).__name__}")

        marker = _marker_of(value)
        expected_marker = _MARKERS.get(param_type)
        if expected_marker is not None:
            if marker is None or marker[0] != expected_marker or not isinstance(marker[1], str):
                helper = "Batch.as_secret()" if param_type is ParamType.SECRET else f"as_{param_type.value}()"
                raise fail(f"a value made with {helper}")
            if param_type is ParamType.SECRET and marker[1] not in self._secrets:
                raise BatchDefinitionError(f"{op}: parameter {name!r} refers to a secret not registered in this batch")
            return dict(value)
        if param_type is ParamType.SERVER:
            if marker is not None:
                if marker != (_LOCAL, "server"):
                    raise fail("a server name or LOCAL_SERVER")
                return dict(LOCAL_SERVER)
            if value is not None and not isinstance(value, str):
                raise fail("a server name or LOCAL_SERVER")
            return value
        if marker is not None:
            raise fail(f"a plain {param_type.value}")
        if param_type in (ParamType.BOOL, ParamType.SWITCH):
            if not isinstance(value, bool):
                raise fail("a boolean")
        elif param_type is ParamType.INT:
            if not isinstance(value, int) or isinstance(value, bool):
                raise fail("an integer")
        elif param_type is ParamType.STRING:
            if value is not None and not isinstance(value, str):
                raise fail("a string")
        elif param_type is ParamType.LIST:
            if value is None:
                return None
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) \
                    or not all(isinstance(item, str) for item in value):
                raise fail("a list of strings")
            return list(value)
        return value

    def module_args(self, session: ExchangeSessionOptions | None = None) -> dict[str, Any]:
        """The arguments of ``exchange.pki.exchange_batch`` for this batch."""
        module_args: dict[str, Any] = {
            "operations": [operation.to_wire() for operation in self._operations],
            "secrets": dict(self._secrets),
        }
        if session is not None:
            module_args.update(session.module_args())
        return module_args


# --- results --------------------------------------------------------------------------------------

OperationStatus = Literal["ok", "failed", "skipped"]
_STATUSES = ("ok", "failed", "skipped")


@dataclasses.dataclass(frozen=True)
class OperationResult:
    id: str
    op: str
    status: OperationStatus
    changed: bool
    value: Any = None
    error: RemoteError | None = None
    check_mode: bool = False
    #: Whether the batch's Exchange session used an explicit credential (how an access denial is named).
    explicit_credential: bool = False

    def exception(self) -> ExchangePkiError | None:
        """The domain error of a failed or skipped operation; None when it succeeded."""
        if self.status == "skipped":
            return OperationSkipped(self.op, check_mode=self.check_mode)
        if self.error is not None:
            return classify_error(self.op, self.error, explicit_credential=self.explicit_credential)
        return None


@dataclasses.dataclass(frozen=True)
class ExchangeSessionInfo:
    uri: str | None
    opened: bool
    removed: bool


@dataclasses.dataclass(frozen=True)
class BatchResult:
    results: tuple[OperationResult, ...]
    changed: bool
    exchange_session: ExchangeSessionInfo | None = None

    def __getitem__(self, operation_id: str) -> OperationResult:
        for result in self.results:
            if result.id == operation_id:
                return result
        raise KeyError(operation_id)

    @property
    def failures(self) -> tuple[OperationResult, ...]:
        return tuple(result for result in self.results if result.status == "failed")

    def require(self, operation_id: str) -> Any:
        """The value of an operation, or the mapped domain error when it failed or was skipped."""
        result = self[operation_id]
        error = result.exception()
        if error is not None:
            raise error
        return result.value


# Session-open failures that mean the Exchange endpoint or its tools are missing (docs/remote-protocol.md).
_TOOLS_MISSING = re.compile(
    r"cannot resolve|WinRM cannot complete|The term '?[^']*'? is not recognized",
    re.IGNORECASE,
)
# Session-open failures that mean the credential itself was rejected (ERROR_LOGON_FAILURE, SEC_E_LOGON_DENIED).
_LOGON_FAILURE = re.compile(
    r"^LogonFailure,|user name or password is incorrect|\blogon failure\b|0x8009030C|SEC_E_LOGON_DENIED",
    re.IGNORECASE,
)


def classify_error(op: str, error: RemoteError, *, explicit_credential: bool = False) -> ExchangePkiError:
    """Map an operation's error record to the domain error the controller acts on.

    For an Exchange cmdlet: a rejected credential is :class:`ExchangeAuthenticationRefused`; "Access is
    denied" when opening the session is the double hop (:class:`ExchangeAccessDenied`), or a refused
    credential when an explicit one was given; a cmdlet the opened session does not offer
    (CommandNotFoundException) is missing RBAC rights (:class:`ExchangePermissionDenied`); an endpoint that
    cannot be reached is :class:`ExchangeToolsMissing`.
    """
    fqid = error.fully_qualified_error_id or ""
    spec = OPERATIONS.get(op)
    if spec is not None and spec.kind == "exchange":
        session_failed = "PSSessionOpenFailed" in fqid
        if session_failed and (_LOGON_FAILURE.search(fqid) or _LOGON_FAILURE.search(error.message)):
            return ExchangeAuthenticationRefused(op, error)
        if fqid.startswith("AccessDenied,") or (session_failed and "Access is denied" in error.message):
            return ExchangeAuthenticationRefused(op, error) if explicit_credential else ExchangeAccessDenied(op, error)
        if fqid.split(",", 1)[0] == "CommandNotFoundException":
            return ExchangePermissionDenied(op, error, changes=spec.changes)
        if _TOOLS_MISSING.search(error.message):
            return ExchangeToolsMissing(op, error)
        not_found = CertificateNotFound.from_error(op, error)
        if not_found is not None:
            return not_found
    return OperationFailed(op, error)


def _parse_error(value: Any, where: str) -> RemoteError:
    if not isinstance(value, Mapping) or not isinstance(value.get("message"), str):
        raise RemoteProtocolError(f"{where}.error: expected an object with a message")
    fields = {}
    for name in ("category", "fully_qualified_error_id", "reason", "target"):
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise RemoteProtocolError(f"{where}.error.{name}: expected a string")
        fields[name] = item
    return RemoteError(message=value["message"], **fields)


def _parse_operation_result(value: Any, sent: Operation, index: int, explicit_credential: bool) -> OperationResult:
    where = f"results[{index}]"
    if not isinstance(value, Mapping):
        raise RemoteProtocolError(f"{where}: expected an object")
    if value.get("id") != sent.id or value.get("op") != sent.op:
        raise RemoteProtocolError(f"{where}: expected the result of {sent.id!r} ({sent.op}), got {value.get('id')!r}")
    status = value.get("status")
    if status not in _STATUSES:
        raise RemoteProtocolError(f"{where}.status: expected ok, failed or skipped, got {status!r}")
    changed = value.get("changed", False)
    if not isinstance(changed, bool):
        raise RemoteProtocolError(f"{where}.changed: expected a boolean")
    error = _parse_error(value.get("error"), where) if status == "failed" else None
    return OperationResult(
        id=sent.id, op=sent.op, status=status, changed=changed, value=value.get("value"),
        error=error, check_mode=value.get("check_mode") is True, explicit_credential=explicit_credential,
    )


def _parse_session(value: Any) -> ExchangeSessionInfo | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RemoteProtocolError("exchange_session: expected an object")
    uri = value.get("uri")
    if uri is not None and not isinstance(uri, str):
        raise RemoteProtocolError("exchange_session.uri: expected a string")
    return ExchangeSessionInfo(uri=uri, opened=value.get("opened") is True, removed=value.get("removed") is True)


def parse_batch_result(result: Mapping[str, Any], batch: Batch, *, explicit_credential: bool = False) -> BatchResult:
    """Check a module result against the batch that was sent and return its typed form.

    ``explicit_credential``: the session options carried exchange_username (an access denial then means
    the credential was refused, not the double hop).
    """
    results = result.get("results")
    if not isinstance(results, list) or len(results) != len(batch):
        raise RemoteProtocolError(f"results: expected a list of {len(batch)} operation result(s)")
    parsed = tuple(_parse_operation_result(item, sent, index, explicit_credential)
                   for index, (item, sent) in enumerate(zip(results, batch.operations, strict=True)))
    return BatchResult(
        results=parsed,
        changed=bool(result.get("changed")) or any(item.changed for item in parsed),
        exchange_session=_parse_session(result.get("exchange_session")),
    )


def run_batch(action_plugin: Any, batch: Batch, task_vars: Mapping[str, Any], *,
              session: ExchangeSessionOptions | None = None, check_mode: bool) -> BatchResult:
    """Send the batch in one round trip and return its result.

    Raises HostUnreachable when the connection fails (``failure_reason`` unreachable, authentication_refused
    when the connection's credentials were rejected, connection_dropped when it broke during the task),
    RemoteModuleError when the executor rejects the batch, RemoteProtocolError when the answer does not
    follow the protocol. Operation failures do not raise here: the caller reads them per operation
    (``require`` / ``exception``).
    """
    if check_mode and batch.has_changes:
        raise BatchDefinitionError("a batch with changing operations must not be sent in check mode")
    try:
        result = action_plugin._execute_module(
            module_name=MODULE_NAME, module_args=batch.module_args(session), task_vars=task_vars,
        )
    except AnsibleConnectionFailure as exc:
        raise HostUnreachable(f"the host could not be reached: {exc}", _unreachable_reason(str(exc))) from exc
    except Exception as exc:
        if not is_dropped_connection(exc):
            raise
        raise HostUnreachable(
            f"the connection to the host was dropped during the task ({type(exc).__name__}: {exc})",
            "connection_dropped",
        ) from exc
    if result.get("unreachable"):
        message = str(result.get("msg") or "the host could not be reached")
        raise HostUnreachable(message, _unreachable_reason(message))
    if result.get("failed"):
        raise RemoteModuleError(f"{MODULE_NAME} failed: {result.get('msg') or 'no message'}")
    explicit = session is not None and session.username is not None
    return parse_batch_result(result, batch, explicit_credential=explicit)


# How a connection plugin says the connection's own credentials were rejected (winrm: "the specified
# credentials were rejected by the server", HTTP 401; ssh/psrp: authentication failed).
_CREDENTIALS_REJECTED = re.compile(
    r"credentials were rejected|\b401\b|unauthori[sz]ed|authentication failed|logon failure", re.IGNORECASE,
)


def _unreachable_reason(message: str) -> str:
    return "authentication_refused" if _CREDENTIALS_REJECTED.search(message) else "unreachable"


# Exceptions a connection plugin lets through when the connection breaks mid-task: requests' and urllib3's
# connection errors (requests' derive from OSError), http.client's, and pywinrm's transport errors. Matched
# by module and name so this file needs none of those libraries.
_DROP_MODULES = ("requests.", "urllib3.", "http.client", "winrm.", "ssl", "socket")
_DROP_NAMES = frozenset({
    "ConnectionError", "ChunkedEncodingError", "ProtocolError", "RemoteDisconnected", "IncompleteRead",
    "ReadTimeoutError", "NewConnectionError", "WinRMTransportError", "SSLError", "ConnectionResetError",
    "ConnectionAbortedError", "BrokenPipeError",
})


def is_dropped_connection(error: BaseException) -> bool:
    """Whether an exception escaping ``_execute_module`` (or its cause) is a connection that broke."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError):  # builtins: reset, aborted, refused, broken pipe
            return True
        kind = type(current)
        for klass in kind.__mro__:
            module = klass.__module__ or ""
            if klass.__name__ in _DROP_NAMES and module.startswith(_DROP_MODULES):
                return True
        current = current.__cause__ or current.__context__
    return False
