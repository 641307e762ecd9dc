# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The executor emulation: arguments, typed values, ordering, check mode, session, faults (docs/remote-protocol.md)."""

from __future__ import annotations

import threading

import pytest

from tests.lab.model import DroppedConnection, Fleet, UnknownModule
from tests.lab.tests.model_fixtures import MODULE, NOW, PASSWORD, as_bytes, batch, error, fleet_with, op, value


@pytest.fixture
def fleet() -> Fleet:
    return Fleet.from_scenario("single", now=NOW)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"operations": [op("a", "Get-Mailbox")]}, "unknown op 'Get-Mailbox'"),
        ({"operations": [op("a", "Get-ExchangeCertificate", Identity="x")]}, "unknown parameter 'Identity'"),
        (
            {"operations": [op("a", "Export-ExchangeCertificate", Thumbprint="AB", Password={"$secret": "pw"})]},
            "secret 'pw'",
        ),
        ({"operations": [op("a", "Import-ExchangeCertificate", FileData={"$bytes": "%%%"})]}, "invalid base64"),
        (
            {"operations": [op("a", "Set-AuthConfig", NewCertificateEffectiveDate={"$datetime": "tomorrow"})]},
            "invalid $datetime",
        ),
        ({"operations": [op("a", "Import-ExchangeCertificate", FileData="not bytes")]}, "FileData"),
        ({"operations": [op("a", "host.info"), op("a", "host.info")]}, "unique"),
        ({"operations": [], "bogus": 1}, "Unsupported parameters"),
        ({"operations": [], "exchange_authentication": "CredSSP"}, "exchange_authentication"),
        ({}, "operations"),
    ],
)
def test_argument_errors_fail_the_module(fleet: Fleet, args: dict, message: str) -> None:
    result = fleet.run_module("ex1", MODULE, args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert fleet.dump()["mutations"] == []


def test_unknown_module_is_raised(fleet: Fleet) -> None:
    with pytest.raises(UnknownModule):
        fleet.run_module("ex1", "ansible.windows.win_shell", {})


def test_internal_ansible_options_are_ignored(fleet: Fleet) -> None:
    result = fleet.run_module("ex1", MODULE, {"operations": [op("a", "host.info")], "_ansible_check_mode": False})
    assert result["results"][0]["value"]["ComputerName"] == "EX1"


def test_typed_values_are_decoded_and_secrets_never_returned(fleet: Fleet) -> None:
    auth = value(fleet, "ex1", "Get-AuthConfig")["CurrentCertificateThumbprint"]
    result = batch(
        fleet, "ex1",
        op("export", "Export-ExchangeCertificate", Thumbprint=auth, Password={"$secret": "pfx"}),
        secrets={"pfx": PASSWORD},
    )  # fmt: skip
    assert result["results"][0]["status"] == "ok"
    assert result["results"][0]["value"]["FileData"]
    assert PASSWORD not in repr(result) and PASSWORD not in repr(fleet.dump())


def test_failed_changing_operation_stops_the_batch(fleet: Fleet) -> None:
    result = batch(
        fleet, "ex1",
        op("read-missing", "Get-ExchangeCertificate", Thumbprint="00" * 20),
        op("enable", "Enable-ExchangeCertificate", Thumbprint="00" * 20, Services=["IIS"]),
        op("after", "host.info"),
    )  # fmt: skip
    assert [item["status"] for item in result["results"]] == ["failed", "failed", "skipped"]
    assert result["changed"] is False


def test_failed_reading_operation_does_not_stop_the_batch(fleet: Fleet) -> None:
    result = batch(fleet, "ex1", op("missing", "Get-ExchangeCertificate", Thumbprint="AB"), op("info", "host.info"))
    assert [item["status"] for item in result["results"]] == ["failed", "ok"]
    assert result["results"][0]["error"]["message"] == (
        "A special Rpc error occurs on server EX1: The certificate with thumbprint AB was not found."
    )
    assert result["results"][0]["error"]["reason"] == "InvalidOperationException"


def test_check_mode_skips_changing_operations_and_records_nothing(fleet: Fleet) -> None:
    result = batch(
        fleet, "ex1",
        op("new", "New-ExchangeCertificate", GenerateRequest=True, SubjectName="CN=x.contoso.lab"),
        op("restart", "host.restart_service", name="MSExchangeServiceHost"),
        op("read", "Get-AuthConfig"),
        check_mode=True,
    )  # fmt: skip
    statuses = [(item["status"], item.get("check_mode")) for item in result["results"]]
    assert statuses == [("skipped", True), ("skipped", True), ("ok", None)]
    assert result["changed"] is False
    assert fleet.dump()["mutations"] == []


def test_session_is_opened_lazily_and_removed(fleet: Fleet) -> None:
    assert batch(fleet, "ex1", op("a", "host.info"))["exchange_session"] is None, "no cmdlet, no session"
    session = batch(fleet, "ex1", op("a", "Get-AuthConfig"), exchange_uri="http://ex1.contoso.lab/PowerShell/")[
        "exchange_session"
    ]
    assert session == {"uri": "http://ex1.contoso.lab/PowerShell/", "opened": True, "removed": True}


@pytest.mark.parametrize(
    ("become", "options", "opened"),
    [
        (False, {}, False),
        (True, {}, True),
        (False, {"exchange_username": "CONTOSO\\ansible", "exchange_password": "Ex-Lab-2026!"}, True),
        (False, {"exchange_username": "CONTOSO\\ansible", "exchange_password": "wrong"}, False),
    ],
)
def test_double_hop_matrix(become: bool, options: dict, opened: bool) -> None:
    fleet = fleet_with("single", "ex1", exchange_session="double_hop")
    args = {"operations": [op("auth", "Get-AuthConfig"), op("info", "host.info")], **options}
    result = fleet.run_module("ex1", MODULE, args, become=become, remote_user="CONTOSO\\ansible")
    assert result["exchange_session"]["opened"] is opened
    assert result["results"][1]["status"] == "ok"  # host operations still run
    if not opened:
        failure = result["results"][0]["error"]
        if options:  # a wrong explicit credential is a logon failure, not the double hop
            assert failure["fully_qualified_error_id"] == "LogonFailure,PSSessionOpenFailed"
            assert "user name or password is incorrect" in failure["message"]
        else:
            assert failure["fully_qualified_error_id"] == "AccessDenied,PSSessionOpenFailed"
            assert "Access is denied" in failure["message"]
        assert failure["category"] == "OpenError"
        assert "wrong" not in repr(result)


def test_missing_exchange_endpoint() -> None:
    fleet = fleet_with("single", "ex1", exchange_session="no_exchange")
    failure = error(fleet, "ex1", "Get-ExchangeServer")
    assert "WinRM cannot complete the operation" in failure["message"]
    assert failure["fully_qualified_error_id"].startswith("WinRMOperationTimeout")


def test_account_without_exchange_rights_gets_command_not_found(fleet: Fleet) -> None:
    result = fleet.run_module(
        "ex1", MODULE, {"operations": [op("a", "Get-ExchangeCertificate")]}, remote_user="helpdesk"
    )
    failure = result["results"][0]["error"]
    assert failure["reason"] == "CommandNotFoundException"
    assert failure["message"].startswith("The term 'Get-ExchangeCertificate' is not recognized")


def test_error_fault_counts_down(fleet: Fleet) -> None:
    fleet.set_fault("ex1", "host.info", error="boom", times=2)
    assert error(fleet, "ex1", "host.info") == {
        "message": "boom", "category": "NotSpecified", "fully_qualified_error_id": "LabInjectedFault",
        "reason": "LabInjectedFault", "target": None,
    }  # fmt: skip
    assert error(fleet, "ex1", "host.info")["message"] == "boom"
    assert value(fleet, "ex1", "host.info")["ComputerName"] == "EX1"


def test_a_fault_after_n_calls_lets_them_pass_first(fleet: Fleet) -> None:
    fleet.set_fault("ex1", "host.info", error="boom", times=1, after=2)
    assert [value(fleet, "ex1", "host.info")["ComputerName"] for _call in range(2)] == ["EX1", "EX1"]
    assert error(fleet, "ex1", "host.info")["message"] == "boom"
    assert value(fleet, "ex1", "host.info")["ComputerName"] == "EX1", "--times 1 is spent"


def test_wildcard_fault_until_cleared(fleet: Fleet) -> None:
    fleet.set_fault("ex1", "*", error="down")
    for _attempt in range(3):
        assert error(fleet, "ex1", "Get-AuthConfig")["message"] == "down"
    fleet.clear_faults("ex1")
    assert value(fleet, "ex1", "Get-AuthConfig")


def test_drop_fault_raises(fleet: Fleet) -> None:
    fleet.set_fault("ex1", "Get-AuthConfig", drop=True, times=1)
    with pytest.raises(DroppedConnection):
        batch(fleet, "ex1", op("a", "Get-AuthConfig"))
    assert value(fleet, "ex1", "Get-AuthConfig")


def test_latency_fault_sleeps_without_holding_the_lock(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    observed: list[tuple[float, bool]] = []

    def other_thread_can_lock() -> bool:
        outcome: list[bool] = []

        def probe() -> None:
            acquired = fleet.lock.acquire(blocking=False)
            outcome.append(acquired)
            if acquired:
                fleet.lock.release()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return outcome[0]

    monkeypatch.setattr(
        "tests.lab.model.batch.time.sleep", lambda seconds: observed.append((seconds, other_thread_can_lock()))
    )
    fleet.set_fault("ex1", "host.info", latency=1.5, times=1)
    assert value(fleet, "ex1", "host.info")
    assert observed == [(1.5, True)]


def test_take_fault_for_transport_operations(fleet: Fleet) -> None:
    fleet.set_fault("ex1", "win_ping", error="nope", times=1)
    fault = fleet.take_fault("ex1", "win_ping")
    assert fault is not None and fault.error == "nope"
    assert fleet.take_fault("ex1", "win_ping") is None


def test_unreachable_flag(fleet: Fleet) -> None:
    fleet.set_unreachable("ex1", True)
    assert fleet.is_unreachable("ex1") and fleet.dump()["servers"]["ex1"]["unreachable"]
    fleet.set_unreachable("ex1", False)
    assert not fleet.is_unreachable("ex1")


def test_rawdata_only_mode(fleet: Fleet) -> None:
    fleet.set_rawdata_only("ex1", True)
    certs = value(fleet, "ex1", "Get-ExchangeCertificate")
    assert certs and all(cert["RawData"] and cert["Thumbprint"] is None and cert["Status"] is None for cert in certs)


def test_info_batch_covers_every_reading_operation(fleet: Fleet) -> None:
    names = [
        "host.info", "Get-ExchangeCertificate", "host.certificates", "host.iis_bindings", "Get-AuthConfig",
        "Get-TransportService", "Get-SendConnector", "Get-ReceiveConnector", "Get-HybridConfiguration",
        "Get-ExchangeServer", "Get-DatabaseAvailabilityGroup", "host.cluster",
    ]  # fmt: skip
    result = batch(fleet, "ex1", *(op(str(index), name) for index, name in enumerate(names)))
    assert all(item["status"] == "ok" for item in result["results"]), result
    values = {item["op"]: item["value"] for item in result["results"]}
    assert values["Get-ExchangeServer"][0]["AdminDisplayVersion"] == "Version 15.2 (Build 1544.4)"
    assert values["host.info"]["ExchangeVersion"] == "15.2.1544.4"
    assert values["host.cluster"] is None and values["Get-HybridConfiguration"] is None
    assert {c["Name"] for c in values["Get-ReceiveConnector"]} >= {
        "Default Frontend EX1",
        "Client Frontend EX1",
        "Default EX1",
    }
    assert values["Get-TransportService"][0]["InternalTransportCertificateThumbprint"]
    assert {binding["BindingInformation"] for binding in values["host.iis_bindings"]} == {"*:443:", "*:444:"}


def test_malformed_file_data_fails_the_operation_not_the_module(fleet: Fleet) -> None:
    failure = error(fleet, "ex1", "Import-ExchangeCertificate", FileData=as_bytes(b"garbage"))
    assert "CRYPT_E_ASN1_BADTAG" in failure["message"]
    assert fleet.dump()["mutations"] == []


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (op("e", "Enable-ExchangeCertificate", Thumbprint="AB"), "missing required parameter 'Services'"),
        (op("r", "host.restart_service"), "missing required parameter 'name'"),
        (op("l", "Enable-ExchangeCertificate", Thumbprint="AB", Services="IIS"), "expects a list value"),
        (op("d", "Set-AuthConfig", NewCertificateEffectiveDate={"$datetime": "2026-11-27 10:00"}), "invalid $datetime"),
    ],
)
def test_arguments_the_executor_refuses_fail_the_module_and_change_nothing(fleet: Fleet, operation, message) -> None:
    result = batch(fleet, "ex1", operation)
    assert result["failed"] is True
    assert message in result["msg"]
    assert fleet.dump()["mutations"] == []


