# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's playbooks run through ansible-runner the way AWX / Automation Controller runs a job.

tests/integration/awx_runner.py lays out the private data directory as AWX does; these tests check what a job
leaves behind: the host facts in the jsonfile fact cache, the set_stats artifacts, the job output and events.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
import pytest
import yaml

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records

from .awx_runner import REPO_ROOT, Job, ansible_runner, machine_credential, run_job
from .conftest import Lab, start_lab
from .test_renewal_role import MEMBERS, mail_certificates, served_thumbprint

pytestmark = pytest.mark.skipif(ansible_runner is None, reason="needs ansible-runner (requirements/dev.txt)")

LOCAL_INVENTORY = f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def test_run_job_lays_out_the_private_data_dir_and_returns_facts_stats_and_output(tmp_path: Path) -> None:
    """The helper itself: private data dir as AWX writes it, fact cache, set_stats artifacts, output, events."""
    playbook = tmp_path / "job.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "A job",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {"name": "Cache a fact",
             "ansible.builtin.set_fact": {"cacheable": True, "job_fact": "{{ survey_answer }}"}},
            {"name": "Publish an artifact", "ansible.builtin.set_stats": {"data": {"job_plan": {"steps": 2}}}},
            {"name": "Say something",
             "ansible.builtin.debug": {"msg": "answer={{ survey_answer }} env={{ lookup('env', 'JOB_ENV') }}"}},
        ],
    }]))
    job = run_job(tmp_path / "pdd", str(playbook), inventory=LOCAL_INVENTORY,
                  extravars={"survey_answer": "forty-two"}, envvars={"JOB_ENV": "injected"}, ident="job1")

    assert job.status == "successful", job.stdout
    assert job.rc == 0
    pdd = tmp_path / "pdd"
    for path in ("env/extravars", "env/envvars", "env/settings", "inventory/hosts", "project/job.yml"):
        assert (pdd / path).is_file(), path
    assert yaml.safe_load((pdd / "env/extravars").read_text()) == {"survey_answer": "forty-two"}
    assert job.artifacts == pdd / "artifacts" / "job1"
    assert job.fact_cache("localhost")["job_fact"] == "forty-two"
    assert job.fact_cache("nowhere") == {}
    assert job.stats == {"job_plan": {"steps": 2}}
    assert "answer=forty-two env=injected" in job.stdout
    assert "PLAY RECAP" in job.stdout
    names = [e["event"] for e in job.events()]
    assert names[0] == "playbook_on_start" and names[-1] == "playbook_on_stats"
    assert job.summary()["ok"] == {"localhost": 3}

    # a second job in the same private data dir: check mode, a limit, no fact cache
    second = run_job(pdd, str(playbook), inventory=LOCAL_INVENTORY,
                     extravars={"survey_answer": "{{ ansible_check_mode }}"}, check=True,
                     fact_cache=False, limit="localhost", ident="job2")
    assert second.status == "successful", second.stdout
    assert second.artifacts == pdd / "artifacts" / "job2"
    assert second.fact_cache("localhost") == {}
    assert "answer=True" in second.stdout
    assert (pdd / "artifacts" / "job1" / "stdout").is_file()  # the first job's artifacts are kept


# --- the collection's playbooks as AWX jobs against the dag lab ---------------------------------------------------

AWX_EXAMPLES = REPO_ROOT / "docs" / "examples" / "awx"
WINRM_PASSWORD = "Ex-Lab-2026!"  # noqa: S105 - the lab's account (tests/lab/scenarios/dag.yml)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    started = start_lab(tmp_path_factory.mktemp("lab-dag"), "--scenario", "dag")
    try:
        yield started
    finally:
        started.control("stop")


@pytest.fixture(scope="module")
def volume(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What outlives the throw-away job containers: a persistent volume (ledger, renewal state, reports)."""
    return tmp_path_factory.mktemp("volume")


@pytest.fixture(scope="module")
def awx_inventory(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's inventory as an AWX inventory holds it: hosts and their variables, no credential."""
    inventory = yaml.safe_load(lab.inventory.read_text(encoding="utf-8"))
    user = inventory["all"]["vars"].pop("ansible_user")
    assert inventory["all"]["vars"].pop("ansible_password") == WINRM_PASSWORD
    inventory["all"]["vars"]["ansible_python_interpreter"] = sys.executable
    inventory["all"]["children"]["exchange"]["vars"] = {"renewal_probe_ports": "{{ exchange_pki_lab_ports }}"}
    directory = tmp_path_factory.mktemp("awx-inventory")
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    (directory / "user").write_text(user, encoding="utf-8")
    return directory


def job(playbook: str, awx_inventory: Path, tmp_path: Path, name: str, **kwargs: Any) -> Job:
    """One AWX job: a fresh private data directory, the machine credential, the lab's inventory."""
    user = (awx_inventory / "user").read_text(encoding="utf-8")
    return run_job(tmp_path / f"job-{name}", playbook, inventory=awx_inventory / "hosts.yml", ident=name,
                   forks=10, timeout=900, **machine_credential(user, WINRM_PASSWORD), **kwargs)


def artifacts_text(finished: Job) -> str:
    """Everything the job left in its artifacts (output, events, fact cache, command) as one text."""
    return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                     for p in finished.artifacts.rglob("*") if p.is_file())


