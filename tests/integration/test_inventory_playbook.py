# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ansible-playbook exchange.pki.inventory`` (the inventory role, then the report role) against the lab.

The playbook runs as a user would start it: by its collection name, from a working directory of its own, so
the default report directory (``./exchange_pki_report``) is checked too. The facts it caches per host are
compared with a direct ``exchange.pki.certificate_info`` run against the same lab, the served certificates
its probes saw with the IIS bindings those facts report, and the lab's dump proves that nothing changed.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import ANSIBLE_PLAYBOOK, Lab, ansible_env, run_playbook

REPORT_FILES = ("html", "csv", "json", "md", "prom")
#: Probes with the lab's per-host ports (the lab inventory's exchange_pki_lab_ports) plus one closed port.
PROBES = [
    {"name": "owa", "port": "{{ exchange_pki_lab_ports.https }}", "server_name": "mail.contoso.lab",
     "expected_names": ["mail.contoso.lab", "autodiscover.contoso.lab"]},
    {"name": "smtp", "port": "{{ exchange_pki_lab_ports.smtp }}", "starttls": "smtp",
     "server_name": "{{ exchange_pki_fqdn }}"},
    {"name": "closed", "port": 1, "timeout": 5},
]
ANSIBLE_RESULT_KEYS = {"changed", "failed", "skipped", "msg", "warnings", "deprecations", "invocation"}
EXCHANGE_PASSWORD = "Wrong-Exchange-Password-4b1d"  # noqa: S105 - must never reach any output


@dataclass(frozen=True)
class Run:
    """One ``ansible-playbook exchange.pki.inventory`` run and the directory it was started from."""

    cwd: Path
    returncode: int
    output: str

    @property
    def report_dir(self) -> Path:
        return self.cwd / "exchange_pki_report"

    @property
    def cache_dir(self) -> Path:
        return self.cwd / "facts"

    def cached(self, host: str) -> dict[str, Any]:
        return json.loads((self.cache_dir / f"{host}.json").read_text(encoding="utf-8"))


def run_inventory_playbook(lab: Lab, cwd: Path, extra_vars: Mapping[str, Any], *args: str) -> Run:
    """Run the collection's playbook by name from ``cwd`` with ``extra_vars`` (as JSON) and ``args``."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "exchange.pki.inventory", "-i", str(lab.inventory),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps(dict(extra_vars)), *args],
        cwd=cwd, env=ansible_env(), capture_output=True, text=True, check=False, timeout=600,
    )
    return Run(cwd, proc.returncode, proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def hosts(dag_lab: Lab) -> list[str]:
    return sorted(dag_lab.endpoints()["servers"])


@pytest.fixture(scope="module")
def inventory_run(dag_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The playbook with probes and a cache (a relative path: under the working directory); the lab must not change."""
    before = len(dag_lab.mutations())
    cwd = tmp_path_factory.mktemp("inventory-run")
    run = run_inventory_playbook(dag_lab, cwd, {"inventory_probes": PROBES, "inventory_cache_dir": "facts"})
    assert run.returncode == 0, run.output
    assert len(dag_lab.mutations()) == before, "the inventory changed the lab"
    return run


