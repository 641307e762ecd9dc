# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode and idempotence, one contract for every changing module, from the lab scenarios' starting states.

For each case (a module, a lab scenario, a realistic task) the sweep runs, from the same starting state:

1. ``check``: the task in check mode (with diff). Nothing changes: the lab's whole dump (and so its mutation log),
   the controller's files under the case's directory (names, bytes, modes), the ledger, and the local SMTP and
   webhook sinks (alert_sinks.py), which accept no connection.
2. ``predict``: the real run that follows. Its ``changed`` is check mode's, and so is its diff.
3. ``again``: a second real run reports ``changed=False``, changes nothing in the lab, writes nothing, delivers
   nothing.
4. ``check_after``: a check-mode run after the real run reports ``changed=False``.

Each case's journey runs once (the first of its four tests runs it; the others read the record) and each step is
its own test, so a failure names the module, the scenario and the step. Where a module documents that it cannot
honour a step (its DOCUMENTATION's attributes and notes), the case says so in ``documented``, quoting the
documentation, and the step asserts the documented behaviour instead.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import json
import pathlib
import stat
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from ansible.errors import AnsibleActionFail
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
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
    ledger_record,
    renewal_status,
)
from ansible_collections.exchange.pki.plugins.plugin_utils import _pfx
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import RenewalPolicy, build_plan
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import LabHost
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink

PLUGINS: dict[str, Any] = {
    "certificate_request": certificate_request, "certificate_import": certificate_import,
    "certificate_export": certificate_export, "certificate_services": certificate_services,
    "certificate_remove": certificate_remove, "auth_certificate": auth_certificate, "adcs_request": adcs_request,
    "ledger_record": ledger_record, "fleet_report": fleet_report, "fleet_alert": fleet_alert,
    "renewal_status": renewal_status,
}
STEPS = ("check", "predict", "again", "check_after")
PASSWORD = "Sweep-Pfx-Pa55word-\u00ff"  # noqa: S105 - the test's own secret
RESULT_KEYS = {"changed", "failed", "msg", "warnings", "ansible_facts", "invocation"}
POLICY = {"backends": [{"backend": "adcs", "options": {"ca_config": "ca01.contoso.lab\\Contoso Lab Issuing CA",
                                                        "template": "WebServer"}}]}


# --- what a case starts from ------------------------------------------------------------------------------


@dataclasses.dataclass
class Start:
    """What a case's setup hands the journey: the lab, the host the task runs on, its arguments."""

    fleet: Fleet
    host: str
    args: dict[str, Any]
    task_vars: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: placeholder text in check mode's diff -> a function of the real run's result giving the value it stands for
    placeholders: dict[str, Callable[[dict[str, Any]], str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Sinks:
    """The local SMTP server and webhook every case is given (alerts and the ledger's webhook deliver there)."""

    smtp: Any
    hook: Any

    def deliveries(self) -> tuple[int, int, int, int]:
        return (self.smtp.server.connections, len(self.smtp.received), self.hook.connections,
                len(self.hook.received))


def lab(scenario: str) -> Fleet:
    return Fleet.from_scenario(scenario, now=NOW)


def thumbprint_of(fleet: Fleet, server: str, subject: str, store: str = "My", **match: Any) -> str:
    (found,) = [c["thumbprint"] for c in fleet.dump()["servers"][server]["certificates"][store]
                if c["subject"] == subject and all(c.get(k) == v for k, v in match.items())]
    return found


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@functools.lru_cache(maxsize=None)
def _ca() -> tuple[Any, x509.Certificate]:
    """A CA of the test's own that issues what the import cases install (made once per worker)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, _issue(_name("Fabrikam Sweep CA"), key.public_key(), _name("Fabrikam Sweep CA"), key, ca=True)


@functools.lru_cache(maxsize=None)
def _leaf_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _issue(subject: x509.Name, public_key: Any, issuer: x509.Name, key: Any, *, ca: bool = False,
           names: tuple[str, ...] = ()) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256())


def issued(public_key: Any, subject: x509.Name, names: tuple[str, ...]) -> tuple[x509.Certificate, str]:
    """A certificate from the test's CA and the PEM of it with its chain."""
    ca_key, ca = _ca()
    leaf = _issue(subject, public_key, ca.subject, ca_key, names=names)
    return leaf, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca)).decode("ascii")