def credential_injection(inputs: dict[str, str]) -> dict[str, str]:
    """The extra variables docs/examples/awx/credential_type.yml injects for these inputs (as AWX renders them)."""
    credential_type = yaml.safe_load((AWX_EXAMPLES / "credential_type.yml").read_text(encoding="utf-8"))
    defaults = {f["id"]: f.get("default", "") for f in credential_type["inputs"]["fields"]}
    environment = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return {name: environment.from_string(template).render({**defaults, **inputs})
            for name, template in credential_type["injectors"]["extra_vars"].items()}


def role_variables(role: str) -> dict[str, Any]:
    specs = yaml.safe_load((REPO_ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    return specs["argument_specs"]["main"]["options"]


def plan_of(record: dict[str, Any]) -> str | None:
    """The renewal plan a ledger record belongs to (as _ledger.record_plan_id says)."""
    return record.get("run_id") or record["after"].get("plan_id") or record["before"].get("plan_id")


def test_inventory_job_caches_every_host_and_prints_the_report(
        lab: Lab, awx_inventory: Path, volume: Path, tmp_path: Path) -> None:
    """The inventory job template: the machine credential (-u/--ask-pass), the Exchange session credential as a
    custom credential type injects it (extra variables), the report on the persistent volume."""
    session = credential_injection({"username": "CONTOSO\\ansible", "password": WINRM_PASSWORD, "uri": ""})
    assert set(session) <= set(role_variables("inventory"))
    finished = job(str(AWX_EXAMPLES / "project" / "inventory.yml"), awx_inventory, tmp_path, "inventory",
                   extravars={**session, "report_dest": str(volume / "report")})

    assert finished.status == "successful", finished.stdout[-6000:]
    summary = finished.summary()
    assert set(summary["processed"]) == set(MEMBERS)
    assert summary["failures"] == {} and summary["dark"] == {}
    # The job output (what AWX shows) carries the report's summary; the report itself is on the volume.
    assert "PLAY RECAP" in finished.stdout
    assert "| critical | ex4 | [expiring_critical]" in finished.stdout
    assert (volume / "report" / "exchange_pki_report.json").is_file()
    # The password reached the modules (every host was read with it) and none of the job's artifacts.
    assert WINRM_PASSWORD not in artifacts_text(finished)
    assert "--ask-pass" in (finished.artifacts / "command").read_text(encoding="utf-8")
    # The facts AWX keeps per host (fact cache jsonfile): each server's certificates as the lab holds them.
    dump = lab.dump()
    for host in MEMBERS:
        held = {c["thumbprint"] for c in dump["servers"][host]["certificates"]["My"]}
        facts = finished.fact_cache(host)["exchange_pki"]
        assert held <= {c["thumbprint"] for c in facts["certificates"]}, host
    assert lab.mutations() == []


def renewal_variables(lab: Lab, volume: Path) -> dict[str, Any]:
    """docs/examples/awx/renew_job_template.yml with the lab's CA and the volume's paths, plus the survey answers."""
    variables = yaml.safe_load((AWX_EXAMPLES / "renew_job_template.yml").read_text(encoding="utf-8"))
    options = variables["renewal_policies"]["adcs"]["backends"][0]["options"]
    options["ca_config"] = lab.dump()["organization"]["ca"]["config"]
    for name in ("renewal_ledger", "renewal_state_dir", "renew_report_dest"):
        variables[name] = variables[name].replace("/var/lib/exchange-pki", str(volume))
    survey = json.loads((AWX_EXAMPLES / "survey.json").read_text(encoding="utf-8"))
    answers = {question["variable"]: question["default"] for question in survey["spec"]}
    assert answers == {"exchange_pki_hosts": "exchange", "renewal_backend": "adcs"}
    return {**variables, **answers, "renewal_ca_path": str(lab.state_dir / "ca.pem")}


def test_renew_plan_job_then_apply_job(lab: Lab, awx_inventory: Path, volume: Path, tmp_path: Path) -> None:
    """The renew job templates: a check-mode plan job (changes nothing, publishes the plan), then the apply job
    (renews, publishes this run's ledger records and results; the ledger itself is on the persistent volume)."""
    variables = renewal_variables(lab, volume)
    (old,) = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}
    mutations = len(lab.mutations())

    renew = str(AWX_EXAMPLES / "project" / "renew.yml")
    plan_job = job(renew, awx_inventory, tmp_path, "renew-plan", extravars=variables, check=True)

    assert plan_job.status == "successful", plan_job.stdout[-6000:]
    assert "# Renewal plan" in plan_job.stdout and "due 1" in plan_job.stdout and old in plan_job.stdout
    assert len(lab.mutations()) == mutations
    assert not (volume / "ledger.jsonl").exists()
    plan = plan_job.stats["exchange_pki_renewal_plan"]
    assert [item["status"] for item in plan["items"]].count("due") == 1
    assert old in json.dumps(plan)

    apply_job = job(renew, awx_inventory, tmp_path, "renew-apply", extravars=variables)

    assert apply_job.status == "successful", apply_job.stdout[-6000:]
    (new,) = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}
    assert new != old
    ports = lab.endpoints()["servers"]
    assert {served_thumbprint(ports[server]["https"]) for server in MEMBERS} == {new}
    # The summary in the job output: each renewed certificate, old -> new, per group.
    assert f"-> new {new}" in apply_job.stdout
    records = [r.as_dict() for r in read_records(volume / "ledger.jsonl")]
    done = [r for r in records if r["action"] == "renewal_done"]
    assert [r["after"]["group"] for r in done] == ["DAG1", "ex4"]
    plan_id = done[0]["after"]["plan_id"]
    published = apply_job.stats["exchange_pki_ledger"]
    # this job's records: all of the ledger's (the plan job wrote none), each naming this plan (the modules' records
    # through the ledger_run_id renew.yml gives them)
    assert published == records
    assert {plan_of(r) for r in published} == {plan_id}
    assert {r["run_id"] for r in published} == {plan_id}
    assert apply_job.stats["exchange_pki_renewal_plan"]["plan_id"] == plan_id
    results = apply_job.stats["exchange_pki_renewal_results"]
    assert [(r["status"], r["new_thumbprint"]) for r in results] == [("renewed", new)]
    assert apply_job.stats["exchange_pki_renewal_status"]["run"]["outcome"] == "success"