def test_datetime_with_fractional_seconds_is_accepted_as_the_executor_does(fleet: Fleet) -> None:
    """exchange_batch.ps1 parses $datetime with RoundtripKind, which takes fractions of a second."""
    result = batch(fleet, "ex1", op(
        "x", "Set-AuthConfig", NewCertificateThumbprint="0" * 40,
        NewCertificateEffectiveDate={"$datetime": "2030-01-01T00:00:00.123Z"},
    ))
    assert "failed" not in result, result.get("msg")
    assert result["results"][0]["status"] == "failed", "the argument passed; the unknown thumbprint did not"


def test_acme_challenge_writes_serves_and_removes_a_token_file(fleet: Fleet) -> None:
    (server,) = fleet.server_names()
    token, content = "Zm9v_bar-1", "Zm9v_bar-1.a-b_c"
    checked = batch(fleet, server, op("a", "host.acme_challenge", action="add", token=token, content=content),
                    check_mode=True)["results"][0]
    assert checked["status"] == "skipped" and fleet.acme_challenge(server, token) is None
    added = value(fleet, server, "host.acme_challenge", action="add", token=token, content=content)
    assert added == {"Path": f"C:\\inetpub\\wwwroot\\.well-known\\acme-challenge\\{token}", "Present": True}
    assert fleet.acme_challenge(server, token) == content
    assert fleet.dump()["servers"][server]["acme_challenges"] == {token: content}
    again = batch(fleet, server, op("a", "host.acme_challenge", action="add", token=token, content=content))
    assert again["results"][0]["changed"] is False and again["changed"] is False
    removed = batch(fleet, server, op("a", "host.acme_challenge", action="remove", token=token))["results"][0]
    assert removed["changed"] is True and fleet.acme_challenge(server, token) is None
    gone = batch(fleet, server, op("a", "host.acme_challenge", action="remove", token=token))["results"][0]
    assert gone["changed"] is False
    assert [m["operation"] for m in fleet.dump()["mutations"]] == ["host.acme_challenge"] * 2


@pytest.mark.parametrize(("args", "message"), [
    ({"action": "add", "token": "../web.config", "content": "x"}, "token must be base64url"),
    ({"action": "add", "token": "a\\b", "content": "x"}, "token must be base64url"),
    ({"action": "add", "token": "x" * 257, "content": "x"}, "token must be base64url"),
    ({"action": "add", "token": "tok", "content": "<script>"}, "content must be an ACME key authorization"),
    ({"action": "add", "token": "tok"}, "content must be an ACME key authorization"),
    ({"action": "put", "token": "tok", "content": "x"}, "action must be 'add' or 'remove'"),
])
def test_acme_challenge_refuses_other_paths_and_content(fleet: Fleet, args: dict, message: str) -> None:
    (server,) = fleet.server_names()
    assert message in error(fleet, server, "host.acme_challenge", **args)["message"]
    assert fleet.dump()["mutations"] == []
