# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.renew` (inventory -> renewal_plan -> the renewal role -> inventory -> report) against
the `dag` lab, with the adcs backend and the auto-approving WebServer template.

- End to end (a `dag` variant whose Default Frontend receive connectors name the mail certificate, so that SMTP
  STARTTLS serves it as HTTPS does): the shared certificate due in 20 days is issued once and the same new
  certificate serves HTTPS and SMTP on ex1-ex4 (real TLS), ex4 (Exchange 2016) imported the legacy PFX, the old
  certificate is gone, the internal transport certificates are unchanged, and a rerun changes nothing.
- Always serving (safety invariant 2): a thread probes every server's HTTPS and SMTP endpoints throughout the run
  and records each served certificate; none was missing, expired or for the wrong name.
- Faults (invariant 3), each on a fresh `dag` lab: Enable-ExchangeCertificate failing or the connection dropping on
  ex2 rolls ex2 back (verified), leaves ex3 untouched, lets ex4's group finish, and writes a renewal_failed record;
  after the fault is cleared a rerun converges (the failing Enable-ExchangeCertificate: in test_renewal_status.py,
  whose two runs are exactly those, with the same checks). An unreachable member blocks its group in the plan.
- Check mode changes nothing and prints the plan; a bad policy value is named and nothing changes.
Every check reads the lab's dump, the ledger or a real TLS handshake.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records

from .conftest import ANSIBLE_PLAYBOOK, SCENARIOS, Lab, ansible_env, start_lab

MEMBERS = ("ex1", "ex2", "ex3", "ex4")
MAIL = "mail.contoso.lab"


# --- the lab and the run --------------------------------------------------------------------------------------


def frontend_scenario(directory: Path) -> Path:
    """dag.yml with every server's Default Frontend connector naming the mail certificate (STARTTLS offers it)."""
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    for server in scenario["servers"]:
        server["receive_connectors"] = {"Default Frontend": {"tls_certificate": "mail"}}
    path = directory / "dag-frontend.yml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    return path


def prepare(lab: Lab, work: Path) -> None:
    """The run's variables and an inventory that points the probes at the lab's ports."""
    (work / "probe_ports.yml").write_text(
        'exchange:\n  vars:\n    renewal_probe_ports: "{{ exchange_pki_lab_ports }}"\n', encoding="utf-8")
    variables = {
        "renewal_policy": {"backends": [{"match": {}, "backend": "adcs", "options": {
            "ca_config": lab.dump()["organization"]["ca"]["config"], "template": "WebServer"}}]},
        "renewal_ledger": str(work / "ledger.jsonl"),
        "renewal_state_dir": str(work / "state"),
        "renewal_ca_path": str(lab.state_dir / "ca.pem"),
        "renew_report_dest": str(work / "report"),
    }
    (work / "renewal.yml").write_text(yaml.safe_dump(variables), encoding="utf-8")


def renew(lab: Lab, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_PLAYBOOK is not None
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(lab.inventory), "-i", str(work / "probe_ports.yml"),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{work / 'renewal.yml'}",
         "exchange.pki.renew", *extra],
        cwd=work, env=ansible_env(), capture_output=True, text=True, check=False, timeout=900,
    )


def mail_certificates(lab: Lab) -> dict[str, list[dict[str, Any]]]:
    dump = lab.dump()
    return {server: [c for c in dump["servers"][server]["certificates"]["My"] if f"CN={MAIL}" in c["subject"]]
            for server in MEMBERS}


def outcomes(work: Path) -> list[dict[str, Any]]:
    return [r.as_dict() for r in read_records(work / "ledger.jsonl") if r.module == "exchange.pki.ledger_record"]


# --- real TLS ---------------------------------------------------------------------------------------------------


def _context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def served(port: int, *, smtp: bool = False) -> bytes:
    """The DER certificate a real handshake receives on 127.0.0.1:port (HTTPS with SNI, or SMTP STARTTLS)."""
    if smtp:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as session:
            session.starttls(context=_context())
            der = session.sock.getpeercert(binary_form=True)
    else:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                _context().wrap_socket(raw, server_hostname=MAIL) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der, "no certificate was served"
    return der