def test_auth_job_stages_the_next_certificate_then_a_daily_job_changes_nothing(
        lab: Lab, awx_inventory: Path, volume: Path, tmp_path: Path) -> None:
    """The auth job template, on its daily schedule: the first job stages the next Auth certificate (45 days left,
    renew window 60 days), the next one has nothing to do. The ledger is the renew jobs' ledger on the volume."""
    auth = str(AWX_EXAMPLES / "project" / "auth_certificate.yml")
    variables = {"renewal_ledger": str(volume / "ledger.jsonl"), "exchange_pki_hosts": "exchange"}
    mutations = len(lab.mutations())

    first = job(auth, awx_inventory, tmp_path, "auth-1", extravars=variables)

    assert first.status == "successful", first.stdout[-6000:]
    config = lab.dump()["organization"]["auth_config"]
    staged = config["NextCertificateThumbprint"]
    assert staged and staged != config["CurrentCertificateThumbprint"]
    assert len(lab.mutations()) > mutations
    (result,) = [e["event_data"]["res"] for e in first.events() if e["event"] == "runner_on_ok"
                 and e["event_data"].get("resolved_action") == "exchange.pki.auth_certificate"]
    assert result["changed"] and staged in json.dumps(result)
    records = [r.as_dict() for r in read_records(volume / "ledger.jsonl") if r.action == "auth_certificate"]
    assert records and records[-1]["after"]["auth_config"]["next_thumbprint"] == staged
    assert first.summary()["changed"].get("ex1")

    mutations = len(lab.mutations())
    daily = job(auth, awx_inventory, tmp_path, "auth-2", extravars=variables)

    assert daily.status == "successful", daily.stdout[-6000:]
    assert daily.summary()["changed"] == {}
    assert len(lab.mutations()) == mutations
    assert len([r for r in read_records(volume / "ledger.jsonl") if r.action == "auth_certificate"]) == len(records)
