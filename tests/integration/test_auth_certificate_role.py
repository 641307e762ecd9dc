# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.auth_certificate` (the exchange.pki.auth_certificate role) against the lab.

The lab's clock and its AuthAdmin servicelet (every 12 hours per server, publishes a staged certificate once its
effective date has come) drive the rotation; besides one injected fault nobody touches the lab in between:

- rotation (`dag`, the Auth certificate expires in 45 days; renew window 40 days): a run before the window changes
  nothing and alerts nothing; 6 days later the role makes a new certificate and imports it on every server, but
  Set-AuthConfig fails once (Active Directory): the run fails and alerts what it did; the next run stages that same
  certificate (49 h ahead) and alerts; a daily rerun a day later changes nothing (changed=0 for every host) and
  sends nothing; once the effective date and the servicelet tick after it have passed the servicelet has published
  it and the next run clears the previous certificate and alerts; with ex3 down the module refuses, and with ex1
  (where the module runs) down the role cannot run it: each run alerts, fails and changes nothing.
- emergency (`dag` with a hybrid configuration, 46 days later: the current certificate has expired): without the
  hybrid acknowledgement the run refuses, alerts and changes nothing; with it the role replaces the certificate
  (effective now, published, previous cleared), the module restarts the servicelet host and recycles OWA/ECP on
  ex1 and the role does the same on ex2-ex4, and the alert says so and asks for the Hybrid Configuration Wizard.

Expectations come from the lab's dump (Auth configuration, certificates per server, mutation log), the ledger, the
play recap and the webhook receiver in this process.
"""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.plugins.plugin_utils.alert_sinks import HttpSink, http_sink

from .conftest import ANSIBLE_PLAYBOOK, SCENARIOS, Lab, ansible_env, start_lab

MEMBERS = ("ex1", "ex2", "ex3", "ex4")


class AuthRun:
    """ansible-playbook exchange.pki.auth_certificate against one lab, with a ledger and a webhook receiver."""

    def __init__(self, lab: Lab, work: Path, hook: HttpSink | None) -> None:
        self.lab, self.work, self.hook = lab, work, hook
        self.ledger = work / "ledger.jsonl"
        self.runs = 0

    def __call__(self, **variables: Any) -> subprocess.CompletedProcess[str]:
        assert ANSIBLE_PLAYBOOK is not None
        settings = {"auth_certificate_ledger": str(self.ledger), **variables}
        if self.hook is not None:
            settings["auth_certificate_alert_webhook"] = {"url": self.hook.url, "allow_http": True, "timeout": 10}
        self.runs += 1
        extra = self.work / f"run{self.runs}.yml"
        extra.write_text(yaml.safe_dump(settings), encoding="utf-8")
        return subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", str(self.lab.inventory), "-e", f"ansible_python_interpreter={sys.executable}",
             "-e", f"@{extra}", "exchange.pki.auth_certificate"],
            cwd=self.work, env=ansible_env(), capture_output=True, text=True, check=False, timeout=600,
        )

    def records(self) -> list[dict[str, Any]]:
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text(encoding="utf-8").splitlines()]

    def alerts(self) -> list[list[dict[str, Any]]]:
        """The events of every alert the webhook received, in order (the generic JSON format)."""
        assert self.hook is not None
        return [post.body["events"] for post in self.hook.received]


def recap(run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> {ok, changed, unreachable, failed, ...}."""
    found = {}
    for host, counts in re.findall(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", run.stdout, re.MULTILINE):
        found[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counts)}
    assert set(found) == set(MEMBERS), run.stdout + run.stderr
    return found


def changed(run: subprocess.CompletedProcess[str]) -> int:
    """The number of changed tasks (all hosts); the run's output is printed for a failing assertion."""
    print(run.stdout)
    return sum(counts["changed"] for counts in recap(run).values())


def auth(lab: Lab) -> dict[str, Any]:
    return lab.dump()["organization"]["auth_config"]


def holders(dump: dict[str, Any], thumbprint: str) -> list[str]:
    return [name for name, server in dump["servers"].items()
            if any(cert["thumbprint"] == thumbprint for cert in server["certificates"]["My"])]


def parse(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, severity) of each event, in the alert's order (fleet_alert lists the worst first)."""
    return [(event["kind"], event["severity"]) for event in events]


@pytest.fixture
def hook() -> Iterator[HttpSink]:
    with http_sink(status=200) as sink:
        yield sink