def thumbprint(der: bytes) -> str:
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the Windows thumbprint


def served_thumbprint(port: int, *, smtp: bool = False) -> str:
    return thumbprint(served(port, smtp=smtp))


class Prober(threading.Thread):
    """Probes every server's HTTPS and SMTP endpoints in a loop; each sample is what one handshake received."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.ports = lab.endpoints()["servers"]
        self.fqdn = {server: f"{server}.contoso.lab" for server in MEMBERS}
        self.samples: list[dict[str, Any]] = []
        self.halt = threading.Event()

    def sample(self, server: str, endpoint: str) -> dict[str, Any]:
        record: dict[str, Any] = {"server": server, "endpoint": endpoint}
        try:
            der = served(self.ports[server][endpoint], smtp=endpoint == "smtp")
        except (OSError, smtplib.SMTPException, AssertionError) as error:
            return {**record, "problem": f"missing: {type(error).__name__}: {error}"}
        certificate = x509.load_der_x509_certificate(der)
        names = [name.lower() for name in certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)]
        wanted = {MAIL} if endpoint == "https" else {MAIL, self.fqdn[server]}
        now = datetime.datetime.now(datetime.timezone.utc)
        problem = None
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            problem = "expired or not yet valid"
        elif not wanted & set(names):
            problem = f"wrong name: {names}"
        return {**record, "thumbprint": thumbprint(der), "problem": problem}

    def run(self) -> None:
        while not self.halt.is_set():
            for server in MEMBERS:
                for endpoint in ("https", "smtp"):
                    self.samples.append(self.sample(server, endpoint))

    def stop(self) -> list[dict[str, Any]]:
        self.halt.set()
        self.join(timeout=60)
        return self.samples


# --- end to end, always serving, rerun, check mode, bad policy ---------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    scenario = frontend_scenario(tmp_path_factory.mktemp("scenario"))
    started = start_lab(tmp_path_factory.mktemp("lab-renewal-role"), "--scenario", str(scenario))
    try:
        yield started
    finally:
        started.control("stop")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Path:
    directory = tmp_path_factory.mktemp("renew")
    prepare(lab, directory)
    return directory


@pytest.fixture(scope="module")
def before(lab: Lab) -> dict[str, Any]:
    dump = lab.dump()
    (old,) = {c["thumbprint"] for certificates in mail_certificates(lab).values() for c in certificates}
    return {"old": old, "internal": {s: dump["servers"][s]["internal_transport_thumbprint"] for s in MEMBERS}}


def test_check_mode_prints_the_plan_and_changes_nothing(lab: Lab, work: Path, before: dict[str, Any]) -> None:
    run = renew(lab, work, "--check")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "# Renewal plan" in run.stdout and "due 1" in run.stdout and before["old"] in run.stdout
    assert "1. ex1 → 2. ex2 → 3. ex3 → 4. ex4" in run.stdout
    assert lab.mutations() == []
    assert not (work / "ledger.jsonl").exists()


def test_a_bad_policy_value_is_named_and_nothing_changes(lab: Lab, work: Path) -> None:
    run = renew(lab, work, "-e", '{"renewal_policy": {"key_size": 1234, "backends": []}}')

    assert run.returncode != 0
    assert "key_size" in run.stdout
    assert lab.mutations() == []
    assert not (work / "ledger.jsonl").exists()


def test_renewed_once_and_served_everywhere_without_a_gap(lab: Lab, work: Path, before: dict[str, Any]) -> None:
    prober = Prober(lab)
    prober.start()
    try:
        run = renew(lab, work)
    finally:
        samples = prober.stop()

    assert run.returncode == 0, run.stdout + run.stderr
    mutations = lab.mutations()
    assert [m["operation"] for m in mutations].count("host.certreq_submit") == 1  # issued once
    certificates = mail_certificates(lab)
    (new,) = {c["thumbprint"] for certs in certificates.values() for c in certs}  # the old one is gone everywhere
    assert new != before["old"]
    dump = lab.dump()
    ports = lab.endpoints()["servers"]
    for server in MEMBERS:
        (certificate,) = certificates[server]
        assert {"IIS", "SMTP", "IMAP", "POP"} <= set(certificate["services"])
        assert dump["servers"][server]["internal_transport_thumbprint"] == before["internal"][server]
        assert served_thumbprint(ports[server]["https"]) == new
        assert served_thumbprint(ports[server]["smtp"], smtp=True) == new
    # ex4 runs Exchange 2016 on Windows Server 2016, which the lab (like Windows) lets import only a legacy PFX.
    assert [m for m in mutations if m["operation"] == "Import-ExchangeCertificate" and m["server"] == "ex4"]
    export = [r for r in read_records(work / "ledger.jsonl") if r.module == "exchange.pki.certificate_export"]
    assert [r.after.get("encryption") for r in export] == ["legacy"], [r.as_dict() for r in export]
    # Removals only after the last member of the group was bound (DAG1: ex1-ex3; then ex4 alone).
    operations = [(m["operation"], m["server"]) for m in mutations]
    last_enable_dag = max(i for i, (op, s) in enumerate(operations)
                          if op == "Enable-ExchangeCertificate" and s != "ex4")
    assert all(i > last_enable_dag for i, (op, s) in enumerate(operations)
               if op == "Remove-ExchangeCertificate" and s != "ex4")
    done = outcomes(work)
    assert [(r["action"], r["after"]["group"]) for r in done] == [("renewal_done", "DAG1"), ("renewal_done", "ex4")]
    assert all(r["after"]["thumbprint"] == new and r["run_id"] == r["after"]["plan_id"] for r in done)
    # Every record of the run names the plan: the modules' (ledger_run_id from renew.yml's module_defaults) too.
    assert {r.run_id for r in read_records(work / "ledger.jsonl")} == {done[0]["run_id"]}
    # Invariant 2: every handshake during the run received a valid certificate for the right name.
    assert len(samples) >= 40, len(samples)
    assert [s for s in samples if s["problem"]] == []
    seen = {(s["server"], s["endpoint"], s["thumbprint"]) for s in samples}
    assert {(server, "https", new) for server in MEMBERS} <= seen  # the probe watched the switch happen
    assert (work / "report" / "before").is_dir() and (work / "report" / "after").is_dir()
    removal = run.stdout.split("Remove the run directory with every PFX and key in it", 1)[1].split("TASK", 1)[0]
    assert "changed: [localhost]" in removal  # the 0700 run directory with the PFX is gone


def test_the_rerun_changes_nothing_and_plans_nothing(lab: Lab, work: Path) -> None:
    mutations = len(lab.mutations())
    ledger = (work / "ledger.jsonl").read_text(encoding="utf-8")

    run = renew(lab, work)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "due 0" in run.stdout
    assert len(lab.mutations()) == mutations
    assert (work / "ledger.jsonl").read_text(encoding="utf-8") == ledger


# --- faults on fresh labs ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def prepared_lab(tmp_path: Path, scenario: str = "dag") -> Iterator[tuple[Lab, Path]]:
    """A lab of its own for ``scenario`` (a name or a scenario file) and a work directory prepared for renew.yml
    (CA, policy); the lab is stopped afterwards."""
    started = start_lab(tmp_path / "lab", "--scenario", scenario)
    try:
        work = tmp_path / "work"
        work.mkdir()
        prepare(started, work)
        yield started, work
    finally:
        started.control("stop")


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    with prepared_lab(tmp_path) as started:
        yield started


def assert_rolled_back(lab: Lab, work: Path, old: str, run: subprocess.CompletedProcess[str]) -> str:
    """After a run in which Enable-ExchangeCertificate failed on ex2: ex2 is rolled back, ex3 untouched, ex4's group
    finished, one renewal_failed record names ex2 and the services step. Returns the new certificate's thumbprint."""
    ports = lab.endpoints()["servers"]
    assert run.returncode != 0
    touched = {m["server"] for m in lab.mutations()}
    assert "ex3" not in touched  # the rest of DAG1 is not touched (stop_on_failure group)
    certificates = mail_certificates(lab)
    new = next(c["thumbprint"] for c in certificates["ex4"])
    assert new != old and [c["thumbprint"] for c in certificates["ex4"]] == [new]  # ex4's group went on
    assert served_thumbprint(ports["ex4"]["https"]) == new
    assert served_thumbprint(ports["ex1"]["https"]) == new
    assert old in {c["thumbprint"] for c in certificates["ex1"]}  # DAG1 not verified everywhere: old one kept
    assert served_thumbprint(ports["ex2"]["https"]) == old  # rolled back
    ex2_old = next(c for c in certificates["ex2"] if c["thumbprint"] == old)
    assert {"IIS", "IMAP", "POP", "SMTP"} <= set(ex2_old["services"])
    assert [c["thumbprint"] for c in certificates["ex3"]] == [old]
    assert served_thumbprint(ports["ex3"]["https"]) == old
    failed = [r for r in outcomes(work) if r["action"] == "renewal_failed"]
    assert len(failed) == 1, outcomes(work)
    assert failed[0]["server"] == "EX2" and failed[0]["result"] == "failed"
    assert failed[0]["after"]["failed_host"] == "ex2" and failed[0]["after"]["step"] == "services"
    assert failed[0]["after"]["rolled_back"] is True and failed[0]["after"]["group"] == "DAG1"
    assert failed[0]["message"]
    return new


