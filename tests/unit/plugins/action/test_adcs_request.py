# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.adcs_request against the in-process lab's AD CS model (tests/lab/pki/_enrolment.py).

What the CA did is read from the lab's dump (its requests) and mutation log (every certreq -submit is one
``host.certreq_submit`` mutation), never assumed: a second run with the same CSR must add no submission.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import pathlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.action import adcs_request
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import LabHost

REPO_ROOT = pathlib.Path(__file__).resolve().parents[4]
MODULE_DOC = REPO_ROOT / "plugins" / "modules" / "adcs_request.py"
FRAGMENTS = REPO_ROOT / "plugins" / "doc_fragments"
ACTION = "exchange.pki.adcs_request"
MANUAL = "ExchangeManual"  # the dag scenario's template that needs a CA administrator's approval


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugin reads the clock at NOW."""


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_csr(key: rsa.RSAPrivateKey, name: str = "mail.contoso.lab") -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


@pytest.fixture
def fleet() -> Fleet:
    return Fleet.from_scenario("dag", now=NOW)


@pytest.fixture
def ex1(fleet: Fleet) -> LabHost:
    return LabHost(fleet, "ex1")


@pytest.fixture
def config(fleet: Fleet) -> str:
    return fleet.dump()["organization"]["ca"]["config"]


@pytest.fixture
def csr_path(tmp_path: pathlib.Path, key: rsa.RSAPrivateKey) -> pathlib.Path:
    path = tmp_path / "mail.csr"
    path.write_text(make_csr(key), encoding="ascii")
    return path


def run(host: LabHost, args: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
    return host.run(adcs_request.ActionModule, dict(args), action=ACTION, **kwargs)


def failure(host: LabHost, args: Mapping[str, Any], **kwargs: Any) -> str:
    """The message of a task that fails, whether the plugin raised AnsibleActionFail or returned failed."""
    try:
        result = run(host, args, **kwargs)
    except AnsibleActionFail as error:
        return error.message
    assert result.get("failed") is True, result
    return result["msg"]


def submissions(fleet: Fleet) -> list[dict[str, Any]]:
    return [m for m in fleet.dump()["mutations"] if m["operation"] == "host.certreq_submit"]


def ca_requests(fleet: Fleet) -> list[dict[str, Any]]:
    return fleet.dump()["organization"]["ca"]["requests"]


def thumbprint_of(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the Windows thumbprint


# --- the documentation is the argument spec ---------------------------------------------------------------


def _doc_block(source: str, name: str) -> Any:
    return yaml.safe_load(source.split(f'{name} = r"""')[1].split('"""')[0])


def _documented_options() -> dict[str, Any]:
    doc = _doc_block(MODULE_DOC.read_text(encoding="utf-8"), "DOCUMENTATION")
    options = dict(doc["options"])
    for fragment in doc["extends_documentation_fragment"]:
        if not fragment.startswith("exchange.pki._attributes"):
            source = (FRAGMENTS / f"{fragment.rsplit('.', 1)[1]}.py").read_text(encoding="utf-8")
            options.update(_doc_block(source, "DOCUMENTATION")["options"])
    return options


def _walk(spec: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(((name, option.get("type", "str"), option.get("default"), option.get("choices"),
                    option.get("elements"), bool(option.get("required"))) for name, option in spec.items()), key=str)


def test_the_documentation_mirrors_the_argument_spec():
    assert _walk(_documented_options()) == _walk(adcs_request.ARGUMENT_SPEC.argument_spec)


def _undocumented(value: Any, documented: Mapping[str, Any], path: str = "") -> Iterator[str]:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, dict):
            for name, sub in item.items():
                if name not in documented:
                    yield f"{path}{name}"
                elif "contains" in documented[name]:
                    yield from _undocumented(sub, documented[name]["contains"], f"{path}{name}.")


def test_return_documents_every_key_of_the_result(ex1, config, csr_path, tmp_path):
    result = run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": MANUAL,
                       "ledger": str(tmp_path / "ledger.jsonl")}, diff=True)  # pending: warnings too
    returned = _doc_block(MODULE_DOC.read_text(encoding="utf-8"), "RETURN")
    assert sorted(set(_undocumented(result, returned))) == []


# --- submit once, then only retrieve ----------------------------------------------------------------------


def test_check_mode_sends_no_submission_and_writes_nothing(fleet, ex1, config, csr_path, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    result = run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer",
                       "certificate_path": str(tmp_path / "mail.pem"), "ledger": str(ledger)},
                 check_mode=True, diff=True)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["status"] is None
    assert ex1.calls == [] and fleet.dump()["mutations"] == [] and ca_requests(fleet) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mail.csr"]  # no state, no certificate, no ledger
    assert result["diff"]["before"]["request_id"] is None
    assert result["diff"]["after"]["status"] == f"submitted to {config}"
    assert [step["operation"] for step in result["plan"]] == ["host.certreq_submit", "host.certificates"]


def test_an_auto_template_issues_in_one_run_with_the_chain(fleet, ex1, config, csr_path, tmp_path):
    certificate_path, chain_path, ledger = tmp_path / "mail.pem", tmp_path / "chain.pem", tmp_path / "ledger.jsonl"
    result = run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer",
                       "certificate_path": str(certificate_path), "chain_path": str(chain_path),
                       "ledger": str(ledger)})
    assert result.get("failed") is not True, result.get("msg")
    (request,) = ca_requests(fleet)
    assert (request["status"], request["template"]) == ("Issued", "WebServer")
    assert result["status"] == "issued" and result["changed"] is True
    assert result["request_id"] == request["id"]
    assert result["thumbprint"] == request["thumbprint"] == thumbprint_of(result["certificate"])
    assert len(ex1.calls) == 1
    stores = ex1.dump()["certificates"]
    trusted = {c["subject"]: c["thumbprint"] for c in stores["CA"] + stores["Root"]}
    expected = [trusted["CN=Contoso Lab Issuing CA"], trusted["CN=Contoso Lab Root CA"]]
    assert [thumbprint_of(pem) for pem in result["chain"]] == expected
    assert certificate_path.read_text() == result["certificate"]
    assert chain_path.read_text() == "".join(result["chain"])
    state = [json.loads(line) for line in pathlib.Path(str(csr_path) + ".adcs.jsonl").read_text().splitlines()]
    assert [(entry["request_id"], entry["status"]) for entry in state] == [(request["id"], "issued")]
    (record,) = read_records(ledger)
    assert (record.action, record.result, record.server) == ("adcs_submit", "changed", config)
    assert record.after == {"csr_sha256": result["csr_sha256"], "request_id": request["id"], "status": "issued"}


def test_a_secret_that_occurs_in_the_certificate_text_leaves_the_returned_pem_whole(ex1, config, csr_path):
    # Every certificate in base64 starts with MII: the result hides the task's secrets, never inside its data.
    result = run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer",
                       "exchange_username": "CONTOSO\\ansible", "exchange_password": "MII"})
    assert result["thumbprint"] == thumbprint_of(result["certificate"])
    assert len(result["chain"]) == 2 and all(thumbprint_of(pem) for pem in result["chain"])


def test_output_names_as_long_as_the_file_system_allows_are_written(fleet, ex1, config, csr_path, tmp_path):
    """A 255-byte name is valid; the file is written through a temporary file whose name must still fit, or the
    certificate the CA just issued would be lost to an error after the submission."""
    certificate_path, chain_path = tmp_path / ("c" * 255), tmp_path / ("é" * 127)
    result = run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer",
                       "certificate_path": str(certificate_path), "chain_path": str(chain_path)})
    assert result.get("failed") is not True, result.get("msg")
    assert certificate_path.read_text() == result["certificate"] and chain_path.read_text() == "".join(result["chain"])


def test_a_state_path_too_long_for_the_file_system_is_refused_before_submitting(fleet, ex1, config, key, tmp_path):
    """The default state_path is csr_path plus ".adcs.jsonl": a CSR file name of 250 bytes is valid, its state
    file's name is not."""
    path = tmp_path / ("r" * 250)
    path.write_text(make_csr(key), encoding="ascii")
    message = failure(ex1, {"csr_path": str(path), "ca_config": config, "template": "WebServer"})
    assert message.startswith("state_path ") and "longer than 255 bytes" in message, message
    assert ex1.calls == [] and ca_requests(fleet) == [] and sorted(tmp_path.iterdir()) == [path]


