# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.renew` with `group_concurrency: 2` on the `dag` lab: the groups DAG1 (ex1-ex3) and
ex4 roll out at the same time (one pseudo-host per group, `serial` 2, strategy free), while DAG1's members stay one at
a time. Proven from the lab's mutation log (its `seq` is the order in which the lab carried out the changes): ex4's
services moved before DAG1's second member was touched (with groups in turn, ex4 comes after ex3), and DAG1's
rollout changes are ex1's, then ex2's, then ex3's, never interleaved. The result is the same as in sequence: one
certificate issued, served everywhere, the old one removed, a renewal_done record per group.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .conftest import SCENARIOS, Lab
from .test_renewal_role import MEMBERS, mail_certificates, outcomes, prepared_lab, renew, served_thumbprint

ROLLOUT = {"Import-ExchangeCertificate", "Enable-ExchangeCertificate", "host.set_iis_binding",
           "Set-SendConnector", "Set-ReceiveConnector"}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    with prepared_lab(tmp_path) as started:
        yield started


def test_groups_roll_out_in_parallel_and_members_one_at_a_time(fresh: tuple[Lab, Path]) -> None:
    lab, work = fresh
    (old,) = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}

    policy = {"group_concurrency": 2, "backends": [{"match": {}, "backend": "adcs", "options": {
        "ca_config": lab.dump()["organization"]["ca"]["config"], "template": "WebServer"}}]}
    run = renew(lab, work, "-e", json.dumps({"renewal_policy": policy}), "--forks", "4")

    assert run.returncode == 0, run.stdout + run.stderr
    assert "Roll out the groups in parallel" in run.stdout
    mutations = lab.mutations()
    assert [m["operation"] for m in mutations].count("host.certreq_submit") == 1  # issued once
    (new,) = {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs}
    assert new != old
    ports = lab.endpoints()["servers"]
    assert all(served_thumbprint(ports[server]["https"]) == new for server in MEMBERS)

    enabled = {m["server"]: m["seq"] for m in mutations if m["operation"] == "Enable-ExchangeCertificate"}
    first_touch = {server: min(m["seq"] for m in mutations if m["server"] == server) for server in ("ex2", "ex3")}
    # Overlap: ex4 (its own group) was switched before DAG1's second and third members were touched at all.
    assert enabled["ex4"] < first_touch["ex2"] < first_touch["ex3"], mutations
    # DAG1 one member at a time: its rollout changes in member order, never interleaved.
    dag_order = [m["server"] for m in mutations if m["server"] in ("ex1", "ex2", "ex3") and m["operation"] in ROLLOUT]
    assert dag_order == sorted(dag_order), dag_order
    assert dag_order and set(dag_order) == {"ex1", "ex2", "ex3"}
    # DAG1's old certificate left only after its last member was switched.
    removals = [m["seq"] for m in mutations if m["operation"] == "Remove-ExchangeCertificate" and m["server"] != "ex4"]
    assert removals and min(removals) > enabled["ex3"]
    done = outcomes(work)
    assert sorted((r["action"], r["after"]["group"]) for r in done) == [("renewal_done", "DAG1"),
                                                                        ("renewal_done", "ex4")]
    assert "changed: [localhost]" in run.stdout.split("Remove the run directory with every PFX and key in it", 1)[1]


# --- the hybrid configuration ------------------------------------------------------------------------------------


def test_a_new_issuer_asks_for_the_hybrid_configuration_wizard(tmp_path: Path) -> None:
    """dag with a hybrid configuration naming the mail certificate, renewed by an own CA (another issuer): the role
    does not change the hybrid configuration (no Set-HybridConfiguration in the allow-list) and each group's outcome
    (ledger, output) says that the Hybrid Configuration Wizard must be rerun. IMAP and POP: the lab serves neither,
    so their verification is skipped (no port in exchange_pki_lab_ports)."""
    scenario = yaml.safe_load((SCENARIOS / "dag.yml").read_text(encoding="utf-8"))
    scenario["hybrid"] = {"tls_certificate": "mail"}
    (tmp_path / "dag-hybrid.yml").write_text(yaml.safe_dump(scenario), encoding="utf-8")
    with prepared_lab(tmp_path, str(tmp_path / "dag-hybrid.yml")) as (lab, work):
        hybrid_before = lab.dump()["organization"]["hybrid"]
        options = own_ca(tmp_path)
        run = renew(lab, work, "-e", json.dumps({"renewal_ca_path": "", "renewal_policy": {
            "group_concurrency": 2, "backends": [{"match": {}, "backend": "ownca", "options": options}]}}))

        assert run.returncode == 0, run.stdout + run.stderr
        done = outcomes(work)
        new = done[0]["after"]["thumbprint"]
        ports = lab.endpoints()["servers"]
        assert all(served_thumbprint(ports[server]["https"]) == new for server in MEMBERS)
        assert lab.dump()["organization"]["hybrid"] == hybrid_before  # untouched
        # The old certificate stays where the hybrid configuration still names it (certificate_remove refuses).
        assert {c["thumbprint"] for certs in mail_certificates(lab).values() for c in certs} == {
            new, *done[0]["before"]["thumbprints"]}
        assert all("hybrid 'Hybrid Configuration'" in kept for r in done for kept in r["after"]["kept"])
        assert "Set-HybridConfiguration" not in {m["operation"] for m in lab.mutations()}
        assert sorted(r["after"]["group"] for r in done) == ["DAG1", "ex4"]
        for record in done:
            (note,) = record["after"]["hybrid_wizard"]
            assert "rerun the Hybrid Configuration Wizard" in note and "Contoso Own Test CA" in note
        assert "rerun the Hybrid Configuration Wizard" in run.stdout
        assert "Verify the new certificate over IMAP and POP" in run.stdout  # the task ran, and skipped:
        assert "failed: [" not in run.stdout.split("Verify the new certificate over IMAP and POP", 1)[1].split(
            "TASK", 1)[0]


def own_ca(directory: Path) -> dict[str, Any]:
    """A CA on the controller, another issuer than the lab's AD CS (the ownca backend's options)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Contoso Own Test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    (directory / "ca.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return {"ca_cert_path": str(directory / "ca.crt"), "ca_key_path": str(directory / "ca.key"), "validity_days": 90}
