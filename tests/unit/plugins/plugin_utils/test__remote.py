# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the remote-executor client: batch building, allow-list parity, results and errors."""

from __future__ import annotations

import datetime
import json
import pathlib
import re
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleConnectionFailure

from ansible_collections.exchange.pki.plugins.doc_fragments.exchange_session import ModuleDocFragment
from ansible_collections.exchange.pki.plugins.plugin_utils import _remote
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import (
    BatchDefinitionError,
    CertificateNotFound,
    ExchangeAccessDenied,
    ExchangeAuthenticationRefused,
    ExchangePermissionDenied,
    ExchangePkiError,
    ExchangeToolsMissing,
    HostUnreachable,
    OperationFailed,
    OperationSkipped,
    RemoteError,
    RemoteModuleError,
    RemoteProtocolError,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_ARGSPEC,
    LOCAL_SERVER,
    OPERATIONS,
    Batch,
    ExchangeSessionOptions,
    ParamType,
    SessionOptionError,
    as_bytes,
    as_datetime,
    classify_error,
    run_batch,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    parse_auth_config,
    parse_exchange_certificates,
    parse_host_info,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[4]
PS1 = REPO_ROOT / "plugins" / "modules" / "exchange_batch.ps1"
MODULE_DOC = REPO_ROOT / "plugins" / "modules" / "exchange_batch.py"
TEST_DATA = REPO_ROOT / "tests" / "unit" / "test_data" / "remote"
SECRET = "pfx-p@ssw0rd-do-not-log"


# --- helpers --------------------------------------------------------------------------------------


def load_recording(name: str) -> dict[str, Any]:
    return json.loads((TEST_DATA / f"{name}.json").read_text(encoding="utf-8"))


def batch_from_recording(recording: dict[str, Any]) -> Batch:
    """Rebuild the batch a recording answers, through the public builder (so it is validated too)."""
    batch = Batch()
    secrets = recording.get("secrets", {})
    for operation in recording["operations"]:
        args = {
            name: batch.as_secret(secrets[value["$secret"]])
            if isinstance(value, dict) and "$secret" in value
            else value
            for name, value in operation["args"].items()
        }
        batch.add(operation["op"], args, id=operation["id"])
    return batch


class FakeActionPlugin:
    """Stands in for an ActionBase: _execute_module returns a recorded result (or raises)."""

    def __init__(self, result: dict[str, Any] | None = None, raises: Exception | None = None) -> None:
        self._result = result
        self._raises = raises
        self.calls: list[dict[str, Any]] = []

    def _execute_module(self, module_name: str, module_args: dict[str, Any], task_vars: dict[str, Any]) -> dict:
        self.calls.append({"module_name": module_name, "module_args": module_args, "task_vars": task_vars})
        if self._raises is not None:
            raise self._raises
        return json.loads(json.dumps(self._result))


def run_recording(name: str) -> tuple[_remote.BatchResult, FakeActionPlugin]:
    """Run the batch of a recording against a fake plugin that answers with the recorded result."""
    recording = load_recording(name)
    plugin = FakeActionPlugin(recording["result"])
    result = run_batch(plugin, batch_from_recording(recording), {"inventory_hostname": "ex1"}, check_mode=False)
    return result, plugin


# --- the allow-list is the same on both sides ------------------------------------------------------

_PS_ENTRY = re.compile(
    r"'(?P<op>[\w.-]+)'\s*=\s*@\{\s*"
    r"Kind\s*=\s*'(?P<kind>\w+)'\s*;\s*Changes\s*=\s*\$(?P<changes>true|false)\s*;\s*"
    r"Required\s*=\s*@\((?P<required>[^)]*)\)\s*"
    r"Parameters\s*=\s*@\{(?P<parameters>[^}]*)\}\s*\}",
)


def ps1_allow_list() -> dict[str, tuple[str, bool, frozenset[str], dict[str, str]]]:
    """Parse the region "allow-list" of exchange_batch.ps1 into {op: (kind, changes, required, parameters)}."""
    text = PS1.read_text(encoding="utf-8")
    region = text.split("# region allow-list", 1)[1].split("# endregion allow-list", 1)[0]
    table = {}
    for match in _PS_ENTRY.finditer(region):
        parameters = dict(re.findall(r"(\w+)\s*=\s*'(\w+)'", match["parameters"]))
        required = frozenset(re.findall(r"'(\w+)'", match["required"]))
        table[match["op"]] = (match["kind"], match["changes"] == "true", required, parameters)
    entries = re.findall(r"^\s{4}'[\w.-]+'\s*=\s*@\{", region, flags=re.MULTILINE)
    assert len(entries) == len(table), "an allow-list entry of the .ps1 does not have the expected layout"
    return table


def test_allow_list_matches_the_ps1() -> None:
    python_side = {
        spec.name: (spec.kind, spec.changes, spec.required, {name: t.value for name, t in spec.parameters.items()})
        for spec in OPERATIONS.values()
    }
    assert ps1_allow_list() == python_side


def test_allow_list_covers_the_protocol_document() -> None:
    protocol = (REPO_ROOT / "docs" / "remote-protocol.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([\w.-]+)`(?: \(changes\))? \|", protocol, flags=re.MULTILINE))
    documented -= {
        "operations",
        "secrets",
        "exchange_uri",
        "exchange_username",
        "exchange_password",
        "exchange_authentication",
    }
    assert documented == set(OPERATIONS)
    changing = set(re.findall(r"^\| `([\w.-]+)` \(changes\) \|", protocol, flags=re.MULTILINE))
    assert changing == {spec.name for spec in OPERATIONS.values() if spec.changes}


