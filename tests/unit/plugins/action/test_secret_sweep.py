# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One sweep proving that no secret option of any module reaches any output.

Every secret (``no_log``) option of every action plugin gets its own canary value, and the plugin runs against the
in-process lab (tests/unit/plugins/action/lab_host.py) and the local sinks (tests/unit/plugins/plugin_utils/
alert_sinks.py) in every path that applies: apply (with --diff), check mode (with --diff), bad input in another
option, an injected remote fault, a remote fault and a failure of the whole executor whose messages quote the
secrets the host received (as PowerShell's argument errors quote a value), a refused credential (Exchange or SMTP),
an unreachable host or relay, a ledger that cannot be written, a webhook that refuses or does not answer, and a
malformed value of the secret itself. The hostile canary (quotes, backslash, ``&``, ``<``, ``%``, non-ASCII where
the option accepts it) runs every path, the plain one the success paths. Then no canary, nor any of its encodings
(JSON-escaped, repr, base64 of its UTF-8 and UTF-16-LE bytes at every alignment, URL-encoded, hex, HTML-escaped;
UTF-16 in files), may appear in the result, the text of an exception (with its chain), any file written, what the
ledger webhook and the alert sinks received (except the header and URL the secret exists to send, at their sink),
log records or stdout/stderr. The same holds for the one-time passwords of the batches and for private keys (the key
certificate_request writes, which must be mode 0600; the key of an imported or exported PFX, which the exported file
holds encrypted). The module arguments sent to the host carry the Exchange password only as ``exchange_password``.
The test id names module, path and style; the assertion message names the option whose canary leaked and where.

The five modules without a secret option (fleet_report, ledger_info, renewal_plan, renewal_status, tls_probe) are
in the table with none; :func:`test_the_sweep_covers_every_secret_option` fails when a module gains one.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import functools
import html
import itertools
import json
import logging
import pathlib
import socket
import stat
import traceback
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from unittest import mock

import pytest
import yaml
from ansible.errors import AnsibleAction, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.action import (
    adcs_request,
    auth_certificate,
    certificate_export,
    certificate_import,
    certificate_info,
    certificate_remove,
    certificate_request,
    certificate_services,
    fleet_alert,
    fleet_report,
    ledger_info,
    ledger_record,
    renewal_plan,
    renewal_status,
    tls_probe,
)
from ansible_collections.exchange.pki.plugins.plugin_utils import _pfx
from tests.lab.model import Fleet
from tests.lab.pki import _authority, generate_key
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import LabHost
from tests.unit.plugins.plugin_utils.alert_sinks import HttpSink, SmtpSink, http_sink, smtp_sink

SCENARIO = pathlib.Path(__file__).resolve().parents[3] / "lab" / "scenarios" / "single.yml"
EXCHANGE_USER = "canary"
SMTP_USER = "alerts"
# An ASCII stand-in for the options that refuse non-ASCII (URLs, HTTP header values, the SMTP password).
HOSTILE_ASCII = "\"q'\\&<>%;"
HOSTILE = HOSTILE_ASCII + "\u00e4\u20ac\U0001f511"
ASCII_ONLY = frozenset({"email.password", "ledger_webhook.url", "ledger_webhook.headers", "webhook.url",
                        "webhook.headers"})
STYLES = ("plain", "hostile")

EXCHANGE = ("exchange_password",)
LEDGER = ("ledger_webhook.url", "ledger_webhook.headers")


def canary(option: str, style: str) -> str:
    if style == "plain":
        return f"Canary-{option}-7f3a"
    return f"Canary-{option}-{HOSTILE_ASCII if option in ASCII_ONLY else HOSTILE}-7f3a"


# --- the encodings a canary must not appear in ------------------------------------------------------------------


def _base64_cores(data: bytes) -> list[str]:
    """The base64 text of ``data`` wherever it starts in a longer byte string (the three alignments), without the
    characters that also depend on the neighbouring bytes."""
    cores = []
    for shift in range(3):
        text = base64.b64encode(b"\0" * shift + data).decode("ascii").rstrip("=")
        core = text[4 if shift else 0:len(text) - 4]
        if len(core) >= 8:
            cores.append(core)
    return cores


@functools.cache
def encodings(secret: str) -> dict[str, str]:
    """Every text form of ``secret`` that must not appear (name -> form)."""
    utf8, utf16 = secret.encode("utf-8", "surrogatepass"), secret.encode("utf-16-le", "surrogatepass")
    forms = {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "json_ascii": json.dumps(secret, ensure_ascii=True)[1:-1],
        "repr": repr(secret)[1:-1],
        "url": urllib.parse.quote(secret, safe=""),
        "url_plus": urllib.parse.quote_plus(secret),
        "url_path": urllib.parse.quote(secret),
        "html": html.escape(secret),
        "hex": utf8.hex(),
        "HEX": utf8.hex().upper(),
        "hex_utf16": utf16.hex(),
    }
    for index, core in enumerate(_base64_cores(utf8)):
        forms[f"base64_utf8_{index}"] = core
    for index, core in enumerate(_base64_cores(utf16)):
        forms[f"base64_utf16le_{index}"] = core
    return forms


@functools.cache
def byte_encodings(secret: str) -> dict[str, bytes]:
    """The byte forms of ``secret`` that must not appear in a file (the text forms in UTF-8, and UTF-16)."""
    forms = {name: form.encode("utf-8", "surrogatepass") for name, form in encodings(secret).items()}
    forms["utf16le"] = secret.encode("utf-16-le", "surrogatepass")
    forms["utf16be"] = secret.encode("utf-16-be", "surrogatepass")
    return forms


def sample(secret: str) -> str:
    """A long secret (a PFX in base64) by a stretch from its middle: all its encodings would cost more than the run."""
    return secret if len(secret) <= 256 else secret[len(secret) // 2:len(secret) // 2 + 96]


def leaks(text: str, secrets: Mapping[str, str]) -> list[str]:
    return [f"{option} ({form})" for option, secret in secrets.items()
            for form, encoded in encodings(secret).items() if encoded in text]


def byte_leaks(data: bytes, secrets: Mapping[str, str]) -> list[str]:
    return [f"{option} ({form})" for option, secret in secrets.items()
            for form, encoded in byte_encodings(secret).items() if encoded in data]


# --- the lab and its inputs ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class ReachableLabHost(LabHost):
    """A lab host whose connection fails as a connection plugin's would while the fleet marks it unreachable, and
    whose operation ``echo_fault`` (when set; ``executor``: the whole module) fails quoting every secret the host
    received, the Exchange password and the batch's secrets, as PowerShell's argument errors quote a value."""

    echo_fault: str | None = None

    def _execute_module(self, task: Any) -> Callable[..., dict[str, Any]]:
        execute = super()._execute_module(task)

        def maybe_unreachable(module_name: str, module_args: dict[str, Any],
                              task_vars: Mapping[str, Any]) -> dict[str, Any]:
            received = [module_args.get("exchange_password"), *module_args.get("secrets", {}).values()]
            echo = " ".join(f'Cannot convert the "{value}" value of type "System.String".'
                            for value in received if value)
            if self.echo_fault == "executor":  # the executor itself fails, quoting what it received
                self.calls.append({"module_name": module_name, "module_args": module_args})
                return {"failed": True, "msg": f"argument conversion failed: {echo}"}
            if self.echo_fault:
                self.fleet.set_fault(self.name, self.echo_fault, error=echo)
            if self.fleet.is_unreachable(self.name):
                self.calls.append({"module_name": module_name, "module_args": module_args})
                raise AnsibleConnectionFailure("ntlm: HTTPSConnectionPool(host='ex1.contoso.lab', port=5986): Max "
                                               "retries exceeded (Connection refused)")
            return execute(module_name, module_args, task_vars)

        return maybe_unreachable


def scenario(password: str) -> dict[str, Any]:
    """single.yml, with an Exchange administrator whose password is the canary, a spare certificate no service
    uses, an Auth certificate due for renewal, and an Exchange 2016 server (legacy PFX only)."""
    data = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    data["accounts"].append({"username": EXCHANGE_USER, "password": password, "exchange_admin": True})
    data["certificates"]["spare"] = {"subject": "CN=spare.contoso.lab", "dns_names": ["spare.contoso.lab"],
                                     "not_before": "-10d", "not_after": "300d"}
    data["servers"][0]["certificates"].append({"ref": "spare", "exportable": True})
    data["auth"] = {"certificate": {"not_after": "45d"}}
    data["servers"].append({"name": "ex2", "version": "2016-cu23", "site": "Default-First-Site-Name"})
    return data


def lab_fleet(account_password: str) -> Fleet:
    """A fresh lab of :func:`scenario`; its CAs' keys come from the lab's key pool (fresh RSA keys per build would
    cost most of this file's time)."""
    count = itertools.count()

    def pooled(key_type: Any = "rsa", key_size: int = 2048, *, cache_key: str | None = None) -> Any:
        return generate_key(key_type, key_size, cache_key=cache_key or f"secret-sweep-authority-{next(count)}")

    with mock.patch.object(_authority, "generate_key", pooled):
        return Fleet.from_scenario(scenario(account_password), now=NOW)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclasses.dataclass(frozen=True)
class Material:
    """What certificate_import imports and adcs_request submits: a CA, a leaf with its key, and a CSR."""

    ca: x509.Certificate
    leaf: x509.Certificate
    key: rsa.RSAPrivateKey
    csr_pem: str

    def key_forms(self) -> dict[str, str]:
        """Text that only the private key yields (PKCS#8 DER in base64 and hex, the private exponent)."""
        der = self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        return private_key_forms(der, self.key.private_numbers().d)


def private_key_forms(der: bytes, exponent: int) -> dict[str, str]:
    encoded = base64.b64encode(der).decode("ascii")
    return {"private key (base64 DER)": encoded[64:128], "private key (hex DER)": der.hex()[128:256],
            "private key (d hex)": format(exponent, "x")[:64], "private key (d)": str(exponent)[:64]}


_MATERIAL: list[Material] = []


def material() -> Material:
    if not _MATERIAL:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

        def issue(subject: str, public_key: Any, *, ca: bool) -> x509.Certificate:
            builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name("Sweep CA"))
                       .public_key(public_key).serial_number(x509.random_serial_number())
                       .not_valid_before(NOW - datetime.timedelta(days=1))
                       .not_valid_after(NOW + datetime.timedelta(days=365))
                       .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
            if not ca:
                builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
            return builder.sign(ca_key, hashes.SHA256())

        csr = (x509.CertificateSigningRequestBuilder().subject_name(_name("adcs.contoso.lab"))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName("adcs.contoso.lab")]), critical=False)
               .sign(key, hashes.SHA256()))
        _MATERIAL.append(Material(issue("Sweep CA", ca_key.public_key(), ca=True),
                                  issue("import.contoso.lab", key.public_key(), ca=False), key,
                                  csr.public_bytes(serialization.Encoding.PEM).decode("ascii")))
    return _MATERIAL[0]


