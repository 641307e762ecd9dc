# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of _renewal: the renewal plan built from real facts of the lab's scenarios.

The facts are what certificate_info collects from the in-process lab (``Fleet.from_scenario``), stripped of
Ansible's result keys the way the inventory role stores them (roles/inventory/vars/main.yml
``__inventory_result_keys``), plus ``probes``. Tests that need another situation change those real facts
minimally (a host not collected, a renewed copy on one member), never write a fleet by hand.
"""

from __future__ import annotations

import copy
import datetime
import functools
import json
import re
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.action import certificate_info
from ansible_collections.exchange.pki.plugins.plugin_utils import _renewal
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import append_records, make_record
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import (
    HostVars,
    RenewalInputError,
    RenewalPolicy,
    build_plan,
    identity_id,
    read_outcomes,
)
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import LabHost

#: roles/inventory/vars/main.yml __inventory_result_keys: Ansible's keys, not facts.
RESULT_KEYS = {"changed", "failed", "skipped", "msg", "warnings", "deprecations", "invocation", "failure_reason"}
ADCS_OPTIONS = {"ca_config": "ca01.contoso.lab\\Contoso Lab Issuing CA", "template": "WebServer"}
ADCS = {"backends": [{"backend": "adcs", "options": ADCS_OPTIONS}]}
HOUR = datetime.timedelta(hours=1)


@functools.lru_cache(maxsize=None)
def _lab_facts(scenario: str) -> tuple[str, str]:
    fleet = Fleet.from_scenario(scenario, now=NOW)
    original = certificate_info.utc_now
    certificate_info.utc_now = lambda: NOW  # the frozen clock, as the frozen_clock fixture sets it
    try:
        facts = {}
        for name in sorted(fleet.dump()["servers"]):
            result = LabHost(fleet, name).run(certificate_info.ActionModule, {})
            assert not result.get("failed"), result
            fact = {key: value for key, value in result.items()
                    if key not in RESULT_KEYS and not key.startswith("_ansible")}
            facts[name] = {**fact, "probes": {}}
    finally:
        certificate_info.utc_now = original
    return json.dumps(facts), json.dumps(fleet.dump()["mutations"])


def lab_facts(scenario: str = "dag") -> dict[str, Any]:
    """Every server's exchange_pki fact of a lab scenario at NOW (a fresh copy)."""
    return json.loads(_lab_facts(scenario)[0])


def lab_mutations(scenario: str = "dag") -> list[Any]:
    return json.loads(_lab_facts(scenario)[1])


def plan(facts=None, policy=None, **kwargs):
    return build_plan(lab_facts() if facts is None else facts,
                      policy=RenewalPolicy.from_options(ADCS if policy is None else policy),
                      now=kwargs.pop("now", NOW), **kwargs)


def cert_of(fact: dict[str, Any], subject: str) -> dict[str, Any]:
    return next(cert for cert in fact["certificates"] if cert["subject"] == subject)


def mail_thumbprint(facts) -> str:
    return cert_of(facts["ex1"], "CN=mail.contoso.lab")["thumbprint"]


# --- the dag scenario ---------------------------------------------------------------------------------------


def test_reading_the_lab_changed_nothing():
    lab_facts()
    assert lab_mutations() == []


def test_the_shared_mail_certificate_is_one_due_identity_across_groups():
    facts = lab_facts()
    result = plan(facts)
    assert result["summary"]["due"] == 1 and len(result["items"]) == 1
    item = result["items"][0]
    thumbprint = mail_thumbprint(facts)
    assert all(cert_of(facts[host], "CN=mail.contoso.lab")["thumbprint"] == thumbprint for host in facts)
    assert item["identity"] == identity_id("CN=mail.contoso.lab", ["mail.contoso.lab", "autodiscover.contoso.lab"])
    assert item["status"] == "due"
    assert item["reasons"] == ["20 days left (renew_before_days 30)"]
    assert item["certificate"]["thumbprint"] == thumbprint and item["certificate"]["thumbprints"] == [thumbprint]
    assert item["certificate"]["days_remaining"] == 20
    assert [server["host"] for server in item["servers"]] == ["ex1", "ex2", "ex3", "ex4"]
    assert [server["group"] for server in item["servers"]] == ["DAG1", "DAG1", "DAG1", "ex4"]
    assert item["servers"][0]["services"] == sorted(cert_of(facts["ex1"], "CN=mail.contoso.lab")["services"])
    assert {"kind": "iis_binding", "name": "Default Web Site *:443:"} in item["servers"][0]["references"]
    assert item["servers"][3]["exchange_version"] == facts["ex4"]["server"]["version"]
    assert result["groups"] == [
        {"name": "DAG1", "kind": "dag", "members": ["ex1", "ex2", "ex3"]},
        {"name": "ex4", "kind": "standalone", "members": ["ex4"]},
    ]
    issue = item["issue"]
    assert issue["backend"] == "adcs" and issue["backend_index"] == 0
    assert issue["options"] == ADCS["backends"][0]["options"]
    assert issue["request_server"] == "ex1"
    assert issue["pfx_encryption"] == "legacy" and issue["legacy_servers"] == ["ex4"]  # Exchange 2016 (15.1)
    assert issue["subject"] == "CN=mail.contoso.lab"
    assert issue["dns_names"] == ["mail.contoso.lab", "autodiscover.contoso.lab"]
    assert item["rollout"] == [["ex1"], ["ex2"], ["ex3"], ["ex4"]]
    assert result["unavailable_hosts"] == {}


def test_without_the_2016_member_the_pfx_is_modern():
    facts = lab_facts()
    del facts["ex4"]
    item = plan(facts)["items"][0]
    assert item["issue"]["pfx_encryption"] == "modern" and item["rollout"] == [["ex1"], ["ex2"], ["ex3"]]


def test_an_unknown_version_needs_the_legacy_pfx_unless_host_vars_know_it():
    facts = lab_facts()
    del facts["ex4"]
    facts["ex2"]["server"]["version"] = None
    assert plan(facts)["items"][0]["issue"]["legacy_servers"] == ["ex2"]
    known = plan(facts, host_vars={"ex2": HostVars(exchange_version="15.2.1748.10")})
    assert known["items"][0]["issue"]["pfx_encryption"] == "modern"


