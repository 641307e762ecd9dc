# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_export: a certificate with its key, as a PFX on the controller.

The server exports the certificate (Export-ExchangeCertificate -BinaryEncoded) protected by a one-time transport
password that this plugin makes for the task; the user's password never reaches the host. The controller then
reads that PFX, rebuilds it with the user's password and the requested encryption (``_pfx.build_pfx``: legacy
3DES/SHA-1 for Exchange 2016 targets, AES-256 otherwise), checks the result loads with the password, and writes
it to ``dest`` (mode 0600, atomically) or returns it as ``content``.

The change this module makes is the file on the controller, so it is not a "read one server, change it"
module: it overrides ``execute`` and keeps ChangingAction's behaviour by hand (a ``Plan`` with its diff,
nothing sent in check mode but the read, a ``change_record`` appended to the ``ledger``).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ChangingAction
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import normalize_thumbprint
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._files import (
    PRIVATE_MODE,
    output_file_problem,
    write_atomically,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ledger_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._pfx import (
    MAX_INPUT_BYTES,
    MAX_PASSWORD_CHARS,
    CertificateBundle,
    PfxError,
    build_pfx,
    load_pfx,
    pfx_encryption,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, Secret, Step, StepOutcome
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    LOCAL_SERVER,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import (
    ServerSnapshot,
    build_batch,
    collect_certificates,
    read_snapshot,
    unavailable_warnings,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control
from ansible_collections.exchange.pki.plugins.plugin_utils._values import ExchangeVersion, parse_file_data

ENCRYPTION_CHOICES = ("auto", "legacy", "modern")
FILE_MODE = PRIVATE_MODE
EXPORT_STEP = "export"
READ_PREFIX = "read."

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        **exchange_session_argspec(),
        **ledger_argspec(),
        "thumbprint": {"type": "str", "required": True},
        "password": {"type": "str", "required": True, "no_log": True},
        "encryption": {"type": "str", "default": "auto", "choices": list(ENCRYPTION_CHOICES)},
        "target_versions": {"type": "list", "elements": "str"},
        "dest": {"type": "path"},
        "return_content": {"type": "bool", "default": False},
        "force": {"type": "bool", "default": False},
    },
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)

# Exchange 2016 is 15.1 and 2013 is 15.0 (both run on Windows Server 2016 or older, which imports legacy PFX
# only); 2019 and Subscription Edition are 15.2 on Windows Server 2019 or later.
_LEGACY_FAMILIES = {"2010": True, "2013": True, "2016": True, "2019": False, "SE": False}
_FAMILY_WORD = re.compile(r"(?<![0-9A-Za-z])(2010|2013|2016|2019|SE|SUBSCRIPTION EDITION)(?![0-9A-Za-z])", re.I)
_MAX_TARGET = 200


def target_needs_legacy(text: str) -> bool:
    """Whether an Exchange version (``2016``, ``SE``, ``15.1.2507.6``, ``Exchange Server 2019 CU14``) needs legacy.

    Raises ValueError naming the value when it is not an Exchange version.
    """
    value = text.strip()
    if not value or len(value) > _MAX_TARGET or has_control(value):
        raise ValueError(f"target_versions: {value[:_MAX_TARGET]!r} is not an Exchange version")
    try:
        version = ExchangeVersion.parse(value)
    except ValueError:
        version = None
    if version is not None:
        return (version.major, version.minor) < (15, 2)
    words = {match.group(1).upper() for match in _FAMILY_WORD.finditer(value)}
    families = {"SE" if word.startswith("SUBSCRIPTION") else word for word in words}
    if len(families) != 1:
        raise ValueError(
            f"target_versions: {value!r} is not an Exchange version: use 2016, 2019, SE, a build number such as "
            "15.1.2507.6, or the product name certificate_info returns",
        )
    return _LEGACY_FAMILIES[families.pop()]


def choose_encryption(encryption: str, target_versions: list[str] | None) -> tuple[str, str]:
    """The PFX encryption to write and why (auto: legacy unless every target is Exchange 2019 or later)."""
    if encryption != "auto":
        return encryption, f"encryption: {encryption} was asked for"
    if not target_versions:
        return "legacy", "auto without target_versions: legacy, which every Exchange version can import"
    legacy = [version for version in target_versions if target_needs_legacy(version)]
    if legacy:
        return "legacy", f"auto: {legacy[0]} (Windows Server 2016 or older) imports only legacy 3DES/SHA-1 PFX files"
    return "modern", "auto: every target is Exchange 2019 or later, which imports AES-256 PFX files"


def _check_password(password: str) -> None:
    if not password:
        raise AnsibleActionFail("password must not be empty: a PFX holding a private key needs a password")
    if "\x00" in password:
        raise AnsibleActionFail("password must not contain a NUL character")
    if len(password) > MAX_PASSWORD_CHARS:
        raise AnsibleActionFail(f"password is longer than {MAX_PASSWORD_CHARS} characters")


def _check_dest(dest: str) -> str:
    problem = output_file_problem(dest, "the PFX file to write")
    if problem:
        raise AnsibleActionFail(f"dest {problem}")
    return os.path.realpath(dest)


class DestState:
    """What ``dest`` holds now, judged against the certificate, password and encryption asked for."""

    def __init__(self, path: str, thumbprint: str, password: str, encryption: str) -> None:
        self.path = path
        self.exists = os.path.exists(path)
        self.thumbprint: str | None = None
        self.encryption: str | None = None
        self.bundle: CertificateBundle | None = None
        self.data: bytes | None = None
        self.problem: str | None = None
        self.wanted = (thumbprint, encryption)
        self.mode = stat.S_IMODE(os.stat(path).st_mode) if self.exists else None
        if not self.exists:
            return
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_INPUT_BYTES + 1)
        except OSError as error:
            raise AnsibleActionFail(f"dest {path!r} cannot be read: {error.strerror}") from None
        self.encryption = pfx_encryption(data)
        try:
            self.bundle = load_pfx(data, password)
        except PfxError as error:
            self.problem = str(error)
            return
        self.thumbprint = self.bundle.thumbprint
        self.data = data

    @property
    def matches(self) -> bool:
        """The file holds the certificate, readable with the password, with the requested encryption."""
        return self.bundle is not None and (self.thumbprint, self.encryption) == self.wanted

    @property
    def same_certificate(self) -> bool:
        return self.bundle is not None and self.thumbprint == self.wanted[0]


