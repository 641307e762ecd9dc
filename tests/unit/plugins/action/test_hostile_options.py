# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hostile option sweep over every action plugin of the collection.

Each option of each module (suboptions included) gets, in turn, a set of hostile values chosen by its type
(wrong types, empty and blank strings, NUL, CR/LF, U+2028, a lone surrogate, 100 000 characters, ``../``,
non-ASCII, huge, negative and non-finite numbers), with the other options valid. The run must end either in a
result (success, or ``failed`` with a non-empty ``msg``), returned and not raised (ansible-core applies a task's
``failed_when`` only to a returned result); never in the "Unexpected failure in ..." wrapper (an exception the
plugin did not expect), and never in an exception. A failed run writes nothing.

Nothing is contacted: the remote executor is replaced by a stub that records the batch and answers
``unreachable``, and name resolution fails for every host (after the encoding the real resolver applies).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import json
import math
import os
import pathlib
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from ansible.plugins.action import ActionBase
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.action import (
    adcs_request,
    auth_certificate,
    certificate_export,
    certificate_import,
    certificate_info,
    certificate_remove,
    certificate_request,
    certificate_services,
    fleet_alert,
    fleet_report,
    ledger_info,
    ledger_record,
    renewal_plan,
    renewal_status,
    tls_probe,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import append_records, make_record
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import FakeTask, failed_result
from tests.unit.plugins.plugin_utils.report_facts import dag_fleet
from tests.unit.plugins.plugin_utils.test__renewal_status import make_plan

REMOTE_REACHED = "hostile test: the remote executor was reached"
THUMBPRINT = "9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A"
NOW_TEXT = format_utc_datetime(NOW)


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _level in range(depth):
        value = {"a": value}
    return value


# --- the hostile values, by the option's type --------------------------------------------------------------

TEXT = [
    ("empty", ""),
    ("blank", " \t "),
    ("nul", "a\x00b"),
    ("crlf", "a\r\nb"),
    ("u2028", "a\u2028b"),
    ("surrogate", "\ud800"),
    ("long", "x" * 100_000),
    ("long_name", "n" * 256),  # one more than NAME_MAX
    ("dotdot", "../../escape"),
    ("separators", "a/b\\c"),
    ("non_ascii", "m\u00e4il.\u4f8b\u3048.jp"),
]
# Not bugs: core turns a list, dict or number given for a str option into its text (documented "type: str"
# conversion, with a warning); the module then checks that text like any other.
WRONG_FOR_TEXT = [("list", ["a"]), ("dict", {"a": 1}), ("int", 5), ("bool", True), ("none", None), ("float", 1e300)]
NUMBERS = [
    ("text", "abc"),
    ("huge", 10**30),  # core passes it; each module checks its range (not a bug: the refusal names the option)
    ("huge_text", "9" * 400),
    ("negative", -1),
    ("zero", 0),
    ("float", 1e300),  # an integral float: core turns it into an int, the module checks the range
    ("nan", math.nan),
    ("inf", math.inf),
    ("inf_text", "-inf"),
    ("exponent_text", "1e99999999"),  # core would build a 100-million-digit integer
    ("bool", True),
    ("list", [1]),
    ("none", None),
]
BOOLS = [("text", "maybe"), ("int", 2), ("list", []), ("none", None)]
LISTS = [
    ("text", "a,b"),  # not a bug: core splits a comma-separated string into a list (documented "type: list")
    ("dict", {"a": 1}),
    ("int", 5),  # not a bug: core makes ["5"] of it (documented); the module checks "5" like any element
    ("empty", []),
    ("none_element", [None]),
    ("list_element", [["a"]]),
    ("dict_element", [{"a": 1}]),
    ("many", [f"n{index}.example" for index in range(2000)]),
    *((f"{name}_element", [value]) for name, value in TEXT),
]
DICTS = [
    ("text", "x"),  # core parses JSON or key=value text for a dict option (documented), refusing anything else
    ("list", ["a"]),
    ("int", 5),
    ("empty", {}),
    ("none", None),
    ("surrogate_key", {"\ud800": "x"}),
    ("surrogate_value", {"a": "\ud800"}),
    ("nan_value", {"a": math.nan}),
    ("int_key", {1: "x"}),
    ("deep", _deep(5000)),
]
DICT_ELEMENTS = [("text", "x"), ("dict", {"a": 1}), ("empty", []), ("text_element", ["x"]),
                 ("none_element", [None]), ("empty_element", [{}]), ("deep_element", [_deep(5000)]),
                 ("int_element", [5]), ("int_key_element", [{1: "x"}])]


#: Values no name, identifier or one-line text can hold: they must be refused before the remote executor is reached.
NEVER_SENT = {"nul", "crlf", "surrogate", "nul_element", "crlf_element", "surrogate_element"}
#: Options that may carry them anyway: secrets are arbitrary text (a password with CR/LF or a lone surrogate is the
#: user's business; the executor receives them as JSON, and PowerShell's strings are UTF-16).
ANY_TEXT = {"password", "exchange_password", "pfx_password", "private_key_password"}


# Date/time options: valid ISO-8601 text at the ends of the calendar, some with no UTC form, and a no-expiry date.
DATE_OPTIONS = {"now", "since", "until", "started"}
DATES = [
    ("before_utc", "0001-01-01T00:00:00+01:00"),
    ("after_utc", "9999-12-31T23:59:59-01:00"),
    ("year_one", "0001-01-01T00:00:00Z"),
    ("no_expiry", "9999-12-31T23:59:59Z"),
    ("year_one_date", "0001-01-01"),
    ("last_date", "9999-12-31"),
]


def hostile_values(spec: Mapping[str, Any], name: str = "") -> list[tuple[str, Any]]:
    kind = spec.get("type", "str")
    if kind in ("str", "path"):
        return TEXT + WRONG_FOR_TEXT + (DATES if name in DATE_OPTIONS else [])
    if kind in ("int", "float"):
        return NUMBERS
    if kind == "bool":
        return BOOLS
    if kind == "list":
        return DICT_ELEMENTS if spec.get("elements") == "dict" else LISTS
    if kind == "dict":
        return DICTS
    raise AssertionError(f"no hostile values for type {kind}")


# --- the modules and their valid options --------------------------------------------------------------------


def _ledger_file(where: pathlib.Path) -> str:
    path = where / "ledger.jsonl"
    append_records(path, [make_record(server="ex1", module="exchange.pki.certificate_remove", action="remove",
                                      result="changed", before={"thumbprint": THUMBPRINT}, after={}, time=NOW)])
    return str(path)


def _file(where: pathlib.Path, name: str, text: str) -> str:
    path = where / name
    path.write_text(text, encoding="utf-8")
    return str(path)


PASSWORD = "Pa55-word!"


@functools.lru_cache(maxsize=None)
def material() -> tuple[str, str, str]:
    """A certificate (PEM), a PFX of it with its key (base64) and a CSR (PEM) of mail.contoso.lab."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.contoso.lab")])
    names = x509.SubjectAlternativeName([x509.DNSName("mail.contoso.lab")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).add_extension(names, critical=False)
                   .not_valid_before(NOW - datetime.timedelta(days=1))
                   .not_valid_after(NOW + datetime.timedelta(days=365))
                   .sign(key, hashes.SHA256()))
    pfx = pkcs12.serialize_key_and_certificates(b"mail", key, certificate, None,
                                                serialization.BestAvailableEncryption(PASSWORD.encode()))
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).add_extension(names, critical=False) \
        .sign(key, hashes.SHA256())
    return (certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"), base64.b64encode(pfx).decode("ascii"),
            csr.public_bytes(serialization.Encoding.PEM).decode("ascii"))


@dataclasses.dataclass(frozen=True)
class Module:
    """One action plugin: its class and the valid options each hostile value is placed into."""

    name: str
    plugin: Any
    bases: tuple[Callable[[pathlib.Path], dict[str, Any]], ...]
    #: Options (dotted paths) the sweep leaves alone, with the reason (documented behaviour, not a bug).
    not_swept: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: Why a refusal may leave a new empty file behind (a lock file the module creates before it decides).
    empty_file: str = ""


MODULES = [
    Module("adcs_request", adcs_request, (
        lambda where: {"csr": material()[2], "state_path": str(where / "state.jsonl"), "template": "WebServer",
                       "ca_config": "ca01.contoso.lab\\Contoso CA", "ledger": str(where / "l.jsonl"),
                       "ledger_webhook": {"url": "https://hooks.contoso.lab/ledger"}},
    ), empty_file="the state file is created (0600, empty) to hold its lock before the module decides; a refusal "
                  "in the decision (template required to submit) leaves it empty, and a rerun reads it as empty"),
    Module("auth_certificate", auth_certificate, (lambda where: {"ledger": str(where / "l.jsonl")},)),
    Module("certificate_export", certificate_export, (
        lambda where: {"thumbprint": THUMBPRINT, "password": "Pa55-word!", "dest": str(where / "out.pfx")},
    )),
    Module("certificate_import", certificate_import, (
        lambda where: {"src": _file(where, "cert.cer", material()[0]),
                       "friendly_name": "mail 2027"},
        lambda where: {"pfx_content": material()[1], "pfx_password": PASSWORD, "friendly_name": "mail 2027"},
    )),
    Module("certificate_info", certificate_info, (
        lambda where: {"policy": {}, "exchange_username": "CONTOSO\\admin", "exchange_password": "Pa55-word!",
                       "exchange_uri": "https://ex1.contoso.lab/PowerShell/"},
    )),
    Module("certificate_remove", certificate_remove, (lambda where: {"thumbprint": THUMBPRINT},)),
    Module("certificate_request", certificate_request, (
        lambda where: {"subject": "CN=mail.contoso.lab", "dns_names": ["mail.contoso.lab"],
                       "csr_path": str(where / "req.csr"), "friendly_name": "mail 2027"},
        lambda where: {"subject": "CN=mail.contoso.lab", "key_location": "controller",
                       "private_key_path": str(where / "key.pem")},
    )),
    Module("certificate_services", certificate_services, (
        lambda where: {"thumbprint": THUMBPRINT, "services": ["IIS", "SMTP"],
                       "x509_certificate_name": "mail.contoso.lab"},
    )),
    Module("fleet_alert", fleet_alert, (
        lambda where: {"facts": dag_fleet(), "now": NOW_TEXT, "min_severity": "info",
                       "events": [{"severity": "critical", "summary": "renewal failed"}],
                       "webhook": {"url": "https://hooks.contoso.lab/alert", "timeout": 1}},
        lambda where: {"facts": dag_fleet(), "now": NOW_TEXT, "min_severity": "info",
                       "email": {"smtp_host": "smtp.contoso.lab", "from": "alerts@contoso.lab",
                                 "to": ["ops@contoso.lab"], "timeout": 1}},
    )),
    Module("fleet_report", fleet_report, (
        lambda where: {"facts": dag_fleet(), "dest": str(where / "report"), "now": NOW_TEXT,
                       "ledger": _ledger_file(where)},
    )),
    Module("ledger_info", ledger_info, (lambda where: {"ledger": _ledger_file(where)},)),
    Module("ledger_record", ledger_record, (
        lambda where: {"ledger": str(where / "l.jsonl"), "action": "renewal_failed", "server": "EX2",
                       "before": {"thumbprint": THUMBPRINT}, "after": {}, "message": "failed", "run_id": "run-1"},
    )),
    Module("renewal_plan", renewal_plan, (
        lambda where: {"facts": dag_fleet(), "now": NOW_TEXT, "plan_id": "run-1", "ledger": _ledger_file(where),
                       "policy": {"backends": [{"backend": "adcs", "match": {"names": ["mail.contoso.lab"]},
                                                "options": {"ca_config": "ca01\\CA"}}],
                                  "windows": [{"start": "22:00", "end": "04:00"}], "backoff": {}}},
    )),
    Module("renewal_status", renewal_status, (
        lambda where: {"plan": make_plan(), "now": NOW_TEXT, "ledger": _ledger_file(where),
                       "metrics_path": str(where / "metrics.prom"), "run": {"started": NOW_TEXT}},
    )),
    Module("tls_probe", tls_probe, (lambda where: {"host": "ex1.contoso.lab"},)),
]


#: (module, option) the sweep still breaks, with what escapes; each fix removes its entries (xfail is strict).
KNOWN_BROKEN: dict[tuple[str, str], str] = {
}


#: Where each module's valid options lead with nothing contacted: the remote executor (reached), a delivery or
#: connection that fails (no network), or a success.
BASE_OUTCOME = {
    **dict.fromkeys(("adcs_request", "auth_certificate", "certificate_export", "certificate_import", "certificate_info",
                     "certificate_remove", "certificate_services"), "remote"),
    "certificate_request": ("remote", None),  # key_location controller: the key and CSR are made on the controller
    "fleet_alert": "delivery failed", "tls_probe": "connecting to ex1.contoso.lab:443 failed",
}


def _option_paths(spec: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                           Mapping[str, Any]]]:
    for name, option in spec.items():
        path = (*prefix, name)
        yield path, option
        if "options" in option:
            yield from _option_paths(option["options"], path)


def _container(args: dict[str, Any], parents: tuple[str, ...]) -> dict[str, Any] | None:
    """The dict of ``args`` that holds an option at ``parents`` (a list of dicts: its first element)."""
    current: Any = args
    for name in parents:
        current = current.get(name) if isinstance(current, dict) else None
        if isinstance(current, list):
            current = current[0] if current else None
        if not isinstance(current, dict):
            return None
    return current


def _cases() -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as scratch:
        for module in MODULES:
            shapes = [make(pathlib.Path(scratch)) for make in module.bases]
            for path, option in _option_paths(module.plugin.ARGUMENT_SPEC.argument_spec):
                dotted = ".".join(path)
                if dotted in module.not_swept:
                    continue
                base = next((index for index, shape in enumerate(shapes) if _container(shape, path[:-1]) is not None),
                            None)
                if base is None:
                    continue
                broken = KNOWN_BROKEN.get((module.name, dotted))
                marks = [pytest.mark.xfail(reason=broken, strict=True)] if broken else []
                yield pytest.param(module, path, option, base, id=f"{module.name}-{dotted}", marks=marks)


# --- running one plugin with nothing contacted ---------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name fails to resolve, after the encoding the real resolver applies (which may raise)."""

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        del port, args, kwargs
        if isinstance(host, str):
            host.encode("idna")
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (hostile test: no network)")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def run_hostile(cls: type[ActionBase], args: dict[str, Any], sent: list[Any]) -> dict[str, Any]:
    task = FakeTask(args, action="exchange.pki.hostile", resolved_action="exchange.pki.hostile")
    plugin = cls(task, SimpleNamespace(_shell=SimpleNamespace(tmpdir="/tmp/ansible-test")), SimpleNamespace(),
                 None, None, None)

    def execute_module(module_name: str, module_args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        del module_name, task_vars
        json.dumps(module_args)  # what core does to send them
        sent.append(module_args)
        return {"unreachable": True, "msg": REMOTE_REACHED}

    plugin._execute_module = execute_module  # noqa: SLF001 - the seam the harness replaces
    return plugin.run(task_vars={"inventory_hostname": "ex1", "ansible_user": "CONTOSO\\ansible"})


def _files(where: pathlib.Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime_ns for path in where.rglob("*") if path.is_file()}


def _problem(result: dict[str, Any] | None, error: BaseException | None) -> str | None:
    """Why a run's outcome is not acceptable, or None."""
    if error is not None:  # AnsibleActionFail too: a raised failure escapes the task's failed_when
        return f"raised {type(error).__name__}: {str(error)[:300]}"
    assert result is not None
    message = result.get("msg")
    if result.get("exception") or (isinstance(message, str) and message.startswith("Unexpected failure")):
        return f"unexpected failure: {str(message)[:300]}"
    if result.get("failed") or result.get("unreachable"):
        if not isinstance(message, str) or not message.strip():
            return f"failed without a message: {result!r:.300}"
    return None


@pytest.mark.usefixtures("no_network", "frozen_clock")
@pytest.mark.parametrize(("module", "path", "option", "base"), list(_cases()))
def test_hostile_values_fail_clearly(module: Module, path: tuple[str, ...], option: Mapping[str, Any], base: int,
                                     tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = []
    for label, value in hostile_values(option, path[-1]):
        where = tmp_path / label / "a" / "b"
        where.mkdir(parents=True)
        monkeypatch.chdir(where)  # relative and ../ paths stay inside tmp_path
        args = module.bases[base](where)
        container = _container(args, path[:-1])
        assert container is not None
        container[path[-1]] = value
        before = _files(tmp_path / label)
        sent: list[Any] = []
        result = error = None
        try:
            result = run_hostile(module.plugin.ActionModule, args, sent)
        except Exception as exc:  # noqa: BLE001 - what escaped is the finding
            error = exc
        problem = _problem(result, error)
        written = {path for path, stamp in _files(tmp_path / label).items() if before.get(path) != stamp}
        if module.empty_file:
            written = {path for path in written if path in before or os.path.getsize(path)}
        if problem is None and sent and label in NEVER_SENT and path[-1] not in ANY_TEXT \
                and not (option.get("type") == "path" and label.startswith("crlf")):  # a file name may hold CR/LF
            problem = "reached the remote executor"
        if problem is None and sent and option.get("type") == "path" and label in ("long", "long_name"):
            problem = "a path no file system holds reached the remote executor (the file fails after the change)"
        if problem is None and (error is not None or result.get("failed") or result.get("unreachable")) \
                and not sent and written:
            problem = f"failed but wrote {sorted(written)}"
        if problem:
            problems.append(f"{label}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(("plugin", "args", "message"), [
    (tls_probe, {"host": "ex1.contoso.lab", "port": math.inf}, "port must be a finite whole number, got inf"),
    (tls_probe, {"host": "ex1.contoso.lab", "port": "1e99999999"}, "port is too large"),
    (certificate_remove, {"thumbprint": THUMBPRINT, "ledger_webhook": 5},
     "ledger_webhook must be a dictionary, got int"),
    (certificate_remove, {"thumbprint": THUMBPRINT, "ledger_webhook": {1: "x"}},
     "ledger_webhook has a key that is not a string (int 1)"),
    (fleet_alert, {"webhook": {"url": "https://hooks.contoso.lab/"}, "events": [5]}, "events[0] must be a dictionary"),
    # facts is one of renewal_plan's DATA_OPTIONS, read uncopied (test_data_options.py): a deep one is just unusable
    (renewal_plan, {"facts": {}, "host_vars": _deep(5000)}, "host_vars is nested deeper than 64 levels"),
    (certificate_info, {"exchange_username": "CONTOSO\\\ud800", "exchange_password": PASSWORD},
     "exchange_username holds a lone surrogate"),
    (renewal_status, {"plan": {}, "metrics_path": "m\x00.prom"},
     "metrics_path 'm\\x00.prom' contains the control character U+0000 (NUL)"),
    (fleet_report, {"facts": {}, "dest": "\ud800"}, "dest holds a lone surrogate, which no file name can hold"),
    (certificate_import, {"src": "cert\udfff.cer"}, "src holds a lone surrogate"),
    (adcs_request, {"ca_config": "ca01\\CA", "request_id": 7, "certificate_path": "y" * 300},
     "certificate_path has a file or directory name longer than 255 bytes"),
    (certificate_export, {"thumbprint": THUMBPRINT, "password": PASSWORD, "dest": "x/" * 2100 + "out.pfx"},
     "dest is longer than 4095 bytes"),
])
def test_a_hostile_value_is_refused_naming_the_option(plugin: Any, args: dict[str, Any], message: str) -> None:
    sent: list[Any] = []
    refused = failed_result(run_hostile(plugin.ActionModule, args, sent))
    assert message in refused["msg"]
    assert sent == []


@pytest.mark.usefixtures("no_network", "frozen_clock")
@pytest.mark.parametrize(("option", "message"), [
    ("title", "title holds a lone surrogate"),
    ("subject_prefix", "email.subject_prefix holds a lone surrogate"),
])
def test_a_lone_surrogate_in_the_mail_is_refused_before_anything_is_sent(option: str, message: str) -> None:
    mail = {"smtp_host": "smtp.contoso.lab", "from": "alerts@contoso.lab", "to": ["ops@contoso.lab"],
            "username": "alerts", "password": "Pa55-word!", "starttls": True}
    args = {"facts": dag_fleet(), "now": NOW_TEXT, "min_severity": "info", "email": mail}
    (args if option == "title" else mail)[option] = "\ud800"
    result = run_hostile(fleet_alert.ActionModule, args, [])
    assert result.get("failed") and message in result["msg"], result


@pytest.mark.usefixtures("no_network", "frozen_clock")
@pytest.mark.parametrize("module", MODULES, ids=[module.name for module in MODULES])
def test_the_valid_options_get_past_the_checks(module: Module, tmp_path: pathlib.Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each base of the sweep is valid: a hostile value is what the plugin refuses, not something else."""
    monkeypatch.chdir(tmp_path)
    for index, make in enumerate(module.bases):
        sent: list[Any] = []
        result = run_hostile(module.plugin.ActionModule, make(tmp_path), sent)
        expected = BASE_OUTCOME.get(module.name)
        if isinstance(expected, tuple):
            expected = expected[index]
        if expected == "remote":
            assert len(sent) == 1, result  # the executor was reached, with the first (reading) batch
        elif expected:
            assert expected in result["msg"], result
        else:
            assert not result.get("failed"), result


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(("plugin", "args", "message"), [
    (adcs_request, {"ca_config": "ca01\\CA", "request_id": True}, "request_id must be a number, got the boolean True"),
    (tls_probe, {"host": "ex1.contoso.lab", "port": True}, "port must be a number, got the boolean True"),
    (tls_probe, {"host": "ex1.contoso.lab", "timeout": False}, "timeout must be a number, got the boolean False"),
    (auth_certificate, {"lead_hours": True}, "lead_hours must be a number"),
])
def test_a_boolean_for_a_number_is_refused_before_anything_is_sent(plugin: Any, args: dict[str, Any],
                                                                   message: str) -> None:
    """Core takes True for 1 (bool is an int); no number option of the collection means that."""
    sent: list[Any] = []
    refused = failed_result(run_hostile(plugin.ActionModule, args, sent))
    assert message in refused["msg"]
    assert sent == []


@pytest.mark.parametrize(("args", "message"), [
    ({"subject": "CN=mail.contoso.lab", "friendly_name": "mail \ud800"},
     "friendly_name 'mail \\ud800' contains a lone surrogate U+D800 at position 6"),
    ({"subject": "CN=mail.contoso.lab", "dns_names": ["mail\udfff.contoso.lab"]}, "contains a lone surrogate U+DFFF"),
])
def test_certificate_request_refuses_a_lone_surrogate_before_anything_is_sent(args: dict[str, Any],
                                                                              message: str) -> None:
    """Sent, the request was made on the server and then its ledger record failed (a change the ledger missed)."""
    sent: list[Any] = []
    refused = failed_result(run_hostile(certificate_request.ActionModule, {**args, "ledger": "ledger.jsonl"}, sent))
    assert message in refused["msg"]
    assert sent == []


@pytest.mark.parametrize(("name", "message"), [
    ("mail\u20282027", "contains the control or invisible character U+2028"),
    ("mail \ud800", "contains a lone surrogate U+D800"),
])
def test_certificate_import_refuses_what_certificate_request_refuses_in_a_friendly_name(name: str,
                                                                                        message: str) -> None:
    sent: list[Any] = []
    refused = failed_result(run_hostile(certificate_import.ActionModule,
                                        {"pfx_content": material()[1], "pfx_password": PASSWORD, "friendly_name": name},
                                        sent))
    assert f"friendly_name {name!r} {message}" in refused["msg"]
    assert sent == []


@pytest.mark.parametrize(("option", "value"), [
    ("template", "Web\ud800Server"),
    ("template", "Web\u2028Server"),
    ("attributes", ["SAN:dns=mail.contoso.lab\u2029"]),
])
def test_adcs_request_refuses_line_separators_and_lone_surrogates_before_anything_is_sent(
        option: str, value: Any, tmp_path: pathlib.Path) -> None:
    sent: list[Any] = []
    args = {"csr": material()[2], "state_path": str(tmp_path / "state.jsonl"), "ca_config": "ca01.contoso.lab\\CA",
            "template": "WebServer", option: value}
    refused = failed_result(run_hostile(adcs_request.ActionModule, args, sent))
    assert f"{option} must not contain control characters (CR, LF, NUL, ...), line separators, lone surrogates" \
        in refused["msg"]
    assert sent == []