def test_acme_challenge_is_a_changing_host_operation_whose_token_rules_are_the_ps1s() -> None:
    spec = OPERATIONS["host.acme_challenge"]
    assert (spec.kind, spec.changes, spec.required) == ("host", True, frozenset({"action", "token"}))
    text = PS1.read_text(encoding="utf-8")
    function = text.split("Function Set-AcmeChallenge {", 1)[1].split("\nFunction ", 1)[0]
    # the executor refuses any token that is not base64url and any content that is not a key authorization:
    # nothing but <physicalPath>\.well-known\acme-challenge\<token> can be written, and only such text
    assert "$Token -cnotmatch '^[A-Za-z0-9_-]{1,256}$'" in function
    assert "$Content -cnotmatch '^[A-Za-z0-9_.-]{1,1024}$'" in function
    assert "'.well-known', 'acme-challenge'" in function
    assert "'host.acme_challenge' {\n            return Set-AcmeChallenge" in text
    batch = Batch()
    with pytest.raises(BatchDefinitionError, match="token"):
        batch.add("host.acme_challenge", {"action": "add", "content": "x"})
    batch.add("host.acme_challenge", {"action": "add", "token": "tok_-1", "content": "tok_-1.abc"})
    assert batch.has_changes


def test_every_required_parameter_is_a_parameter() -> None:
    for spec in OPERATIONS.values():
        assert spec.required <= spec.parameters.keys(), spec.name


# --- building a batch -----------------------------------------------------------------------------


