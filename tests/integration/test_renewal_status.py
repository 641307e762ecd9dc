# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The end of `ansible-playbook exchange.pki.renew` (renewal_status, the metrics textfile, fleet_alert's events,
set_stats) against the `dag` lab, in two runs:

1. Enable-ExchangeCertificate fails on ex2 (a lab fault): the run fails, ex2 is rolled back (ex3 untouched, ex4's
   group finished, the renewal_failed record: test_renewal_role.assert_rolled_back), and a local webhook
   receiver gets one alert whose events name the server (EX2), the step and the injected error, plus the stalled
   renewal (the lab's certificate has been due for 10 days); the metrics textfile parses with prometheus_client and
   says the identity is not ready, has one failure and the run failed; the custom stats carry the plan, the
   results, this run's ledger records and the status.
2. The fault cleared, a rerun (renewal_force, past the backoff) finishes the rollout with the certificate issued
   the first time (test_renewal_role.assert_converged): no alert is sent, and the
   metrics say ready (condition True = 1), no consecutive failure, the run succeeded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.plugins.plugin_utils.alert_sinks import http_sink

from .conftest import ANSIBLE_PLAYBOOK, ansible_env, start_lab
from .test_renewal_role import assert_converged, assert_rolled_back, mail_certificates, prepare

INJECTED = "The certificate could not be bound (injected)"


def renew(lab, work: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert ANSIBLE_PLAYBOOK is not None
    return subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(lab.inventory), "-i", str(work / "probe_ports.yml"),
         "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{work / 'renewal.yml'}",
         "-e", f"@{work / 'status.yml'}", "exchange.pki.renew", *extra],
        cwd=work, env={**ansible_env(), "ANSIBLE_SHOW_CUSTOM_STATS": "true"}, capture_output=True, text=True,
        check=False, timeout=900,
    )


def metrics(path: Path) -> dict[str, list[Any]]:
    return {family.name: family.samples for family in text_string_to_metric_families(path.read_text())}


def value(families: dict[str, list[Any]], name: str, **labels: str) -> float:
    (found,) = [item.value for item in families[name]
                if all(item.labels.get(key) == wanted for key, wanted in labels.items())]
    return found


def test_a_failed_rollout_alerts_and_the_metrics_say_so_and_a_clean_rerun_resets(tmp_path: Path) -> None:
    lab = start_lab(tmp_path / "lab", "--scenario", "dag")
    work = tmp_path / "work"
    work.mkdir()
    try:
        prepare(lab, work)
        prom = work / "textfile" / "exchange_pki_renewal.prom"
        prom.parent.mkdir()
        with http_sink() as hook:
            (work / "status.yml").write_text(yaml.safe_dump({
                "renew_report": False,
                "renew_metrics_path": str(prom),
                "renew_alert": {"webhook": {"url": hook.url, "allow_http": True, "timeout": 10}},
            }), encoding="utf-8")
            (old,) = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}
            lab.control("fault", "--server", "ex2", "--operation", "Enable-ExchangeCertificate", "--error", INJECTED)

            failed = renew(lab, work)

            assert failed.returncode != 0, failed.stdout
            new = assert_rolled_back(lab, work, old, failed)  # what test_renewal_role checks of this fault's run
            assert "SECRET-TOKEN" not in failed.stdout + failed.stderr
            assert len(hook.received) == 1, failed.stdout
            alert = hook.received[0].body
            rollouts = [event for event in alert["events"] if event["kind"] in ("rolled_back", "renewal_failed")]
            assert len(rollouts) == 1, alert["events"]
            (event,) = rollouts
            assert event["severity"] == "critical" and event["kind"] == "rolled_back"
            assert (event["server"], event["step"]) == ("EX2", "services")
            assert event["certificate"].startswith("id-") and "CN=mail.contoso.lab" in event["summary"]
            assert INJECTED in event["error"]
            assert "EX2" in event["summary"] and "services" in event["summary"]
            stalled = [event for event in alert["events"] if event["kind"] == "renewal_stalled"]
            assert len(stalled) == 1 and stalled[0]["severity"] == "warning"  # due 10 days, expires in 20
            assert alert["severity"] == "critical" and alert["summary"] is None

            families = metrics(prom)
            (identity,) = {sample.labels["identity"] for sample in families["exchange_pki_certificate_ready_status"]}
            labels = {"identity": identity, "subject": "CN=mail.contoso.lab"}
            assert value(families, "exchange_pki_certificate_ready_status", condition="True", **labels) == 0
            assert value(families, "exchange_pki_certificate_ready_status", condition="False", **labels) == 1
            assert value(families, "exchange_pki_certificate_renewal_failures", **labels) == 1  # the _total counter
            assert value(families, "exchange_pki_certificate_renewal_stalled", **labels) == 1
            assert value(families, "exchange_pki_renewal_run_outcome", outcome="failed") == 1
            assert value(families, "exchange_pki_renewal_run_outcome", outcome="success") == 0
            assert oct(prom.stat().st_mode & 0o777) == "0o644"
            stats = failed.stdout[failed.stdout.index("CUSTOM STATS"):]
            for key in ("exchange_pki_renewal_plan", "exchange_pki_renewal_results", "exchange_pki_ledger",
                        "exchange_pki_renewal_status"):
                assert key in stats
            assert "renewal_failed" in stats and INJECTED in stats

            lab.control("fault", "--server", "ex2", "--clear")
            again = renew(lab, work, "-e", "renewal_force=true")

            assert again.returncode == 0, again.stdout + again.stderr
            assert_converged(lab, work, new, again)
            assert len(hook.received) == 1  # nothing new to alert on
        converged = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}
        assert len(converged) == 1 and old not in converged
        families = metrics(prom)
        assert value(families, "exchange_pki_certificate_ready_status", condition="True", **labels) == 1
        assert value(families, "exchange_pki_certificate_ready_status", condition="False", **labels) == 0
        assert value(families, "exchange_pki_certificate_renewal_consecutive_failures", **labels) == 0
        assert value(families, "exchange_pki_certificate_renewal_failures", **labels) == 1
        assert value(families, "exchange_pki_certificate_renewal_stalled", **labels) == 0
        assert value(families, "exchange_pki_certificate_last_renewal_timestamp_seconds", **labels) > 0
        assert value(families, "exchange_pki_renewal_run_outcome", outcome="success") == 1
    finally:
        lab.control("stop")
