# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.certificate_export through ansible-playbook over winrm against the lab: check, apply, apply again,
return_content under no_log, and two refusals, in one play. The PFX is checked against the lab's dump."""

from __future__ import annotations

import base64
import os
import stat

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._pfx import load_pfx, pfx_encryption
from tests.integration.conftest import Lab

PASSWORD = "Integration-PFX-Secret-7f3a"


def test_export_check_apply_again_and_refusals(dag_lab: Lab, playbook, tmp_path) -> None:
    dump = dag_lab.dump()
    my = {c["subject"]: c for c in dump["servers"]["ex1"]["certificates"]["My"]}
    mail, self_signed = my["CN=mail.contoso.lab"]["thumbprint"], my["CN=EX1"]["thumbprint"]
    dest, ledger = tmp_path / "mail.pfx", tmp_path / "ledger.jsonl"
    common = f"""thumbprint: "{mail.lower()}"
            password: "{{{{ pfx_password }}}}"
            dest: {dest}
            ledger: {ledger}"""
    tasks = f"""\
        - name: Export in check mode
          exchange.pki.certificate_export:
            {common}
          check_mode: true
          register: checked
        - name: Export
          exchange.pki.certificate_export:
            {common}
            target_versions: ["15.1.2507.6", "2019"]
          register: applied
        - name: Export again
          exchange.pki.certificate_export:
            {common}
          register: again
        - name: Return the PFX instead (no_log)
          exchange.pki.certificate_export:
            thumbprint: "{mail}"
            password: "{{{{ pfx_password }}}}"
            return_content: true
            encryption: modern
          no_log: true
          register: content
        - name: A thumbprint that is not hexadecimal
          exchange.pki.certificate_export:
            thumbprint: "zz{mail[2:]}"
            password: "{{{{ pfx_password }}}}"
            dest: {tmp_path / "bad.pfx"}
          register: bad
          ignore_errors: true
        - name: A key that is not exportable
          exchange.pki.certificate_export:
            thumbprint: "{self_signed}"
            password: "{{{{ pfx_password }}}}"
            dest: {tmp_path / "ex1.pfx"}
          register: not_exportable
          ignore_errors: true
        - name: Collect
          ansible.builtin.set_fact:
            result: {{checked: "{{{{ checked }}}}", applied: "{{{{ applied }}}}", again: "{{{{ again }}}}",
                     content: "{{{{ content }}}}", bad: "{{{{ bad }}}}", not_exportable: "{{{{ not_exportable }}}}"}}
          no_log: true
        """
    run = playbook(dag_lab, tasks, hosts="ex1", host_vars={"pfx_password": PASSWORD}, extra_args=("-v",))
    assert run.returncode == 0, run.stdout + run.stderr
    result = run.result("ex1")

    assert result["checked"]["changed"] is True and "content" not in result["checked"]
    assert result["applied"]["changed"] is True and result["applied"]["encryption"] == "legacy"
    assert result["again"]["changed"] is False
    assert dag_lab.mutations() == []  # exporting never changes the server
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert pfx_encryption(dest.read_bytes()) == "legacy"
    assert load_pfx(dest.read_bytes(), PASSWORD).thumbprint == mail
    content = base64.b64decode(result["content"]["content"])
    assert load_pfx(content, PASSWORD).thumbprint == mail and pfx_encryption(content) == "modern"

    assert result["bad"]["failed"] is True and "is not a hexadecimal digit" in result["bad"]["msg"]
    assert result["not_exportable"]["failed"] is True
    assert "-PrivateKeyExportable $true" in result["not_exportable"]["msg"]
    assert not (tmp_path / "bad.pfx").exists() and not (tmp_path / "ex1.pfx").exists()

    records = read_records(ledger)
    assert [(record.action, record.result) for record in records] == [("export", "changed")]
    output = run.stdout + run.stderr + ledger.read_text(encoding="utf-8")
    assert f'"thumbprint": "{mail}"' in run.stdout  # -v prints the results: a leak would show here
    assert PASSWORD not in output
    assert result["content"]["content"][:64] not in output  # no_log kept the PFX out of the output
