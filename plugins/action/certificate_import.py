# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_import: complete a pending request, or import a PFX, and its chain.

Everything is checked on the controller before anything is sent (``_pfx``: the file parses, the password is
right, the key matches the certificate; the chain is complete or a warning says what is missing). A PFX for an
Exchange 2016 host (Windows Server 2016 cannot read AES-encrypted PKCS#12) is rebuilt with legacy 3DES/SHA-1
encryption. The chain's intermediates go to LocalMachine\\CA (and its root to LocalMachine\\Root only with
``trust_root``) with ``host.add_certificate``, before the import, so that IIS and SMTP can serve the full chain.

A certificate whose private key is on the controller (``private_key_path``, from an own CA, ACME or a manual
CA) is imported as a PFX built here (``_pfx.build_pfx``, legacy encryption where the server needs it) with a
password made for this one import, which travels only as the batch's secret; the key never appears in a result,
diff, change record or ledger.

The server read is ``_snapshot``'s plus one read of the CA and Root stores, in the same round trip; the
confirming re-read after the change carries the same store read.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import os
import secrets
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import (
    Applied,
    ArgumentSpec,
    ChangingAction,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CRYPTOGRAPHY_REQUIREMENT,
    LocatedCertificate,
    parse_certificate,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ledger_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._pfx import (
    HAS_CRYPTOGRAPHY,
    MAX_INPUT_BYTES,
    CertificateBundle,
    PfxError,
    build_pfx,
    key_matches,
    legacy_compatible,
    load_certificates,
    load_pfx,
    pfx_encryption,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, Secret, Step
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    LOCAL_SERVER,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import (
    Read,
    ServerSnapshot,
    collect_certificates,
    server_time,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import CONTROL
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    ExchangeVersion,
    parse_store_certificates,
)

if HAS_CRYPTOGRAPHY:  # the import sanity test loads this file without cryptography
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

SOURCES = ("certificate", "src", "pfx_path", "pfx_content")
CA_STORE = "CA"
ROOT_STORE = "Root"
#: The id of the CA/Root store read this module adds to the server read (and to the confirming re-read).
CHAIN_STORES = "chain_stores"
CHAIN_STORES_READ = Read(CHAIN_STORES, "host.certificates", parse_store_certificates,
                         {"stores": [CA_STORE, ROOT_STORE]}, missing=None, qualifier="CA and Root stores")
#: Exchange 2016 (15.1) and Windows Server 2016 (build 14393) cannot import AES-encrypted PKCS#12.
LEGACY_EXCHANGE = (15, 1)
LEGACY_OS_BUILD = 14393
MAX_FRIENDLY_NAME = 63
#: What the server's clock decides here (named in the warning when it is unknown and the controller's is used).
CLOCK_JUDGES = "whether the certificate and its chain are valid"

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        **exchange_session_argspec(),
        **ledger_argspec(),
        "certificate": {"type": "str"},
        "src": {"type": "path"},
        "pfx_path": {"type": "path"},
        "pfx_content": {"type": "str", "no_log": True},
        "pfx_password": {"type": "str", "no_log": True},
        "exportable": {"type": "bool", "default": False},
        "friendly_name": {"type": "str"},
        "trust_root": {"type": "bool", "default": False},
        "private_key_path": {"type": "path"},
        "private_key_password": {"type": "str", "no_log": True},
    },
    mutually_exclusive=[SOURCES, ("private_key_path", "pfx_path"), ("private_key_path", "pfx_content")],
    required_one_of=[SOURCES],
    required_by={"private_key_password": ("private_key_path",)},
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)


class ImportOptionError(AnsibleActionFail):
    """An option of certificate_import is invalid; the message names it (never a password or key bytes)."""


class RequestElsewhere(ExchangePkiError):
    """The certificate completes no pending request of this server (and no key for it came with it)."""


def _control_character(text: str) -> str | None:
    control = CONTROL.search(text)
    return None if control is None else f"U+{ord(control.group()):04X}"


