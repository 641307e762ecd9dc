# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_request: a certificate signing request, key on the server or here.

``key_location: server``: the plan is one ``New-ExchangeCertificate -GenerateRequest`` on the local server; a
pending request for the same subject, names and key size already waiting there is returned instead (its CSR
from Exchange's record when the read carries it, else from ``Export-ExchangeCertificate`` of the request, a
read). ``key_location: controller``: the key and the CSR are made here with ``cryptography``; the key file is
written with mode 0600 and never returned; the managed host is not contacted.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import ipaddress
import os
import re
import stat
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import Applied, ArgumentSpec, ChangingAction
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CRYPTOGRAPHY_REQUIREMENT,
    DnsNameError,
    LocatedCertificate,
    dns_name_to_a_label,
    parse_distinguished_name,
    same_name,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._files import (
    PRIVATE_MODE,
    PUBLIC_MODE,
    output_file_problem,
    read_prefix,
    write_atomically,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ledger_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, Step
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    LOCAL_SERVER,
    Batch,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot, collect_certificates
from ansible_collections.exchange.pki.plugins.plugin_utils._values import parse_file_data

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

KEY_SIZES = (2048, 3072, 4096)
#: New-ExchangeCertificate's -KeySize set (exchange-facts.md "New-ExchangeCertificate": 1024|2048|4096).
SERVER_KEY_SIZES = (2048, 4096)
#: Most DNS names one request may carry (public CAs stop at 100 names per certificate).
MAX_DNS_NAMES = 100
#: -FriendlyName must be shorter than 64 characters (exchange-facts.md "New-ExchangeCertificate").
MAX_FRIENDLY_NAME = 63
MAX_SUBJECT = 1024
#: The largest existing key file read (an RSA 4096 PEM key is about 3.3 KiB).
MAX_KEY_FILE = 64 * 1024

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        **exchange_session_argspec(),
        **ledger_argspec(),
        "subject": {"type": "str", "required": True},
        "dns_names": {"type": "list", "elements": "str"},
        "key_size": {"type": "int", "default": 2048, "choices": list(KEY_SIZES)},
        "friendly_name": {"type": "str"},
        "exportable": {"type": "bool"},
        "key_location": {"type": "str", "default": "server", "choices": ["server", "controller"]},
        "private_key_path": {"type": "path"},
        "csr_path": {"type": "path"},
        "force": {"type": "bool", "default": False},
    },
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
    required_if=[("key_location", "controller", ("private_key_path",))],
)

# --- the subject ----------------------------------------------------------------------------------

# What -SubjectName accepts: the label written back, the cryptography NameOID attribute, the longest value
# (X.520 upper bounds; C is exactly two letters).
_ATTRIBUTES: Mapping[str, tuple[str, str, int]] = {
    "C": ("C", "COUNTRY_NAME", 2),
    "O": ("O", "ORGANIZATION_NAME", 64),
    "OU": ("OU", "ORGANIZATIONAL_UNIT_NAME", 64),
    "L": ("L", "LOCALITY_NAME", 128),
    "S": ("S", "STATE_OR_PROVINCE_NAME", 128),
    "ST": ("S", "STATE_OR_PROVINCE_NAME", 128),
    "CN": ("CN", "COMMON_NAME", 64),
    "E": ("E", "EMAIL_ADDRESS", 128),
    "DC": ("DC", "DOMAIN_COMPONENT", 63),
}
_NEEDS_QUOTES = frozenset(',+=<>#;\\')
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class RequestOptionError(AnsibleActionFail):
    """An option of certificate_request is invalid; the message names the option and the problem."""


def _unprintable(text: str) -> tuple[int, str] | None:
    """The first control or invisible format character (CR, LF, NUL, U+200E, ...) or lone surrogate (which no
    certificate, ledger record or task result can hold), with its position."""
    for position, char in enumerate(text, start=1):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            return position, char
    return None