def test_what_is_not_renewed_and_why():
    facts = lab_facts()
    result = plan(facts)
    reasons = {(entry["subject"], tuple(entry["servers"])): entry["reason"] for entry in result["not_renewed"]}
    auth = reasons[("CN=Microsoft Exchange Server Auth Certificate", ("ex1", "ex2", "ex3", "ex4"))]
    assert auth == "the Auth certificate: exchange.pki.auth_certificate rotates it"
    for host in facts:
        default = reasons[(f"CN={host.upper()}", (host,))]
        assert default.startswith("Exchange's self-signed default certificate: Exchange renews it itself")
        assert cert_of(facts[host], f"CN={host.upper()}")["thumbprint"] in default
        assert reasons[(f"CN=WMSvc-SHA2-{host.upper()}", (host,))].startswith("Exchange's self-signed default")
    for host in ("ex1", "ex2", "ex3"):  # the DAG members' CLIUSR certificates (PKU2U store)
        assert reasons[("CN=CLIUSR", (host,))] == "a cluster certificate: managed by Windows"
    assert result["summary"]["not_renewed"] == len(result["not_renewed"]) == 1 + 4 + 4 + 3


def test_a_former_auth_certificate_is_not_renewed_even_expired():
    """After a rotation cleared it, the old Auth certificate has no Auth role but keeps its subject and SMTP flag."""
    facts = lab_facts()
    for host in facts:
        old = {**cert_of(facts[host], "CN=Microsoft Exchange Server Auth Certificate"), "thumbprint": "CD" * 20,
               "roles": ["smtp"], "references": [{"kind": "exchange_service", "name": "SMTP"}], "days_remaining": -27}
        facts[host]["certificates"].append(old)
    result = plan(facts)
    entry = next(entry for entry in result["not_renewed"] if entry["thumbprint"] == "CD" * 20)
    assert entry["reason"] == "the Auth certificate: exchange.pki.auth_certificate rotates it"
    assert all(item["certificate"]["subject"] != "CN=Microsoft Exchange Server Auth Certificate"
               for item in result["items"])


def test_an_unused_certificate_is_not_renewed():
    facts = lab_facts()
    spare = {**cert_of(facts["ex2"], "CN=mail.contoso.lab"), "thumbprint": "AB" * 20, "subject": "CN=old.contoso.lab",
             "dns_names": ["old.contoso.lab"], "services": [], "roles": [], "references": []}
    facts["ex2"]["certificates"].append(spare)
    entry = next(entry for entry in plan(facts)["not_renewed"] if entry["thumbprint"] == "AB" * 20)
    assert entry == {"thumbprint": "AB" * 20, "subject": "CN=old.contoso.lab", "servers": ["ex2"],
                     "reason": "unused; remove it with exchange.pki.certificate_remove"}


# --- due rules --------------------------------------------------------------------------------------------


def test_renew_before_days_10_makes_it_current():
    item = plan(policy={**ADCS, "renew_before_days": 10})["items"][0]
    assert item["status"] == "current" and item["reasons"] == ["20 days left; renew_before_days 10"]
    result = plan(policy={**ADCS, "renew_before_days": 10})
    assert result["summary"]["due"] == 0 and result["summary"]["current"] == 1
    assert "Nothing is due" in result["markdown"]


@pytest.mark.parametrize(("percentage", "status"), [(6, "due"), (5, "current")])
def test_the_percentage_rule(percentage, status):
    # 20 of 365 days left is 5.48 %: due below 6 %, not below 5 %.
    item = plan(policy={**ADCS, "renew_before_days": 0, "renew_before_percentage": percentage})["items"][0]
    assert item["status"] == status
    if status == "due":
        assert item["reasons"] == ["20 days left, less than 6% of its 365-day lifetime (renew_before_percentage 6)"]


def test_a_finding_in_replace_on_makes_it_due():
    facts = lab_facts()
    assert any(finding["id"] == "expiring_critical" and finding["thumbprint"] == mail_thumbprint(facts)
               for finding in facts["ex1"]["findings"])
    item = plan(facts, policy={**ADCS, "renew_before_days": 10, "replace_on": ["expiring_critical"]})["items"][0]
    assert item["status"] == "due" and item["reasons"] == ["finding expiring_critical"]
    both = plan(facts, policy={**ADCS, "replace_on": ["expired", "expiring_critical"]})["items"][0]
    assert both["reasons"] == ["20 days left (renew_before_days 30)", "finding expiring_critical"]


def test_required_names_are_added_once_in_a_label_form():
    item = plan(policy={**ADCS, "required_names": ["Autodiscover.contoso.lab", "bücher.contoso.lab"]})["items"][0]
    assert item["issue"]["dns_names"] == ["mail.contoso.lab", "autodiscover.contoso.lab",
                                          "xn--bcher-kva.contoso.lab"]


def test_no_backend_entry_means_skipped():
    result = plan(policy={"backends": [{"match": {"names": ["*.fabrikam.com"]}, "backend": "acme"}]})
    item = result["items"][0]
    assert item["status"] == "skipped" and item["reasons"][-1] == "no backend entry matches"
    assert item["issue"]["backend"] is None and result["summary"]["skipped"] == 1


@pytest.mark.parametrize(("match", "index"), [
    ({"names": ["*.contoso.lab"]}, 0),
    ({"names": ["mail.contoso.lab"]}, 1),  # autodiscover.contoso.lab is not covered: the next entry
    ({"subject": "^CN=mail\\."}, 0),
    ({"subject": "fabrikam"}, 1),
])
def test_the_first_matching_backend_entry_wins(match, index):
    policy = {"backends": [{"match": match, "backend": "acme"}, {"backend": "manual", "options": {"directory": "/x"}}]}
    assert plan(policy=policy)["items"][0]["issue"]["backend_index"] == index


def test_secret_backend_options_are_masked_in_the_plan():
    policy = {"backends": [{"backend": "ownca", "options": {"ca_cert_path": "/ca.pem",
                                                            "ca_key_password": "S3cret-CA-pass"}}]}
    result = plan(policy=policy)
    assert "S3cret-CA-pass" not in json.dumps(result)
    assert result["items"][0]["issue"]["options"] == {"ca_cert_path": "/ca.pem", "ca_key_password": "********"}


# --- identities and groups --------------------------------------------------------------------------------


