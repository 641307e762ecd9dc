# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.adcs_request: a CSR signed by AD CS through certreq on a domain-joined host.

The host runs ``certreq -submit`` (``host.certreq_submit``) or ``certreq -retrieve`` (``host.certreq_retrieve``)
in the same round trip as a read of its CA and Root stores, from which the controller builds the issued
certificate's chain. Everything else is decided here.

Never submitting the same CSR twice needs a memory that outlives the task, the host and the run: the
*submission state file* (``state_path``, by default ``<csr_path>.adcs.jsonl``), a controller file of JSON lines,
one per event (submitted, pending, issued, denied), keyed by the SHA-256 fingerprint of the CSR's DER. The last
line of a fingerprint is its state. The file is read and appended under an exclusive ``flock`` held across the
submission, so forks that run the same CSR at once (a play over several hosts) submit it once. It holds no secret
(a CSR and a certificate are public). A submission the CA never saw (certreq could not reach it) is not
recorded, so the next run submits again; any request the CA numbered is only ever retrieved afterwards.

This is not a "read one server, change it" module: ``execute`` is overridden, and ChangingAction's behaviour is
kept by hand (a ``Plan`` with reasons and diff; check mode sends no submission, a pending request is still
retrieved because retrieval only reads; a ``change_record`` appended to the ``ledger`` when something changed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import (
    ANSWER_LOST,
    Applied,
    ArgumentSpec,
    ChangingAction,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CRYPTOGRAPHY_REQUIREMENT,
    sha1_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._files import (
    PUBLIC_MODE,
    output_file_problem,
    read_prefix,
    write_atomically,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ledger_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, Step, outcomes
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    BatchResult,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime, utc_now
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    CertReqResult,
    parse_certreq_result,
    parse_store_certificates,
)

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
except ImportError:
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        # Accepted so that module_defaults for group/exchange.pki.exchange apply; never sent (no Exchange session).
        **exchange_session_argspec(),
        **ledger_argspec(),
        "csr": {"type": "str"},
        "csr_path": {"type": "path"},
        "ca_config": {"type": "str", "required": True},
        "template": {"type": "str"},
        "attributes": {"type": "list", "elements": "str"},
        "request_id": {"type": "int"},
        "state_path": {"type": "path"},
        "certificate_path": {"type": "path"},
        "chain_path": {"type": "path"},
    },
    mutually_exclusive=(("csr", "csr_path"),),
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
    required_one_of=(("csr", "csr_path", "request_id"),),
)

STATE_SUFFIX = ".adcs.jsonl"
STATE_VERSION = 1
SUBMIT, RETRIEVE, CHAIN = "submit", "retrieve", "chain"
#: Largest CSR accepted (a 4096-bit RSA request with many names is a few kilobytes).
MAX_CSR_BYTES = 64 * 1024
#: Largest state file read (one line per event; many thousands of submissions).
MAX_STATE_BYTES = 16 * 1024 * 1024
#: AD CS request ids are positive 32-bit numbers.
MAX_REQUEST_ID = 2**31 - 1
MAX_ATTRIBUTES = 32
_MAX_TEXT = 1024

# "host\CA name": the CA host is a DNS name; the CA's common name may hold spaces and most punctuation.
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*\.?$")
_MAX_CA_NAME = 64  # AD CS limits a CA's common name to 64 characters
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\"'\u0085\u2028\u2029\ud800-\udfff]")
_TEMPLATE_ATTRIBUTE = "certificatetemplate"
_TEMPLATE_REQUIRED = ("template is required to submit (or a \"CertificateTemplate:<name>\" attribute): an "
                      "enterprise CA denies a request without a template")
_PEM_CSR = re.compile(rb"-----BEGIN (NEW )?CERTIFICATE REQUEST-----(.*?)-----END (NEW )?CERTIFICATE REQUEST-----",
                      re.S)