def check_text(option: str, text: str) -> None:
    found = _unprintable(text)
    if found is not None:
        position, char = found
        what = "a lone surrogate" if unicodedata.category(char) == "Cs" else "the control or invisible character"
        raise RequestOptionError(f"{option} {text!r} contains {what} U+{ord(char):04X} at position {position}")


@dataclasses.dataclass(frozen=True)
class Subject:
    """A validated subject: (label, value) pairs in the order written, which is the order they are encoded in."""

    attributes: tuple[tuple[str, str], ...]

    @property
    def common_name(self) -> str:
        return next(value for label, value in self.attributes if label == "CN")

    @property
    def has_country(self) -> bool:
        return any(label == "C" for label, _value in self.attributes)

    @property
    def text(self) -> str:
        """The subject as -SubjectName takes it (``C=US,O=Contoso,CN=mail.contoso.com``)."""
        return ",".join(f"{label}={_quoted(value)}" for label, value in self.attributes)

    def x509_name(self) -> x509.Name:
        return x509.Name([x509.NameAttribute(getattr(NameOID, _ATTRIBUTES[label][1]), value)
                          for label, value in self.attributes])


def _quoted(value: str) -> str:
    if any(char in _NEEDS_QUOTES for char in value):
        return f'"{value}"'
    return value