def test_a_renewed_copy_on_one_member_joins_the_identity_of_its_group():
    facts = lab_facts()
    old = cert_of(facts["ex3"], "CN=mail.contoso.lab")
    renewed = {**old, "thumbprint": "CD" * 20, "not_after": "2027-11-25T08:00:00Z", "days_remaining": 365}
    facts["ex3"]["certificates"][facts["ex3"]["certificates"].index(old)] = renewed
    result = plan(facts)
    assert len(result["items"]) == 1
    item = result["items"][0]
    assert item["certificate"]["thumbprint"] == "CD" * 20  # the newest
    assert item["certificate"]["thumbprints"] == sorted([old["thumbprint"], "CD" * 20])
    assert item["status"] == "due"
    assert item["reasons"] == [f"20 days left on {old['thumbprint']} (ex1, ex2, ex4) (renew_before_days 30)",
                               f"unfinished rollout: the renewed certificate {'CD' * 20} is on ex3 but not on "
                               "ex1, ex2, ex4"]
    assert [server["thumbprints"] for server in item["servers"]][2] == ["CD" * 20]


def test_the_same_names_in_another_group_with_another_certificate_is_another_identity():
    facts = lab_facts()
    mail = cert_of(facts["ex4"], "CN=mail.contoso.lab")
    mail["thumbprint"] = "EF" * 20
    result = plan(facts)
    assert len(result["items"]) == 2
    assert len({item["identity"] for item in result["items"]}) == 2
    assert all(item["identity"].startswith(identity_id("CN=mail.contoso.lab", mail["dns_names"]) + "-")
               for item in result["items"])
    assert [item["rollout"] for item in result["items"]] == [[["ex1"], ["ex2"], ["ex3"]], [["ex4"]]]


def test_host_vars_groups_override_the_dag_and_batches_follow_rollout_batch():
    groups = {"ex1": HostVars(group="site-a"), "ex2": HostVars(group="site-a"), "ex3": HostVars(group="site-a"),
              "ex4": HostVars(group="site-a")}
    result = plan(host_vars=groups, policy={**ADCS, "rollout_batch": 3})
    assert result["groups"] == [{"name": "site-a", "kind": "group", "members": ["ex1", "ex2", "ex3", "ex4"]}]
    assert result["items"][0]["rollout"] == [["ex1", "ex2", "ex3"], ["ex4"]]
    two = plan(policy={**ADCS, "rollout_batch": 2})
    assert two["items"][0]["rollout"] == [["ex1", "ex2"], ["ex3"], ["ex4"]]


def test_a_host_that_could_not_be_read_blocks_its_group():
    facts = lab_facts()
    facts["ex5"] = {"not_collected": {"reason": "unreachable", "message": "ex5.contoso.lab:5986 timed out"}}
    result = plan(facts, host_vars={"ex5": HostVars(group="DAG1")})
    assert result["unavailable_hosts"] == {"ex5": "unreachable: ex5.contoso.lab:5986 timed out"}
    assert result["groups"][0] == {"name": "DAG1", "kind": "group", "members": ["ex1", "ex2", "ex3", "ex5"]}
    item = result["items"][0]
    assert item["status"] == "blocked" and result["summary"]["blocked"] == 1
    assert item["status_reason"] == "member ex5 could not be read (unreachable: ex5.contoso.lab:5986 timed out)"
    alone = plan(facts)  # without a group, ex5 is on its own and blocks nothing
    assert alone["items"][0]["status"] == "due" and {"name": "ex5", "kind": "standalone", "members": ["ex5"]} in (
        alone["groups"])


def test_a_dag_member_without_facts_blocks_its_dag_through_the_cluster_nodes():
    facts = lab_facts()
    facts["ex2"] = None
    result = plan(facts)
    assert result["unavailable_hosts"] == {"ex2": "no facts (the host was not inventoried)"}
    assert result["groups"][0]["members"] == ["ex1", "ex2", "ex3"]
    item = result["items"][0]
    assert item["status"] == "blocked" and "member ex2 could not be read" in item["status_reason"]
    assert [server["host"] for server in item["servers"]] == ["ex1", "ex3", "ex4"]


def test_a_host_only_in_host_vars_is_unavailable():
    result = plan(host_vars={"ex9": HostVars(group="ex4")})
    assert result["unavailable_hosts"] == {"ex9": "no facts (the host was not inventoried)"}
    assert result["items"][0]["status"] == "blocked"


# --- windows --------------------------------------------------------------------------------------------------


def windowed(window, now=NOW):
    # renew_before_days 60: the mail certificate (20 days left at NOW) is due at every ``now`` of these tests.
    return plan(policy={**ADCS, "renew_before_days": 60, "windows": [window]}, now=now)["items"][0]


def test_outside_the_window_the_item_is_deferred_with_the_next_window():
    # NOW is Wednesday 2026-11-25 08:00 UTC, 09:00 in Berlin (CET, UTC+1).
    item = windowed({"days": ["sat", "sun"], "start": "22:00", "end": "05:00", "timezone": "Europe/Berlin"})
    assert item["status"] == "deferred" and item["next_window"] == "2026-11-28T21:00:00Z"
    assert item["reasons"][-1] == "outside the maintenance windows; the next opens 2026-11-28T21:00:00Z"


def test_inside_a_window_the_item_is_due():
    item = windowed({"days": ["wed"], "start": "08:30", "end": "10:00", "timezone": "Europe/Berlin"})
    assert item["status"] == "due" and item["next_window"] is None


def test_a_window_across_midnight_is_open_the_next_morning():
    item = windowed({"days": ["tue"], "start": "22:00", "end": "09:30", "timezone": "Europe/Berlin"})
    assert item["status"] == "due"  # opened Tuesday 22:00, closes Wednesday 09:30 Berlin
    closed = windowed({"days": ["tue"], "start": "22:00", "end": "08:59", "timezone": "Europe/Berlin"})
    assert closed["status"] == "deferred" and closed["next_window"] == "2026-12-01T21:00:00Z"


def test_days_list_and_whole_day_windows():
    item = windowed({"days": ["Thursday", "fri"], "start": "00:00", "end": "00:00", "timezone": "Europe/Berlin"})
    assert item["next_window"] == "2026-11-25T23:00:00Z"  # Thursday 00:00 in Berlin
    assert windowed({"days": ["WED"], "start": "00:00", "end": "00:00", "timezone": "UTC"})["status"] == "due"


