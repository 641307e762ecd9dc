# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the action plugin base class: argument validation and the translation of failures."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleActionFail, AnsibleActionSkip, AnsibleConnectionFailure

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ExchangePkiAction
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import (
    FAILURE_REASONS,
    ExchangeAccessDenied,
    ExchangeAuthenticationRefused,
    ExchangePermissionDenied,
    ExchangeToolsMissing,
    HostUnreachable,
    OperationFailed,
    RemoteError,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    MODULE_NAME,
    Batch,
    exchange_session_argspec,
)
from tests.unit.plugins.action.action_harness import FakeTask, failed_result

SECRET = "S3cret-never-logged"


class ExampleAction(ExchangePkiAction):
    """A plugin whose execute() is the test's callable; it records the validated arguments."""

    ARGUMENT_SPEC = ArgumentSpec(
        argument_spec={
            **exchange_session_argspec(),
            "name": {"type": "str", "required": True},
            "count": {"type": "int", "default": 3},
        },
        required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
    )
    behaviour: Callable[[ExampleAction, dict[str, Any]], dict[str, Any]] = staticmethod(lambda plugin, args: {})

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        self.seen_args = args
        return type(self).behaviour(self, args)


def make_plugin(cls: type[ExchangePkiAction], args: dict[str, Any], *, check_mode: bool = False,
                async_val: int = 0) -> ExchangePkiAction:
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="/tmp/ansible-test"))
    return cls(FakeTask(dict(args), check_mode, async_val), connection, SimpleNamespace(), None, None)


def behaving(behaviour: Callable[[ExchangePkiAction, dict[str, Any]], dict[str, Any]]) -> type[ExampleAction]:
    return type("BehavingAction", (ExampleAction,), {"behaviour": staticmethod(behaviour)})


def raising(error: BaseException) -> type[ExampleAction]:
    def behaviour(plugin: ExchangePkiAction, args: dict[str, Any]) -> dict[str, Any]:
        raise error

    return behaving(behaviour)


# --- argument validation --------------------------------------------------------------------------


def test_validated_arguments_with_defaults_reach_execute():
    plugin = make_plugin(behaving(lambda plugin, args: {"echo": args["count"]}), {"name": "ex1"})
    result = plugin.run(task_vars={})
    assert result == {"echo": 3}
    assert plugin.seen_args["exchange_authentication"] == "Kerberos"
    assert plugin.seen_args["exchange_username"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing required arguments: name"),
        ({"name": "ex1", "colour": "blue"}, "colour"),
        ({"name": "ex1", "count": "many"}, "count"),
        ({"name": "ex1", "exchange_username": "CONTOSO\\exadmin"}, "exchange_username, exchange_password"),
        ({"name": "ex1", "exchange_authentication": "Digest"}, "exchange_authentication"),
    ],
    ids=["missing", "unknown", "wrong-type", "required-together", "bad-choice"],
)
def test_invalid_arguments_fail_naming_the_option(args, message):
    plugin = make_plugin(raising(AssertionError("execute must not run")), args)
    failed_result(plugin.run(task_vars={}), message)


def test_validator_kwargs_are_fresh_copies():
    spec = ArgumentSpec({"a": {"type": "str"}}, required_together=(("a", "b"),), required_by={"a": ("b",)})
    first = spec.validator_kwargs()
    first["argument_spec"]["c"] = {}
    first["required_together"][0].append("c")
    assert spec.validator_kwargs() == {
        "argument_spec": {"a": {"type": "str"}},
        "mutually_exclusive": [],
        "required_together": [["a", "b"]],
        "required_one_of": [],
        "required_if": [],
        "required_by": {"a": ["b"]},
    }


# --- the translation of failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [HostUnreachable("the host could not be reached: timed out"), AnsibleConnectionFailure("timed out")],
    ids=["HostUnreachable", "AnsibleConnectionFailure"],
)
def test_connection_failures_make_the_task_unreachable(error):
    result = make_plugin(raising(error), {"name": "ex1"}).run(task_vars={})
    assert result["unreachable"] is True
    assert "timed out" in result["msg"]
    assert "failed" not in result
    assert "exception" not in result


