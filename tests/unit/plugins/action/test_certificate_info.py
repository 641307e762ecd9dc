# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the certificate_info action plugin.

``_execute_module`` is answered by the lab's model of the remote executor, built in the test from a
scenario (tests/lab/scenarios): the batch results are produced at test time, never committed, and the
expectations are read from the lab's own dump. Time is frozen: the lab is built at NOW and the plugin
evaluates at NOW.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import re
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleConnectionFailure

from ansible_collections.exchange.pki.plugins.action import certificate_info
from ansible_collections.exchange.pki.plugins.plugin_utils import _snapshot
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import DOUBLE_HOP_REMEDIES
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import MODULE_NAME, OPERATIONS, parse_batch_result
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import FakeTask, failed_result

REPO_ROOT = pathlib.Path(__file__).resolve().parents[4]
SCENARIOS = REPO_ROOT / "tests" / "lab" / "scenarios"
MODULE_DOC = REPO_ROOT / "plugins" / "modules" / "certificate_info.py"
FRAGMENTS = REPO_ROOT / "plugins" / "doc_fragments"
ADMIN = "CONTOSO\\ansible"
ADMIN_PASSWORD = "Ex-Lab-2026!"  # the dag scenario's exchange_admin account
FACT_KEYS = {
    "changed", "collected_at", "server", "certificates", "auth", "iis_bindings", "connectors",
    "internal_transport_thumbprint", "cluster", "findings", "summary", "unavailable",
}


