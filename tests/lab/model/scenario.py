# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario files: loading, validation against a small schema, and normalisation.

A scenario is a YAML mapping (see tests/lab/README.md, "Scenario format"). Validation fills defaults
and rejects unknown keys, wrong types and dangling references with a :class:`ScenarioError` that names
the file and the key path, e.g. ``dag.yml: servers[1].certificates[0].ref: unknown certificate 'mial'``.
"""

from __future__ import annotations

import copy
import pathlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import yaml

from .errors import ScenarioError

SCENARIO_DIR = pathlib.Path(__file__).resolve().parent.parent / "scenarios"

#: Built-in certificate ids every server gets (exchange-facts.md, "Default certificates on a server").
EXCHANGE_DEFAULT = "exchange"  # the per-server "Microsoft Exchange" self-signed certificate
AUTH_DEFAULT = "auth"  # the organisation's "Microsoft Exchange Server Auth Certificate"
WMSVC_DEFAULT = "wmsvc"  # the per-server WMSvc-SHA2-<Server> certificate
BUILT_IN_IDS = (EXCHANGE_DEFAULT, AUTH_DEFAULT, WMSVC_DEFAULT)

SERVICES = ("None", "IMAP", "POP", "UM", "IIS", "SMTP", "Federation", "UMCallRouter")
STATUS_OVERRIDES = ("Revoked", "RevocationCheckFailure", "Invalid", "Unknown")
SESSION_MODES = ("ok", "double_hop", "no_exchange")
_DURATION = re.compile(r"^\s*([+-]?\d+)\s*([smhdwy]?)\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400, "": 86400}


def parse_duration(text: str | int) -> timedelta:
    """A time relative to the lab's start: ``"20d"``, ``"-3d"``, ``"5y"``, ``"12h"``, ``0`` (a bare number is days)."""
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"invalid relative time {text!r} (use e.g. 20d, -3d, 12h, 5y)")
    return timedelta(seconds=int(match.group(1)) * _DURATION_UNITS[match.group(2)])


# --------------------------------------------------------------------------------------------
# A tiny schema language: each node validates a value and returns it normalised.
# --------------------------------------------------------------------------------------------
Validator = Callable[[Any, str], Any]


class _Invalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")


def _scalar(kind: type | tuple[type, ...], name: str) -> Validator:
    def check(value: Any, path: str) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise _Invalid(path, f"expected {name}, got a boolean")
        if not isinstance(value, kind):
            raise _Invalid(path, f"expected {name}, got {type(value).__name__}")
        return value

    return check


STR = _scalar(str, "a string")
INT = _scalar(int, "an integer")
BOOL = _scalar(bool, "a boolean")


def choice(*options: str) -> Validator:
    def check(value: Any, path: str) -> Any:
        if value not in options:
            raise _Invalid(path, f"must be one of {', '.join(options)}; got {value!r}")
        return value

    return check


