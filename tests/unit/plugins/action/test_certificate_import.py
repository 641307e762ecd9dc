# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the certificate_import action plugin against the in-process lab (tests/lab/model).

A small CA (root + intermediate, made here with cryptography) issues the certificates, so that its
intermediate is not on the lab's servers yet. Expectations are read from the lab's dump and mutation log.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import pathlib
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.action import certificate_import, certificate_request
from ansible_collections.exchange.pki.plugins.plugin_utils import _pfx
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot, server_time
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import failed_result
from tests.unit.plugins.action.lab_host import LabHost

REPO_ROOT = pathlib.Path(__file__).resolve().parents[4]
MODULE_DOC = REPO_ROOT / "plugins" / "modules" / "certificate_import.py"
FRAGMENTS = REPO_ROOT / "plugins" / "doc_fragments"
PASSWORD = "Pfx-Pa55word-ÿ\"'"
Action = certificate_import.ActionModule


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugin reads the clock at NOW."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _issue(subject: x509.Name, public_key: Any, issuer: x509.Name, issuer_key: Any, *, ca: bool,
           names: tuple[str, ...] = (), days: int = 365) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=30))
               .not_valid_after(NOW + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclasses.dataclass
class Ca:
    root: x509.Certificate
    root_key: Any
    intermediate: x509.Certificate
    intermediate_key: Any

    def issue(self, public_key: Any, subject: x509.Name, names: tuple[str, ...] = ("mail.contoso.lab",),
              days: int = 365) -> x509.Certificate:
        return _issue(subject, public_key, self.intermediate.subject, self.intermediate_key, ca=False, names=names,
                      days=days)


@pytest.fixture(scope="module")
def ca() -> Ca:
    root_key, intermediate_key = _key(), _key()
    root = _issue(_name("Fabrikam Test Root"), root_key.public_key(), _name("Fabrikam Test Root"), root_key, ca=True,
                  days=3650)
    intermediate = _issue(_name("Fabrikam Test Issuing CA"), intermediate_key.public_key(), root.subject, root_key,
                          ca=True, days=1825)
    return Ca(root, root_key, intermediate, intermediate_key)


@pytest.fixture
def fleet() -> Fleet:
    return Fleet.from_scenario("dag", now=NOW)


def thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the Windows thumbprint


def pem(*certificates: x509.Certificate) -> str:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates).decode("ascii")


def store(host: LabHost, name: str) -> dict[str, dict[str, Any]]:
    return {entry["thumbprint"]: entry for entry in host.dump()["certificates"][name]}


def pfx(ca: Ca, *, encryption: str = "modern", chain: bool = True, password: str = PASSWORD) -> tuple[bytes, Any]:
    key = _key()
    leaf = ca.issue(key.public_key(), _name("mail.contoso.lab"), ("mail.contoso.lab", "autodiscover.contoso.lab"))
    bundle = _pfx.CertificateBundle(leaf, key, (ca.intermediate,) if chain else (), "pfx")
    return _pfx.build_pfx(bundle, password, encryption=encryption), key


def key_matches_leaf(key: Any, leaf: x509.Certificate) -> bool:
    return _pfx.key_matches(leaf, key)


def request_on(host: LabHost) -> x509.CertificateSigningRequest:
    result = host.run(certificate_request.ActionModule, {"subject": "C=US,O=Contoso,CN=mail.contoso.lab",
                                                         "dns_names": ["autodiscover.contoso.lab"]})
    assert result.get("failed") is not True, result.get("msg")
    return x509.load_pem_x509_csr(result["csr"].encode("ascii"))


# --- completing a pending request -----------------------------------------------------------------


