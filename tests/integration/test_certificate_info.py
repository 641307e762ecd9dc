# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.certificate_info through ansible-playbook -> winrm -> the lab.

The findings tests state each catalogue rule independently (docs/findings.md) and evaluate it over the lab's
dump of its model plus the scenario's certificate specs (for what the dump does not carry: key size, signature
hash, EKUs, names). Each finding id must appear exactly on the hosts and certificates those expectations name,
and nowhere else; together the `dag` and `broken` scenarios must produce every id of the catalogue.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import DOUBLE_HOP_REMEDIES
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import CATALOGUE

from .conftest import SCENARIOS, Lab, run_playbook, start_lab, start_variant_lab

DAY = datetime.timedelta(days=1)
EXCHANGE_STORES = ("My", "REQUEST")
REQUIRED_NAMES = ("mail.contoso.lab", "autodiscover.contoso.lab")
EXADMIN_PASSWORD = "Only-For-The-Exchange-Session-7f3a"  # noqa: S105 - a lab account's password, must never leak


def gather_task(**options: Any) -> str:
    return (
        "- name: Gather the certificate facts\n"
        f"  exchange.pki.certificate_info: {json.dumps(options)}\n"
        "  register: result\n"
        "  ignore_errors: true\n"
    )


@dataclasses.dataclass(frozen=True)
class Gathered:
    """One certificate_info run over every host of a lab, with the lab's state right after it."""

    scenario: dict[str, Any]
    dump: dict[str, Any]
    results: dict[str, dict[str, Any]]
    mutations_during_run: list[dict[str, Any]]
    required_names: tuple[str, ...] = ()

    @property
    def now(self) -> datetime.datetime:
        return parse_time(self.dump["clock"]["now"])


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def gather(lab: Lab, scenario: str, tmp_path: Path, *, extra_args: tuple[str, ...] = (),
           required_names: tuple[str, ...] = ()) -> Gathered:
    options = {"policy": {"required_names": list(required_names)}} if required_names else {}
    before = lab.dump()
    run = run_playbook(lab, gather_task(**options), tmp_path, extra_args=extra_args)
    assert run.returncode == 0, run.stdout + run.stderr
    after = lab.dump()
    return Gathered(
        scenario=yaml.safe_load((SCENARIOS / f"{scenario}.yml").read_text(encoding="utf-8")),
        dump=after,
        results={host: run.result(host) for host in after["servers"]},
        mutations_during_run=after["mutations"][len(before["mutations"]):],
        required_names=required_names,
    )


@pytest.fixture(scope="module")
def broken_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = start_lab(tmp_path_factory.mktemp("lab-broken"), "--scenario", "broken")
    try:
        yield lab
    finally:
        lab.control("stop")