# certreq separates attribute pairs with the two characters backslash-n; a value must not carry them.
_CERTREQ_SEPARATOR = "\\n"
_DOUBLE_HOP = re.compile(r"0x80070005|access is denied|E_ACCESSDENIED|0x800706ba|RPC server is unavailable", re.I)
DOUBLE_HOP_HINT = (
    "certreq authenticates to the CA as the identity of the Ansible connection; over WinRM that logon cannot "
    "authenticate onward (the double hop) unless the task uses become (become_method runas), CredSSP or Kerberos "
    "delegation (docs/real-servers.md). Also check ca_config (certutil -dump lists the CA's config string) and "
    "that the host reaches the CA"
)


# --- input -------------------------------------------------------------------------------------------


def _clean(value: str, option: str, *, maximum: int = _MAX_TEXT) -> str:
    if _FORBIDDEN.search(value):
        raise AnsibleActionFail(f"{option} must not contain control characters (CR, LF, NUL, ...), line separators, "
                                f"lone surrogates or quotes: {value!r}")
    if _CERTREQ_SEPARATOR in value:
        raise AnsibleActionFail(f"{option} must not contain the two characters \\n (certreq's attribute separator)")
    if len(value) > maximum:
        raise AnsibleActionFail(f"{option} is longer than {maximum} characters")
    return value


def check_ca_config(text: str) -> str:
    """``CAHost\\CA name``, as certutil -dump and certreq -config write it."""
    value = text.strip()
    _clean(value, "ca_config", maximum=253 + 1 + _MAX_CA_NAME)
    host, separator, name = value.partition("\\")
    if not separator or not host or not name.strip() or "\\" in name:
        raise AnsibleActionFail(
            f"ca_config must be the CA's config string \"CAHost\\CA name\" (one backslash), for example "
            f"ca01.contoso.com\\Contoso Issuing CA; got {value!r}",
        )
    if not _HOST.match(host):
        raise AnsibleActionFail(f"ca_config: {host!r} is not a host name (the part before the backslash)")
    if len(name) > _MAX_CA_NAME or name != name.strip():
        raise AnsibleActionFail(f"ca_config: the CA name {name!r} must be 1-{_MAX_CA_NAME} characters without "
                                "leading or trailing blanks")
    return value


def check_template(text: str | None) -> str | None:
    if text is None:
        return None
    value = _clean(text.strip(), "template", maximum=64)
    if not value or ":" in value or "\\" in value:
        raise AnsibleActionFail(f"template must be a certificate template name such as WebServer, got {text!r}")
    return value


def check_attributes(values: list[str] | None) -> list[str]:
    """Each "Name:Value" (certreq -attrib), with the name a plain word and the value non-empty."""
    checked = []
    if values and len(values) > MAX_ATTRIBUTES:
        raise AnsibleActionFail(f"attributes: at most {MAX_ATTRIBUTES} are accepted")
    for value in values or []:
        if not isinstance(value, str):
            raise AnsibleActionFail("attributes must be strings \"Name:Value\"")
        _clean(value, "attributes")
        name, separator, content = value.partition(":")
        if not separator or not _ATTRIBUTE_NAME.match(name.strip()) or not content.strip():
            raise AnsibleActionFail(f"attributes: {value!r} is not \"Name:Value\" (for example "
                                    "\"SAN:dns=mail.contoso.com&dns=autodiscover.contoso.com\")")
        checked.append(f"{name.strip()}:{content.strip()}")
    return checked


def template_of(template: str | None, attributes: list[str]) -> str | None:
    """The template the CA will see: ``template``, else a CertificateTemplate attribute (both must agree)."""
    named = [value.partition(":")[2] for value in attributes
             if value.partition(":")[0].casefold() == _TEMPLATE_ATTRIBUTE]
    if template is not None and any(name.casefold() != template.casefold() for name in named):
        raise AnsibleActionFail(f"template {template!r} and the CertificateTemplate attribute {named[0]!r} disagree")
    return template or (named[0] if named else None)