def test_completing_a_request_check_then_apply_then_again(fleet, ca, tmp_path):
    ex1 = LabHost(fleet, "ex1")
    csr = request_on(ex1)
    leaf = ca.issue(csr.public_key(), csr.subject, ("mail.contoso.lab", "autodiscover.contoso.lab"))
    args = {"certificate": pem(leaf, ca.intermediate, ca.root), "ledger": str(tmp_path / "ledger.jsonl")}
    made = len(ex1.mutations())
    (request,) = store(ex1, "REQUEST")

    checked = ex1.run(Action, args, check_mode=True, diff=True)
    assert checked["changed"] is True
    assert len(ex1.mutations()) == made
    assert [step["operation"] for step in checked["plan"]] == ["host.add_certificate", "Import-ExchangeCertificate"]
    assert checked["completed_request"] is True
    assert checked["intermediates_added"] == [thumbprint(ca.intermediate)]
    assert checked["diff"]["before"]["pending_request"] == request
    assert checked["diff"]["after"]["certificate"]["thumbprint"] == thumbprint(leaf)
    assert any("is not in LocalMachine\\Root" in warning for warning in checked["warnings"])

    applied = ex1.run(Action, args)
    assert applied.get("failed") is not True, applied.get("msg")
    assert applied["changed"] is True
    imported = store(ex1, "My")[thumbprint(leaf)]
    assert imported["has_private_key"] is True and imported["exportable"] is True  # as requested
    assert store(ex1, "REQUEST") == {}
    assert thumbprint(ca.intermediate) in store(ex1, "CA")
    assert thumbprint(ca.root) not in store(ex1, "Root")
    assert [m["operation"] for m in ex1.mutations()[made:]] == ["host.add_certificate", "Import-ExchangeCertificate"]
    assert applied["intermediates_added"] == [thumbprint(ca.intermediate)]
    assert applied["chain_warnings"] == []

    again = ex1.run(Action, args, diff=True)
    assert again["changed"] is False and again["plan"] == [] and "diff" not in again
    assert len(ex1.mutations()) == made + 2
    assert len(read_records(tmp_path / "ledger.jsonl")) == 1


def test_a_certificate_for_another_servers_request_is_refused_with_nothing_sent(fleet, ca):
    ex1, ex2 = LabHost(fleet, "ex1"), LabHost(fleet, "ex2")
    csr = request_on(ex1)
    made = len(ex1.mutations())
    leaf = ca.issue(csr.public_key(), csr.subject)

    result = ex2.run(Action, {"certificate": base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()})
    assert result["failed"] is True
    assert "can only be completed on the server that generated it" in result["msg"]
    assert thumbprint(leaf) in result["msg"]
    assert len(ex2.mutations()) == made
    assert [call["module_args"]["operations"][0]["op"] for call in ex2.calls] == ["host.info"]  # the read only


def test_trust_root_adds_the_root_to_the_root_store(fleet, ca):
    ex1 = LabHost(fleet, "ex1")
    csr = request_on(ex1)
    leaf = ca.issue(csr.public_key(), csr.subject)
    result = ex1.run(Action, {"certificate": pem(leaf, ca.intermediate, ca.root), "trust_root": True})

    assert result["root_added"] is True
    assert thumbprint(ca.root) in store(ex1, "Root")
    assert not any("Root" in warning for warning in result.get("warnings", []))


# --- PFX ------------------------------------------------------------------------------------------


def test_an_aes_pfx_is_rebuilt_as_legacy_for_an_exchange_2016_host(fleet, ca):
    ex4 = LabHost(fleet, "ex4")  # Exchange 2016 on Windows Server 2016: the lab refuses AES PFX there
    data, key = pfx(ca, encryption="modern")
    leaf = _pfx.load_pfx(data, PASSWORD).certificate
    result = ex4.run(Action, {"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD,
                              "exportable": True, "friendly_name": "mail 2027"})

    assert result.get("failed") is not True, result.get("msg")
    assert result["pfx_rebuilt_legacy"] is True
    assert any("rebuilt with legacy 3DES/SHA-1" in warning for warning in result["warnings"])
    imported = store(ex4, "My")[thumbprint(leaf)]
    assert (imported["has_private_key"], imported["exportable"], imported["friendly_name"]) == (True, True, "mail 2027")
    assert thumbprint(ca.intermediate) in store(ex4, "CA")
    assert _pfx.pfx_encryption(data) == "modern"  # what the lab would have refused on this host
    assert key_matches_leaf(key, leaf)


def test_an_aes_pfx_is_sent_unchanged_to_a_2019_host_and_a_second_run_changes_nothing(fleet, ca, tmp_path):
    ex1 = LabHost(fleet, "ex1")
    data, _key_ = pfx(ca, encryption="modern")
    path = tmp_path / "mail.pfx"
    path.write_bytes(data)
    args = {"pfx_path": str(path), "pfx_password": PASSWORD}

    result = ex1.run(Action, args)
    assert result["pfx_rebuilt_legacy"] is False
    sent = next(op for call in ex1.calls for op in call["module_args"]["operations"]
                if op["op"] == "Import-ExchangeCertificate")
    assert base64.b64decode(sent["args"]["FileData"]["$bytes"]) == data
    again = ex1.run(Action, args)
    assert again["changed"] is False and again["plan"] == []