def assert_converged(lab: Lab, work: Path, new: str, again: subprocess.CompletedProcess[str]) -> None:
    """After the fault was cleared and a forced rerun: DAG1 finished with the certificate issued the first time."""
    ports = lab.endpoints()["servers"]
    assert again.returncode == 0, again.stdout + again.stderr
    converged = mail_certificates(lab)
    assert {c["thumbprint"] for certs in converged.values() for c in certs} == {new}
    for server in MEMBERS:
        assert served_thumbprint(ports[server]["https"]) == new
    assert [m["operation"] for m in lab.mutations()].count("host.certreq_submit") == 1  # not issued again
    assert [(r["action"], r["after"]["group"]) for r in outcomes(work)][-1] == ("renewal_done", "DAG1")


# Enable-ExchangeCertificate failing with an error on ex2 is the first run of test_renewal_status.py (the same lab,
# policy and fault, plus the alert and metrics it checks); it calls assert_rolled_back and assert_converged too.
@pytest.mark.parametrize("fault", [("--drop",)], ids=["connection_dropped"])
def test_a_failing_member_is_rolled_back_and_a_rerun_converges(fresh: tuple[Lab, Path], fault: tuple[str, ...]) -> None:
    lab, work = fresh
    (old,) = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}
    lab.control("fault", "--server", "ex2", "--operation", "Enable-ExchangeCertificate", *fault)

    run = renew(lab, work)

    new = assert_rolled_back(lab, work, old, run)

    lab.control("fault", "--server", "ex2", "--clear")
    again = renew(lab, work, "-e", "renewal_force=true")

    assert_converged(lab, work, new, again)


def test_an_unreachable_member_blocks_its_group(fresh: tuple[Lab, Path]) -> None:
    lab, work = fresh
    (old,) = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}
    lab.control("fault", "--server", "ex2", "--unreachable")

    run = renew(lab, work)

    assert "member ex2 could not be read" in run.stdout, run.stdout
    touched = {m["server"] for m in lab.mutations()}
    assert not touched & {"ex1", "ex2", "ex3"}, lab.mutations()
    assert all(c["thumbprint"] == old for s in ("ex1", "ex3") for c in mail_certificates(lab)[s])
    # The blocked item is not worked on at all: nothing issued, no outcome recorded.
    assert "host.certreq_submit" not in {m["operation"] for m in lab.mutations()}
    assert not (work / "ledger.jsonl").exists() or json.dumps(outcomes(work)).count("renewal_failed") == 0