# --- one run -------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Env:
    """One run: where it writes (``out``), its inputs (``inputs``, not scanned), the canaries and the sinks."""

    out: pathlib.Path
    inputs: pathlib.Path
    path: str
    style: str
    canaries: dict[str, str]
    host: LabHost
    hook: HttpSink | None = None
    smtp: SmtpSink | None = None
    #: The secret values given to the plugin (option -> value), when a path gives another than the canary.
    given: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: More text that must not appear (a private key the run handles).
    more: dict[str, str] = dataclasses.field(default_factory=dict)

    def value(self, option: str) -> Any:
        return self.given.get(option, self.canaries[option])

    @property
    def config(self) -> str:
        return str(self.host.fleet.dump()["organization"]["ca"]["config"])

    def thumbprint(self, subject: str) -> str:
        return next(c["thumbprint"] for c in self.host.dump()["certificates"]["My"] if c["subject"] == subject)


@dataclasses.dataclass(frozen=True)
class Module:
    """How to run one module with all its secrets set: ``args`` builds the module's own options for a run that
    changes something (the session and ledger options are added from ``secrets``)."""

    id: str
    cls: type[ActionBase]
    secrets: tuple[str, ...]
    args: Callable[[Env], dict[str, Any]]
    bad: Mapping[str, Any]
    fault: str | None = None  # the remote operation a fault is injected in; None: the host is never contacted
    #: The lab server the task runs on (ex2 runs Exchange 2016, which imports legacy PFX only).
    host: str = "ex1"
    #: Paths that succeed although the name suggests a failure (e.g. a credential that is never used).
    succeeds: frozenset[str] = frozenset()

    @property
    def action(self) -> str:
        return f"exchange.pki.{self.id.split('[')[0]}"