def test_missing_intermediates_are_installed_even_when_the_certificate_is_there(fleet, ca):
    ex1 = LabHost(fleet, "ex1")
    key = _key()
    leaf = ca.issue(key.public_key(), _name("mail.contoso.lab"))
    alone = _pfx.build_pfx(_pfx.CertificateBundle(leaf, key, (), "pfx"), PASSWORD, encryption="legacy")
    first = ex1.run(Action, {"pfx_content": base64.b64encode(alone).decode(), "pfx_password": PASSWORD})
    assert first["changed"] is True
    assert first["chain_warnings"] and "has no issuer" in first["chain_warnings"][0]
    assert thumbprint(ca.intermediate) not in store(ex1, "CA")

    with_chain = _pfx.build_pfx(_pfx.CertificateBundle(leaf, key, (ca.intermediate,), "pfx"), PASSWORD,
                                encryption="legacy")
    second = ex1.run(Action, {"pfx_content": base64.b64encode(with_chain).decode(), "pfx_password": PASSWORD})
    assert second["changed"] is True
    assert [step["operation"] for step in second["plan"]] == ["host.add_certificate"]
    assert thumbprint(ca.intermediate) in store(ex1, "CA")


def test_secrets_never_reach_the_result_diff_record_or_ledger(fleet, ca, tmp_path):
    ex1 = LabHost(fleet, "ex1")
    ledger = tmp_path / "ledger.jsonl"
    data, key = pfx(ca)
    content = base64.b64encode(data).decode()
    result = ex1.run(Action, {"pfx_content": content, "pfx_password": PASSWORD, "ledger": str(ledger)}, diff=True)
    assert result["changed"] is True

    shown = json.dumps(result, ensure_ascii=False) + ledger.read_text(encoding="utf-8")
    private = key.private_numbers()
    assert PASSWORD not in shown and json.dumps(PASSWORD)[1:-1] not in shown
    assert content[:64] not in shown and content[-64:] not in shown
    assert str(private.d) not in shown and format(private.d, "x") not in shown.lower()
    assert "********" in json.dumps(result["plan"])  # the password travels only as the batch's secret
    sent = next(call for call in ex1.calls if any(op["op"] == "Import-ExchangeCertificate"
                                                  for op in call["module_args"]["operations"]))
    assert list(sent["module_args"]["secrets"].values()) == [PASSWORD]


# --- validity by the server's clock (host.info UtcNow), not the controller's ---------------------------------


