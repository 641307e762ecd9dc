# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.certificate_export against the in-process lab (tests/lab/model).

The exported PFX is checked by loading it back with the password and comparing its certificate and chain with
the lab's own stores; check mode, idempotence, the refusals and the secrets are checked against the lab's calls,
its mutation log and the ledger file.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import pathlib
import stat
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from cryptography.hazmat.primitives import serialization

from ansible_collections.exchange.pki.plugins.action import certificate_export
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._pfx import load_pfx, pfx_encryption
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import LabHost

REPO_ROOT = pathlib.Path(__file__).resolve().parents[4]
MODULE_DOC = REPO_ROOT / "plugins" / "modules" / "certificate_export.py"
FRAGMENTS = REPO_ROOT / "plugins" / "doc_fragments"
PASSWORD = "Pfx-pässword \"quoted\" 2027!"
ACTION = "exchange.pki.certificate_export"


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugin reads the clock at NOW."""


@pytest.fixture(scope="module")
def shared_fleet() -> Fleet:
    """Exporting never changes the lab, so one fleet serves the file (building one takes seconds)."""
    return Fleet.from_scenario("dag", now=NOW)


@pytest.fixture
def fleet(shared_fleet: Fleet) -> Iterator[Fleet]:
    yield shared_fleet
    shared_fleet.clear_faults()
    assert shared_fleet.dump()["mutations"] == []


@pytest.fixture
def ex1(fleet: Fleet) -> LabHost:
    return LabHost(fleet, "ex1")


def my_certificate(host: LabHost, subject: str) -> dict[str, Any]:
    return next(c for c in host.dump()["certificates"]["My"] if c["subject"] == subject)


@pytest.fixture
def mail(ex1: LabHost) -> str:
    """The shared, exportable SAN certificate of the dag scenario."""
    certificate = my_certificate(ex1, "CN=mail.contoso.lab")
    assert certificate["exportable"] is True
    return certificate["thumbprint"]


def run(host: LabHost, args: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return host.run(certificate_export.ActionModule, {"password": PASSWORD, **args}, action=ACTION, **kwargs)


def failure(host: LabHost, args: Mapping[str, Any], **kwargs: Any) -> str:
    """The message of a task that fails, whether the plugin raised AnsibleActionFail or returned failed."""
    try:
        result = run(host, args, **kwargs)
    except AnsibleActionFail as error:
        return error.message
    assert result.get("failed") is True, result
    return result["msg"]


def sent_operations(host: LabHost) -> list[str]:
    return [operation["op"] for call in host.calls for operation in call["module_args"]["operations"]]


# --- the documentation is the argument spec ---------------------------------------------------------------


def _doc_block(source: str, name: str) -> Any:
    return yaml.safe_load(source.split(f'{name} = r"""')[1].split('"""')[0])


def _documented_options() -> dict[str, Any]:
    doc = _doc_block(MODULE_DOC.read_text(encoding="utf-8"), "DOCUMENTATION")
    options = dict(doc["options"])
    for fragment in doc["extends_documentation_fragment"]:
        name = fragment.rsplit(".", 1)[1]
        if fragment.startswith("exchange.pki._attributes"):
            continue
        options.update(_doc_block((FRAGMENTS / f"{name}.py").read_text(encoding="utf-8"), "DOCUMENTATION")["options"])
    return options


def _walk(spec: Mapping[str, Any]) -> Iterator[tuple[str, Any, Any, Any, Any, bool]]:
    for name, option in spec.items():
        yield (name, option.get("type", "str"), option.get("default"), option.get("choices"), option.get("elements"),
               bool(option.get("required")))


def test_the_documentation_mirrors_the_argument_spec():
    assert sorted(_walk(_documented_options()), key=str) == \
        sorted(_walk(certificate_export.ARGUMENT_SPEC.argument_spec), key=str)
    assert certificate_export.ARGUMENT_SPEC.argument_spec["password"]["no_log"] is True


def _undocumented(value: Any, documented: Mapping[str, Any], path: str = "") -> Iterator[str]:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            for key, sub in item.items():
                if key not in documented:
                    yield f"{path}{key}"
                elif "contains" in documented[key]:
                    yield from _undocumented(sub, documented[key]["contains"], f"{path}{key}.")


def test_return_documents_every_key_of_the_result(ex1, mail, tmp_path):
    result = run(ex1, {"thumbprint": mail, "dest": str(tmp_path / "a.pfx"), "return_content": True,
                       "ledger": str(tmp_path / "ledger.jsonl")}, diff=True)
    returned = _doc_block(MODULE_DOC.read_text(encoding="utf-8"), "RETURN")
    assert sorted(set(_undocumented(result, returned))) == []


# --- check mode, apply, apply again ---------------------------------------------------------------------


def test_check_mode_reads_predicts_and_exports_nothing(ex1, mail, tmp_path):
    dest, ledger = tmp_path / "mail.pfx", tmp_path / "ledger.jsonl"
    result = run(ex1, {"thumbprint": mail, "dest": str(dest), "ledger": str(ledger)}, check_mode=True, diff=True)

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert "Export-ExchangeCertificate" not in sent_operations(ex1)  # the key never left the server
    assert len(ex1.calls) == 1
    assert ex1.mutations() == []
    assert not dest.exists() and not ledger.exists()
    assert "content" not in result and "change_record" not in result
    assert result["diff"] == {"before": {"dest": str(dest), "thumbprint": None, "encryption": None},
                              "after": {"dest": str(dest), "thumbprint": mail, "encryption": "legacy"}}
    assert [step["operation"] for step in result["plan"]] == ["Export-ExchangeCertificate"]


def test_apply_writes_a_legacy_pfx_0600_with_the_chain_and_records_it(ex1, mail, tmp_path):
    dest, ledger = tmp_path / "mail.pfx", tmp_path / "ledger.jsonl"
    result = run(ex1, {"thumbprint": mail, "dest": str(dest), "ledger": str(ledger)})

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert len(ex1.calls) == 1  # the export and the read travel together
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    data = dest.read_bytes()
    assert pfx_encryption(data) == "legacy" == result["encryption"]
    bundle = load_pfx(data, PASSWORD)
    assert bundle.thumbprint == mail == result["thumbprint"]
    stores = ex1.dump()["certificates"]
    issuing = {c["subject"]: c["thumbprint"] for c in stores["CA"] + stores["Root"]}
    assert result["chain_thumbprints"] == [issuing["CN=Contoso Lab Issuing CA"], issuing["CN=Contoso Lab Root CA"]]
    assert ex1.mutations() == []  # exporting changes nothing on the server
    (record,) = read_records(ledger)
    assert record.as_dict() == result["change_record"]
    assert (record.action, record.result, record.server) == ("export", "changed", "EX1")
    assert record.after == {"dest": str(dest), "thumbprint": mail, "encryption": "legacy"}


def test_apply_again_is_no_change_and_contacts_nobody(ex1, mail, tmp_path):
    dest, ledger = tmp_path / "mail.pfx", tmp_path / "ledger.jsonl"
    first = run(ex1, {"thumbprint": mail, "dest": str(dest), "ledger": str(ledger)})
    written = dest.read_bytes()
    again = run(ex1, {"thumbprint": mail, "dest": str(dest), "ledger": str(ledger)}, diff=True)

    assert again["changed"] is False
    assert again["plan"] == [] and "diff" not in again and "change_record" not in again
    assert again["chain_thumbprints"] == first["chain_thumbprints"]
    assert len(ex1.calls) == 1  # only the first run talked to the host
    assert dest.read_bytes() == written
    assert len(read_records(ledger)) == 1


def test_a_loose_file_mode_is_tightened_as_a_change(ex1, mail, tmp_path):
    dest = tmp_path / "mail.pfx"
    run(ex1, {"thumbprint": mail, "dest": str(dest)})
    dest.chmod(0o644)
    check = run(ex1, {"thumbprint": mail, "dest": str(dest)}, check_mode=True)
    assert check["changed"] is True and stat.S_IMODE(dest.stat().st_mode) == 0o644
    result = run(ex1, {"thumbprint": mail, "dest": str(dest)}, diff=True)
    assert result["changed"] is True
    assert result["diff"]["after"]["mode"] == "0600"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


@pytest.mark.parametrize(("options", "expected"), [
    ({"encryption": "modern"}, "modern"),
    ({"encryption": "legacy", "target_versions": ["SE"]}, "legacy"),
    ({"target_versions": ["2019", "SE", "15.2.1544.4", "Exchange Server 2019 CU14"]}, "modern"),
    ({"target_versions": ["2019", "15.1.2507.6"]}, "legacy"),
    ({"target_versions": ["Exchange Server 2016 CU23"]}, "legacy"),
    ({"target_versions": []}, "legacy"),
    ({}, "legacy"),
])
def test_the_encryption_follows_the_targets(ex1, mail, tmp_path, options, expected):
    dest = tmp_path / "mail.pfx"
    result = run(ex1, {"thumbprint": mail, "dest": str(dest), **options})
    assert result.get("failed") is not True, result.get("msg")
    assert result["encryption"] == expected == pfx_encryption(dest.read_bytes())
    assert load_pfx(dest.read_bytes(), PASSWORD).thumbprint == mail


def test_the_same_certificate_with_another_encryption_is_rewritten_without_force(ex1, mail, tmp_path):
    dest = tmp_path / "mail.pfx"
    run(ex1, {"thumbprint": mail, "dest": str(dest)})
    result = run(ex1, {"thumbprint": mail, "dest": str(dest), "encryption": "modern"}, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == {"dest": str(dest), "thumbprint": mail, "encryption": "legacy"}
    assert pfx_encryption(dest.read_bytes()) == "modern"


def test_another_file_at_dest_needs_force(ex1, mail, tmp_path):
    auth = my_certificate(ex1, "CN=Microsoft Exchange Server Auth Certificate")["thumbprint"]  # exportable
    dest = tmp_path / "mail.pfx"
    run(ex1, {"thumbprint": auth, "dest": str(dest)})
    calls = len(ex1.calls)

    refused = failure(ex1, {"thumbprint": mail, "dest": str(dest)})
    assert f"holds certificate {auth}" in refused and "force: true" in refused
    assert len(ex1.calls) == calls
    assert load_pfx(dest.read_bytes(), PASSWORD).thumbprint == auth

    dest.write_bytes(b"not a pfx")
    assert "does not open" in failure(ex1, {"thumbprint": mail, "dest": str(dest)})

    forced = run(ex1, {"thumbprint": mail, "dest": str(dest), "force": True})
    assert forced["changed"] is True
    assert load_pfx(dest.read_bytes(), PASSWORD).thumbprint == mail


def test_return_content_is_the_pfx_and_writes_nothing(ex1, mail, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    result = run(ex1, {"thumbprint": mail, "return_content": True, "encryption": "modern", "ledger": str(ledger)})
    assert result["changed"] is False
    data = base64.b64decode(result["content"])
    assert load_pfx(data, PASSWORD).thumbprint == mail and pfx_encryption(data) == "modern"
    (record,) = read_records(ledger)  # the key left the server: recorded even though nothing changed
    assert record.result == "unchanged"
    assert list(tmp_path.iterdir()) == [ledger]


def test_a_password_that_occurs_in_the_returned_pfx_text_leaves_the_pfx_whole(ex1, mail):
    # Every PFX in base64 starts with MII: the result hides the task's secrets, never inside the data it returns.
    result = run(ex1, {"thumbprint": mail, "return_content": True, "password": "MII"})
    assert load_pfx(base64.b64decode(result["content"]), "MII").thumbprint == mail


def test_check_mode_with_return_content_exports_nothing(ex1, mail):
    result = run(ex1, {"thumbprint": mail, "return_content": True}, check_mode=True)
    assert result["changed"] is False and "content" not in result
    assert "Export-ExchangeCertificate" not in sent_operations(ex1)


# --- refusals ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check_mode", [True, False])
def test_a_non_exportable_key_fails_naming_the_fix(ex1, tmp_path, check_mode):
    self_signed = my_certificate(ex1, "CN=EX1")
    assert self_signed["exportable"] is False  # exchange-facts: the default self-signed certificate
    dest = tmp_path / "ex1.pfx"
    result = run(ex1, {"thumbprint": self_signed["thumbprint"], "dest": str(dest)}, check_mode=check_mode)
    assert result["failed"] is True
    assert "not exportable" in result["msg"] and "-PrivateKeyExportable $true" in result["msg"]
    assert "re-issue" in result["msg"].lower()
    assert not dest.exists()
    assert ex1.mutations() == []


def test_an_export_the_server_refuses_is_a_recorded_failure(fleet, ex1, mail, tmp_path):
    fleet.set_fault("ex1", "Export-ExchangeCertificate", error="Injected export failure.")
    dest, ledger = tmp_path / "mail.pfx", tmp_path / "ledger.jsonl"
    result = run(ex1, {"thumbprint": mail, "dest": str(dest), "ledger": str(ledger)})
    assert result["failed"] is True and "Injected export failure." in result["msg"]
    assert not dest.exists()
    (record,) = read_records(ledger)
    assert record.result == "failed" and "Injected export failure." in record.message


def test_a_pasted_thumbprint_is_normalised(ex1, mail, tmp_path):
    pasted = "\u200e" + " ".join(mail[i:i + 2].lower() for i in range(0, 40, 2))
    result = run(ex1, {"thumbprint": pasted, "dest": str(tmp_path / "mail.pfx")})
    assert result.get("failed") is not True, result.get("msg")
    assert result["thumbprint"] == mail


@pytest.mark.parametrize(("args", "message"), [
    ({"thumbprint": "zz" * 20}, "is not a hexadecimal digit"),
    ({"thumbprint": "AB" * 19}, "expected 40 hexadecimal digits"),
    ({"thumbprint": "AB" * 10**5}, "expected 40 hexadecimal digits"),
    ({"password": ""}, "password must not be empty"),
    ({"password": "a\x00b"}, "NUL"),
    ({"password": "p" * 1025}, "longer than 1024"),
    ({"dest": None}, "give dest"),
    ({"target_versions": ["2003"]}, "is not an Exchange version"),
    ({"target_versions": ["2016 or 2019"]}, "is not an Exchange version"),
    ({"target_versions": ["15.1\n"]}, "is not an Exchange version"),
    ({"encryption": "aes"}, "encryption"),
])
def test_bad_input_is_named_and_nothing_is_sent(ex1, mail, tmp_path, args, message):
    options = {"thumbprint": mail, "dest": str(tmp_path / "mail.pfx"), **args}
    options = {key: value for key, value in options.items() if value is not None}
    assert message in failure(ex1, options)
    assert ex1.calls == []
    assert not (tmp_path / "mail.pfx").exists()


def test_bad_destinations_are_named(ex1, mail, tmp_path):
    for dest, message in ((tmp_path, "is a directory"), (tmp_path / "missing" / "a.pfx", "does not exist"),
                          (str(tmp_path / "a.pfx") + "\n", "CR or LF")):
        assert message in failure(ex1, {"thumbprint": mail, "dest": str(dest)})
    assert ex1.calls == []


def test_an_unknown_thumbprint_is_named(ex1, tmp_path):
    message = failure(ex1, {"thumbprint": "AB" * 20, "dest": str(tmp_path / "a.pfx")}, check_mode=True)
    assert "no certificate with thumbprint " + "AB" * 20 in message


# --- secrets -------------------------------------------------------------------------------------------------


def test_no_password_or_key_in_result_diff_record_or_ledger(ex1, mail, tmp_path):
    dest, ledger = tmp_path / "mail.pfx", tmp_path / "ledger.jsonl"
    result = run(ex1, {"thumbprint": mail, "dest": str(dest), "ledger": str(ledger)}, diff=True)
    (tmp_path / "taken.pfx").write_bytes(b"something else")
    failed = failure(ex1, {"thumbprint": mail, "dest": str(tmp_path / "taken.pfx"), "ledger": str(ledger)})
    transport = [secret for call in ex1.calls for secret in call["module_args"]["secrets"].values()]
    key = load_pfx(dest.read_bytes(), PASSWORD).key
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    forbidden = [PASSWORD, json.dumps(PASSWORD)[1:-1], *transport, base64.b64encode(key_der).decode()[:40],
                 key_der.hex()[:40]]
    assert transport and PASSWORD not in transport  # the host only ever saw the one-time password
    text = json.dumps([result, failed]) + ledger.read_text(encoding="utf-8")
    for secret in forbidden:
        assert secret not in text
    assert dest.read_bytes().find(key_der) == -1  # the key is encrypted in the file
