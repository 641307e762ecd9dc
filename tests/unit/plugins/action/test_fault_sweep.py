# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fault at every changing operation of every changing module: a clear failure, a ledger record, and a rerun
that finishes the job.

For each case of the check-mode sweep whose module changes a server (test_check_mode_sweep.CASES), a clean run
from the case's starting state gives the changing operations the task sends (in order) and the state it ends in.
Then, for each of those operations and each fault the lab injects (tests/lab/ARCHITECTURE.md: an ``error`` that
fails the operation, a ``drop`` of the connection while it runs, the operations before it having run), and for a
drop at the re-read that confirms the change (``confirm``: every change was made, the answer is lost), from the
same starting state:

1. ``faulty``: the task with that fault, once. Its result is a returned failure (never a traceback): ``failed``
   with ``failure_reason: failed`` naming the operation for an error, ``unreachable`` with ``failure_reason:
   connection_dropped`` naming it for a drop. ``changed`` is true whenever the lab changed (never "unchanged"
   over a changed server), false after an error that changed nothing. The ledger gets exactly one record,
   ``failed``, whose message names the operation, and the ledger's webhook receives it (DESIGN.md invariant 7:
   every change appends a record, also one whose answer was lost).
2. ``rerun``: the same task without the fault, again until a run changes nothing (at most as many runs as the
   clean start needed, plus one), never failing, ends with the lab in the clean runs' end state: the same
   certificates (by subject, issuer and validity, as new keys give new thumbprints), services, bindings,
   connectors, Auth configuration and internal transport certificate, and at least the clean runs' restarts and
   recycles.

Where a rerun cannot finish the job, the module's documentation says so and the failure's message tells the
administrator what to do (``REMEDIES``): the sweep checks that message, does what it says in the lab, and then
expects the reruns to finish. Each (case, fault) is one test that tries every operation and reports every problem
it finds.

A second test fails each read of the task's first round trip in turn: the task refuses naming the read, or does
exactly what the clean run did and warns that the read failed.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils._remote import OPERATIONS
from tests.lab.model import Fleet
from tests.unit.plugins.action.lab_host import ADMIN, LabHost
from tests.unit.plugins.action.test_check_mode_sweep import CASES, PLUGINS, Case, Sinks, Start
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink

#: The modules that send changes through the remote executor: to the Exchange server, or to the CA through the
#: host's certreq (adcs_request). The others change files and sinks on the controller only.
SERVER_CHANGING = ("certificate_request", "certificate_import", "certificate_services", "certificate_remove",
                   "auth_certificate", "adcs_request")
#: error / drop: at each changing operation. confirm: the connection drops at the re-read that travels with the
#: plan's last phase (its host.info, after the first read's), when every change of that phase has run.
FAULTS = ("error", "drop", "confirm")
INJECTED = "Injected by the fault sweep: the operation failed"
#: Parts of the lab's dump that say when or how often, not what the servers hold.
VOLATILE = frozenset({"clock", "mutations", "faults", "application_log", "services_restarted", "app_pool_recycles",
                      "iis_resets", "next_servicelet_tick", "exchange_session", "lab_time", "time"})
THUMBPRINT = re.compile(r"\b[0-9A-F]{40}\b")


@pytest.fixture(scope="module")
def sinks() -> Iterator[Sinks]:
    with smtp_sink() as smtp, http_sink() as hook:
        yield Sinks(smtp, hook)


@dataclasses.dataclass(frozen=True)
class Remedy:
    """What the administrator must do after a fault at ``operation`` that no rerun does, as the message says."""

    #: words the faulty run's message (or, with ``refused``, the first rerun's refusal) must hold
    says: tuple[str, ...]
    #: does it in the lab: given the lab and the host, from the state before the task ran
    does: Callable[[Fleet, str, dict[str, Any]], None]
    #: the first rerun refuses (nothing changed) until the remedy is done
    refused: bool = False


def put_back_internal_transport(fleet: Fleet, host: str, before: dict[str, Any]) -> None:
    """Enable-ExchangeCertificate -Services SMTP -Force of the certificate that was the internal transport one."""
    previous = before["servers"][host]["internal_transport_thumbprint"]
    lab_operation(fleet, host, "Enable-ExchangeCertificate", {"Thumbprint": previous, "Services": ["SMTP"],
                                                              "Force": True})


def recycle_app_pools(fleet: Fleet, host: str, before: dict[str, Any]) -> None:
    del before
    for pool in ("MSExchangeOWAAppPool", "MSExchangeECPAppPool"):
        lab_operation(fleet, host, "host.recycle_app_pool", {"name": pool})


def restart_auth_users(fleet: Fleet, host: str, before: dict[str, Any]) -> None:
    """What the emergency Auth procedure restarts: MSExchangeServiceHost, then the OWA and ECP app pools."""
    lab_operation(fleet, host, "host.restart_service", {"name": "MSExchangeServiceHost"})
    recycle_app_pools(fleet, host, before)