def test_add_generates_ids_and_keeps_order() -> None:
    batch = Batch()
    first = batch.add("Get-ExchangeCertificate")
    second = batch.add("host.info", id="info")
    third = batch.add("Get-AuthConfig")
    assert (first, second, third) == ("Get-ExchangeCertificate-1", "info", "Get-AuthConfig-3")
    assert [operation["id"] for operation in batch.module_args()["operations"]] == [first, second, third]
    assert batch.module_args()["operations"][0] == {"id": first, "op": "Get-ExchangeCertificate", "args": {}}


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("Get-Mailbox", {}, "unknown operation 'Get-Mailbox'"),
        ("Get-ExchangeCertificate", {"Identity": "EX1\\AB"}, "unknown parameter 'Identity'"),
        ("Remove-ExchangeCertificate", {"Server": "EX1"}, "missing required parameter(s) Thumbprint"),
        ("Get-ExchangeCertificate", {"Server": 1}, "'Server' expects a server name or LOCAL_SERVER, got int"),
        ("Get-ExchangeCertificate", {"DomainName": "mail.contoso.com"}, "expects a list of strings"),
        ("Get-ExchangeCertificate", {"DomainName": ["a", 1]}, "expects a list of strings"),
        ("New-ExchangeCertificate", {"KeySize": "2048"}, "'KeySize' expects an integer"),
        ("New-ExchangeCertificate", {"KeySize": True}, "'KeySize' expects an integer"),
        ("New-ExchangeCertificate", {"PrivateKeyExportable": "yes"}, "expects a boolean"),
        ("New-ExchangeCertificate", {"Force": 1}, "expects a boolean"),
        ("Import-ExchangeCertificate", {"FileData": b"\x30\x00"}, "a value made with as_bytes()"),
        ("Import-ExchangeCertificate", {"FileData": {"$datetime": "2026-01-01T00:00:00Z"}}, "as_bytes()"),
        ("Import-ExchangeCertificate", {"FileData": as_bytes(b"0"), "Password": "clear"}, "Batch.as_secret()"),
        (
            "Import-ExchangeCertificate",
            {"FileData": as_bytes(b"0"), "Password": {"$secret": "secret9"}},
            "not registered",
        ),
        ("Set-AuthConfig", {"NewCertificateEffectiveDate": "2026-01-01T00:00:00Z"}, "as_datetime()"),
        ("Get-ExchangeCertificate", {"Thumbprint": as_bytes(b"0")}, "expects a plain string"),
    ],
)
def test_add_rejects_bad_operations(op: str, args: dict[str, Any], message: str) -> None:
    batch = Batch()
    with pytest.raises(BatchDefinitionError) as raised:
        batch.add(op, args)
    assert message in str(raised.value)
    assert len(batch) == 0


@pytest.mark.parametrize("operation_id", ["", "same"])
def test_add_rejects_empty_and_duplicate_ids(operation_id: str) -> None:
    batch = Batch()
    batch.add("host.info", id="same")
    with pytest.raises(BatchDefinitionError, match="empty or already used"):
        batch.add("host.info", id=operation_id)


def test_typed_values_travel_as_markers() -> None:
    batch = Batch()
    moment = datetime.datetime(2026, 11, 27, 11, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=1, minutes=30)))
    batch.add(
        "Set-AuthConfig", {"NewCertificateThumbprint": "AB" * 20, "NewCertificateEffectiveDate": as_datetime(moment)}
    )
    batch.add(
        "host.certreq_submit",
        {
            "request": as_bytes(b"\x30\x82\x01\x00"),
            "config": "ca1\\Contoso CA",
            "attributes": ("SAN:dns=mail.contoso.com",),
        },
    )
    first, second = batch.module_args()["operations"]
    assert first["args"]["NewCertificateEffectiveDate"] == {"$datetime": "2026-11-27T10:00:00Z"}
    assert second["args"]["request"] == {"$bytes": "MIIBAA=="}
    assert second["args"]["attributes"] == ["SAN:dns=mail.contoso.com"]


def test_as_datetime_requires_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        as_datetime(datetime.datetime(2026, 1, 1))
    with pytest.raises(TypeError):
        as_datetime("2026-01-01T00:00:00Z")  # type: ignore[arg-type]


def test_as_bytes_rejects_text() -> None:
    with pytest.raises(TypeError):
        as_bytes("MAA=")  # type: ignore[arg-type]


def test_secrets_travel_only_in_the_secrets_option() -> None:
    batch = Batch()
    marker = batch.as_secret(SECRET)
    assert batch.as_secret(SECRET) == marker  # one entry per distinct secret
    batch.add("Import-ExchangeCertificate", {"FileData": as_bytes(b"0"), "Password": marker})
    batch.add("Export-ExchangeCertificate", {"Thumbprint": "AB" * 20, "Password": batch.as_secret("other")})
    module_args = batch.module_args()
    assert SECRET not in json.dumps(module_args["operations"])
    assert module_args["secrets"] == {marker["$secret"]: SECRET, "secret2": "other"}
    assert module_args["operations"][0]["args"]["Password"] == {"$secret": "secret1"}


def test_has_changes() -> None:
    batch = Batch()
    batch.add("Get-ExchangeCertificate")
    batch.add("Export-ExchangeCertificate", {"Thumbprint": "AB" * 20})
    assert not batch.has_changes
    batch.add("host.iis_reset")
    assert batch.has_changes