@pytest.fixture(scope="module")
def direct(dag_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """certificate_info run directly on every lab host, the reference the role's facts must match."""
    tasks = "- name: Gather directly\n  exchange.pki.certificate_info:\n  register: result\n"
    run = run_playbook(dag_lab, tasks, tmp_path_factory.mktemp("direct"))
    assert run.returncode == 0, run.stdout + run.stderr
    return run.results


def finding_keys(facts: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    return sorted((f["id"], f["severity"], f.get("thumbprint")) for f in facts["findings"])


def test_report_is_written_to_the_invocation_directory(inventory_run: Run, hosts: list[str]) -> None:
    for suffix in REPORT_FILES:
        assert (inventory_run.report_dir / f"exchange_pki_report.{suffix}").is_file(), suffix
    report = json.loads((inventory_run.report_dir / "exchange_pki_report.json").read_text(encoding="utf-8"))
    assert sorted(host["host"] for host in report["hosts"]) == hosts
    assert report["summary"]["hosts_missing"] == []


def test_facts_match_a_direct_certificate_info(
    inventory_run: Run, direct: dict[str, dict[str, Any]], hosts: list[str]
) -> None:
    for host in hosts:
        cached, reference = inventory_run.cached(host), direct[host]
        assert sorted(c["thumbprint"] for c in cached["certificates"]) == sorted(
            c["thumbprint"] for c in reference["certificates"]
        ), host
        assert finding_keys(cached) == finding_keys(reference), host
        assert cached["server"] == reference["server"], host
        assert cached["summary"]["findings"] == reference["summary"]["findings"], host


def test_fact_is_certificate_info_without_ansible_result_keys(
    inventory_run: Run, direct: dict[str, dict[str, Any]], hosts: list[str]
) -> None:
    for host in hosts:
        cached = inventory_run.cached(host)
        assert not ANSIBLE_RESULT_KEYS & cached.keys(), host
        assert not any(key.startswith("_ansible") for key in cached), host
        assert set(cached) == (set(direct[host]) - ANSIBLE_RESULT_KEYS) | {"probes"}, host


def test_cache_is_private_to_the_controller_user(inventory_run: Run, hosts: list[str]) -> None:
    assert stat.S_IMODE(inventory_run.cache_dir.stat().st_mode) == 0o700
    assert sorted(path.stem for path in inventory_run.cache_dir.iterdir()) == hosts
    for path in inventory_run.cache_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_probes_see_the_certificates_the_facts_report(inventory_run: Run, hosts: list[str]) -> None:
    for host in hosts:
        facts = inventory_run.cached(host)
        probes = facts["probes"]
        (https_binding,) = (b for b in facts["iis_bindings"]
                            if b["site"] == "Default Web Site" and b["binding"].startswith("*:443:"))
        assert probes["owa"]["thumbprint"] == https_binding["certificate_hash"], host
        assert probes["owa"]["name_matches"] is True and probes["owa"]["failed"] is False, host
        assert probes["smtp"]["starttls"] == "smtp", host
        assert probes["smtp"]["thumbprint"] in {c["thumbprint"] for c in facts["certificates"]}, host
        assert probes["closed"]["failed"] is True and probes["closed"]["stage"] == "connect", host


def test_second_run_keeps_unchanged_cache_files(inventory_run: Run, dag_lab: Lab, hosts: list[str]) -> None:
    before = {host: (inventory_run.cache_dir / f"{host}.json").read_bytes() for host in hosts}
    again = run_inventory_playbook(dag_lab, inventory_run.cwd,
                                   {"inventory_probes": PROBES, "inventory_cache_dir": str(inventory_run.cache_dir)})
    assert again.returncode == 0, again.output
    assert {host: (inventory_run.cache_dir / f"{host}.json").read_bytes() for host in hosts} == before


def test_check_mode_writes_nothing_and_changes_nothing(dag_lab: Lab, tmp_path: Path) -> None:
    before = len(dag_lab.mutations())
    run = run_inventory_playbook(dag_lab, tmp_path, {"inventory_cache_dir": str(tmp_path / "facts")}, "--check")
    assert run.returncode == 0, run.output
    assert not (tmp_path / "facts").exists()
    assert not (tmp_path / "exchange_pki_report").exists()
    assert len(dag_lab.mutations()) == before


def test_fail_on_severity_fails_the_hosts_but_still_reports(dag_lab: Lab, tmp_path: Path, hosts: list[str]) -> None:
    run = run_inventory_playbook(dag_lab, tmp_path, {"inventory_fail_on_severity": "critical"})
    assert run.returncode == 2, run.output
    for host in hosts:  # every dag server has at least the expiring shared certificate (critical)
        assert f"{host} has " in run.output and "of severity critical or worse: " in run.output, host
    report = json.loads((run.report_dir / "exchange_pki_report.json").read_text(encoding="utf-8"))
    assert sorted(host["host"] for host in report["hosts"]) == hosts
    assert report["summary"]["hosts_missing"] == []


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        ({"inventory_fail_on_severity": "sometimes"},
         "value of inventory_fail_on_severity must be one of: none, info, warning, critical, got: sometimes"),
        ({"inventory_exchange_authentication": "Digest"}, "value of inventory_exchange_authentication must be one of"),
        ({"inventory_probes": [{"port": 443}]}, "missing required arguments: name found in inventory_probes"),
        ({"inventory_probes": [{"name": "owa", "starttls": "ftp"}]},
         "value of starttls must be one of: none, smtp, imap, pop3, got: ftp found in inventory_probes"),
        ({"inventory_probes": [{"name": "owa"}, {"name": "owa"}]}, "probe names must be unique"),
        ({"inventory_probes": [{"name": ""}]}, "inventory_probes[0].name must not be empty"),
        ({"inventory_probes": [{"name": "owa", "port": 0}]},
         'inventory_probes[0].port must be an integer from 1 to 65535, got "0"'),
        ({"inventory_probes": [{"name": "owa"}, {"name": "smtp", "port": 65536}]},
         'inventory_probes[1].port must be an integer from 1 to 65535, got "65536"'),
        ({"inventory_probes": [{"name": "owa", "port": "{{ 0 - 443 }}"}]},
         'inventory_probes[0].port must be an integer from 1 to 65535, got "-443"'),
        ({"inventory_probes": [{"name": "owa", "expected_thumbprint": "AB:CD:EF"}]},
         'inventory_probes[0].expected_thumbprint must be 40 hexadecimal digits (spaces and colons allowed), '
         'got "AB:CD:EF"'),
        ({"inventory_probes": [{"name": "owa", "expected_thumbprint": "G" * 40}]},
         "inventory_probes[0].expected_thumbprint must be 40 hexadecimal digits"),
        ({"inventory_probes": [{"name": "owa", "timeout": 0}]},
         "inventory_probes[0].timeout must be a number of seconds above 0 and at most 300"),
    ],
)
def test_bad_role_arguments_are_rejected_by_name(
    dag_lab: Lab, tmp_path: Path, extra_vars: dict[str, Any], message: str
) -> None:
    before = len(dag_lab.mutations())
    run = run_inventory_playbook(dag_lab, tmp_path, extra_vars)
    assert run.returncode == 2, run.output
    assert message in run.output
    # Refused before the role does anything: no probe, no certificate_info, nothing set or cached.
    role_tasks = set(re.findall(r"^TASK \[exchange\.pki\.inventory : (.+?)\] \*", run.output, re.MULTILINE))
    assert role_tasks <= {"Check the probe definitions"}, run.output
    assert not run.report_dir.exists(), "a run that inventoried nothing must not replace the report"
    assert len(dag_lab.mutations()) == before


