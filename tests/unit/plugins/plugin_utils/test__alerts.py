# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the alerts: finding selection, payload shapes, and delivery to local SMTP and HTTP sinks."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _alerts
from ansible_collections.exchange.pki.plugins.plugin_utils._report import build_report
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import markdown_text
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink
from tests.unit.plugins.plugin_utils.report_facts import NOW, bulk_fleet, dag_fleet

PASSWORD = "Sm7p-Pa55w0rd!"


@pytest.fixture
def report():
    return build_report(dag_fleet(), title="Contoso certificates", now=NOW)


def email_settings(sink, **overrides) -> _alerts.EmailSettings:
    return _alerts.EmailSettings(**{
        "smtp_host": sink.host, "smtp_port": sink.port, "sender": "alerts@contoso.lab",
        "to": ("admins@contoso.lab", "oncall@contoso.lab"), "subject_prefix": "[pki] ", "timeout": 5, **overrides,
    })


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(("min_severity", "expected"), [("critical", 4), ("warning", 11), ("info", 11)])
def test_select_findings_at_or_above_the_threshold(report, min_severity, expected):
    findings = _alerts.select_findings(report, min_severity)
    assert len(findings) == expected
    order = ("critical", "warning", "info")
    assert [item.severity for item in findings] == sorted((item.severity for item in findings), key=order.index)


def test_selected_findings_name_their_certificate(report):
    cliusr = next(item for item in _alerts.select_findings(report, "critical") if item.id.startswith("cluster"))
    assert (cliusr.server, cliusr.subject, cliusr.not_after[:10]) == ("ex2", "CN=CLIUSR", "2026-11-20")
    staged = next(item for item in _alerts.select_findings(report, "warning") if item.id == "auth_next_not_staged")
    assert staged.subject is None and staged.thumbprint is None


def test_generic_payload(report):
    findings = _alerts.select_findings(report, "warning")
    payload = _alerts.webhook_payload(report, findings, "generic", "# md")
    assert payload["title"] == "Contoso certificates: 11 critical-level finding(s) on 4 server(s)"
    assert payload["severity"] == "critical"
    assert payload["summary"] == report.summary.as_dict()
    assert len(payload["findings"]) == 11 and payload["text"] == "# md"
    assert set(payload["findings"][0]) == {"server", "severity", "id", "message", "remediation", "thumbprint",
                                           "subject", "not_after"}


