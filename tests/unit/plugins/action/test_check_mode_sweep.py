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
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.exchange.pki.plugins.action import (
    adcs_request,
    auth_certificate,
    certificate_export,
    certificate_import,
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
from tests.unit.plugins.action.ledger_lifecycle import _certificate, _name
from tests.unit.plugins.action.test_certificate_services import scenario as services_scenario
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink
from tests.unit.plugins.plugin_utils.test__renewal import lab_facts

PLUGINS: dict[str, Any] = {
    "certificate_request": certificate_request, "certificate_import": certificate_import,
    "certificate_export": certificate_export, "certificate_services": certificate_services,
    "certificate_remove": certificate_remove, "auth_certificate": auth_certificate, "adcs_request": adcs_request,
    "ledger_record": ledger_record, "fleet_report": fleet_report, "fleet_alert": fleet_alert,
    "renewal_status": renewal_status,
}
STEPS = ("check", "predict", "again", "check_after")
HOUR, MINUTE = datetime.timedelta(hours=1), datetime.timedelta(minutes=1)
PASSWORD = "Sweep-Pfx-Pa55word-\u00ff"  # noqa: S105 - the test's own secret
POLICY = {"backends": [{"backend": "adcs",
                        "options": {"ca_config": "ca01.contoso.lab\\Contoso Lab Issuing CA", "template": "WebServer"}}]}


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


#: What a case starts from: given the scenario, the case's folder and the sinks, the lab, host, arguments and task vars.
Setup = Callable[[str, pathlib.Path, Sinks], Start]


def lab(scenario: str) -> Fleet:
    return Fleet.from_scenario(scenario, now=NOW)


def thumbprint_of(fleet: Fleet, server: str, subject: str, store: str = "My", **match: Any) -> str:
    (found,) = [c["thumbprint"] for c in fleet.dump()["servers"][server]["certificates"][store]
                if c["subject"] == subject and all(c.get(k) == v for k, v in match.items())]
    return found


@functools.lru_cache(maxsize=None)
def _ca() -> tuple[Any, x509.Certificate]:
    """A CA of the test's own that issues what the import cases install (made once per worker)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key, _certificate(_name("Fabrikam Sweep CA"), key.public_key(), _name("Fabrikam Sweep CA"), key, ca=True)


@functools.lru_cache(maxsize=None)
def _leaf_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def issued(public_key: Any, subject: x509.Name, names: tuple[str, ...]) -> tuple[x509.Certificate, str]:
    """A certificate from the test's CA and the PEM of it with its chain."""
    ca_key, ca = _ca()
    leaf = _certificate(subject, public_key, ca.subject, ca_key, ca=False, names=names)
    return leaf, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca)).decode("ascii")