def pfx_args(data: bytes) -> dict[str, Any]:
    return {"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD}


def test_a_certificate_the_servers_clock_sees_expired_is_refused_after_the_read_with_nothing_sent(fleet, ca):
    """The server's clock runs 366 days ahead: the certificate (365 days) has expired there, not on the controller."""
    ex1 = LabHost(fleet, "ex1")
    data, _key_ = pfx(ca)
    moved = fleet.advance_clock(366 * 86400)
    before = len(fleet.dump()["mutations"])
    result = ex1.run(Action, pfx_args(data))
    assert result["failed"] is True, result
    assert "the certificate CN=mail.contoso.lab expired on" in result["msg"]
    assert f"(judged at {moved['now']}); it is not imported. Nothing was changed." in result["msg"]
    assert len(fleet.dump()["mutations"]) == before and len(ex1.calls) == 1  # the read only


def test_an_expired_certificate_is_refused_naming_it(fleet, ca):
    ex1 = LabHost(fleet, "ex1")
    expired_key = _key()
    expired = _issue(_name("old.contoso.lab"), expired_key.public_key(), ca.intermediate.subject, ca.intermediate_key,
                     ca=False, days=-1)
    result = ex1.run(Action, {"certificate": pem(expired, ca.intermediate)})
    assert result["failed"] is True and "the certificate CN=old.contoso.lab expired on" in result["msg"]
    assert fleet.dump()["mutations"] == [] and len(ex1.calls) == 1


@pytest.mark.parametrize("skew", [366, -31], ids=["controller_ahead_expired", "controller_behind_not_yet_valid"])
def test_a_certificate_valid_by_the_servers_clock_is_imported_whatever_the_controllers_clock_says(
        fleet, ca, controller_clock, skew):
    """By the controller's clock the certificate (valid from 30 days ago for 365 days) has expired, or is not valid
    yet; by the server's it is valid: it is imported and the chain has nothing to warn about."""
    ex1 = LabHost(fleet, "ex1")
    data, _key_ = pfx(ca)
    leaf = _pfx.load_pfx(data, PASSWORD).certificate
    controller_clock(datetime.timedelta(days=skew))
    result = ex1.run(Action, pfx_args(data))
    assert result.get("failed") is not True, result.get("msg")
    assert result["chain_warnings"] == []
    assert not any("clock" in warning or "valid" in warning for warning in result.get("warnings", []))
    assert thumbprint(leaf) in store(ex1, "My")


def test_without_the_servers_clock_the_controllers_is_used_and_said():
    warnings: list[str] = []
    assert server_time(ServerSnapshot(), "EX1", warnings, certificate_import.CLOCK_JUDGES) == NOW
    assert warnings == ["the clock of EX1 is unknown (host.info did not answer); whether the certificate and its "
                        "chain are valid was judged by the controller's clock"]


# --- bad input ------------------------------------------------------------------------------------


def _bad_inputs(ca: Ca, tmp_path: pathlib.Path) -> list[tuple[dict[str, Any], str]]:
    data, key = pfx(ca)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    (tmp_path / "dir").mkdir()
    return [
        ({"pfx_content": base64.b64encode(data).decode(), "pfx_password": "not-it"}, "the PFX password is wrong"),
        ({"pfx_content": base64.b64encode(data).decode()}, "the PFX needs a password, and none was given"),
        ({"pfx_content": base64.b64encode(data[:200]).decode(), "pfx_password": PASSWORD}, "truncated or damaged"),
        ({"pfx_content": "not base64 !!", "pfx_password": PASSWORD}, "pfx_content is not valid base64"),
        ({"pfx_content": base64.b64encode(b"\x00" * 64).decode(), "pfx_password": PASSWORD},
         "the data is not a PFX (PKCS#12) file"),
        ({"certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "PEM block 1"),
        ({"certificate": pem(ca.intermediate)[:120]}, "has no END line"),
        ({"certificate": "hello"}, "certificate is neither PEM text"),
        ({"certificate": key_pem}, "holds a private key"),
        ({"certificate": pem(ca.intermediate), "pfx_password": PASSWORD}, "pfx_password is only used with pfx_path"),
        ({"certificate": pem(ca.intermediate), "exportable": True}, "exportable applies to a PFX import"),
        ({"certificate": pem(ca.intermediate), "src": "/tmp/x.cer"}, "mutually exclusive"),
        ({}, "one of the following is required"),
        ({"src": str(tmp_path / "missing.cer")}, "cannot be read: No such file or directory"),
        ({"src": str(tmp_path / "dir")}, "is a directory"),
        ({"src": str(tmp_path) + "/a\nb.cer"}, "control characters"),
        ({"pfx_path": str(tmp_path / "big.pfx")}, "is larger than 1048576 bytes"),
        ({"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD, "friendly_name": "m\r\n"},
         "contains the control or invisible character U+000D"),
        ({"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD, "friendly_name": "m\u200e"},
         "U+200E"),
        ({"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD, "friendly_name": "mail\u20282027"},
         "contains the control or invisible character U+2028"),
        ({"src": str(tmp_path) + "/a\x85b.cer"}, "control characters (U+0085)"),
        ({"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD, "friendly_name": "x" * 64},
         "shorter than 64"),
    ]


def test_bad_input_is_refused_naming_the_problem_before_the_host_is_contacted(fleet, ca, tmp_path):
    (tmp_path / "big.pfx").write_bytes(b"\x30" * (1024 * 1024 + 10))
    for args, message in _bad_inputs(ca, tmp_path):
        ex1 = LabHost(fleet, "ex1")
        failure = failed_result(ex1.run(Action, args))
        assert message in failure["msg"], (args, failure["msg"])
        assert PASSWORD not in failure["msg"]
        assert ex1.calls == [], args
    assert fleet.dump()["mutations"] == []


def test_a_copy_without_its_key_blocks_the_import(fleet, ca):
    data, _key_ = pfx(ca)
    leaf = _pfx.load_pfx(data, PASSWORD).certificate
    ex2 = LabHost(fleet, "ex2")
    # a keyless copy: Import-ExchangeCertificate of the bare certificate through the executor
    ex2.fleet.run_module("ex2", "exchange.pki.exchange_batch", {"operations": [{
        "id": "bare", "op": "Import-ExchangeCertificate",
        "args": {"FileData": {"$bytes": base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()}}}],
        "secrets": {}}, check_mode=False, become=False, remote_user="CONTOSO\\ansible")
    made = len(fleet.dump()["mutations"])
    result = ex2.run(Action, {"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD})
    assert result["failed"] is True
    assert "without its private key" in result["msg"]
    assert len(fleet.dump()["mutations"]) == made


# --- documentation --------------------------------------------------------------------------------


def _namespace(path: pathlib.Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # noqa: S102
    return namespace


def test_documented_options_equal_the_argument_spec():
    doc = yaml.safe_load(_namespace(MODULE_DOC)["DOCUMENTATION"])
    options = dict(doc["options"])
    for fragment in doc["extends_documentation_fragment"]:
        source = FRAGMENTS / f"{fragment.split('.')[2]}.py"
        options.update(yaml.safe_load(_namespace(source)["ModuleDocFragment"].DOCUMENTATION)["options"])
    keys = ("type", "required", "default", "choices", "elements")
    spec = {name: {key: option.get(key) for key in keys if option.get(key) not in (None, False)}
            for name, option in Action.ARGUMENT_SPEC.argument_spec.items()}
    documented = {name: {key: option.get(key) for key in keys if option.get(key) not in (None, False)}
                  for name, option in options.items()}
    assert documented == spec


def test_every_result_key_is_documented(fleet, ca):
    ex1 = LabHost(fleet, "ex1")
    data, _key_ = pfx(ca)
    result = ex1.run(Action, {"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD}, diff=True)
    returned = set(yaml.safe_load(_namespace(MODULE_DOC)["RETURN"]))
    assert set(result) - {"invocation"} <= returned


# --- a certificate with its private key on the controller (private_key_path) ------------------------

KEY_PASSWORD = "Key-Pa55word-ÿ\"'"


def _key_file(tmp_path: pathlib.Path, key: Any, password: str | None = None, name: str = "mail.key") -> str:
    protection = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    path = tmp_path / name
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, protection))
    path.chmod(0o600)
    return str(path)


def _sent_import(host: LabHost) -> dict[str, Any]:
    return next(call for call in host.calls if any(op["op"] == "Import-ExchangeCertificate"
                                                   for op in call["module_args"]["operations"]))


@pytest.mark.parametrize(("server", "encryption"), [("ex1", "modern"), ("ex4", "legacy")])
def test_a_certificate_with_a_controller_key_check_then_apply_then_again(fleet, ca, tmp_path, server, encryption):
    host = LabHost(fleet, server)
    key = _key()
    leaf = ca.issue(key.public_key(), _name("mail.contoso.lab"), ("mail.contoso.lab", "autodiscover.contoso.lab"))
    src = tmp_path / "mail.crt"
    src.write_text(pem(leaf, ca.intermediate))
    ledger = tmp_path / "ledger.jsonl"
    args = {"src": str(src), "private_key_path": _key_file(tmp_path, key, KEY_PASSWORD),
            "private_key_password": KEY_PASSWORD, "exportable": True, "friendly_name": "mail 2027",
            "ledger": str(ledger)}

    checked = host.run(Action, args, check_mode=True, diff=True)
    assert checked.get("failed") is not True, checked.get("msg")
    assert checked["changed"] is True and host.mutations() == []
    assert [step["operation"] for step in checked["plan"]] == ["host.add_certificate", "Import-ExchangeCertificate"]
    assert checked["pfx_built"] == encryption and checked["completed_request"] is False

    applied = host.run(Action, args, diff=True)
    assert applied.get("failed") is not True, applied.get("msg")
    assert applied["changed"] is True and applied["thumbprint"] == thumbprint(leaf)
    imported = store(host, "My")[thumbprint(leaf)]
    assert (imported["has_private_key"], imported["exportable"], imported["friendly_name"]) == (True, True, "mail 2027")
    assert thumbprint(ca.intermediate) in store(host, "CA")
    sent = _sent_import(host)
    operation = next(op for op in sent["module_args"]["operations"] if op["op"] == "Import-ExchangeCertificate")
    (one_time,) = sent["module_args"]["secrets"].values()
    built = base64.b64decode(operation["args"]["FileData"]["$bytes"])
    assert _pfx.pfx_encryption(built) == encryption  # the lab refuses AES on ex4 (Windows Server 2016)
    loaded = _pfx.load_pfx(built, one_time)
    assert loaded.thumbprint == thumbprint(leaf) and _pfx.key_matches(leaf, loaded.key)
    assert one_time not in (PASSWORD, KEY_PASSWORD) and len(one_time) >= 32

    shown = json.dumps(applied, ensure_ascii=False) + ledger.read_text(encoding="utf-8")
    private = key.private_numbers()
    assert one_time not in shown and KEY_PASSWORD not in shown and json.dumps(KEY_PASSWORD)[1:-1] not in shown
    assert str(private.d) not in shown and format(private.d, "x") not in shown.lower()
    key_pem = pathlib.Path(args["private_key_path"]).read_text()
    assert all(line not in shown for line in key_pem.splitlines()[1:-1])

    made = len(host.mutations())
    again = host.run(Action, args, diff=True)
    assert again["changed"] is False and again["plan"] == [] and again["pfx_built"] is None
    assert len(host.mutations()) == made
    assert len(read_records(ledger)) == 1


def test_an_unencrypted_der_key_and_pem_text_certificate(fleet, ca, tmp_path):
    ex1 = LabHost(fleet, "ex1")
    key = _key()
    leaf = ca.issue(key.public_key(), _name("mail.contoso.lab"))
    path = tmp_path / "mail.der"
    path.write_bytes(key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    result = ex1.run(Action, {"certificate": pem(leaf, ca.intermediate, ca.root), "private_key_path": str(path)})
    assert result.get("failed") is not True, result.get("msg")
    assert store(ex1, "My")[thumbprint(leaf)]["has_private_key"] is True
    assert store(ex1, "My")[thumbprint(leaf)]["exportable"] is False  # Exchange's default


def test_bad_controller_key_input_is_refused_before_the_host_is_contacted(fleet, ca, tmp_path):
    key, other = _key(), _key()
    leaf = ca.issue(key.public_key(), _name("mail.contoso.lab"))
    src = tmp_path / "mail.crt"
    src.write_text(pem(leaf))
    encrypted = _key_file(tmp_path, key, KEY_PASSWORD, "encrypted.key")
    plain = _key_file(tmp_path, key, None, "plain.key")
    (tmp_path / "cert-as-key.pem").write_text(pem(leaf))
    (tmp_path / "junk.key").write_bytes(b"\x01\x02junk")
    data, _pfx_key = pfx(ca)
    cases = [
        ({"private_key_path": _key_file(tmp_path, other, None, "other.key")}, "does not belong to the certificate"),
        ({"private_key_path": encrypted}, "is encrypted; give private_key_password"),
        ({"private_key_path": encrypted, "private_key_password": "not-the-password"}, "private_key_password is wrong"),
        ({"private_key_path": plain, "private_key_password": KEY_PASSWORD}, "is not encrypted"),
        ({"private_key_path": str(tmp_path / "cert-as-key.pem")}, "holds no PEM private key"),
        ({"private_key_path": str(tmp_path / "junk.key")}, "does not hold a readable private key"),
        ({"private_key_path": str(tmp_path / "missing.key")}, "cannot be read: No such file or directory"),
        ({"private_key_path": str(tmp_path) + "/a\nb.key"}, "control characters"),
        ({"private_key_password": KEY_PASSWORD}, "missing parameter(s) required by 'private_key_password'"),
    ]
    for extra, message in cases:
        ex1 = LabHost(fleet, "ex1")
        failure = failed_result(ex1.run(Action, {"src": str(src), **extra}))
        assert message in failure["msg"], (extra, failure["msg"])
        assert KEY_PASSWORD not in failure["msg"]
        assert ex1.calls == [], extra
    ex1 = LabHost(fleet, "ex1")
    failure = failed_result(ex1.run(Action, {"pfx_content": base64.b64encode(data).decode(), "pfx_password": PASSWORD,
                                             "private_key_path": plain}))
    assert "mutually exclusive" in failure["msg"]
    assert fleet.dump()["mutations"] == []