def _thumbprints(bundle: CertificateBundle) -> list[str]:
    return [CertificateBundle(member, None, (), "der").thumbprint for member in bundle.chain]


class ActionModule(ChangingAction):
    """exchange.pki.certificate_export: export on the server, re-encrypt and write on the controller."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    RESULT_DATA = ("content",)

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        """The export plan for ``snapshot``'s server; refuses what cannot be exported, naming the fix."""
        thumbprint = args["thumbprint"]
        server = snapshot.server_name or "the server"
        located = collect_certificates(snapshot).parsed.get(thumbprint)
        if located is None or not located.in_my_store and not located.is_pending_request:
            raise ExchangePkiError(f"no certificate with thumbprint {thumbprint} in LocalMachine\\My on {server}")
        if located.is_pending_request:
            raise ExchangePkiError(
                f"{thumbprint} on {server} is a pending certificate request, not an issued certificate: complete "
                "it (certificate_import) before exporting it",
            )
        if located.has_private_key is False:
            raise ExchangePkiError(
                f"certificate {thumbprint} on {server} has no private key there, so there is nothing to export "
                "with it: export it from the server that holds its key",
            )
        if located.private_key_exportable is False:
            raise ExchangePkiError(not_exportable_message(thumbprint, server))
        return Plan("export", (export_step(args, server),))

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        try:
            thumbprint = normalize_thumbprint(args["thumbprint"])
            encryption, why = choose_encryption(args["encryption"], args.get("target_versions"))
        except ValueError as error:
            raise AnsibleActionFail(str(error)) from None
        _check_password(args["password"])
        dest = args.get("dest")
        return_content = bool(args.get("return_content"))
        if not dest and not return_content:
            raise AnsibleActionFail("give dest (a controller path to write the PFX to) or return_content: true")
        real = _check_dest(dest) if dest else None
        state = DestState(real, thumbprint, args["password"], encryption) if real else None
        if state is not None and state.exists and not state.same_certificate and not args["force"]:
            holds = f"certificate {state.thumbprint}" if state.bundle is not None else \
                f"something this password does not open ({state.problem})"
            raise AnsibleActionFail(
                f"dest {dest!r} already exists and holds {holds}; set force: true to overwrite it",
            )
        args = {**args, "thumbprint": thumbprint, "_transport_password": secrets.token_urlsafe(32)}
        result: dict[str, Any] = {"thumbprint": thumbprint, "dest": dest, "encryption": encryption,
                                  "encryption_reason": why}

        if state is not None and state.matches:
            return self._already_there(args, task_vars, state, result)

        batch_reads_only = self.check_mode
        snapshot = self._read_and_export(args, task_vars, export=not batch_reads_only)
        plan = self.decide(args, snapshot.snapshot, task_vars)
        before = {"dest": dest, "thumbprint": state.thumbprint if state else None,
                  "encryption": state.encryption if state and state.exists else None}
        after = {"dest": dest, "thumbprint": thumbprint, "encryption": encryption}
        plan = Plan(plan.action, plan.steps, before=before, after=after)
        writes = real is not None
        result.update(changed=writes, plan=plan.describe())
        warnings = unavailable_warnings(snapshot.snapshot.unavailable)
        if warnings:
            result["warnings"] = warnings
        if self._task.diff and writes:
            result["diff"] = plan.diff()
        if self.check_mode:
            result["chain_thumbprints"] = None
            return result
        return self._finish(args, task_vars, plan, snapshot, state, result, encryption)

    # -- the steps ------------------------------------------------------------------------------------

    def _already_there(self, args: dict[str, Any], task_vars: Mapping[str, Any], state: DestState,
                       result: dict[str, Any]) -> dict[str, Any]:
        """dest already holds the PFX: nothing is sent; a looser file mode is tightened to 0600."""
        if state.bundle is None or state.data is None:  # matches() was true, so both are loaded
            raise ExchangePkiError(f"dest {state.path} could not be read back")
        result.update(changed=False, plan=[], chain_thumbprints=_thumbprints(state.bundle))
        if args.get("return_content"):
            result["content"] = base64.b64encode(state.data).decode("ascii")
        if state.mode == FILE_MODE:
            return result
        plan = Plan("export", before={"dest": args["dest"], "mode": f"{state.mode:04o}"},
                    after={"dest": args["dest"], "mode": f"{FILE_MODE:04o}"})
        result["changed"] = True
        if self._task.diff:
            result["diff"] = plan.diff()
        if self.check_mode:
            return result
        os.chmod(state.path, FILE_MODE)
        return self._record(args, task_vars, plan, server=None, changed=True, message=None, result=result)

    def _read_and_export(self, args: dict[str, Any], task_vars: Mapping[str, Any], *, export: bool) -> _Answer:
        """One round trip: the export (unless in check mode) and the server read that explains its outcome."""
        plan = Plan("export", (export_step(args, "the server"),) if export else ())
        batch = build_batch(plan.batch(plan.steps), prefix=READ_PREFIX)
        answer = self.run_batch(batch, task_vars, args)
        snapshot = read_snapshot(answer, prefix=READ_PREFIX)
        return _Answer(snapshot, answer[EXPORT_STEP] if export else None)

    def _finish(self, args: dict[str, Any], task_vars: Mapping[str, Any], plan: Plan, answer: _Answer,
                state: DestState | None, result: dict[str, Any], encryption: str) -> dict[str, Any]:
        thumbprint = args["thumbprint"]
        server = answer.snapshot.server_name
        operation = answer.export
        if operation is None:  # only a check-mode answer has no export
            raise ExchangePkiError("the export did not run")
        error = operation.exception()
        if error is not None:
            message = str(error)
            if "exportable" in message.lower() or "pkcs-12" in message.lower() or "pkcs12" in message.lower():
                message = not_exportable_message(thumbprint, server or "the server") + f" (Exchange said: {error})"
            outcome = StepOutcome(plan.steps[0], "failed", False, message=message)
            return self._record(args, task_vars, plan, server=server, changed=False, message=message,
                                result={**result, "changed": False}, outcomes=(outcome,))
        try:
            exported = load_pfx(parse_file_data(operation.value), args["_transport_password"])
            if exported.thumbprint != thumbprint:
                raise PfxError(f"Exchange exported certificate {exported.thumbprint} instead of {thumbprint}")
            data = build_pfx(exported, args["password"], encryption=encryption)  # type: ignore[arg-type]
            written = load_pfx(data, args["password"])
            if written.thumbprint != thumbprint or pfx_encryption(data) != encryption:
                raise PfxError("the rebuilt PFX does not load back with the requested encryption")
        except (PfxError, ExchangePkiError) as failure:
            message = f"the exported PFX could not be rebuilt on the controller: {failure}"
            outcome = StepOutcome(plan.steps[0], "ok", False)
            return self._record(args, task_vars, plan, server=server, changed=False, message=message,
                                result={**result, "changed": False}, outcomes=(outcome,))
        result["chain_thumbprints"] = _thumbprints(written)
        if args.get("return_content"):
            result["content"] = base64.b64encode(data).decode("ascii")
        changed = False
        if state is not None:
            try:
                write_atomically(state.path, data)
            except OSError as failure:
                message = f"dest {args['dest']!r} could not be written: {failure.strerror or failure}"
                outcome = StepOutcome(plan.steps[0], "ok", False)
                return self._record(args, task_vars, plan, server=server, changed=False, message=message,
                                    result={**result, "changed": False}, outcomes=(outcome,))
            changed = True
        outcome = StepOutcome(plan.steps[0], "ok", False)
        result["changed"] = changed
        return self._record(args, task_vars, plan, server=server, changed=changed, message=None, result=result,
                            outcomes=(outcome,))

    def _record(self, args: dict[str, Any], task_vars: Mapping[str, Any], plan: Plan, *, server: str | None,
                changed: bool, message: str | None, result: dict[str, Any],
                outcomes: tuple[StepOutcome, ...] = ()) -> dict[str, Any]:
        """The change record of what the task did (the key left the server, or dest changed), and the ledger."""
        if outcomes:
            result["steps"] = [outcome.describe() for outcome in outcomes]
        return self.record(result, plan, args, task_vars, server=server, changed=changed, message=message)


class _Answer:
    """The server read and the export's outcome, from one round trip."""

    def __init__(self, snapshot: ServerSnapshot, export: Any) -> None:
        self.snapshot = snapshot
        self.export = export


def export_step(args: Mapping[str, Any], server: str) -> Step:
    """Export-ExchangeCertificate of the task's certificate, protected by the task's one-time password."""
    thumbprint = args["thumbprint"]
    return Step(EXPORT_STEP, "Export-ExchangeCertificate",
                {"Server": LOCAL_SERVER, "Thumbprint": thumbprint, "Password": Secret(args["_transport_password"])},
                f"export {thumbprint} with its private key from {server} (protected by a one-time password)")


def not_exportable_message(thumbprint: str, server: str) -> str:
    return (
        f"the private key of certificate {thumbprint} on {server} is not exportable: it was created or imported "
        "without -PrivateKeyExportable $true. Re-issue the certificate with an exportable key "
        "(certificate_request with exportable: true), or import its original PFX with exportable: true, "
        "or export it from the server where it was made with an exportable key"
    )
