# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of _renewal_status: ready, due, stalled, failed rollouts, events and metrics.

Plans are made by the real plan code (``_renewal.build_plan``) from facts that certificate_info collected from the
in-process lab's ``dag`` scenario at the frozen clock (CN=mail.contoso.lab on ex1-ex4, 20 days left, so due since
10 days under renew_before_days 30); ledgers are written by the real ledger writer (``make_record`` and
``append_records``) in the shape the renewal role's ledger_record tasks write; the metrics are parsed back with
prometheus_client's text-format parser.
"""

from __future__ import annotations

import datetime
import functools
import json
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.exchange.pki.plugins.action import certificate_info
from ansible_collections.exchange.pki.plugins.plugin_utils import _renewal_status
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import append_records, make_record, read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import RenewalPolicy, build_plan
from ansible_collections.exchange.pki.plugins.plugin_utils._report import build_report
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import render_prometheus
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import LabHost

ADCS_OPTIONS = {"ca_config": "ca01.contoso.lab\\Contoso Lab Issuing CA", "template": "WebServer"}
POLICY = {"backends": [{"backend": "adcs", "options": ADCS_OPTIONS}]}
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)
MAIL = "CN=mail.contoso.lab"
NEW_THUMBPRINT = "AB" * 20
RESULT_KEYS = {"changed", "failed", "msg", "warnings", "ansible_facts", "invocation"}


@functools.lru_cache(maxsize=None)
def _facts_json() -> str:
    fleet = Fleet.from_scenario("dag", now=NOW)
    original = certificate_info.utc_now
    certificate_info.utc_now = lambda: NOW
    try:
        facts = {}
        for name in sorted(fleet.dump()["servers"]):
            result = LabHost(fleet, name).run(certificate_info.ActionModule, {})
            assert not result.get("failed"), result
            facts[name] = {key: value for key, value in result.items()
                           if key not in RESULT_KEYS and not key.startswith("_ansible")}
    finally:
        certificate_info.utc_now = original
    return json.dumps(facts)


def lab_facts() -> dict[str, Any]:
    return json.loads(_facts_json())


def renewed(facts: dict[str, Any], at: datetime.datetime = NOW) -> dict[str, Any]:
    """The facts as the inventory finds them once CN=mail.contoso.lab was renewed at ``at`` (a year's certificate)."""
    for fact in facts.values():
        for cert in fact["certificates"]:
            if cert["subject"] == MAIL:
                cert.update(thumbprint=NEW_THUMBPRINT, not_before=format_utc_datetime(at),
                            not_after=format_utc_datetime(at + 365 * DAY), days_remaining=(at + 365 * DAY - NOW).days)
        fact["findings"] = [finding for finding in fact["findings"] if finding.get("thumbprint") is None]
    return facts


def make_plan(facts=None, policy=None, now=NOW, plan_id="run-1"):
    return build_plan(lab_facts() if facts is None else facts, policy=RenewalPolicy.from_options(policy or POLICY),
                      now=now, plan_id=plan_id)


@pytest.fixture
def plan():
    return make_plan()


@pytest.fixture
def identity(plan):
    (item,) = plan["items"]
    assert item["certificate"]["subject"] == MAIL and item["status"] == "due"
    return item["identity"]


def outcome(identity, action, time, *, plan_id="run-0", server="organization", step=None, host="ex2",
            message=None, rolled_back=None):
    """A record as roles/renewal/tasks/group.yml writes it (exchange.pki.ledger_record)."""
    failed = action == "renewal_failed"
    after = {"identity": identity, "plan_id": plan_id, "thumbprint": NEW_THUMBPRINT, "group": "DAG1",
             "members": ["ex1", "ex2", "ex3"], "removed": [], "kept": []}
    if failed:
        after.update(failed_host=host, step=step, rolled_back=rolled_back)
    return make_record(server=server, module="exchange.pki.ledger_record", action=action,
                       result="failed" if failed else "changed", before={"thumbprints": ["FB" * 20]}, after=after,
                       time=time, host="localhost", message=message, run_id=plan_id)


def ledger(tmp_path, records):
    path = tmp_path / "ledger.jsonl"
    append_records(path, records)
    return read_records(path)


def status(plan, **kwargs):
    kwargs.setdefault("now", NOW)
    return _renewal_status.renewal_status(plan, **kwargs)


def metrics(text: str) -> dict[str, list[Any]]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def sample(families, name, **labels):
    (found,) = [item for item in families[name] if all(item.labels.get(key) == value for key, value in labels.items())]
    return found.value


# --- a failed run ---------------------------------------------------------------------------------------------


VERIFY_ERROR = "IIS on EX2 still serves FBAE5BC9D08B03C5C79C69F5E2896C11F6186456 after binding"


@pytest.fixture
def failed_run(tmp_path, plan, identity):
    records = ledger(tmp_path, [
        outcome(identity, "renewal_done", NOW - 400 * DAY, plan_id="last-year"),
        outcome(identity, "renewal_failed", NOW - 10 * HOUR, plan_id="run-0", server="EX2", step="verify",
                message="earlier", rolled_back=True),
        outcome(identity, "renewal_failed", NOW - datetime.timedelta(minutes=10),
                plan_id=plan["plan_id"], server="EX2", step="verify", message=VERIFY_ERROR + "\r\nsecond line",
                rolled_back=True),
    ])
    return status(plan, records=records, facts=lab_facts(), results=None)


def test_a_failed_rollout_names_server_step_and_error(failed_run, identity):
    (rollout,) = failed_run["failed_rollouts"]  # this run's only: the earlier run's failure is not this run's
    assert rollout["identity"] == identity and rollout["subject"] == MAIL
    assert (rollout["server"], rollout["host"], rollout["group"], rollout["step"]) == ("EX2", "ex2", "DAG1", "verify")
    assert rollout["error"] == VERIFY_ERROR + " second line" and rollout["rolled_back"] is True
    event = failed_run["events"][0]
    assert event == {"severity": "critical", "kind": "rolled_back", "server": "EX2", "certificate": identity,
                     "step": "verify", "error": VERIFY_ERROR + " second line",
                     "summary": f"Renewal of {MAIL} failed on EX2 at step verify; the server was rolled back to the "
                                "old certificate"}
    assert failed_run["run"]["outcome"] == "failed"


def test_due_for_more_than_stalled_after_is_stalled(failed_run, identity):
    state = failed_run["identities"][identity]
    assert state["ready"] is False and state["status"] in ("due", "backoff")
    assert state["expiration"] == "2026-12-15T08:00:00Z" and state["renewal_due"] == "2026-11-15T08:00:00Z"
    assert state["failures"] == 2 and state["failures_total"] == 2
    assert state["last_renewal"] == format_utc_datetime(NOW - 400 * DAY)
    assert state["stalled"] is True
    assert state["stalled_reason"].startswith("due since 2026-11-15T08:00:00Z (10 days) without a successful renewal")
    (stalled,) = failed_run["stalled"]
    assert stalled["identity"] == identity
    event = failed_run["events"][1]
    assert (event["severity"], event["kind"], event["certificate"]) == ("warning", "renewal_stalled", identity)
    assert event["summary"].startswith(f"Renewal of {MAIL} is stalled: due since 2026-11-15T08:00:00Z")
    assert event["error"].startswith(VERIFY_ERROR)


def test_a_stall_close_to_expiry_is_critical(tmp_path, plan, identity):
    result = status(plan, stalled_after="3w", failed_attempts=2,
                    records=ledger(tmp_path, [outcome(identity, "renewal_failed", NOW - 2 * HOUR, step="issue"),
                                              outcome(identity, "renewal_failed", NOW - HOUR, step="issue")]))
    (event,) = [event for event in result["events"] if event["kind"] == "renewal_stalled"]
    assert event["severity"] == "critical"  # expires in 20 days, within stalled_after (21 days)
    assert result["identities"][identity]["stalled_reason"].startswith("the last 2 renewal attempts failed")


def test_not_yet_stalled_within_stalled_after(plan, identity):
    result = status(plan, stalled_after="14d")
    state = result["identities"][identity]
    assert state["ready"] is False and state["stalled"] is False and state["stalled_reason"] is None
    assert result["events"] == [] and result["failed_rollouts"] == [] and result["run"]["outcome"] == "noop"


def test_n_failed_attempts_stall_even_before_stalled_after(tmp_path, plan, identity):
    records = [outcome(identity, "renewal_failed", NOW - (5 - n) * HOUR, message=f"attempt {n}") for n in range(3)]
    written = ledger(tmp_path, records)
    result = status(plan, stalled_after="30d", failed_attempts=3, records=written)
    state = result["identities"][identity]
    assert state["stalled"] is True and state["failures"] == 3
    assert state["stalled_reason"].startswith("the last 3 renewal attempts failed (last on ex2: attempt 2)")
    four = status(plan, stalled_after="30d", failed_attempts=4, records=written)
    assert four["identities"][identity]["stalled"] is False


def test_a_success_resets_failures_and_stall(tmp_path, plan, identity):
    records = ledger(tmp_path, [
        outcome(identity, "renewal_failed", NOW - 3 * DAY, step="issue"),
        outcome(identity, "renewal_failed", NOW - 2 * DAY, step="issue"),
        outcome(identity, "renewal_failed", NOW - DAY, step="issue"),
        outcome(identity, "renewal_done", NOW - HOUR, plan_id=plan["plan_id"]),
    ])
    result = status(plan, records=records, facts=renewed(lab_facts(), NOW - HOUR))
    state = result["identities"][identity]
    assert state["ready"] is True and state["status"] == "current" and state["stalled"] is False
    assert (state["failures"], state["failures_total"]) == (0, 3)
    assert state["last_renewal"] == format_utc_datetime(NOW - HOUR)
    assert state["thumbprint"] == NEW_THUMBPRINT
    assert state["expiration"] == format_utc_datetime(NOW - HOUR + 365 * DAY)
    assert state["renewal_due"] == format_utc_datetime(NOW - HOUR + 335 * DAY)
    assert result["events"] == [] and result["stalled"] == [] and result["failed_rollouts"] == []
    families = metrics(result["metrics"])
    assert sample(families, "exchange_pki_certificate_ready_status", identity=identity, condition="True") == 1
    assert sample(families, "exchange_pki_certificate_renewal_consecutive_failures", identity=identity) == 0


def partly_renewed(facts: dict[str, Any]) -> dict[str, Any]:
    """The facts after a rollout that failed in DAG1 on ex2: ex4 (its own group) has only the new certificate, ex1
    has both (DAG1 was not verified everywhere, so the old one stays), ex2 and ex3 the old one only."""
    for host in ("ex1", "ex4"):
        certificates = facts[host]["certificates"]
        old = next(cert for cert in certificates if cert["subject"] == MAIL)
        new = {**old, "thumbprint": NEW_THUMBPRINT, "not_before": format_utc_datetime(NOW - HOUR),
               "not_after": format_utc_datetime(NOW - HOUR + 365 * DAY), "days_remaining": 364}
        certificates.append(new)
        if host == "ex4":
            certificates.remove(old)
    return facts


def test_a_partial_rollout_is_not_a_renewal_the_old_certificates_due_date_counts(tmp_path, plan, identity):
    records = ledger(tmp_path, [
        outcome(identity, "renewal_failed", NOW - 2 * HOUR, plan_id=plan["plan_id"], server="EX2", step="services",
                message="bind failed", rolled_back=True),
        outcome(identity, "renewal_done", NOW - HOUR, plan_id=plan["plan_id"]),
    ])
    result = status(plan, records=records, facts=partly_renewed(lab_facts()))
    state = result["identities"][identity]
    assert state["status"] == "due" and state["ready"] is False
    assert state["thumbprint"] == NEW_THUMBPRINT and state["renewal_due"] == format_utc_datetime(
        NOW - HOUR + 335 * DAY)  # the metric is the newest certificate's, as cert-manager's
    assert state["failures"] == 0 and state["failures_total"] == 1  # ex4's group succeeded after DAG1 failed
    assert state["stalled"] is True
    assert state["stalled_reason"].startswith("due since 2026-11-15T08:00:00Z (10 days)")  # ex2 and ex3's old one
    kinds = [(event["kind"], event["severity"]) for event in result["events"]]
    assert kinds == [("rolled_back", "critical"), ("renewal_stalled", "warning")]


def test_without_facts_a_renewed_identity_is_ready(plan, identity):
    result = status(plan, results=[{"identity": identity, "status": "renewed", "groups": []}])
    assert result["identities"][identity]["ready"] is True and result["run"]["outcome"] == "success"
    assert status(plan)["identities"][identity]["ready"] is False


def test_percentage_rule_moves_the_renewal_timestamp(identity):
    plan = make_plan(policy={**POLICY, "renew_before_days": 10, "renew_before_percentage": 33})
    state = status(plan, stalled_after="1d")["identities"][identity]
    # 33% of 365 days is 120.45 days: due with fewer than 121 whole days left.
    assert state["renewal_due"] == format_utc_datetime(datetime.datetime(2026, 12, 15, 8, tzinfo=datetime.UTC)
                                                       - 121 * DAY)
    current = status(make_plan(policy={**POLICY, "renew_before_days": 10}))["identities"][identity]
    assert current["ready"] is True and current["renewal_due"] == "2026-12-05T08:00:00Z"


def test_a_failed_issue_names_the_request_server(tmp_path, plan, identity):
    # roles/renewal/tasks/item.yml: server left at ledger_record's default, organization; after.failed_host is the
    # request server, step issue, thumbprint and group null.
    denied = make_record(server="organization", module="exchange.pki.ledger_record", action="renewal_failed",
                         result="failed", before={"thumbprints": ["FB" * 20]},
                         after={"identity": identity, "plan_id": plan["plan_id"], "thumbprint": None, "group": None,
                                "failed_host": "ex1", "step": "issue"},
                         message="certreq: the CA denied the request (0x80094012)", time=NOW, host="localhost",
                         run_id=plan["plan_id"])
    result = status(plan, records=ledger(tmp_path, [denied]))
    (rollout,) = result["failed_rollouts"]
    assert (rollout["server"], rollout["step"], rollout["rolled_back"]) == ("ex1", "issue", False)
    assert result["events"][0]["summary"] == f"Renewal of {MAIL} failed on ex1 at step issue"
    assert result["events"][0]["error"] == "certreq: the CA denied the request (0x80094012)"


# --- failed rollouts from renewal_results (no ledger) ---------------------------------------------------------


def test_results_tell_the_failed_rollouts_without_a_ledger(plan, identity):
    results = [{"identity": identity, "subject": MAIL, "status": "partial", "issue": "issued", "groups": [
        {"name": "DAG1", "status": "failed", "failed_host": "ex2", "step": "enable",
         "message": "Enable-ExchangeCertificate failed\nwith an error", "rolled_back": False},
        {"name": "ex4", "status": "done"}]}]
    result = status(plan, results=results)
    assert result["failed_rollouts"] == [{"identity": identity, "subject": MAIL, "server": "ex2", "host": "ex2",
                                          "group": "DAG1", "step": "enable",
                                          "error": "Enable-ExchangeCertificate failed with an error",
                                          "rolled_back": False, "time": None}]
    assert result["events"][0]["kind"] == "renewal_failed" and result["run"]["outcome"] == "failed"
    issue = status(plan, results=[{"identity": identity, "status": "failed", "issue": "failed", "message": "denied",
                                   "groups": []}])
    assert issue["failed_rollouts"][0]["step"] == "issue" and issue["failed_rollouts"][0]["server"] == "ex1"


# --- this run's records ---------------------------------------------------------------------------------------


def test_the_runs_records_are_those_naming_the_plan_or_written_since_it_started(tmp_path, plan, identity):
    import_record = make_record(server="EX1", module="exchange.pki.certificate_import", action="import",
                                result="changed", before={}, after={"thumbprint": NEW_THUMBPRINT},
                                time=NOW - datetime.timedelta(minutes=5), host="ex1")
    records = ledger(tmp_path, [outcome(identity, "renewal_failed", NOW - DAY, plan_id="other"), import_record,
                                outcome(identity, "renewal_done", NOW, plan_id=plan["plan_id"])])
    started = format_utc_datetime(NOW - datetime.timedelta(minutes=10))
    result = status(plan, records=records, run={"started": started, "outcome": "success"})
    assert [(record["module"], record["action"]) for record in result["ledger_records"]] == [
        ("exchange.pki.certificate_import", "import"), ("exchange.pki.ledger_record", "renewal_done")]
    assert result["run"] == {"started": started, "finished": format_utc_datetime(NOW), "outcome": "success",
                             "duration_seconds": 600.0}
    only_named = status(plan, records=records, run={"started": format_utc_datetime(NOW)})
    assert [record["action"] for record in only_named["ledger_records"]] == ["renewal_done"]


# --- metrics --------------------------------------------------------------------------------------------------


def test_metrics_parse_with_one_series_per_identity(failed_run, identity):
    families = metrics(failed_run["metrics"])
    labels = {"identity": identity, "subject": MAIL}
    expiry = datetime.datetime(2026, 12, 15, 8, tzinfo=datetime.UTC).timestamp()
    assert families["exchange_pki_certificate_expiration_timestamp_seconds"][0].labels == labels
    assert sample(families, "exchange_pki_certificate_expiration_timestamp_seconds", **labels) == expiry
    assert sample(families, "exchange_pki_certificate_renewal_timestamp_seconds", **labels) == expiry - 30 * 86400
    assert sample(families, "exchange_pki_certificate_ready_status", condition="True", **labels) == 0
    assert sample(families, "exchange_pki_certificate_ready_status", condition="False", **labels) == 1
    assert sample(families, "exchange_pki_certificate_last_renewal_timestamp_seconds", **labels) == (
        (NOW - 400 * DAY).timestamp())
    # prometheus_client's parser drops a counter's _total suffix from the family name
    assert sample(families, "exchange_pki_certificate_renewal_failures", **labels) == 2
    assert sample(families, "exchange_pki_certificate_renewal_stalled", **labels) == 1
    outcomes = {item.labels["outcome"]: item.value for item in families["exchange_pki_renewal_run_outcome"]}
    assert outcomes == {"success": 0, "failed": 1, "pending": 0, "noop": 0}
    assert sample(families, "exchange_pki_renewal_run_timestamp_seconds") == NOW.timestamp()
    assert sample(families, "exchange_pki_renewal_run_duration_seconds") >= 0
    for samples in families.values():
        keys = [tuple(sorted(item.labels.items())) for item in samples]
        assert len(keys) == len(set(keys))  # one series per label set
        assert not any("," in value for item in samples for value in item.labels.values())


def test_label_values_are_escaped(identity):
    hostile = 'CN=a "quoted" \\ back\\slash, O=x'
    facts = lab_facts()
    for fact in facts.values():
        for cert in fact["certificates"]:
            if cert["subject"] == MAIL:
                cert["subject"] = hostile
    plan = make_plan(facts)
    text = status(plan)["metrics"]
    assert '\\"quoted\\"' in text and "\\\\ back\\\\slash" in text
    families = metrics(text)
    (series,) = families["exchange_pki_certificate_expiration_timestamp_seconds"]
    assert series.labels["subject"] == hostile


def test_the_expiration_help_text_matches_the_fleet_reports(failed_run):
    # node_exporter's textfile collector wants one HELP text per metric name across the files it reads.
    report_text = "".join(render_prometheus(build_report(lab_facts(), title="t", now=NOW)))
    name = "exchange_pki_certificate_expiration_timestamp_seconds"
    help_lines = [[line for line in text.splitlines() if line.startswith(f"# HELP {name} ")]
                  for text in (report_text, failed_run["metrics"])]
    assert help_lines[0] == help_lines[1] and len(help_lines[0]) == 1
    assert "per role" in help_lines[0][0] and "per certificate identity" in help_lines[0][0]


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"stalled_after": "7 days"}, r"^stalled_after must be a duration"),
    ({"stalled_after": "0d"}, r"^stalled_after must be more than 0"),
    ({"stalled_after": "-1d"}, r"^stalled_after must be a duration"),
    ({"stalled_after": "99999d"}, r"at most 3650 days"),
    ({"stalled_after": "7d\n"}, r"^stalled_after must be a duration such as"),
    ({"failed_attempts": 0}, r"^failed_attempts must be a whole number from 1 to 1000"),
    ({"failed_attempts": True}, r"^failed_attempts must be"),
    ({"run": {"outcome": "great"}}, r"^run\.outcome must be one of success, failed, pending, noop"),
    ({"run": {"started": "yesterday"}}, r"^run\.started: 'yesterday' is not an ISO-8601"),
    ({"run": {"started": "2026-12-02T02:15:00Z\r"}}, r"^run\.started must be an ISO-8601 date and time such as"),
    ({"run": {"started": 20261202}}, r"^run\.started must be an ISO-8601 date and time such as"),
    ({"run": {"colour": "red"}}, r"^run: unknown key"),
    ({"results": "renewed"}, r"^results must be the renewal role's renewal_results"),
    ({"facts": ["ex1"]}, r"^facts must be a dictionary"),
])
def test_bad_input_is_refused(plan, kwargs, message):
    with pytest.raises(_renewal_status.RenewalStatusError, match=message):
        status(plan, **kwargs)


@pytest.mark.parametrize("bad", [None, {}, {"plan_id": "x"}, {"items": []}, "plan"])
def test_a_plan_that_is_not_one_is_refused(bad):
    with pytest.raises(_renewal_status.RenewalStatusError, match=r"^plan must be the registered result"):
        _renewal_status.renewal_status(bad, now=NOW)


@pytest.mark.parametrize(("text", "seconds"), [("7d", 7 * 86400), ("1w", 604800), ("36h", 129600),
                                               ("1d12h", 129600), ("90m", 5400), (3600, 3600)])
def test_durations(text, seconds):
    assert _renewal_status.parse_duration("x", text).total_seconds() == seconds
