# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.ledger_info through ansible-playbook, over the ledger a lifecycle module wrote against the lab.

One play on ex1 of the `dag` lab: certificate_request makes a request (its record goes to the ledger through
module_defaults of the lifecycle group), then ledger_info on the controller answers who did what where, in
check mode too, and refuses a filter with a line break; the query changes nothing on the server. The renewal's
record (ledger_record, naming the identity) then makes it a renewed certificate, and the report role, given
``report_ledger``, tells its story.
"""

from __future__ import annotations

import json

from .conftest import Lab


def test_ledger_info_reads_what_a_lifecycle_module_recorded(dag_lab: Lab, playbook, tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    tasks = f"""\
        - name: Make a new request on the server, recorded in the ledger
          module_defaults:
            group/exchange.pki.lifecycle:
              ledger: {ledger}
          exchange.pki.certificate_request:
            subject: "C=US,O=Contoso,CN=ledger-info.contoso.lab"
          register: request
        - name: What happened on this server, today
          exchange.pki.ledger_info:
            ledger: {ledger}
            server: "{{{{ inventory_hostname }}}}"
            since: "{{{{ '%Y-%m-%d' | strftime(utc=true) }}}}"
            actions: [certificate_request]
          delegate_to: localhost
          register: history
        - name: The same in check mode
          exchange.pki.ledger_info:
            ledger: {ledger}
            limit: 1
          delegate_to: localhost
          check_mode: true
          register: checked
        - name: A filter with a line break is refused
          exchange.pki.ledger_info:
            ledger: {ledger}
            identity: "id-1\\r\\nid-2"
          delegate_to: localhost
          register: refused
          ignore_errors: true
        - name: Record the renewal the way the renewal role does
          exchange.pki.ledger_record:
            ledger: {ledger}
            action: renewal_failed
            result: failed
            server: "{{{{ inventory_hostname | upper }}}}"
            after: {{identity: id-integration, thumbprint: "{{{{ request.thumbprint }}}}", step: issue}}
            message: the CA did not answer
          delegate_to: localhost
        - name: Report with the ledger's stories
          ansible.builtin.include_role:
            name: exchange.pki.report
          vars:
            report_dest: {tmp_path}/report
            report_formats: [json, csv]
            report_ledger: {ledger}
            report_show_summary: false
        - name: Keep the answers
          ansible.builtin.set_fact:
            result: "{{{{ {{'request': request, 'history': history, 'checked': checked, 'refused': refused}} }}}}"
        """
    made = len(dag_lab.mutations())
    run = playbook(dag_lab, tasks, hosts="ex1")

    assert run.returncode == 0, run.stdout + run.stderr
    answers = run.result("ex1")
    stored = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]
    record, renewal = stored
    assert record["action"] == "certificate_request" and record["host"] == "ex1"
    assert answers["request"]["change_record"] == record

    history = answers["history"]
    assert history["changed"] is False and history["failed"] is False
    assert history["records"] == [record] and history["count"] == history["matched"] == 1
    assert " as " in record["who"]  # the controller user as the WinRM user
    assert answers["checked"]["records"] == [record]  # the renewal was recorded after

    refused = answers["refused"]
    assert refused["failed"] is True
    assert refused["msg"] == "identity contains a control character (CR, LF, NUL or another); give one line"

    report = json.loads((tmp_path / "report" / "exchange_pki_report.json").read_text(encoding="utf-8"))
    (step,) = report["stories"]["id-integration"]
    assert (step["action"], step["stage"], step["result"], step["server"]) == (
        "renewal_failed", "failed", "failed", "EX1")
    assert step["after"]["thumbprint"] == answers["request"]["thumbprint"] == renewal["after"]["thumbprint"]
    assert (tmp_path / "report" / "exchange_pki_ledger.csv").read_text(encoding="utf-8").count("\n") == 2

    operations = [mutation["operation"] for mutation in dag_lab.mutations()[made:]]
    assert operations == ["New-ExchangeCertificate"]  # the request; the queries changed nothing