def test_exchange_password_never_reaches_the_output(dag_lab: Lab, tmp_path: Path) -> None:
    credential = {"inventory_exchange_username": "CONTOSO\\ansible", "inventory_exchange_password": EXCHANGE_PASSWORD}
    run = run_inventory_playbook(dag_lab, tmp_path, credential, "-vvv")
    assert run.returncode == 2, run.output
    assert "user name or password is incorrect" in run.output  # the module's own message, repeated by the role
    assert "ex1 was not inventoried (authentication_refused): " in run.output
    assert EXCHANGE_PASSWORD not in run.output


def test_probe_that_fails_at_run_time_is_recorded_as_failed(dag_lab: Lab, tmp_path: Path, hosts: list[str]) -> None:
    """A probe valid for the first host but refused by tls_probe on the others is recorded there as failed."""
    probes = [
        {"name": "owa", "port": "{{ exchange_pki_lab_ports.https }}", "server_name": "mail.contoso.lab"},
        {"name": "zero_port", "port": "{{ exchange_pki_lab_ports.https if inventory_hostname == 'ex1' else 0 }}"},
    ]
    run = run_inventory_playbook(dag_lab, tmp_path, {"inventory_probes": probes, "inventory_cache_dir": "facts"})
    assert run.returncode == 0, run.output
    for host in hosts:
        probed = run.cached(host)["probes"]
        assert sorted(probed) == ["owa", "zero_port"], host
        assert probed["owa"]["failed"] is False, host
        if host == "ex1":
            assert probed["zero_port"]["failed"] is False
        else:
            assert probed["zero_port"]["failed"] is True and "port" in probed["zero_port"]["msg"], (host, probed)


def test_probes_whose_templates_fail_are_recorded_not_dropped(dag_lab: Lab, tmp_path: Path, hosts: list[str]) -> None:
    """A template error in one probe stops the host's probe task: every probe of that host is recorded as failed."""
    probes = [
        {"name": "owa", "port": "{{ exchange_pki_lab_ports.https }}", "server_name": "mail.contoso.lab"},
        {"name": "undefined", "port": "{{ exchange_pki_lab_ports.https if inventory_hostname == 'ex1' else nothing }}"},
    ]
    run = run_inventory_playbook(dag_lab, tmp_path, {"inventory_probes": probes, "inventory_cache_dir": "facts"})
    assert run.returncode == 0, run.output
    for host in hosts:
        probed = run.cached(host)["probes"]
        assert sorted(probed) == ["owa", "undefined"], host
        for name in probed:
            if host == "ex1":
                assert probed[name]["failed"] is False, (host, name, probed)
            else:
                assert probed[name]["failed"] is True and "'nothing' is undefined" in probed[name]["msg"], (host, name)