@dataclasses.dataclass
class Host:
    """One lab server behind the plugin: every module call is recorded and answered by the fleet."""

    fleet: Fleet
    name: str
    become: bool = False
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def gather(self, args: Mapping[str, Any] | None = None, *, check_mode: bool = False) -> dict[str, Any]:
        task = FakeTask(dict(args or {}), check_mode=check_mode)
        plugin = certificate_info.ActionModule(
            task, SimpleNamespace(_shell=SimpleNamespace(tmpdir="/tmp/ansible-test")), SimpleNamespace(), None, None,
        )
        plugin._execute_module = self._execute_module(task)
        return plugin.run(task_vars={"inventory_hostname": self.name})

    def _execute_module(self, task: FakeTask) -> Callable[..., dict[str, Any]]:
        def execute(module_name: str, module_args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
            self.calls.append({"module_name": module_name, "module_args": module_args})
            return self.fleet.run_module(self.name, module_name, module_args, check_mode=task.check_mode,
                                         become=self.become, remote_user=ADMIN)

        return execute

    def dump(self) -> dict[str, Any]:
        return self.fleet.dump()["servers"][self.name]


def scenario(name: str, **server_overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A shipped scenario, with per-server overrides (``ex1={"exchange_session": "double_hop"}``)."""
    data = yaml.safe_load((SCENARIOS / f"{name}.yml").read_text(encoding="utf-8"))
    for server in data["servers"]:
        server.update(server_overrides.get(server["name"], {}))
    return data


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugin reads the clock at NOW."""


@pytest.fixture
def dag() -> Fleet:
    return Fleet.from_scenario("dag", now=NOW)


@pytest.fixture
def ex1(dag: Fleet) -> Host:
    return Host(dag, "ex1")


def stored(server_dump: Mapping[str, Any], *stores: str) -> dict[str, dict[str, Any]]:
    """The lab's certificates of the given stores by thumbprint."""
    return {c["thumbprint"]: c for store in stores for c in server_dump["certificates"].get(store, [])}


def by_thumbprint(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["thumbprint"]: c for c in result["certificates"]}


EXCHANGE_ENRICHMENT = ("status", "services", "roles", "references")


def certificate_facts(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What the certificates say about themselves (RawData and the store), without Exchange's enrichment."""
    return {thumbprint: {key: value for key, value in facts.items() if key not in EXCHANGE_ENRICHMENT}
            for thumbprint, facts in by_thumbprint(result).items()}


def non_service_references(result: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    """References that do not come from Exchange's Services (bindings, Auth config, transport, cluster)."""
    return {thumbprint: [r for r in facts["references"] if r["kind"] != "exchange_service"]
            for thumbprint, facts in by_thumbprint(result).items()}


# --- the batch ------------------------------------------------------------------------------------


def test_the_batch_only_reads_and_every_id_is_unique():
    batch = _snapshot.build_batch()
    assert not batch.has_changes
    ids = [operation.id for operation in batch.operations]
    assert len(ids) == len(set(ids)) == len(_snapshot.READS)
    assert all(not OPERATIONS[operation.op].changes for operation in batch.operations)


def test_one_round_trip_per_task(ex1):
    ex1.gather()
    (call,) = ex1.calls
    assert call["module_name"] == MODULE_NAME
    assert [operation["id"] for operation in call["module_args"]["operations"]] == [
        read.id for read in _snapshot.READS
    ]


# --- normal operation -----------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["ex1", "ex2", "ex3", "ex4"])
def test_facts_match_the_lab(dag, server):
    host = Host(dag, server)
    result = host.gather()
    expected = host.dump()
    assert FACT_KEYS <= result.keys()
    assert result["changed"] is False
    assert "failed" not in result and "warnings" not in result
    assert result["collected_at"] == "2026-11-25T08:00:00Z"

    certificates = by_thumbprint(result)
    lab = stored(expected, "My", "REQUEST", "PKU2U")
    assert certificates.keys() == lab.keys()
    for thumbprint, facts in certificates.items():
        assert facts["store"] in {store for store, items in expected["certificates"].items()
                                  if any(c["thumbprint"] == thumbprint for c in items)}
        assert facts["not_after"] == lab[thumbprint]["not_after"]
        assert facts["subject"] == lab[thumbprint]["subject"]
        assert facts["has_private_key"] == lab[thumbprint]["has_private_key"]
        if facts["store"] == "My":
            assert facts["status"] == lab[thumbprint]["status"]
            assert sorted(facts["services"]) == sorted(lab[thumbprint]["services"])

    assert result["server"]["name"] == server.upper()
    assert result["server"]["fqdn"] == expected["fqdn"]
    assert result["server"]["site"] == expected["site"]
    assert result["server"]["dag"] == expected["dag"]
    assert result["internal_transport_thumbprint"] == expected["internal_transport_thumbprint"]
    assert [(b["site"], b["binding"], b["certificate_hash"]) for b in result["iis_bindings"]] == [
        (b["site"], b["binding_information"], b["certificate_hash"]) for b in expected["iis_bindings"]
    ]
    assert (result["cluster"] is None) == (expected["dag"] is None)
    assert result["summary"]["certificates"] == len(lab)


def test_the_shared_certificate_is_referenced_by_iis_and_the_mail_services(ex1):
    result = ex1.gather()
    (shared,) = [c for c in result["certificates"] if c["subject"] == "CN=mail.contoso.lab"]
    assert {"iis", "smtp", "imap", "pop"} <= set(shared["roles"])
    assert {"kind": "iis_binding", "name": "Default Web Site *:443:"} in shared["references"]
    assert shared["days_remaining"] == 20
    assert result["summary"]["earliest_expiry_thumbprint"] == shared["thumbprint"]


def test_organisation_wide_reads_are_narrowed_to_the_managed_server(dag):
    # Get-ExchangeServer and Get-ReceiveConnector are read organisation-wide (the batch cannot name the server).
    batch = _snapshot.build_batch()
    answer = dag.run_module("ex2", MODULE_NAME, batch.module_args(), remote_user=ADMIN)
    snapshot = _snapshot.build_snapshot(_snapshot.Readings.from_result(parse_batch_result(answer, batch)))
    assert snapshot.receive_connectors
    assert {connector.server for connector in snapshot.receive_connectors} == {"EX2"}
    assert snapshot.exchange_server is not None and snapshot.exchange_server.name == "EX2"


# --- RawData only, check mode ---------------------------------------------------------------------


def test_rawdata_only_objects_still_give_full_certificate_facts(dag):
    complete = Host(dag, "ex1").gather()
    dag.set_rawdata_only("ex1", True)
    degraded = Host(dag, "ex1").gather()
    assert certificate_facts(degraded) == certificate_facts(complete)
    assert non_service_references(degraded) == non_service_references(complete)
    assert [f["id"] for f in degraded["findings"]] == [f["id"] for f in complete["findings"]]
    assert {c["status"] for c in degraded["certificates"]} == {None}
    assert {tuple(c["services"]) for c in degraded["certificates"]} == {()}
    assert "warnings" not in degraded


def test_check_mode_gives_the_same_result_and_changes_nothing(ex1):
    normal = ex1.gather()
    checked = ex1.gather(check_mode=True)
    assert checked == normal
    assert ex1.fleet.dump()["mutations"] == []


# --- failures ---------------------------------------------------------------------------------------


def test_access_denied_fails_with_the_double_hop_remedies():
    host = Host(Fleet.from_scenario(scenario("dag", ex1={"exchange_session": "double_hop"}), now=NOW), "ex1")
    result = host.gather()
    assert result["failed"] is True
    assert "Access is denied" in result["msg"]
    assert all(remedy in result["msg"] for remedy in DOUBLE_HOP_REMEDIES)
    assert "exception" not in result


@pytest.mark.parametrize(
    ("args", "become"),
    [({"exchange_username": ADMIN, "exchange_password": ADMIN_PASSWORD}, False), ({}, True)],
    ids=["explicit-credential", "become"],
)
def test_the_double_hop_remedies_work(args, become):
    host = Host(Fleet.from_scenario(scenario("dag", ex1={"exchange_session": "double_hop"}), now=NOW), "ex1",
                become=become)
    result = host.gather(args)
    assert "failed" not in result
    assert {c["status"] for c in result["certificates"] if c["store"] == "My"} == {"Valid"}


def test_the_exchange_password_never_appears_in_the_result():
    host = Host(Fleet.from_scenario(scenario("dag", ex1={"exchange_session": "double_hop"}), now=NOW), "ex1")
    denied = host.gather({"exchange_username": ADMIN, "exchange_password": "Wrong-" + ADMIN_PASSWORD})
    granted = host.gather({"exchange_username": ADMIN, "exchange_password": ADMIN_PASSWORD})
    assert denied["failed"] is True
    assert ADMIN_PASSWORD not in repr(denied) + repr(granted)


def test_missing_exchange_tools_fail_the_task():
    host = Host(Fleet.from_scenario(scenario("dag", ex1={"exchange_session": "no_exchange"}), now=NOW), "ex1")
    result = host.gather()
    assert result["failed"] is True
    assert "Exchange management endpoint could not be used" in result["msg"]
    assert "exchange_uri" in result["msg"]


def test_unreachable_host(ex1):
    def refuse(**kwargs: Any) -> dict[str, Any]:
        raise AnsibleConnectionFailure("winrm connection error: connection refused")

    task = FakeTask({})
    plugin = certificate_info.ActionModule(
        task, SimpleNamespace(_shell=SimpleNamespace(tmpdir="/tmp/ansible-test")), SimpleNamespace(), None, None,
    )
    plugin._execute_module = refuse
    result = plugin.run(task_vars={})
    assert result["unreachable"] is True
    assert "connection refused" in result["msg"]


@pytest.mark.parametrize(
    ("op", "null_fact"),
    [
        ("Get-HybridConfiguration", "connectors"),
        ("Get-SendConnector", "connectors"),
        ("host.iis_bindings", "iis_bindings"),
        ("Get-AuthConfig", "auth"),
        ("host.cluster", "cluster"),
    ],
)
def test_a_failed_read_leaves_its_facts_null_and_warns(ex1, op, null_fact):
    ex1.fleet.set_fault("ex1", op, error="The service is temporarily unavailable.")
    result = ex1.gather()
    assert "failed" not in result
    assert result[null_fact] is None
    assert list(result["unavailable"]) == [op]
    (warning,) = result["warnings"]
    assert warning.startswith(f"{op} could not be read")
    assert "The service is temporarily unavailable." in warning
    assert result["certificates"], "the certificate inventory does not depend on it"


def test_a_failed_exchange_certificate_read_keeps_the_store_facts(ex1):
    complete = ex1.gather()
    ex1.fleet.set_fault("ex1", "Get-ExchangeCertificate", error="Deserialization failed.")
    degraded = ex1.gather()
    assert certificate_facts(degraded) == certificate_facts(complete)
    assert {c["status"] for c in degraded["certificates"]} == {None}
    assert [w.split(" ")[0] for w in degraded["warnings"]] == ["Get-ExchangeCertificate"]


def test_a_failed_store_read_falls_back_to_exchange_s_list(ex1):
    complete = by_thumbprint(ex1.gather())
    ex1.fleet.set_fault("ex1", "host.certificates", error="Access denied to the store.", times=1)  # My, REQUEST
    result = ex1.gather()
    (warning,) = result["warnings"]
    assert warning.startswith("host.certificates could not be read")
    degraded = by_thumbprint(result)
    assert degraded.keys() == complete.keys()
    for thumbprint, facts in degraded.items():
        assert facts["not_after"] == complete[thumbprint]["not_after"]
        if facts["store"] == "My":  # the key facts came from the store read: unknown now, never guessed
            assert facts["key_provider"] is None
            assert facts["status"] == complete[thumbprint]["status"]


def test_the_two_store_reads_have_distinct_names():
    names = [read.name for read in _snapshot.READS]
    assert len(names) == len(set(names))
    assert "host.certificates" in names


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (("host.info",), "the server could not be identified: host.info"),
        (("host.certificates", "Get-ExchangeCertificate"), "the certificates could not be listed"),
    ],
    ids=["host-info", "no-certificate-source"],
)
def test_fatal_gaps_fail_the_task(ex1, ops, message):
    for op in ops:
        ex1.fleet.set_fault("ex1", op, error="Injected failure.")
    result = ex1.gather()
    assert result["failed"] is True
    assert message in result["msg"]
    assert "Injected failure." in result["msg"]


# --- arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"warning_days": 10, "critical_days": 30}, "policy.critical_days"),
        ({"ignore_findings": ["no_such_finding"]}, "ignore_findings"),
        ({"colour": "blue"}, "policy.colour"),
        ({"warning_days": "soon"}, "warning_days"),
    ],
    ids=["inconsistent", "unknown-finding", "unknown-key", "wrong-type"],
)
def test_a_bad_policy_fails_naming_it_before_contacting_the_host(ex1, policy, message):
    failed_result(ex1.gather({"policy": policy}), message)
    assert ex1.calls == []