@pytest.fixture(scope="module")
def dag_gathered(dag_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Gathered:
    return gather(dag_lab, "dag", tmp_path_factory.mktemp("gather-dag"))


@pytest.fixture(scope="module")
def broken_gathered(broken_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Gathered:
    return gather(broken_lab, "broken", tmp_path_factory.mktemp("gather-broken"), required_names=REQUIRED_NAMES)


@pytest.fixture(params=["dag", "broken"])
def gathered(request: pytest.FixtureRequest) -> Gathered:
    return request.getfixturevalue(f"{request.param}_gathered")


# --- the catalogue rules over the lab's dump --------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LabCertificate:
    """A certificate of the dump, with the scenario spec's attributes the dump does not carry."""

    entry: Mapping[str, Any]
    store: str
    key_size: int
    signature_hash: str
    ekus: tuple[str, ...]
    dns_names: tuple[str, ...]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.entry[name]
        except KeyError:
            raise AttributeError(name) from None

    def days(self, now: datetime.datetime) -> int:
        return (parse_time(self.entry["not_after"]) - now) // DAY

    def expired(self, now: datetime.datetime) -> bool:
        return parse_time(self.entry["not_after"]) < now

    def not_yet_valid(self, now: datetime.datetime) -> bool:
        return parse_time(self.entry["not_before"]) > now

    @property
    def self_signed(self) -> bool:
        return self.entry["issuer"] == self.entry["subject"]

    def covers(self, name: str) -> bool:
        return name.lower() in {dns.lower() for dns in self.dns_names}


SPEC_DEFAULTS = {"key_size": 2048, "signature_hash": "sha256", "ekus": ("server_auth",)}


def spec_attributes(scenario: Mapping[str, Any], server: Mapping[str, Any]) -> Callable[[str], dict[str, Any]]:
    """Spec attributes by subject. Built-in certificates take the defaults; Exchange's own self-signed
    certificate names the server and its FQDN (exchange-facts "New-ExchangeCertificate")."""
    by_subject: dict[str, dict[str, Any]] = {}
    for spec in scenario.get("certificates", {}).values():
        attributes = {key: spec.get(key, default) for key, default in SPEC_DEFAULTS.items()}
        attributes["ekus"] = tuple(attributes["ekus"])
        attributes["dns_names"] = tuple(spec.get("dns_names", ()))
        known = by_subject.setdefault(spec["subject"], attributes)
        assert known == attributes, f"two specs named {spec['subject']} differ: the test cannot tell them apart"
    default_names = (server["name"].upper(), server["fqdn"])

    def lookup(subject: str) -> dict[str, Any]:
        return by_subject.get(subject, {**SPEC_DEFAULTS, "dns_names": default_names})

    return lookup


def lab_certificates(gathered: Gathered, server: Mapping[str, Any], store: str) -> list[LabCertificate]:
    lookup = spec_attributes(gathered.scenario, server)
    return [LabCertificate(entry, store, **lookup(entry["subject"]))
            for entry in server["certificates"].get(store, [])]


Expected = dict[str, collections.Counter[tuple[str, "str | None"]]]
STATUS_FINDINGS = {"Unknown", "Untrusted", "RevocationCheckFailure", "Revoked", "Invalid", "DateInvalid"}


def expected_findings(gathered: Gathered) -> Expected:
    """Finding id -> how often each (host, thumbprint) should be reported."""
    expected: Expected = collections.defaultdict(collections.Counter)
    for host, server in gathered.dump["servers"].items():
        for finding_id, thumbprint in _server_expectations(gathered, server):
            expected[finding_id][(host, thumbprint)] += 1
    return expected


def _server_expectations(gathered: Gathered, server: Mapping[str, Any]) -> Iterator[tuple[str, str | None]]:
    now, org = gathered.now, gathered.dump["organization"]
    my = lab_certificates(gathered, server, "My")
    local = {certificate.thumbprint: certificate for certificate in my}
    name = server["name"].upper()
    auth = org["auth_config"]
    current = auth["CurrentCertificateThumbprint"]
    bound = {b["certificate_hash"] for b in server["iis_bindings"] if b["site"] == "Default Web Site"}

    for certificate in my:
        thumbprint = certificate.thumbprint
        if certificate.not_yet_valid(now):
            yield "not_yet_valid", thumbprint
        elif certificate.expired(now):
            yield "expired", thumbprint
        elif thumbprint != current and certificate.days(now) < 60:
            yield ("expiring_critical" if certificate.days(now) < 30 else "expiring_warning"), thumbprint
        if certificate.key_size < 2048:
            yield "weak_key", thumbprint
        if certificate.signature_hash in ("sha1", "md5"):
            yield "weak_signature", thumbprint
        if not certificate.has_private_key:
            yield "missing_private_key", thumbprint
        if certificate.ekus and "server_auth" not in certificate.ekus:
            yield "missing_server_auth_eku", thumbprint
        dated = certificate.expired(now) or certificate.not_yet_valid(now)
        exchange_default = certificate.self_signed and certificate.subject == f"CN={name}"
        if certificate.status in STATUS_FINDINGS and not exchange_default \
                and not (certificate.status == "DateInvalid" and dated):
            yield "untrusted", thumbprint
        shared = {"IIS", "SMTP"} & set(certificate.services) or thumbprint in bound
        if shared and certificate.has_private_key and not certificate.exportable \
                and not certificate.self_signed and not certificate.expired(now):
            yield "shared_key_not_exportable", thumbprint

    groups = collections.defaultdict(list)
    auth_named = {auth["CurrentCertificateThumbprint"], auth["NextCertificateThumbprint"],
                  auth["PreviousCertificateThumbprint"]}
    for certificate in my:
        if not certificate.expired(now) and certificate.thumbprint not in auth_named:
            groups[(certificate.subject, frozenset(n.lower() for n in certificate.dns_names))].append(certificate)
    for group in groups.values():
        if len(group) > 1:
            yield from (("duplicate_certificates", certificate.thumbprint) for certificate in group)

    if gathered.required_names:
        for thumbprint in bound & local.keys():
            if not all(local[thumbprint].covers(required) for required in gathered.required_names):
                yield "name_mismatch", thumbprint

    next_thumbprint = auth["NextCertificateThumbprint"]
    if current not in local:
        yield "auth_missing", current
    elif local[current].days(now) < 60 and not local[current].expired(now):
        yield "auth_expiring", current
        # configured but not installed here is auth_next_missing (an import), not "not staged"
        if next_thumbprint is None or (next_thumbprint in local and local[next_thumbprint].days(now) <= 120):
            yield "auth_next_not_staged", current
    if next_thumbprint is not None and next_thumbprint not in local:
        yield "auth_next_missing", next_thumbprint
    for thumbprint in {current, auth["NextCertificateThumbprint"]} & local.keys():
        if local[thumbprint].key_provider == "cng":
            yield "auth_key_not_csp", thumbprint

    internal = server["internal_transport_thumbprint"]
    if internal not in local:
        yield "no_internal_transport", internal
    elif local[internal].expired(now):
        yield "internal_transport_expired", internal

    for binding in server["iis_bindings"]:
        hash_ = binding["certificate_hash"]
        if hash_ not in local:
            yield "iis_binding_missing_cert", hash_
        elif local[hash_].expired(now):
            yield "iis_binding_expired", hash_
    if not any(b["site"] == "Exchange Back End" and b["binding_information"].startswith("*:444:")
               for b in server["iis_bindings"]):
        yield "back_end_binding_missing", None

    tags = {f"<I>{c.issuer}<S>{c.subject}".casefold() for c in my}
    connectors = [c for c in org["send_connectors"] if name in {s.upper() for s in c["SourceTransportServers"]}]
    connectors += server["receive_connectors"]
    hybrid = org["hybrid"]
    if hybrid is not None:
        connectors.append(hybrid)
    for connector in connectors:
        if connector["TlsCertificateName"] and connector["TlsCertificateName"].casefold() not in tags:
            yield "connector_certificate_not_found", None

    for certificate in lab_certificates(gathered, server, "PKU2U"):
        if certificate.expired(now):
            yield "cluster_certificate_expired", certificate.thumbprint
        elif certificate.days(now) < 30:
            yield "cluster_certificate_expiring", certificate.thumbprint

    for request in lab_certificates(gathered, server, "REQUEST"):
        if (now - parse_time(request.not_before)) // DAY > 30:
            yield "pending_request_stale", request.thumbprint


def produced(gathered: Gathered, finding_id: str) -> collections.Counter[tuple[str, str | None]]:
    return collections.Counter((host, finding["thumbprint"]) for host, result in gathered.results.items()
                               for finding in result["findings"] if finding["id"] == finding_id)


# --- findings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("finding_id", list(CATALOGUE))
def test_each_finding_appears_exactly_where_the_scenario_puts_the_problem(gathered, finding_id):
    assert produced(gathered, finding_id) == expected_findings(gathered)[finding_id]


# Findings no lab scenario can produce, and why (tests/lab/README.md, "Not modelled"); unit tests cover them.
NOT_IN_THE_LAB = {"unparseable_certificate": "the lab stores parsed certificates only"}


def test_the_scenarios_produce_every_finding_of_the_catalogue(dag_gathered, broken_gathered):
    ids = {finding["id"] for gathered in (dag_gathered, broken_gathered)
           for result in gathered.results.values() for finding in result["findings"]}
    assert sorted(CATALOGUE.keys() - ids - NOT_IN_THE_LAB.keys()) == []
    assert not NOT_IN_THE_LAB.keys() & ids  # once a scenario produces one, it leaves this list
    assert ids <= CATALOGUE.keys()


def test_findings_are_complete_records(gathered):
    for result in gathered.results.values():
        for finding in result["findings"]:
            assert finding["severity"] in ("critical", "warning", "info")
            assert finding["message"] and finding["remediation"]
        counts = collections.Counter(finding["severity"] for finding in result["findings"])
        assert result["summary"]["findings"] == {s: counts.get(s, 0) for s in ("critical", "warning", "info")}


def test_without_required_names_there_is_no_name_mismatch(dag_gathered):
    assert not produced(dag_gathered, "name_mismatch")


# --- facts against the lab's dump -------------------------------------------------------------------


def test_certificates_equal_the_lab_dump(gathered):
    assert gathered.mutations_during_run == []
    for host, server in gathered.dump["servers"].items():
        result = gathered.results[host]
        assert result["changed"] is False
        assert result["failed"] is False and "warnings" not in result
        reported = {(c["store"], c["thumbprint"]): c for c in result["certificates"]}
        lab = {(store, c["thumbprint"]): c for store in ("My", "REQUEST", "PKU2U")
               for c in server["certificates"].get(store, [])}
        assert reported.keys() == lab.keys()
        for key, facts in reported.items():
            assert facts["not_after"] == lab[key]["not_after"]
            assert facts["subject"] == lab[key]["subject"]
            assert sorted(facts["services"]) == sorted(lab[key]["services"])
            # Exchange lists My and the pending requests; it says nothing of the cluster stores.
            assert facts["status"] == (lab[key]["status"] if key[0] in EXCHANGE_STORES else None)
            assert facts["has_private_key"] == lab[key]["has_private_key"]
        assert result["internal_transport_thumbprint"] == server["internal_transport_thumbprint"]
        assert result["server"]["fqdn"] == server["fqdn"]
        assert result["server"]["dag"] == server["dag"]


def test_certificate_facts_agree_with_the_scenario_specs(gathered):
    for host, server in gathered.dump["servers"].items():
        expected = {c.thumbprint: c for c in lab_certificates(gathered, server, "My")}
        for facts in gathered.results[host]["certificates"]:
            spec = expected.get(facts["thumbprint"])
            if spec is None or spec.subject not in {s["subject"] for s in gathered.scenario["certificates"].values()}:
                continue
            assert facts["key_size"] == spec.key_size
            assert facts["signature_hash"] == spec.signature_hash
            assert sorted(facts["dns_names"]) == sorted(spec.dns_names)


def _role_holder(result: Mapping[str, Any], thumbprint: str) -> dict[str, Any]:
    return next(c for c in result["certificates"] if c["thumbprint"] == thumbprint and c["store"] == "My")


def test_the_dag_references(dag_gathered):
    dump = dag_gathered.dump
    current = dump["organization"]["auth_config"]["CurrentCertificateThumbprint"]
    dags = {dag["Name"]: {member.lower() for member in dag["Servers"]} for dag in dump["organization"]["dags"]}
    for host, server in dump["servers"].items():
        result = dag_gathered.results[host]
        (shared,) = [c for c in result["certificates"] if c["subject"] == "CN=mail.contoso.lab"]
        assert {"iis", "smtp", "imap", "pop"} <= set(shared["roles"])
        assert {"kind": "iis_binding", "name": "Default Web Site *:443:"} in shared["references"]
        assert {r["name"] for r in shared["references"] if r["kind"] == "exchange_service"} >= {"SMTP", "IMAP", "POP"}

        internal = _role_holder(result, server["internal_transport_thumbprint"])
        assert "internal_transport" in internal["roles"]
        assert {"kind": "internal_transport", "name": host.upper()} in internal["references"]

        assert result["auth"]["current_thumbprint"] == current
        assert result["auth"]["current_present_locally"] is True
        assert "auth_current" in _role_holder(result, current)["roles"]

        cluster = [c for c in result["certificates"] if "cluster" in c["roles"]]
        if server["dag"] is None:
            assert cluster == [] and result["cluster"] is None
        else:
            assert [(c["store"], c["thumbprint"]) for c in cluster] == [
                ("PKU2U", c["thumbprint"]) for c in server["certificates"]["PKU2U"]]
            assert {node["name"].lower() for node in result["cluster"]["nodes"]} == dags[server["dag"]]


# --- modes ------------------------------------------------------------------------------------------


def _without_exchange_enrichment(result: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["thumbprint"]: {k: v for k, v in c.items() if k not in ("status", "services", "roles", "references")}
            for c in result["certificates"]}


def test_rawdata_only_gives_the_same_certificate_facts(dag_lab, dag_gathered, tmp_path):
    dag_lab.control("mode", "--server", "ex1", "--rawdata-only", "on")
    try:
        degraded = gather(dag_lab, "dag", tmp_path).results["ex1"]
    finally:
        dag_lab.control("mode", "--server", "ex1", "--rawdata-only", "off")
    complete = dag_gathered.results["ex1"]
    assert _without_exchange_enrichment(degraded) == _without_exchange_enrichment(complete)
    assert {c["status"] for c in degraded["certificates"]} == {None}


def test_check_mode_gives_the_same_result_and_changes_nothing(dag_lab, dag_gathered, tmp_path):
    checked = gather(dag_lab, "dag", tmp_path, extra_args=("--check",))
    assert checked.mutations_during_run == []
    for host, result in checked.results.items():
        normal = dag_gathered.results[host]
        assert {k: v for k, v in result.items() if k != "collected_at"} == \
            {k: v for k, v in normal.items() if k != "collected_at"}


# --- access: double hop, missing tools, unreachable ---------------------------------------------------


@pytest.fixture(scope="module")
def access_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """`single` plus a double-hop server (ex8), a server without Exchange tools (ex9) and an extra admin."""
    lab = start_variant_lab(
        tmp_path_factory, "access",
        servers=({"name": "ex8", "exchange_session": "double_hop"}, {"name": "ex9", "exchange_session": "no_exchange"}),
        accounts=({"username": "exadmin", "password": EXADMIN_PASSWORD, "exchange_admin": True},),
    )
    try:
        yield lab
    finally:
        lab.control("stop")


def test_double_hop_fails_with_the_remedies(access_lab, playbook):
    result = playbook(access_lab, gather_task(), hosts="ex8").result("ex8")
    assert result["failed"] is True
    assert "Access is denied" in result["msg"]
    assert all(remedy in result["msg"] for remedy in DOUBLE_HOP_REMEDIES)


def test_an_explicit_credential_passes_the_double_hop_and_never_shows(access_lab, playbook):
    run = playbook(access_lab, gather_task(exchange_username="CONTOSO\\exadmin", exchange_password=EXADMIN_PASSWORD),
                   hosts="ex8", extra_args=("-vvv",))
    assert run.returncode == 0, run.stdout + run.stderr
    result = run.result("ex8")
    assert result["failed"] is False
    assert {c["status"] for c in result["certificates"] if c["store"] == "My"} == {"Valid"}
    assert EXADMIN_PASSWORD not in run.stdout + run.stderr + json.dumps(result)
    assert EXADMIN_PASSWORD not in json.dumps(access_lab.dump())


def test_missing_exchange_tools_fail_the_task(access_lab, playbook):
    result = playbook(access_lab, gather_task(), hosts="ex9").result("ex9")
    assert result["failed"] is True
    assert "Exchange management endpoint could not be used" in result["msg"]


def test_an_unreachable_host_is_reported_unreachable(access_lab, playbook):
    access_lab.control("fault", "--server", "ex1", "--unreachable")
    try:
        run = playbook(access_lab, gather_task(), hosts="ex1")
    finally:
        access_lab.control("fault", "--server", "ex1", "--reachable")
    assert run.returncode != 0
    assert "UNREACHABLE!" in run.stdout
    assert "ex1" not in run.results