def _full_args(module: Module, env: Env) -> dict[str, Any]:
    args = module.args(env)
    if "exchange_password" in module.secrets:
        args.update(exchange_username=EXCHANGE_USER, exchange_password=env.value("exchange_password"))
    if "ledger_webhook.url" in module.secrets:
        assert env.hook is not None  # its URL's path is the canary
        args["ledger"] = str(env.out / ("ledger.d" if env.path == "ledger_unwritable" else "ledger.jsonl"))
        args["ledger_webhook"] = {
            "url": env.given.get("ledger_webhook.url", env.hook.url),
            "headers": {"X-Canary-Token": env.value("ledger_webhook.headers")},
            "allow_http": True, "timeout": 0.2 if env.path == "webhook_timeout" else 5,
        }
    return args


# --- the modules -------------------------------------------------------------------------------------------


def _import_pfx(env: Env) -> dict[str, Any]:
    found = material()
    if "pfx_content" in env.given:  # a malformed PFX
        return {"pfx_content": env.given["pfx_content"], "pfx_password": env.value("pfx_password")}
    env.more.update(found.key_forms())
    bundle = _pfx.CertificateBundle(found.leaf, found.key, (found.ca,), "pfx")
    wrong = env.path == "bad_secret:pfx_password"  # the canary is given, the file has another password
    data = _pfx.build_pfx(bundle, "Another-Pfx-Password-1" if wrong else env.canaries["pfx_password"],
                          encryption="modern")
    env.more["PFX (DER hex)"] = data.hex()[:128]
    if "pfx_content" not in env.canaries:  # pfx_path: the file is the input
        (env.inputs / "import.pfx").write_bytes(data)
        return {"pfx_path": str(env.inputs / "import.pfx"), "pfx_password": env.value("pfx_password")}
    content = base64.b64encode(data).decode("ascii")
    env.canaries["pfx_content"] = content
    return {"pfx_content": content, "pfx_password": env.value("pfx_password"), "friendly_name": "sweep"}