@pytest.mark.parametrize(("now", "next_window"), [
    (datetime.datetime(2026, 10, 24, 12, tzinfo=datetime.timezone.utc), "2026-10-25T00:00:00Z"),  # still CEST
    (datetime.datetime(2026, 10, 25, 12, tzinfo=datetime.timezone.utc), "2026-10-26T01:00:00Z"),  # CET since 03:00
    (datetime.datetime(2027, 3, 27, 12, tzinfo=datetime.timezone.utc), "2027-03-28T01:00:00Z"),  # last CET night
    (datetime.datetime(2027, 3, 28, 12, tzinfo=datetime.timezone.utc), "2027-03-29T00:00:00Z"),  # CEST
])
def test_the_local_time_is_kept_across_a_daylight_saving_change(now, next_window):
    item = windowed({"start": "02:00", "end": "03:00", "timezone": "Europe/Berlin"}, now=now)
    assert item["status"] == "deferred" and item["next_window"] == next_window


def test_a_window_opening_in_the_skipped_hour_opens_an_hour_later_in_wall_time():
    # 2027-03-28 02:30 does not exist in Berlin (02:00 -> 03:00): it is the instant 01:30 UTC (03:30 CEST).
    item = windowed({"days": ["sun"], "start": "02:30", "end": "04:00", "timezone": "Europe/Berlin"},
                    now=datetime.datetime(2027, 3, 27, 12, tzinfo=datetime.timezone.utc))
    assert item["next_window"] == "2027-03-28T01:30:00Z"


# --- days left at the plan's time ------------------------------------------------------------------------------


def forty_days_left(facts, **changes):
    """The mail certificate with 40 days left at NOW (the inventory's time) on every host."""
    for host in facts:
        cert_of(facts[host], "CN=mail.contoso.lab").update({"not_after": "2027-01-04T08:00:00Z", "days_remaining": 40,
                                                            **changes})
    return facts


def test_days_left_are_counted_from_the_plans_time():
    """A plan for 15 days after the inventory (renewal_now) counts 25 days left: due with renew_before_days 30."""
    later = plan(forty_days_left(lab_facts()), now=NOW + datetime.timedelta(days=15))["items"][0]
    assert later["status"] == "due" and later["reasons"] == ["25 days left (renew_before_days 30)"]
    assert later["certificate"]["days_remaining"] == 25
    now = plan(forty_days_left(lab_facts()))["items"][0]
    assert now["status"] == "current" and now["reasons"] == ["40 days left; renew_before_days 30"]


def test_without_not_after_the_facts_days_left_are_kept():
    later = plan(forty_days_left(lab_facts(), not_after=None), now=NOW + datetime.timedelta(days=15))["items"][0]
    assert later["status"] == "current" and later["certificate"]["days_remaining"] == 40


def test_a_not_after_that_is_no_date_is_refused_naming_it():
    facts = forty_days_left(lab_facts())
    cert_of(facts["ex2"], "CN=mail.contoso.lab")["not_after"] = "next year"
    index = facts["ex2"]["certificates"].index(cert_of(facts["ex2"], "CN=mail.contoso.lab"))
    with pytest.raises(RenewalInputError, match=re.escape(
            f"facts.ex2: certificates[{index}].not_after must be an ISO-8601 date and time, got 'next year'")):
        plan(facts)


# --- backoff --------------------------------------------------------------------------------------------------


def record(identity, action, time, host="ex2"):
    return make_record(server="organization", module="exchange.pki.ledger_record", action=action,
                       result="failed" if action == "renewal_failed" else "changed", before={},
                       after={"identity": identity, "plan_id": "p", "thumbprint": "AB" * 20, "group": "DAG1",
                              "failed_host": host}, time=time, host="localhost")


@pytest.fixture
def identity():
    return plan()["items"][0]["identity"]


def backoff_plan(tmp_path, records, **kwargs):
    path = tmp_path / "ledger.jsonl"
    append_records(path, records)
    outcomes, warnings = read_outcomes(str(path))
    assert warnings == []
    return plan(outcomes=outcomes, **kwargs)["items"][0]


@pytest.mark.parametrize(("failures", "hours"), [(1, 1), (2, 2), (3, 4), (6, 32), (12, 32)])
def test_consecutive_failures_back_off_exponentially_up_to_the_cap(tmp_path, identity, failures, hours):
    last = NOW - datetime.timedelta(minutes=30)
    records = [record(identity, "renewal_failed", last - (failures - n) * HOUR * 0.01) for n in range(1, failures + 1)]
    item = backoff_plan(tmp_path, records)
    assert item["status"] == "backoff"
    assert item["backoff_until"] == _renewal.format_utc_datetime(last + hours * HOUR)
    assert item["status_reason"].startswith(f"{failures} consecutive failed renewal")


def test_the_backoff_ends(tmp_path, identity):
    item = backoff_plan(tmp_path, [record(identity, "renewal_failed", NOW - 2 * HOUR)])
    assert item["status"] == "due" and item["backoff_until"] is None


def test_a_later_success_resets_the_count(tmp_path, identity):
    records = [record(identity, "renewal_failed", NOW - 5 * HOUR), record(identity, "renewal_failed", NOW - 4 * HOUR),
               record(identity, "renewal_done", NOW - 3 * HOUR),
               record(identity, "renewal_failed", NOW - 90 * HOUR / 60)]
    item = backoff_plan(tmp_path, records)
    assert item["status"] == "due"  # one failure since the success: 1 h, over
    records.append(record(identity, "renewal_failed", NOW - HOUR / 2))
    path = tmp_path / "again"
    path.mkdir()
    assert backoff_plan(path, records)["backoff_until"] == _renewal.format_utc_datetime(NOW + 1.5 * HOUR)


def test_force_ignores_the_backoff(tmp_path, identity):
    item = backoff_plan(tmp_path, [record(identity, "renewal_failed", NOW - HOUR / 2)], force=True)
    assert item["status"] == "due" and item["reasons"][-1].endswith("ignored (force)")


def test_other_identities_and_modules_do_not_count(tmp_path, identity):
    other = make_record(server="EX1", module="exchange.pki.certificate_import", action="renewal_failed",
                        result="failed", before={}, after={"identity": identity}, time=NOW)
    item = backoff_plan(tmp_path, [record("id-000000000000", "renewal_failed", NOW), other])
    assert item["status"] == "due"