def duration(value: Any, path: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Invalid(path, "expected a relative time such as 20d, -3d, 12h or 5y")
    try:
        return parse_duration(value)
    except ValueError as error:
        raise _Invalid(path, str(error)) from None


def list_of(item: Validator) -> Validator:
    def check(value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise _Invalid(path, f"expected a list, got {type(value).__name__}")
        return [item(element, f"{path}[{index}]") for index, element in enumerate(value)]

    return check


def map_of(item: Validator) -> Validator:
    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a mapping, got {type(value).__name__}")
        return {str(key): item(element, f"{path}.{key}") for key, element in value.items()}

    return check


def optional(item: Validator) -> Validator:
    """``item`` or an explicit null (``iis.back_end: null`` = no binding)."""

    def check(value: Any, path: str) -> Any:
        return None if value is None else item(value, path)

    check.accepts_none = True  # type: ignore[attr-defined]
    return check


def one_of(*items: Validator) -> Validator:
    """The first alternative that accepts the value; the last alternative's error otherwise."""

    def check(value: Any, path: str) -> Any:
        error: _Invalid | None = None
        for item in items:
            try:
                return item(value, path)
            except _Invalid as invalid:
                error = invalid
        assert error is not None
        raise error

    return check


def false_only(value: Any, path: str) -> bool:
    if value is not False:
        raise _Invalid(path, "expected false or a mapping")
    return False


@dataclass(frozen=True)
class Key:
    validator: Validator
    required: bool = False
    default: Any = None


def record(**keys: Key | Validator) -> Validator:
    """A mapping with exactly these keys (a bare validator is an optional key with default None)."""
    spec = {name: entry if isinstance(entry, Key) else Key(entry) for name, entry in keys.items()}

    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid(path, f"expected a mapping, got {type(value).__name__}")
        unknown = sorted(set(map(str, value)) - set(spec))
        if unknown:
            where = f"{path}.{unknown[0]}" if path else unknown[0]
            raise _Invalid(where, f"unknown key (allowed: {', '.join(spec)})")
        result: dict[str, Any] = {}
        for name, key in spec.items():
            child = f"{path}.{name}" if path else name
            if name in value and (value[name] is not None or getattr(key.validator, "accepts_none", False)):
                result[name] = key.validator(value[name], child)
            elif key.required:
                raise _Invalid(child, "is required")
            else:
                result[name] = copy.deepcopy(key.default)
        return result

    return check


# --------------------------------------------------------------------------------------------
# The scenario schema
# --------------------------------------------------------------------------------------------
STR_LIST = list_of(STR)
SERVICE_LIST = list_of(choice(*SERVICES))

# A generated certificate (exchange-facts.md fields; names as pki.CertificateSpec).
SPEC_KEYS: dict[str, Key | Validator] = {
    "description": STR,
    "subject": Key(STR, required=True),
    "dns_names": Key(STR_LIST, default=[]),
    "key_type": Key(choice("rsa", "ec"), default="rsa"),
    "key_size": Key(INT, default=2048),
    "signature_hash": Key(choice("sha256", "sha384", "sha512", "sha1", "md5"), default="sha256"),
    "not_before": Key(duration, default=timedelta(days=-1)),
    "not_after": Key(duration, default=timedelta(days=365)),
    "issuer": Key(STR, default="lab-ca"),
    "ekus": Key(STR_LIST, default=["server_auth"]),
    "status": choice(*STATUS_OVERRIDES),
}
FILES_KEYS: dict[str, Key | Validator] = {
    "description": STR,
    "files": Key(
        record(pfx=STR, password=STR, pem=STR, der=STR, key=STR),
        required=True,
    ),
    "status": choice(*STATUS_OVERRIDES),
}
_FILES_CERTIFICATE = record(**FILES_KEYS)
_SPEC_CERTIFICATE = record(**SPEC_KEYS)


def CERTIFICATE(value: Any, path: str) -> dict[str, Any]:  # noqa: N802 - reads like the other schema nodes
    """A certificate is either ``files`` (PEM / DER / PFX) or a generated spec."""
    if isinstance(value, dict) and "files" in value:
        return _FILES_CERTIFICATE(value, path)
    return _SPEC_CERTIFICATE(value, path)


# Partial overrides of a built-in certificate's spec (every key optional).
SPEC_OVERRIDE = record(**{name: (key.validator if isinstance(key, Key) else key) for name, key in SPEC_KEYS.items()})

INSTALL_KEYS: dict[str, Key | Validator] = {
    "store": Key(STR, default="My"),
    "services": Key(SERVICE_LIST, default=[]),
    "exportable": BOOL,
    "key_provider": choice("csp", "cng"),
    "friendly_name": STR,
    "has_private_key": Key(BOOL, default=True),
    "network_service_read": Key(BOOL, default=True),
}
INSTALL = record(ref=Key(STR, required=True), **INSTALL_KEYS)
INSTALL_OVERRIDE = record(**INSTALL_KEYS)

SCHEMA = record(
    description=STR,
    organization=Key(
        record(
            name=Key(STR, default="Contoso"),
            domain=Key(STR, default="contoso.lab"),
            netbios=Key(STR, default="CONTOSO"),
            domain_controller=Key(STR, default="dc1"),
        ),
        default={"name": "Contoso", "domain": "contoso.lab", "netbios": "CONTOSO", "domain_controller": "dc1"},
    ),
    accounts=Key(
        list_of(
            record(
                username=Key(STR, required=True),
                password=Key(STR, required=True),
                exchange_admin=Key(BOOL, default=False),
            )
        ),
        required=True,
    ),
    ca=Key(
        record(
            host=Key(STR, default="dc1"),
            name=STR,
            templates=Key(
                map_of(
                    record(
                        approval=Key(choice("auto", "manual", "deny"), default="auto"),
                        validity=Key(duration, default=timedelta(days=730)),
                        ekus=Key(STR_LIST, default=["server_auth"]),
                    )
                ),
                default={},
            ),
        ),
        default={"host": "dc1", "name": None, "templates": {}},
    ),
    authorities=Key(
        map_of(
            record(
                subject=Key(STR, required=True),
                not_before=Key(duration, default=timedelta(days=-365)),
                not_after=Key(duration, default=timedelta(days=3650)),
                parent=STR,
                trusted=Key(BOOL, default=True),
            )
        ),
        default={},
    ),
    certificates=Key(map_of(CERTIFICATE), default={}),
    auth=Key(
        record(
            certificate=SPEC_OVERRIDE,
            current=Key(STR, default=AUTH_DEFAULT),
            previous=STR,
            next=STR,
            next_effective=duration,
            realm=Key(STR, default=""),
        ),
        default={
            "certificate": None,
            "current": AUTH_DEFAULT,
            "previous": None,
            "next": None,
            "next_effective": None,
            "realm": "",
        },
    ),
    servers=Key(
        list_of(
            record(
                name=Key(STR, required=True),
                version=Key(STR, required=True),
                os=STR,
                site=Key(STR, default="Default-First-Site-Name"),
                exchange_session=Key(choice(*SESSION_MODES), default="ok"),
                rawdata_only=Key(BOOL, default=False),
                defaults=Key(
                    record(
                        exchange=one_of(false_only, SPEC_OVERRIDE),
                        wmsvc=one_of(false_only, SPEC_OVERRIDE),
                        auth=one_of(false_only, INSTALL_OVERRIDE),
                    ),
                    default={"exchange": None, "wmsvc": None, "auth": None},
                ),
                certificates=Key(list_of(INSTALL), default=[]),
                pending_requests=Key(
                    list_of(
                        record(
                            subject=Key(STR, required=True),
                            dns_names=Key(STR_LIST, default=[]),
                            key_size=Key(INT, default=2048),
                            created=Key(duration, default=timedelta(0)),
                            exportable=Key(BOOL, default=False),
                            friendly_name=STR,
                        )
                    ),
                    default=[],
                ),
                iis=Key(
                    record(
                        default_web_site=Key(optional(STR), default=EXCHANGE_DEFAULT),
                        back_end=Key(optional(STR), default=EXCHANGE_DEFAULT),
                        require_ssl=Key(BOOL, default=True),
                    ),
                    default=None,
                ),
                internal_transport=Key(optional(STR), default=EXCHANGE_DEFAULT),
                receive_connectors=Key(map_of(record(tls_certificate=STR, tls_certificate_name=STR)), default={}),
                cliusr=record(not_before=duration, not_after=duration),
            )
        ),
        required=True,
    ),
    dags=Key(
        list_of(
            record(
                name=Key(STR, required=True),
                members=Key(STR_LIST, required=True),
                witness=STR,
                cliusr_validity=Key(duration, default=timedelta(days=365)),
            )
        ),
        default=[],
    ),
    send_connectors=Key(
        list_of(
            record(
                name=Key(STR, required=True),
                fqdn=STR,
                address_spaces=Key(STR_LIST, default=["SMTP:*;1"]),
                source_servers=STR_LIST,
                require_tls=Key(BOOL, default=False),
                enabled=Key(BOOL, default=True),
                cloud_services_mail_enabled=Key(BOOL, default=False),
                tls_certificate=STR,
                tls_certificate_name=STR,
            )
        ),
        default=[],
    ),
    hybrid=record(
        name=Key(STR, default="Hybrid Configuration"),
        tls_certificate=STR,
        tls_certificate_name=STR,
        sending_servers=STR_LIST,
        receiving_servers=STR_LIST,
        domains=Key(STR_LIST, default=[]),
        features=Key(
            STR_LIST,
            default=[
                "FreeBusy",
                "MoveMailbox",
                "Mailtips",
                "MessageTracking",
                "OwaRedirection",
                "OnlineArchive",
                "SecureMail",
                "Photos",
            ],
        ),
    ),
)


@dataclass
class Scenario:
    """A validated, normalised scenario: ``data`` mirrors the YAML with defaults filled in."""

    name: str
    data: dict[str, Any]
    base_dir: pathlib.Path | None = None
    server_names: list[str] = field(default_factory=list)


def load(source: str | pathlib.Path | Mapping[str, Any]) -> Scenario:
    """Load a scenario by name (``"dag"``), path, or an already parsed mapping, and validate it."""
    if isinstance(source, Mapping):
        return validate(dict(source), label="<scenario>")
    path = pathlib.Path(source)
    if not path.suffix and not path.exists():
        path = SCENARIO_DIR / f"{source}.yml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ScenarioError(f"cannot read scenario {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ScenarioError(f"{path.name}: invalid YAML: {error}") from None
    return validate(raw, label=path.name, base_dir=path.parent)


def validate(raw: Any, *, label: str, base_dir: pathlib.Path | None = None) -> Scenario:
    """Validate a parsed scenario; every error names ``label`` (the file) and the key path."""
    try:
        data = SCHEMA(raw, "")
        names = _check_references(data)
    except _Invalid as error:
        raise ScenarioError(f"{label}: {error}") from None
    return Scenario(label, data, base_dir, names)


def _check_references(data: dict[str, Any]) -> list[str]:
    """Cross-field rules: unique names, known certificate ids, servers, authorities, versions."""
    from .organization import OS_BUILDS, VERSIONS  # the version table lives with the server model

    certificates = data["certificates"]
    for cert_id in certificates:
        if cert_id in BUILT_IN_IDS:
            raise _Invalid(f"certificates.{cert_id}", f"{cert_id!r} is a built-in certificate id; choose another id")
    authorities = data["authorities"]
    for name, authority in authorities.items():
        if authority["parent"] is not None and authority["parent"] not in {*authorities, "lab-root", "lab-ca"}:
            raise _Invalid(f"authorities.{name}.parent", f"unknown authority {authority['parent']!r}")
    for cert_id, cert in certificates.items():
        issuer = cert.get("issuer")
        if issuer is not None and issuer not in {"self", "lab-ca", "lab-root", *authorities}:
            raise _Invalid(f"certificates.{cert_id}.issuer", f"unknown issuer {issuer!r}")
    if not any(account["exchange_admin"] for account in data["accounts"]):
        raise _Invalid("accounts", "at least one account needs exchange_admin: true")

    known_ids = {*certificates, *BUILT_IN_IDS}

    def ref(value: str | None, path: str) -> None:
        if value is not None and value not in known_ids:
            raise _Invalid(path, f"unknown certificate {value!r} (known: {', '.join(sorted(known_ids))})")

    names: list[str] = []
    for index, server in enumerate(data["servers"]):
        path = f"servers[{index}]"
        name = server["name"]
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,14}", name):
            raise _Invalid(f"{path}.name", f"{name!r} is not a lowercase NetBIOS-style host name")
        if name in names:
            raise _Invalid(f"{path}.name", f"duplicate server {name!r}")
        names.append(name)
        if server["version"] not in VERSIONS:
            raise _Invalid(f"{path}.version", f"unknown version {server['version']!r} (known: {', '.join(VERSIONS)})")
        version = VERSIONS[server["version"]]
        server["os"] = server["os"] or version.default_os
        if server["os"] not in version.supported_os:
            raise _Invalid(
                f"{path}.os",
                f"{version.label} does not run on Windows Server {server['os']} "
                f"(supported: {', '.join(version.supported_os)})",
            )
        assert server["os"] in OS_BUILDS
        if server["iis"] is None:
            server["iis"] = {"default_web_site": EXCHANGE_DEFAULT, "back_end": EXCHANGE_DEFAULT, "require_ssl": True}
        for position, install in enumerate(server["certificates"]):
            ref(install["ref"], f"{path}.certificates[{position}].ref")
        ref(server["iis"]["default_web_site"], f"{path}.iis.default_web_site")
        ref(server["iis"]["back_end"], f"{path}.iis.back_end")
        ref(server["internal_transport"], f"{path}.internal_transport")
        for connector, settings in server["receive_connectors"].items():
            ref(settings["tls_certificate"], f"{path}.receive_connectors.{connector}.tls_certificate")
    for key in ("current", "previous", "next"):
        ref(data["auth"][key], f"auth.{key}")
    if (data["auth"]["next"] is None) != (data["auth"]["next_effective"] is None):
        raise _Invalid("auth.next_effective", "auth.next and auth.next_effective go together")
    for index, dag in enumerate(data["dags"]):
        for member in dag["members"]:
            if member not in names:
                raise _Invalid(f"dags[{index}].members", f"unknown server {member!r}")
    for index, connector in enumerate(data["send_connectors"]):
        ref(connector["tls_certificate"], f"send_connectors[{index}].tls_certificate")
        for server in connector["source_servers"] or []:
            if server not in names:
                raise _Invalid(f"send_connectors[{index}].source_servers", f"unknown server {server!r}")
    if data["hybrid"] is not None:
        ref(data["hybrid"]["tls_certificate"], "hybrid.tls_certificate")
    return names