def _import_key(env: Env) -> dict[str, Any]:
    found = material()
    env.more.update(found.key_forms())
    key_file = env.inputs / "import.key"
    wrong = env.path == "bad_secret:private_key_password"  # the canary is given, the file has another password
    password = b"Another-Key-Password-1" if wrong else env.canaries["private_key_password"].encode("utf-8")
    key_file.write_bytes(found.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.BestAvailableEncryption(password)))
    return {"certificate": found.leaf.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "private_key_path": str(key_file), "private_key_password": env.value("private_key_password")}


def _alert(env: Env) -> dict[str, Any]:
    assert env.hook is not None and env.smtp is not None
    return {
        "events": [{"severity": "critical", "summary": "The Auth certificate expires in 3 days", "server": "EX1"}],
        "email": {"smtp_host": env.smtp.host, "smtp_port": env.smtp.port, "from": "alerts@contoso.lab",
                  "to": ["ops@contoso.lab"], "username": SMTP_USER, "password": env.value("email.password"),
                  "allow_plaintext_auth": True, "timeout": 0.2 if env.path == "webhook_timeout" else 5},
        "webhook": {"url": env.given.get("webhook.url", env.hook.url),
                    "headers": {"X-Canary-Token": env.value("webhook.headers")},
                    "allow_http": True, "timeout": 0.2 if env.path == "webhook_timeout" else 5},
    }


