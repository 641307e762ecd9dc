# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the certificate_request action plugin against the in-process lab (tests/lab/model).

Server mode is checked against the lab's dump (the REQUEST store) and mutation log; controller mode against the
files it writes. Nothing expected is written in the test that the lab or the files can tell.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import pathlib
import stat
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.action import certificate_request
from ansible_collections.exchange.pki.plugins.plugin_utils import _files
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import failed_result
from tests.unit.plugins.action.lab_host import LabHost

REPO_ROOT = pathlib.Path(__file__).resolve().parents[4]
MODULE_DOC = REPO_ROOT / "plugins" / "modules" / "certificate_request.py"
FRAGMENTS = REPO_ROOT / "plugins" / "doc_fragments"
SUBJECT = "C=US,O=Contoso,CN=mail.contoso.lab"
NAMES = ["autodiscover.contoso.lab", "Mail.Contoso.lab", "bücher.contoso.lab", "mail.contoso.lab"]
WANTED = ["mail.contoso.lab", "autodiscover.contoso.lab", "xn--bcher-kva.contoso.lab"]
Action = certificate_request.ActionModule


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugin reads the clock at NOW."""


@pytest.fixture
def ex1() -> LabHost:
    return LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")


def requests(host: LabHost) -> list[dict[str, Any]]:
    return host.dump()["certificates"]["REQUEST"]


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    return x509.load_pem_x509_csr(pem.encode("ascii"))


def san(csr: x509.CertificateSigningRequest) -> list[str]:
    return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


def spki(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- server mode ----------------------------------------------------------------------------------


def test_check_mode_predicts_a_request_and_sends_nothing_that_changes(ex1):
    result = ex1.run(Action, {"subject": SUBJECT, "dns_names": NAMES}, check_mode=True, diff=True)

    assert result["changed"] is True
    assert ex1.mutations() == []
    assert requests(ex1) == []
    (step,) = result["plan"]
    assert step["operation"] == "New-ExchangeCertificate"
    assert step["arguments"]["GenerateRequest"] is True
    assert step["arguments"]["DomainName"] == WANTED  # CN first, A-labels, duplicates merged
    assert step["arguments"]["KeySize"] == 2048 and step["arguments"]["PrivateKeyExportable"] is True
    assert result["diff"]["before"] == {"pending_request": None}
    assert result["diff"]["after"]["pending_request"]["dns_names"] == WANTED
    assert (result["csr"], result["thumbprint"]) == (None, None)
    assert "change_record" not in result


def test_a_csr_path_the_controller_cannot_write_is_refused_before_the_request_is_made(ex1, tmp_path, monkeypatch):
    """The CSR is written after New-ExchangeCertificate made the pending request: a directory the controller's user
    cannot write would fail the task after the change. root may write anywhere (CI runs as root), so os.access
    answers as it does for an ordinary user in someone else's directory."""
    monkeypatch.setattr(_files.os, "access", lambda path, mode: False)
    message = failed_result(ex1.run(Action, {"subject": SUBJECT, "dns_names": NAMES,
                                             "csr_path": str(tmp_path / "mail.csr")}))["msg"]
    assert message.startswith("csr_path ") and "is not writable by the controller's user" in message, message
    assert ex1.calls == [] and ex1.mutations() == [] and list(tmp_path.iterdir()) == []


