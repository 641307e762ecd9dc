# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ledger's webhook sink (``ledger_webhook``) through its two writers, ChangingAction.record and ledger_record.

A local HTTPS receiver (tests/unit/plugins/plugin_utils/alert_sinks.py, self-signed for 127.0.0.1, trusted
through ``ca_path``) records every POST. Each record goes to the file first, then to the webhook; a webhook
failure fails the task, naming the record and saying it is in the file.
"""

from __future__ import annotations

import base64
import datetime
import json
import pathlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ansible_collections.exchange.pki.plugins.action import certificate_import, certificate_services, ledger_record
from ansible_collections.exchange.pki.plugins.plugin_utils import _pfx
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import failed_result
from tests.unit.plugins.action.lab_host import LabHost
from tests.unit.plugins.action.ledger_lifecycle import _certificate, _name, thumbprint, write_lifecycle
from tests.unit.plugins.plugin_utils import alert_sinks
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink

PASSWORD = "Pfx-Webhook-S3cret-\u00ff\"'"  # noqa: S105 - the test's own secret, grepped for below
TOKEN = "Splunk 5b1c-hec-token-0042"  # noqa: S105 - a header value, never shown


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugins read the clock at NOW."""


def sink_ca() -> str:
    """The receiver's self-signed certificate, as the PEM file ``ca_path`` names (made by the first TLS sink)."""
    return str(pathlib.Path(alert_sinks._CERTIFICATE_DIR.name, "sink.pem"))  # noqa: SLF001 - the test's own sink


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"url": url, "headers": {"Authorization": TOKEN}, "timeout": 5, "ca_path": sink_ca(), **extra}


def renewal_done(ledger: pathlib.Path, hook: dict[str, Any] | None = None) -> dict[str, Any]:
    args = {"ledger": str(ledger), "action": "renewal_done", "server": "EX2",
            "after": {"identity": "id-3f9a1b2c4d5e", "thumbprint": "CD" * 20}, "run_id": "plan-1"}
    if hook is not None:
        args["ledger_webhook"] = hook
    return LabHost(Fleet.from_scenario("dag", now=NOW), "ex1").run(
        ledger_record.ActionModule, args, task_vars={"inventory_hostname": "localhost"},
        action="exchange.pki.ledger_record")