def test_the_policy_reaches_the_evaluation(ex1):
    default = {f["id"] for f in ex1.gather()["findings"]}
    relaxed = {f["id"] for f in ex1.gather({"policy": {"ignore_findings": ["expiring_critical"]}})["findings"]}
    assert default - relaxed == {"expiring_critical"}


def test_the_username_needs_the_password(ex1):
    failed_result(ex1.gather({"exchange_username": ADMIN}), "exchange_username, exchange_password")


def _doc_block(source: str, name: str) -> Any:
    return yaml.safe_load(source.split(f'{name} = r"""')[1].split('"""')[0])


def _undocumented(value: Any, documented: Mapping[str, Any], path: str = "") -> Iterator[str]:
    """Keys of a result (recursively through dicts and lists of dicts) that RETURN does not describe."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        for key, sub in item.items():
            if key not in documented:
                yield f"{path}{key}"
            elif "contains" in documented[key]:
                yield from _undocumented(sub, documented[key]["contains"], f"{path}{key}.")


def test_return_documents_every_key_of_the_result(dag):
    dag.set_fault("ex1", "Get-HybridConfiguration", error="Injected failure.")  # so warnings are returned too
    result = Host(dag, "ex1").gather()
    returned = _doc_block(MODULE_DOC.read_text(encoding="utf-8"), "RETURN")
    assert sorted(set(_undocumented(result, returned))) == []


def _documented_options() -> dict[str, dict[str, Any]]:
    """The module's options after its collection doc fragments are merged in."""
    doc = _doc_block(MODULE_DOC.read_text(encoding="utf-8"), "DOCUMENTATION")
    options = dict(doc.get("options") or {})
    for fragment in doc["extends_documentation_fragment"]:
        namespace, name = fragment.rsplit(".", 1)
        if namespace != "exchange.pki":
            continue
        source = (FRAGMENTS / f"{name}.py").read_text(encoding="utf-8")
        options.update(_doc_block(source, "DOCUMENTATION")["options"])
    return options