def test_backoff_settings_and_torn_ledger_lines(tmp_path, identity):
    path = tmp_path / "ledger.jsonl"
    append_records(path, [record(identity, "renewal_failed", NOW - HOUR / 2)] * 3)
    with path.open("a") as handle:
        handle.write('{"version": 1, "torn')
    outcomes, warnings = read_outcomes(str(path))
    assert warnings == [f"ledger {path}: line 4 skipped (not a complete JSON line (torn write?))"]
    item = plan(outcomes=outcomes, policy={**ADCS, "backoff": {"initial_hours": 2, "max_hours": 5}})["items"][0]
    assert item["backoff_until"] == _renewal.format_utc_datetime(NOW - HOUR / 2 + 5 * HOUR)
    assert read_outcomes(str(tmp_path / "absent.jsonl")) == ({}, [])


# --- determinism and rendering --------------------------------------------------------------------------------


def test_identical_input_gives_an_identical_plan():
    first = plan(lab_facts())
    second = plan(copy.deepcopy(lab_facts()))
    assert first == second
    assert re.fullmatch(r"20261125T0800Z-[0-9a-f]{8}", first["plan_id"])
    assert first["generated_at"] == "2026-11-25T08:00:00Z"
    # A minute earlier every certificate has the same whole days left (one later, the mail certificate, which ends
    # exactly 20 days after NOW, has 19): the plan is the same, and so is its id's digest.
    earlier = plan(now=NOW - datetime.timedelta(minutes=1))
    assert earlier["plan_id"].split("-")[1] == first["plan_id"].split("-")[1]
    changed = plan(policy={**ADCS, "rollout_batch": 2})
    assert changed["plan_id"] != first["plan_id"]
    assert plan(plan_id="nightly-1")["plan_id"] == "nightly-1"


def test_the_markdown_names_every_item_why_the_servers_and_the_order():
    facts = lab_facts()
    facts["ex5"] = {"not_collected": {"reason": "unreachable", "message": "timed out"}}
    result = plan(facts)
    text = result["markdown"]
    item = result["items"][0]
    assert text.startswith(f"# Renewal plan {result['plan_id']}\n")
    assert f"### mail.contoso.lab ({item['identity']}): due" in text
    assert "- **Why:** 20 days left (renew\\_before\\_days 30)" in text
    assert "ex4 (ex4, 15.1.2507.6): IIS, IMAP, POP, SMTP" in text
    assert "- **Order:** 1. ex1 → 2. ex2 → 3. ex3 → 4. ex4" in text
    assert "request on ex1" in text and "PFX legacy" in text
    for entry in result["not_renewed"]:
        assert entry["thumbprint"] in text
    assert "a cluster certificate: managed by Windows" in text
    assert "- ex5: unreachable: timed out" in text


def test_the_markdown_escapes_what_the_facts_hold():
    facts = lab_facts()
    for fact in facts.values():
        mail = cert_of(fact, "CN=mail.contoso.lab")
        mail["subject"] = "CN=mail|<b>*x*</b>\nINJECTED"
    text = plan(facts)["markdown"]
    assert "mail\\|\\<b\\>\\*x\\*\\</b\\>\\\\nINJECTED" in text  # shows as mail|<b>*x*</b>\\nINJECTED
    assert "\nINJECTED" not in text


def test_the_markdown_escapes_a_lone_surrogate_the_facts_hold():
    facts = lab_facts()
    for fact in facts.values():
        cert_of(fact, "CN=mail.contoso.lab")["subject"] = "CN=mail\ud800.contoso.lab\u2028x"
    text = plan(facts)["markdown"]
    assert "CN=mail\\\\ud800.contoso.lab\\\\u2028x" in text  # shows as CN=mail\ud800.contoso.lab\u2028x
    text.encode("utf-8")  # a file written from it cannot hold a lone surrogate


# --- validation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "message"), [
    ({"bogus": 1}, "policy: unknown key(s) 'bogus'"),
    ([], "policy must be a dictionary"),
    ({"renew_before_days": "30"}, "policy.renew_before_days must be an integer, got '30'"),
    ({"renew_before_days": True}, "policy.renew_before_days must be an integer, got True"),
    ({"renew_before_days": -1}, "policy.renew_before_days must be an integer from 0 to 3650, got -1"),
    ({"renew_before_days": 10 ** 30}, "policy.renew_before_days must be an integer from 0 to 3650, got 1000"),
    ({"renew_before_percentage": 0}, "policy.renew_before_percentage must be an integer from 1 to 99, got 0"),
    ({"renew_before_percentage": 100}, "policy.renew_before_percentage must be an integer from 1 to 99"),
    ({"replace_on": ["expired", "nope"]}, "policy.replace_on[1]: 'nope' is not a finding id"),
    ({"replace_on": "expired"}, "policy.replace_on must be a list"),
    ({"required_names": ["mail.contoso.lab\r\nx"]},
     "policy.required_names[0] 'mail.contoso.lab\\r\\nx' contains a control"),
    ({"required_names": ["bad name.lab"]}, "policy.required_names[0]:"),
    ({"key_size": 1024}, "policy.key_size must be one of 2048, 3072, 4096, got 1024"),
    ({"key_size": 3072, "backends": [{"backend": "adcs"}]}, "policy.key_size 3072: the adcs backend"),
    ({"backends": [{"backend": "venafi"}]}, "policy.backends[0].backend must be one of adcs, acme, ownca, manual"),
    ({"backends": [{"options": {}}]}, "policy.backends[0].backend is required"),
    ({"backends": [{"backend": "acme", "extra": 1}]}, "policy.backends[0]: unknown key(s) 'extra'"),
    ({"backends": [{"backend": "acme", "match": {"names": ["a\x00"]}}]}, "policy.backends[0].match.names[0]"),
    ({"backends": [{"backend": "acme", "match": {"subject": "("}}]}, "policy.backends[0].match.subject '(' is not"),
    ({"backends": [{"backend": "acme", "match": {"names": ["*"], "subject": "x"}}]}, "give names or subject"),
    ({"backends": [{"backend": "acme", "options": "x"}]}, "policy.backends[0].options must be a dictionary"),
    ({"windows": [{"start": "25:00", "end": "05:00"}]}, "policy.windows[0].start must be a time HH:MM"),
    ({"windows": [{"start": "22:00", "end": "5"}]}, "policy.windows[0].end must be a time HH:MM"),
    ({"windows": [{"start": 1320, "end": "05:00"}]}, "unquoted 22:00 in YAML is read as the number 1320"),
    ({"windows": [{"start": "22:00"}]}, "policy.windows[0].end is required"),
    ({"windows": [{"start": "22:00", "end": "05:00", "timezone": "Mars/Olympus"}]},
     "policy.windows[0].timezone: 'Mars/Olympus' is not a known time zone"),
    ({"windows": [{"start": "22:00", "end": "05:00", "timezone": "../../etc/passwd"}]},
     "policy.windows[0].timezone: '../../etc/passwd' is not a known time zone"),
    ({"windows": [{"start": "22:00", "end": "05:00", "timezone": "Europe/Berlin\n"}]},
     "policy.windows[0].timezone 'Europe/Berlin\\n' contains a control character"),
    ({"windows": [{"days": ["funday"], "start": "22:00", "end": "05:00"}]},
     "policy.windows[0].days[0]: 'funday' is not a weekday"),
    ({"windows": [{"days": [], "start": "22:00", "end": "05:00"}]}, "policy.windows[0].days must name at least one"),
    ({"rollout_batch": 0}, "policy.rollout_batch must be an integer from 1 to 10000, got 0"),
    ({"group_concurrency": -3}, "policy.group_concurrency must be an integer from 1 to 10000, got -3"),
    ({"group_concurrency": 10 ** 6}, "policy.group_concurrency must be an integer from 1 to 10000"),
    ({"stop_on_failure": "never"}, "policy.stop_on_failure must be one of group, all, got 'never'"),
    ({"cleanup": "purge"}, "policy.cleanup must be one of remove_unreferenced, keep"),
    ({"backoff": {"initial_hours": 0}}, "policy.backoff.initial_hours must be an integer from 1 to 8760, got 0"),
    ({"backoff": {"max_hours": 10 ** 9}}, "policy.backoff.max_hours must be an integer from 1 to 8760"),
    ({"backoff": {"initial_hours": 8, "max_hours": 4}}, "policy.backoff.max_hours (4) must not be less than"),
    ({"backoff": {"initial": 8}}, "policy.backoff: unknown key(s) 'initial'"),
])
def test_bad_policy_input_names_the_key(policy, message):
    with pytest.raises(RenewalInputError) as error:
        RenewalPolicy.from_options(policy)
    assert message in str(error.value)