def test_the_same_csr_is_never_submitted_twice_from_any_host(fleet, ex1, config, csr_path, tmp_path):
    args = {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer",
            "certificate_path": str(tmp_path / "mail.pem")}
    first = run(ex1, args)
    again = run(ex1, args, diff=True)
    elsewhere = run(LabHost(fleet, "ex2"), args)
    checked = run(LabHost(fleet, "ex3"), args, check_mode=True)

    assert len(submissions(fleet)) == 1 and len(ca_requests(fleet)) == 1
    for later in (again, elsewhere, checked):
        assert later["changed"] is False
        assert later["status"] == "issued" and later["thumbprint"] == first["thumbprint"]
        assert [step["operation"] for step in later["plan"]] == ["host.certreq_retrieve", "host.certificates"]
    assert "diff" not in again


def test_a_pending_request_is_not_a_failure_and_is_retrieved_once_approved(fleet, ex1, config, csr_path, tmp_path):
    args = {"csr_path": str(csr_path), "ca_config": config, "template": MANUAL,
            "certificate_path": str(tmp_path / "mail.pem"), "ledger": str(tmp_path / "ledger.jsonl")}
    pending = run(ex1, args)
    assert pending.get("failed") is not True, pending.get("msg")
    assert (pending["status"], pending["changed"]) == ("pending", True)
    (request,) = ca_requests(fleet)
    assert pending["request_id"] == request["id"] and request["status"] == "Pending"
    assert pending["disposition_message"] == request["disposition"]
    assert any(f"request {request['id']} is pending" in warning for warning in pending["warnings"])
    assert not (tmp_path / "mail.pem").exists()

    still = run(ex1, args)
    assert (still["status"], still["changed"]) == ("pending", False)
    assert "change_record" not in still

    fleet.ca_decide(request["id"], approve=True)
    checked = run(ex1, args, check_mode=True)
    assert (checked["status"], checked["changed"]) == ("issued", True)  # the file would be written
    assert not (tmp_path / "mail.pem").exists()

    issued = run(ex1, args)
    assert (issued["status"], issued["changed"]) == ("issued", True)
    assert issued["thumbprint"] == ca_requests(fleet)[0]["thumbprint"]
    assert (tmp_path / "mail.pem").read_text() == issued["certificate"]
    assert len(submissions(fleet)) == 1
    assert [record.action for record in read_records(tmp_path / "ledger.jsonl")] == ["adcs_submit", "adcs_retrieve"]
    state = pathlib.Path(str(csr_path) + ".adcs.jsonl").read_text().splitlines()
    assert [json.loads(line)["status"] for line in state] == ["pending", "issued"]  # no line for "still pending"


