# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`ansible-playbook exchange.pki.renew` against the `dag` lab with each issuing backend, and its failure paths.

Each backend renews the shared certificate (due in 20 days) end to end: the same new certificate serves HTTPS on
ex1-ex4 (real TLS), ex4 (Exchange 2016 on Windows Server 2016, which the lab lets import only a legacy PFX) got it
through a legacy PFX (exported by AD CS's request server, or built from the controller-side key), the old
certificate is gone everywhere, and a rerun changes nothing.

- ownca: a CA made here.
- manual: the first run ends waiting with the CSR in the drop directory; the test signs it and drops the
  certificate; the next run completes.
- acme (Debian's pebble, http-01 through host.acme_challenge): the first run fails because ex1 cannot write the
  token file (an injected fault), nothing is bound, renewal_failed names the issue step; once the fault is
  cleared a rerun converges, and that is the acme backend's end-to-end run.
- adcs with the manual-approval template ExchangeManual: the first run ends pending with the request id recorded;
  the CA denies it; the next run fails (renewal_failed, step issue) with nothing bound; the next run makes a new
  request (pending); the CA approves it; the next run completes.
- Verification fails (ex2's HTTPS endpoint, as the controller reaches it, still serves the old certificate after
  the binding: a stale front end; the lab itself always serves what is bound): ex2 is rolled back, DAG1 stops,
  ex4's group goes on; after the front end is fixed a rerun converges.
- stop_on_failure all: Enable-ExchangeCertificate fails on ex2; ex4's group is not touched either; a rerun after
  clearing the fault converges.
After every run every member serves a valid certificate over HTTPS (its old one or the new one, bound in IIS with
its key and the IIS service), never none; the Back End and SMTP still answer (real handshakes and the lab's dump).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records

from .conftest import ANSIBLE_PLAYBOOK, Lab, ansible_env, start_lab
from .pebble import Pebble, requires_pebble, start_pebble
from .test_renewal_role import MAIL, MEMBERS, mail_certificates, outcomes, served, served_thumbprint, thumbprint

NAMES = ["mail.contoso.lab", "autodiscover.contoso.lab"]
IDENTITY = "id-" + hashlib.sha256(
    ("cn=mail.contoso.lab\n" + "\n".join(sorted(NAMES))).encode()).hexdigest()[:12]


# --- the run -----------------------------------------------------------------------------------------------------


class Renewal:
    """One lab, a work directory with the run's variables, and ansible-playbook exchange.pki.renew against it."""

    def __init__(self, lab: Lab, work: Path, backend: dict[str, Any], ca_path: Path, **policy: Any) -> None:
        self.lab, self.work = lab, work
        self.old = self.current()
        self.ports = lab.endpoints()["servers"]
        # The Back End (444) is bound to Exchange's own certificate in the dag scenario: it must not change.
        self.back_end = {server: served_thumbprint(self.ports[server]["back_end"]) for server in MEMBERS}
        self.probe_ports({})
        variables = {
            "renewal_policy": {"backends": [{"match": {}, **backend}], **policy},
            "renewal_ledger": str(work / "ledger.jsonl"),
            "renewal_state_dir": str(work / "state"),
            "renewal_ca_path": str(ca_path),
            "renew_report": False,
        }
        (work / "renewal.yml").write_text(yaml.safe_dump(variables), encoding="utf-8")

    def current(self) -> str:
        (old,) = {c["thumbprint"] for certificates in mail_certificates(self.lab).values() for c in certificates}
        return old

    def probe_ports(self, overrides: dict[str, dict[str, int]]) -> None:
        """The probes use the lab's ports; ``overrides`` replace a host's (a stale front end in front of it)."""
        inventory: dict[str, Any] = {"exchange": {
            "vars": {"renewal_probe_ports": "{{ exchange_pki_lab_ports }}"},
            "hosts": {host: {"renewal_probe_ports": ports} for host, ports in overrides.items()}}}
        (self.work / "probe_ports.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        assert ANSIBLE_PLAYBOOK is not None
        return subprocess.run(
            [ANSIBLE_PLAYBOOK, "-i", str(self.lab.inventory), "-i", str(self.work / "probe_ports.yml"),
             "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{self.work / 'renewal.yml'}",
             "exchange.pki.renew", *extra],
            cwd=self.work, env=ansible_env(), capture_output=True, text=True, check=False, timeout=900,
        )

    def ledger_text(self) -> str:
        path = self.work / "ledger.jsonl"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    # -- what every run must leave ------------------------------------------------------------------------------

    def assert_always_serving(self, allowed: set[str]) -> dict[str, str]:
        """Every member serves one of ``allowed`` (valid, for the mail name, with its key and IIS) over HTTPS."""
        dump = self.lab.dump()
        now = datetime.datetime.now(datetime.timezone.utc)
        serving = {}
        for server in MEMBERS:
            der = served(self.ports[server]["https"])
            certificate = x509.load_der_x509_certificate(der)
            assert certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc, server
            names = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
            assert MAIL in names, (server, names)
            serving[server] = thumbprint(der)
            assert serving[server] in allowed, (server, serving[server], allowed)
            assert served_thumbprint(self.ports[server]["back_end"]) == self.back_end[server], server
            bindings = {b["site"]: b["certificate_hash"] for b in dump["servers"][server]["iis_bindings"]}
            assert bindings["Default Web Site"] == serving[server], (server, bindings)
            held = {c["thumbprint"]: c for c in dump["servers"][server]["certificates"]["My"]}
            assert held[serving[server]]["has_private_key"] and "IIS" in held[serving[server]]["services"]
            assert served(self.ports[server]["smtp"], smtp=True)  # SMTP STARTTLS still answers with a certificate
        return serving

    def assert_renewed(self, run: subprocess.CompletedProcess[str]) -> str:
        """The same new certificate serves everywhere, the old one is gone, each group's outcome is renewal_done."""
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr
        new = self.current()  # exactly one mail certificate is left on every member
        assert new != self.old
        assert set(self.assert_always_serving({new}).values()) == {new}
        for server in MEMBERS:
            assert served_thumbprint(self.ports[server]["https"]) == new
        operations = [(m["operation"], m["server"]) for m in self.lab.mutations()]
        assert ("Import-ExchangeCertificate", "ex4") in operations  # ex4 (2016) imported it: a legacy PFX
        assert ("Remove-ExchangeCertificate", "ex4") in operations
        done = [(r["action"], r["after"]["group"], r["after"]["thumbprint"]) for r in outcomes(self.work)][-2:]
        assert done == [("renewal_done", "DAG1", new), ("renewal_done", "ex4", new)], outcomes(self.work)
        return new

    def assert_rerun_idle(self) -> None:
        mutations, ledger = len(self.lab.mutations()), self.ledger_text()
        run = self.run()
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr
        assert "due 0" in run.stdout
        assert len(self.lab.mutations()) == mutations
        assert self.ledger_text() == ledger

    def failed_record(self) -> dict[str, Any]:
        records = outcomes(self.work)
        assert records and records[-1]["action"] == "renewal_failed", records
        assert records[-1]["result"] == "failed" and records[-1]["message"]
        return records[-1]


def legacy_pfx_built_for_ex4(run: subprocess.CompletedProcess[str]) -> bool:
    """certificate_import warns when it built the PFX from the controller key with legacy encryption (ex4 only)."""
    return "built with legacy 3DES/SHA-1 encryption" in run.stdout + run.stderr


# --- CAs made here -------------------------------------------------------------------------------------------------


class OwnCa:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "Contoso Renewal Test CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.key, hashes.SHA256()))
        self.cert_path, self.key_path = directory / "ca.crt", directory / "ca.key"
        self.password = "Renew-CA-key-pass"  # noqa: S105 - the test's own secret
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        self.key_path.write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self.password.encode())))

    def options(self) -> dict[str, Any]:
        return {"ca_cert_path": str(self.cert_path), "ca_key_path": str(self.key_path),
                "ca_key_password": self.password, "validity_days": 90}

    def sign(self, csr: x509.CertificateSigningRequest) -> x509.Certificate:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(self.certificate.subject)
                .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=60))
                .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                               critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                               critical=False)
                .sign(self.key, hashes.SHA256()))