def reset_iis(fleet: Fleet, host: str, before: dict[str, Any]) -> None:
    del before
    lab_operation(fleet, host, "host.iis_reset", {})


def lab_operation(fleet: Fleet, host: str, operation: str, args: dict[str, Any]) -> None:
    answer = fleet.run_module(host, "exchange.pki.exchange_batch",
                              {"operations": [{"id": "admin", "op": operation, "args": args}]}, remote_user=ADMIN)
    assert answer["results"][0]["status"] == "ok", answer


#: (module, operation) -> what the administrator does that a rerun does not (the module's documentation says why).
REMEDIES = {
    # auth_certificate: New-ExchangeCertificate -Services SMTP -Force makes the new Auth certificate the internal
    # transport certificate; when putting the previous one back fails, a rerun refuses (safety invariant 5) and
    # says how to put it back.
    ("auth_certificate", "Enable-ExchangeCertificate"): Remedy(
        ("internal transport certificate", "Enable-ExchangeCertificate -Thumbprint <previous> -Services SMTP -Force"),
        put_back_internal_transport, refused=True),
    # auth_certificate: the emergency procedure's restarts, once the new certificate is current.
    **dict.fromkeys((("auth_certificate", "host.restart_service"), ("auth_certificate", "host.recycle_app_pool")),
                    Remedy(("restarts nothing", "restart MSExchangeServiceHost and recycle MSExchangeOWAAppPool and "
                            "MSExchangeECPAppPool"), restart_auth_users)),
    # certificate_services iis_restart: 'Nothing is restarted when IIS already used the certificate.'
    ("certificate_services", "host.recycle_app_pool"): Remedy(
        ("restarts nothing", "recycle MSExchangeOWAAppPool and MSExchangeECPAppPool"), recycle_app_pools),
    ("certificate_services", "host.iis_reset"): Remedy(("restarts nothing", "run iisreset"), reset_iis),
}


@dataclasses.dataclass
class Run:
    result: dict[str, Any]
    host: LabHost
    mutations: list[dict[str, Any]]


def run(case: Case, start: Start) -> Run:
    before = len(start.fleet.dump()["mutations"])
    host = LabHost(start.fleet, start.host)
    result = host.run(PLUGINS[case.module].ActionModule, start.args, task_vars=start.task_vars,
                      action=f"exchange.pki.{case.module}")
    return Run(result, host, start.fleet.dump()["mutations"][before:])


def changing_operations(host: LabHost) -> list[str]:
    """The changing operations the task sent, in order, each once."""
    sent = [operation["op"] for call in host.calls for operation in call["module_args"]["operations"]]
    return list(dict.fromkeys(name for name in sent if OPERATIONS[name].changes))


def labels(dump: dict[str, Any]) -> dict[str, str]:
    """Each certificate's thumbprint -> what identifies it across runs (new keys give new thumbprints)."""
    found = {}
    for server in dump["servers"].values():
        for certificates in server["certificates"].values():
            for certificate in certificates:
                found[certificate["thumbprint"]] = (f"<{certificate['subject']} by {certificate['issuer']}, "
                                                    f"{certificate['not_before']}-{certificate['not_after']}>")
    return found


def held(dump: dict[str, Any]) -> Any:
    """What the servers and the organisation hold, without thumbprints and without the record of when."""
    names = labels(dump)
    text = THUMBPRINT.sub(lambda match: names.get(match.group(0), "<unknown thumbprint>"), json.dumps(dump))

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items() if key not in VOLATILE}
        if isinstance(value, list):
            return sorted((strip(item) for item in value), key=lambda item: json.dumps(item, sort_keys=True))
        return value

    return strip(json.loads(text))