def test_module_args_with_session_options() -> None:
    batch = Batch()
    batch.add("Get-AuthConfig")
    session = ExchangeSessionOptions(username="CONTOSO\\exadmin", password=SECRET)
    module_args = batch.module_args(session)
    assert module_args["exchange_username"] == "CONTOSO\\exadmin"
    assert module_args["exchange_password"] == SECRET
    assert module_args["exchange_authentication"] == "Kerberos"
    assert "exchange_uri" not in module_args
    assert SECRET not in repr(session)
    assert "exchange_username" not in Batch().module_args(ExchangeSessionOptions())


@pytest.mark.parametrize(
    "kwargs",
    [{"username": "CONTOSO\\exadmin"}, {"password": "x"}, {"authentication": "CredSSP"}],
)
def test_session_options_reject_incomplete_or_unknown(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        ExchangeSessionOptions(**kwargs)


@pytest.mark.parametrize("char", ["\r", "\x00", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"])
def test_session_options_refuse_a_control_character_or_line_separator(char: str) -> None:
    with pytest.raises(SessionOptionError, match="exchange_username must not contain control characters"):
        ExchangeSessionOptions(username=f"CONTOSO\\ex{char}admin", password=SECRET)
    with pytest.raises(SessionOptionError, match="exchange_uri must not contain whitespace or control characters"):
        ExchangeSessionOptions(uri=f"https://ex1.contoso.lab/Power{char}Shell/")


def test_session_options_from_task_args() -> None:
    args = {"exchange_uri": "https://ex1/PowerShell/", "exchange_authentication": "Negotiate", "other": 1}
    assert ExchangeSessionOptions.from_task_args(args) == ExchangeSessionOptions(
        uri="https://ex1/PowerShell/",
        authentication="Negotiate",
    )


# --- the session argspec, its doc fragment and the module documentation agree ----------------------


def test_doc_fragment_mirrors_the_session_argspec() -> None:
    options = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert options.keys() == EXCHANGE_SESSION_ARGSPEC.keys()
    for name, spec in EXCHANGE_SESSION_ARGSPEC.items():
        documented = options[name]
        assert documented["type"] == spec["type"], name
        assert documented.get("default") == spec.get("default"), name
        assert documented.get("choices") == spec.get("choices"), name
    assert [name for name, spec in EXCHANGE_SESSION_ARGSPEC.items() if spec.get("no_log")] == ["exchange_password"]


def test_required_together_matches_the_ps1() -> None:
    spec_text = PS1.read_text(encoding="utf-8")
    (pairs,) = re.findall(r"required_together = @\(, @\(([^)]*)\)\)", spec_text)
    assert (tuple(re.findall(r"'(\w+)'", pairs)),) == _remote.EXCHANGE_SESSION_REQUIRED_TOGETHER


def test_argspec_copy_is_independent() -> None:
    copy = _remote.exchange_session_argspec()
    copy["exchange_authentication"]["choices"].append("CredSSP")
    assert "CredSSP" not in EXCHANGE_SESSION_ARGSPEC["exchange_authentication"]["choices"]


def test_module_documentation_matches_the_ps1_spec() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(MODULE_DOC.read_text(encoding="utf-8"), str(MODULE_DOC), "exec"), namespace)  # noqa: S102
    documented = set(yaml.safe_load(namespace["DOCUMENTATION"])["options"]) | set(EXCHANGE_SESSION_ARGSPEC)
    spec_text = PS1.read_text(encoding="utf-8").split("$spec = @{", 1)[1].split("\n}\n", 1)[0]
    top_level = set(re.findall(r"^ {8}(\w+) = @\{", spec_text, flags=re.MULTILINE))
    assert documented == top_level


# --- running a batch ------------------------------------------------------------------------------


def test_run_batch_sends_one_module_call_and_parses_the_answer() -> None:
    result, plugin = run_recording("read_ok")
    (call,) = plugin.calls
    assert call["module_name"] == "exchange.pki.exchange_batch"
    assert call["task_vars"] == {"inventory_hostname": "ex1"}
    assert [operation["id"] for operation in call["module_args"]["operations"]] == [
        "certs",
        "auth",
        "transport",
        "info",
        "store",
        "bindings",
        "cluster",
    ]
    assert not result.changed
    assert not result.failures
    assert result.exchange_session == _remote.ExchangeSessionInfo("http://ex1.contoso.lab/PowerShell/", True, True)
    certificates = parse_exchange_certificates(result.require("certs"))
    assert [certificate.rawdata_only for certificate in certificates] == [False, False, True]
    auth = parse_auth_config(result.require("auth"))
    assert auth.current_certificate_thumbprint == certificates[1].thumbprint
    assert auth.previous_certificate_thumbprint is None
    assert parse_host_info(result.require("info")).exchange_version.product_name == "Exchange Server 2019 CU14"
    assert result.require("cluster") is None


def test_a_failed_read_does_not_stop_the_batch() -> None:
    result = run_recording("read_failed_continues")[0]
    assert [item.status for item in result.results] == ["failed", "ok"]
    with pytest.raises(CertificateNotFound) as raised:
        result.require("cert")
    assert raised.value.server == "EX1"
    assert raised.value.thumbprint == load_recording("read_failed_continues")["operations"][0]["args"]["Thumbprint"]
    assert parse_host_info(result.require("info")).exchange_version is None


def test_a_failed_change_skips_the_rest() -> None:
    result = run_recording("change_failed_skips")[0]
    assert [item.status for item in result.results] == ["failed", "skipped", "skipped"]
    assert not result.changed
    with pytest.raises(OperationFailed) as raised:
        result.require("enable")
    assert "PendingRequest" in str(raised.value)
    assert raised.value.fully_qualified_error_id.endswith("EnableExchangeCertificate")
    with pytest.raises(OperationSkipped, match="earlier changing operation failed"):
        result.require("reset")


def test_changes_are_reported_and_secrets_sent_separately() -> None:
    result, plugin = run_recording("changes_ok")
    assert result.changed
    assert [item.changed for item in result.results] == [True, True]
    module_args = plugin.calls[0]["module_args"]
    assert "not-logged-pfx-password" not in json.dumps(module_args["operations"])
    assert module_args["secrets"] == {"secret1": "not-logged-pfx-password"}
    (imported,) = parse_exchange_certificates(result.require("import"))
    assert imported.services == ()
    assert imported.root_ca_type == "Enterprise"


def test_access_denied_maps_to_the_double_hop_error_and_host_ops_still_run() -> None:
    result = run_recording("access_denied")[0]
    assert result.exchange_session.opened is False
    assert result.require("store") == []
    for operation_id in ("certs", "auth"):
        with pytest.raises(ExchangeAccessDenied) as raised:
            result.require(operation_id)
        message = str(raised.value)
        for remedy in ("become", "runas", "CredSSP", "delegation", "exchange_username", "exchange_password"):
            assert remedy in message


def test_session_failure_to_reach_the_endpoint_means_tools_missing() -> None:
    result = run_recording("tools_missing")[0]
    with pytest.raises(ExchangeToolsMissing, match="exchange_uri"):
        result.require("certs")


def test_module_failure_raises_remote_module_error() -> None:
    with pytest.raises(RemoteModuleError, match="unknown parameter 'Identity'"):
        run_recording("module_failure")


def test_unreachable_result_raises_host_unreachable() -> None:
    with pytest.raises(HostUnreachable, match="Max retries exceeded"):
        run_recording("unreachable")


def test_connection_failure_raises_host_unreachable() -> None:
    batch = Batch()
    batch.add("host.info")
    plugin = FakeActionPlugin(raises=AnsibleConnectionFailure("winrm connection error"))
    with pytest.raises(HostUnreachable, match="winrm connection error"):
        run_batch(plugin, batch, {}, check_mode=False)


def test_changing_batch_is_refused_in_check_mode() -> None:
    batch = Batch()
    batch.add("host.iis_reset")
    plugin = FakeActionPlugin({"changed": False, "results": []})
    with pytest.raises(BatchDefinitionError, match="check mode"):
        run_batch(plugin, batch, {}, check_mode=True)
    assert plugin.calls == []


def test_executor_check_mode_skip_is_reported() -> None:
    batch = Batch()
    batch.add("host.iis_reset", id="reset")
    answer = {
        "changed": False,
        "exchange_session": None,
        "results": [
            {"id": "reset", "op": "host.iis_reset", "status": "skipped", "changed": False, "check_mode": True},
        ],
    }
    result = _remote.parse_batch_result(answer, batch)
    assert result.exchange_session is None
    with pytest.raises(OperationSkipped, match=r"\(check mode\)") as raised:
        result.require("reset")
    assert raised.value.check_mode


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"changed": False}, "results: expected a list of 1"),
        (
            {"results": [{"id": "other", "op": "host.info", "status": "ok", "changed": False}]},
            "expected the result of 'info'",
        ),
        ({"results": [{"id": "info", "op": "host.info", "status": "done", "changed": False}]}, "results[0].status"),
        ({"results": [{"id": "info", "op": "host.info", "status": "ok", "changed": "no"}]}, "results[0].changed"),
        ({"results": [{"id": "info", "op": "host.info", "status": "failed", "changed": False}]}, "results[0].error"),
        (
            {
                "results": [
                    {
                        "id": "info",
                        "op": "host.info",
                        "status": "failed",
                        "changed": False,
                        "error": {"message": "x", "category": 3},
                    }
                ]
            },
            "results[0].error.category",
        ),
        (
            {"results": [{"id": "info", "op": "host.info", "status": "ok", "changed": False}], "exchange_session": "x"},
            "exchange_session",
        ),
    ],
)
def test_protocol_violations_are_reported(answer: dict[str, Any], message: str) -> None:
    batch = Batch()
    batch.add("host.info", id="info")
    with pytest.raises(RemoteProtocolError) as raised:
        _remote.parse_batch_result(answer, batch)
    assert message in str(raised.value)