def ownca_renewal(lab: Lab, tmp_path: Path, **policy: Any) -> Renewal:
    ca = OwnCa(tmp_path / "ca")
    work = tmp_path / "work"
    work.mkdir()
    return Renewal(lab, work, {"backend": "ownca", "options": ca.options()}, ca.cert_path, **policy)


# --- each backend, end to end --------------------------------------------------------------------------------------


def test_ownca_renews_the_dag_end_to_end(fresh_lab: Lab, tmp_path: Path) -> None:
    renewal = ownca_renewal(fresh_lab, tmp_path)

    run = renewal.run()

    new = renewal.assert_renewed(run)
    assert legacy_pfx_built_for_ex4(run)
    issuer = next(c for c in mail_certificates(fresh_lab)["ex1"])["issuer"]
    assert "Contoso Renewal Test CA" in issuer
    assert [m["operation"] for m in fresh_lab.mutations()].count("Import-ExchangeCertificate") == 4  # key from here
    assert next(c for c in mail_certificates(fresh_lab)["ex4"] if c["thumbprint"] == new)["has_private_key"]
    renewal.assert_rerun_idle()


def test_manual_waits_for_the_dropped_certificate_then_renews(fresh_lab: Lab, tmp_path: Path) -> None:
    ca = OwnCa(tmp_path / "ca")
    drop = tmp_path / "drop"
    work = tmp_path / "work"
    work.mkdir()
    renewal = Renewal(fresh_lab, work, {"backend": "manual", "options": {"directory": str(drop)}}, ca.cert_path)

    first = renewal.run()

    assert first.returncode == 0, first.stdout[-6000:] + first.stderr
    assert "waiting" in first.stdout
    csr_path = drop / f"{IDENTITY}.csr"
    assert csr_path.exists() and IDENTITY in (drop / "README.txt").read_text(encoding="utf-8")
    assert fresh_lab.mutations() == []  # nothing on the servers while it waits
    renewal.assert_always_serving({renewal.old})
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    signed = ca.sign(csr)
    (drop / f"{IDENTITY}.crt").write_bytes(signed.public_bytes(serialization.Encoding.PEM)
                                           + ca.certificate.public_bytes(serialization.Encoding.PEM))

    second = renewal.run()

    new = renewal.assert_renewed(second)
    assert new == signed.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the Windows thumbprint
    assert legacy_pfx_built_for_ex4(second)
    renewal.assert_rerun_idle()