def csr_pem(name: str) -> str:
    request = (x509.CertificateSigningRequestBuilder().subject_name(_name(name))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(_leaf_key(), hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


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


def export(server: str, subject: str, **extra: Any) -> Setup:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        return Start(fleet, server, {"thumbprint": thumbprint_of(fleet, server, subject), "password": PASSWORD,
                                     "dest": str(root / "out.pfx"), **extra, **ledger_options(root, sinks)})
    return setup


def services(server: str, subject: str, names: list[str], **extra: Any) -> Setup:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        return Start(fleet, server, {"thumbprint": thumbprint_of(fleet, server, subject), "services": names,
                                     **extra, **ledger_options(root, sinks)})
    return setup


def remove(server: str, subject: str, store: str = "My", **extra: Any) -> Setup:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        return Start(fleet, server, {"thumbprint": thumbprint_of(fleet, server, subject, store), **extra,
                                     **ledger_options(root, sinks)})
    return setup


def remove_named(thumbprint: Callable[[dict[str, Any]], str], **extra: Any) -> Callable[[str, pathlib.Path, Sinks],
                                                                                        Start]:
    """Remove from ex3 the certificate ``thumbprint`` picks from the lab's dump."""
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        return Start(fleet, "ex3", {"thumbprint": thumbprint(fleet.dump()), **extra, **ledger_options(root, sinks)})
    return setup


def remove_absent(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    return Start(lab(scenario), "ex1", {"thumbprint": "AB" * 20, **ledger_options(root, sinks)})


def auth(server: str, **extra: Any) -> Setup:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        return Start(lab(scenario), server, {**extra, **ledger_options(root, sinks)},
                     placeholders={"<Thumbprint returned by step new>": lambda real: real["thumbprint"]})
    return setup


def adcs(template: str, server: str = "ex1") -> Setup:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        fleet = lab(scenario)
        (root / "mail.csr").write_text(csr_pem("mail.contoso.lab"), encoding="ascii")
        return Start(fleet, server, {
            "csr_path": str(root / "mail.csr"), "ca_config": fleet.dump()["organization"]["ca"]["config"],
            "template": template, "certificate_path": str(root / "mail.pem"), "chain_path": str(root / "chain.pem"),
            **ledger_options(root, sinks)})
    return setup


def record(action: str, **extra: Any) -> Setup:
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


def request_key_without_csr(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """The controller's key exists (a run that stopped before the CSR was written): it is reused."""
    start = request_controller_mode(scenario, root, sinks)
    key_path = pathlib.Path(start.args["private_key_path"])
    key_path.write_bytes(_leaf_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    key_path.chmod(0o600)
    return start


def request_replace_bad_key(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """A private_key_path that holds no key, replaced with force."""
    start = request_controller_mode(scenario, root, sinks)
    key_path = pathlib.Path(start.args["private_key_path"])
    key_path.write_text("not a key\n", encoding="ascii")
    key_path.chmod(0o600)
    start.args["force"] = True
    return start


def export_over(existing: str, **extra: Any) -> Setup:
    """dest already holds a PFX: another certificate (``existing="other"``, with force) or the same certificate
    with the other encryption (``existing="same"``)."""
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        start = export("ex1", "CN=mail.contoso.lab", **extra)(scenario, root, sinks)
        if existing == "other":
            key = _leaf_key()
            leaf = issued(key.public_key(), _name("old.contoso.lab"), ("old.contoso.lab",))[0]
            data = _pfx.build_pfx(_pfx.CertificateBundle(leaf, key, (), "pfx"), PASSWORD, encryption="modern")
        else:
            LabHost(start.fleet, start.host).run(certificate_export.ActionModule, {
                **start.args, "encryption": "modern", "ledger": None, "ledger_webhook": None})
            data = pathlib.Path(start.args["dest"]).read_bytes()
        pathlib.Path(start.args["dest"]).write_bytes(data)
        pathlib.Path(start.args["dest"]).chmod(0o600)
        return start
    return setup


def services_wildcard(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """The dag scenario with test_certificate_services' extra certificates on ex1: a wildcard for IMAP and POP."""
    del scenario
    fleet = Fleet.from_scenario(services_scenario(), now=NOW)
    return Start(fleet, "ex1", {"thumbprint": thumbprint_of(fleet, "ex1", "CN=*.contoso.lab"),
                                "services": ["IMAP", "POP"], "x509_certificate_name": "IMAP.contoso.lab",
                                **ledger_options(root, sinks)})


def services_renewed(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """The renewed SAN certificate of test_certificate_services' scenario takes every service from the old one."""
    del scenario
    fleet = Fleet.from_scenario(services_scenario(), now=NOW)
    (new,) = [c["thumbprint"] for c in fleet.dump()["servers"]["ex1"]["certificates"]["My"]
              if c["friendly_name"] == "mail 2027"]
    return Start(fleet, "ex1", {"thumbprint": new, "services": ["IIS", "SMTP", "IMAP", "POP"],
                                "iis_restart": "iisreset", **ledger_options(root, sinks)})


def auth_after(days: float, **extra: Any) -> Setup:
    """The dag scenario's Auth certificate, ``days`` later by the lab's clock (after a staging run if ``staged``)."""
    staged = extra.pop("staged", False)

    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        start = auth("ex1", **extra)(scenario, root, sinks)
        if staged:
            result = LabHost(start.fleet, "ex1").run(auth_certificate.ActionModule, {})
            assert result.get("failed") is not True, result.get("msg")
        start.fleet.advance_clock(days * 86400)
        return start
    return setup


def adcs_approved(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """A request pending at the CA (submitted by an earlier run) that the CA administrator has since approved."""
    start = adcs("ExchangeManual")(scenario, root, sinks)
    earlier = LabHost(start.fleet, "ex1").run(adcs_request.ActionModule, {
        key: value for key, value in start.args.items() if key in ("csr_path", "ca_config", "template")})
    assert earlier["status"] == "pending", earlier
    start.fleet.ca_decide(earlier["request_id"], approve=True)
    return start


def report_with_ledger(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """Only two formats, into a directory that holds last week's files, with the ledger's stories."""
    start = report(scenario, root, sinks)
    ledger = root / "ledger.jsonl"
    LabHost(start.fleet, "ex1").run(ledger_record.ActionModule, {
        "ledger": str(ledger), "action": "renewal_done", "run_id": "run-0",
        "after": {"identity": "id-3f9a1b2c4d5e", "thumbprint": "CD" * 20}})
    dest = pathlib.Path(start.args["dest"])
    dest.mkdir()
    (dest / "exchange_pki_report.md").write_text("# last week\n", encoding="utf-8")
    start.args.update(formats=["markdown", "csv"], ledger=str(ledger))
    return start


def status_after_run(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """After a renewal run that failed on one server: the run's results and an existing metrics file."""
    start = status(scenario, root, sinks)
    pathlib.Path(start.args["metrics_path"]).write_text("# an older exposition\n", encoding="utf-8")
    start.args.update(run={"outcome": "failed"}, stalled_after="1d", failed_attempts=1)
    return start


def after_a_run(base: Setup, module: str, path_option: str,
                change: Callable[[pathlib.Path], None]) -> Setup:
    """``base``'s task already ran for real, then someone changed the file ``path_option`` names (or the file of
    that name in the directory it names) with ``change``."""
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        start = base(scenario, root, sinks)
        quiet = {**start.args, "ledger_webhook": None} if "ledger_webhook" in start.args else start.args
        done = LabHost(start.fleet, start.host).run(PLUGINS[module].ActionModule, quiet, task_vars=start.task_vars)
        assert done.get("failed") is not True, done.get("msg")
        change(pathlib.Path(start.args[path_option]))
        return start
    return setup


def loosened(path: pathlib.Path) -> None:
    path.chmod(0o644)


def tightened(path: pathlib.Path) -> None:
    path.chmod(0o600)


def overwritten(path: pathlib.Path) -> None:
    path.write_text("someone else's text\n", encoding="ascii")


def report_file_tightened(dest: pathlib.Path) -> None:
    (dest / "exchange_pki_report.csv").chmod(0o600)


def report_file_deleted(dest: pathlib.Path) -> None:
    (dest / "exchange_pki_report.json").unlink()


def auth_unreachable(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """ex3 cannot be reached; the play says to go on without it."""
    start = auth("ex1", ignore_unreachable=True)(scenario, root, sinks)
    start.fleet.set_unreachable("ex3", True)
    return start


def remove_request(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """broken's ex1 holds a pending request made 60 days ago and never completed."""
    fleet = lab(scenario)
    return Start(fleet, "ex1", {"thumbprint": thumbprint_of(fleet, "ex1", "CN=mail.contoso.lab", "REQUEST"),
                                **ledger_options(root, sinks)})


def request_other_friendly_name(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    start = request_existing(scenario, root, sinks)
    start.args["friendly_name"] = "mail 2027"
    return start


def ledger_nowhere(base: Setup) -> Setup:
    """``base`` with a ledger in a directory that does not exist: the record could never be written, so the task
    must fail before it changes anything, and check mode must say so too."""
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        start = base(scenario, root, sinks)
        start.args["ledger"] = str(root / "no-such-directory" / "ledger.jsonl")
        return start
    return setup


def with_args(base: Setup, **extra: Any) -> Setup:
    """``base`` with other values for some options."""
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        start = base(scenario, root, sinks)
        start.args.update(extra)
        return start
    return setup


def import_pfx_on(server: str, **extra: Any) -> Setup:
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        start = import_pfx(scenario, root, sinks)
        start.args.update(extra)
        return dataclasses.replace(start, host=server)
    return setup


def imported_then(base: Setup, **extra: Any) -> Setup:
    """``base``'s import already ran for real; the task now comes again with other values for ``extra``."""
    def setup(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
        start = base(scenario, root, sinks)
        done = LabHost(start.fleet, start.host).run(certificate_import.ActionModule, {
            **start.args, "ledger": None, "ledger_webhook": None})
        assert done.get("failed") is not True, done.get("msg")
        start.args.update(extra)
        return start
    return setup


def adcs_by_request_id(scenario: str, root: pathlib.Path, sinks: Sinks) -> Start:
    """Retrieval by the request id alone (no CSR) of a request the CA administrator approved, from another host."""
    start = adcs_approved(scenario, root, sinks)
    (request_id,) = [entry["id"] for entry in start.fleet.dump()["organization"]["ca"]["requests"]]
    args = {key: value for key, value in start.args.items() if key not in ("csr_path", "template")}
    return dataclasses.replace(start, host="ex2", args={**args, "request_id": request_id})


#: The documented exceptions, quoted from the modules' DOCUMENTATION.
LEDGER_RECORD_APPENDS = ("ledger_record: 'Appends one record to the audit ledger' at every run (the record of what "
                         "a play decided), so every real run changes the ledger and a check-mode run predicts that.")
ADCS_SUBMITS_ONLY_FOR_REAL = ("adcs_request check_mode: 'A submission is never sent in check mode; the task predicts "
                              "V(changed=true) and RV(status) is V(null).' So check mode's diff cannot know the "
                              "request id or the CA's answer: its after says where the CSR would be submitted.")
AUTH_RETIRED_LATER = ("auth_certificate remove_expired_retired: 'While a certificate is the previous one Exchange may "
                      "still validate tokens signed with it, so it stays; the run that clears it leaves it, and a "
                      "later run removes it.' After the emergency replacement the expired former certificate is "
                      "removed by the next run.")
FLEET_REPORT_REWRITES = ("fleet_report notes: 'Every file says when it was generated (the time of this run, or O(now)) "
                         "[...] those lines do not count as a change. Re-running over the same facts rewrites the "
                         "files with the new generation time and reports RV(changed=false)'")
RENEWAL_STATUS_RUN_ENDS_NOW = ("docs/renewal-status.md: 'exchange_pki_renewal_run_timestamp_seconds | gauge | when the "
                               "run ended', watched by 'expr: time() - exchange_pki_renewal_run_timestamp_seconds > 2 "
                               "* 86400' (ExchangeCertificateRenewalNotRunning). renewal_status ends a run at O(now), "
                               "the controller's time by default: each later run writes its own end.")
ALERT_EVERY_RUN = ("fleet_alert notes: 'An alert is sent at every run that finds a triggering finding; schedule the "
                   "play (for example an AWX schedule) at the rate you want to be reminded.'")


@dataclasses.dataclass(frozen=True)
class Case:
    module: str
    scenario: str
    label: str
    setup: Setup
    #: step -> the documented reason it does not hold (the step then asserts what the documentation says)
    documented: Mapping[str, str] = dataclasses.field(default_factory=dict)
    fails: bool = False  # the task is refused (in check mode and for real alike)
    #: for a documented ``predict``: check mode's diff["after"] from the start and the real run's result
    predicted_after: Callable[[Start, dict[str, Any]], Any] | None = None
    #: for a documented ``again``: asserts what the documentation says the second run does
    again_does: Callable[[Observation], None] | None = None
    #: how far the controller's clock moves before each step (the task then has no ``now``): a play run later
    tick: datetime.timedelta | None = None

    @property
    def id(self) -> str:
        return f"{self.module}-{self.scenario}-{self.label}"


def appends_one_record(observed: Observation) -> None:
    """The lab is untouched; the ledger has one more line, and the ledger's webhook one more record."""
    assert observed.result["changed"] is True, LEDGER_RECORD_APPENDS
    assert observed.dump_after == observed.dump_before
    before, after = observed.files_before["ledger.jsonl"][2], observed.files_after["ledger.jsonl"][2]
    assert after.startswith(before) and after[len(before):].count(b"\n") == 1
    assert [a - b for a, b in zip(observed.deliveries_after, observed.deliveries_before)] == [0, 0, 1, 1]


def alerts_again(observed: Observation) -> None:
    """The lab and the files are untouched; one more mail and one more webhook post."""
    assert observed.result["changed"] is True, ALERT_EVERY_RUN
    assert observed.dump_after == observed.dump_before and observed.files_after == observed.files_before
    assert [a - b for a, b in zip(observed.deliveries_after, observed.deliveries_before)] == [1, 1, 1, 1]


def removes_the_former(observed: Observation) -> None:
    """The only change is the removal of the former (expired, retired) Auth certificate from every server."""
    assert observed.result["changed"] is True, AUTH_RETIRED_LATER
    assert observed.result["actions"] == ["removed"]
    new = observed.dump_before["mutations"]
    made = observed.dump_after["mutations"][len(new):]
    assert made and {entry["operation"] for entry in made} == {"Remove-ExchangeCertificate"}


def changed_lines(observed: Observation) -> list[bytes]:
    """The lines that differ between the files before and after a step (same names and modes required)."""
    before, after = observed.files_before, observed.files_after
    assert sorted(before) == sorted(after) and all(before[n][:2] == after[n][:2] for n in before)
    lines = []
    for name in before:
        if before[name][2] != after[name][2]:
            old, new = before[name][2].splitlines(), after[name][2].splitlines()
            assert len(old) == len(new), name
            lines += [line for pair in zip(old, new) if pair[0] != pair[1] for line in pair]
    return lines


def rewrites_the_generation_time(observed: Observation) -> None:
    """changed=false; the files are rewritten and only the lines that say when they were generated differ."""
    assert observed.result["changed"] is False, FLEET_REPORT_REWRITES
    assert observed.dump_after == observed.dump_before and observed.deliveries_after == observed.deliveries_before
    lines = changed_lines(observed)
    assert lines and all(b"generated" in line.lower() for line in lines), lines


def writes_the_run_time(observed: Observation) -> None:
    """The textfile changes in the two series of when the run ended and how long it took, nothing else."""
    assert observed.result["changed"] is True, RENEWAL_STATUS_RUN_ENDS_NOW
    assert observed.dump_after == observed.dump_before and observed.deliveries_after == observed.deliveries_before
    lines = changed_lines(observed)
    assert lines and all(line.startswith((b"exchange_pki_renewal_run_timestamp_seconds ",
                                          b"exchange_pki_renewal_run_duration_seconds ")) for line in lines), lines


ADCS_SUBMISSION: dict[str, Any] = {
    "documented": {"predict": ADCS_SUBMITS_ONLY_FOR_REAL},
    "predicted_after": lambda start, real: {**real["diff"]["after"], "request_id": None,
                                            "status": f"submitted to {start.args['ca_config']}"},
}

CASES = sorted([
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
    Case("certificate_request", "dag", "controller-key-reused", request_key_without_csr),
    Case("certificate_request", "single", "controller-bad-key-forced", request_replace_bad_key),
    Case("certificate_export", "dag", "over-another-forced", export_over("other", force=True)),
    Case("certificate_export", "dag", "same-other-encryption", export_over("same", encryption="legacy")),
    Case("certificate_services", "dag", "wildcard-imap-pop", services_wildcard),
    Case("certificate_services", "dag", "renewed-takes-all", services_renewed),
    Case("certificate_services", "dag", "internal-transport", services(
        "ex2", "CN=mail.contoso.lab", ["SMTP"], replace_internal_transport=True)),
    Case("certificate_remove", "broken", "referenced-forced", remove("ex1", "CN=mail.contoso.lab", force=True)),
    Case("auth_certificate", "dag", "emergency", auth_after(46, state="replaced"),
         documented={"again": AUTH_RETIRED_LATER}, again_does=removes_the_former),
    Case("auth_certificate", "dag", "publish-due", auth_after(50 / 24, staged=True)),
    Case("auth_certificate", "dag", "clear-published", auth_after(64 / 24, staged=True)),
    Case("adcs_request", "single", "approved-retrieved", adcs_approved),
    Case("fleet_report", "dag", "two-formats-ledger", report_with_ledger),
    Case("renewal_status", "dag", "after-failed-run", status_after_run),
    Case("certificate_request", "dag", "controller-key-loose-mode", after_a_run(
        request_controller_mode, "certificate_request", "private_key_path", loosened)),
    Case("certificate_request", "single", "csr-file-overwritten", after_a_run(
        request_server_mode, "certificate_request", "csr_path", overwritten)),
    Case("certificate_request", "dag", "controller-csr-overwritten", after_a_run(
        request_controller_mode, "certificate_request", "csr_path", overwritten)),
    Case("certificate_export", "dag", "dest-loose-mode", after_a_run(
        export("ex1", "CN=mail.contoso.lab"), "certificate_export", "dest", loosened)),
    Case("adcs_request", "dag", "certificate-file-overwritten", after_a_run(
        adcs("WebServer"), "adcs_request", "certificate_path", overwritten)),
    Case("adcs_request", "dag", "chain-file-overwritten", after_a_run(
        adcs("WebServer"), "adcs_request", "chain_path", overwritten)),
    Case("fleet_report", "dag", "file-mode-tightened", after_a_run(
        report, "fleet_report", "dest", report_file_tightened)),
    Case("fleet_report", "dag", "file-deleted", after_a_run(report, "fleet_report", "dest", report_file_deleted)),
    Case("renewal_status", "dag", "metrics-mode-tightened", after_a_run(
        status, "renewal_status", "metrics_path", tightened)),
    Case("renewal_status", "dag", "metrics-overwritten", after_a_run(
        status, "renewal_status", "metrics_path", overwritten)),
    Case("auth_certificate", "dag", "one-unreachable", auth_unreachable),
    Case("auth_certificate", "dag", "unreachable-refused", with_args(auth_unreachable, ignore_unreachable=False),
         fails=True),
    Case("certificate_remove", "broken", "pending-request", remove_request),
    Case("certificate_remove", "broken", "cluster-refused", remove("ex1", "CN=CLIUSR", "PKU2U", force=True),
         fails=True),
    Case("certificate_export", "broken", "key-not-exportable", export("ex1", "CN=owa.contoso.lab"), fails=True),
    Case("certificate_services", "broken", "no-back-end-2016", services(
        "ex3", "CN=webmail.contoso.lab", ["IIS", "SMTP", "IMAP", "POP"], replace_internal_transport=True)),
    Case("certificate_request", "broken", "pending-other-friendly-name", request_other_friendly_name),
    Case("fleet_report", "dag", "an-hour-apart", report, tick=HOUR, documented={"again": FLEET_REPORT_REWRITES},
         again_does=rewrites_the_generation_time),
    Case("renewal_status", "dag", "an-hour-apart", status, tick=HOUR, again_does=writes_the_run_time,
         documented={"again": RENEWAL_STATUS_RUN_ENDS_NOW, "check_after": RENEWAL_STATUS_RUN_ENDS_NOW}),
    Case("renewal_status", "broken", "a-minute-apart", status_after_run, tick=MINUTE, again_does=writes_the_run_time,
         documented={"again": RENEWAL_STATUS_RUN_ENDS_NOW, "check_after": RENEWAL_STATUS_RUN_ENDS_NOW}),
    Case("fleet_alert", "single", "an-hour-apart", alert, tick=HOUR),
    Case("certificate_request", "single", "ledger-nowhere", ledger_nowhere(request_server_mode), fails=True),
    Case("certificate_import", "dag", "ledger-nowhere", ledger_nowhere(import_completing), fails=True),
    Case("certificate_export", "dag", "ledger-nowhere", ledger_nowhere(export("ex1", "CN=mail.contoso.lab")),
         fails=True),
    Case("certificate_services", "broken", "ledger-nowhere", ledger_nowhere(services(
        "ex1", "CN=fortyfive.contoso.lab", ["IIS", "IMAP"])), fails=True),
    Case("certificate_remove", "broken", "ledger-nowhere", ledger_nowhere(remove("ex1", "CN=legacy.contoso.lab")),
         fails=True),
    Case("auth_certificate", "dag", "ledger-nowhere", ledger_nowhere(auth("ex1")), fails=True),
    Case("adcs_request", "dag", "ledger-nowhere", ledger_nowhere(adcs("WebServer")), fails=True),
    Case("ledger_record", "dag", "ledger-nowhere", ledger_nowhere(record("renewal_done")), fails=True),
    Case("adcs_request", "dag", "by-request-id", adcs_by_request_id),
    Case("certificate_import", "dag", "modern-pfx-to-2016", import_pfx_on("ex4", friendly_name="mail 2027")),
    Case("certificate_import", "dag", "already-there-other-name", imported_then(import_pfx_on("ex1"),
                                                                                friendly_name="mail 2028")),
    Case("certificate_remove", "broken", "internal-transport-forced", remove_named(
        lambda dump: dump["servers"]["ex3"]["internal_transport_thumbprint"], force=True)),
    Case("certificate_remove", "broken", "auth-next-refused", remove_named(
        lambda dump: dump["organization"]["auth_config"]["NextCertificateThumbprint"]), fails=True),
    Case("certificate_services", "dag", "names-in-any-case", services(
        "ex2", "CN=mail.contoso.lab", ["smtp", "IIS", "iis", "Imap"], replace_internal_transport=True)),
    Case("certificate_export", "single", "return-content",
         export("ex1", "CN=mail.contoso.lab", return_content=True, target_versions=["2016", "2019"])),
    Case("certificate_request", "broken", "bigger-key-than-pending", with_args(request_existing, key_size=4096)),
    Case("auth_certificate", "dag", "named-servers", auth("ex1", servers=["ex1", "ex2", "ex3", "ex4"])),
    Case("adcs_request", "dag", "auto-issued", adcs("WebServer"), **ADCS_SUBMISSION),
    Case("adcs_request", "single", "manual-pending", adcs("ExchangeManual"), **ADCS_SUBMISSION),
    Case("adcs_request", "broken", "from-ex2", adcs("WebServer", "ex2"), **ADCS_SUBMISSION),
    Case("ledger_record", "dag", "renewal-done", record("renewal_done", run_id="run-1"),
         documented={"again": LEDGER_RECORD_APPENDS, "check_after": LEDGER_RECORD_APPENDS},
         again_does=appends_one_record),
    Case("ledger_record", "broken", "renewal-failed", record("renewal_failed", result="failed", server="EX2",
                                                             message="the probe saw the old certificate"),
         documented={"again": LEDGER_RECORD_APPENDS, "check_after": LEDGER_RECORD_APPENDS},
         again_does=appends_one_record),
    Case("fleet_report", "dag", "all-formats", report),
    Case("fleet_report", "broken", "all-formats", report),
    Case("fleet_report", "single", "all-formats", report),
    Case("fleet_alert", "dag", "critical", alert,
         documented={"again": ALERT_EVERY_RUN, "check_after": ALERT_EVERY_RUN}, again_does=alerts_again),
    Case("fleet_alert", "broken", "critical", alert,
         documented={"again": ALERT_EVERY_RUN, "check_after": ALERT_EVERY_RUN}, again_does=alerts_again),
    Case("fleet_alert", "single", "nothing-critical", alert),
    Case("renewal_status", "dag", "metrics", status),
    Case("renewal_status", "broken", "metrics", status),
    Case("renewal_status", "single", "metrics", status),
], key=lambda case: case.module)  # each module's cases together, in the order written


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
    result = host.run(PLUGINS[case.module].ActionModule, start.args, check_mode=check_mode, diff=True,
                      task_vars=start.task_vars, action=f"exchange.pki.{case.module}")
    return Observation(result, dump_before, start.fleet.dump(), files_before, files(root), deliveries_before,
                       sinks.deliveries())


_JOURNEYS: dict[str, Journey] = {}


def journey(case: Case, directories: pytest.TempPathFactory, sinks: Sinks,
            clock: Callable[[datetime.timedelta], datetime.datetime]) -> Journey:
    """The case's four runs, in order, from one starting state (run once per worker)."""
    if case.id not in _JOURNEYS:
        root = directories.mktemp(case.id)
        start = case.setup(case.scenario, root, sinks)
        steps = {}
        for number, step in enumerate(STEPS, start=1):
            if case.tick is not None:
                start.args.pop("now", None)
                clock(case.tick * number)
            steps[step] = _observe(case, start, root, sinks, check_mode=step.startswith("check"))
        _JOURNEYS[case.id] = Journey(start, steps)
    return _JOURNEYS[case.id]


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    """One SMTP server and one webhook for the file (each step compares their counts before and after it)."""
    with smtp_sink() as smtp, http_sink() as hook:
        yield Sinks(smtp, hook)


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


@pytest.mark.parametrize("step", STEPS)
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_contract(case: Case, step: str, tmp_path_factory: pytest.TempPathFactory, sinks: Sinks,
                  controller_clock: Callable[[datetime.timedelta], datetime.datetime]) -> None:
    trip = journey(case, tmp_path_factory, sinks, controller_clock)
    observed = trip.steps[step]
    result = ok(observed, case, step)
    reason = case.documented.get(step)

    if case.fails:  # refused alike in every step, with the same message, and nothing changes
        assert result["msg"] == trip.steps["check"].result["msg"], f"{step}: refused with another message"
        changes_nothing(observed, step)
        return
    if step == "check":
        changes_nothing(observed, step)
    elif step == "predict":
        check = trip.steps["check"].result
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
            assert case.again_does is not None, reason
            case.again_does(observed)
            return
        assert result["changed"] is False, "again: a second real run reported a change"
        changes_nothing(observed, step)
    else:
        changes_nothing(observed, step)
        if reason:
            assert result["changed"] is True, reason
            return
        assert result["changed"] is False, "check_after: check mode after the real run predicts a change"
