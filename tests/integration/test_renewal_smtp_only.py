# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.renew` renewing a certificate that holds SMTP only, beside the IIS certificate.

The lab is `dag` without ex4 (DAG1: ex1, ex2, ex3): each member keeps the shared mail certificate for IIS (Default
Web Site and Back End), IMAP and POP, and holds a second certificate, CN=smtp.contoso.lab, enabled for SMTP only and
named by its Default Frontend receive connector (so SMTP STARTTLS offers it). Only the SMTP certificate is renewed
(the policy's one backend matches its subject). Renewing it moves SMTP alone: HTTPS keeps serving the IIS
certificate, and the verification must expect that there (and the rollback's re-verification too).

- The rollout succeeds: every member's SMTP STARTTLS serves the new certificate, HTTPS still the mail certificate it
  served before (expired: not the rollout's to judge); the old SMTP certificate is removed, the mail certificate is
  not; every ledger record names the plan.
- Enable-ExchangeCertificate failing on ex2: ex2 is rolled back and its rollback verified (recorded as rolled back,
  not as a failed rollback), ex3 is not touched, nothing is removed, HTTPS serves the mail certificate everywhere.
Every check reads the lab's dump, the ledger or a real TLS handshake.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .conftest import SCENARIOS, Lab
from .test_renewal_role import MAIL, outcomes, prepared_lab, renew, served_thumbprint

SMTP_NAME = "smtp.contoso.lab"
MEMBERS = ("ex1", "ex2", "ex3")


@pytest.fixture
def smtp_only(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    """dag.yml without ex4; every member holds the mail certificate (IIS, IMAP, POP; expired five days ago) and an
    SMTP-only certificate that its Default Frontend connector names; both are due, but the policy renews only the
    SMTP one."""
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    scenario["certificates"]["smtp"] = {**scenario["certificates"]["mail"], "subject": f"CN={SMTP_NAME}",
                                        "dns_names": [SMTP_NAME]}
    # The IIS certificate has already expired: HTTPS is not the rollout's to fix, so it must not fail it.
    scenario["certificates"]["mail"]["not_after"] = "-5d"
    servers = [server for server in scenario["servers"] if server["name"] != "ex4"]
    for server in servers:
        (mail,) = server["certificates"]
        server["certificates"] = [{**mail, "services": ["IMAP", "POP"]},
                                  {**mail, "ref": "smtp", "services": ["SMTP"]}]
        server["receive_connectors"] = {"Default Frontend": {"tls_certificate": "smtp"}}
    scenario["servers"] = servers
    path = tmp_path / "dag-smtp-only.yml"
    path.write_text(yaml.safe_dump(scenario), encoding="utf-8")
    with prepared_lab(tmp_path, str(path)) as started:
        yield started


def policy(lab: Lab) -> str:
    """A policy whose only backend matches the SMTP certificate: the mail certificate is not renewed."""
    return json.dumps({"renewal_policy": {"backends": [
        {"match": {"subject": f"CN={SMTP_NAME}"}, "backend": "adcs",
         "options": {"ca_config": lab.dump()["organization"]["ca"]["config"], "template": "WebServer"}}]}})


def certificates(lab: Lab, name: str) -> dict[str, dict[str, set[str]]]:
    """Each member's certificates (store My) for the subject CN=name: thumbprint -> services."""
    dump = lab.dump()
    return {server: {c["thumbprint"]: set(c["services"]) for c in dump["servers"][server]["certificates"]["My"]
                     if f"CN={name}" in c["subject"]} for server in MEMBERS}


def served(lab: Lab) -> dict[str, tuple[str, str]]:
    """Each member's served (HTTPS, SMTP STARTTLS) thumbprints, from real handshakes."""
    ports = lab.endpoints()["servers"]
    return {server: (served_thumbprint(ports[server]["https"]), served_thumbprint(ports[server]["smtp"], smtp=True))
            for server in MEMBERS}


def task_outputs(stdout: str, name: str) -> list[str]:
    """What each run of the task whose name starts with ``name`` printed."""
    return [section.split("\nTASK [", 1)[0] for section in stdout.split(f"TASK [exchange.pki.renewal : {name}")[1:]]


def only(found: dict[str, dict[str, set[str]]]) -> str:
    (thumbprint,) = {t for certificates in found.values() for t in certificates}
    return thumbprint


def test_an_smtp_only_certificate_is_renewed_and_https_keeps_the_iis_certificate(
        smtp_only: tuple[Lab, Path]) -> None:
    lab, work = smtp_only
    mail_before = certificates(lab, MAIL)
    mail, old = only(mail_before), only(certificates(lab, SMTP_NAME))
    assert served(lab) == {server: (mail, old) for server in MEMBERS}

    run = renew(lab, work, "-e", policy(lab))

    assert run.returncode == 0, run.stdout + run.stderr
    assert [m["operation"] for m in lab.mutations()].count("host.certreq_submit") == 1  # issued once
    new = only(certificates(lab, SMTP_NAME))  # the old SMTP certificate is gone everywhere
    assert new != old
    # SMTP STARTTLS serves the new certificate on every member, HTTPS the IIS certificate it served before.
    assert served(lab) == {server: (mail, new) for server in MEMBERS}
    # ... and the rollout verified HTTPS on each member (that it still serves what it served before).
    verified = task_outputs(run.stdout, "Verify that the new certificate is served over HTTPS")
    assert len(verified) == len(MEMBERS) and all("ok: [" in output for output in verified), verified
    after = certificates(lab, SMTP_NAME)
    assert all(after[server] == {new: {"SMTP"}} for server in MEMBERS), after
    # The mail certificate is kept, with its services (IIS, IMAP, POP), on every member.
    assert certificates(lab, MAIL) == mail_before
    removed = [m for m in lab.mutations() if m["operation"] == "Remove-ExchangeCertificate"]
    assert sorted(m["server"] for m in removed) == list(MEMBERS)
    (done,) = outcomes(work)
    assert done["action"] == "renewal_done" and done["after"]["group"] == "DAG1"
    assert done["after"]["thumbprint"] == new and sorted(done["after"]["members"]) == list(MEMBERS)
    assert done["after"]["removed"] and done["after"]["kept"] == []
    records = [json.loads(line) for line in (work / "ledger.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["run_id"] for r in records} == {done["after"]["plan_id"]}  # every record names the plan
    services = [r for r in records if r["module"] == "exchange.pki.certificate_services"]
    assert sorted(r["server"] for r in services) == [s.upper() for s in MEMBERS]


def test_the_rollback_of_an_smtp_only_rollout_is_verified(smtp_only: tuple[Lab, Path]) -> None:
    lab, work = smtp_only
    mail_before = certificates(lab, MAIL)
    mail, old = only(mail_before), only(certificates(lab, SMTP_NAME))
    lab.control("fault", "--server", "ex2", "--operation", "Enable-ExchangeCertificate",
                "--error", "The certificate could not be bound (injected)")

    run = renew(lab, work, "-e", policy(lab))

    assert run.returncode != 0
    (failed,) = [r for r in outcomes(work) if r["action"] == "renewal_failed"]
    assert failed["after"]["group"] == "DAG1" and failed["after"]["failed_host"] == "ex2"
    assert failed["after"]["step"] == "services" and failed["after"]["removed"] == []
    # Rolled back and verified again, not a failed rollback.
    assert failed["after"]["rolled_back"] is True, failed["message"]
    assert "injected" in failed["message"] and "rollback failed" not in failed["message"]
    # The rollback verified HTTPS again (what it served before the change: the mail certificate).
    (reverified,) = task_outputs(run.stdout, "Verify that the old certificate is served over HTTPS again")
    assert "ok: [" in reverified and "skipping" not in reverified, reverified
    new = failed["after"]["thumbprint"]
    assert new != old
    mutations = lab.mutations()
    assert "ex3" not in {m["server"] for m in mutations}  # the rest of the group is not touched
    assert "Remove-ExchangeCertificate" not in {m["operation"] for m in mutations}
    # HTTPS serves the mail certificate everywhere; SMTP STARTTLS the new certificate on ex1 (verified before ex2
    # failed), the old one on ex3. ex2 keeps SMTP on the old certificate (the new one never got it) and serves a
    # certificate its Default Frontend connector names: the new one, imported before the failure, has the same issuer
    # and subject (the rollback verifies that a valid certificate is served there, as for any SMTP rollback).
    now = served(lab)
    assert {server: https for server, (https, _smtp) in now.items()} == {server: mail for server in MEMBERS}
    assert now["ex1"][1] == new and now["ex3"][1] == old and now["ex2"][1] in {old, new}, now
    smtp = certificates(lab, SMTP_NAME)
    assert smtp["ex2"][old] == {"SMTP"} and "SMTP" not in smtp["ex2"][new], smtp
    assert certificates(lab, MAIL) == mail_before


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens: a connection is refused, as where a firewall rejects port 25."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_iis_certificate_is_renewed_where_smtp_starttls_does_not_answer(smtp_only: tuple[Lab, Path]) -> None:
    """The controller reaches HTTPS but not SMTP (port 25 closed to it, as often from an automation host). The
    certificate renewed holds IIS, IMAP and POP, not SMTP: the rollout does not move SMTP, so an SMTP endpoint
    that did not answer before the change is not verified after it (it rolled back every renewal before)."""
    lab, work = smtp_only
    (work / "probe_ports.yml").write_text(
        "exchange:\n  vars:\n    renewal_probe_ports: \"{{ exchange_pki_lab_ports | combine({'smtp': %d}) }}\"\n"
        % closed_port(), encoding="utf-8")
    mail, smtp = only(certificates(lab, MAIL)), only(certificates(lab, SMTP_NAME))
    mail_policy = json.dumps({"renewal_policy": {"backends": [
        {"match": {"subject": f"CN={MAIL}"}, "backend": "adcs",
         "options": {"ca_config": lab.dump()["organization"]["ca"]["config"], "template": "WebServer"}}]}})

    run = renew(lab, work, "-e", mail_policy)

    assert run.returncode == 0, run.stdout + run.stderr
    new = only(certificates(lab, MAIL))
    assert new != mail
    assert served(lab) == {server: (new, smtp) for server in MEMBERS}  # real handshakes on the lab's own ports
    skipped = task_outputs(run.stdout, "Verify what is served over SMTP STARTTLS")
    assert len(skipped) == len(MEMBERS) and all("skipping: [" in output for output in skipped), skipped
    (done,) = outcomes(work)
    assert done["action"] == "renewal_done" and done["after"]["thumbprint"] == new
    assert certificates(lab, SMTP_NAME) == {server: {smtp: {"SMTP"}} for server in MEMBERS}