def test_request_id_resumes_retrieval_without_a_csr(fleet, ex1, config, csr_path):
    run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": MANUAL})
    request_id = ca_requests(fleet)[0]["id"]
    fleet.ca_decide(request_id, approve=True)
    result = run(LabHost(fleet, "ex2"), {"request_id": request_id, "ca_config": config})
    assert (result["status"], result["changed"]) == ("issued", False)
    assert result["thumbprint"] == ca_requests(fleet)[0]["thumbprint"]
    assert len(submissions(fleet)) == 1


def test_a_denied_request_fails_with_the_disposition_and_is_not_resubmitted(fleet, ex1, config, csr_path):
    args = {"csr_path": str(csr_path), "ca_config": config, "template": MANUAL}
    run(ex1, args)
    fleet.ca_decide(ca_requests(fleet)[0]["id"], approve=False)
    result = run(ex1, args)
    assert result["failed"] is True and result["status"] == "denied"
    assert "denied request" in result["msg"] and ca_requests(fleet)[0]["disposition"] in result["msg"]
    assert len(submissions(fleet)) == 1


def test_a_template_the_ca_does_not_offer_is_denied_at_submission(fleet, ex1, config, csr_path, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = {"csr_path": str(csr_path), "ca_config": config, "template": "NoSuchTemplate", "ledger": str(ledger)}
    result = run(ex1, args)
    (request,) = ca_requests(fleet)
    assert result["failed"] is True and result["changed"] is True  # the CA holds a (denied) request now
    assert request["disposition"] in result["msg"]
    assert run(ex1, args)["failed"] is True
    assert len(submissions(fleet)) == 1
    assert [record.result for record in read_records(ledger)] == ["failed"]


def test_a_ca_that_never_saw_the_request_is_tried_again_next_run(fleet, ex1, config, csr_path):
    wrong = config.replace("ca01", "ca02")
    result = run(ex1, {"csr_path": str(csr_path), "ca_config": wrong, "template": "WebServer"})
    assert result["failed"] is True and result["request_id"] is None
    assert "RPC server is unavailable" in result["msg"] and "double hop" in result["msg"]
    assert "submits it again" in result["msg"]
    assert ca_requests(fleet) == []
    assert run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer"})["status"] == "issued"


def test_access_denied_names_the_double_hop(fleet, ex1, config, csr_path):
    fleet.set_fault("ex1", "host.certreq_submit",
                    error="Certificate Request Processor: Access is denied. 0x80070005 (WIN32: 5 ERROR_ACCESS_DENIED)")
    message = failure(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer"})
    assert "0x80070005" in message and "double hop" in message and "become" in message
    assert ca_requests(fleet) == []


def test_another_ca_for_a_submitted_csr_is_refused(fleet, ex1, config, csr_path):
    run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer"})
    message = failure(ex1, {"csr_path": str(csr_path), "ca_config": "ca09.contoso.lab\\Other CA", "template": "X"})
    assert "already submitted to" in message and "never submitted twice" in message
    assert len(submissions(fleet)) == 1


def test_a_request_id_issued_for_another_key_is_refused(fleet, ex1, config, csr_path, tmp_path):
    other = tmp_path / "other.csr"
    other.write_text(make_csr(rsa.generate_private_key(public_exponent=65537, key_size=2048), "other.contoso.lab"))
    run(ex1, {"csr_path": str(other), "ca_config": config, "template": "WebServer"})
    message = failure(ex1, {"csr_path": str(csr_path), "request_id": ca_requests(fleet)[0]["id"],
                            "ca_config": config})
    assert "issued for another key" in message
    assert pathlib.Path(str(csr_path) + ".adcs.jsonl").read_text() == ""  # the request was not linked to this CSR


def test_concurrent_forks_submit_one_csr_once(fleet, config, csr_path):
    results: list[dict[str, Any]] = []
    args = {"csr_path": str(csr_path), "ca_config": config, "template": MANUAL}

    def fork(server: str) -> None:
        results.append(run(LabHost(fleet, server), args))

    threads = [threading.Thread(target=fork, args=(server,)) for server in ("ex1", "ex2", "ex3", "ex4")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(submissions(fleet)) == 1
    assert sorted(result["changed"] for result in results) == [False, False, False, True]
    assert {result["request_id"] for result in results} == {ca_requests(fleet)[0]["id"]}


def test_a_csr_given_as_text_needs_a_state_path(fleet, ex1, config, key, tmp_path):
    pem = make_csr(key).replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")  # as Windows writes it
    assert "state_path is required" in failure(ex1, {"csr": pem, "ca_config": config, "template": "WebServer"})
    state = tmp_path / "state.jsonl"
    first = run(ex1, {"csr": pem, "ca_config": config, "template": "WebServer", "state_path": str(state)})
    again = run(ex1, {"csr": pem, "ca_config": config, "template": "WebServer", "state_path": str(state)})
    assert first["status"] == again["status"] == "issued" and again["changed"] is False
    assert len(submissions(fleet)) == 1
    assert (state.stat().st_mode & 0o777) == 0o600


# --- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    ({"ca_config": "ca01.contoso.lab"}, "one backslash"),
    ({"ca_config": "ca01\\a\\b"}, "one backslash"),
    ({"ca_config": "ca01.contoso.lab\\CA\r\nX"}, "control characters"),
    ({"ca_config": "ca01.contoso.lab\\CA\x00"}, "control characters"),
    ({"ca_config": "ca01.contoso.lab\\\"CA\""}, "quotes"),
    ({"ca_config": "bad host!\\CA"}, "is not a host name"),
    ({"ca_config": "ca01\\" + "N" * 65}, "1-64 characters"),
    ({"template": "Web\"Server"}, "quotes"),
    ({"template": "Web:Server"}, "certificate template name"),
    ({"template": None}, "template is required"),
    ({"attributes": ["no separator"]}, "is not \"Name:Value\""),
    ({"attributes": ["SAN:dns=a\\ndns=b"]}, "certreq's attribute separator"),
    ({"attributes": ["SAN:dns=a\nCertificateTemplate:Admin"]}, "control characters"),
    ({"attributes": ["CertificateTemplate:User"]}, "disagree"),
    ({"attributes": [f"A{i}:v" for i in range(33)]}, "at most 32"),
    ({"request_id": 0}, "between 1 and 2147483647"),
    ({"request_id": 2**40}, "between 1 and 2147483647"),
    ({"csr_path": "/nonexistent/mail.csr"}, "cannot be read"),
    ({"certificate_path": "/nonexistent/dir/mail.pem"}, "does not exist"),
])
def test_bad_input_is_named_and_nothing_is_sent(fleet, ex1, config, csr_path, args, message):
    options = {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer", **args}
    options = {name: value for name, value in options.items() if value is not None}
    assert message in failure(ex1, options)
    assert ex1.calls == [] and fleet.dump()["mutations"] == []
    assert sorted(path.name for path in csr_path.parent.iterdir()) == ["mail.csr"]  # no state file either


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a valid certificate request"),
    (b"-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all\n-----END CERTIFICATE REQUEST-----\n",
     "not a valid certificate request"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "not a PEM certificate request"),
    (b"\x30\x82\x01\x00garbage", "not a valid certificate request"),
    (b"A" * (64 * 1024 + 1), "larger than 64 KiB"),
])
def test_a_malformed_csr_is_named(fleet, ex1, config, tmp_path, content, message):
    path = tmp_path / "bad.csr"
    path.write_bytes(content)
    assert message in failure(ex1, {"csr_path": str(path), "ca_config": config, "template": "WebServer"})
    assert ex1.calls == []


