# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each issuing backend of the renewal role issues for real against the `dag` lab, without the rollout.

A tiny playbook on the controller includes ``exchange.pki.renewal`` with ``tasks_from: issue_<backend>`` and a
hand-built ``renewal_item`` shaped like an item of exchange.pki.renewal_plan's result (contract of issue 8, section 2),
and captures the fact ``renewal_issued``. The checks read what was really issued: the PFX loads with the run's
password (or the certificate and key files match), its names are the item's, its issuer is the CA, and the lab's
dump shows what happened on the servers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.plugin_utils import _pfx

from .conftest import Lab, PlaybookRun, run_playbook, start_lab
from .pebble import Pebble, requires_pebble, start_pebble

PFX_PASSWORD = "Run-pfx-Pa55-2027"  # noqa: S105 - the test's own secret
SUBJECT = "CN=mail.contoso.lab"
NAMES = ["mail.contoso.lab", "autodiscover.contoso.lab"]

ISSUE = """\
- name: Issue
  ansible.builtin.include_role:
    name: exchange.pki.renewal
    tasks_from: issue_{backend}
- name: Collect
  ansible.builtin.set_fact:
    result: "{{{{ renewal_issued }}}}"
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    started = start_lab(tmp_path_factory.mktemp("lab-backends"), "--scenario", "dag")
    try:
        yield started
    finally:
        started.control("stop")


def identity(subject: str, names: list[str]) -> str:
    text = subject.lower() + "\n" + "\n".join(sorted(name.lower() for name in names))
    return "id-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_item(backend: str, options: dict[str, Any], *, subject: str = SUBJECT, names: list[str] | None = None,
              pfx_encryption: str = "legacy") -> dict[str, Any]:
    """One `due` item as exchange.pki.renewal_plan returns it (the fields the issue files read, and a few more)."""
    names = names or NAMES
    return {
        "identity": identity(subject, names),
        "status": "due",
        "reasons": ["20 days left (renew_before_days 30)"],
        "certificate": {"subject": subject, "dns_names": names, "issuer": "CN=Contoso Lab Issuing CA"},
        "issue": {"backend": backend, "options": options, "request_server": "ex1", "subject": subject,
                  "dns_names": names, "key_size": 2048, "pfx_encryption": pfx_encryption},
        "servers": [{"host": host, "server": host.upper(), "group": "DAG1"} for host in ("ex1", "ex2", "ex3", "ex4")],
        "rollout": [["ex1"], ["ex2"], ["ex3"], ["ex4"]],
    }


class Issuer:
    """Runs issue_<backend>.yml with one item; keeps the run and state directories of a test."""

    def __init__(self, lab: Lab, tmp_path: Path) -> None:
        self.lab = lab
        self.tmp_path = tmp_path
        self.run_dir = tmp_path / "run"
        self.run_dir.mkdir(mode=0o700)
        self.state_dir = tmp_path / "state"
        self.runs = 0

    def issue(self, item: dict[str, Any], **extra: Any) -> tuple[dict[str, Any], PlaybookRun]:
        self.runs += 1
        work = self.tmp_path / f"play{self.runs}"
        work.mkdir()
        variables = {"renewal_item": item, "renewal_run_dir": str(self.run_dir), "renewal_pfx_password": PFX_PASSWORD,
                     "renewal_state_dir": str(self.state_dir), **extra}
        (work / "vars.json").write_text(json.dumps(variables), encoding="utf-8")
        run = run_playbook(self.lab, ISSUE.format(backend=item["issue"]["backend"]), work, hosts="localhost",
                           extra_args=("-e", f"@{work / 'vars.json'}"))
        assert run.returncode == 0, run.stdout + run.stderr
        return run.result("localhost"), run


def names_of(certificate: x509.Certificate) -> list[str]:
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)


def thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the Windows thumbprint


def my_store(lab: Lab, server: str) -> dict[str, dict[str, Any]]:
    return {c["thumbprint"]: c for c in lab.dump()["servers"][server]["certificates"]["My"]}


def check_pfx(issued: dict[str, Any], issuer: str) -> _pfx.CertificateBundle:
    path = Path(issued["pfx_path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    bundle = _pfx.load_pfx(path.read_bytes(), PFX_PASSWORD)
    assert bundle.thumbprint == issued["thumbprint"]
    assert set(names_of(bundle.certificate)) >= set(NAMES)
    assert bundle.certificate.subject.rfc4514_string() == SUBJECT
    assert bundle.certificate.issuer.rfc4514_string() == issuer
    return bundle


def check_certificate_and_key(issued: dict[str, Any], issuer: x509.Name) -> x509.Certificate:
    bundle = _pfx.load_certificates(Path(issued["certificate_path"]).read_bytes())
    key = serialization.load_pem_private_key(Path(issued["private_key_path"]).read_bytes(), None)
    assert stat.S_IMODE(os.stat(issued["private_key_path"]).st_mode) == 0o600
    assert _pfx.key_matches(bundle.certificate, key)
    assert bundle.thumbprint == issued["thumbprint"]
    assert bundle.certificate.issuer == issuer
    assert set(names_of(bundle.certificate)) >= set(NAMES)
    assert bundle.certificate.subject.rfc4514_string() == SUBJECT
    assert issued["pfx_path"] is None and issued["completed_on"] is None
    return bundle.certificate


# --- adcs -----------------------------------------------------------------------------------------


def test_adcs_issues_completes_on_the_request_server_and_exports_a_legacy_pfx(lab: Lab, tmp_path: Path) -> None:
    ca = lab.dump()["organization"]["ca"]
    issued, _run = Issuer(lab, tmp_path).issue(plan_item("adcs", {"ca_config": ca["config"], "template": "WebServer"}))

    assert issued["status"] == "issued", issued
    assert issued["completed_on"] == "ex1"
    check_pfx(issued, "CN=Contoso Lab Issuing CA")
    assert _pfx.pfx_encryption(Path(issued["pfx_path"]).read_bytes()) == "legacy"  # the plan's pfx_encryption
    assert my_store(lab, "ex1")[issued["thumbprint"]]["has_private_key"] is True
    assert lab.dump()["servers"]["ex1"]["certificates"]["REQUEST"] == []


def test_adcs_pending_then_approved_on_the_next_run(lab: Lab, tmp_path: Path) -> None:
    ca = lab.dump()["organization"]["ca"]
    names = ["owa.contoso.lab"]
    item = plan_item("adcs", {"ca_config": ca["config"], "template": "ExchangeManual"}, subject="CN=owa.contoso.lab",
                     names=names)
    issuer = Issuer(lab, tmp_path)
    first, _run = issuer.issue(item)
    assert first["status"] == "pending", first
    assert first["thumbprint"] is None and first["pfx_path"] is None
    (request,) = [r for r in lab.dump()["organization"]["ca"]["requests"] if r["status"] == "Pending"]
    assert first["request_id"] == request["id"] and "waits for approval" in first["message"]

    again, _run = issuer.issue(item)  # still pending: nothing submitted twice
    assert again["status"] == "pending" and again["request_id"] == request["id"]
    assert len(lab.dump()["organization"]["ca"]["requests"]) == len(ca["requests"]) + 1

    lab.control("ca", "approve", str(request["id"]))
    second, _run = issuer.issue(item)
    assert second["status"] == "issued", second
    bundle = _pfx.load_pfx(Path(second["pfx_path"]).read_bytes(), PFX_PASSWORD)
    assert bundle.thumbprint == second["thumbprint"] and names_of(bundle.certificate) == names
    assert bundle.certificate.issuer.rfc4514_string() == "CN=Contoso Lab Issuing CA"
    assert my_store(lab, "ex1")[second["thumbprint"]]["has_private_key"] is True


def test_adcs_denied_is_failed_with_the_reason(lab: Lab, tmp_path: Path) -> None:
    ca = lab.dump()["organization"]["ca"]
    item = plan_item("adcs", {"ca_config": ca["config"], "template": "ExchangeManual"},
                     subject="CN=denied.contoso.lab", names=["denied.contoso.lab"])
    issuer = Issuer(lab, tmp_path)
    first, _run = issuer.issue(item)
    assert first["status"] == "pending"
    lab.control("ca", "deny", str(first["request_id"]))
    denied, _run = issuer.issue(item)
    assert denied["status"] == "failed" and "denied" in denied["message"].lower(), denied


# --- ownca ----------------------------------------------------------------------------------------


@pytest.fixture
def own_ca(tmp_path: Path) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Contoso"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Contoso Own Test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                key_cert_sign=True, crl_sign=True, encipher_only=False,
                                                decipher_only=False), critical=True)
                   .sign(key, hashes.SHA256()))
    directory = tmp_path / "ca"
    directory.mkdir()
    password = "Own-CA-key-pass"  # noqa: S105 - the test's own secret
    (directory / "ca.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "ca.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.BestAvailableEncryption(password.encode())))
    return {"certificate": certificate, "key": key,
            "options": {"ca_cert_path": str(directory / "ca.crt"), "ca_key_path": str(directory / "ca.key"),
                        "ca_key_password": password, "validity_days": 90}}


def test_ownca_issues_a_certificate_and_key_on_the_controller(lab: Lab, tmp_path: Path, own_ca) -> None:
    before = lab.mutations()
    issued, run = Issuer(lab, tmp_path).issue(plan_item("ownca", own_ca["options"]))
    assert issued["status"] == "issued", issued
    certificate = check_certificate_and_key(issued, own_ca["certificate"].subject)
    assert issued["certificate_path"].startswith(str(tmp_path / "run"))
    assert issued["private_key_path"].startswith(str(tmp_path / "run"))
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(days=89) < lifetime < datetime.timedelta(days=91)
    certificate.verify_directly_issued_by(own_ca["certificate"])
    assert lab.mutations() == before  # nothing on the servers: the rollout imports it
    assert own_ca["options"]["ca_key_password"] not in run.stdout + json.dumps(issued)


def test_ownca_with_a_wrong_ca_key_password_is_failed(lab: Lab, tmp_path: Path, own_ca) -> None:
    issued, run = Issuer(lab, tmp_path).issue(plan_item("ownca", {**own_ca["options"], "ca_key_password": "wrong"}))
    assert issued["status"] == "failed" and issued["thumbprint"] is None, issued
    assert "Sign the CSR" in issued["message"]


# --- manual ---------------------------------------------------------------------------------------


def test_manual_waits_for_the_signed_certificate_then_issues(lab: Lab, tmp_path: Path, own_ca) -> None:
    drop = tmp_path / "drop"
    item = plan_item("manual", {"directory": str(drop)})
    issuer = Issuer(lab, tmp_path)
    first, _run = issuer.issue(item)
    assert first["status"] == "waiting", first
    csr_path = drop / f"{item['identity']}.csr"
    assert first["csr_path"] == str(csr_path) and csr_path.exists()
    assert item["identity"] in (drop / "README.txt").read_text()
    assert not list(drop.glob("*.key"))  # the key is kept in the state directory, not in the drop directory
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr.is_signature_valid and set(names_of(csr)) >= set(NAMES)  # type: ignore[arg-type]

    second, _run = issuer.issue(item)  # still waiting: the same key and CSR
    assert second["status"] == "waiting" and csr_path.read_bytes() == csr.public_bytes(serialization.Encoding.PEM)

    # someone has it signed (by the own CA here) and drops it as DER .cer
    now = datetime.datetime.now(datetime.timezone.utc)
    signed = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(own_ca["certificate"].subject)
              .public_key(csr.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=30))
              .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value,
                             critical=False)
              .sign(own_ca["key"], hashes.SHA256()))
    (drop / f"{item['identity']}.cer").write_bytes(signed.public_bytes(serialization.Encoding.DER))
    third, _run = issuer.issue(item)
    assert third["status"] == "issued", third
    assert third["thumbprint"] == thumbprint(signed)
    check_certificate_and_key({**third, "certificate_path": third["certificate_path"]}, own_ca["certificate"].subject)


def test_manual_refuses_a_certificate_for_another_key(lab: Lab, tmp_path: Path, own_ca) -> None:
    drop = tmp_path / "drop"
    item = plan_item("manual", {"directory": str(drop)})
    issuer = Issuer(lab, tmp_path)
    assert issuer.issue(item)[0]["status"] == "waiting"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    wrong = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string(SUBJECT))
             .issuer_name(own_ca["certificate"].subject).public_key(stranger.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now)
             .not_valid_after(now + datetime.timedelta(days=30)).sign(own_ca["key"], hashes.SHA256()))
    (drop / f"{item['identity']}.crt").write_bytes(wrong.public_bytes(serialization.Encoding.PEM))
    refused, _run = issuer.issue(item)
    assert refused["status"] == "failed" and "does not certify the key" in refused["message"], refused


# --- acme (Debian's pebble) -----------------------------------------------------------------------

DNS_TASKS = """\
---
# A DNS provider's API, played by pebble-challtestsrv's management API.
- name: Set or clear the TXT records
  ansible.builtin.uri:
    url: "{{ challtestsrv_url }}/{{ 'set-txt' if renewal_acme_dns_action == 'add' else 'clear-txt' }}"
    method: POST
    body_format: json
    body: "{{ {'host': item.0.key ~ '.', 'value': item.1} }}"
  loop: "{{ renewal_acme_dns_records | dict2items | subelements('value') }}"
  delegate_to: localhost