def test_every_writer_sends_each_record_after_the_file_with_no_secret(tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.jsonl"
    with http_sink(tls=True) as sink:
        life = write_lifecycle(ledger, monkeypatch, ledger_webhook=webhook(sink.url))
        stored = [json.loads(line) for line in ledger.read_text(encoding="utf-8").splitlines()]
        assert [post.body for post in sink.received] == stored  # every record, in order, exactly as the file
        modules = {record["module"] for record in stored}
        assert len(stored) == 5 and modules >= {"exchange.pki.ledger_record", "exchange.pki.certificate_services"}
        assert all(post.path == "/hooks/T000/SECRET-TOKEN" for post in sink.received)
        assert all(post.headers["Authorization"] == TOKEN and post.headers["Content-Type"] == "application/json"
                   for post in sink.received)
        shown = json.dumps(life.results)
        assert TOKEN not in shown and "SECRET-TOKEN" not in shown


def test_the_pfx_password_never_reaches_the_webhook(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate(_name("Fabrikam Webhook CA"), ca_key.public_key(), _name("Fabrikam Webhook CA"), ca_key, ca=True)
    leaf = _certificate(_name("mail.contoso.lab"), key.public_key(), ca.subject, ca_key, ca=False,
                        names=("mail.contoso.lab",))
    data = _pfx.build_pfx(_pfx.CertificateBundle(leaf, key, (ca,), "pfx"), PASSWORD, encryption="modern")
    content = base64.b64encode(data).decode()
    ex1 = LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")
    with http_sink(tls=True) as sink:
        result = ex1.run(certificate_import.ActionModule, {
            "pfx_content": content, "pfx_password": PASSWORD, "ledger": str(ledger),
            "ledger_webhook": webhook(sink.url)}, action="exchange.pki.certificate_import")
    assert result.get("failed") is not True, result.get("msg")
    (post,) = sink.received
    assert post.body == result["change_record"] and post.body["after"]["certificate"]["thumbprint"] == thumbprint(leaf)
    body = json.dumps(post.body, ensure_ascii=False) + json.dumps(post.body) + json.dumps(post.headers)
    private = key.private_numbers()
    assert PASSWORD not in body and json.dumps(PASSWORD)[1:-1] not in body
    assert json.dumps(PASSWORD, ensure_ascii=True)[1:-1] not in body
    assert content[:64] not in body and content[-64:] not in body
    assert format(private.d, "x") not in body.lower() and str(private.d) not in body
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    assert pem.splitlines()[1] not in body


def test_a_webhook_failure_fails_the_task_naming_the_record_which_is_in_the_file(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    with http_sink(status=503, tls=True) as sink:
        result = renewal_done(ledger, webhook(sink.url))
    assert result["failed"] is True and result["written"] is True
    (record,) = [r.as_dict() for r in read_records(ledger)]  # the file has it
    assert result["change_record"] == record
    assert len(sink.received) == 1
    assert result["msg"].startswith(
        f"ledger_webhook: the record {record['time']} (exchange.pki.ledger_record on EX2: renewal_done) was not sent: "
        f"webhook https://127.0.0.1:")
    assert "HTTP POST (status 503)" in result["msg"]
    assert result["msg"].endswith(f"it IS in the ledger file {ledger}, send it again from there")
    assert "SECRET-TOKEN" not in result["msg"] and TOKEN not in result["msg"]


def test_a_changing_module_whose_webhook_is_down_made_the_change_recorded_it_and_fails(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ex1 = LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")
    (auth,) = [c["thumbprint"] for c in ex1.dump()["certificates"]["My"]
               if c.get("subject") == "CN=Microsoft Exchange Server Auth Certificate"]
    with http_sink(tls=True) as sink:
        url = sink.url
    hook = webhook(url, timeout=2)  # the receiver is gone: the connection is refused
    result = ex1.run(certificate_services.ActionModule, {"thumbprint": auth, "services": ["IIS"],
                                                         "ledger": str(ledger), "ledger_webhook": hook},
                     action="exchange.pki.certificate_services")
    assert result["failed"] is True and result["changed"] is True
    assert "Enable-ExchangeCertificate" in [m["operation"] for m in ex1.mutations()]  # the change was made
    (record,) = [r.as_dict() for r in read_records(ledger)]
    assert record == result["change_record"] and record["result"] == "changed"
    assert f"the record {record['time']} (exchange.pki.certificate_services on EX1: enable_services) was not sent" \
        in result["msg"]
    assert f"it IS in the ledger file {ledger}" in result["msg"]


def test_a_redirect_is_not_followed(tmp_path):
    with http_sink(status=302, tls=True, location="https://127.0.0.1:1/elsewhere") as sink:
        result = renewal_done(tmp_path / "ledger.jsonl", webhook(sink.url))
    assert result["failed"] is True and "redirect, which is not followed" in result["msg"]
    assert len(sink.received) == 1


def test_a_webhook_that_does_not_answer_in_time_fails_the_task(tmp_path):
    with http_sink(tls=True, drip=0.5) as sink:
        result = renewal_done(tmp_path / "ledger.jsonl", webhook(sink.url, timeout=1))
    assert result["failed"] is True and "HTTP POST (timeout)" in result["msg"]
    assert "within 1 s" in result["msg"] and "it IS in the ledger file" in result["msg"]


def test_an_untrusted_certificate_is_refused_without_ca_path(tmp_path):
    with http_sink(tls=True) as sink:
        hook = webhook(sink.url)
        del hook["ca_path"]
        result = renewal_done(tmp_path / "ledger.jsonl", hook)
    assert result["failed"] is True and "CERTIFICATE_VERIFY_FAILED" in result["msg"].upper().replace(" ", "_")
    assert sink.received == []


def test_http_needs_allow_http_and_is_refused_before_anything_changes(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ex1 = LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")
    (auth,) = [c["thumbprint"] for c in ex1.dump()["certificates"]["My"]
               if c.get("subject") == "CN=Microsoft Exchange Server Auth Certificate"]
    with http_sink() as sink:
        refused = failed_result(ex1.run(certificate_services.ActionModule, {
            "thumbprint": auth, "services": ["IIS"], "ledger": str(ledger),
            "ledger_webhook": {"url": sink.url}}, action="exchange.pki.certificate_services"),
            r"^ledger_webhook\.url is an http:// URL")
        assert "ledger_webhook.allow_http: true" in refused["msg"] and "SECRET-TOKEN" not in refused["msg"]
        assert ex1.mutations() == [] and ex1.calls == [] and not ledger.exists() and sink.connections == 0

        allowed = renewal_done(ledger, {"url": sink.url, "allow_http": True})
        assert allowed.get("failed") is not True, allowed.get("msg")
        assert [post.body for post in sink.received] == [allowed["change_record"]]


@pytest.mark.parametrize(("hook", "message"), [
    ({"url": "https://siem.contoso.lab/in", "headers": {"Authorization": "Bearer abc\r\nX-Evil: 1"}},
     "ledger_webhook.headers: the value of Authorization contains CR, LF, NUL"),
    ({"url": "https://siem.contoso.lab/in", "headers": {"X-Bad\nName": "header-value-1"}},
     "ledger_webhook.headers: the name of header #1 is not a valid HTTP header name"),
    ({"url": "https://siem.contoso.lab/in\r\nHost: evil"}, "ledger_webhook.url contains a space or a control"),
    ({"url": "ftp://siem.contoso.lab/in"}, "ledger_webhook.url must be an https:// URL"),
    ({"url": "https://user:pw@siem.contoso.lab/in"}, "ledger_webhook.url must not contain credentials"),
    ({"url": "https://siem.contoso.lab/in", "timeout": 0}, "ledger_webhook.timeout must be a number of seconds"),
    ({"url": "https://siem.contoso.lab/in", "ca_path": "/nonexistent/ca.pem"}, "ledger_webhook.ca_path /nonexi"),
])
def test_bad_webhook_options_are_refused_naming_the_option_never_the_value(tmp_path, hook, message):
    ledger = tmp_path / "ledger.jsonl"
    refused = failed_result(renewal_done(ledger, hook))
    text = refused["msg"]
    assert text.startswith(message), text
    assert "abc" not in text and "pw@" not in text and "evil" not in text.lower()
    assert not ledger.exists()


def test_a_webhook_needs_the_file():
    host = LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")
    failed_result(host.run(certificate_services.ActionModule, {
        "thumbprint": "AB" * 20, "services": ["IIS"], "ledger_webhook": {"url": "https://siem.contoso.lab/in"}}),
        "^ledger_webhook needs ledger: every record is appended to the")
    assert host.calls == []


def test_check_mode_writes_and_sends_nothing(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    with http_sink(tls=True) as sink:
        result = LabHost(Fleet.from_scenario("dag", now=NOW), "ex1").run(ledger_record.ActionModule, {
            "ledger": str(ledger), "action": "renewal_done", "ledger_webhook": webhook(sink.url)}, check_mode=True)
    assert result["changed"] is True and result["written"] is False
    assert sink.connections == 0 and not ledger.exists()


def test_a_certificate_built_here_is_what_the_lab_imports() -> None:
    """The helper's certificates are real X.509 (a sanity check of the fixture the tests above rely on)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = _certificate(_name("x"), key.public_key(), _name("x"), key, ca=True)
    assert isinstance(cert, x509.Certificate) and cert.signature_hash_algorithm.name == hashes.SHA256.name