@pytest.mark.parametrize(("host_vars", "message"), [
    ({"ex1": {"group": "a\nb"}}, "host_vars.ex1.group 'a\\nb' contains a control character"),
    ({"ex1": {"group": ""}}, "host_vars.ex1.group must not be empty"),
    ({"ex1": {"site": "x"}}, "host_vars.ex1: unknown key(s) 'site'"),
    ({"ex\x001": {}}, "host_vars: host name 'ex\\x001' contains a control character"),
    ([], "host_vars must be a dictionary"),
])
def test_bad_host_vars_name_the_key(host_vars, message):
    with pytest.raises(RenewalInputError) as error:
        _renewal.parse_host_vars(host_vars)
    assert message in str(error.value)


@pytest.mark.parametrize(("text", "message"), [
    ("yesterday", "now: 'yesterday' is not an ISO-8601 date and time (such as 2026-12-02T02:15:00Z)"),
    ("9999-12-31T23:00:00-05:00", "now: '9999-12-31T23:00:00-05:00' is not an ISO-8601 date and time"),
    ("2026-12-02T02:15:00Z\n", "now must be an ISO-8601 date and time, got '2026-12-02T02:15:00Z\\n'"),
    (20261202, "now must be an ISO-8601 date and time, got 20261202"),
])
def test_a_bad_now_names_the_option(text, message):
    with pytest.raises(RenewalInputError) as error:
        _renewal.parse_now(text, NOW)
    assert str(error.value).startswith(message)


def test_now_is_read_as_utc_and_defaults_to_the_given_time():
    assert _renewal.parse_now("2026-12-02T03:15:00+01:00", NOW) == datetime.datetime(2026, 12, 2, 2, 15,
                                                                                     tzinfo=datetime.timezone.utc)
    assert _renewal.parse_now(None, NOW) is NOW


@pytest.mark.parametrize(("change", "message"), [
    (lambda facts: facts["ex1"]["certificates"][0].update(thumbprint="XYZ"),
     "facts.ex1: certificates[0].thumbprint must be 40 hexadecimal digits"),
    (lambda facts: facts["ex2"]["certificates"][1].update(days_remaining="20"),
     "facts.ex2: certificates[1].days_remaining must be an integer, got '20'"),
    (lambda facts: facts["ex3"]["certificates"][0].update(services="IIS"),
     "facts.ex3: certificates[0].services must be a list of strings"),
    (lambda facts: facts.update({"ex\r\n9": None}), "facts: host name 'ex\\r\\n9' contains a control character"),
])
def test_malformed_facts_name_the_host_and_field(change, message):
    facts = lab_facts()
    change(facts)
    with pytest.raises(RenewalInputError) as error:
        plan(facts)
    assert message in str(error.value)


def test_the_policy_is_returned_normalised():
    result = plan(policy={**ADCS, "windows": [{"days": ["Sunday", "sat"], "start": "22:00", "end": "05:00",
                                               "timezone": "Europe/Berlin"}], "required_names": ["Mail.Contoso.Lab"]})
    assert result["policy"]["windows"] == [{"days": ["sat", "sun"], "start": "22:00", "end": "05:00",
                                            "timezone": "Europe/Berlin"}]
    assert result["policy"]["required_names"] == ["mail.contoso.lab"]
    assert result["policy"]["backoff"] == {"initial_hours": 1, "max_hours": 32}
    assert RenewalPolicy.from_options(None) == RenewalPolicy()


# --- resuming an unfinished rollout ---------------------------------------------------------------------------


def renewed_on(facts, hosts, *, keep_old=(), thumbprint="CD" * 20, **changes):
    """The real facts with the mail certificate replaced by a renewed copy on ``hosts`` (kept beside it on
    ``keep_old``), as an earlier run that stopped half-way leaves them."""
    for host in hosts:
        certificates = facts[host]["certificates"]
        old = cert_of(facts[host], "CN=mail.contoso.lab")
        renewed = {**old, "thumbprint": thumbprint, "not_before": "2026-12-01T08:00:00Z",
                   "not_after": "2027-12-01T08:00:00Z", "days_remaining": 364, **changes}
        if host in keep_old:
            certificates.append(renewed)
        else:
            certificates[certificates.index(old)] = renewed
    return facts