MODULES = (
    Module("adcs_request", adcs_request.ActionModule, (*EXCHANGE, *LEDGER), lambda env: {
        "csr": material().csr_pem, "ca_config": env.config, "template": "WebServer",
        "state_path": str(env.out / "adcs.state"), "certificate_path": str(env.out / "adcs.pem"),
        "chain_path": str(env.out / "adcs-chain.pem")}, bad={"template": "Web\nServer"}, fault="host.certreq_submit",
        succeeds=frozenset({"wrong_password"})),  # the session options are accepted, never used
    Module("auth_certificate", auth_certificate.ActionModule, (*EXCHANGE, *LEDGER), lambda env: {},
           bad={"renew_before_days": -5}, fault="New-ExchangeCertificate"),
    Module("certificate_export", certificate_export.ActionModule, (*EXCHANGE, *LEDGER, "password"), lambda env: {
        "thumbprint": env.thumbprint("CN=spare.contoso.lab"), "password": env.value("password"),
        "dest": str(env.out / "spare.pfx")}, bad={"encryption": "rot13"}, fault="Export-ExchangeCertificate"),
    Module("certificate_export[content]", certificate_export.ActionModule, (*EXCHANGE, *LEDGER, "password"),
           lambda env: {"thumbprint": env.thumbprint("CN=spare.contoso.lab"), "password": env.value("password"),
                        "return_content": True, "target_versions": ["Exchange 2016"]}, bad={"encryption": "rot13"},
           fault="Export-ExchangeCertificate"),
    Module("certificate_import[pfx]", certificate_import.ActionModule,
           (*EXCHANGE, *LEDGER, "pfx_content", "pfx_password"), _import_pfx, bad={"friendly_name": "f" * 100},
           fault="Import-ExchangeCertificate"),
    Module("certificate_import[pfx_path@2016]", certificate_import.ActionModule,
           (*EXCHANGE, *LEDGER, "pfx_password"), _import_pfx, bad={"friendly_name": "f" * 100},
           fault="Import-ExchangeCertificate", host="ex2"),
    Module("certificate_import[key]", certificate_import.ActionModule, (*EXCHANGE, *LEDGER, "private_key_password"),
           _import_key, bad={"friendly_name": "f" * 100}, fault="Import-ExchangeCertificate"),
    Module("certificate_info", certificate_info.ActionModule, EXCHANGE, lambda env: {},
           bad={"fact_name": "not a name"}, fault="*"),
    Module("certificate_remove", certificate_remove.ActionModule, (*EXCHANGE, *LEDGER), lambda env: {
        "thumbprint": env.thumbprint("CN=spare.contoso.lab")}, bad={"thumbprint": "not-a-thumbprint"},
        fault="Remove-ExchangeCertificate"),
    Module("certificate_request[server]", certificate_request.ActionModule, (*EXCHANGE, *LEDGER), lambda env: {
        "subject": "CN=req.contoso.lab", "dns_names": ["req.contoso.lab"]}, bad={"key_size": 1000},
        fault="New-ExchangeCertificate"),
    Module("certificate_request[controller]", certificate_request.ActionModule, (*EXCHANGE, *LEDGER), lambda env: {
        "subject": "CN=req.contoso.lab", "dns_names": ["req.contoso.lab"], "key_location": "controller",
        "private_key_path": str(env.out / "req.key"), "csr_path": str(env.out / "req.csr")},
        bad={"key_size": 1000}, succeeds=frozenset({"wrong_password"})),
    Module("certificate_services", certificate_services.ActionModule, (*EXCHANGE, *LEDGER), lambda env: {
        "thumbprint": env.thumbprint("CN=spare.contoso.lab"), "services": ["IIS"]}, bad={"services": ["Bogus"]},
        fault="Enable-ExchangeCertificate"),
    Module("fleet_alert", fleet_alert.ActionModule, ("email.password", "webhook.url", "webhook.headers"), _alert,
           bad={"min_severity": "bogus"}),
    Module("ledger_record", ledger_record.ActionModule, LEDGER, lambda env: {
        "action": "renewal_done", "server": "EX1", "after": {"thumbprint": "CD" * 20}, "run_id": "plan-1"},
        bad={"result": "bogus"}),
    Module("fleet_report", fleet_report.ActionModule, (), lambda env: {}, bad={}),
    Module("ledger_info", ledger_info.ActionModule, (), lambda env: {}, bad={}),
    Module("renewal_plan", renewal_plan.ActionModule, (), lambda env: {}, bad={}),
    Module("renewal_status", renewal_status.ActionModule, (), lambda env: {}, bad={}),
    Module("tls_probe", tls_probe.ActionModule, (), lambda env: {}, bad={}),
)
BY_ID = {module.id: module for module in MODULES}


