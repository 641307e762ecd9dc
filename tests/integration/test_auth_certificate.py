# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.auth_certificate through ansible-playbook over winrm against the lab (`dag` scenario).

The organisation's Auth certificate expires in 45 days and no next one is staged. One play runs the module in
check mode and with a bad option (nothing may change); the next stages a new certificate on every server and
runs again (no change); after 50 lab hours the next certificate is due but the servicelet (every 12 hours, last at
48 h) has not published it, so the third run publishes it and clears the previous one. Expectations come from the
lab's dump.
"""

from __future__ import annotations

import datetime
import json

from tests.integration.conftest import Lab

CHECK = """\
- name: Auth certificate in check mode
  exchange.pki.auth_certificate:
  check_mode: true
  diff: true
  run_once: true
  register: checked
- name: A lead time Exchange refuses
  exchange.pki.auth_certificate:
    lead_hours: 47
  run_once: true
  register: bad
  ignore_errors: true
- name: Collect
  ansible.builtin.set_fact:
    result: {checked: "{{ checked }}", bad: "{{ bad }}"}
"""

APPLY = """\
- name: Auth certificate
  exchange.pki.auth_certificate:
    ledger: "{ledger}"
  run_once: true
  register: applied
- name: Auth certificate again
  exchange.pki.auth_certificate:
    ledger: "{ledger}"
  run_once: true
  register: again
- name: Collect
  ansible.builtin.set_fact:
    result: {{applied: "{{{{ applied }}}}", again: "{{{{ again }}}}"}}
"""


def _parse(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_stage_rerun_then_publish_when_due(dag_lab: Lab, playbook, tmp_path) -> None:
    before = dag_lab.dump()
    checked = playbook(dag_lab, CHECK, hosts="ex1").result("ex1")
    assert dag_lab.mutations() == []
    assert checked["checked"]["changed"] is True
    assert checked["checked"]["actions"] == ["created", "imported", "staged"]
    assert checked["checked"]["imports"][0]["servers"] == ["EX2", "EX3", "EX4"]
    assert checked["checked"]["diff"]["after"]["installed_on"]["next"] == ["EX1", "EX2", "EX3", "EX4"]
    assert checked["bad"]["failed"] is True and "lead_hours must be at least 48" in checked["bad"]["msg"]

    ledger = tmp_path / "ledger.jsonl"
    run = playbook(dag_lab, APPLY.format(ledger=ledger), hosts="ex1")
    result = run.result("ex1")
    after = dag_lab.dump()
    auth = after["organization"]["auth_config"]
    new = auth["NextCertificateThumbprint"]
    assert result["applied"]["changed"] is True and result["applied"]["thumbprint"] == new
    assert auth["CurrentCertificateThumbprint"] == before["organization"]["auth_config"]["CurrentCertificateThumbprint"]
    assert _parse(auth["NextCertificateEffectiveDate"]) >= _parse(after["clock"]["now"]) + datetime.timedelta(hours=48)
    for name, server in after["servers"].items():
        assert new in [cert["thumbprint"] for cert in server["certificates"]["My"]], name
        assert server["internal_transport_thumbprint"] == before["servers"][name]["internal_transport_thumbprint"]
    assert result["again"]["changed"] is False
    records = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]
    assert [(record["action"], record["result"]) for record in records] == [("auth_certificate", "changed")]
    assert records[0]["after"]["auth_config"]["next_thumbprint"] == new
    assert any(step["arguments"].get("Password") == "********" for step in result["applied"]["plan"])

    dag_lab.control("clock", "--advance", "50h")
    assert dag_lab.dump()["organization"]["auth_config"]["NextCertificateThumbprint"] == new  # not published yet
    published = playbook(dag_lab, APPLY.format(ledger=ledger), hosts="ex1").result("ex1")
    assert published["applied"]["actions"] == ["published", "cleared"]
    assert published["again"]["changed"] is False
    auth = dag_lab.dump()["organization"]["auth_config"]
    assert (auth["CurrentCertificateThumbprint"], auth["NextCertificateThumbprint"]) == (new, None)
    assert auth["PreviousCertificateThumbprint"] is None