def test_a_csr_whose_signature_does_not_verify_is_refused(ex1, config, key, tmp_path):
    der = x509.load_pem_x509_csr(make_csr(key).encode()).public_bytes(serialization.Encoding.DER)
    damaged = der[:-10] + bytes(byte ^ 0xFF for byte in der[-10:])  # flip bits of the signature
    path = tmp_path / "damaged.csr"
    path.write_bytes(damaged)
    assert "signature does not verify" in failure(ex1, {"csr_path": str(path), "ca_config": config,
                                                        "template": "WebServer"})
    assert ex1.calls == []


def test_csr_and_csr_path_exclude_each_other(ex1, config, csr_path):
    message = failure(ex1, {"csr": csr_path.read_text(), "csr_path": str(csr_path), "ca_config": config})
    assert "mutually exclusive" in message


def test_the_exchange_session_options_are_accepted_but_never_sent(fleet, ex1, config, csr_path):
    """module_defaults for group/exchange.pki.exchange may set them; certreq opens no Exchange session."""
    result = run(ex1, {"csr_path": str(csr_path), "ca_config": config, "template": "WebServer",
                       "exchange_username": "CONTOSO\\ansible", "exchange_password": "Ex-Lab-2026!"})
    assert result["status"] == "issued"
    sent = json.dumps(ex1.calls)
    assert "exchange_username" not in sent and "Ex-Lab-2026!" not in sent


def test_a_csr_option_that_is_null_is_named_not_a_crash(fleet, ex1, config):
    """csr: "{{ request.csr }}" with a request that has no CSR (check mode) is given but null."""
    message = failure(ex1, {"csr": None, "ca_config": config, "template": "WebServer"})
    assert "csr, csr_path and request_id are all empty" in message
    assert fleet.dump()["mutations"] == []