- name: Log what was done
  ansible.builtin.lineinfile:
    path: "{{ dns_log }}"
    line: >-
      {{ renewal_acme_dns_action }}
      {{ renewal_acme_dns_records | dict2items | map(attribute='key') | sort | join(' ') }}
    create: true
    mode: "0600"
  delegate_to: localhost
"""


@pytest.fixture(scope="module")
def pebble(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """pebble validating http-01 against ex1's plain HTTP endpoint (every name resolves to 127.0.0.1)."""
    with start_pebble(tmp_path_factory.mktemp("pebble"), lab.endpoints()["servers"]["ex1"]["http"]) as started:
        yield started


def acme_options(pebble: Pebble, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"directory": pebble.directory_url, "account_key_path": str(tmp_path / "account.key"),
            "terms_agreed": True, "ca_path": str(pebble.tls_ca_path), **extra}


def acme_mutations(lab: Lab, since: int) -> list[tuple[str, str]]:
    return [(m["server"], m["summary"]["action"]) for m in lab.mutations()[since:]
            if m["operation"] == "host.acme_challenge"]


@requires_pebble
def test_acme_http01_tokens_on_every_members_default_web_site(lab: Lab, tmp_path: Path, pebble: Pebble) -> None:
    before = len(lab.mutations())
    issued, _run = Issuer(lab, tmp_path).issue(plan_item("acme", acme_options(pebble, tmp_path)))
    assert issued["status"] == "issued", (issued, pebble.log()[-3000:])
    (intermediate,) = pebble.intermediates()
    check_certificate_and_key(issued, intermediate.subject)
    chain = _pfx.load_certificates(Path(issued["certificate_path"]).read_bytes())
    assert [member.subject for member in chain.chain] == [intermediate.subject]  # the chain came with it
    chain.certificate.verify_directly_issued_by(intermediate)
    # a token file per name on each member, added then removed; none is left behind
    changes = acme_mutations(lab, before)
    assert sorted(set(changes)) == sorted({(host, action) for host in ("ex1", "ex2", "ex3", "ex4")
                                           for action in ("add", "remove")})
    assert changes.count(("ex1", "add")) == len(NAMES) and changes.count(("ex1", "remove")) == len(NAMES)
    assert all(server["acme_challenges"] == {} for server in lab.dump()["servers"].values())