@pytest.fixture
def pebble_lab(tmp_path: Path) -> Iterator[tuple[Lab, Pebble]]:
    started = start_lab(tmp_path / "lab", "--scenario", "dag")
    try:
        with start_pebble(tmp_path / "pebble", started.endpoints()["servers"]["ex1"]["http"]) as pebble:
            yield started, pebble
    finally:
        started.control("stop")


@requires_pebble
def test_acme_challenge_fails_then_renews_end_to_end(pebble_lab: tuple[Lab, Pebble], tmp_path: Path) -> None:
    lab, pebble = pebble_lab
    work = tmp_path / "work"
    work.mkdir()
    roots = tmp_path / "pebble-roots.pem"
    roots.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pebble.roots()))
    options = {"directory": pebble.directory_url, "account_key_path": str(tmp_path / "account.key"),
               "terms_agreed": True, "ca_path": str(pebble.tls_ca_path)}
    renewal = Renewal(lab, work, {"backend": "acme", "options": options}, roots)
    # ex1 answers the CA's http-01 fetches; its Default Web Site cannot take the token file.
    lab.control("fault", "--server", "ex1", "--operation", "host.acme_challenge", "--error",
                "Access to the path 'C:\\inetpub\\wwwroot\\.well-known\\acme-challenge' is denied.")

    failed = renewal.run()

    assert failed.returncode != 0
    assert renewal.current() == renewal.old  # nothing new anywhere
    assert {m["operation"] for m in lab.mutations()} <= {"host.acme_challenge"}
    assert renewal.assert_always_serving({renewal.old}) == dict.fromkeys(MEMBERS, renewal.old)
    record = renewal.failed_record()
    assert record["after"]["step"] == "issue" and record["after"]["identity"] == IDENTITY
    assert record["after"]["thumbprint"] is None
    assert all(server["acme_challenges"] == {} for server in lab.dump()["servers"].values())

    lab.control("fault", "--server", "ex1", "--clear")
    # The lab's clock stands still from its start; pebble's certificates begin at the wall clock's now.
    lab.control("clock", "--advance", "15m")
    again = renewal.run("-e", "renewal_force=true")  # the failure's backoff is waited out by force

    new = renewal.assert_renewed(again)
    assert legacy_pfx_built_for_ex4(again)
    (intermediate,) = pebble.intermediates()
    common_name = intermediate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name in next(c for c in mail_certificates(lab)["ex1"] if c["thumbprint"] == new)["issuer"]
    assert all(server["acme_challenges"] == {} for server in lab.dump()["servers"].values())
    renewal.assert_rerun_idle()


