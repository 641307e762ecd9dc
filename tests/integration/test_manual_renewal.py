# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The documented example docs/examples/renew_shared_certificate.yml, run as a user runs it, against the `dag` lab.

The scenario's shared SAN certificate (mail.contoso.lab, on ex1-ex4, expiring in 20 days) becomes a fresh one on
every member: requested on ex1 with an exportable key, submitted to the lab's AD CS with a template that needs a CA
administrator's approval (the first run ends "pending"), approved, completed on ex1 by the second run, exported,
imported on the other members (ex4 runs Exchange 2016), bound, verified over real TLS, and the old one removed.
The ledger tells the story, and a third run changes nothing. Every check reads the lab's own dump.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records

from .conftest import ANSIBLE_PLAYBOOK, REPO_ROOT, Lab, ansible_env, start_lab

EXAMPLE = REPO_ROOT / "docs" / "examples" / "renew_shared_certificate.yml"
MEMBERS = ("ex1", "ex2", "ex3", "ex4")
PFX_PASSWORD = "Renewal-PFX-pa$$word-2027!"  # noqa: S105 - the test's own secret, grepped for below
TEMPLATE = "ExchangeManual"  # the dag scenario's template that waits for a CA administrator


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    started = start_lab(tmp_path_factory.mktemp("lab-renewal"), "--scenario", "dag")
    try:
        yield started
    finally:
        started.control("stop")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Path:
    directory = tmp_path_factory.mktemp("renewal")
    variables = {
        "renewal_request_server": "ex1",
        "renewal_members": "exchange",
        "renewal_subject": "C=US,O=Contoso,CN=mail.contoso.lab",
        "renewal_dns_names": ["mail.contoso.lab", "autodiscover.contoso.lab"],
        "renewal_friendly_name": "mail 2027",
        "renewal_ca_config": lab.dump()["organization"]["ca"]["config"],
        "renewal_template": TEMPLATE,
        "renewal_state_path": str(directory / "adcs-state.jsonl"),
        "renewal_pfx_path": str(directory / "mail.pfx"),
        "renewal_pfx_password": PFX_PASSWORD,
        "renewal_ledger": str(directory / "ledger.jsonl"),
        "renewal_ca_path": str(lab.state_dir / "ca.pem"),
        "renewal_https_port": "{{ exchange_pki_lab_ports.https }}",
    }
    (directory / "renewal.yml").write_text(yaml.safe_dump(variables), encoding="utf-8")
    return directory