def test_domain_errors_fail_with_their_message_and_no_traceback():
    error = ExchangeAccessDenied(
        "Get-ExchangeCertificate", RemoteError("Access is denied.", "OpenError", "AccessDenied,PSSessionOpenFailed"),
    )
    result = make_plugin(raising(error), {"name": "ex1"}).run(task_vars={})
    assert result == {"failed": True, "changed": False, "msg": str(error), "failure_reason": "access_denied"}
    assert "exchange_username" in result["msg"]


def test_user_errors_from_execute_propagate_as_action_failures():
    plugin = make_plugin(raising(AnsibleActionFail("policy.warning_days must not be negative")), {"name": "ex1"})
    failed_result(plugin.run(task_vars={}), "warning_days")


def test_unexpected_errors_fail_with_a_traceback():
    def broken(plugin: ExchangePkiAction, args: dict[str, Any]) -> dict[str, Any]:
        return {"value": {}["missing"]}

    result = make_plugin(behaving(broken), {"name": "ex1"}).run(task_vars={})
    assert result["failed"] is True
    assert result["msg"] == "Unexpected failure in exchange.pki.plugin: KeyError: 'missing'"
    assert "in broken" in result["exception"]


# --- check mode, async and the batch helper ----------------------------------------------------------


def test_check_mode_is_supported_and_visible_to_execute():
    plugin = make_plugin(behaving(lambda plugin, args: {"check_mode": plugin.check_mode}), {"name": "ex1"},
                         check_mode=True)
    assert plugin.run(task_vars={}) == {"check_mode": True}


def test_a_plugin_without_check_mode_is_skipped_in_check_mode():
    unsupported = type("NoCheckMode", (ExampleAction,), {"SUPPORTS_CHECK_MODE": False})
    with pytest.raises(AnsibleActionSkip, match="does not support check mode"):
        make_plugin(unsupported, {"name": "ex1"}, check_mode=True).run(task_vars={})


def test_async_is_refused():
    failed_result(make_plugin(ExampleAction, {"name": "ex1"}, async_val=30).run(task_vars={}), "does not support async")


def _batch_sender(batch: Batch) -> Callable[[ExchangePkiAction, dict[str, Any]], dict[str, Any]]:
    def behaviour(plugin: ExchangePkiAction, args: dict[str, Any]) -> dict[str, Any]:
        result = plugin.run_batch(batch, {"inventory_hostname": "ex1"}, args)
        return {"statuses": [item.status for item in result.results]}

    return behaviour