def test_adcs_pending_denied_then_a_new_request_approved(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    work = tmp_path / "work"
    work.mkdir()
    ca = lab.dump()["organization"]["ca"]
    renewal = Renewal(lab, work, {"backend": "adcs", "options": {"ca_config": ca["config"],
                                                                 "template": "ExchangeManual"}},
                      lab.state_dir / "ca.pem")

    def pending_request() -> int:
        (request,) = [r for r in lab.dump()["organization"]["ca"]["requests"] if r["status"] == "Pending"]
        return int(request["id"])

    first = renewal.run()

    assert first.returncode == 0, first.stdout[-6000:] + first.stderr
    request_id = pending_request()
    assert f"request {request_id} waits for approval" in first.stdout
    state = (work / "state" / f"{IDENTITY}.adcs.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line).get("request_id") for line in state.splitlines()][-1] == request_id  # recorded
    renewal.assert_always_serving({renewal.old})

    # The CA denies it: the next run fails at the issue step, nothing is bound.
    lab.control("ca", "deny", str(request_id))
    denied = renewal.run()

    assert denied.returncode != 0
    assert renewal.assert_always_serving({renewal.old}) == dict.fromkeys(MEMBERS, renewal.old)
    record = renewal.failed_record()
    assert record["after"]["step"] == "issue" and "denied" in record["message"].lower(), record
    assert "Enable-ExchangeCertificate" not in {m["operation"] for m in lab.mutations()}
    assert lab.dump()["servers"]["ex1"]["certificates"]["REQUEST"] == []  # the denied request is not reused

    # Cleared (a new request is wanted): the next run submits a new one, which the CA approves.
    third = renewal.run("-e", "renewal_force=true")

    assert third.returncode == 0, third.stdout[-6000:] + third.stderr
    second_id = pending_request()
    assert second_id != request_id and f"request {second_id} waits for approval" in third.stdout
    lab.control("ca", "approve", str(second_id))
    fourth = renewal.run("-e", "renewal_force=true")

    renewal.assert_renewed(fourth)
    export = [r for r in read_records(work / "ledger.jsonl") if r.module == "exchange.pki.certificate_export"]
    assert [r.after.get("encryption") for r in export] == ["legacy"], [r.as_dict() for r in export]
    assert lab.dump()["servers"]["ex1"]["certificates"]["REQUEST"] == []  # no request left behind
    renewal.assert_rerun_idle()


# --- failures during the rollout -----------------------------------------------------------------------------------


def test_a_member_serving_the_old_certificate_after_binding_is_rolled_back(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    renewal = ownca_renewal(lab, tmp_path)
    # What the controller reaches as ex2's HTTPS still serves the old certificate after the binding (a stale front
    # end: here ex3's endpoint, which ex2's rollout does not touch).
    renewal.probe_ports({"ex2": {**renewal.ports["ex2"], "https": renewal.ports["ex3"]["https"]}})

    run = renewal.run()

    assert run.returncode != 0
    serving = renewal.assert_always_serving({renewal.old} | {c["thumbprint"] for c in mail_certificates(lab)["ex4"]})
    new = serving["ex4"]
    assert new != renewal.old and serving == {"ex1": new, "ex2": renewal.old, "ex3": renewal.old, "ex4": new}
    assert "ex3" not in {m["server"] for m in lab.mutations()}  # the rest of DAG1 is not touched
    record = next(r for r in outcomes(renewal.work) if r["action"] == "renewal_failed")
    assert record["result"] == "failed" and record["message"]
    assert record["after"]["step"] == "verify" and record["after"]["failed_host"] == "ex2", record
    assert record["after"]["rolled_back"] is True and record["after"]["group"] == "DAG1"
    assert [(r["action"], r["after"]["group"]) for r in outcomes(renewal.work)] == [
        ("renewal_failed", "DAG1"), ("renewal_done", "ex4")]

    renewal.probe_ports({})  # the front end is fixed
    again = renewal.run("-e", "renewal_force=true")

    assert again.returncode == 0, again.stdout[-6000:] + again.stderr
    assert renewal.current() == new
    assert renewal.assert_always_serving({new}) == dict.fromkeys(MEMBERS, new)
    assert outcomes(renewal.work)[-1]["action"] == "renewal_done" and outcomes(renewal.work)[-1]["after"]["group"] \
        == "DAG1"
    renewal.assert_rerun_idle()


def test_stop_on_failure_all_leaves_the_other_groups_untouched(fresh_lab: Lab, tmp_path: Path) -> None:
    lab = fresh_lab
    renewal = ownca_renewal(lab, tmp_path, stop_on_failure="all")
    lab.control("fault", "--server", "ex2", "--operation", "Enable-ExchangeCertificate", "--error",
                "The certificate could not be bound (injected)")

    run = renewal.run()

    assert run.returncode != 0
    touched = {m["server"] for m in lab.mutations()}
    assert not touched & {"ex3", "ex4"}, touched  # DAG1's rest and ex4's group: stopped
    serving = renewal.assert_always_serving({renewal.old} | {c["thumbprint"] for c in mail_certificates(lab)["ex1"]})
    new = serving["ex1"]
    assert new != renewal.old and serving == {"ex1": new, "ex2": renewal.old, "ex3": renewal.old, "ex4": renewal.old}
    record = renewal.failed_record()
    assert record["after"]["step"] == "services" and record["after"]["failed_host"] == "ex2"
    assert record["after"]["rolled_back"] is True
    assert [r["action"] for r in outcomes(renewal.work)] == ["renewal_failed"]  # no outcome for the skipped group

    lab.control("fault", "--server", "ex2", "--clear")
    again = renewal.run("-e", "renewal_force=true")

    assert again.returncode == 0, again.stdout[-6000:] + again.stderr
    assert renewal.current() == new
    assert renewal.assert_always_serving({new}) == dict.fromkeys(MEMBERS, new)
    assert [(r["action"], r["after"]["group"]) for r in outcomes(renewal.work)][-2:] == [
        ("renewal_done", "DAG1"), ("renewal_done", "ex4")]
    renewal.assert_rerun_idle()
