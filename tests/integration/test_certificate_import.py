# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.certificate_import through ansible-playbook over winrm against the lab.

A request is made on ex1 (first run); a CA made here issues the certificate; the second run imports it in check
mode, on ex2 (refused: the request is ex1's), for real on ex1, and again. Expectations come from the lab's dump.
"""

from __future__ import annotations

import datetime
import json

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.integration.conftest import Lab

REQUEST = """\
- name: Request on ex1
  exchange.pki.certificate_request:
    subject: C=US,O=Contoso,CN=mail.contoso.lab
    dns_names: [autodiscover.contoso.lab]
  register: result
"""

IMPORT = """\
- name: Import in check mode
  exchange.pki.certificate_import:
    src: "{src}"
  check_mode: true
  diff: true
  register: checked
  when: inventory_hostname == 'ex1'
- name: Import on the server that did not make the request
  exchange.pki.certificate_import:
    src: "{src}"
  register: elsewhere
  ignore_errors: true
  when: inventory_hostname == 'ex2'
- name: Import
  exchange.pki.certificate_import:
    src: "{src}"
  register: applied
  when: inventory_hostname == 'ex1'
- name: Import again
  exchange.pki.certificate_import:
    src: "{src}"
  register: again
  when: inventory_hostname == 'ex1'
- name: Collect
  ansible.builtin.set_fact:
    result:
      checked: "{{{{ checked }}}}"
      elsewhere: "{{{{ elsewhere }}}}"
      applied: "{{{{ applied }}}}"
      again: "{{{{ again }}}}"
"""


def _ca_issue(csr: x509.CertificateSigningRequest) -> tuple[x509.Certificate, x509.Certificate]:
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fabrikam Integration CA")])
    root = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca_name).public_key(csr.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .sign(ca_key, hashes.SHA256()))
    return leaf, root


def test_complete_on_the_requesting_server_only(dag_lab: Lab, playbook, tmp_path) -> None:
    requested = playbook(dag_lab, REQUEST, hosts="ex1")
    assert requested.returncode == 0, requested.stdout + requested.stderr
    csr = x509.load_pem_x509_csr(requested.result("ex1")["csr"].encode("ascii"))
    leaf, root = _ca_issue(csr)
    src = tmp_path / "mail.cer"
    src.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM))
    thumbprint = leaf.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the Windows thumbprint

    run = playbook(dag_lab, IMPORT.format(src=src), hosts="ex1,ex2")
    assert run.returncode == 0, run.stdout + run.stderr
    ex1, ex2 = run.result("ex1"), run.result("ex2")
    dump = dag_lab.dump()
    operations = [m["operation"] for m in dump["mutations"]]
    assert operations == ["New-ExchangeCertificate", "Import-ExchangeCertificate"]  # check mode and ex2 sent nothing

    assert ex1["checked"]["changed"] is True and ex1["checked"]["completed_request"] is True
    assert ex1["checked"]["diff"]["after"]["certificate"]["thumbprint"] == thumbprint
    assert ex2["elsewhere"]["failed"] is True
    assert "can only be completed on the server that generated it" in ex2["elsewhere"]["msg"]

    my = {c["thumbprint"]: c for c in dump["servers"]["ex1"]["certificates"]["My"]}
    assert my[thumbprint]["has_private_key"] is True
    assert dump["servers"]["ex1"]["certificates"]["REQUEST"] == []
    assert ex1["applied"]["changed"] is True and ex1["applied"]["thumbprint"] == thumbprint
    assert any("not in LocalMachine\\Root" in warning for warning in ex1["applied"]["warnings"])
    assert ex1["again"]["changed"] is False


KEYED = """\
- name: Import with the controller's key in check mode
  exchange.pki.certificate_import:
    src: "{src}"
    private_key_path: "{key}"
    private_key_password: "{password}"
  check_mode: true
  register: checked
- name: Import with the controller's key
  exchange.pki.certificate_import:
    src: "{src}"
    private_key_path: "{key}"
    private_key_password: "{password}"
    ledger: "{ledger}"
  register: applied
- name: Import again
  exchange.pki.certificate_import:
    src: "{src}"
    private_key_path: "{key}"
    private_key_password: "{password}"
  register: again
- name: A key that is not the certificate's
  exchange.pki.certificate_import:
    src: "{src}"
    private_key_path: "{other}"
  register: mismatch
  ignore_errors: true
- name: Collect
  ansible.builtin.set_fact:
    result:
      checked: "{{{{ checked }}}}"
      applied: "{{{{ applied }}}}"
      again: "{{{{ again }}}}"
      mismatch: "{{{{ mismatch }}}}"
"""


def test_a_certificate_with_its_key_on_the_controller_on_exchange_2016(dag_lab: Lab, playbook, tmp_path) -> None:
    password = "Key-pa$$-2027"  # noqa: S105 - the test's own secret, grepped for below
    key, other = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _attempt in range(2))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "owa.contoso.lab")])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("owa.contoso.lab")]), critical=False)
           .sign(key, hashes.SHA256()))
    leaf, root = _ca_issue(csr)
    src, key_path, other_path = tmp_path / "owa.crt", tmp_path / "owa.key", tmp_path / "other.key"
    src.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(password.encode())))
    other_path.write_bytes(other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    thumbprint = leaf.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the Windows thumbprint
    before = len(dag_lab.mutations())

    run = playbook(dag_lab, KEYED.format(src=src, key=key_path, other=other_path, password=password,
                                         ledger=tmp_path / "ledger.jsonl"), hosts="ex4")
    assert run.returncode == 0, run.stdout + run.stderr
    ex4 = run.result("ex4")
    assert ex4["checked"]["changed"] is True and ex4["checked"]["pfx_built"] == "legacy"
    assert ex4["applied"]["changed"] is True and ex4["applied"]["thumbprint"] == thumbprint
    assert ex4["again"]["changed"] is False
    assert ex4["mismatch"]["failed"] is True and "does not belong to the certificate" in ex4["mismatch"]["msg"]
    dump = dag_lab.dump()
    assert [m["operation"] for m in dump["mutations"][before:]] == ["Import-ExchangeCertificate"]
    my = {c["thumbprint"]: c for c in dump["servers"]["ex4"]["certificates"]["My"]}
    assert my[thumbprint]["has_private_key"] is True
    # (stdout is left out: ansible-core quotes the playbook's own lines, password included, around a failed task)
    shown = run.stderr + (tmp_path / "ledger.jsonl").read_text() + json.dumps(ex4)
    assert password not in shown
    assert all(line not in shown for line in key_path.read_text().splitlines()[1:-1])
