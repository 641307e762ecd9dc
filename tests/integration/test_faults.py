# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Faults and refusals surface as clear task results or failures through the real winrm connection."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import Lab, start_variant_lab

READ_CERTS = """\
- name: Read certificates
  exchange.pki.exchange_batch:
    operations:
      - {id: certs, op: Get-ExchangeCertificate}
      - {id: info, op: host.info}
  register: result
  ignore_errors: true
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The `single` scenario plus a server whose Exchange session meets the double hop and one without Exchange."""
    double_hop = {"name": "ex9", "exchange_session": "double_hop"}
    no_exchange = {"name": "ex8", "exchange_session": "no_exchange"}
    started = start_variant_lab(tmp_path_factory, "faults", servers=(double_hop, no_exchange))
    try:
        yield started
    finally:
        started.control("stop")


def test_injected_error_fails_that_operation_only_and_only_as_often_as_asked(lab, playbook):
    lab.control("fault", "--server", "ex1", "--operation", "Get-ExchangeCertificate",
                "--error", "The Microsoft Exchange Replication service is not running", "--times", "1")
    first = playbook(lab, READ_CERTS, hosts="ex1")
    ops = {r["id"]: r for r in first.result("ex1")["results"]}
    assert ops["certs"]["status"] == "failed"
    assert ops["certs"]["error"]["message"] == "The Microsoft Exchange Replication service is not running"
    assert ops["info"]["status"] == "ok", "a failed reading operation does not stop the batch"
    second = playbook(lab, READ_CERTS, hosts="ex1")
    assert second.result("ex1")["results"][0]["status"] == "ok", "--times 1 is spent"


def test_latency_beyond_the_operation_timeout_is_answered_by_polling(lab, playbook):
    lab.control("fault", "--server", "ex1", "--operation", "host.info", "--latency", "7", "--times", "1")
    run = playbook(lab, READ_CERTS, hosts="ex1", host_vars={
        "ansible_winrm_operation_timeout_sec": 3, "ansible_winrm_read_timeout_sec": 5})
    assert run.returncode == 0, run.stdout + run.stderr
    assert {r["status"] for r in run.result("ex1")["results"]} == {"ok"}


def test_dropped_connection_fails_the_task(lab, playbook):
    lab.control("fault", "--server", "ex1", "--operation", "Get-ExchangeCertificate", "--drop", "--times", "1")
    run = playbook(lab, READ_CERTS.replace("  ignore_errors: true\n", ""), hosts="ex1")
    assert run.returncode != 0
    assert "ex1" not in run.results
    assert "ex1" in run.stdout and ("UNREACHABLE" in run.stdout or "FAILED" in run.stdout)


def test_unreachable_server_is_reported_unreachable_and_recovers(lab, playbook):
    lab.control("fault", "--server", "ex1", "--unreachable")
    try:
        run = playbook(lab, READ_CERTS, hosts="ex1")
        assert run.returncode != 0
        assert "UNREACHABLE!" in run.stdout
    finally:
        lab.control("fault", "--server", "ex1", "--reachable")
    assert playbook(lab, READ_CERTS, hosts="ex1").returncode == 0


def test_double_hop_denies_exchange_but_not_the_host_and_an_explicit_credential_passes(lab, playbook):
    denied = playbook(lab, READ_CERTS, hosts="ex9")
    ops = {r["id"]: r for r in denied.result("ex9")["results"]}
    assert ops["certs"]["status"] == "failed"
    assert ops["certs"]["error"]["fully_qualified_error_id"] == "AccessDenied,PSSessionOpenFailed"
    assert "Access is denied" in ops["certs"]["error"]["message"]
    assert ops["info"]["status"] == "ok"
    assert denied.result("ex9")["exchange_session"]["opened"] is False

    explicit = playbook(lab, READ_CERTS.replace(
        "  register: result",
        "    exchange_username: '{{ ansible_user }}'\n"
        "    exchange_password: '{{ ansible_password }}'\n"
        "  register: result",
    ), hosts="ex9")
    assert {r["status"] for r in explicit.result("ex9")["results"]} == {"ok"}


def test_a_module_the_lab_does_not_implement_fails_clearly(lab, playbook):
    run = playbook(lab, """\
        - name: Something no lab host can run
          ansible.windows.win_shell: Get-Process
          register: result
          ignore_errors: true
        """, hosts="ex1")
    result = run.result("ex1")
    assert result["failed"] is True
    assert "win_shell" in result["msg"]


# --- certificate_info names each failure (failure_reason, issue 6) ------------------------------------------

WRONG_PASSWORD = "Wrong-Password-7c1e"  # noqa: S105 - must never reach any output