def _split_rdns(text: str) -> list[str]:
    """Split at commas outside double quotes; a backslash takes the next character literally."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
        elif char == "+" and not quoted:
            raise ValueError("multi-valued RDNs ('+') are not supported: write each attribute as its own RDN")
        else:
            current.append(char)
    if quoted:
        raise ValueError("a double quote is not closed")
    if escaped:
        raise ValueError("it ends with a backslash")
    parts.append("".join(current))
    return parts


def parse_subject(text: str) -> Subject:
    """Validate ``subject``: X.500 attributes -SubjectName knows, in the order written, exactly one CN."""
    if not text.strip():
        raise RequestOptionError("subject must not be empty; write it like C=US,O=Contoso,CN=mail.contoso.com")
    if len(text) > MAX_SUBJECT:
        raise RequestOptionError(f"subject is longer than {MAX_SUBJECT} characters")
    check_text("subject", text)
    try:
        parts = _split_rdns(text)
    except ValueError as error:
        raise RequestOptionError(f"subject {text!r} cannot be read: {error}") from None
    attributes: list[tuple[str, str]] = []
    for position, part in enumerate(parts, start=1):
        if not part.strip():
            raise RequestOptionError(f"subject {text!r}: RDN {position} is empty (two commas in a row, or a comma "
                                     "at the start or end)")
        key, separator, value = part.partition("=")
        label = key.strip().upper()
        if not separator:
            raise RequestOptionError(f"subject {text!r}: RDN {position} ({part.strip()!r}) is not attribute=value")
        if label not in _ATTRIBUTES:
            raise RequestOptionError(f"subject {text!r}: RDN {position} has the attribute {key.strip()!r}; "
                                     f"use {', '.join(sorted(_ATTRIBUTES))}")
        canonical, _oid, longest = _ATTRIBUTES[label]
        value = value.strip()
        if not value:
            raise RequestOptionError(f"subject {text!r}: {canonical} (RDN {position}) has an empty value")
        if '"' in value:
            raise RequestOptionError(f"subject {text!r}: {canonical} (RDN {position}) contains a double quote")
        if canonical == "C":
            if not _COUNTRY.match(value):
                raise RequestOptionError(f"subject {text!r}: C must be a two-letter ISO 3166 country code, got "
                                         f"{value!r}")
            value = value.upper()
        if len(value) > longest:
            raise RequestOptionError(f"subject {text!r}: {canonical} is {len(value)} characters long; at most "
                                     f"{longest}")
        if canonical == "E" and (not value.isascii() or not _EMAIL.match(value)):
            raise RequestOptionError(f"subject {text!r}: E must be an e-mail address, got {value!r}")
        attributes.append((canonical, value))
    common_names = [value for label, value in attributes if label == "CN"]
    if len(common_names) != 1:
        found = "no CN" if not common_names else f"{len(common_names)} CNs"
        raise RequestOptionError(f"subject {text!r} has {found}; it needs exactly one CN (the certificate's main "
                                 "name, e.g. CN=mail.contoso.com)")
    subject = Subject(tuple(attributes))
    try:
        parse_distinguished_name(subject.text)  # the name model the matching uses must read it too
    except ValueError as error:
        raise RequestOptionError(f"subject {text!r} cannot be read: {error}") from None
    return subject


# --- the DNS names --------------------------------------------------------------------------------


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def a_label(option: str, name: str) -> str:
    """A requested DNS name in A-label form; wildcards only as the whole left-most label above two labels."""
    if not isinstance(name, str) or not name.strip():
        raise RequestOptionError(f"{option} is empty")
    check_text(option, name)
    if _is_ip_address(name):
        raise RequestOptionError(f"{option} {name!r} is an IP address; certificate_request asks for DNS names only")
    try:
        converted = dns_name_to_a_label(name.strip())
    except DnsNameError as error:
        raise RequestOptionError(f"{option}: {error}") from None
    except ExchangePkiError as error:  # idna missing for a U-label
        raise RequestOptionError(f"{option}: {error}") from None
    if converted.startswith("*.") and converted.count(".") < 2:
        raise RequestOptionError(f"{option} {name!r}: a wildcard must stand for one label under a domain of at least "
                                 "two labels (like *.contoso.com)")
    return converted


def requested_names(subject: Subject, dns_names: Sequence[str]) -> list[str]:
    """The names the request carries: the CN when it is a DNS name (Exchange adds it too), then ``dns_names``.

    A-labels, lower case, in order, duplicates merged.
    """
    names: list[str] = []
    common_name = subject.common_name
    if _is_ip_address(common_name):
        raise RequestOptionError(f"subject: the CN {common_name!r} is an IP address; use a DNS name")
    try:
        dns_name_to_a_label(common_name)
    except ExchangePkiError:
        pass  # a CN that is not a DNS name ("Contoso Mail") is no subject alternative name
    else:
        names.append(a_label("subject CN", common_name))
    for position, name in enumerate(dns_names):
        converted = a_label(f"dns_names[{position}]", name)
        if converted not in names:
            names.append(converted)
    if not names:
        raise RequestOptionError("no DNS name to request: give dns_names, or a CN that is a DNS name")
    if len(names) > MAX_DNS_NAMES:
        raise RequestOptionError(f"{len(names)} DNS names requested; at most {MAX_DNS_NAMES}")
    return names


# --- the validated request ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RequestSpec:
    subject: Subject
    names: tuple[str, ...]
    key_size: int
    key_location: str
    friendly_name: str | None
    exportable: bool
    private_key_path: str | None
    csr_path: str | None
    force: bool
    warnings: tuple[str, ...]

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> RequestSpec:
        subject = parse_subject(args["subject"])
        names = requested_names(subject, args.get("dns_names") or ())
        warnings: list[str] = []
        if not subject.has_country:
            warnings.append("the subject has no C= (country): Exchange's documentation writes subjects with C= and "
                            "public CAs may refuse a request without it")
        location = args["key_location"]
        friendly_name = args.get("friendly_name")
        if friendly_name is not None:
            check_text("friendly_name", friendly_name)
            if len(friendly_name) > MAX_FRIENDLY_NAME:
                raise RequestOptionError(f"friendly_name is {len(friendly_name)} characters long; Exchange needs it "
                                         f"shorter than {MAX_FRIENDLY_NAME + 1}")
            friendly_name = friendly_name or None
        for option in ("private_key_path", "csr_path"):
            if args.get(option) is not None:
                check_text(option, args[option])
                if not args[option].strip():
                    raise RequestOptionError(f"{option} must not be empty")
        if location == "server":
            if args["key_size"] not in SERVER_KEY_SIZES:
                raise RequestOptionError(
                    f"key_size {args['key_size']} cannot be made on the server: New-ExchangeCertificate accepts "
                    f"-KeySize {' or '.join(map(str, SERVER_KEY_SIZES))} (and 1024, too short); use one of them or "
                    "key_location: controller")
            if args.get("private_key_path") is not None:
                raise RequestOptionError("private_key_path is only used with key_location: controller (with "
                                         "key_location: server the key stays on the Exchange server)")
            if args.get("force"):
                raise RequestOptionError("force is only used with key_location: controller")
        else:
            for option in ("friendly_name", "exportable"):
                if args.get(option) is not None:
                    warnings.append(f"{option} has no effect with key_location: controller (no request is made on the "
                                    "server); give it to exchange.pki.certificate_import with the PFX")
        if args.get("csr_path") is not None and args.get("private_key_path") is not None and \
                os.path.abspath(args["csr_path"]) == os.path.abspath(args["private_key_path"]):
            raise RequestOptionError("csr_path and private_key_path must be different files")
        return cls(
            subject=subject, names=tuple(names), key_size=args["key_size"], key_location=location,
            friendly_name=friendly_name, exportable=True if args.get("exportable") is None else args["exportable"],
            private_key_path=args.get("private_key_path"), csr_path=args.get("csr_path"), force=args["force"],
            warnings=tuple(warnings),
        )

    def description(self) -> dict[str, Any]:
        """What the request asks for (diff, change record)."""
        described: dict[str, Any] = {"subject": self.subject.text, "dns_names": list(self.names),
                                     "key_size": self.key_size}
        if self.key_location == "server":
            described.update(exportable=self.exportable, friendly_name=self.friendly_name)
        return described


# --- CSR helpers ----------------------------------------------------------------------------------


def require_cryptography() -> None:
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleActionFail(f"exchange.pki.certificate_request needs the Python library "
                                f"{CRYPTOGRAPHY_REQUIREMENT} on the controller")


def csr_pem(der: bytes) -> str:
    """The PEM text of a DER PKCS#10 request (read first: a broken request is an error here, not later)."""
    try:
        request = x509.load_der_x509_csr(der)
    except ValueError as error:
        raise ExchangePkiError(f"the server returned a certificate request that cannot be read: {error}") from None
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_public_key_sha256(der: bytes) -> str:
    spki = x509.load_der_x509_csr(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def build_csr(key: rsa.RSAPrivateKey, spec: RequestSpec) -> bytes:
    """A DER PKCS#10 request: the subject as written, the names as a SAN extension, SHA-256 (deterministic)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(spec.subject.x509_name()).add_extension(
        x509.SubjectAlternativeName([x509.DNSName(name) for name in spec.names]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _csr_bytes(value: Any) -> bytes | None:
    """A request Exchange's record carries (bytes, or base64 text); None when it carries none."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


# --- files on the controller ----------------------------------------------------------------------


def _regular_file(option: str, path: str) -> os.stat_result | None:
    """The file's status, None when it does not exist; links, directories and devices are refused."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise RequestOptionError(f"{option}: the directory {directory} does not exist") from None
        return None
    except OSError as error:
        raise RequestOptionError(f"{option}: {path} cannot be read: {error.strerror}") from None
    if stat.S_ISLNK(status.st_mode):
        raise RequestOptionError(f"{option}: {path} is a symbolic link; give the path of the file itself")
    if not stat.S_ISREG(status.st_mode):
        raise RequestOptionError(f"{option}: {path} exists and is not a regular file")
    return status


def _read_small(option: str, path: str, limit: int) -> bytes:
    try:
        data = read_prefix(path, limit)
    except OSError as error:
        raise RequestOptionError(f"{option}: {path} cannot be read: {error.strerror}") from None
    return data


@dataclasses.dataclass(frozen=True)
class KeyFile:
    """What ``private_key_path`` holds: ``state`` absent, reuse (a key that fits) or replace (force)."""

    state: str
    key: Any = None
    found: str = "absent"
    warnings: tuple[str, ...] = ()


def inspect_key_file(spec: RequestSpec) -> KeyFile:
    """Decide what to do with ``private_key_path``; never returns or shows key bytes."""
    path = spec.private_key_path
    if path is None:  # the argument spec requires it with key_location controller
        raise RequestOptionError("private_key_path is required with key_location controller")
    status = _regular_file("private_key_path", path)
    if status is None:
        return KeyFile("absent")
    warnings = []
    if stat.S_IMODE(status.st_mode) & 0o077:
        warnings.append(f"private_key_path {path} has mode {stat.S_IMODE(status.st_mode):04o}: other users can read "
                        "the key; restrict it to 0600")
    data = _read_small("private_key_path", path, MAX_KEY_FILE)
    problem = None
    key = None
    if len(data) > MAX_KEY_FILE:
        problem = f"is larger than {MAX_KEY_FILE} bytes, not a key file"
    else:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            problem = "holds an encrypted key (the module writes and reads unencrypted PEM keys with mode 0600)"
        except (ValueError, UnicodeError):
            problem = "holds no PEM private key"
        else:
            if not isinstance(key, rsa.RSAPrivateKey):
                problem = f"holds a {type(key).__name__.lstrip('_').replace('PrivateKey', '')} key, not RSA"
            elif key.key_size != spec.key_size:
                problem = f"holds an RSA {key.key_size} key; key_size asks for {spec.key_size}"
    if problem is None:
        return KeyFile("reuse", key, f"RSA {spec.key_size}", tuple(warnings))
    if not spec.force:
        raise RequestOptionError(f"private_key_path {path} {problem}; it is left alone. Give another path, or "
                                 "force: true to replace it with a new key (a certificate issued for the old key then "
                                 "no longer matches)")
    return KeyFile("replace", None, "a key that does not fit", tuple(warnings))


def csr_file_differs(path: str, pem: str | None) -> bool:
    """Whether writing ``pem`` to ``csr_path`` would change it (unknown content counts as a change)."""
    if _regular_file("csr_path", path) is None or pem is None:
        return True
    return _read_small("csr_path", path, len(pem) + 1) != pem.encode("ascii")


def fingerprint(der: bytes | None) -> str | None:
    return hashlib.sha256(der).hexdigest() if der is not None else None


# --- the action -----------------------------------------------------------------------------------


class ActionModule(ChangingAction):
    """exchange.pki.certificate_request: a pending request on the server, or a key and CSR on the controller."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    RESULT_DATA = ("csr",)

    _spec: RequestSpec
    _existing: LocatedCertificate | None = None
    _applied: Applied | None = None

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        require_cryptography()
        self._spec = RequestSpec.from_args(args)
        if self._spec.key_location == "controller":
            return self.on_controller(args, task_vars)
        if self._spec.csr_path is not None:  # refuse a path the CSR cannot be written to before anything is sent
            _regular_file("csr_path", self._spec.csr_path)
            problem = output_file_problem(self._spec.csr_path, "the CSR file")
            if problem:
                raise RequestOptionError(f"csr_path {problem}")
        result = super().execute(args, task_vars)
        if result.get("failed") or result.get("unreachable"):  # no CSR to return (or its answer was lost)
            return result
        return self.finish_server_result(result, args, task_vars)

    # --- key_location: server ---------------------------------------------------------------------

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        spec = self._spec
        matching = self.matching_requests(snapshot)
        wanted = spec.description()
        warnings = list(spec.warnings)
        if matching:
            existing = matching[0]
            self._existing = existing
            if len(matching) > 1:
                warnings.append(f"{len(matching)} pending requests on this server ask for the same subject and names; "
                                f"the newest, {existing.thumbprint}, is returned")
            if existing.private_key_exportable is not None and existing.private_key_exportable != spec.exportable:
                warnings.append(f"the pending request {existing.thumbprint} was made with "
                                f"exportable={str(existing.private_key_exportable).lower()}; that cannot be changed "
                                "(remove the request and run again to make a new one)")
            current = {**wanted, "thumbprint": existing.thumbprint,
                       "exportable": existing.private_key_exportable, "friendly_name": existing.friendly_name}
            return Plan("certificate_request", before={"pending_request": current},
                        after={"pending_request": current}, warnings=tuple(warnings))
        self._existing = None
        arguments: dict[str, Any] = {
            "Server": LOCAL_SERVER, "GenerateRequest": True, "SubjectName": spec.subject.text,
            "DomainName": list(spec.names), "KeySize": spec.key_size, "PrivateKeyExportable": spec.exportable,
        }
        if spec.friendly_name is not None:
            arguments["FriendlyName"] = spec.friendly_name
        step = Step("request", "New-ExchangeCertificate", arguments,
                    f"no pending request for {spec.subject.text} with these names and key size on this server")
        return Plan("certificate_request", (step,), before={"pending_request": None},
                    after={"pending_request": wanted}, warnings=tuple(warnings))

    def matching_requests(self, snapshot: ServerSnapshot) -> list[LocatedCertificate]:
        """Pending requests of this server for the same subject, names and key size, newest first."""
        spec = self._spec
        wanted_name = parse_distinguished_name(spec.subject.text)
        found = []
        for certificate in collect_certificates(snapshot).parsed.values():
            if not certificate.is_pending_request or certificate.facts.key_size != spec.key_size:
                continue
            if not same_name(wanted_name, certificate.facts.subject_name):
                continue
            if certificate.exchange is None or certificate.exchange.rawdata_only:
                continue  # the requested names are only in Exchange's record: unknown is no match
            try:
                names = {dns_name_to_a_label(name) for name in certificate.exchange.certificate_domains}
            except ExchangePkiError:
                continue
            if names == set(spec.names):
                found.append(certificate)
        return sorted(found, key=lambda certificate: certificate.facts.not_before, reverse=True)

    def apply(self, plan: Plan, args: dict[str, Any], task_vars: Mapping[str, Any]) -> Applied:
        self._applied = super().apply(plan, args, task_vars)
        return self._applied

    def finish_server_result(self, result: dict[str, Any], args: dict[str, Any],
                             task_vars: Mapping[str, Any]) -> dict[str, Any]:
        """Add the CSR, its fingerprint and the pending request's thumbprint; write csr_path."""
        spec = self._spec
        der: bytes | None = None
        thumbprint: str | None = None
        warnings = list(result.get("warnings") or [])
        if self._existing is not None and not result.get("steps"):
            thumbprint = self._existing.thumbprint
            der = _csr_bytes(getattr(self._existing.exchange, "certificate_request", None))
            if der is None:
                der, problem = self.export_request(thumbprint, args, task_vars)
                if problem:
                    warnings.append(f"the CSR of the pending request {thumbprint} could not be read: {problem}")
        elif self._applied is not None:
            outcome = next(item for item in self._applied.outcomes if item.step.id == "request")
            der = parse_file_data(outcome.value)
            thumbprint = self.request_thumbprint(der)
        result.update(self.returned(der, thumbprint))
        if spec.csr_path is not None and csr_file_differs(spec.csr_path, result["csr"]):
            if self.check_mode:
                result["changed"] = True
            elif result["csr"] is None:
                warnings.append(f"csr_path {spec.csr_path} was not written: the CSR is not known")
            else:
                try:
                    write_atomically(spec.csr_path, result["csr"].encode("ascii"), PUBLIC_MODE)
                except OSError as error:
                    result.update(failed=True, failure_reason="failed",
                                  msg=f"csr_path {spec.csr_path} could not be written: {error.strerror}")
                result["changed"] = True
        if warnings:
            result["warnings"] = warnings
        return result

    def request_thumbprint(self, der: bytes) -> str | None:
        """The thumbprint of the pending request just made: the one whose key is the CSR's (from the re-read)."""
        after = self._applied.after if self._applied is not None else None
        if after is None:
            return None
        wanted = csr_public_key_sha256(der)
        return next((certificate.thumbprint for certificate in collect_certificates(after).parsed.values()
                     if certificate.is_pending_request and certificate.facts.public_key_sha256 == wanted), None)

    def export_request(self, thumbprint: str, args: dict[str, Any],
                       task_vars: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
        """The request's DER from Export-ExchangeCertificate (a read: it runs in check mode too)."""
        batch = Batch()
        batch.add("Export-ExchangeCertificate", {"Server": LOCAL_SERVER, "Thumbprint": thumbprint}, id="csr")
        answer = self.run_batch(batch, task_vars, args)
        try:
            der = parse_file_data(answer.require("csr"))
            csr_pem(der)
        except ExchangePkiError as error:
            return None, str(error)
        return der, None

    def returned(self, der: bytes | None, thumbprint: str | None) -> dict[str, Any]:
        spec = self._spec
        returned: dict[str, Any] = {
            "csr": csr_pem(der) if der is not None else None,
            "csr_sha256": fingerprint(der),
            "thumbprint": thumbprint,
            "subject": spec.subject.text,
            "dns_names": list(spec.names),
            "key_size": spec.key_size,
            "key_location": spec.key_location,
        }
        if spec.key_location == "controller":
            returned["private_key_path"] = spec.private_key_path
        if spec.csr_path is not None:
            returned["csr_path"] = spec.csr_path
        return returned

    # --- key_location: controller -----------------------------------------------------------------

    def on_controller(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        spec = self._spec
        key_file = inspect_key_file(spec)
        path = spec.private_key_path
        if path is None:  # inspect_key_file refused it already
            raise RequestOptionError("private_key_path is required with key_location controller")
        key = key_file.key
        new_key = key_file.state != "reuse"
        if new_key and not self.check_mode:
            key = rsa.generate_private_key(public_exponent=65537, key_size=spec.key_size)
        der = build_csr(key, spec) if key is not None else None
        pem = csr_pem(der) if der is not None else None
        write_csr = spec.csr_path is not None and csr_file_differs(spec.csr_path, pem)
        steps = []
        if new_key:
            what = "replace the key that does not fit" if key_file.state == "replace" else "no key file yet"
            steps.append({"id": "key", "operation": "controller.write_private_key",
                          "arguments": {"path": path, "key_size": spec.key_size, "mode": "0600"}, "reason": what})
        if write_csr:
            steps.append({"id": "csr", "operation": "controller.write_csr",
                          "arguments": {"path": spec.csr_path, "mode": "0644"},
                          "reason": "the CSR file is missing or differs"})
        before = {"key_file": {"path": path, "key": key_file.found}, **spec.description()}
        after = {"key_file": {"path": path, "key": f"RSA {spec.key_size}"}, **spec.description()}
        if spec.csr_path is not None:
            before["csr_file"] = {"path": spec.csr_path, "up_to_date": not write_csr}
            after["csr_file"] = {"path": spec.csr_path, "up_to_date": True}
        result: dict[str, Any] = {"changed": bool(steps), "plan": steps, **self.returned(der, None)}
        warnings = [*spec.warnings, *key_file.warnings]
        if warnings:
            result["warnings"] = warnings
        if self._task.diff and steps:
            result["diff"] = {"before": before, "after": after}
        if not steps or self.check_mode:
            return result
        message = None
        try:
            if new_key:
                key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
                write_atomically(path, key_pem, PRIVATE_MODE)
            if write_csr and pem is not None:
                write_atomically(spec.csr_path, pem.encode("ascii"), PUBLIC_MODE)
        except OSError as error:
            message = f"writing {error.filename or path} failed: {error.strerror}"
        return self.record(result, Plan("certificate_request", before=before, after=after), args, task_vars,
                           server="controller", changed=True, message=message)