def test_teams_payload_is_an_adaptive_card_message(report):
    payload = _alerts.webhook_payload(report, _alerts.select_findings(report, "critical"), "teams", "")
    (attachment,) = payload["attachments"]
    assert payload["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["body"][1]["type"] == "FactSet"
    assert [block["color"] for block in card["body"][2:]] == ["Attention"] * 4


def test_chat_payloads_cap_the_findings_listed():
    big = build_report(bulk_fleet(30), title="Big", now=NOW)
    findings = _alerts.select_findings(big, "warning")
    slack = _alerts.webhook_payload(big, findings, "slack", "")
    assert slack["text"].startswith("Big: ")
    sections = [block for block in slack["blocks"] if block["type"] == "section" and "text" in block]
    assert len(sections) == _alerts.CHAT_FINDINGS_SHOWN
    assert slack["blocks"][-1]["elements"][0]["text"] == f"... and {len(findings) - _alerts.CHAT_FINDINGS_SHOWN} more"
    teams = _alerts.webhook_payload(big, findings, "teams", "")
    assert teams["attachments"][0]["content"]["body"][-1]["text"].startswith("... and ")


def test_email_reaches_an_smtp_sink_with_login(report):
    markdown = markdown_text(report)
    findings = _alerts.select_findings(report, "critical")
    with smtp_sink(credentials=("alerts", PASSWORD)) as sink:
        settings = email_settings(sink, username="alerts", password=PASSWORD)
        _alerts.send_email(_alerts.build_email(report, findings, markdown, settings), settings)
    (mail,) = sink.received
    assert mail.authenticated_as == "alerts"
    assert mail.sender == "alerts@contoso.lab"
    assert mail.recipients == ["admins@contoso.lab", "oncall@contoso.lab"]
    assert mail.message["Subject"] == "[pki] Contoso certificates: 4 critical-level finding(s) on 3 server(s)"
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().replace("\r\n", "\n") == markdown
    assert PASSWORD not in mail.message.as_string()


def test_a_refused_login_names_the_stage_not_the_password(report):
    with smtp_sink(credentials=("alerts", "another")) as sink:
        settings = email_settings(sink, username="alerts", password=PASSWORD)
        message = _alerts.build_email(report, _alerts.select_findings(report, "critical"), "x", settings)
        with pytest.raises(_alerts.AlertDeliveryError, match="SMTP login failed") as error:
            _alerts.send_email(message, settings)
    assert error.value.stage == "SMTP login"
    assert PASSWORD not in str(error.value) and not sink.received


def test_an_unreachable_relay_fails_at_connect(report):
    settings = _alerts.EmailSettings("127.0.0.1", free_port(), "a@contoso.lab", ("b@contoso.lab",), timeout=5)
    message = _alerts.build_email(report, _alerts.select_findings(report, "critical"), "x", settings)
    with pytest.raises(_alerts.AlertDeliveryError, match=r"^e-mail via 127\.0\.0\.1:\d+: SMTP connect failed: "):
        _alerts.send_email(message, settings)


def test_starttls_against_a_relay_without_it_fails_at_starttls(report):
    with smtp_sink() as sink:
        settings = email_settings(sink, starttls=True)
        message = _alerts.build_email(report, _alerts.select_findings(report, "critical"), "x", settings)
        with pytest.raises(_alerts.AlertDeliveryError, match="SMTP STARTTLS failed"):
            _alerts.send_email(message, settings)


@pytest.mark.parametrize("fmt", _alerts.WEBHOOK_FORMATS)
def test_webhook_reaches_an_http_sink(report, fmt):
    findings = _alerts.select_findings(report, "critical")
    payload = _alerts.webhook_payload(report, findings, fmt, markdown_text(report))
    with http_sink(status=202) as sink:
        settings = _alerts.WebhookSettings(sink.url, fmt, headers={"Authorization": "Bearer t0ken"}, timeout=5)
        assert _alerts.post_webhook(payload, settings) == 202
    (post,) = sink.received
    assert post.path == "/hooks/T000/SECRET-TOKEN"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["Authorization"] == "Bearer t0ken"
    assert post.body == payload


def test_a_webhook_error_names_the_status_but_not_the_secret_url(report):
    with http_sink(status=500) as sink:
        settings = _alerts.WebhookSettings(sink.url, headers={"Authorization": "Bearer t0ken"}, timeout=5)
        with pytest.raises(_alerts.AlertDeliveryError, match=r"HTTP POST \(status 500\) failed") as error:
            _alerts.post_webhook({"title": "x"}, settings)
    assert str(error.value).startswith(f"webhook {settings.endpoint}: ")
    assert "SECRET-TOKEN" not in str(error.value) and "t0ken" not in str(error.value)


def test_an_unreachable_webhook_fails_at_post():
    settings = _alerts.WebhookSettings(f"http://127.0.0.1:{free_port()}/hook/SECRET", timeout=5)
    with pytest.raises(_alerts.AlertDeliveryError, match="HTTP POST failed") as error:
        _alerts.post_webhook({"title": "x"}, settings)
    assert "SECRET" not in str(error.value)


def test_settings_reprs_hide_secrets():
    assert PASSWORD not in repr(_alerts.EmailSettings("h", 25, "a@b", ("c@d",), username="u", password=PASSWORD))
    assert "SECRET" not in repr(_alerts.WebhookSettings("https://hooks.example/SECRET", headers={"X": "SECRET"}))
