# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.certificate_request through ansible-playbook over winrm against the lab: check, apply, again, bad input.

Expectations come from the lab's dump (the REQUEST store) and its mutation log.
"""

from __future__ import annotations

from cryptography import x509

from tests.integration.conftest import Lab

TASKS = """\
- name: Request in check mode
  exchange.pki.certificate_request: &request
    subject: C=US,O=Contoso,CN=mail.contoso.lab
    dns_names: [autodiscover.contoso.lab, bücher.contoso.lab]
    friendly_name: mail 2027
    ledger: "{ledger}"
  check_mode: true
  diff: true
  register: checked
- name: Request
  exchange.pki.certificate_request: *request
  register: applied
- name: Request again
  exchange.pki.certificate_request: *request
  register: again
- name: A subject with a line break
  exchange.pki.certificate_request:
    subject: "C=US,CN=mail.contoso.lab\\r\\nOU=x"
  register: bad
  ignore_errors: true
- name: Collect
  ansible.builtin.set_fact:
    result:
      checked: "{{{{ checked }}}}"
      applied: "{{{{ applied }}}}"
      again: "{{{{ again }}}}"
      bad: "{{{{ bad }}}}"
"""


def test_request_check_apply_again_and_bad_input(dag_lab: Lab, playbook, tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    run = playbook(dag_lab, TASKS.format(ledger=ledger), hosts="ex1")
    assert run.returncode == 0, run.stdout + run.stderr
    result = run.result("ex1")
    checked, applied, again, bad = (result[name] for name in ("checked", "applied", "again", "bad"))

    assert checked["changed"] is True and checked["csr"] is None
    assert checked["diff"]["before"] == {"pending_request": None}

    dump = dag_lab.dump()
    (pending,) = dump["servers"]["ex1"]["certificates"]["REQUEST"]
    assert [m["operation"] for m in dump["mutations"]] == ["New-ExchangeCertificate"]  # check mode sent nothing
    assert applied["changed"] is True and applied["thumbprint"] == pending["thumbprint"]
    csr = x509.load_pem_x509_csr(applied["csr"].encode("ascii"))
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert names == applied["dns_names"] == ["mail.contoso.lab", "autodiscover.contoso.lab",
                                             "xn--bcher-kva.contoso.lab"]
    assert len(ledger.read_text(encoding="utf-8").splitlines()) == 1

    assert again["changed"] is False
    assert (again["thumbprint"], again["csr"]) == (applied["thumbprint"], applied["csr"])

    assert bad["failed"] is True
    assert "U+000D" in bad["msg"]
    assert len(dag_lab.mutations()) == 1