# --- error mapping --------------------------------------------------------------------------------


def _error(message: str, fqid: str | None = None) -> RemoteError:
    return RemoteError(message=message, category="OpenError", fully_qualified_error_id=fqid)


@pytest.mark.parametrize(
    ("op", "error", "expected"),
    [
        (
            "Get-ExchangeCertificate",
            _error("Access is denied.", "AccessDenied,PSSessionOpenFailed"),
            ExchangeAccessDenied,
        ),
        (
            "Get-AuthConfig",
            _error("... : Access is denied. For more", "-2144108477,PSSessionOpenFailed"),
            ExchangeAccessDenied,
        ),
        (
            "Get-AuthConfig",
            _error("The WinRM client cannot process the request.", "-2144108526,PSSessionOpenFailed"),
            OperationFailed,
        ),
        (
            "Get-ExchangeServer",
            _error("WinRM cannot complete the operation.", "WinRMOperationTimeout,PSSessionOpenFailed"),
            ExchangeToolsMissing,
        ),
        ("Get-ExchangeServer", _error("The WinRM client cannot resolve the destination host"), ExchangeToolsMissing),
        (
            "Get-ExchangeCertificate",
            _error(
                "The term 'Get-ExchangeCertificate' is not recognized as the name of a cmdlet",
                "CommandNotFoundException",
            ),
            ExchangePermissionDenied,
        ),
        (
            "Get-ExchangeCertificate",
            _error("The Exchange session does not offer the cmdlet 'Get-ExchangeCertificate' (missing from the "
                   "endpoint or not granted by RBAC).", "CommandNotFoundException"),
            ExchangePermissionDenied,
        ),
        (
            "Get-AuthConfig",
            _error("Connecting to remote server ex1 failed with the following error message : The user name or "
                   "password is incorrect.", "LogonFailure,PSSessionOpenFailed"),
            ExchangeAuthenticationRefused,
        ),
        (
            "Export-ExchangeCertificate",
            _error("A special Rpc error occurs on server EX2: The certificate with thumbprint ab12 was not found."),
            CertificateNotFound,
        ),
        (
            "Remove-ExchangeCertificate",
            _error("The certificate with thumbprint AB12 was not found."),
            CertificateNotFound,
        ),
        ("host.restart_service", _error("Access is denied.", "AccessDenied,PSSessionOpenFailed"), OperationFailed),
        ("host.certificates", _error("The term 'x' is not recognized"), OperationFailed),
        (
            "Set-SendConnector",
            _error("The operation couldn't be performed because object 'x' couldn't be found."),
            OperationFailed,
        ),
    ],
)
def test_classify_error(op: str, error: RemoteError, expected: type[ExchangePkiError]) -> None:
    mapped = classify_error(op, error)
    assert mapped.__class__ is expected  # exactly this class, not a parent
    assert isinstance(mapped, ExchangePkiError)
    assert mapped.op == op
    assert mapped.error is error