def _bad_secret(option: str, secret: str) -> Any:
    """A malformed value of ``option`` that holds the canary ``secret``."""
    if option in ("exchange_password", "password", "email.password"):
        return secret + "\x00"
    if option in ("ledger_webhook.url", "webhook.url"):
        return f"gopher://127.0.0.1/{secret}"
    if option in ("ledger_webhook.headers", "webhook.headers"):
        return secret + "\r\nX-Injected: 1"
    return secret  # pfx_content: not a PFX; pfx_password / private_key_password: not the file's password


def paths(module: Module) -> list[str]:
    found = ["apply", "check", "bad_input"]
    if module.fault:
        found += ["fault", "fault_echo", "executor_echo", "unreachable"]
    if "exchange_password" in module.secrets or "email.password" in module.secrets:
        found.append("wrong_password")
    if "ledger_webhook.url" in module.secrets:
        found.append("ledger_unwritable")
    if "ledger_webhook.url" in module.secrets or "webhook.url" in module.secrets:
        found += ["webhook_refused", "webhook_timeout"]
    if "webhook.url" in module.secrets:
        found.append("unreachable")
    found += [f"bad_secret:{option}" for option in module.secrets]
    return found


#: The plain canary runs the success paths only (where a hostile value could take another route); the hostile one,
#: which any escaping or encoding would change, runs every path.
PLAIN_PATHS = ("apply", "check")
CASES = [pytest.param(module.id, path, style, id=f"{module.id}-{path}-{style}")
         for module in MODULES if module.secrets for path in paths(module) for style in STYLES
         if style == "hostile" or path in PLAIN_PATHS]


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugins read the clock at NOW."""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SinkPool:
    """Receivers kept open for the whole file (closing one waits for its poll interval): HTTP receivers by status and
    drip, SMTP relays by credential and drip. Each test empties what they received and gives its own URL path."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack
        self._http: dict[tuple[int, float], HttpSink] = {}
        self._smtp: dict[tuple[str, float], SmtpSink] = {}

    def http(self, status: int, drip: float, path: str) -> HttpSink:
        if (status, drip) not in self._http:
            self._http[status, drip] = self._stack.enter_context(http_sink(status, drip=drip))
        sink = self._http[status, drip]
        sink.received.clear()
        return dataclasses.replace(sink, url=sink.url.split("/hooks/")[0] + path)

    def smtp(self, password: str, drip: float) -> SmtpSink:
        if (password, drip) not in self._smtp:
            self._smtp[password, drip] = self._stack.enter_context(smtp_sink((SMTP_USER, password), drip=drip))
        sink = self._smtp[password, drip]
        sink.received.clear()
        return sink


@pytest.fixture(scope="module")
def pool() -> Iterator[SinkPool]:
    with contextlib.ExitStack() as stack:
        yield SinkPool(stack)


def sinks(pool: SinkPool, module: Module, path: str,
          canaries: Mapping[str, str]) -> tuple[HttpSink | None, SmtpSink | None]:
    """The webhook receiver (its path is the URL canary) and, for fleet_alert, the SMTP relay."""
    url_option = next((option for option in ("ledger_webhook.url", "webhook.url") if option in module.secrets), None)
    if url_option is None:
        return None, None
    drip = 0.1 if path == "webhook_timeout" else 0
    hook = pool.http(503 if path == "webhook_refused" else 200, drip, f"/hooks/{canaries[url_option]}")
    smtp = None
    if "email.password" in module.secrets:
        smtp = pool.smtp("Not-the-canary-1" if path == "wrong_password" else canaries["email.password"], drip)
    if path == "unreachable":  # both receivers gone: the connections are refused
        hook = dataclasses.replace(hook, url=hook.url.replace(f":{hook.server.server_address[1]}/",
                                                              f":{_closed_port()}/"))
        if smtp is not None:
            smtp = dataclasses.replace(smtp, port=_closed_port())
    return hook, smtp