def check_request_id(value: int | None) -> int | None:
    if value is None:
        return None
    if not 1 <= value <= MAX_REQUEST_ID:
        raise AnsibleActionFail(f"request_id must be a request number between 1 and {MAX_REQUEST_ID}, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class Csr:
    """A certificate request: its DER bytes, their SHA-256 fingerprint and the public key it certifies."""

    der: bytes
    fingerprint: str
    public_key: bytes
    subject: str


def load_csr(data: bytes, where: str) -> Csr:
    """Read a PKCS#10 request (PEM, with or without Windows' NEW, or DER) and check its signature."""
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleActionFail(f"reading a CSR on the controller requires the Python library "
                                f"{CRYPTOGRAPHY_REQUIREMENT}")
    if len(data) > MAX_CSR_BYTES:
        raise AnsibleActionFail(f"{where} is larger than {MAX_CSR_BYTES // 1024} KiB: it is not a CSR")
    if b"-----BEGIN" in data:
        match = _PEM_CSR.search(data)
        if match is None:
            raise AnsibleActionFail(f"{where} is not a PEM certificate request (no -----BEGIN CERTIFICATE "
                                    "REQUEST----- block; a certificate or key is not a CSR)")
        body = b"".join(match.group(2).split())
        pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + body + b"\n-----END CERTIFICATE REQUEST-----\n"
        loader, blob = x509.load_pem_x509_csr, pem
    else:
        loader, blob = x509.load_der_x509_csr, data
    try:
        request = loader(blob)
        der = request.public_bytes(serialization.Encoding.DER)
        valid = request.is_signature_valid
        public_key = request.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        subject = request.subject.rfc4514_string()
    except (ValueError, TypeError) as error:
        raise AnsibleActionFail(f"{where} is not a valid certificate request (PKCS#10): {error}") from None
    if not valid:
        raise AnsibleActionFail(f"{where}: the request's signature does not verify (damaged or edited CSR)")
    return Csr(der, hashlib.sha256(der).hexdigest(), public_key, subject)


def _check_output_path(path: str | None, option: str, what: str) -> str | None:
    if path is None:
        return None
    problem = output_file_problem(path, what)
    if problem:
        raise AnsibleActionFail(f"{option} {problem}")
    return os.path.realpath(path)


# --- the submission state file ------------------------------------------------------------------------


class StateError(ExchangePkiError):
    """The submission state file cannot be read or written; the message names the path."""


class SubmissionState:
    """What was submitted, by CSR fingerprint: the last JSON line of each fingerprint in ``path``."""

    def __init__(self, path: str, *, writable: bool) -> None:
        self.path = path
        self.writable = writable
        self._fd: int | None = None
        self.entries: dict[str, dict[str, Any]] = {}

    @contextlib.contextmanager
    def opened(self) -> Iterator[SubmissionState]:
        """Read the file; when writable, hold an exclusive lock until the block ends (created 0600)."""
        if not self.writable:
            if os.path.exists(self.path):
                with open(self.path, "rb") as handle:
                    self._parse(handle.read(MAX_STATE_BYTES + 1))
            yield self
            return
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as error:
            raise StateError(f"the submission state file {self.path!r} cannot be opened: {error.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise StateError(f"the submission state file {self.path!r} is not a regular file")
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            size = os.fstat(self._fd).st_size
            self._parse(os.pread(self._fd, min(size, MAX_STATE_BYTES + 1), 0))
            yield self
        finally:
            os.close(self._fd)  # releases the lock
            self._fd = None

    def _parse(self, data: bytes) -> None:
        if len(data) > MAX_STATE_BYTES:
            raise StateError(f"the submission state file {self.path!r} is larger than {MAX_STATE_BYTES} bytes")
        for line in data.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a torn line of a writer that was killed: skipped
            if isinstance(entry, dict) and isinstance(entry.get("csr_sha256"), str):
                self.entries[entry["csr_sha256"]] = entry

    def get(self, fingerprint: str) -> dict[str, Any] | None:
        return self.entries.get(fingerprint)

    def append(self, entry: dict[str, Any]) -> None:
        if self._fd is None:
            raise StateError("the submission state file is not open for writing")
        known = self.entries.get(entry["csr_sha256"])
        if known is not None and all(known.get(key) == entry.get(key) for key in ("ca_config", "request_id", "status")):
            return  # nothing new: the file grows only when the request moves on
        line = json.dumps(entry, sort_keys=True, ensure_ascii=True).encode("ascii") + b"\n"
        try:
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # keep a torn line on its own
            os.write(self._fd, line)
            os.fsync(self._fd)
        except OSError as error:
            raise StateError(f"the submission state file {self.path!r} could not be written "
                             f"({errno.errorcode.get(error.errno or 0, error.strerror)}): request "
                             f"{entry.get('request_id')} of CSR {entry['csr_sha256']} is {entry['status']}; "
                             "record it before running again") from None
        self.entries[entry["csr_sha256"]] = entry


# --- certificates ---------------------------------------------------------------------------------------


def pem_of(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode("ascii")


def build_chain(leaf_der: bytes, store_ders: list[bytes]) -> list[bytes]:
    """The issuer, its issuer, ... up to a self-signed root, found among the host's CA and Root certificates."""
    candidates = []
    for der in store_ders:
        with contextlib.suppress(ValueError):
            candidates.append((der, x509.load_der_x509_certificate(der)))
    chain: list[bytes] = []
    current = x509.load_der_x509_certificate(leaf_der)
    while current.issuer != current.subject and len(chain) < 10:
        parent = next((der for der, candidate in candidates
                       if candidate.subject == current.issuer and der not in chain and _signed_by(current, candidate)),
                      None)
        if parent is None:
            break
        chain.append(parent)
        current = x509.load_der_x509_certificate(parent)
    return chain


def _signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
    except (InvalidSignature, ValueError, TypeError):  # a wrong signature or a key type that cannot verify it
        return False
    return True


def write_if_different(path: str, text: str) -> bool:
    """Write ``text`` atomically (mode 0644: certificates are public) unless the file already holds it."""
    data = text.encode("ascii")
    with contextlib.suppress(OSError):
        if read_prefix(path, len(data)) == data:
            return False
    write_atomically(path, data, PUBLIC_MODE)
    return True


def file_differs(path: str, text: str) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read() != text.encode("ascii")
    except OSError:
        return True


def check_issued_for(reply: CertReqResult, csr: Csr, config: str) -> None:
    """The issued certificate must certify the CSR's key (a request_id of another request is refused)."""
    if reply.certificate is None:
        raise ExchangePkiError(f"request {reply.request_id} at {config} is {reply.status} but certreq returned no "
                               "certificate")
    try:
        certificate = x509.load_der_x509_certificate(reply.certificate)
        issued_key = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    except ValueError as error:
        raise ExchangePkiError(f"the CA returned a certificate that cannot be read: {error}") from None
    if issued_key != csr.public_key:
        raise ExchangePkiError(
            f"request {reply.request_id} at {config} was issued for another key than this CSR's: check request_id "
            "(the request belongs to another CSR)",
        )


# --- the plugin -------------------------------------------------------------------------------------------


class ActionModule(ChangingAction):
    """exchange.pki.adcs_request: submit once, retrieve until issued, remember by CSR fingerprint."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    RESULT_DATA = ("certificate", "chain")
    LOST_ANSWER_ADVICE = ("The CA may have received the request: look for it among the CA's pending and issued "
                          "requests. Running the task again submits the CSR again, as another request; with "
                          "request_id it retrieves the one the CA received.")

    def decide(self, args: dict[str, Any], snapshot: Any, task_vars: Mapping[str, Any]) -> Plan:
        raise NotImplementedError("adcs_request decides from its state file, not from a server read")

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        if not HAS_CRYPTOGRAPHY:
            raise AnsibleActionFail(f"adcs_request reads the CSR and the issued certificate on the controller: it "
                                    f"requires the Python library {CRYPTOGRAPHY_REQUIREMENT}")
        config = check_ca_config(args["ca_config"])
        attributes = check_attributes(args.get("attributes"))
        template = template_of(check_template(args.get("template")), attributes)
        request_id = check_request_id(args.get("request_id"))
        csr = self._csr(args)
        state_path = args.get("state_path") or (args["csr_path"] + STATE_SUFFIX if args.get("csr_path") else None)
        if csr is not None and state_path is None:
            raise AnsibleActionFail("state_path is required with csr: the module records there what it submitted, "
                                    "so that the same CSR is never submitted twice")
        if state_path is not None:
            state_path = _check_output_path(state_path, "state_path", "the submission state file")
        certificate_path = _check_output_path(args.get("certificate_path"), "certificate_path", "the certificate file")
        chain_path = _check_output_path(args.get("chain_path"), "chain_path", "the chain file")

        if csr is not None and request_id is None and template is None and not os.path.lexists(state_path):
            # Nothing was submitted for any CSR yet, so this one must be submitted: refused before the state file
            # is created (opening it creates it), so that bad input leaves nothing behind.
            raise AnsibleActionFail(_TEMPLATE_REQUIRED)
        state = SubmissionState(state_path, writable=not self.check_mode) if state_path else None
        with state.opened() if state else contextlib.nullcontext() as opened:
            known = opened.get(csr.fingerprint) if opened is not None and csr is not None else None
            plan, warnings = self._plan(config, template, attributes, request_id, csr, known)
            result: dict[str, Any] = {"changed": plan.changed, "plan": plan.describe(), "request_id": None,
                                      "status": None, "certificate": None, "chain": [], "thumbprint": None,
                                      "disposition_message": None, "csr_sha256": csr.fingerprint if csr else None,
                                      "state_path": state_path}
            if warnings:
                result["warnings"] = warnings
            if self._task.diff and plan.changed:
                result["diff"] = plan.diff()
            if self.check_mode and plan.changed:
                return result  # a submission is never sent in check mode
            # certreq opens no Exchange session: the session options (and a password) are not sent to the host.
            try:
                answer = self.run_batch(plan.batch(plan.steps), task_vars, {})
            except ANSWER_LOST as error:
                applied = Applied(self.lost_phase(plan.steps, error), None, None, lost=error)
                return self.record_lost(result, plan, applied, error, args, task_vars, server=config)
            return self._conclude(args, task_vars, plan, answer, opened, csr, config, template,
                                  certificate_path, chain_path, result)

    # -- deciding ---------------------------------------------------------------------------------------

    def _csr(self, args: Mapping[str, Any]) -> Csr | None:
        if args.get("csr") is not None:
            if not args["csr"].strip():
                raise AnsibleActionFail("csr is empty")
            return load_csr(args["csr"].encode("utf-8", errors="replace"), "csr")
        if args.get("csr_path") is not None:
            path = args["csr_path"]
            try:
                with open(path, "rb") as handle:
                    data = handle.read(MAX_CSR_BYTES + 1)
            except OSError as error:
                raise AnsibleActionFail(f"csr_path {path!r} cannot be read on the controller: {error.strerror}") \
                    from None
            return load_csr(data, f"csr_path {path!r}")
        return None

    def _plan(self, config: str, template: str | None, attributes: list[str], request_id: int | None,
              csr: Csr | None, known: Mapping[str, Any] | None) -> tuple[Plan, list[str]]:
        warnings: list[str] = []
        before = {"csr_sha256": csr.fingerprint if csr else None,
                  "request_id": known.get("request_id") if known else None,
                  "status": known.get("status") if known else None}
        chain = Step(CHAIN, "host.certificates", {"stores": ["CA", "Root"]},
                     "the CA certificates the host trusts, to build the issued certificate's chain")
        if known is not None and str(known.get("ca_config", "")).casefold() != config.casefold():
            raise ExchangePkiError(
                f"this CSR (SHA-256 {csr.fingerprint if csr else '?'}) was already submitted to "
                f"{known.get('ca_config')} as request {known.get('request_id')}; it is never submitted twice. "
                "Make a new CSR for another CA",
            )
        if request_id is None and known is not None:
            request_id = known.get("request_id")
        elif request_id is not None and known is not None and known.get("request_id") not in (None, request_id):
            warnings.append(f"request_id {request_id} is not the request {known.get('request_id')} the state file "
                            "recorded for this CSR; retrieving request_id as given")
        if request_id is not None:
            step = Step(RETRIEVE, "host.certreq_retrieve", {"config": config, "request_id": request_id},
                        f"request {request_id} was submitted to {config} before: retrieve its current state")
            return Plan("adcs_retrieve", (step, chain), before=before, after=before), warnings
        if csr is None:  # ExchangePkiAction refuses csr, csr_path and request_id all null before this
            raise AnsibleActionFail("one of csr, csr_path, request_id must have a value")
        if template is None:
            raise AnsibleActionFail(_TEMPLATE_REQUIRED)
        arguments: dict[str, Any] = {"request": csr.der, "config": config, "template": template}
        extra = [value for value in attributes if value.partition(":")[0].casefold() != _TEMPLATE_ATTRIBUTE]
        if extra:
            arguments["attributes"] = extra
        step = Step(SUBMIT, "host.certreq_submit", arguments,
                    f"CSR {csr.subject or '(empty subject)'} (SHA-256 {csr.fingerprint[:16]}...) has not been "
                    f"submitted to {config}")
        after = {"csr_sha256": csr.fingerprint, "request_id": None, "status": f"submitted to {config}"}
        return Plan("adcs_submit", (step, chain), before=before, after=after), warnings

    # -- concluding -------------------------------------------------------------------------------------

    def _conclude(self, args: dict[str, Any], task_vars: Mapping[str, Any], plan: Plan, answer: BatchResult,
                  state: SubmissionState | None, csr: Csr | None, config: str, template: str | None,
                  certificate_path: str | None, chain_path: str | None, result: dict[str, Any]) -> dict[str, Any]:
        step = plan.steps[0]
        submitted = step.id == SUBMIT
        found = outcomes(plan.steps, answer)
        result["steps"] = [outcome.describe() for outcome in found]
        operation = answer[step.id]
        error = operation.exception()
        if error is not None:  # certreq did not run or did not finish: the CA may not have seen the request
            message = f"{step.operation} failed: {error}"
            if _DOUBLE_HOP.search(str(error)):
                message += f". {DOUBLE_HOP_HINT}"
            result["changed"] = False  # as the ledger record says: certreq reported that it failed
            if not submitted:
                result.update(failed=True, msg=message, failure_reason="failed")
                return result
            return self._record(args, task_vars, plan, config, result, changed=False, message=message)
        reply = parse_certreq_result(operation.value)
        status = reply.status.lower()
        result.update(status=status, request_id=reply.request_id, disposition_message=reply.disposition)
        if reply.certificate is not None and csr is not None:
            check_issued_for(reply, csr, config)  # before the state file links the request to this CSR
        if state is not None and csr is not None and reply.request_id is not None and not self.check_mode:
            state.append(self._entry(csr, config, template, reply, task_vars))
        after = {"csr_sha256": csr.fingerprint if csr else None, "request_id": reply.request_id, "status": status}
        plan = Plan(plan.action, plan.steps, before=plan.before, after=after)
        if "diff" in result:
            result["diff"] = plan.diff()
        if reply.status == "Issued":
            return self._issued(args, task_vars, plan, answer, reply, csr, config, certificate_path, chain_path,
                                result, submitted)
        if reply.status == "Pending":
            result["changed"] = submitted
            disposition = reply.disposition or "Taken Under Submission"
            note = (f"request {reply.request_id} is pending at {config} ({disposition}): a CA administrator must "
                    "issue it; run the task again with the same CSR (or request_id) to retrieve it")
            result.setdefault("warnings", []).append(note)
            return self._record(args, task_vars, plan, config, result, changed=submitted, message=None) \
                if submitted else result
        what = "denied" if reply.status == "Denied" else "failed"
        message = f"the CA {config} {what} request {reply.request_id if reply.request_id is not None else '(none)'}: " \
                  f"{reply.disposition or 'no disposition message'}"
        if reply.request_id is None and _DOUBLE_HOP.search(reply.disposition or ""):
            message += f". {DOUBLE_HOP_HINT}"
        if submitted and reply.request_id is None:
            message += " (the CA never received the request, so the next run submits it again)"
        result["changed"] = submitted and reply.request_id is not None
        if not submitted:  # a retrieval only read: a failed task, but no change to record
            result.update(failed=True, msg=message, failure_reason="failed")
            return result
        return self._record(args, task_vars, plan, config, result, changed=result["changed"], message=message)

    def _issued(self, args: dict[str, Any], task_vars: Mapping[str, Any], plan: Plan, answer: BatchResult,
                reply: CertReqResult, csr: Csr | None, config: str, certificate_path: str | None,
                chain_path: str | None, result: dict[str, Any], submitted: bool) -> dict[str, Any]:
        if reply.certificate is None:  # parse_certreq_result refuses an Issued answer without one
            raise ExchangePkiError(f"request {reply.request_id} at {config} was issued but certreq returned no "
                                   "certificate")
        stores = answer[CHAIN]
        store_ders = [entry.raw_data for entry in parse_store_certificates(stores.value)] \
            if stores.exception() is None else []
        chain = build_chain(reply.certificate, store_ders)
        pem = pem_of(reply.certificate)
        chain_pems = [pem_of(der) for der in chain]
        result.update(certificate=pem, chain=chain_pems, thumbprint=sha1_thumbprint(reply.certificate))
        if not chain or x509.load_der_x509_certificate(chain[-1]).issuer != \
                x509.load_der_x509_certificate(chain[-1]).subject:
            why = ("do not hold every issuer of the certificate up to a root" if stores.exception() is None else
                   f"could not be read ({stores.exception()})")
            result.setdefault("warnings", []).append(
                f"the chain is incomplete: the host's LocalMachine CA and Root stores {why}",
            )
        writes = [(path, text) for path, text in ((certificate_path, pem), (chain_path, "".join(chain_pems)))
                  if path is not None and file_differs(path, text)]
        changed = submitted or bool(writes)
        result["changed"] = changed
        if self.check_mode:
            return result
        try:
            for path, text in writes:
                write_if_different(path, text)
        except OSError as error:
            return self._record(args, task_vars, plan, config, result, changed=submitted,
                                message=f"the issued certificate could not be written: {error}")
        if not changed:
            return result
        return self._record(args, task_vars, plan, config, result, changed=True, message=None)

    def _entry(self, csr: Csr, config: str, template: str | None, reply: CertReqResult,
               task_vars: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "time": format_utc_datetime(utc_now()),
            "csr_sha256": csr.fingerprint,
            "subject": csr.subject,
            "ca_config": config,
            "template": template,
            "request_id": reply.request_id,
            "status": reply.status.lower(),
            "disposition": reply.disposition,
            "thumbprint": sha1_thumbprint(reply.certificate) if reply.certificate else None,
            "host": str(task_vars.get("inventory_hostname") or "") or None,
        }

    def _record(self, args: dict[str, Any], task_vars: Mapping[str, Any], plan: Plan, config: str,
                result: dict[str, Any], *, changed: bool, message: str | None) -> dict[str, Any]:
        return self.record(result, plan, args, task_vars, server=config, changed=changed, message=message)