def csr_pem(name: str) -> str:
    request = (x509.CertificateSigningRequestBuilder().subject_name(_name(name))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(_leaf_key(), hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


@functools.lru_cache(maxsize=None)
def _facts_json(scenario: str) -> str:
    """Every server's exchange_pki fact as certificate_info reads it from the scenario's lab at NOW."""
    fleet = lab(scenario)
    facts = {}
    for name in sorted(fleet.dump()["servers"]):
        result = LabHost(fleet, name).run(certificate_info.ActionModule, {})
        assert not result.get("failed"), result
        facts[name] = {key: value for key, value in result.items()
                       if key not in RESULT_KEYS and not key.startswith("_ansible")}
    return json.dumps(facts)


def lab_facts(scenario: str) -> dict[str, Any]:
    return json.loads(_facts_json(scenario))


def ledger_options(root: pathlib.Path, sinks: Sinks) -> dict[str, Any]:
    return {"ledger": str(root / "ledger.jsonl"),
            "ledger_webhook": {"url": sinks.hook.url, "allow_http": True, "timeout": 5}}


# --- the cases ----------------------------------------------------------------------------------------------


def request_server_mode(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    return Start(lab(scenario), "ex1", {
        "subject": "C=US,O=Contoso,CN=mail.contoso.lab", "dns_names": ["autodiscover.contoso.lab"],
        "friendly_name": "mail 2027", "csr_path": str(root / "mail.csr"), **ledger_options(root, sinks)})


def request_controller_mode(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    return Start(lab(scenario), "ex1", {
        "subject": "CN=mail.contoso.lab", "dns_names": ["autodiscover.contoso.lab"], "key_location": "controller",
        "private_key_path": str(root / "mail.key"), "csr_path": str(root / "mail.csr"),
        **ledger_options(root, sinks)})


def request_existing(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """broken's ex1 holds a pending request for these names, made 60 days ago."""
    return Start(lab(scenario), "ex1", {
        "subject": "CN=mail.contoso.lab", "dns_names": ["autodiscover.contoso.lab"], **ledger_options(root, sinks)})


def import_completing(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """A request made on ex1, issued by the test's CA, completed with its chain."""
    fleet = lab(scenario)
    made = LabHost(fleet, "ex1").run(certificate_request.ActionModule, {
        "subject": "CN=owa.contoso.lab", "dns_names": ["owa.contoso.lab"]})
    csr = x509.load_pem_x509_csr(made["csr"].encode("ascii"))
    chain = issued(csr.public_key(), csr.subject, ("owa.contoso.lab",))[1]
    return Start(fleet, "ex1", {"certificate": chain, "friendly_name": "owa 2027", **ledger_options(root, sinks)})


def import_pfx(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    key = _leaf_key()
    leaf = issued(key.public_key(), _name("mail.contoso.lab"), ("mail.contoso.lab", "autodiscover.contoso.lab"))[0]
    bundle = _pfx.CertificateBundle(leaf, key, (_ca()[1],), "pfx")
    data = _pfx.build_pfx(bundle, PASSWORD, encryption="modern")
    return Start(lab(scenario), "ex1", {"pfx_content": base64.b64encode(data).decode("ascii"),
                                        "pfx_password": PASSWORD, "exportable": True, "trust_root": True,
                                        **ledger_options(root, sinks)})


def import_controller_key(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """broken's ex3 runs Exchange 2016: the PFX built from the controller's key must be legacy."""
    key = _leaf_key()
    chain = issued(key.public_key(), _name("webmail.contoso.lab"), ("webmail.contoso.lab", "mail.contoso.lab"))[1]
    (root / "webmail.crt").write_text(chain, encoding="ascii")
    key_path = root / "webmail.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return Start(lab(scenario), "ex3", {"src": str(root / "webmail.crt"), "private_key_path": str(key_path),
                                        "friendly_name": "webmail 2027", **ledger_options(root, sinks)})


def export(server: str, subject: str, **extra: Any) -> Callable[[str, pathlib.Path, Sinks], Start]:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        return Start(fleet, server, {"thumbprint": thumbprint_of(fleet, server, subject), "password": PASSWORD,
                                     "dest": str(root / "out.pfx"), **extra, **ledger_options(root, sinks)})
    return setup


def services(server: str, subject: str, names: list[str], **extra: Any) -> Callable[[str, pathlib.Path, Sinks],
                                                                                   Start]:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        return Start(fleet, server, {"thumbprint": thumbprint_of(fleet, server, subject), "services": names,
                                     **extra, **ledger_options(root, sinks)})
    return setup


def remove(server: str, subject: str) -> Callable[[str, pathlib.Path, Sinks], Start]:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        return Start(fleet, server, {"thumbprint": thumbprint_of(fleet, server, subject),
                                     **ledger_options(root, sinks)})
    return setup


def remove_absent(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    return Start(lab(scenario), "ex1", {"thumbprint": "AB" * 20, **ledger_options(root, sinks)})


def auth(server: str, **extra: Any) -> Callable[[str, pathlib.Path, Sinks], Start]:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        return Start(lab(scenario), server, {**extra, **ledger_options(root, sinks)},
                     placeholders={"<Thumbprint returned by step new>": lambda real: real["thumbprint"]})
    return setup


def adcs(template: str, server: str = "ex1") -> Callable[[str, pathlib.Path, Sinks], Start]:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        (root / "mail.csr").write_text(csr_pem("mail.contoso.lab"), encoding="ascii")
        return Start(fleet, server, {
            "csr_path": str(root / "mail.csr"), "ca_config": fleet.dump()["organization"]["ca"]["config"],
            "template": template, "certificate_path": str(root / "mail.pem"), "chain_path": str(root / "chain.pem"),
            **ledger_options(root, sinks)})
    return setup


def record(action: str, **extra: Any) -> Callable[[str, pathlib.Path, Sinks], Start]:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        return Start(lab(scenario), "ex1", {"action": action, "after": {"identity": "id-3f9a1b2c4d5e"}, **extra,
                                            **ledger_options(root, sinks)},
                     task_vars={"inventory_hostname": "localhost"})
    return setup


def report(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    del sinks
    return Start(lab(scenario), "localhost", {"facts": lab_facts(scenario), "dest": str(root / "report"),
                                              "now": format_utc_datetime(NOW)})


def alert(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    del root
    return Start(lab(scenario), "localhost", {
        "facts": lab_facts(scenario), "min_severity": "critical", "now": format_utc_datetime(NOW),
        "email": {"smtp_host": "127.0.0.1", "smtp_port": sinks.smtp.port, "from": "alerts@contoso.lab",
                  "to": ["ops@contoso.lab"], "timeout": 5},
        "webhook": {"url": sinks.hook.url, "allow_http": True, "timeout": 5}})


def status(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    del sinks
    facts = lab_facts(scenario)
    plan = build_plan(facts, policy=RenewalPolicy.from_options(POLICY), now=NOW, plan_id="run-1")
    return Start(lab(scenario), "localhost", {"plan": plan, "facts": facts, "ledger": str(root / "ledger.jsonl"),
                                              "metrics_path": str(root / "renewal.prom"),
                                              "now": format_utc_datetime(NOW)})


#: The documented exceptions, quoted from the modules' DOCUMENTATION.
LEDGER_RECORD_APPENDS = ("ledger_record: 'Appends one record to the audit ledger' at every run (the record of what "
                         "a play decided), so every real run changes the ledger and a check-mode run predicts that.")
ADCS_SUBMITS_ONLY_FOR_REAL = ("adcs_request check_mode: 'A submission is never sent in check mode; the task predicts "
                              "V(changed=true) and RV(status) is V(null).' So check mode's diff cannot know the "
                              "request id or the CA's answer: its after says where the CSR would be submitted.")
ALERT_EVERY_RUN = ("fleet_alert notes: 'An alert is sent at every run that finds a triggering finding; schedule the "
                   "play (for example an AWX schedule) at the rate you want to be reminded.'")


@dataclasses.dataclass(frozen=True)
class Case:
    module: str
    scenario: str
    label: str
    setup: Callable[[str, pathlib.Path, Sinks], Start]
    #: step -> the documented reason it does not hold (the step then asserts what the documentation says)
    documented: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fails: bool = False  # the task is refused (in check mode and for real alike)
    #: for a documented ``predict``: check mode's diff["after"] from the start and the real run's result
    predicted_after: Callable[[Start, dict[str, Any]], Any] | None = None

    @property
    def id(self) -> str:
        return f"{self.module}-{self.scenario}-{self.label}"


ADCS_SUBMISSION: dict[str, Any] = {
    "documented": {"predict": ADCS_SUBMITS_ONLY_FOR_REAL},
    "predicted_after": lambda start, real: {**real["diff"]["after"], "request_id": None,
                                            "status": f"submitted to {start.args['ca_config']}"},
}

CASES = [
    Case("certificate_request", "single", "new-server-request", request_server_mode),
    Case("certificate_request", "dag", "controller-key", request_controller_mode),
    Case("certificate_request", "broken", "pending-request-reused", request_existing),
    Case("certificate_import", "dag", "complete-pending", import_completing),
    Case("certificate_import", "single", "pfx-trust-root", import_pfx),
    Case("certificate_import", "broken", "controller-key-2016", import_controller_key),
    Case("certificate_export", "dag", "shared-san", export("ex1", "CN=mail.contoso.lab")),
    Case("certificate_export", "single", "modern", export("ex1", "CN=mail.contoso.lab", encryption="modern")),
    Case("certificate_export", "broken", "legacy-2016", export("ex3", "CN=webmail.contoso.lab")),
    Case("certificate_services", "single", "all-bound-already", services(
        "ex1", "CN=mail.contoso.lab", ["IIS", "SMTP", "IMAP", "POP"])),
    Case("certificate_services", "broken", "iis-off-expired", services(
        "ex1", "CN=fortyfive.contoso.lab", ["IIS", "IMAP"], iis_restart="app_pools")),
    Case("certificate_services", "dag", "smtp-2016", services("ex4", "CN=mail.contoso.lab", ["IIS", "SMTP"])),
    Case("certificate_remove", "broken", "unreferenced", remove("ex1", "CN=legacy.contoso.lab")),
    Case("certificate_remove", "single", "absent", remove_absent),
    Case("certificate_remove", "dag", "referenced-refused", remove("ex1", "CN=mail.contoso.lab"), fails=True),
    Case("auth_certificate", "dag", "stage-next", auth("ex1")),
    Case("auth_certificate", "broken", "import-missing", auth("ex1", ignore_unreachable=False)),
    Case("auth_certificate", "single", "nothing-due", auth("ex1")),
    Case("adcs_request", "dag", "auto-issued", adcs("WebServer"), **ADCS_SUBMISSION),
    Case("adcs_request", "single", "manual-pending", adcs("ExchangeManual"), **ADCS_SUBMISSION),
    Case("adcs_request", "broken", "from-ex2", adcs("WebServer", "ex2"), **ADCS_SUBMISSION),
    Case("ledger_record", "dag", "renewal-done", record("renewal_done", run_id="run-1"),
         documented={"again": LEDGER_RECORD_APPENDS, "check_after": LEDGER_RECORD_APPENDS}),
    Case("ledger_record", "broken", "renewal-failed", record("renewal_failed", result="failed", server="EX2",
                                                             message="the probe saw the old certificate"),
         documented={"again": LEDGER_RECORD_APPENDS, "check_after": LEDGER_RECORD_APPENDS}),
    Case("fleet_report", "dag", "all-formats", report),
    Case("fleet_report", "broken", "all-formats", report),
    Case("fleet_report", "single", "all-formats", report),
    Case("fleet_alert", "dag", "critical", alert,
         documented={"again": ALERT_EVERY_RUN, "check_after": ALERT_EVERY_RUN}),
    Case("fleet_alert", "broken", "critical", alert,
         documented={"again": ALERT_EVERY_RUN, "check_after": ALERT_EVERY_RUN}),
    Case("fleet_alert", "single", "nothing-critical", alert),
    Case("renewal_status", "dag", "metrics", status),
    Case("renewal_status", "broken", "metrics", status),
    Case("renewal_status", "single", "metrics", status),
]


# --- the journey --------------------------------------------------------------------------------------------


def files(root: pathlib.Path) -> dict[str, tuple[str, int, bytes | None]]:
    """Every entry under ``root``: its kind, mode and bytes."""
    seen = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
        seen[str(path.relative_to(root))] = (kind, stat.S_IMODE(info.st_mode),
                                             path.read_bytes() if kind == "file" else None)
    return seen


@dataclasses.dataclass
class Observation:
    result: dict[str, Any]
    dump_before: dict[str, Any]
    dump_after: dict[str, Any]
    files_before: dict[str, Any]
    files_after: dict[str, Any]
    deliveries_before: tuple[int, ...]
    deliveries_after: tuple[int, ...]


@dataclasses.dataclass
class Journey:
    start: Start
    steps: dict[str, Observation]


def _observe(case: Case, start: Start, root: pathlib.Path, sinks: Sinks, *, check_mode: bool) -> Observation:
    dump_before, files_before, deliveries_before = start.fleet.dump(), files(root), sinks.deliveries()
    host = LabHost(start.fleet, start.host)
    try:
        result = host.run(PLUGINS[case.module].ActionModule, start.args, check_mode=check_mode, diff=True,
                          task_vars=start.task_vars, action=f"exchange.pki.{case.module}")
    except AnsibleActionFail as error:
        result = {"failed": True, "msg": error.message}
    return Observation(result, dump_before, start.fleet.dump(), files_before, files(root), deliveries_before,
                       sinks.deliveries())


_JOURNEYS: dict[str, Journey] = {}


def journey(case: Case, directories: pytest.TempPathFactory) -> Journey:
    """The case's four runs, in order, from one starting state (run once per worker)."""
    if case.id not in _JOURNEYS:
        root = directories.mktemp(case.id)
        with smtp_sink() as smtp, http_sink() as hook:
            sinks = Sinks(smtp, hook)
            start = case.setup(case.scenario, root, sinks)
            steps = {}
            for step in STEPS:
                steps[step] = _observe(case, start, root, sinks, check_mode=step.startswith("check"))
        _JOURNEYS[case.id] = Journey(start, steps)
    return _JOURNEYS[case.id]


# --- the contract, step by step -------------------------------------------------------------------------------


def substituted(value: Any, placeholders: Mapping[str, str]) -> Any:
    """``value`` with every documented placeholder replaced by what the real run made."""
    text = json.dumps(value, sort_keys=True)
    for placeholder, real in placeholders.items():
        text = text.replace(json.dumps(placeholder)[1:-1], json.dumps(real)[1:-1])
    return json.loads(text)


def changes_nothing(observed: Observation, step: str) -> None:
    assert observed.dump_after["mutations"] == observed.dump_before["mutations"], f"{step}: the lab was changed"
    assert observed.dump_after == observed.dump_before, f"{step}: the lab's state differs"
    assert observed.files_after == observed.files_before, f"{step}: a controller file was written"
    assert observed.deliveries_after == observed.deliveries_before, f"{step}: something was sent"


def ok(observed: Observation, case: Case, step: str) -> dict[str, Any]:
    result = observed.result
    if case.fails:
        assert result.get("failed") is True, f"{step}: the refusal did not fail the task: {result}"
    else:
        assert result.get("failed") is not True, f"{step}: {result.get('msg')}"
    return result


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugins read the clock at NOW."""


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_contract(case: Case, step: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    trip = journey(case, tmp_path_factory)
    observed = trip.steps[step]
    result = ok(observed, case, step)
    reason = case.documented.get(step)

    if step == "check":
        changes_nothing(observed, step)
    elif step == "predict":
        check = trip.steps["check"].result
        if case.fails:
            assert result["msg"] == check["msg"], "predict: check mode refused with another message"
            changes_nothing(observed, step)
            return
        assert check["changed"] == result["changed"], "predict: check mode's changed is not the real run's"
        placeholders = {text: value(result) for text, value in trip.start.placeholders.items()}
        predicted = substituted(check.get("diff"), placeholders)
        if reason:
            assert case.predicted_after is not None
            assert predicted["before"] == result["diff"]["before"], "predict: check mode's diff before differs"
            assert predicted["after"] == case.predicted_after(trip.start, result), reason
        else:
            assert predicted == result.get("diff"), "predict: check mode's diff is not the real run's"
        if not result["changed"]:
            changes_nothing(observed, step)
    elif step == "again":
        if reason:
            assert result["changed"] is True, reason
            assert observed.dump_after == observed.dump_before, f"{step}: the lab was changed"
            return
        assert result["changed"] is False, "again: a second real run reported a change"
        changes_nothing(observed, step)
    else:
        changes_nothing(observed, step)
        if reason:
            assert result["changed"] is True, reason
            return
        assert result["changed"] is False, "check_after: check mode after the real run predicts a change"