def run_case(module: Module, env: Env) -> tuple[dict[str, Any] | None, str]:
    """Run the module; its result, or None and the text of the exception it raised."""
    args = _full_args(module, env)
    if env.path == "bad_input":
        args.update(module.bad)
    if env.path == "fault":
        env.host.fleet.set_fault(env.host.name, module.fault or "*", error="The RPC server is too busy to complete "
                                 "this operation.")
    if env.path == "fault_echo":
        env.host.echo_fault = module.fault
    if env.path == "executor_echo":
        env.host.echo_fault = "executor"
    if env.path == "unreachable":
        env.host.fleet.set_unreachable(env.host.name, True)
    if env.path == "ledger_unwritable":
        (env.out / "ledger.d").mkdir()
    try:
        result = env.host.run(module.cls, args, check_mode=env.path == "check", diff=env.path in ("apply", "check"),
                              action=module.action, task_vars={"inventory_hostname": env.host.name})
    except AnsibleAction as error:
        return None, "\n".join([str(error), repr(error), json.dumps(getattr(error, "_result", {}), default=repr),
                                *traceback.format_exception(error)])
    except Exception as error:  # noqa: BLE001 - the text of any exception is scanned as well
        return None, "".join(traceback.format_exception(error))
    return result, ""


def _result_text(result: Any) -> str:
    return "\n".join([json.dumps(result, ensure_ascii=False, default=repr), json.dumps(result, default=repr),
                      repr(result), *(text for _where, text in _walk_strings(result))])