@requires_pebble
def test_acme_http01_fails_when_the_name_is_not_served_and_cleans_up(lab: Lab, tmp_path: Path, pebble: Pebble) -> None:
    before = len(lab.mutations())
    item = plan_item("acme", acme_options(pebble, tmp_path, http_servers=["ex2"]), subject="CN=owa.contoso.lab",
                     names=["owa.contoso.lab"])  # pebble asks ex1, which has no token
    issued, _run = Issuer(lab, tmp_path).issue(item)
    assert issued["status"] == "failed" and issued["thumbprint"] is None, issued
    assert "Have the CA validate" in issued["message"]
    assert acme_mutations(lab, before) == [("ex2", "add"), ("ex2", "remove")]
    assert lab.dump()["servers"]["ex2"]["acme_challenges"] == {}


@requires_pebble
def test_acme_dns01_through_a_users_task_file(lab: Lab, tmp_path: Path, pebble: Pebble) -> None:
    tasks = tmp_path / "dns.yml"
    tasks.write_text(DNS_TASKS, encoding="utf-8")
    log = tmp_path / "dns.log"
    before = len(lab.mutations())
    item = plan_item("acme", acme_options(pebble, tmp_path, challenge="dns-01", dns_task_file=str(tasks)))
    issued, _run = Issuer(lab, tmp_path).issue(item, challtestsrv_url=pebble.challtestsrv_url, dns_log=str(log))
    assert issued["status"] == "issued", (issued, pebble.log()[-3000:])
    (intermediate,) = pebble.intermediates()
    check_certificate_and_key(issued, intermediate.subject)
    records = " ".join(sorted(f"_acme-challenge.{name}" for name in NAMES))
    assert log.read_text().splitlines() == [f"add {records}", f"remove {records}"]
    assert acme_mutations(lab, before) == []  # no server was touched
