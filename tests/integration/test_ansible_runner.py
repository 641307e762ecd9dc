# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's playbooks run through ansible-runner the way AWX / Automation Controller runs a job.

tests/integration/awx_runner.py lays out the private data directory as AWX does; these tests check what a job
leaves behind: the host facts in the jsonfile fact cache, the set_stats artifacts, the job output and events.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.awx_runner import ansible_runner, run_job

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