def test_certificate_not_found_names_thumbprint_and_server() -> None:
    mapped = classify_error(
        "Export-ExchangeCertificate",
        _error("A special Rpc error occurs on server EX2: The certificate with thumbprint ab12 was not found."),
    )
    assert isinstance(mapped, CertificateNotFound)
    assert (mapped.thumbprint, mapped.server) == ("AB12", "EX2")
    assert str(mapped) == "Export-ExchangeCertificate: the certificate AB12 was not found on EX2"


def test_operation_failed_message_carries_the_error_id() -> None:
    mapped = classify_error(
        "host.iis_reset", RemoteError("iisreset /noforce failed (exit code 1)", "NotSpecified", "RuntimeException")
    )
    assert str(mapped) == "host.iis_reset failed: iisreset /noforce failed (exit code 1) [RuntimeException]"


def test_param_type_names_are_the_ps1_type_names() -> None:
    text = PS1.read_text(encoding="utf-8")
    for param_type in ParamType:
        assert f"'{param_type.value}'" in text


# --- issue 6: the local server, the errors named by their cause ------------------------------------------


def test_local_server_travels_as_its_marker_for_server_parameters_only() -> None:
    batch = Batch()
    batch.add("Get-ExchangeServer", {"Identity": LOCAL_SERVER}, id="server")
    batch.add("Get-ReceiveConnector", {"Server": LOCAL_SERVER}, id="receive")
    batch.add("Get-TransportService", {"Identity": LOCAL_SERVER}, id="transport")
    batch.add("Get-ExchangeServer", {"Identity": "EX1"}, id="named")
    wire = batch.module_args()["operations"]
    assert [operation["args"] for operation in wire] == [
        {"Identity": {"$local": "server"}}, {"Server": {"$local": "server"}}, {"Identity": {"$local": "server"}},
        {"Identity": "EX1"},
    ]
    for op, args in (("Get-SendConnector", {"Identity": LOCAL_SERVER}),
                     ("Get-ReceiveConnector", {"Identity": LOCAL_SERVER}),
                     ("Get-ExchangeServer", {"Identity": {"$local": "dag"}}),
                     ("Get-ExchangeServer", {"Identity": 3})):
        with pytest.raises(BatchDefinitionError):
            Batch().add(op, args)