def test_rotation_stages_then_the_servicelet_publishes_then_the_role_clears(tmp_path: Path, hook: HttpSink) -> None:
    lab = start_lab(tmp_path / "lab", "--scenario", "dag")
    try:
        role = AuthRun(lab, tmp_path, hook)
        window = {"auth_certificate_renew_before_days": 40}
        old = auth(lab)["CurrentCertificateThumbprint"]

        # 45 days left, window 40: nothing due.
        first = role(**window)
        assert first.returncode == 0, first.stdout + first.stderr
        assert changed(first) == 0 and lab.mutations() == [] and role.records() == []

        # 39 days left: a new certificate is made and imported on every server, but Set-AuthConfig fails (AD):
        # the run fails and alerts what it did.
        lab.control("clock", "--advance", "6d")
        lab.control("fault", "--server", "ex1", "--operation", "Set-AuthConfig", "--error",
                    "Active Directory operation failed on dc1.contoso.lab", "--times", "1")
        failed = role(**window)
        assert failed.returncode != 0
        dump = lab.dump()
        (made,) = [entry["summary"]["thumbprint"] for entry in dump["mutations"]
                   if entry["operation"] == "New-ExchangeCertificate"]
        assert dump["organization"]["auth_config"]["NextCertificateThumbprint"] is None
        assert holders(dump, made) == list(MEMBERS)

        # The next run stages the certificate made before (no second one), 49 h ahead.
        staged = role(**window)
        assert staged.returncode == 0, staged.stdout + staged.stderr
        dump = lab.dump()
        config = dump["organization"]["auth_config"]
        new = config["NextCertificateThumbprint"]
        assert new == made and config["CurrentCertificateThumbprint"] == old
        assert [entry["operation"] for entry in dump["mutations"]].count("New-ExchangeCertificate") == 1
        effective = parse(config["NextCertificateEffectiveDate"])
        assert effective >= parse(dump["clock"]["now"]) + datetime.timedelta(hours=48)
        assert holders(dump, new) == list(MEMBERS)
        assert changed(staged) == 2  # the module task on ex1, the alert
        record = role.records()[-1]
        assert (record["action"], record["result"]) == ("auth_certificate", "changed")
        assert record["after"]["auth_config"]["next_thumbprint"] == new
        records = len(role.records())

        # The next day: nothing due (the staged certificate waits for its date): no change, no alert.
        lab.control("clock", "--advance", "1d")
        mutations = len(lab.mutations())
        daily = role(**window)
        assert daily.returncode == 0, daily.stdout + daily.stderr
        assert changed(daily) == 0 and len(lab.mutations()) == mutations and len(role.records()) == records

        # Past the effective date and the servicelet tick after it: the servicelet published it (no manual step).
        now = parse(lab.dump()["clock"]["now"])
        advance = int((effective - now).total_seconds()) + 12 * 3600 + 60
        lab.control("clock", "--advance", f"{advance}s")
        published = [entry for entry in lab.mutations() if entry["operation"] == "AuthAdmin.publish"]
        assert [entry["summary"]["current_after"] for entry in published] == [new]
        config = auth(lab)
        assert (config["CurrentCertificateThumbprint"], config["PreviousCertificateThumbprint"]) == (new, old)
        cleared = role(**window)
        assert cleared.returncode == 0, cleared.stdout + cleared.stderr
        config = auth(lab)
        assert (config["CurrentCertificateThumbprint"], config["NextCertificateThumbprint"]) == (new, None)
        assert config["PreviousCertificateThumbprint"] is None
        assert changed(cleared) == 2  # the module task, the alert
        assert role.records()[-1]["after"]["auth_config"]["previous_thumbprint"] is None

        # ex3 is down: the role refuses (nothing sent), alerts and fails the run.
        lab.control("fault", "--server", "ex3", "--unreachable")
        mutations = len(lab.mutations())
        refused = role(**window)
        assert refused.returncode != 0
        assert "these Exchange servers cannot be reached: EX3" in refused.stdout
        assert changed(refused) == 1 and len(lab.mutations()) == mutations  # the alert
        assert len(role.records()) == records + 1

        # ex3 is back, ex1 (where the role runs the module) is down: the role alerts and fails the run.
        lab.control("fault", "--server", "ex3", "--reachable")
        lab.control("fault", "--server", "ex1", "--unreachable")
        down = role(**window)
        assert down.returncode != 0
        assert changed(down) == 1 and len(lab.mutations()) == mutations  # the alert

        alerts = role.alerts()
        assert len(alerts) == 5, alerts  # failed, staged, cleared, refused twice; the no-op runs sent nothing
        assert kinds(alerts[0]) == [("auth_failed", "critical"), ("auth_created", "info"), ("auth_imported", "info")]
        assert "Active Directory operation failed" in alerts[0][0]["error"]
        assert alerts[0][1]["certificate"] == made and alerts[0][2]["certificate"] == made
        assert alerts[0][2]["server"] == "EX2, EX3, EX4"
        assert kinds(alerts[1]) == [("auth_warning", "warning"), ("auth_staged", "info")]
        assert alerts[1][1]["certificate"] == new and "made earlier" in alerts[1][0]["summary"]
        assert kinds(alerts[2]) == [("auth_cleared", "info")] and alerts[2][0]["certificate"] == old
        assert kinds(alerts[3]) == [("auth_refused", "critical")]
        assert "EX3" in alerts[3][0]["summary"] and alerts[3][0]["server"] == "ex1"
        assert kinds(alerts[4]) == [("auth_refused", "critical")] and alerts[4][0]["server"] == "ex1"
        assert "ex1, where the Auth certificate task runs (the first host of the play), cannot be reached" in (
            alerts[4][0]["summary"])
    finally:
        lab.control("stop")