def _walk(spec: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any]]:
    for name, option in spec.items():
        yield name, option.get("type", "str"), option.get("default")
        for sub, sub_type, sub_default in _walk(option.get("options") or option.get("suboptions") or {}):
            yield f"{name}.{sub}", sub_type, sub_default


def test_the_documentation_mirrors_the_argument_spec():
    documented = sorted(_walk(_documented_options()))
    assert documented == sorted(_walk(certificate_info.ARGUMENT_SPEC.argument_spec))


# --- fact_name: the result as the exchange_pki host fact ---------------------------------------------

ROLE_VARS = REPO_ROOT / "roles" / "inventory" / "vars" / "main.yml"
# How the inventory role built exchange_pki from the registered result before fact_name existed (a set_fact of
# this expression, with the probes of the host: none here), rendered by Ansible's own templating.
ROLE_FACT_EXPRESSION = (
    "{{ __inventory_certificate_info | ansible.builtin.dict2items"
    " | rejectattr('key', 'in', __inventory_result_keys) | rejectattr('key', 'match', '_ansible')"
    " | ansible.builtin.items2dict | ansible.builtin.combine({'probes': {}}) }}"
)


def role_fact(registered: Mapping[str, Any]) -> Any:
    """exchange_pki as the role's set_fact made it from ``registered`` (the result as Ansible registers it)."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    result_keys = yaml.safe_load(ROLE_VARS.read_text(encoding="utf-8"))["__inventory_result_keys"]
    templar = Templar(loader=DataLoader(), variables={
        "__inventory_certificate_info": registered, "__inventory_result_keys": result_keys,
    })
    return templar.template(trust_as_template(ROLE_FACT_EXPRESSION))


def registered(result: Mapping[str, Any]) -> dict[str, Any]:
    """The result as a task registers it: core adds ``failed`` and strips its ``_ansible`` keys."""
    return {**{key: value for key, value in result.items() if not key.startswith("_ansible")}, "failed": False}


@pytest.mark.parametrize("fault", [None, "Get-HybridConfiguration"], ids=["complete", "with-warnings"])
@pytest.mark.parametrize("server", ["ex1", "ex3"])
def test_fact_name_returns_the_fact_the_inventory_role_built(dag, server, fault):
    if fault:
        dag.set_fault(server, fault, error="Injected failure.")
    plain = Host(dag, server).gather()
    result = Host(dag, server).gather({"fact_name": "exchange_pki"})
    assert set(result["ansible_facts"]) == {"exchange_pki"}
    fact = result["ansible_facts"]["exchange_pki"]
    # The rest of the result is unchanged, and the fact is exactly what the role's set_fact produced, key order
    # included (the role's cache files and reports serialise it).
    assert {key: value for key, value in result.items() if key != "ansible_facts"} == plain
    expected = role_fact(registered(plain))
    assert fact == expected
    assert json.dumps(fact) == json.dumps(expected)
    assert fact["probes"] == {}
    assert not set(fact) & {"changed", "failed", "warnings", "msg", "ansible_facts"}
    assert ("warnings" in result) == bool(fault)


def test_fact_name_also_works_in_check_mode(ex1):
    checked = ex1.gather({"fact_name": "certificates_of_ex1"}, check_mode=True)
    assert checked["ansible_facts"]["certificates_of_ex1"]["certificates"] == checked["certificates"]
    assert ex1.fleet.dump()["mutations"] == []


def test_without_fact_name_no_fact_is_returned(ex1):
    assert "ansible_facts" not in ex1.gather()
    assert "ansible_facts" not in ex1.gather({"fact_name": None})


def test_a_failed_host_gets_no_fact():
    host = Host(Fleet.from_scenario(scenario("dag", ex1={"exchange_session": "double_hop"}), now=NOW), "ex1")
    result = host.gather({"fact_name": "exchange_pki"})
    assert result["failed"] is True
    assert "ansible_facts" not in result


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "fact_name '' is not a valid variable name"),
        ("exchange-pki", "fact_name 'exchange-pki' is not a valid variable name"),
        ("1st", "fact_name '1st' is not a valid variable name"),
        ("exchange pki", "fact_name 'exchange pki' is not a valid variable name"),
        ("class", "fact_name 'class' is not a valid variable name"),
        ("café", "fact_name 'café' is not a valid variable name"),
        ("ansible_pki", "fact_name 'ansible_pki' is reserved by Ansible"),
        ("hostvars", "fact_name 'hostvars' is reserved by Ansible"),
        ("environment", "fact_name 'environment' is reserved by Ansible"),
    ],
)
def test_a_bad_fact_name_fails_naming_it_before_contacting_the_host(ex1, name, message):
    failed_result(ex1.gather({"fact_name": name}), re.escape(message))
    assert ex1.calls == []