def test_run_batch_sends_one_module_call_with_the_session_credential():
    batch = Batch()
    batch.add("Get-AuthConfig", id="auth")
    calls: list[dict[str, Any]] = []
    cls = behaving(_batch_sender(batch))

    def execute_module(module_name: str, module_args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict:
        calls.append({"module_name": module_name, "module_args": module_args})
        return {"changed": False, "results": [{"id": "auth", "op": "Get-AuthConfig", "status": "ok", "value": {}}]}

    plugin = make_plugin(cls, {"name": "ex1", "exchange_username": "CONTOSO\\exadmin", "exchange_password": SECRET})
    plugin._execute_module = execute_module
    assert plugin.run(task_vars={}) == {"statuses": ["ok"]}
    (call,) = calls
    assert call["module_name"] == MODULE_NAME
    assert call["module_args"]["exchange_username"] == "CONTOSO\\exadmin"
    assert call["module_args"]["exchange_password"] == SECRET
    assert call["module_args"]["operations"] == [{"id": "auth", "op": "Get-AuthConfig", "args": {}}]


def test_run_batch_refuses_changing_operations_in_check_mode_without_calling_the_host():
    batch = Batch()
    batch.add("host.iis_reset", id="reset")
    plugin = make_plugin(behaving(_batch_sender(batch)), {"name": "ex1"}, check_mode=True)
    plugin._execute_module = pytest.fail  # must never be called
    result = plugin.run(task_vars={})
    assert result["failed"] is True
    assert "check mode" in result["msg"]


def test_run_batch_turns_a_module_level_unreachable_answer_into_an_unreachable_task():
    batch = Batch()
    batch.add("host.info", id="info")
    plugin = make_plugin(behaving(_batch_sender(batch)), {"name": "ex1"})
    plugin._execute_module = lambda **kwargs: {"unreachable": True, "msg": "ntlm: HTTP 401"}
    result = plugin.run(task_vars={})
    assert result["unreachable"] is True
    assert "HTTP 401" in result["msg"]


# --- failure_reason, dropped connections and the session options (issue 6) ---------------------------


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (HostUnreachable("timed out"), "unreachable"),
        (HostUnreachable("ntlm: the specified credentials were rejected", "authentication_refused"),
         "authentication_refused"),
        (HostUnreachable("dropped", "connection_dropped"), "connection_dropped"),
        (AnsibleConnectionFailure("timed out"), "unreachable"),
    ],
)
def test_unreachable_results_carry_the_failure_reason(error, reason):
    result = make_plugin(raising(error), {"name": "ex1"}).run(task_vars={})
    assert result["unreachable"] is True
    assert result["failure_reason"] == reason


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ExchangeAuthenticationRefused(
            "Get-AuthConfig",
            RemoteError("The user name or password is incorrect.", "OpenError", "LogonFailure,PSSessionOpenFailed")),
         "authentication_refused"),
        (ExchangePermissionDenied("Get-AuthConfig", RemoteError("not recognized", "ObjectNotFound",
                                                                "CommandNotFoundException")), "access_denied"),
        (ExchangeToolsMissing("Get-AuthConfig", RemoteError("WinRM cannot complete the operation")),
         "exchange_unavailable"),
        (OperationFailed("host.iis_reset", RemoteError("boom")), "failed"),
    ],
)
def test_failed_results_carry_the_failure_reason(error, reason):
    result = make_plugin(raising(error), {"name": "ex1"}).run(task_vars={})
    assert result["failed"] is True
    assert result["failure_reason"] == reason
    assert result["failure_reason"] in FAILURE_REASONS


def test_user_errors_and_bugs_carry_failure_reason_failed():
    raised = failed_result(make_plugin(raising(AssertionError("never")), {"name": "ex1", "count": "many"})
                           .run(task_vars={}))
    assert raised["failure_reason"] == "failed"
    result = make_plugin(behaving(lambda plugin, args: {}["missing"]), {"name": "ex1"}).run(task_vars={})
    assert result["failure_reason"] == "failed"


class _DroppedByRequests(OSError):
    """Stands in for requests.exceptions.ConnectionError (an OSError from the requests package)."""


_DroppedByRequests.__module__ = "requests.exceptions"
_DroppedByRequests.__name__ = "ConnectionError"