def test_emergency_replacement_after_a_hybrid_refusal(tmp_path: Path, hook: HttpSink) -> None:
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    scenario["hybrid"] = {"tls_certificate": "mail"}
    (tmp_path / "dag-hybrid.yml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
    lab = start_lab(tmp_path / "lab", "--scenario", str(tmp_path / "dag-hybrid.yml"))
    try:
        role = AuthRun(lab, tmp_path, hook)
        lab.control("clock", "--advance", "46d")  # the current Auth certificate expired a day ago
        before = lab.dump()
        expired = before["organization"]["auth_config"]["CurrentCertificateThumbprint"]

        refused = role()
        assert refused.returncode != 0
        assert "Hybrid Configuration Wizard" in refused.stdout
        assert changed(refused) == 1 and lab.mutations() == before["mutations"] and role.records() == []  # the alert

        replaced = role(auth_certificate_acknowledge_hybrid=True)
        assert replaced.returncode == 0, replaced.stdout + replaced.stderr
        dump = lab.dump()
        config = dump["organization"]["auth_config"]
        new = config["CurrentCertificateThumbprint"]
        assert new != expired and config["PreviousCertificateThumbprint"] is None
        assert config["NextCertificateThumbprint"] is None
        assert holders(dump, new) == list(MEMBERS)
        certificate = next(cert for cert in dump["servers"]["ex1"]["certificates"]["My"] if cert["thumbprint"] == new)
        assert parse(certificate["not_after"]) > parse(dump["clock"]["now"]) + datetime.timedelta(days=365)
        restarts = {(entry["server"], entry["operation"], entry["summary"]["name"]) for entry in dump["mutations"]
                    if entry["operation"] in ("host.restart_service", "host.recycle_app_pool")}
        assert restarts == {(server, operation, name) for server in MEMBERS for operation, name in (
            ("host.restart_service", "MSExchangeServiceHost"), ("host.recycle_app_pool", "MSExchangeOWAAppPool"),
            ("host.recycle_app_pool", "MSExchangeECPAppPool"))}
        assert changed(replaced) == 5  # the module on ex1, the restarts on ex2-ex4, the alert
        (record,) = role.records()
        assert record["after"]["auth_config"]["current_thumbprint"] == new

        first, second = role.alerts()
        assert kinds(first) == [("auth_refused", "critical")] and "hybrid" in first[0]["summary"]
        assert sorted(kinds(second)) == [("auth_cleared", "info"), ("auth_imported", "info"),
                                         ("auth_replaced", "critical"), ("auth_restarted", "info"),
                                         ("auth_warning", "warning")]
        event = {item["kind"]: item for item in second}
        assert event["auth_replaced"]["certificate"] == new and expired in event["auth_replaced"]["summary"]
        assert event["auth_cleared"]["certificate"] == expired
        assert "ex2, ex3, ex4" in event["auth_restarted"]["summary"]
        # The module's reminder to restart ex2-ex4 is not alerted: the role restarted them.
        assert "Hybrid Configuration Wizard" in event["auth_warning"]["summary"]
    finally:
        lab.control("stop")
