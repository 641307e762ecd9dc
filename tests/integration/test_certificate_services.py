# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.certificate_services through ansible-playbook over winrm against a started lab.

One play on ex1: check mode, apply, apply again, a bad input. The lab's mutation log proves that check mode and
the second run sent nothing; the dump and a real TLS handshake prove the binding; the internal transport
certificate is the one it was (safety invariant 5).
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import SCENARIOS, Lab, start_lab

FRIENDLY_NAME = "mail 2027"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The dag scenario with a renewed SAN certificate installed on ex1 (no services yet)."""
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    scenario["certificates"]["mail2027"] = {
        "subject": "CN=mail.contoso.lab", "dns_names": ["mail.contoso.lab", "autodiscover.contoso.lab"],
        "not_before": "-1d", "not_after": "700d"}
    scenario["servers"][0]["certificates"].append({"ref": "mail2027", "exportable": True,
                                                   "friendly_name": FRIENDLY_NAME})
    path = tmp_path_factory.mktemp("scenario") / "services.yml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    started = start_lab(tmp_path_factory.mktemp("lab-services"), "--scenario", str(path))
    try:
        yield started
    finally:
        started.control("stop")


def served_thumbprint(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="mail.contoso.lab") as tls:
        return hashlib.sha1(tls.getpeercert(binary_form=True)).hexdigest().upper()  # noqa: S324 - Windows thumbprint


TASKS = """\
- name: Predict the binding
  exchange.pki.certificate_services:
    thumbprint: "{pasted}"
    services: [iis, SMTP, imap, pop]
    ledger: "{ledger}"
  check_mode: true
  diff: true
  register: check
- name: Bind
  exchange.pki.certificate_services:
    thumbprint: "{pasted}"
    services: [iis, SMTP, imap, pop]
    ledger: "{ledger}"
  diff: true
  register: applied
- name: Bind again
  exchange.pki.certificate_services:
    thumbprint: "{thumbprint}"
    services: [IIS, SMTP, IMAP, POP]
    ledger: "{ledger}"
  register: again
- name: An unknown service
  exchange.pki.certificate_services:
    thumbprint: "{thumbprint}"
    services: [IIS, OWA]
  register: bad
  ignore_errors: true
- name: Keep every result
  ansible.builtin.set_fact:
    result: {{check: "{{{{ check }}}}", applied: "{{{{ applied }}}}", again: "{{{{ again }}}}", bad: "{{{{ bad }}}}"}}
"""


def test_check_apply_again_and_a_bad_input(lab: Lab, playbook, tmp_path: Path) -> None:
    before = lab.dump()["servers"]["ex1"]
    (new,) = [c["thumbprint"] for c in before["certificates"]["My"] if c["friendly_name"] == FRIENDLY_NAME]
    old = next(b["certificate_hash"] for b in before["iis_bindings"] if b["site"] == "Default Web Site")
    transport = before["internal_transport_thumbprint"]
    https = lab.endpoints()["servers"]["ex1"]["https"]
    assert served_thumbprint(https) == old
    pasted = "\u200e" + " ".join(new[i:i + 2] for i in range(0, 40, 2)).lower()
    ledger = tmp_path / "ledger.jsonl"

    run = playbook(lab, TASKS.format(pasted=pasted, thumbprint=new, ledger=ledger), hosts="ex1")
    assert run.returncode == 0, run.stdout + run.stderr
    result = run.result("ex1")

    check, applied, again, bad = result["check"], result["applied"], result["again"], result["bad"]
    assert check["changed"] is True and applied["changed"] is True and again["changed"] is False
    assert check["plan"] == applied["plan"]
    assert check["diff"]["after"]["services"]["IIS"] == [new]
    assert check["diff"]["before"]["services"]["IIS"] == [old]
    assert applied["internal_transport_thumbprint"] == transport
    assert bad["failed"] is True and "'OWA'" in bad["msg"]

    # Only the applying task changed anything: check mode, the second run and the bad input sent nothing.
    assert [m["operation"] for m in lab.mutations()] == [
        "Enable-ExchangeCertificate", "Enable-ExchangeCertificate", "host.recycle_app_pool", "host.recycle_app_pool"]
    after = lab.dump()["servers"]["ex1"]
    assert after["internal_transport_thumbprint"] == transport  # safety invariant 5
    assert served_thumbprint(https) == new  # a real TLS handshake sees the new binding
    assert len(ledger.read_text(encoding="utf-8").splitlines()) == 1
