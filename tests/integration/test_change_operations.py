# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every changing operation of exchange.pki.exchange_batch, end to end, checked against the lab's dump.

One lab per module: the tests run in file order and build on each other's state the way an
administrator's renewal would (request -> AD CS -> complete -> bind -> distribute -> tag -> stage Auth).
"""

from __future__ import annotations

import hashlib
import smtplib
import socket
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from .conftest import Lab, start_lab

NEW_NAMES = ["mail.contoso.lab", "autodiscover.contoso.lab", "owa.contoso.lab"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    started = start_lab(tmp_path_factory.mktemp("lab-change"), "--scenario", "dag")
    try:
        yield started
    finally:
        started.control("stop")


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in result["results"]}


def _unverified_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _thumbprint(der: bytes | None) -> str:
    assert der is not None, "no certificate was served"
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the Windows thumbprint


def served_thumbprint(port: int) -> str:
    """The thumbprint of the certificate a real TLS handshake receives on 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            _unverified_context().wrap_socket(raw, server_hostname="mail.contoso.lab") as tls:
        return _thumbprint(tls.getpeercert(binary_form=True))


def smtp_served_thumbprint(port: int) -> str:
    """The thumbprint of the certificate offered after EHLO / STARTTLS on the lab's SMTP port."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=_unverified_context())
        return _thumbprint(smtp.sock.getpeercert(binary_form=True))


def my_store(dump: dict[str, Any], server: str) -> dict[str, dict[str, Any]]:
    return {c["thumbprint"]: c for c in dump["servers"][server]["certificates"]["My"]}


CHANGES = """\
- name: Request a certificate with a key made on the server
  exchange.pki.exchange_batch:
    operations:
      - id: csr
        op: New-ExchangeCertificate
        args:
          GenerateRequest: true
          SubjectName: "C=US,O=Contoso,CN=mail.contoso.lab"
          DomainName: {names}
          PrivateKeyExportable: true
          FriendlyName: mail 2027
  register: csr
- name: Have the enterprise CA sign it
  exchange.pki.exchange_batch:
    operations:
      - id: submit
        op: host.certreq_submit
        args:
          request: {{"$bytes": "{{{{ csr.results[0].value.FileData }}}}"}}
          config: "{config}"
          template: WebServer
  register: issued
- name: Complete the pending request on the originating server
  exchange.pki.exchange_batch:
    operations:
      - id: import
        op: Import-ExchangeCertificate
        args:
          FileData: {{"$bytes": "{{{{ issued.results[0].value.Certificate }}}}"}}
  register: imported
- name: Bind, distribute, tag and stage in one batch
  vars:
    new: "{{{{ imported.results[0].value[0].Thumbprint }}}}"
    tls_name: "<I>{{{{ imported.results[0].value[0].Issuer }}}}<S>{{{{ imported.results[0].value[0].Subject }}}}"
  exchange.pki.exchange_batch:
    operations:
      - {{id: enable, op: Enable-ExchangeCertificate,
         args: {{Thumbprint: "{{{{ new }}}}", Services: [IIS, SMTP], Force: true}}}}
      - {{id: restore, op: Enable-ExchangeCertificate,
         args: {{Thumbprint: "{internal}", Services: [SMTP], Force: true}}}}
      - {{id: export, op: Export-ExchangeCertificate,
         args: {{Thumbprint: "{{{{ new }}}}", Password: {{"$secret": pfx}}}}}}
      - {{id: backend, op: host.set_iis_binding, args: {{site: Exchange Back End, binding_information: "*:444:",
         certificate_hash: "{{{{ new }}}}"}}}}
      - {{id: tag, op: Set-SendConnector, args: {{Identity: Internet, TlsCertificateName: "{{{{ tls_name }}}}"}}}}
      - {{id: receive, op: Set-ReceiveConnector,
         args: {{Identity: "ex1\\\\Default Frontend EX1", TlsCertificateName: "{{{{ tls_name }}}}"}}}}
      - {{id: recycle, op: host.recycle_app_pool, args: {{name: MSExchangeOWAAppPool}}}}
      - {{id: restart, op: host.restart_service, args: {{name: MSExchangeServiceHost}}}}
      - {{id: remove, op: Remove-ExchangeCertificate, args: {{Thumbprint: "{{{{ new }}}}"}}}}
      - {{id: iisreset, op: host.iis_reset}}
    secrets: {{pfx: "Batch-Secret-7"}}
  register: bound
- name: Push the exported PFX to a second server (remote import, -Server)
  exchange.pki.exchange_batch:
    operations:
      - id: push
        op: Import-ExchangeCertificate
        args:
          Server: ex2
          FileData: {{"$bytes": "{{{{ (bound.results | selectattr('id', 'eq', 'export') | first).value.FileData }}}}"}}
          Password: {{"$secret": pfx}}
          PrivateKeyExportable: true
    secrets: {{pfx: "Batch-Secret-7"}}
  register: result
- name: Keep every step's answer
  ansible.builtin.set_fact:
    result: "{{{{ {{'csr': csr, 'issued': issued, 'imported': imported, 'bound': bound, 'push': result}} }}}}"