def run_example(lab: Lab, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_PLAYBOOK is not None
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(lab.inventory), "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"@{work / 'renewal.yml'}", str(EXAMPLE), *extra],
        cwd=work, env=ansible_env(), capture_output=True, text=True, check=False, timeout=900,
    )


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host (the last recap of the run)."""
    counters: dict[str, dict[str, int]] = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        if ":" not in line or "ok=" not in line:
            continue
        host, rest = line.split(":", 1)
        counters[host.strip()] = {key: int(value) for key, value in (item.split("=") for item in rest.split())}
    return counters


def mail_certificates(lab: Lab) -> dict[str, list[dict[str, Any]]]:
    dump = lab.dump()
    return {server: [c for c in dump["servers"][server]["certificates"]["My"] if "CN=mail.contoso.lab" in c["subject"]]
            for server in MEMBERS}


def served_thumbprint(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="mail.contoso.lab") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the Windows thumbprint


@pytest.fixture(scope="module")
def old_thumbprint(lab: Lab) -> str:
    (old,) = {c["thumbprint"] for certificates in mail_certificates(lab).values() for c in certificates}
    return old


def test_a_missing_variable_is_named_before_anything_runs(lab: Lab, work: Path, tmp_path: Path) -> None:
    variables = yaml.safe_load((work / "renewal.yml").read_text(encoding="utf-8"))
    del variables["renewal_subject"]
    partial = tmp_path / "partial.yml"
    partial.write_text(yaml.safe_dump(variables), encoding="utf-8")
    assert ANSIBLE_PLAYBOOK is not None
    run = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(lab.inventory), "-e", f"@{partial}", str(EXAMPLE)],
        cwd=tmp_path, env=ansible_env(), capture_output=True, text=True, check=False, timeout=300,
    )

    assert run.returncode != 0
    assert "set renewal_subject" in run.stdout
    assert lab.mutations() == []


def test_check_mode_sends_no_change(lab: Lab, work: Path) -> None:
    run = run_example(lab, work, "--check", "--diff")

    assert run.returncode == 0, run.stdout + run.stderr
    assert lab.mutations() == []
    assert not (work / "ledger.jsonl").exists()
    assert not (work / "adcs-state.jsonl").exists()


def test_the_first_run_stops_at_the_pending_approval(lab: Lab, work: Path, old_thumbprint: str) -> None:
    run = run_example(lab, work)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "waits for approval" in run.stdout
    mutations = [m["operation"] for m in lab.mutations()]
    assert mutations == ["New-ExchangeCertificate", "host.certreq_submit"]
    assert all(c["thumbprint"] == old_thumbprint for certs in mail_certificates(lab).values() for c in certs)
    pending = [r for r in lab.dump()["organization"]["ca"]["requests"] if r["status"] == "Pending"]
    assert len(pending) == 1


def test_after_approval_every_member_serves_a_fresh_certificate(lab: Lab, work: Path, old_thumbprint: str) -> None:
    (pending,) = [r for r in lab.dump()["organization"]["ca"]["requests"] if r["status"] == "Pending"]
    lab.control("ca", "approve", str(pending["id"]))
    internal_before = {server: lab.dump()["servers"][server]["internal_transport_thumbprint"] for server in MEMBERS}

    run = run_example(lab, work)

    assert run.returncode == 0, run.stdout + run.stderr
    submissions = [m for m in lab.mutations() if m["operation"] == "host.certreq_submit"]
    assert len(submissions) == 1  # the second run retrieved the request, it did not submit it again
    certificates = mail_certificates(lab)
    (new,) = {c["thumbprint"] for certs in certificates.values() for c in certs}
    assert new != old_thumbprint
    dump = lab.dump()
    ports = lab.endpoints()["servers"]
    for server in MEMBERS:
        (certificate,) = certificates[server]
        assert certificate["not_after"] > "2027", certificate  # issued now, valid for the template's year
        assert {"IIS", "SMTP", "IMAP", "POP"} <= set(certificate["services"])
        assert dump["servers"][server]["internal_transport_thumbprint"] == internal_before[server]
        assert served_thumbprint(ports[server]["https"]) == new
    assert stat.S_IMODE(os.stat(work / "mail.pfx").st_mode) == 0o600

    records = [record.as_dict() for record in read_records(work / "ledger.jsonl")]
    story = [(r["server"], r["module"].removeprefix("exchange.pki."), r["result"]) for r in records]
    assert ("EX1", "certificate_request", "changed") in story
    assert ("EX1", "certificate_import", "changed") in story
    for server in ("EX2", "EX3", "EX4"):
        assert (server, "certificate_import", "changed") in story
    for server in ("EX1", "EX2", "EX3", "EX4"):
        assert (server, "certificate_services", "changed") in story
        assert (server, "certificate_remove", "changed") in story
    assert not [record for record in records if record["result"] == "failed"]


def test_a_third_run_changes_nothing_and_no_secret_was_written(lab: Lab, work: Path) -> None:
    before = len(lab.mutations())
    ledger_lines = (work / "ledger.jsonl").read_text(encoding="utf-8").count("\n")

    run = run_example(lab, work)

    assert run.returncode == 0, run.stdout + run.stderr
    assert all(counters["changed"] == 0 for counters in recap(run.stdout).values()), run.stdout
    assert len(lab.mutations()) == before
    ledger = (work / "ledger.jsonl").read_text(encoding="utf-8")
    assert ledger.count("\n") == ledger_lines
    for text in (ledger, run.stdout, run.stderr, json.dumps(lab.dump())):
        assert PFX_PASSWORD not in text
