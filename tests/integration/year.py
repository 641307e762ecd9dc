# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled year: the collection's scheduled jobs run unattended against the lab while time passes.

Like an AWX schedule (or a workflow) that starts three job templates every run, each step of the year runs
``exchange.pki.inventory``, ``exchange.pki.renew`` and ``exchange.pki.auth_certificate`` as ansible-runner jobs
(tests/integration/awx_runner.py, the way AWX runs them) against a started lab. Before each step the driver moves
the lab clock (``python -m tests.lab clock --advance``) to the step's day and shifts the controller clock of the
jobs the same way with Debian's libfaketime (``LD_PRELOAD`` + ``FAKETIME`` in the jobs' envvars): the offset is the
lab's time minus the wall clock's, so the jobs' Python sees the lab's time (to the second, at the job's start).
What was found about libfaketime 0.9.10 (Debian 12) and Python 3.11 under ansible's forks: the forked workers (where
action plugins such as certificate_info compute days_remaining) and the module processes they start inherit the
preload and the offset, so every process of a job sees the same shifted time. The monotonic clock must stay faked
(libfaketime's default): with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` every ``time.sleep`` fails with EINVAL (Python
sleeps with an absolute ``clock_nanosleep`` on CLOCK_MONOTONIC, which libfaketime then shifts), and ansible's
strategy polls with ``time.sleep``. With it faked, a timed wait that runs out (``threading.Lock.acquire(timeout=)``,
``Thread.join(timeout=)``: glibc's ``sem_clockwait``, which libfaketime 0.9.10 does not wrap) waits for the offset
too; a wait that is woken in time (a joined thread that ends) is unaffected, which is all a healthy job does.
The jobs therefore run with a job timeout (ansible-runner's, in the unfaked test process).

After each step it records (:class:`Step`): every certificate as served over real TLS (HTTPS with SNI and SMTP
STARTTLS on every server, judged at the lab's time), every certificate in use as the inventory's facts show it
(the jsonfile fact cache of the inventory job, else its JSON report), the alerts a local webhook receiver got during
the step, the ledger records the step appended, the renewal metrics (Prometheus textfile) and each job's status.

Faults are injected and cleared with the lab's ``fault`` command at the start of the steps a :class:`Fault` names.
Nothing in a run is done by hand: no CA approval, no rerun, no forced renewal.

``python -m tests.integration.year --days 0,28,56 ...`` runs a year from the command line (for trying schedules).
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records

from .awx_runner import Job, run_job
from .conftest import Lab
from .test_renewal_role import served

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIL = "mail.contoso.lab"
LIBFAKETIME_GLOBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1")
JOBS = ("inventory", "renew", "auth")
PLAYBOOKS = {"inventory": "exchange.pki.inventory", "renew": "exchange.pki.renew",
             "auth": "exchange.pki.auth_certificate"}


def libfaketime() -> str | None:
    """The path of Debian's libfaketime (package faketime / libfaketime), None when it is not installed."""
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- the scenario ------------------------------------------------------------------------------------------------


def year_scenario(*, mail_days_left: int, validity_days: int, auth_days_left: int) -> dict[str, Any]:
    """A two-member DAG (ex1, ex2) sharing the mail certificate, which expires in ``mail_days_left`` days; the CA's
    auto-approving WebServer template issues for ``validity_days``; the Auth certificate expires in
    ``auth_days_left`` days. The cluster certificates outlive the year (nothing in Exchange renews them)."""
    server = {"certificates": [{"ref": "mail", "services": ["IMAP", "POP", "SMTP"], "exportable": True}],
              "iis": {"default_web_site": "mail", "back_end": "exchange"},
              "cliusr": {"not_before": "-30d", "not_after": "1000d"}}
    return {
        "description": "the scheduled year: a two-member DAG whose certificates expire within the year",
        "organization": {"name": "Contoso", "domain": "contoso.lab", "netbios": "CONTOSO", "domain_controller": "dc1"},
        "accounts": [{"username": "ansible", "password": "Ex-Lab-2026!", "exchange_admin": True}],
        "ca": {"host": "ca01", "name": "Contoso Lab Issuing CA",
               "templates": {"WebServer": {"approval": "auto", "validity": f"{validity_days}d"}}},
        "certificates": {"mail": {"subject": f"CN={MAIL}", "dns_names": [MAIL, f"autodiscover.{MAIL.split('.', 1)[1]}"],
                                  "not_before": f"-{validity_days - mail_days_left}d",
                                  "not_after": f"{mail_days_left}d"}},
        "auth": {"certificate": {"not_before": "-1700d", "not_after": f"{auth_days_left}d"}, "current": "auth"},
        "servers": [{"name": "ex1", "version": "2019-cu14", "site": "Site-A", **server},
                    {"name": "ex2", "version": "2019-cu15", "site": "Site-A", **server}],
        "dags": [{"name": "DAG1", "members": ["ex1", "ex2"], "witness": "fs1.contoso.lab"}],
    }


def adcs_policy(lab: Lab, *, renew_before_days: int) -> dict[str, Any]:
    """The renewal policy of the year: the lab's enterprise CA, its auto-approving WebServer template."""
    return {"renew_before_days": renew_before_days,
            "backends": [{"match": {}, "backend": "adcs", "options": {
                "ca_config": lab.dump()["organization"]["ca"]["config"], "template": "WebServer"}}]}


# --- the alert receiver ------------------------------------------------------------------------------------------


class AlertReceiver:
    """A local webhook (plain HTTP on 127.0.0.1) that records every JSON POST with the path it was sent to."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received
        self.lock = threading.Lock()
        lock = self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload: Any = json.loads(body)
                except ValueError:
                    payload = {"unparsed": body.decode("utf-8", "replace")}
                with lock:
                    received.append({"path": self.path, "payload": payload})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{path.lstrip('/')}"

    def __enter__(self) -> AlertReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def drain(self) -> list[dict[str, Any]]:
        with self.lock:
            taken = list(self.received)
            self.received.clear()
        return taken


# --- what a step records -----------------------------------------------------------------------------------------


@dataclass
class Fault:
    """A lab fault active for the runs of days ``start`` <= day < ``end`` (injected and cleared by the driver)."""

    start: int
    end: int
    server: str
    operation: str
    error: str

    def active(self, day: int) -> bool:
        return self.start <= day < self.end


@dataclass
class Served:
    server: str
    endpoint: str
    thumbprint: str
    subject: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    valid: bool  # at the lab's time of the step


@dataclass
class Step:
    day: int
    lab_now: datetime.datetime
    faketime: str
    faults: list[str]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> status, rc, seconds, stats keys
    served: list[Served] = field(default_factory=list)
    facts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # host -> certificates in use
    leftovers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # host -> the others (unused)
    facts_source: str = ""
    collected_at: dict[str, str] = field(default_factory=dict)  # host -> the facts' collected_at (controller time)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)  # the records this step appended
    metrics: dict[str, float] = field(default_factory=dict)  # 'name{labels}' -> value, after the renew job
    renew_stats: dict[str, Any] = field(default_factory=dict)  # the renew job's set_stats artifacts (AWX keeps them)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # the jobs' and the lab's CPU time during the step

    def problems(self) -> list[str]:
        """Every certificate served or in use that is not valid at the step's lab time."""
        found = [f"day {self.day}: {s.server} {s.endpoint} serves {s.subject} {s.thumbprint} valid "
                 f"{s.not_before:%Y-%m-%d}..{s.not_after:%Y-%m-%d}" for s in self.served if not s.valid]
        for host, certificates in self.facts.items():
            found += [f"day {self.day}: {host} uses {c['subject']} {c['thumbprint']} ({c['days_remaining']} days, "
                      f"not_after {c['not_after']})" for c in certificates
                      if c.get("days_remaining") is None or c["days_remaining"] < 0
                      or parse_time(c["not_after"]) < self.lab_now]
        return found

    def alert_severities(self) -> list[str]:
        return [a["payload"].get("severity", "?") for a in self.alerts]

    def ledger_actions(self) -> list[str]:
        return [r["action"] for r in self.ledger]


def in_use(certificate: dict[str, Any]) -> bool:
    """Whether something uses the certificate: an IIS binding, the internal transport, the Auth configuration, a
    connector, or an enabled service that can pick it (SMTP picks by name: a nameless certificate flagged for SMTP,
    such as a former Auth certificate, serves nothing)."""
    references = certificate.get("references") or []
    if any(reference.get("kind") != "exchange_service" for reference in references):
        return True
    return bool(certificate.get("services")) and bool(certificate.get("dns_names"))


# --- real TLS ----------------------------------------------------------------------------------------------------


def served_certificate(port: int, *, smtp: bool) -> x509.Certificate:
    return x509.load_der_x509_certificate(served(port, smtp=smtp))


def probe_served(lab: Lab, now: datetime.datetime) -> list[Served]:
    served = []
    for server, ports in sorted(lab.endpoints()["servers"].items()):
        for endpoint in ("https", "smtp"):
            certificate = served_certificate(ports[endpoint], smtp=endpoint == "smtp")
            der_hash = hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest().upper()  # noqa: S324
            served.append(Served(server, endpoint, der_hash, certificate.subject.rfc4514_string(),
                                 certificate.not_valid_before_utc, certificate.not_valid_after_utc,
                                 certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc))
    return served


def cpu_seconds(lab: Lab) -> float:
    """CPU seconds used so far by this process's finished children (the jobs' ansible-playbook and everything it
    started) plus the lab's daemon: the cost of the year without the other load of the machine."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = children.ru_utime + children.ru_stime
    try:
        pid = int((lab.state_dir / "lab.pid").read_text().strip())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        pass
    return total


# --- metrics -----------------------------------------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    """A Prometheus text file as {'name{label="v",...}': value} (labels sorted), with prometheus_client's parser."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


# --- the driver --------------------------------------------------------------------------------------------------


class Year:
    """Runs the scheduled jobs at the days of ``schedule`` (days since the lab started, ascending)."""

    def __init__(self, lab: Lab, work: Path, receiver: AlertReceiver, *, policy: dict[str, Any],
                 faults: Sequence[Fault] = (), forks: int = 5, jobs: Sequence[str] = JOBS,
                 auth_variables: dict[str, Any] | None = None, renew_variables: dict[str, Any] | None = None) -> None:
        self.lab = lab
        self.work = work
        self.receiver = receiver
        self.policy = policy
        self.faults = list(faults)
        self.forks = forks
        self.jobs = list(jobs)
        self.auth_variables = dict(auth_variables or {})
        self.renew_variables = dict(renew_variables or {})
        self.ledger = work / "ledger.jsonl"
        self.metrics_path = work / "metrics" / "exchange_pki_renewal.prom"
        self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
        self.day = 0
        self.steps: list[Step] = []
        self._injected: set[int] = set()
        self.library = libfaketime()
        if self.library is None:
            raise RuntimeError("libfaketime is not installed (Debian package faketime; make system-packages)")
        # ansible-runner finds ansible-playbook on PATH: the one beside this interpreter (the project's .venv).
        beside = Path(sys.executable).parent
        if (beside / "ansible-playbook").exists() and str(beside) not in os.environ["PATH"].split(os.pathsep):
            os.environ["PATH"] = f"{beside}{os.pathsep}{os.environ['PATH']}"
        self.inventory = work / "inventory"
        self.inventory.mkdir(parents=True, exist_ok=True)
        (self.inventory / "hosts.yml").write_text(lab.inventory.read_text(encoding="utf-8"), encoding="utf-8")
        (self.inventory / "probe_ports.yml").write_text(
            'exchange:\n  vars:\n    renewal_probe_ports: "{{ exchange_pki_lab_ports }}"\n', encoding="utf-8")

    # -- clocks --
    def lab_now(self) -> datetime.datetime:
        return parse_time(self.lab.dump()["clock"]["now"])

    def advance_to(self, day: int) -> datetime.datetime:
        if day < self.day:
            raise ValueError(f"the schedule goes back from day {self.day} to day {day}")
        if day > self.day:
            self.lab.control("clock", "--advance", f"{day - self.day}d")
            self.day = day
        return self.lab_now()

    def faketime(self, lab_now: datetime.datetime) -> str:
        """FAKETIME for the jobs: the lab's time minus the wall clock's, in seconds (libfaketime's "+N")."""
        offset = int((lab_now - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
        return f"{offset:+d}"

    # -- faults --
    def apply_faults(self, day: int) -> list[str]:
        """Inject the faults that start by ``day``, clear those that ended; the active ones, described."""
        ended = {f.server for f in self.faults if id(f) in self._injected and not f.active(day)}
        for server in sorted(ended):  # the lab clears every fault of a server at once
            self.lab.control("fault", "--server", server, "--clear")
            self._injected -= {id(f) for f in self.faults if f.server == server}
        for fault in self.faults:
            if fault.active(day) and id(fault) not in self._injected:
                self.lab.control("fault", "--server", fault.server, "--operation", fault.operation,
                                 "--error", fault.error)
                self._injected.add(id(fault))
        return [f"{f.server} {f.operation}: {f.error}" for f in self.faults if f.active(day)]

    # -- jobs --
    def common_vars(self) -> dict[str, Any]:
        return {"ansible_python_interpreter": sys.executable}

    def job_vars(self, name: str, step_dir: Path) -> dict[str, Any]:
        if name == "inventory":
            return {**self.common_vars(), "report_dest": str(step_dir / "report"), "report_show_summary": False}
        if name == "renew":
            return {**self.common_vars(), "renewal_policy": self.policy, "renewal_ledger": str(self.ledger),
                    "renewal_state_dir": str(self.work / "state"),
                    "renewal_ca_path": str(self.lab.state_dir / "ca.pem"), "renew_report": False,
                    **self.renew_variables}
        return {**self.common_vars(), "auth_certificate_ledger": str(self.ledger), **self.auth_variables}

    def run_jobs(self, step: Step, step_dir: Path) -> dict[str, Job]:
        envvars = {"LD_PRELOAD": self.library, "FAKETIME": step.faketime,
                   "ANSIBLE_FORKS": str(self.forks)}
        done = {}
        for name in self.jobs:
            started = time.monotonic()
            job = run_job(self.work / "jobs" / name, PLAYBOOKS[name], inventory=self.inventory,
                          extravars=self.job_vars(name, step_dir), envvars=envvars, forks=self.forks,
                          ident=f"day{step.day:03d}", timeout=900)
            step.jobs[name] = {"status": job.status, "rc": job.rc, "seconds": round(time.monotonic() - started, 1),
                               "stats": sorted(job.stats)}
            done[name] = job
        return done

    # -- recording --
    def record_facts(self, step: Step, inventory_job: Job | None, step_dir: Path) -> None:
        hosts = sorted(self.lab.endpoints()["servers"])
        facts = {}
        if inventory_job is not None:
            for host in hosts:
                cached = inventory_job.fact_cache(host).get("exchange_pki")
                if cached:
                    facts[host] = cached
        step.facts_source = "fact_cache" if len(facts) == len(hosts) else "report"
        if step.facts_source == "report":
            report_path = step_dir / "report" / "exchange_pki_report.json"
            if not report_path.exists():
                raise AssertionError(f"day {step.day}: the inventory job left no facts and no report")
            report = json.loads(report_path.read_text(encoding="utf-8"))
            facts = {host["host"]: host for host in report["hosts"]}
            step.collected_at = dict(report.get("collected_at") or {})
        else:
            step.collected_at = {host: facts[host].get("collected_at") for host in hosts}
        step.facts = {host: [c for c in value.get("certificates", []) if in_use(c)] for host, value in facts.items()}
        step.leftovers = {host: [c for c in value.get("certificates", []) if not in_use(c)]
                          for host, value in facts.items()}

    def record_ledger(self, step: Step, before: int) -> int:
        records = [r.as_dict() for r in read_records(self.ledger)] if self.ledger.exists() else []
        step.ledger = records[before:]
        return len(records)

    def run(self, schedule: Iterable[int], *, on_step: Any = None) -> list[Step]:
        ledger_count = len(list(read_records(self.ledger))) if self.ledger.exists() else 0
        for day in schedule:
            started = time.monotonic()
            cpu = cpu_seconds(self.lab)
            lab_now = self.advance_to(day)
            step = Step(day=day, lab_now=lab_now, faketime=self.faketime(lab_now), faults=self.apply_faults(day))
            step_dir = self.work / "steps" / f"day{day:03d}"
            step_dir.mkdir(parents=True, exist_ok=True)
            self.receiver.drain()
            jobs = self.run_jobs(step, step_dir)
            step.alerts = self.receiver.drain()
            step.served = probe_served(self.lab, lab_now)
            self.record_facts(step, jobs.get("inventory"), step_dir)
            if "renew" in jobs:
                step.renew_stats = jobs["renew"].stats
            ledger_count = self.record_ledger(step, ledger_count)
            if self.metrics_path.exists():
                step.metrics = parse_metrics(self.metrics_path.read_text(encoding="utf-8"))
            step.seconds = round(time.monotonic() - started, 1)
            step.cpu_seconds = round(cpu_seconds(self.lab) - cpu, 1)
            (step_dir / "step.json").write_text(json.dumps(step_summary(step), indent=1, default=str), encoding="utf-8")
            self.steps.append(step)
            if on_step is not None:
                on_step(step)
        return self.steps


def step_summary(step: Step) -> dict[str, Any]:
    """A short, printable account of a step (also written as steps/dayNNN/step.json)."""
    return {
        "day": step.day, "lab_now": step.lab_now.isoformat(), "faketime": step.faketime, "faults": step.faults,
        "jobs": {name: f"{job['status']} ({job['seconds']} s)" for name, job in step.jobs.items()},
        "served": sorted({f"{s.thumbprint[:8]} until {s.not_after:%Y-%m-%d}" for s in step.served}),
        "in_use": {host: sorted({f"{c['subject']} {c['thumbprint'][:8]} {c['days_remaining']}d" for c in certs})
                   for host, certs in step.facts.items()},
        "leftovers": {host: sorted({f"{c['subject']} {c['thumbprint'][:8]} {c['days_remaining']}d" for c in certs})
                      for host, certs in step.leftovers.items() if certs},
        "facts_source": step.facts_source, "collected_at": step.collected_at,
        "alerts": [{"path": a["path"], "severity": a["payload"].get("severity"),
                    "events": [f"{e.get('severity')} {e.get('kind')}: {e.get('summary')}"
                               for e in a["payload"].get("events", [])]} for a in step.alerts],
        "ledger": [f"{r['time']} {r['action']} {r['result']} {r.get('server')}" for r in step.ledger],
        "metrics": {k: v for k, v in step.metrics.items() if "failures" in k or "outcome" in k or "ready" in k},
        "problems": step.problems(), "seconds": step.seconds, "cpu_seconds": step.cpu_seconds,
    }


@contextmanager
def receiver() -> Iterator[AlertReceiver]:
    with AlertReceiver() as started:
        yield started


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - a tool for trying schedules
    import argparse
    import tempfile

    from .conftest import start_lab

    parser = argparse.ArgumentParser(prog="python -m tests.integration.year")
    parser.add_argument("--days", required=True, help="comma-separated days of the scheduled runs, e.g. 0,28,56")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="year-"))
    scenario = work / "year.yml"
    work.mkdir(parents=True, exist_ok=True)
    scenario.write_text(yaml.safe_dump(year_scenario(mail_days_left=40, validity_days=180, auth_days_left=100)))
    lab = start_lab(work / "lab", "--scenario", str(scenario))
    try:
        with receiver() as alerts:
            year = Year(lab, work, alerts, policy=adcs_policy(lab, renew_before_days=45))
            year.run([int(d) for d in args.days.split(",")],
                     on_step=lambda s: print(json.dumps(step_summary(s), default=str), flush=True))
    finally:
        lab.control("stop")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
