# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Exchange session credential reaches the lifecycle modules of the shipped playbooks.

The inventory role takes it as ``inventory_exchange_*`` (and AWX's Exchange session credential type injects those,
docs/awx.md); the renew and auth_certificate playbooks hand the same variables to every module of the
``exchange.pki.exchange`` action group through module_defaults. The lab opens the Exchange session as the explicit
account when one is given and refuses an unknown password as a logon failure (tests/lab/model/batch.py,
open_session), so a wrong password must fail the auth_certificate run without showing the password, and the right
one must run it as that account.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .conftest import ANSIBLE_PLAYBOOK, Lab, ansible_env

WRONG_PASSWORD = "Wrong-Exchange-Password-c0de"  # noqa: S105 - must never reach any output
ACCOUNT = {"inventory_exchange_username": "CONTOSO\\ansible", "inventory_exchange_password": "Ex-Lab-2026!"}


def run_auth_playbook(lab: Lab, work: Path, variables: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_PLAYBOOK is not None
    extra = work / "vars.yml"
    extra.write_text(yaml.safe_dump({"auth_certificate_ledger": str(work / "ledger.jsonl"), **variables}))
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(lab.inventory), "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", f"@{extra}", "-vvv", "exchange.pki.auth_certificate"],
        cwd=work, env=ansible_env(), capture_output=True, text=True, check=False, timeout=600,
    )


def test_the_auth_playbook_opens_the_exchange_session_with_the_inventory_credential(
    dag_lab: Lab, tmp_path: Path
) -> None:
    before = len(dag_lab.mutations())
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    run = run_auth_playbook(dag_lab, wrong, {**ACCOUNT, "inventory_exchange_password": WRONG_PASSWORD})
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "user name or password is incorrect" in output, output
    assert WRONG_PASSWORD not in output
    assert len(dag_lab.mutations()) == before

    right = tmp_path / "right"
    right.mkdir()
    run = run_auth_playbook(dag_lab, right, ACCOUNT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Ex-Lab-2026!" not in run.stdout + run.stderr
    # the dag lab's Auth certificate expires in 45 days, inside the role's 60-day window: the run, as that account,
    # makes and stages the next one
    operations = [mutation["operation"] for mutation in dag_lab.mutations()[before:]]
    assert "New-ExchangeCertificate" in operations and "Set-AuthConfig" in operations, operations