def test_the_protocol_documents_the_local_server_and_the_issuer_pattern() -> None:
    protocol = (REPO_ROOT / "docs" / "remote-protocol.md").read_text(encoding="utf-8")
    assert '{"$local": "server"}' in protocol
    assert "issuer_pattern" in protocol
    assert OPERATIONS["host.certificates"].parameters["issuer_pattern"] is ParamType.STRING
    servers = {(spec.name, name) for spec in OPERATIONS.values() for name, kind in spec.parameters.items()
               if kind is ParamType.SERVER}
    assert {("Get-ExchangeServer", "Identity"), ("Get-ReceiveConnector", "Server"),
            ("Get-TransportService", "Identity"), ("Get-ExchangeCertificate", "Server")} <= servers


def test_access_denied_with_an_explicit_credential_is_the_credential_not_the_double_hop() -> None:
    denied = _error("Connecting to remote server ex1 failed: Access is denied.", "AccessDenied,PSSessionOpenFailed")
    assert type(classify_error("Get-AuthConfig", denied)) is ExchangeAccessDenied  # pylint: disable=unidiomatic-typecheck
    refused = classify_error("Get-AuthConfig", denied, explicit_credential=True)
    assert type(refused) is ExchangeAuthenticationRefused  # pylint: disable=unidiomatic-typecheck
    assert refused.failure_reason == "authentication_refused"
    assert "double hop" not in str(refused) and "exchange_username" in str(refused)