@pytest.mark.parametrize(
    "error",
    [_DroppedByRequests("Connection aborted.", "RemoteDisconnected('Remote end closed connection')"),
     ConnectionResetError(104, "Connection reset by peer")],
    ids=["requests", "builtin"],
)
def test_a_dropped_connection_is_an_unreachable_task_not_a_bug(error):
    batch = Batch()
    batch.add("host.info", id="info")
    plugin = make_plugin(behaving(_batch_sender(batch)), {"name": "ex1"})

    def execute_module(**_kwargs: Any) -> dict:
        raise error

    plugin._execute_module = execute_module
    result = plugin.run(task_vars={})
    assert result["unreachable"] is True
    assert result["failure_reason"] == "connection_dropped"
    assert "exception" not in result
    assert "Unexpected failure" not in result["msg"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"exchange_username": "", "exchange_password": SECRET}, "exchange_username is empty"),
        ({"exchange_username": "CONTOSO\\exadmin", "exchange_password": ""}, "exchange_password is empty"),
        ({"exchange_username": "CONTOSO\\ex\r\nadmin", "exchange_password": SECRET}, "exchange_username"),
        ({"exchange_username": "CONTOSO\\exadmin", "exchange_password": "a\x00b"}, "exchange_password"),
        ({"exchange_uri": "ftp://ex1.contoso.lab/PowerShell/"}, "exchange_uri must be an http"),
        ({"exchange_uri": "ex1.contoso.lab"}, "exchange_uri must be an http"),
        ({"exchange_uri": "http:///PowerShell/"}, "exchange_uri must be an http"),
        ({"exchange_uri": ""}, "exchange_uri must not be empty"),
        ({"exchange_uri": "http://ex1.contoso.lab/PowerShell/\r\nX-Evil: 1"}, "exchange_uri must not contain"),
        ({"exchange_uri": "http://ex1.contoso.lab\x00/"}, "exchange_uri must not contain"),
        ({"exchange_uri": "http://ex1.contoso.lab:99999/PowerShell/"}, "exchange_uri is not a valid URL"),
        ({"exchange_uri": "http://ex1.contoso.lab:0/PowerShell/"}, "port 0"),
        ({"exchange_uri": "http://ex1.contoso.lab/PowerShell/?x=1"}, "query"),
        ({"exchange_uri": "https://u:" + SECRET + "@ex1.contoso.lab/PowerShell/"}, "must not carry a user name"),
        ({"exchange_uri": "http://" + "a" * 3000}, "longer than"),
        ({"exchange_authentication": "Basic"}, "Basic sends the password in clear"),
        ({"exchange_authentication": "Basic", "exchange_uri": "http://ex1.contoso.lab/PowerShell/"}, "Basic"),
    ],
)
def test_hostile_session_options_fail_naming_the_option_before_anything_runs(options, message):
    plugin = make_plugin(raising(AssertionError("execute must not run")), {"name": "ex1", **options})
    raised = failed_result(plugin.run(task_vars={}), re.escape(message))
    assert SECRET not in raised["msg"]
    assert raised["failure_reason"] == "failed"


def test_both_credential_options_empty_mean_not_given():
    batch = Batch()
    batch.add("Get-AuthConfig", id="auth")
    calls: list[dict[str, Any]] = []

    def execute_module(module_name: str, module_args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict:
        calls.append(module_args)
        return {"changed": False, "results": [{"id": "auth", "op": "Get-AuthConfig", "status": "ok", "value": {}}]}

    plugin = make_plugin(behaving(_batch_sender(batch)),
                         {"name": "ex1", "exchange_username": "", "exchange_password": ""})
    plugin._execute_module = execute_module
    assert plugin.run(task_vars={}) == {"statuses": ["ok"]}
    assert "exchange_username" not in calls[0] and "exchange_password" not in calls[0]


def test_valid_session_options_pass():
    plugin = make_plugin(behaving(lambda plugin, args: {"ok": True}), {
        "name": "ex1", "exchange_uri": "https://ex1.contoso.lab:443/PowerShell/", "exchange_authentication": "Basic",
        "exchange_username": "exadmin@contoso.lab", "exchange_password": SECRET,
    })
    assert plugin.run(task_vars={}) == {"ok": True}


class OneOfAction(ExampleAction):
    ARGUMENT_SPEC = ArgumentSpec(
        argument_spec={"name": {"type": "str", "required": True}, "csr": {"type": "str"}, "csr_path": {"type": "path"}},
        required_one_of=(("csr", "csr_path"),),
    )


@pytest.mark.parametrize("args", [{"csr": None}, {"csr": None, "csr_path": None}], ids=["one-null", "all-null"])
def test_a_one_of_group_given_only_as_null_is_refused(args):
    plugin = make_plugin(OneOfAction, {"name": "ex1", **args})
    failed_result(plugin.run(task_vars={}), "csr and csr_path are all empty")


def test_a_one_of_group_with_a_value_passes():
    plugin = make_plugin(OneOfAction, {"name": "ex1", "csr": None, "csr_path": "/tmp/x.csr"})
    assert plugin.run(task_vars={}) == {}
