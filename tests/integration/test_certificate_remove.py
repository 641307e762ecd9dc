# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.certificate_remove through ansible-playbook over winrm against a started lab.

One play on ex1: the IIS-bound certificate refused, the CLIUSR certificate refused even with force (safety
invariant 1), then an unreferenced leftover removed in check mode, for real, and again, and a bad thumbprint.
The lab's mutation log proves that only the one real removal was sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.integration.conftest import SCENARIOS, Lab, start_lab

FRIENDLY_NAME = "expired leftover"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    scenario["certificates"]["leftover"] = {"subject": "CN=old.contoso.lab", "dns_names": ["old.contoso.lab"],
                                            "not_before": "-800d", "not_after": "-30d"}
    scenario["servers"][0]["certificates"].append({"ref": "leftover", "friendly_name": FRIENDLY_NAME})
    path = tmp_path_factory.mktemp("scenario") / "remove.yml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    started = start_lab(tmp_path_factory.mktemp("lab-remove"), "--scenario", str(path))
    try:
        yield started
    finally:
        started.control("stop")


TASKS = """\
- name: The certificate IIS serves
  exchange.pki.certificate_remove:
    thumbprint: "{iis}"
  register: iis
  ignore_errors: true
- name: The cluster certificate, forced
  exchange.pki.certificate_remove:
    thumbprint: "{cliusr}"
    force: true
  register: cliusr
  ignore_errors: true
- name: Predict removing the leftover
  exchange.pki.certificate_remove:
    thumbprint: "{leftover}"
  check_mode: true
  diff: true
  register: check
- name: Remove the leftover
  exchange.pki.certificate_remove:
    thumbprint: "{leftover}"
  register: removed
- name: Remove it again
  exchange.pki.certificate_remove:
    thumbprint: "{leftover}"
  register: again
- name: A thumbprint that is a path
  exchange.pki.certificate_remove:
    thumbprint: 'C:\\certs\\old.cer'
  register: bad
  ignore_errors: true
- name: Keep every result
  ansible.builtin.set_fact:
    result: {{iis: "{{{{ iis }}}}", cliusr: "{{{{ cliusr }}}}", check: "{{{{ check }}}}",
              removed: "{{{{ removed }}}}", again: "{{{{ again }}}}", bad: "{{{{ bad }}}}"}}
"""


def test_refusals_then_check_apply_again_and_a_bad_input(lab: Lab, playbook) -> None:
    before = lab.dump()["servers"]["ex1"]
    iis = next(b["certificate_hash"] for b in before["iis_bindings"] if b["site"] == "Default Web Site")
    (cliusr,) = [c["thumbprint"] for c in before["certificates"]["PKU2U"]]
    (leftover,) = [c["thumbprint"] for c in before["certificates"]["My"] if c["friendly_name"] == FRIENDLY_NAME]

    run = playbook(lab, TASKS.format(iis=iis, cliusr=cliusr, leftover=leftover), hosts="ex1")
    assert run.returncode == 0, run.stdout + run.stderr
    result = run.result("ex1")

    assert result["iis"]["failed"] is True and "iis_binding 'Default Web Site *:443:'" in result["iis"]["msg"]
    assert result["cliusr"]["failed"] is True and "never removed" in result["cliusr"]["msg"]
    check, removed, again = result["check"], result["removed"], result["again"]
    assert check["changed"] is True and check["diff"]["after"] == {"thumbprint": leftover, "present": False}
    assert removed["changed"] is True and removed["removed"] is True
    assert again["changed"] is False and again["removed"] is False
    assert result["bad"]["failed"] is True and "is not a hexadecimal digit" in result["bad"]["msg"]

    assert [(m["operation"], m["summary"]["thumbprint"]) for m in lab.mutations()] == [
        ("Remove-ExchangeCertificate", leftover)]
    after = lab.dump()["servers"]["ex1"]
    mine = {c["thumbprint"] for store in after["certificates"].values() for c in store}
    assert iis in mine and cliusr in mine and leftover not in mine