def test_a_certificate_renewed_on_some_members_is_rolled_out_not_issued_again():
    facts = renewed_on(lab_facts(), ["ex1"])
    item = plan(facts)["items"][0]
    assert item["status"] == "due" and item["certificate"]["thumbprint"] == "CD" * 20
    assert item["issue"]["resume"] == {
        "thumbprint": "CD" * 20, "holder": "ex1", "missing": ["ex2", "ex3", "ex4"], "groups": ["DAG1", "ex4"],
        "reason": f"the renewed certificate {'CD' * 20} is on ex1 but not on ex2, ex3, ex4"}
    assert "**Resume:** nothing is issued" in plan(facts)["markdown"]


def test_a_finished_group_is_not_rolled_out_again():
    facts = renewed_on(lab_facts(), ["ex1", "ex4"])
    resume = plan(facts)["items"][0]["issue"]["resume"]
    assert resume["holder"] == "ex1" and resume["missing"] == ["ex2", "ex3"] and resume["groups"] == ["DAG1"]


def test_a_group_renewed_whole_is_another_identity_than_a_group_left_on_the_old_one():
    # The identity rule (same thumbprint, or same subject and names within one group) splits them: ex4's old
    # certificate is due on its own and gets a new one (no resume across identities).
    items = plan(renewed_on(lab_facts(), ["ex1", "ex2", "ex3"]))["items"]
    assert [(item["groups"], item["status"], item["issue"]["resume"]) for item in items] == [
        (["DAG1"], "current", None), (["ex4"], "due", None)]


def test_the_holder_is_a_member_with_the_key_of_the_renewed_certificate():
    facts = renewed_on(lab_facts(), ["ex2"])
    renewed_on(facts, ["ex1"], has_private_key=False)
    assert plan(facts)["items"][0]["issue"]["resume"]["holder"] == "ex2"


@pytest.mark.parametrize("changes", [{"has_private_key": False},
                                     {"not_after": "2026-12-05T08:00:00Z", "days_remaining": 10},
                                     {"not_after": "2026-11-24T08:00:00Z", "days_remaining": -1}],
                         ids=["no_key", "itself_due", "expired"])
def test_no_resume_when_the_renewed_certificate_cannot_or_should_not_be_rolled_out(changes):
    facts = renewed_on(lab_facts(), ["ex1"], **changes)
    item = plan(facts)["items"][0]
    assert item["status"] == "due" and item["issue"]["resume"] is None  # a new certificate is issued


def test_a_renewed_copy_makes_the_item_due_even_when_the_old_one_is_not():
    item = plan(renewed_on(lab_facts(), ["ex1"]), policy={**ADCS, "renew_before_days": 10})["items"][0]
    assert item["status"] == "due" and item["issue"]["resume"]["groups"] == ["DAG1", "ex4"]
    assert plan(policy={**ADCS, "renew_before_days": 10})["items"][0]["issue"]["resume"] is None


def outcome(identity, action, time, group, thumbprint="CD" * 20):
    return make_record(server="organization", module="exchange.pki.ledger_record", action=action,
                       result="failed" if action == "renewal_failed" else "changed", before={},
                       after={"identity": identity, "plan_id": "p", "thumbprint": thumbprint, "group": group},
                       time=time, host="localhost")


def test_a_group_whose_last_outcome_failed_is_rolled_out_again_though_every_member_holds_it(tmp_path, identity):
    # The verification failed on ex3 (the last member): ex3 holds the new certificate beside the old, rolled back.
    facts = renewed_on(lab_facts(), ["ex1", "ex2", "ex3", "ex4"], keep_old=["ex3"])
    path = tmp_path / "ledger.jsonl"
    append_records(path, [outcome(identity, "renewal_done", NOW - 3 * HOUR, "ex4"),
                          outcome(identity, "renewal_failed", NOW - 2 * HOUR, "DAG1")])
    outcomes = read_outcomes(str(path))[0]
    item = plan(facts, outcomes=outcomes)["items"][0]
    assert item["status"] == "due"
    assert item["issue"]["resume"] == {
        "thumbprint": "CD" * 20, "holder": "ex1", "missing": [], "groups": ["DAG1"],
        "reason": f"the last rollout of {'CD' * 20} failed in DAG1 (ledger)"}
    assert plan(facts)["items"][0]["issue"]["resume"] is None  # without the ledger nothing says it is unfinished
    # A later success of that group finishes it; a failure about another certificate does not count.
    append_records(path, [outcome(identity, "renewal_done", NOW - HOUR, "DAG1"),
                          outcome(identity, "renewal_failed", NOW - HOUR, "ex4", thumbprint="AB" * 20)])
    outcomes = read_outcomes(str(path))[0]
    assert plan(facts, outcomes=outcomes)["items"][0]["issue"]["resume"] is None


def test_a_renewed_certificate_rolled_back_everywhere_it_reached_is_rolled_out_again_not_issued(tmp_path, identity):
    # Both members of DAG1's first batch failed: ex1 and ex2 hold the new certificate beside the old, unused (their
    # services went back to the old one); stop_on_failure all kept it from ex3 and ex4.
    facts = renewed_on(lab_facts(), ["ex1", "ex2"], keep_old=["ex1", "ex2"], services=[], references=[])
    assert plan(facts)["items"][0]["issue"]["resume"] is None  # without the ledger: an unused stray, a new one
    assert "CD" * 20 in {entry["thumbprint"] for entry in plan(facts)["not_renewed"]}
    path = tmp_path / "ledger.jsonl"
    append_records(path, [outcome(identity, "renewal_failed", NOW - HOUR, "DAG1")])
    result = plan(facts, outcomes=read_outcomes(str(path))[0])
    (item,) = result["items"]
    assert item["status"] == "due" and item["certificate"]["thumbprint"] == "CD" * 20
    assert item["issue"]["resume"] == {
        "thumbprint": "CD" * 20, "holder": "ex1", "missing": ["ex3", "ex4"], "groups": ["DAG1", "ex4"],
        "reason": f"the renewed certificate {'CD' * 20} is on ex1, ex2 but not on ex3, ex4; "
                  f"the last rollout of {'CD' * 20} failed in DAG1 (ledger)"}
    assert "CD" * 20 not in {entry["thumbprint"] for entry in result["not_renewed"]}
    # Only the ledger's failed rollouts count: an unused certificate another outcome names stays unused.
    append_records(path := tmp_path / "done.jsonl", [outcome(identity, "renewal_done", NOW - HOUR, "DAG1")])
    assert plan(facts, outcomes=read_outcomes(str(path))[0])["items"][0]["issue"]["resume"] is None