def restarts(dump: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Every restart, recycle and IIS reset the servers went through (which, not when)."""
    found = set()
    for name, server in dump["servers"].items():
        found |= {(name, "service", str(entry.get("name"))) for entry in server["services_restarted"]}
        found |= {(name, "app_pool", str(entry.get("name"))) for entry in server["app_pool_recycles"]}
        found |= {(name, "iisreset", "") for _entry in server["iis_resets"]}
    return found


def ledger_lines(root: pathlib.Path) -> list[dict[str, Any]]:
    path = root / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def faulty_run_problems(fault: str, operation: str, faulty: Run, records: list[dict[str, Any]],
                        posted: int) -> list[str]:
    """What is wrong with the task's answer to the fault (an empty list: nothing)."""
    result = faulty.result
    problems = []
    if "exception" in result or str(result.get("msg", "")).startswith("Unexpected failure"):
        problems.append(f"a traceback instead of a failure: {result.get('msg')}")
    wanted = ({"failed": True, "failure_reason": "failed"} if fault == "error"
              else {"unreachable": True, "failure_reason": "connection_dropped"})
    if fault == "confirm" and not faulty.mutations:
        problems.append("the drop at the confirming re-read came before any change")
    got = {key: result.get(key) for key in wanted}
    if got != wanted:
        problems.append(f"the result says {got}, not {wanted}: {result.get('msg')}")
    if operation not in str(result.get("msg")):
        problems.append(f"the message does not name {operation}: {result.get('msg')}")
    if faulty.mutations and result.get("changed") is not True:
        problems.append(f"changed={result.get('changed')} after the lab changed: "
                        f"{[entry['operation'] for entry in faulty.mutations]}")
    if fault == "error" and not faulty.mutations and result.get("changed") is not False:
        problems.append("changed=true although the failed operation changed nothing")
    if [record.get("result") for record in records] != ["failed"]:
        problems.append(f"the ledger got {[record.get('result') for record in records]}, not one failed record")
    elif operation not in str(records[0].get("message")):
        problems.append(f"the ledger record does not name {operation}: {records[0].get('message')}")
    if posted != 1:
        problems.append(f"the ledger's webhook received {posted} records, not 1")
    return problems


def converge(case: Case, start: Start, runs: int) -> tuple[list[Run], list[str]]:
    """Run the task until a run changes nothing (at most ``runs`` times); the runs and what went wrong."""
    done: list[Run] = []
    for _number in range(runs):
        done.append(run(case, start))
        result = done[-1].result
        if result.get("failed") or result.get("unreachable"):
            return done, [f"run {len(done)} after the fault failed: {result.get('msg')}"]
        if result.get("changed") is False:
            return done, []
    return done, [f"{runs} runs after the fault still change something: {done[-1].result.get('plan')}"]


def end_state_problems(clean_end: dict[str, Any], end: dict[str, Any]) -> list[str]:
    """How the lab after the fault and the reruns differs from the clean runs' end (an empty list: it does not)."""
    problems = []
    expected, got = held(clean_end), held(end)
    if got != expected:
        problems.append("the servers do not hold what the clean runs left: " + difference(expected, got))
    missing = restarts(clean_end) - restarts(end)
    if missing:
        problems.append(f"restarts the clean runs made were never made: {sorted(missing)}")
    return problems


def difference(expected: Any, got: Any, path: str = "") -> str:
    """The first place where two held states differ."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in sorted(set(expected) | set(got)):
            if expected.get(key) != got.get(key):
                return difference(expected.get(key), got.get(key), f"{path}.{key}")
    return f"{path or '.'}: clean {json.dumps(expected)[:400]} against {json.dumps(got)[:400]}"


#: The cases whose start needs no change: their task sends nothing that changes a server (a pending request that is
#: reused, services already enabled, a key made on the controller, a retrieval, ...), so no fault can hit a change.
#: test_the_cases_that_send_no_change_are_the_listed_ones keeps this list true.
SENDS_NO_CHANGE = frozenset({
    "adcs_request-single-approved-retrieved", "adcs_request-dag-certificate-file-overwritten",
    "adcs_request-dag-chain-file-overwritten", "adcs_request-dag-by-request-id", "auth_certificate-single-nothing-due",
    "certificate_import-dag-already-there-other-name", "certificate_remove-single-absent",
    "certificate_request-dag-controller-key", "certificate_request-broken-pending-request-reused",
    "certificate_request-dag-controller-key-reused", "certificate_request-single-controller-bad-key-forced",
    "certificate_request-dag-controller-key-loose-mode", "certificate_request-single-csr-file-overwritten",
    "certificate_request-dag-controller-csr-overwritten", "certificate_request-broken-pending-other-friendly-name",
    "certificate_services-single-all-bound-already", "certificate_services-dag-smtp-2016",
})


def server_cases() -> list[Case]:
    return [case for case in CASES if case.module in SERVER_CHANGING and not case.fails]


def changing_cases() -> list[Case]:
    return [case for case in server_cases() if case.id not in SENDS_NO_CHANGE]


def test_the_cases_that_send_no_change_are_the_listed_ones(sinks: Sinks, tmp_path: pathlib.Path) -> None:
    sends_nothing = set()
    for case in server_cases():
        root = tmp_path / case.id
        root.mkdir()
        clean = run(case, case.setup(case.scenario, root, sinks))
        assert not clean.result.get("failed"), (case.id, clean.result.get("msg"))
        if not changing_operations(clean.host):
            assert not clean.mutations, case.id
            sends_nothing.add(case.id)
    assert sends_nothing == SENDS_NO_CHANGE


@pytest.mark.parametrize(("case", "fault"), [
    pytest.param(case, fault, id=f"{case.id}-{fault}") for case in changing_cases() for fault in FAULTS
    if not (fault == "confirm" and case.module == "adcs_request")  # its submission travels with no re-read
])
def test_a_fault_fails_clearly_is_recorded_and_a_rerun_finishes(case: Case, fault: str, sinks: Sinks,
                                                                tmp_path: pathlib.Path) -> None:
    clean_root = tmp_path / "clean"
    clean_root.mkdir()
    clean_start = case.setup(case.scenario, clean_root, sinks)
    clean = run(case, clean_start)
    assert not clean.result.get("failed"), clean.result.get("msg")
    operations = changing_operations(clean.host)
    assert operations, "a case of SENDS_NO_CHANGE"
    clean_runs, problems = converge(case, clean_start, 3)
    assert not problems, problems
    clean_end = clean_start.fleet.dump()

    faults = [(operation, operation) for operation in operations] if fault != "confirm" else \
        [("host.info", operations[-1])]
    for operation, named in faults:
        root = tmp_path / f"{operation}".replace(".", "_")
        root.mkdir()
        start = case.setup(case.scenario, root, sinks)
        before = start.fleet.dump()
        if fault == "error":
            start.fleet.set_fault(start.host, operation, error=INJECTED, times=1)
        else:
            start.fleet.set_fault(start.host, operation, drop=True, times=1, after=int(fault == "confirm"))
        posted = len(sinks.hook.received)
        faulty = run(case, start)
        found = faulty_run_problems(fault, named, faulty, ledger_lines(root), len(sinks.hook.received) - posted)
        start.fleet.clear_faults()
        remedy = REMEDIES.get((case.module, operation))
        if remedy is not None and faulty.mutations:
            told = run(case, start) if remedy.refused else faulty
            if remedy.refused and (told.mutations or not told.result.get("failed")):
                found.append(f"the rerun did not refuse: changed {told.result.get('changed')}, {told.mutations}")
            found += [f"the message does not say {words!r}: {told.result.get('msg')}" for words in remedy.says
                      if words not in str(told.result.get("msg"))]
            remedy.does(start.fleet, start.host, before)
        found += converge(case, start, len(clean_runs) + 2)[1]
        found += end_state_problems(clean_end, start.fleet.dump())
        problems += [f"{operation}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)


# --- a read that fails ----------------------------------------------------------------------------------------

#: (module, read) -> why a task that proceeds without that read needs no warning about it.
READ_NOT_NEEDED = {
    ("adcs_request", "host.certificates"): "the chain is read from the host's stores only for an issued certificate "
                                           "(a pending request has none); an issued one warns that its chain is "
                                           "incomplete and why",
}


@pytest.mark.parametrize("case", changing_cases(), ids=lambda case: case.id)
def test_a_failed_read_refuses_naming_it_or_changes_what_a_clean_run_changes(
        case: Case, sinks: Sinks, tmp_path: pathlib.Path) -> None:
    """Each read of the task's first round trip fails in turn (an error, as Exchange gives when a cmdlet fails).

    The task either refuses, changing nothing and naming the read (DESIGN.md invariants 1 and 8: a reference that
    cannot be checked keeps a certificate), or it does exactly what the clean run did and warns that the read
    failed. Never a traceback, never a different change."""
    clean_root = tmp_path / "clean"
    clean_root.mkdir()
    clean_start = case.setup(case.scenario, clean_root, sinks)
    clean = run(case, clean_start)
    assert clean.mutations, "a case of SENDS_NO_CHANGE"
    clean_end = held(clean_start.fleet.dump())
    first = clean.host.calls[0]["module_args"]["operations"]
    reads = list(dict.fromkeys(operation["op"] for operation in first if not OPERATIONS[operation["op"]].changes))

    problems = []
    for operation in reads:
        root = tmp_path / operation.replace(".", "_")
        root.mkdir()
        start = case.setup(case.scenario, root, sinks)
        start.fleet.set_fault(start.host, operation, error=INJECTED, times=1)
        faulty = run(case, start)
        result, message = faulty.result, str(faulty.result.get("msg"))
        if "exception" in result or message.startswith("Unexpected failure"):
            problems.append(f"{operation}: a traceback instead of a failure: {message}")
        elif result.get("failed") or result.get("unreachable"):
            if faulty.mutations:
                problems.append(f"{operation}: failed after changing the lab: {message}")
            if operation not in message:
                problems.append(f"{operation}: the refusal does not name the read: {message}")
        else:
            end = held(start.fleet.dump())
            if end != clean_end:
                problems.append(f"{operation}: without the read the task changed something else: "
                                + difference(clean_end, end))
            warned = any(operation in str(warning) for warning in result.get("warnings") or ())
            if not warned and (case.module, operation) not in READ_NOT_NEEDED:
                problems.append(f"{operation}: the task went on without a warning that the read failed")
    assert not problems, "\n".join(problems)