def test_apply_makes_one_pending_request_and_returns_its_csr_and_thumbprint(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    csr_file = tmp_path / "mail.csr"
    args = {"subject": SUBJECT, "dns_names": NAMES, "friendly_name": "mail 2027", "ledger": str(ledger),
            "csr_path": str(csr_file)}
    result = ex1.run(Action, args, action="exchange.pki.certificate_request")

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    (pending,) = requests(ex1)
    assert pending["thumbprint"] == result["thumbprint"]
    assert pending["friendly_name"] == "mail 2027"
    assert pending["exportable"] is True
    csr = load_csr(result["csr"])
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=mail.contoso.lab,O=Contoso,C=US"
    assert [a.oid for a in csr.subject] == [NameOID.COUNTRY_NAME, NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME]
    assert san(csr) == WANTED == result["dns_names"]
    assert result["csr_sha256"] == hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert csr_file.read_text(encoding="ascii") == result["csr"]
    (mutation,) = ex1.mutations()
    assert mutation["operation"] == "New-ExchangeCertificate"
    assert mutation["summary"]["request_thumbprint"] == result["thumbprint"]
    (record,) = read_records(ledger)
    assert record.as_dict() == result["change_record"]
    assert (record.server, record.action, record.result) == ("EX1", "certificate_request", "changed")
    assert record.after["pending_request"]["dns_names"] == WANTED


def test_running_again_returns_the_same_pending_request_without_a_change(ex1, tmp_path):
    args = {"subject": SUBJECT, "dns_names": NAMES}
    first = ex1.run(Action, args)
    again = ex1.run(Action, {**args, "dns_names": list(reversed(NAMES))}, diff=True)

    assert again["changed"] is False
    assert again["plan"] == [] and "diff" not in again
    assert again["thumbprint"] == first["thumbprint"]
    assert again["csr"] == first["csr"]  # read back with Export-ExchangeCertificate of the pending request
    assert len(requests(ex1)) == 1
    assert len(ex1.mutations()) == 1
    checked = ex1.run(Action, args, check_mode=True)
    assert checked["changed"] is False and checked["csr"] == first["csr"]


def test_other_names_or_key_size_make_another_request(ex1):
    first = ex1.run(Action, {"subject": SUBJECT, "dns_names": NAMES})
    other = ex1.run(Action, {"subject": SUBJECT, "dns_names": [*NAMES, "owa.contoso.lab"]})
    bigger = ex1.run(Action, {"subject": SUBJECT, "dns_names": NAMES, "key_size": 4096})

    assert other["changed"] is True and bigger["changed"] is True
    assert len({first["thumbprint"], other["thumbprint"], bigger["thumbprint"]}) == 3
    assert {r["thumbprint"] for r in requests(ex1)} == {first["thumbprint"], other["thumbprint"], bigger["thumbprint"]}
    assert load_csr(bigger["csr"]).public_key().key_size == 4096


def test_a_different_exportability_of_the_existing_request_is_a_warning(ex1):
    ex1.run(Action, {"subject": SUBJECT, "dns_names": NAMES})
    again = ex1.run(Action, {"subject": SUBJECT, "dns_names": NAMES, "exportable": False})

    assert again["changed"] is False
    assert any("exportable=true" in warning and "cannot be changed" in warning for warning in again["warnings"])


def test_a_subject_without_country_is_requested_with_a_warning(ex1):
    result = ex1.run(Action, {"subject": "CN=mail.contoso.lab, O=Contoso"})

    assert result["changed"] is True
    assert any("no C=" in warning for warning in result["warnings"])
    assert result["dns_names"] == ["mail.contoso.lab"]


def test_a_quoted_value_with_a_comma_survives(ex1):
    result = ex1.run(Action, {"subject": 'C=US,O="Contoso, Ltd",CN=mail.contoso.lab'})

    assert result.get("failed") is not True, result.get("msg")
    assert load_csr(result["csr"]).subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Contoso, Ltd"


BAD_INPUT = [
    ({"subject": "C=US,O=Contoso"}, "has no CN; it needs exactly one CN"),
    ({"subject": "CN=a.contoso.lab,CN=b.contoso.lab"}, "has 2 CNs"),
    ({"subject": "C=US,,CN=mail.contoso.lab"}, "RDN 2 is empty"),
    ({"subject": "C=US,CN=mail.contoso.lab,"}, "RDN 3 is empty"),
    ({"subject": "C=US\r\nCN=mail.contoso.lab"}, "control or invisible character U+000D at position 5"),
    ({"subject": "C=US,CN=mail.contoso.lab\x00"}, "U+0000"),
    ({"subject": "C=US,CN=mail\u200e.contoso.lab"}, "U+200E"),
    ({"subject": "C=USA,CN=mail.contoso.lab"}, "C must be a two-letter ISO 3166 country code"),
    ({"subject": "C=US,X=1,CN=mail.contoso.lab"}, "has the attribute 'X'"),
    ({"subject": "C=US,CN"}, "is not attribute=value"),
    ({"subject": "C=US,CN=mail.contoso.lab+OU=IT"}, "multi-valued RDNs"),
    ({"subject": 'C=US,O="Contoso,CN=x'}, "a double quote is not closed"),
    ({"subject": "   "}, "subject must not be empty"),
    ({"subject": "C=US,CN=" + "a" * 65}, "CN is 65 characters long; at most 64"),
    ({"subject": "C=US,CN=10.0.0.1"}, "is an IP address"),
    ({"subject": SUBJECT, "dns_names": ["w*.contoso.lab"]}, "dns_names[0]"),
    ({"subject": SUBJECT, "dns_names": ["*.lab"]}, "a wildcard must stand for one label"),
    ({"subject": SUBJECT, "dns_names": ["mail.*.contoso.lab"]}, "dns_names[0]"),
    ({"subject": SUBJECT, "dns_names": ["owa.contoso.lab", ""]}, "dns_names[1] is empty"),
    ({"subject": SUBJECT, "dns_names": ["owa..contoso.lab"]}, "empty label"),
    ({"subject": SUBJECT, "dns_names": ["owa.contoso.lab\n"]}, "U+000A"),
    ({"subject": SUBJECT, "dns_names": ["192.0.2.1"]}, "is an IP address"),
    ({"subject": SUBJECT, "dns_names": ["owa/contoso.lab"]}, "character '/'"),
    ({"subject": SUBJECT, "dns_names": [f"n{i}.contoso.lab" for i in range(100)]}, "101 DNS names requested"),
    ({"subject": SUBJECT, "friendly_name": "x" * 64}, "shorter than 64"),
    ({"subject": SUBJECT, "friendly_name": "mail\r\n2027"}, "friendly_name 'mail\\r\\n2027' contains"),
    ({"subject": SUBJECT, "key_size": 1024}, "value of key_size must be one of: 2048, 3072, 4096"),
    ({"subject": SUBJECT, "key_size": 10**30}, "value of key_size must be one of"),
    ({"subject": SUBJECT, "key_size": 3072}, "New-ExchangeCertificate accepts -KeySize 2048 or 4096"),
    ({"subject": SUBJECT, "private_key_path": "/tmp/k.pem"}, "only used with key_location: controller"),
    ({"subject": SUBJECT, "force": True}, "force is only used with key_location: controller"),
    ({"subject": SUBJECT, "key_location": "controller"},
     "key_location is controller but all of the following are missing: private_key_path"),
    ({"subject": SUBJECT, "key_location": "laptop"}, "value of key_location must be one of: server, controller"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[message for _args, message in BAD_INPUT])
def test_bad_input_is_refused_naming_the_problem_before_anything_is_sent(ex1, args, message):
    failure = failed_result(ex1.run(Action, args))
    assert message in failure["msg"]
    assert ex1.calls == []
    assert ex1.mutations() == []


def test_a_failing_cmdlet_fails_the_task_and_is_recorded(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ex1.fleet.set_fault("ex1", "New-ExchangeCertificate", error="The key container could not be created.")
    result = ex1.run(Action, {"subject": SUBJECT, "ledger": str(ledger)})

    assert result["failed"] is True
    assert "The key container could not be created." in result["msg"]
    assert requests(ex1) == []
    (record,) = read_records(ledger)
    assert record.result == "failed"


# --- controller mode ------------------------------------------------------------------------------


def controller_args(tmp_path: pathlib.Path, **extra: Any) -> dict[str, Any]:
    return {"subject": SUBJECT, "dns_names": NAMES, "key_location": "controller",
            "private_key_path": str(tmp_path / "mail.key"), "csr_path": str(tmp_path / "mail.csr"), **extra}


def test_a_secret_that_occurs_in_the_csr_text_leaves_the_returned_csr_whole(ex1, tmp_path):
    # A CSR in base64 starts with MII: the result hides the task's secrets, never inside the data it returns.
    result = ex1.run(Action, controller_args(tmp_path, exchange_username="CONTOSO\\ansible", exchange_password="MII"))
    assert result["csr"] == (tmp_path / "mail.csr").read_text(encoding="ascii")
    assert san(load_csr(result["csr"])) == WANTED


def test_controller_check_mode_writes_nothing_and_contacts_no_host(ex1, tmp_path):
    result = ex1.run(Action, controller_args(tmp_path), check_mode=True, diff=True)

    assert result["changed"] is True
    assert [step["operation"] for step in result["plan"]] == ["controller.write_private_key", "controller.write_csr"]
    assert result["diff"]["before"]["key_file"]["key"] == "absent"
    assert list(tmp_path.iterdir()) == []
    assert ex1.calls == []


def test_controller_writes_a_0600_key_and_its_csr_then_reuses_it(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = controller_args(tmp_path, key_size=3072, ledger=str(ledger))
    result = ex1.run(Action, args, diff=True)

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["thumbprint"] is None
    key_path = tmp_path / "mail.key"
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    csr = load_csr(result["csr"])
    assert key.key_size == 3072
    assert spki(csr.public_key()) == spki(key.public_key())
    assert san(csr) == WANTED
    assert (tmp_path / "mail.csr").read_text(encoding="ascii") == result["csr"]
    assert result["private_key_path"] == str(key_path)
    assert ex1.calls == []
    (record,) = read_records(ledger)
    assert (record.server, record.result) == ("controller", "changed")

    # the key never leaves its file: not in the result, the diff, the change record or the ledger
    shown = json.dumps(result) + ledger.read_text(encoding="utf-8")
    private = key.private_numbers()
    exponent = private.d.to_bytes((private.d.bit_length() + 7) // 8, "big")
    assert "PRIVATE KEY" not in shown
    assert key_path.read_text(encoding="ascii") not in shown
    for secret in (private.d, private.p, private.q):
        assert str(secret) not in shown and format(secret, "x") not in shown.lower()
    assert base64.b64encode(exponent[:30]).decode()[:32] not in shown

    again = ex1.run(Action, args)
    assert again["changed"] is False and again["plan"] == []
    assert again["csr"] == result["csr"]  # the key is reused, the CSR made again is the same
    assert len(read_records(ledger)) == 1


def test_controller_refuses_a_key_file_that_does_not_fit_unless_forced(ex1, tmp_path):
    ex1.run(Action, controller_args(tmp_path))
    key_path = tmp_path / "mail.key"
    before = key_path.read_bytes()

    failed_result(ex1.run(Action, controller_args(tmp_path, key_size=4096)),
                  "holds an RSA 2048 key; key_size asks for 4096; it is left alone")
    assert key_path.read_bytes() == before

    key_path.write_text("not a key\n", encoding="ascii")
    failed_result(ex1.run(Action, controller_args(tmp_path)), "holds no PEM private key")

    forced = ex1.run(Action, controller_args(tmp_path, key_size=4096, force=True))
    assert forced["changed"] is True
    assert serialization.load_pem_private_key(key_path.read_bytes(), password=None).key_size == 4096
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600


def test_controller_refuses_a_symbolic_link_and_a_missing_directory(ex1, tmp_path):
    (tmp_path / "target.key").write_text("x", encoding="ascii")
    (tmp_path / "link.key").symlink_to(tmp_path / "target.key")
    failed_result(ex1.run(Action, controller_args(tmp_path, private_key_path=str(tmp_path / "link.key"))),
                  "is a symbolic link")
    failed_result(ex1.run(Action, controller_args(tmp_path, private_key_path=str(tmp_path / "nowhere" / "k.key"))),
                  "does not exist")


def test_controller_mode_warns_about_server_only_options(ex1, tmp_path):
    result = ex1.run(Action, controller_args(tmp_path, friendly_name="mail", exportable=False))

    assert any(warning.startswith("friendly_name has no effect") for warning in result["warnings"])
    assert any(warning.startswith("exportable has no effect") for warning in result["warnings"])


# --- documentation --------------------------------------------------------------------------------


def _doc(name: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(MODULE_DOC.read_text(encoding="utf-8"), str(MODULE_DOC), "exec"), namespace)  # noqa: S102
    return yaml.safe_load(namespace[name])


def _documented_options() -> dict[str, Any]:
    doc = _doc("DOCUMENTATION")
    options = dict(doc["options"])
    for fragment in doc["extends_documentation_fragment"]:
        namespace: dict[str, Any] = {}
        source = FRAGMENTS / f"{fragment.split('.')[2]}.py"
        exec(compile(source.read_text(encoding="utf-8"), str(source), "exec"), namespace)  # noqa: S102
        options.update(yaml.safe_load(namespace["ModuleDocFragment"].DOCUMENTATION)["options"])
    return options


def test_documented_options_equal_the_argument_spec():
    keys = ("type", "required", "default", "choices", "elements", "no_log")
    spec = {name: {key: option.get(key) for key in keys if option.get(key) not in (None, False)}
            for name, option in Action.ARGUMENT_SPEC.argument_spec.items()}
    documented = {name: {key: option.get(key) for key in keys if option.get(key) not in (None, False)}
                  for name, option in _documented_options().items()}
    for options in (spec, documented):
        for option in options.values():
            option.pop("no_log", None)
    assert documented == spec


def test_every_result_key_is_documented(ex1, tmp_path):
    returned = set(_doc("RETURN"))
    server = ex1.run(Action, {"subject": "CN=mail.contoso.lab", "csr_path": str(tmp_path / "r.csr")}, diff=True)
    controller = ex1.run(Action, controller_args(tmp_path), diff=True)
    assert (set(server) | set(controller)) - {"invocation"} <= returned