def inventory_task(**options: str) -> str:
    return f"""\
- name: Inventory
  exchange.pki.certificate_info: {json.dumps(options)}
  register: result
  ignore_errors: true
  ignore_unreachable: true
"""


def test_a_dropped_connection_is_unreachable_with_its_reason_not_a_bug(lab, playbook):
    lab.control("fault", "--server", "ex1", "--operation", "Get-ExchangeCertificate", "--drop", "--times", "1")
    run = playbook(lab, inventory_task(), hosts="ex1")
    result = run.result("ex1")
    assert result.get("unreachable") is True, result
    assert result["failure_reason"] == "connection_dropped"
    assert "Unexpected failure" not in result["msg"] and "exception" not in result
    assert "Unexpected failure" not in run.stdout


def test_a_wrong_explicit_password_is_authentication_refused(lab, playbook):
    run = playbook(lab, inventory_task(exchange_username="CONTOSO\\ansible", exchange_password=WRONG_PASSWORD),
                   hosts="ex1")
    result = run.result("ex1")
    assert result["failed"] is True
    assert result["failure_reason"] == "authentication_refused"
    assert "user name or password is incorrect" in result["msg"]
    assert "double hop" not in result["msg"] and "Exchange server" not in result["msg"]
    assert WRONG_PASSWORD not in run.stdout + run.stderr + json.dumps(result)


def test_an_account_without_exchange_roles_is_access_denied_naming_the_roles(lab, playbook):
    result = playbook(lab, inventory_task(exchange_username="CONTOSO\\helpdesk", exchange_password="Help-Desk-2026!"),
                      hosts="ex1").result("ex1")
    assert result["failed"] is True
    assert result["failure_reason"] == "access_denied"
    assert "RBAC" in result["msg"] and "View-Only Organization Management" in result["msg"]
    assert "is an Exchange server" not in result["msg"] and "double hop" not in result["msg"]


def test_the_double_hop_is_access_denied_with_its_remedies(lab, playbook):
    result = playbook(lab, inventory_task(), hosts="ex9").result("ex9")
    assert result["failed"] is True
    assert result["failure_reason"] == "access_denied"
    assert "double hop" in result["msg"] and "become" in result["msg"]


def test_a_host_without_the_exchange_endpoint_is_exchange_unavailable(lab, playbook):
    result = playbook(lab, inventory_task(), hosts="ex8").result("ex8")
    assert result["failed"] is True
    assert result["failure_reason"] == "exchange_unavailable"


def test_rejected_connection_credentials_are_unreachable_authentication_refused(lab, playbook):
    run = playbook(lab, inventory_task(), hosts="ex1", host_vars={"ansible_password": WRONG_PASSWORD})
    result = run.result("ex1")
    assert result.get("unreachable") is True, result
    assert result["failure_reason"] == "authentication_refused"
    assert WRONG_PASSWORD not in run.stdout + run.stderr


def test_a_hostile_exchange_uri_fails_naming_the_option(lab, playbook):
    result = playbook(lab, inventory_task(exchange_uri="file:///etc/hostname"), hosts="ex1").result("ex1")
    assert result["failed"] is True
    assert result["failure_reason"] == "failed"
    assert "exchange_uri must be an http" in result["msg"]


def test_a_connection_dropped_while_a_change_is_sent_is_recorded_with_its_unknown_steps(lab, playbook, tmp_path):
    """The connection breaks while New-ExchangeCertificate -GenerateRequest runs: the task is unreachable
    (connection_dropped), its step is ``unknown``, and the ledger records the attempt as failed, naming it."""
    ledger = tmp_path / "ledger.jsonl"
    request = f"""\
- name: Request
  exchange.pki.certificate_request:
    subject: CN=drop.contoso.lab
    dns_names: [drop.contoso.lab]
    ledger: {ledger}
  register: result
  ignore_errors: true
  ignore_unreachable: true
"""
    lab.control("fault", "--server", "ex1", "--operation", "New-ExchangeCertificate", "--drop", "--times", "1")
    run = playbook(lab, request, hosts="ex1")
    result = run.result("ex1")
    assert result.get("unreachable") is True and result["failure_reason"] == "connection_dropped", result
    assert [(step["operation"], step["status"]) for step in result["steps"]] == [("New-ExchangeCertificate", "unknown")]
    assert "New-ExchangeCertificate" in result["msg"] and "Unexpected failure" not in result["msg"]
    (record,) = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]
    assert record["result"] == "failed" and "New-ExchangeCertificate" in record["message"], record

    again = playbook(lab, request, hosts="ex1").result("ex1")
    assert not again.get("failed") and not again.get("unreachable"), again
    assert again["thumbprint"] and again["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