# --- a certificate kept beside its renewal (cleanup: keep) ------------------------------------------------------


def kept_beside(facts, hosts, *, moved=True):
    """The facts after a renewal with cleanup keep: the renewed copy holds the binding and the services on
    ``hosts``; the old certificate stays beside it (``moved=False``: the old one kept its IIS binding, as a member
    rolled back to it)."""
    renewed_on(facts, hosts, keep_old=hosts)
    for host in hosts:
        old = cert_of(facts[host], "CN=mail.contoso.lab")
        if moved:
            old["references"] = [ref for ref in old["references"] if ref["kind"] != "iis_binding"]
        else:
            renewed = facts[host]["certificates"][-1]
            renewed["references"] = [ref for ref in renewed["references"] if ref["kind"] != "iis_binding"]
    return facts


def test_an_old_certificate_kept_beside_its_renewal_is_superseded_not_due_again():
    old = cert_of(lab_facts()["ex1"], "CN=mail.contoso.lab")["thumbprint"]
    result = plan(kept_beside(lab_facts(), ["ex1", "ex2", "ex3", "ex4"]))
    (item,) = result["items"]
    assert item["status"] == "current" and item["certificate"]["thumbprints"] == ["CD" * 20], item["reasons"]
    assert result["summary"]["due"] == 0
    (entry,) = [entry for entry in result["not_renewed"] if entry["thumbprint"] == old]
    assert entry["servers"] == ["ex1", "ex2", "ex3", "ex4"]
    assert entry["reason"].startswith(f"superseded by the renewed certificate {'CD' * 20} on the same servers")
    assert "superseded by the renewed certificate" in result["markdown"]


def test_an_old_certificate_still_serving_on_a_member_is_not_superseded():
    # ex3 was rolled back: its old certificate holds the IIS binding the renewed copy lacks there.
    facts = kept_beside(lab_facts(), ["ex1", "ex2", "ex4"])
    kept_beside(facts, ["ex3"], moved=False)
    (item,) = plan(facts)["items"]
    assert item["status"] == "due" and len(item["certificate"]["thumbprints"]) == 2


def test_an_old_certificate_is_not_superseded_once_the_renewal_is_due_itself():
    facts = kept_beside(lab_facts(), ["ex1", "ex2", "ex3", "ex4"])
    for host in facts:
        facts[host]["certificates"][-1].update(not_after="2026-11-30T08:00:00Z", days_remaining=5)
    (item,) = plan(facts)["items"]
    assert item["status"] == "due" and len(item["certificate"]["thumbprints"]) == 2  # both replaced, both removed


# --- ACME renewal information (ARI) -----------------------------------------------------------------------------

ACME = {"renew_before_days": 10, "backends": [{"backend": "acme", "options": {"directory": "https://acme/dir"}}]}


def the_mail_thumbprint():
    return cert_of(lab_facts()["ex1"], "CN=mail.contoso.lab")["thumbprint"]


def ari_for(should_renew, supports_ari=True, msg="The suggested renewal interval provided by ARI has begun"):
    advice = {"should_renew": should_renew, "supports_ari": supports_ari, "msg": msg, "changed": False}
    return _renewal.parse_ari({the_mail_thumbprint().lower(): advice})


def test_ari_whose_window_has_begun_makes_an_acme_identity_due():
    result = plan(policy=ACME, ari=ari_for(True))
    (item,) = result["items"]
    assert item["status"] == "due"
    assert item["reasons"] == ["ACME renewal information (ARI): The suggested renewal interval provided by ARI "
                               "has begun"]
    assert "ACME renewal information (ARI)" in result["markdown"]


def test_ari_whose_window_has_not_begun_keeps_it_current_and_says_so():
    (item,) = plan(policy=ACME, ari=ari_for(False, msg="The certificate is still valid"))["items"]
    assert item["status"] == "current"
    assert "ACME renewal information (ARI): the suggested renewal window has not begun" in item["reasons"]


@pytest.mark.parametrize("policy,ari", [
    (ACME, None),  # no renewal information asked for
    (ACME, "no_ari"),  # the directory has no renewalInfo (pebble 2.4.0): supports_ari false
    ({**ADCS, "renew_before_days": 10}, "begun"),  # not issued by ACME: ARI does not apply
], ids=["none", "directory_without_renewal_info", "not_acme"])
def test_ari_changes_nothing_where_it_does_not_apply(policy, ari):
    advice = {None: None, "no_ari": ari_for(True, supports_ari=False, msg="x"), "begun": ari_for(True)}[ari]
    with_ari, without = plan(policy=policy, ari=advice), plan(policy=policy)
    assert with_ari == without
    assert with_ari["items"][0]["status"] == "current"


def test_ari_advice_is_one_line_with_single_spaces():
    msg = " Renew\r\n\r\nnow:\t\x1bwindow\u2028begun "
    advice = _renewal.parse_ari({"AB" * 20: {"should_renew": True, "msg": msg}})
    assert advice["AB" * 20].msg == "Renew now: window begun"


@pytest.mark.parametrize("value,message", [
    ("x", "ari must be a dictionary of thumbprint to renewal information, got 'x'"),
    ({"zz": {}}, "ari: 'zz' is not a thumbprint"),
    ({"AB" * 20: []}, f"ari.{'AB' * 20} must be a dictionary"),
    ({"AB" * 20: {"should_renew": "yes"}}, f"ari.{'AB' * 20}.should_renew must be true or false"),
    ({"AB" * 20: {"msg": 3}}, f"ari.{'AB' * 20}.msg must be a string"),
])
def test_bad_ari_input_is_named(value, message):
    with pytest.raises(RenewalInputError) as error:
        _renewal.parse_ari(value)
    assert message in str(error.value)