def _read_file(option: str, path: str) -> bytes:
    bad = _control_character(path)
    if bad is not None or not path.strip():
        raise ImportOptionError(f"{option} must be a path without control characters ({bad or 'empty'})")
    if os.path.isdir(path):
        raise ImportOptionError(f"{option}: {path} is a directory")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise ImportOptionError(f"{option}: {path} cannot be read: {error.strerror}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise ImportOptionError(f"{option}: {path} is larger than {MAX_INPUT_BYTES} bytes; not a certificate file")
    return data


def _base64(option: str, text: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) > MAX_INPUT_BYTES * 4 // 3 + 4:
        raise ImportOptionError(f"{option} is larger than {MAX_INPUT_BYTES} bytes once decoded")
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ImportOptionError(f"{option} is not valid base64") from None
    if not data:
        raise ImportOptionError(f"{option} is empty")
    return data


def certificate_input(args: Mapping[str, Any]) -> bytes:
    """The certificate data of ``certificate`` (PEM text, or base64 of DER/P7B) or ``src``."""
    if args.get("src") is not None:
        return _read_file("src", args["src"])
    text = args["certificate"]
    if "-----BEGIN" in text:
        return text.encode("utf-8", errors="replace")
    try:
        return _base64("certificate", text)
    except ImportOptionError:
        raise ImportOptionError("certificate is neither PEM text (-----BEGIN CERTIFICATE-----) nor base64 of a DER "
                                "certificate or P7B chain") from None


def private_key_input(path: str, password: str | None) -> Any:
    """The private key of ``private_key_path`` (PEM, PKCS#8 or traditional, optionally encrypted, or DER).

    Messages name the file and the problem, never key bytes or the password.
    """
    data = _read_file("private_key_path", path)
    secret = None
    if password is not None:
        if "\x00" in password:
            raise ImportOptionError("private_key_password contains a NUL character")
        secret = password.encode("utf-8", errors="surrogatepass") if password else None
    is_pem = b"-----BEGIN" in data
    if is_pem and b"PRIVATE KEY-----" not in data:
        raise ImportOptionError(f"private_key_path: {path} holds no PEM private key")
    loader = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    try:
        key = loader(data, secret)
    except TypeError:
        if secret is None:
            raise ImportOptionError(f"private_key_path: the key in {path} is encrypted; give private_key_password") \
                from None
        raise ImportOptionError(f"private_key_password is given but the key in {path} is not encrypted") from None
    except (ValueError, IndexError, OverflowError):
        if secret is not None:
            raise ImportOptionError(f"private_key_path: the key in {path} cannot be read: the private_key_password "
                                    "is wrong, or the file is not a private key") from None
        raise ImportOptionError(f"private_key_path: {path} does not hold a readable private key "
                                "(PEM or DER, PKCS#8 or PKCS#1)") from None
    except Exception as error:  # e.g. UnsupportedAlgorithm; its message holds no key material
        raise ImportOptionError(f"private_key_path: the key in {path} cannot be used ({type(error).__name__})") \
            from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ImportOptionError(f"private_key_path: the key in {path} is a {type(key).__name__.lstrip('_')}; "
                                "Exchange certificates use RSA (or ECDSA) keys")
    return key


def pfx_input(args: Mapping[str, Any]) -> bytes:
    if args.get("pfx_path") is not None:
        return _read_file("pfx_path", args["pfx_path"])
    return _base64("pfx_content", args["pfx_content"])


def issuer_path(bundle: CertificateBundle) -> list[Any]:
    """The chain members on the leaf's issuer path, leaf's issuer first (the others are not installed)."""
    path = []
    current = bundle.certificate
    for member in bundle.chain:
        if current.issuer == current.subject or current.issuer != member.subject:
            break
        path.append(member)
        current = member
    return path


def der_of(certificate: Any) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def needs_legacy_pfx(snapshot: ServerSnapshot) -> tuple[bool, str]:
    """Whether the host needs a legacy (3DES/SHA-1) PFX, and why (Exchange 2016 / Windows Server 2016)."""
    version: ExchangeVersion | None = None
    if snapshot.exchange_server is not None:
        version = snapshot.exchange_server.version
    if version is None and snapshot.host_info is not None:
        version = snapshot.host_info.exchange_version
    if version is not None and (version.major, version.minor) <= LEGACY_EXCHANGE:
        return True, f"{version.product_name} runs on Windows Server 2016 at most, which cannot read AES-encrypted PFX"
    os_version = snapshot.host_info.os_version if snapshot.host_info is not None else None
    build = None
    if os_version:
        parts = os_version.split(".")
        if len(parts) >= 3 and parts[2].isdigit():
            build = int(parts[2])
    if build is not None and build <= LEGACY_OS_BUILD:
        return True, f"Windows build {os_version} (Server 2016 or older) cannot read AES-encrypted PFX"
    if version is None and build is None:
        return True, "the Exchange and Windows versions are unknown; a legacy PFX imports everywhere"
    return False, ""


def refuse_expired(bundle: CertificateBundle, now: datetime.datetime) -> None:
    """Refuse a certificate, or a CA certificate on its issuer path, that has expired at ``now``: the server's time,
    by which Exchange and Windows on it judge the certificate (an expired one serves no client)."""
    for index, member in enumerate((bundle.certificate, *issuer_path(bundle))):
        if now > member.not_valid_after_utc:
            what = "the certificate" if index == 0 else "the CA certificate"
            raise ExchangePkiError(
                f"{what} {member.subject.rfc4514_string()} expired on "
                f"{format_utc_datetime(member.not_valid_after_utc)} (judged at {format_utc_datetime(now)}); it is "
                "not imported. Nothing was changed.")


def _loaded(loader: Any, *arguments: Any) -> CertificateBundle:
    try:
        return loader(*arguments)
    except PfxError as error:
        raise ImportOptionError(str(error)) from None


class ActionModule(ChangingAction):
    """exchange.pki.certificate_import: complete a pending request or import a PFX, with the chain's CAs."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    EXTRA_READS = (CHAIN_STORES_READ,)

    _bundle: CertificateBundle
    _data: bytes
    _is_pfx: bool
    #: With private_key_path: the password of the PFX built here, made for this one task (never shown).
    _one_time_password: str | None = None

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        if not HAS_CRYPTOGRAPHY:
            raise AnsibleActionFail(f"exchange.pki.certificate_import needs the Python library "
                                    f"{CRYPTOGRAPHY_REQUIREMENT} on the controller")
        self.load(args)
        return super().execute(args, task_vars)

    def load(self, args: dict[str, Any]) -> None:
        """Read and check the input on the controller; any problem fails the task before the host is contacted."""
        friendly_name = args.get("friendly_name")
        if friendly_name is not None:
            bad = _control_character(friendly_name) or next(
                (f"U+{ord(char):04X}" for char in friendly_name if char in "\u200e\u200f\ufeff\u2028\u2029"), None)
            if bad is not None:
                raise ImportOptionError(f"friendly_name {friendly_name!r} contains the control or invisible "
                                        f"character {bad}")
            surrogate = next((char for char in friendly_name if "\ud800" <= char <= "\udfff"), None)
            if surrogate is not None:
                raise ImportOptionError(f"friendly_name {friendly_name!r} contains a lone surrogate "
                                        f"U+{ord(surrogate):04X}, which no certificate store can show")
            if len(friendly_name) > MAX_FRIENDLY_NAME:
                raise ImportOptionError(f"friendly_name is {len(friendly_name)} characters long; Exchange needs it "
                                        f"shorter than {MAX_FRIENDLY_NAME + 1}")
        self._is_pfx = args.get("pfx_path") is not None or args.get("pfx_content") is not None
        if not self._is_pfx and args.get("pfx_password") is not None:
            raise ImportOptionError("pfx_password is only used with pfx_path or pfx_content")
        with_key = args.get("private_key_path") is not None
        if not self._is_pfx and not with_key and args.get("exportable"):
            raise ImportOptionError("exportable applies to a PFX import; a completed request keeps the exportability "
                                    "it was requested with (certificate_request exportable)")
        if self._is_pfx:
            self._data = pfx_input(args)
            self._bundle = _loaded(load_pfx, self._data, args.get("pfx_password"))
        else:
            self._data = certificate_input(args)
            self._bundle = _loaded(load_certificates, self._data)
        if with_key:
            key = private_key_input(args["private_key_path"], args.get("private_key_password"))
            if not key_matches(self._bundle.certificate, key):
                raise ImportOptionError(
                    f"the private key in private_key_path does not belong to the certificate "
                    f"{self._bundle.thumbprint} ({self._bundle.certificate.subject.rfc4514_string()}); "
                    "it is not imported")
            self._bundle = dataclasses.replace(self._bundle, key=key)
            self._one_time_password = secrets.token_urlsafe(32)

    def applied_result(self, plan: Plan, applied: Applied) -> dict[str, Any]:
        """Only what host.add_certificate really added (it reports Added false for a certificate already there)."""
        added = {outcome.value["Thumbprint"] for outcome in applied.outcomes
                 if outcome.step.operation == "host.add_certificate" and isinstance(outcome.value, Mapping)
                 and outcome.value.get("Added")}
        return {
            "intermediates_added": [thumbprint for thumbprint in plan.result.get("intermediates_added", [])
                                    if thumbprint in added],
            "root_added": bool(plan.result.get("root_added")) and any(
                outcome.step.id == "root" and outcome.changed for outcome in applied.outcomes),
        }

    def confirm(self, args: dict[str, Any], plan: Plan, after: ServerSnapshot,
                task_vars: Mapping[str, Any]) -> list[str]:
        """Decide again on the re-read; chain steps only count when the re-read could see the stores."""
        del plan
        seen_stores = after.extra.get(CHAIN_STORES) is not None
        again = self.decide(args, after, task_vars)
        return [f"{step.operation}: {step.reason}" for step in again.steps
                if step.changes and (seen_stores or step.operation != "host.add_certificate")]

    # --- the decision -----------------------------------------------------------------------------

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        bundle = self._bundle
        thumbprint = bundle.thumbprint
        leaf_facts = parse_certificate(der_of(bundle.certificate))
        certificates = collect_certificates(snapshot).parsed
        present = certificates.get(thumbprint)
        if present is not None and not present.in_my_store:
            present = None
        clock: list[str] = []
        now = server_time(snapshot, snapshot.server_name or "the server", clock, CLOCK_JUDGES)
        refuse_expired(bundle, now)
        warnings = [f"chain: {problem}" for problem in bundle.chain_problems(now)]
        chain_warnings = list(warnings)
        warnings.extend(clock)
        steps: list[Step] = []
        chain_steps, chain_before, chain_after, added, root_added = self.chain_steps(args, snapshot, warnings)
        request: LocatedCertificate | None = None
        rebuilt = False
        built: str | None = None
        if present is not None and present.has_private_key is False:
            source = "PFX" if self._is_pfx or self._one_time_password else "certificate"
            raise ExchangePkiError(
                f"the certificate {thumbprint} is already in LocalMachine\\My on this server without its private key; "
                f"Exchange refuses a second copy, so the {source} is not imported. Remove the copy without a key "
                "(exchange.pki.certificate_remove) and run again")
        if present is None and self._is_pfx:
            data = self._data
            legacy, why = needs_legacy_pfx(snapshot)
            if legacy and pfx_encryption(data) != "legacy":
                try:
                    data = legacy_compatible(data, args.get("pfx_password"))
                except PfxError as error:
                    raise ExchangePkiError(f"the PFX must be rebuilt with legacy 3DES/SHA-1 encryption for this "
                                           f"server ({why}), and that failed: {error}") from None
                rebuilt = True
                warnings.append(f"the PFX was rebuilt with legacy 3DES/SHA-1 encryption: {why}")
            arguments: dict[str, Any] = {"Server": LOCAL_SERVER, "FileData": data,
                                         "PrivateKeyExportable": bool(args["exportable"])}
            if args.get("pfx_password"):
                arguments["Password"] = Secret(args["pfx_password"])
            if args.get("friendly_name"):
                arguments["FriendlyName"] = args["friendly_name"]
            steps.append(Step("import", "Import-ExchangeCertificate", arguments,
                              f"{thumbprint} is not in LocalMachine\\My on this server"))
        elif present is None and self._one_time_password is not None:
            legacy, why = needs_legacy_pfx(snapshot)
            built = "legacy" if legacy else "modern"
            try:
                data = build_pfx(bundle, self._one_time_password, encryption=built,  # type: ignore[arg-type]
                                 friendly_name=args.get("friendly_name"))
            except PfxError as error:
                raise ExchangePkiError(f"the PFX of the certificate and private_key_path could not be built: "
                                       f"{error}") from None
            if legacy:
                warnings.append(f"the PFX was built with legacy 3DES/SHA-1 encryption: {why}")
            arguments = {"Server": LOCAL_SERVER, "FileData": data, "Password": Secret(self._one_time_password),
                         "PrivateKeyExportable": bool(args["exportable"])}
            if args.get("friendly_name"):
                arguments["FriendlyName"] = args["friendly_name"]
            steps.append(Step("import", "Import-ExchangeCertificate", arguments,
                              f"{thumbprint} is not in LocalMachine\\My on this server (imported with its "
                              "private key from the controller)"))
        elif present is None:
            request = next((certificate for certificate in certificates.values()
                            if certificate.is_pending_request
                            and certificate.facts.public_key_sha256 == leaf_facts.public_key_sha256), None)
            if request is None:
                raise RequestElsewhere(
                    f"the certificate {thumbprint} ({leaf_facts.subject}) completes no pending request of this server: "
                    "no request here has its public key, and no private key came with it. A pending request can "
                    "only be completed on the server that generated it; run this task there, then distribute the "
                    "certificate with its key as a PFX (exchange.pki.certificate_export, then certificate_import with "
                    "pfx_path). Nothing was sent")
            chain_pem = b"".join(member.public_bytes(serialization.Encoding.PEM)
                                 for member in (bundle.certificate, *issuer_path(bundle)))
            arguments = {"Server": LOCAL_SERVER, "FileData": chain_pem}
            if args.get("friendly_name"):
                arguments["FriendlyName"] = args["friendly_name"]
            steps.append(Step("import", "Import-ExchangeCertificate", arguments,
                              f"it completes the pending request {request.thumbprint} on this server"))
        elif args.get("friendly_name") and present.friendly_name != args["friendly_name"]:
            warnings.append(f"the certificate is already imported with the friendly name {present.friendly_name!r}; "
                            "the friendly name is only set on import")
        if present is not None and (self._is_pfx or self._one_time_password is not None) \
                and present.private_key_exportable is not None \
                and present.private_key_exportable != bool(args["exportable"]):
            warnings.append(f"the certificate is already imported with exportable="
                            f"{str(present.private_key_exportable).lower()}; that is only set on import")
        description = {"thumbprint": thumbprint, "subject": leaf_facts.subject,
                       "not_after": format_utc_datetime(leaf_facts.not_after)}
        before = {"certificate": {**description, "has_private_key": True} if present is not None else None,
                  "pending_request": request.thumbprint if request is not None else None, **chain_before}
        after = {"certificate": {**description, "has_private_key": True}, "pending_request": None, **chain_after}
        result = {
            **description,
            "completed_request": request is not None,
            "pfx_rebuilt_legacy": rebuilt,
            "pfx_built": built,
            "intermediates_added": added,
            "root_added": root_added,
            "chain_warnings": chain_warnings,
        }
        return Plan("import", (*chain_steps, *steps), before=before, after=after, result=result,
                    warnings=tuple(warnings))

    def chain_steps(self, args: Mapping[str, Any], snapshot: ServerSnapshot, warnings: list[str]) -> tuple[
            list[Step], dict[str, Any], dict[str, Any], list[str], bool]:
        """host.add_certificate for each intermediate missing from CA (and the root, with trust_root)."""
        path = issuer_path(self._bundle)
        intermediates = [member for member in path if member.issuer != member.subject]
        root = path[-1] if path and path[-1].issuer == path[-1].subject else None
        chain_stores = snapshot.extra.get(CHAIN_STORES)
        stores: dict[str, set[str]] = {CA_STORE: set(), ROOT_STORE: set()}
        if chain_stores is None:
            if intermediates or root is not None:
                problem = snapshot.unavailable.get(CHAIN_STORES_READ.name, "no answer")
                warnings.append(f"the CA and Root stores could not be read ({problem}); the chain's "
                                "certificates are added without knowing whether they are there")
        else:
            for entry in chain_stores:
                stores.setdefault(entry.store, set()).add(entry.thumbprint)
        steps: list[Step] = []
        in_ca: list[str] = []
        added: list[str] = []
        for index, member in enumerate(intermediates, start=1):
            der = der_of(member)
            thumbprint = parse_certificate(der).thumbprint
            if thumbprint in stores[CA_STORE]:
                in_ca.append(thumbprint)
                continue
            added.append(thumbprint)
            steps.append(Step(f"intermediate{index}", "host.add_certificate", {"store": CA_STORE, "certificate": der},
                              f"the intermediate {member.subject.rfc4514_string()} ({thumbprint}) is not in "
                              "LocalMachine\\CA; IIS and SMTP serve only the chain they find there"))
        before: dict[str, Any] = {"ca_store": sorted(in_ca)}
        after: dict[str, Any] = {"ca_store": sorted([*in_ca, *added])}
        root_added = False
        if root is not None:
            der = der_of(root)
            thumbprint = parse_certificate(der).thumbprint
            trusted = thumbprint in stores[ROOT_STORE]
            before["root_store"] = [thumbprint] if trusted else []
            after["root_store"] = [thumbprint] if trusted or args["trust_root"] else []
            if not trusted and args["trust_root"]:
                root_added = True
                steps.append(Step("root", "host.add_certificate", {"store": ROOT_STORE, "certificate": der},
                                  f"trust_root: the root {root.subject.rfc4514_string()} ({thumbprint}) is not in "
                                  "LocalMachine\\Root"))
            elif not trusted and chain_stores is not None:
                warnings.append(f"the chain's root {root.subject.rfc4514_string()} ({thumbprint}) is not in "
                                "LocalMachine\\Root of this server; clients and Exchange will not trust the chain "
                                "unless it is. Set trust_root: true to add it (only for a root you trust)")
        return steps, before, after, added, root_added