"""


def changes_play(dump: dict[str, Any]) -> str:
    return CHANGES.format(
        names=NEW_NAMES,
        config=dump["organization"]["ca"]["config"].replace("\\", "\\\\"),
        internal=dump["servers"]["ex1"]["internal_transport_thumbprint"],
    )


def test_check_mode_changes_nothing(lab, playbook):
    before = lab.dump()
    run = playbook(lab, """\
        - name: Every changing operation, in check mode
          exchange.pki.exchange_batch:
            operations:
              - {id: csr, op: New-ExchangeCertificate, args: {GenerateRequest: true, SubjectName: CN=x.contoso.lab}}
              - {id: restart, op: host.restart_service, args: {name: MSExchangeServiceHost}}
              - {id: read, op: Get-AuthConfig}
          register: result
        """, hosts="ex1", extra_args=("--check",))
    assert run.returncode == 0, run.stdout + run.stderr
    ops = by_id(run.result("ex1"))
    assert ops["csr"]["status"] == "skipped" and ops["csr"]["check_mode"] is True
    assert ops["restart"]["status"] == "skipped"
    assert ops["read"]["status"] == "ok"
    after = lab.dump()
    assert after["mutations"] == before["mutations"] == []
    assert after["servers"] == before["servers"]


def test_renewal_steps_change_the_lab_as_exchange_would(lab, playbook):
    before = lab.dump()
    ports = lab.endpoints()["servers"]
    old_iis = before["servers"]["ex1"]["iis_bindings"][0]["certificate_hash"]
    assert served_thumbprint(ports["ex1"]["https"]) == old_iis

    run = playbook(lab, changes_play(before), hosts="ex1")
    assert run.returncode == 0, run.stdout + run.stderr
    steps = run.result("ex1")
    assert steps["issued"]["results"][0]["value"]["Status"] == "Issued"
    new = steps["imported"]["results"][0]["value"][0]["Thumbprint"]
    ops = by_id(steps["bound"])

    after = lab.dump()
    ex1 = my_store(after, "ex1")
    assert ex1[new]["has_private_key"] and ex1[new]["exportable"] and ex1[new]["status"] == "Valid"
    assert after["servers"]["ex1"]["certificates"]["REQUEST"] == [], "the pending request was completed"
    assert {"IIS", "SMTP"} <= set(ex1[new]["services"])
    # -Force replaced the internal transport certificate; the next operation put it back.
    internal = before["servers"]["ex1"]["internal_transport_thumbprint"]
    assert after["servers"]["ex1"]["internal_transport_thumbprint"] == internal
    bindings = {b["binding_information"]: b["certificate_hash"] for b in after["servers"]["ex1"]["iis_bindings"]}
    assert bindings == {"*:443:": new, "*:444:": new}
    assert served_thumbprint(ports["ex1"]["https"]) == new, "the real HTTPS endpoint serves the new binding"
    assert served_thumbprint(ports["ex1"]["back_end"]) == new
    # The frontend receive connector names the new certificate, so STARTTLS offers it.
    assert smtp_served_thumbprint(ports["ex1"]["smtp"]) == new
    # The Send connector now names the certificate, so Exchange refuses to remove it and the batch stops.
    assert ops["remove"]["status"] == "failed"
    assert "Send Connector" in ops["remove"]["error"]["message"]
    assert ops["iisreset"]["status"] == "skipped"
    assert new in my_store(after, "ex1")
    imported = steps["imported"]["results"][0]["value"][0]
    tls_name = f"<I>{imported['Issuer']}<S>{imported['Subject']}"
    assert after["organization"]["send_connectors"][0]["TlsCertificateName"] == tls_name
    frontend = next(c for c in after["servers"]["ex1"]["receive_connectors"] if c["Name"] == "Default Frontend EX1")
    assert frontend["TlsCertificateName"] == tls_name
    # Distributed: the same certificate (and key) on ex2, pushed from ex1.
    assert steps["push"]["results"][0]["status"] == "ok", steps["push"]
    assert my_store(after, "ex2")[new]["has_private_key"]
    # One mutation per successful changing operation, in order; no secret anywhere in the dump.
    operations = [m["operation"] for m in after["mutations"]]
    assert operations == [
        "New-ExchangeCertificate", "host.certreq_submit", "Import-ExchangeCertificate",
        "Enable-ExchangeCertificate", "Enable-ExchangeCertificate", "host.set_iis_binding",
        "Set-SendConnector", "Set-ReceiveConnector", "host.recycle_app_pool", "host.restart_service",
        "Import-ExchangeCertificate",
    ]
    assert "Batch-Secret-7" not in str(after) and "Batch-Secret-7" not in run.stdout + run.stderr


def test_auth_staging_is_published_by_the_servicelet_after_the_clock_passes(lab, playbook):
    dump = lab.dump()
    auth_thumbprint = dump["organization"]["auth_config"]["CurrentCertificateThumbprint"]
    effective = datetime.fromisoformat(dump["clock"]["now"].replace("Z", "+00:00")) + timedelta(hours=49)
    run = playbook(lab, """\
        - name: Create a new Auth certificate and stage it 49 hours ahead
          exchange.pki.exchange_batch:
            operations:
              - id: new
                op: New-ExchangeCertificate
                args:
                  KeySize: 2048
                  PrivateKeyExportable: true
                  SubjectName: "cn=Microsoft Exchange Server Auth Certificate"
                  FriendlyName: Microsoft Exchange Server Auth Certificate
                  DomainName: []
                  Services: [SMTP]
                  Force: true
          register: created
        - name: Stage it
          exchange.pki.exchange_batch:
            operations:
              - id: stage
                op: Set-AuthConfig
                args:
                  NewCertificateThumbprint: "{{ created.results[0].value.Thumbprint }}"
                  NewCertificateEffectiveDate: {"$datetime": "EFFECTIVE"}
          register: result
        """.replace("EFFECTIVE", effective.strftime("%Y-%m-%dT%H:%M:%SZ")), hosts="ex1")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.result("ex1")["results"][0]["status"] == "ok", run.result("ex1")
    staged = lab.dump()["organization"]["auth_config"]
    assert staged["CurrentCertificateThumbprint"] == auth_thumbprint
    new = staged["NextCertificateThumbprint"]
    assert new and new != auth_thumbprint

    lab.control("clock", "--advance", "2d12h")
    published = lab.dump()["organization"]["auth_config"]
    assert published["CurrentCertificateThumbprint"] == new
    assert published["PreviousCertificateThumbprint"] == auth_thumbprint
    assert published["NextCertificateThumbprint"] is None
    events = [e for s in lab.dump()["servers"].values() for e in s["application_log"]]
    assert any(e.get("event_id") == 2014 for e in events), events


@pytest.mark.parametrize(("decision", "status"), [("approve", "Issued"), ("deny", "Denied")])
def test_pending_enterprise_request_follows_the_ca_managers_decision(lab, playbook, decision, status):
    config = lab.dump()["organization"]["ca"]["config"].replace("\\", "\\\\")
    submit = playbook(lab, f"""\
        - name: Request on a template that needs a CA manager's approval
          exchange.pki.exchange_batch:
            operations:
              - {{id: csr, op: New-ExchangeCertificate,
                 args: {{GenerateRequest: true, SubjectName: "CN=pending-{decision}.contoso.lab"}}}}
          register: csr
        - name: Submit it
          exchange.pki.exchange_batch:
            operations:
              - id: submit
                op: host.certreq_submit
                args:
                  request: {{"$bytes": "{{{{ csr.results[0].value.FileData }}}}"}}
                  config: "{config}"
                  template: ExchangeManual
          register: result
        """, hosts="ex1")
    assert submit.returncode == 0, submit.stdout + submit.stderr
    pending = submit.result("ex1")["results"][0]["value"]
    assert pending["Status"] == "Pending" and pending["Certificate"] is None
    request_id = pending["RequestId"]

    lab.control("ca", decision, str(request_id))
    retrieve = playbook(lab, f"""\
        - name: Retrieve the decision
          exchange.pki.exchange_batch:
            operations:
              - {{id: retrieve, op: host.certreq_retrieve, args: {{config: "{config}", request_id: {request_id}}}}}
          register: result
        """, hosts="ex1")
    assert retrieve.returncode == 0, retrieve.stdout + retrieve.stderr
    value = retrieve.result("ex1")["results"][0]["value"]
    assert value["Status"] == status
    assert (value["Certificate"] is not None) is (status == "Issued")
    ca_request = next(r for r in lab.dump()["organization"]["ca"]["requests"] if r["id"] == request_id)
    assert ca_request["status"] == status


def test_removing_an_unreferenced_request_and_resetting_iis(lab, playbook):
    before = lab.dump()
    run = playbook(lab, """\
        - name: Make a request nobody will complete
          exchange.pki.exchange_batch:
            operations:
              - id: csr
                op: New-ExchangeCertificate
                args: {GenerateRequest: true, SubjectName: CN=abandoned.contoso.lab}
              - {id: pending, op: Get-ExchangeCertificate}
          register: made
        - name: Remove it, then reset IIS
          vars:
            pending: >-
              {{ made.results[1].value | selectattr('Status', 'eq', 'PendingRequest') | map(attribute='Thumbprint') }}
          exchange.pki.exchange_batch:
            operations:
              - {id: remove, op: Remove-ExchangeCertificate, args: {Thumbprint: "{{ pending | first }}"}}
              - {id: iisreset, op: host.iis_reset}
          register: result
        """, hosts="ex2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert [r["status"] for r in run.result("ex2")["results"]] == ["ok", "ok"]
    after = lab.dump()
    assert after["servers"]["ex2"]["certificates"]["REQUEST"] == before["servers"]["ex2"]["certificates"]["REQUEST"]
    assert len(after["servers"]["ex2"]["iis_resets"]) == len(before["servers"]["ex2"]["iis_resets"]) + 1
    assert [m["operation"] for m in after["mutations"][len(before["mutations"]):]] == [
        "New-ExchangeCertificate", "Remove-ExchangeCertificate", "host.iis_reset"]
