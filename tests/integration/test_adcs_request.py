# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.adcs_request through ansible-playbook over winrm against the lab's AD CS: a request that needs
approval is submitted once (check mode first), stays pending, is approved by the lab's CA administrator, and is
retrieved by the next play; a bad ca_config is refused. Submissions are counted in the lab's mutation log."""

from __future__ import annotations

import hashlib
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from tests.integration.conftest import Lab

TEMPLATE = "ExchangeManual"  # the dag scenario's template that needs a CA administrator's approval


def submissions(lab: Lab) -> list[dict]:
    return [m for m in lab.mutations() if m["operation"] == "host.certreq_submit"]


def test_submit_once_pending_approve_retrieve(dag_lab: Lab, playbook, tmp_path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = tmp_path / "mail.csr"
    csr.write_bytes(
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.contoso.lab")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM),
    )
    config = dag_lab.dump()["organization"]["ca"]["config"]
    certificate, ledger = tmp_path / "mail.pem", tmp_path / "ledger.jsonl"
    common = f"""csr_path: {csr}
            ca_config: {json.dumps(config)}
            template: {TEMPLATE}
            certificate_path: {certificate}
            ledger: {ledger}"""
    submit = f"""\
        - name: Submit in check mode
          exchange.pki.adcs_request:
            {common}
          check_mode: true
          register: checked
        - name: Submit
          exchange.pki.adcs_request:
            {common}
          register: submitted
        - name: Run again while the request is pending
          exchange.pki.adcs_request:
            {common}
          register: pending
        - name: A ca_config with a line break
          exchange.pki.adcs_request:
            {common.replace(json.dumps(config), json.dumps(config + chr(10) + "x"))}
          register: bad
          ignore_errors: true
        - name: Collect
          ansible.builtin.set_fact:
            result: {{checked: "{{{{ checked }}}}", submitted: "{{{{ submitted }}}}", pending: "{{{{ pending }}}}",
                     bad: "{{{{ bad }}}}"}}
        """
    first = playbook(dag_lab, submit, hosts="ex1")
    assert first.returncode == 0, first.stdout + first.stderr
    result = first.result("ex1")
    (request,) = dag_lab.dump()["organization"]["ca"]["requests"]
    assert len(submissions(dag_lab)) == 1  # check mode sent nothing, the rerun did not submit again
    assert result["checked"]["changed"] is True and result["checked"]["status"] is None
    assert result["submitted"]["changed"] is True and result["submitted"]["status"] == "pending"
    assert result["submitted"].get("failed") is not True
    assert result["submitted"]["request_id"] == request["id"] and request["status"] == "Pending"
    assert result["pending"]["changed"] is False and result["pending"]["status"] == "pending"
    assert result["bad"]["failed"] is True and "control characters" in result["bad"]["msg"]
    assert not certificate.exists()

    dag_lab.control("ca", "approve", str(request["id"]))
    retrieve = f"""\
        - name: Retrieve the approved request
          exchange.pki.adcs_request:
            {common}
          register: issued
        - name: Retrieve again
          exchange.pki.adcs_request:
            {common}
          register: again
        - name: Collect
          ansible.builtin.set_fact:
            result: {{issued: "{{{{ issued }}}}", again: "{{{{ again }}}}"}}
        """
    second = playbook(dag_lab, retrieve, hosts="ex2")  # another member: the state file is on the controller
    assert second.returncode == 0, second.stdout + second.stderr
    result = second.result("ex2")
    (request,) = dag_lab.dump()["organization"]["ca"]["requests"]
    assert len(submissions(dag_lab)) == 1
    assert result["issued"]["status"] == "issued" and result["issued"]["changed"] is True
    assert result["again"]["changed"] is False
    der = x509.load_pem_x509_certificate(certificate.read_bytes()).public_bytes(serialization.Encoding.DER)
    assert hashlib.sha1(der).hexdigest().upper() == request["thumbprint"] == result["issued"]["thumbprint"]  # noqa: S324
    assert [(r.action, r.result) for r in read_records(ledger)] == [("adcs_submit", "changed"),
                                                                    ("adcs_retrieve", "changed")]