def _walk_strings(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{where}[{index}]")
    elif isinstance(value, str):
        yield where, value


def _check_outcome(module: Module, path: str, result: dict[str, Any] | None, raised: str) -> None:
    """The path did what its name says (a failure path failed, a success path did not), so the sweep proves
    something about that path."""
    failed = result is None or bool(result.get("failed") or result.get("unreachable"))
    should_fail = path not in ("apply", "check") and path not in module.succeeds
    if module.id == "fleet_alert" and path == "check":
        should_fail = False
    assert failed == should_fail, (f"{module.id} {path}: expected {'a failure' if should_fail else 'success'}, got "
                                   f"{raised or {key: result.get(key) for key in ('failed', 'unreachable', 'msg')}}")


@pytest.mark.parametrize(("module_id", "path", "style"), CASES)
def test_no_secret_reaches_any_output(module_id, path, style, pool, tmp_path, caplog, capsys):
    module = BY_ID[module_id]
    caplog.set_level(logging.DEBUG)
    canaries = {option: canary(option, style) for option in module.secrets}
    out, inputs = tmp_path / "out", tmp_path / "in"
    out.mkdir()
    inputs.mkdir()
    given = {}
    if path.startswith("bad_secret:"):
        option = path.split(":", 1)[1]
        given[option] = _bad_secret(option, canaries[option])
        if option in ("ledger_webhook.headers", "webhook.headers"):
            given[option] = canaries[option] + "\r\nX-Injected: 1"
    account_password = "Not-the-canary-1" if path == "wrong_password" else canaries.get("exchange_password", "x")
    fleet = lab_fleet(account_password)
    hook, smtp = sinks(pool, module, path, canaries)
    env = Env(out, inputs, path, style, canaries, ReachableLabHost(fleet, module.host), hook, smtp, given)
    result, raised = run_case(module, env)
    posts = list(hook.received) if hook else []
    mails = list(smtp.received) if smtp else []
    _check_outcome(module, path, result, raised)
    secrets = {**env.canaries}
    if module.id == "certificate_request[controller]" and (path == "apply" or (out / "req.key").exists()):
        key_file = out / "req.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, "the private key file is not mode 0600"
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        env.more.update(private_key_forms(der, key.private_numbers().d))  # type: ignore[union-attr]
    if path == "apply" and module.id.startswith("certificate_export"):
        assert result is not None
        if "dest" in _full_args(module, env):
            assert stat.S_IMODE((out / "spare.pfx").stat().st_mode) == 0o600, "the PFX file is not mode 0600"
            data = (out / "spare.pfx").read_bytes()
        else:
            data = base64.b64decode(result["content"])
        key, _certificate, _chain = pkcs12.load_key_and_certificates(data, secrets["password"].encode("utf-8"))
        assert isinstance(key, rsa.RSAPrivateKey)  # the PFX holds the key, encrypted with the password
        env.more.update(private_key_forms(key.private_bytes(serialization.Encoding.DER,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()),
                                          key.private_numbers().d))
    for number, call in enumerate(env.host.calls):  # the one-time passwords of the batches are secrets too
        for name, value in call["module_args"].get("secrets", {}).items():
            env.more[f"batch {number} {name}"] = value
    scanned = {name: sample(value) for name, value in {**secrets, **env.more}.items()}
    found: list[str] = []

    found += [f"result: {leak}" for leak in leaks(_result_text(result), scanned)]
    found += [f"exception: {leak}" for leak in leaks(raised, scanned)]
    for written in sorted(out.rglob("*")):
        if written.is_file() and written.name != "req.key":
            found += [f"file {written.name}: {leak}" for leak in byte_leaks(written.read_bytes(), scanned)]
    logged = "\n".join([caplog.text, *(f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
                                       for record in caplog.records)])
    found += [f"log: {leak}" for leak in leaks(logged, scanned)]
    captured = capsys.readouterr()
    found += [f"stdout/stderr: {leak}" for leak in leaks(captured.out + captured.err, scanned)]

    url_option = next((option for option in ("ledger_webhook.url", "webhook.url") if option in module.secrets), None)
    header_option = url_option.replace("url", "headers") if url_option else None
    for post in posts:
        assert url_option is not None and header_option is not None
        headers = dict(post.headers)
        if headers.get("X-Canary-Token") == secrets[header_option]:
            del headers["X-Canary-Token"]  # the configured header goes to its sink: its purpose
        path_secrets = {name: value for name, value in scanned.items() if name != url_option}
        found += [f"webhook request path: {leak}" for leak in leaks(urllib.parse.unquote(post.path), path_secrets)]
        found += [f"webhook request: {leak}" for leak in leaks(_result_text([post.body, headers]), scanned)]
    for mail in mails:
        data = mail.message.as_bytes()
        found += [f"mail: {leak}" for leak in byte_leaks(data, scanned)]
        found += [f"mail: {leak}" for leak in leaks(_result_text([mail.sender, mail.recipients]), scanned)]

    for call in env.host.calls:
        for where, text in _walk_strings(call["module_args"]):
            if where == ".exchange_password":
                continue  # the executor needs it to open the session, and it is no_log there
            others = scanned
            if where.startswith(".secrets.") or where.endswith(".$bytes"):
                # The batch's own no_log secrets and the file data the host imports: never the Exchange password.
                others = {name: value for name, value in scanned.items() if name == "exchange_password"}
            found += [f"module args {where}: {leak}" for leak in leaks(text, others)]
    assert not found, f"{module.id} / {path} / {style}: " + "; ".join(sorted(set(found)))


def _no_log_options(spec: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for name, option in spec.items():
        if option.get("no_log"):
            yield f"{prefix}{name}"
        if option.get("options"):
            yield from _no_log_options(option["options"], f"{prefix}{name}.")


PLUGINS = {module.id.split("[")[0]: module.cls for module in MODULES}


@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_the_sweep_covers_every_secret_option(name):
    """Every no_log option of the module (suboptions included) is swept, in one variant of the module or another."""
    swept = {option for module in MODULES if module.id.split("[")[0] == name for option in module.secrets}
    assert set(_no_log_options(PLUGINS[name].ARGUMENT_SPEC.argument_spec)) == swept


def test_the_sweep_covers_every_module():
    plugins = pathlib.Path(certificate_info.__file__).parent
    assert {path.stem for path in plugins.glob("*.py") if path.stem != "__init__"} == PLUGINS.keys()