def test_each_refusal_names_its_cause_and_reason() -> None:
    logon = classify_error("Get-AuthConfig", _error("The user name or password is incorrect.",
                                                    "LogonFailure,PSSessionOpenFailed"))
    assert logon.failure_reason == "authentication_refused" and "double hop" not in str(logon)
    rbac = classify_error("Get-ExchangeCertificate", _error("The term 'Get-ExchangeCertificate' is not recognized",
                                                            "CommandNotFoundException"))
    assert rbac.failure_reason == "access_denied"
    assert "RBAC" in str(rbac) and "View-Only Organization Management" in str(rbac)
    assert "is an Exchange server" not in str(rbac)
    change = classify_error("Enable-ExchangeCertificate", _error("not recognized", "CommandNotFoundException"))
    assert "Organization Management" in str(change) and "Server Management" in str(change)
    hop = classify_error("Get-AuthConfig", _error("Access is denied.", "AccessDenied,PSSessionOpenFailed"))
    assert hop.failure_reason == "access_denied" and "double hop" in str(hop)
    tools = classify_error("Get-AuthConfig", _error("WinRM cannot complete the operation.",
                                                    "WinRMOperationTimeout,PSSessionStateBroken"))
    assert tools.failure_reason == "exchange_unavailable"


def test_explicit_credential_reaches_the_classification_through_run_batch() -> None:
    batch = Batch()
    batch.add("Get-AuthConfig", id="auth")
    answer = {"changed": False, "exchange_session": {"uri": "http://ex1/PowerShell/", "opened": False},
              "results": [{"id": "auth", "op": "Get-AuthConfig", "status": "failed", "changed": False,
                           "error": {"message": "Access is denied.",
                                     "fully_qualified_error_id": "AccessDenied,PSSessionOpenFailed"}}]}
    with_credential = run_batch(FakeActionPlugin(answer), batch, {}, check_mode=False,
                                session=ExchangeSessionOptions(username="CONTOSO\\x", password=SECRET))
    with pytest.raises(ExchangeAuthenticationRefused):
        with_credential.require("auth")
    without = run_batch(FakeActionPlugin(answer), batch, {}, check_mode=False, session=ExchangeSessionOptions())
    with pytest.raises(ExchangeAccessDenied) as raised:
        without.require("auth")
    assert type(raised.value) is ExchangeAccessDenied  # pylint: disable=unidiomatic-typecheck


@pytest.mark.parametrize(
    ("message", "reason"),
    [("ntlm: the specified credentials were rejected by the server", "authentication_refused"),
     ("kerberos: HTTP 401 Unauthorized", "authentication_refused"),
     ("Max retries exceeded with url: /wsman (Caused by ConnectTimeoutError)", "unreachable")],
)
def test_unreachable_reasons(message: str, reason: str) -> None:
    batch = Batch()
    batch.add("host.info")
    for plugin in (FakeActionPlugin(raises=AnsibleConnectionFailure(message)),
                   FakeActionPlugin({"unreachable": True, "msg": message})):
        with pytest.raises(HostUnreachable) as raised:
            run_batch(plugin, batch, {}, check_mode=False)
        assert raised.value.failure_reason == reason


def test_a_dropped_connection_raises_host_unreachable_and_other_bugs_pass_through() -> None:
    batch = Batch()
    batch.add("host.info")
    broken = ConnectionResetError(104, "Connection reset by peer")
    with pytest.raises(HostUnreachable) as raised:
        run_batch(FakeActionPlugin(raises=broken), batch, {}, check_mode=False)
    assert raised.value.failure_reason == "connection_dropped"
    with pytest.raises(KeyError):
        run_batch(FakeActionPlugin(raises=KeyError("bug")), batch, {}, check_mode=False)
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = broken
    assert _remote.is_dropped_connection(wrapped)
    assert not _remote.is_dropped_connection(ValueError("x"))


def test_ps1_resolves_the_local_server_and_selects_by_issuer() -> None:
    text = PS1.read_text(encoding="utf-8")
    assert "Get-ExchangeServer -Identity <computer name>" in text or "$env:COMPUTERNAME -ErrorAction Stop" in text
    assert "Resolve-LocalExchangeServer" in text and "'$local'" in text
    assert "$Certificate.Issuer -match $IssuerPattern" in text
