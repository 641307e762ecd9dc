# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the alerts: finding selection, payload shapes, and delivery to local SMTP and HTTP sinks."""

from __future__ import annotations

import math
import re
import socket
import time

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _alerts
from ansible_collections.exchange.pki.plugins.plugin_utils._report import build_report
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import markdown_text
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink
from tests.unit.plugins.plugin_utils.report_facts import NOW, bulk_fleet, certificate, dag_fleet, finding, host_fact

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
    with smtp_sink(credentials=("alerts", PASSWORD), starttls=True) as sink:
        settings = email_settings(sink, username="alerts", password=PASSWORD, starttls=True, validate_certs=False)
        _alerts.send_email(_alerts.build_email(report, findings, markdown, settings), settings)
    (mail,) = sink.received
    assert mail.authenticated_as == "alerts" and mail.tls is True
    assert sink.commands[:3] == ["EHLO", "STARTTLS", "EHLO"] and sink.auth_over_tls == [True]
    assert mail.sender == "alerts@contoso.lab"
    assert mail.recipients == ["admins@contoso.lab", "oncall@contoso.lab"]
    assert mail.message["Subject"] == "[pki] Contoso certificates: 4 critical-level finding(s) on 3 server(s)"
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().replace("\r\n", "\n") == markdown
    assert PASSWORD not in mail.message.as_string()


def test_a_refused_login_names_the_stage_not_the_password(report):
    with smtp_sink(credentials=("alerts", "another"), starttls=True) as sink:
        settings = email_settings(sink, username="alerts", password=PASSWORD, starttls=True, validate_certs=False)
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
    assert "AUTH" not in sink.commands and "MAIL" not in sink.commands and not sink.received


@pytest.mark.parametrize("fmt", _alerts.WEBHOOK_FORMATS)
def test_webhook_reaches_an_http_sink(report, fmt):
    findings = _alerts.select_findings(report, "critical")
    payload = _alerts.webhook_payload(report, findings, fmt, markdown_text(report))
    with http_sink(status=202) as sink:
        settings = _alerts.WebhookSettings(sink.url, fmt, headers={"Authorization": "Bearer t0ken"}, timeout=5,
                                           allow_http=True)
        assert _alerts.post_webhook(payload, settings) == 202
    (post,) = sink.received
    assert post.path == "/hooks/T000/SECRET-TOKEN"
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["Authorization"] == "Bearer t0ken"
    assert post.body == payload


def test_a_webhook_error_names_the_status_but_not_the_secret_url(report):
    with http_sink(status=500) as sink:
        settings = _alerts.WebhookSettings(sink.url, headers={"Authorization": "Bearer t0ken"}, timeout=5,
                                           allow_http=True)
        with pytest.raises(_alerts.AlertDeliveryError, match=r"HTTP POST \(status 500\) failed") as error:
            _alerts.post_webhook({"title": "x"}, settings)
    assert str(error.value).startswith(f"webhook {settings.endpoint}: ")
    assert "SECRET-TOKEN" not in str(error.value) and "t0ken" not in str(error.value)


def test_an_unreachable_webhook_fails_at_post():
    settings = _alerts.WebhookSettings(f"http://127.0.0.1:{free_port()}/hook/SECRET", timeout=5, allow_http=True)
    with pytest.raises(_alerts.AlertDeliveryError, match="HTTP POST failed") as error:
        _alerts.post_webhook({"title": "x"}, settings)
    assert "SECRET" not in str(error.value)


def test_settings_reprs_hide_secrets():
    settings = _alerts.EmailSettings("h", 25, "a@b", ("c@d",), username="u", password=PASSWORD, starttls=True)
    assert PASSWORD not in repr(settings)
    assert "SECRET" not in repr(_alerts.WebhookSettings("https://hooks.example/SECRET", headers={"X": "SECRET"}))


# --- hardening: nothing leaves the controller when an option is bad --------------------------------------------


def webhook(url="https://hooks.contoso.lab/services/T000/SECRET-TOKEN", **overrides) -> _alerts.WebhookSettings:
    return _alerts.WebhookSettings(url, **{"timeout": 5, **overrides})


def test_webhook_over_https_reaches_a_tls_sink(report):
    payload = _alerts.webhook_payload(report, _alerts.select_findings(report, "critical"), "slack", "")
    with http_sink(tls=True) as sink:
        assert _alerts.post_webhook(payload, webhook(sink.url, validate_certs=False)) == 200
    assert sink.url.startswith("https://") and sink.received[0].body == payload


def test_webhook_checks_the_tls_certificate_by_default(report):
    with http_sink(tls=True) as sink:
        with pytest.raises(_alerts.AlertDeliveryError, match="HTTP POST failed") as error:
            _alerts.post_webhook({"title": "x"}, webhook(sink.url))
    assert "SECRET-TOKEN" not in str(error.value) and sink.received == []


@pytest.mark.parametrize("url", [
    "file:///etc/hostname", "FILE:///etc/hostname", "ftp://127.0.0.1/SECRET-TOKEN", "data:,SECRET-TOKEN",
    "gopher://127.0.0.1/SECRET-TOKEN", "javascript:SECRET-TOKEN", "hooks.slack.com/services/SECRET-TOKEN",
    "//hooks.slack.com/services/SECRET-TOKEN", "unix:///run/SECRET-TOKEN.sock",
])
def test_webhook_refuses_schemes_other_than_https(url):
    with pytest.raises(_alerts.AlertConfigError, match=r"^webhook\.url must be an https:// URL") as error:
        webhook(url)
    assert "SECRET-TOKEN" not in str(error.value) and "hostname" not in str(error.value)


def test_webhook_refuses_plain_http_unless_allowed():
    with pytest.raises(_alerts.AlertConfigError, match=r"webhook\.allow_http: true") as error:
        webhook("http://hooks.contoso.lab/SECRET-TOKEN")
    assert "SECRET-TOKEN" not in str(error.value)
    assert webhook("HTTP://hooks.contoso.lab/SECRET-TOKEN", allow_http=True).endpoint == "http://hooks.contoso.lab"


@pytest.mark.parametrize(("url", "message"), [
    ("https://alerts:SECRET-TOKEN@hooks.contoso.lab/x", "must not contain credentials"),
    ("https://SECRET-TOKEN@hooks.contoso.lab/x", "must not contain credentials"),
    ("", "is empty"),
    ("https://", "no host or an invalid port"),
    ("https:///SECRET-TOKEN", "no host or an invalid port"),
    ("https://hooks.contoso.lab:0/SECRET-TOKEN", "no host or an invalid port"),
    ("https://hooks.contoso.lab:65536/SECRET-TOKEN", "no host or an invalid port"),
    ("https://hooks.contoso.lab:-1/SECRET-TOKEN", "no host or an invalid port"),
    ("https://hooks.contoso.lab:SECRET-TOKEN/x", "no host or an invalid port"),
    ("https://hooks.contoso.lab/SECRET-TOKEN\r\nX-Injected: 1", "control character"),
    ("https://hooks.contoso.lab/SECRET-TOKEN\x00", "control character"),
    ("https://hooks.contoso.lab/SECRET TOKEN", "a space"),
    ("https://hooks.contoso.lab/SECRET-TOKEN-é", "must be ASCII"),
    ("https://hooks_contoso!lab/SECRET-TOKEN", "invalid host name"),
    ("https://hooks.contoso.lab/" + "SECRET-TOKEN" * 1000, "longer than 8192"),
    (["https://hooks.contoso.lab/SECRET-TOKEN"], "must be a string, not list"),
    (None, "must be a string, not NoneType"),
])
def test_webhook_refuses_bad_urls_without_showing_them(url, message):
    with pytest.raises(_alerts.AlertConfigError, match=message) as error:
        webhook(url)
    assert str(error.value).startswith("webhook.url ") and "SECRET" not in str(error.value)


@pytest.mark.parametrize(("status", "target"), [(302, "file:///etc/hostname"), (307, "other"), (308, "other"),
                                                (301, "https://other.contoso.lab/SECRET-TOKEN"), (303, None)])
def test_webhook_redirects_are_not_followed(status, target):
    with http_sink(path="/elsewhere") as other, \
            http_sink(status, location=other.url if target == "other" else target) as sink:
        with pytest.raises(_alerts.AlertDeliveryError, match="redirect, which is not followed") as error:
            _alerts.post_webhook({"title": "x"}, webhook(sink.url, allow_http=True))
    assert error.value.stage == f"HTTP POST (status {status})"
    assert len(sink.received) == 1 and other.connections == 0
    assert "SECRET" not in str(error.value) and "hostname" not in str(error.value)


@pytest.mark.parametrize(("headers", "message"), [
    ({"Authorization": "Bearer SECRET-TOKEN\r\nX-Injected: 1"}, "the value of Authorization contains CR, LF, NUL"),
    ({"Authorization": "Bearer SECRET-TOKEN\n"}, "the value of Authorization contains CR, LF, NUL"),
    ({"X-Token": "SECRET-TOKEN\x00"}, "the value of X-Token contains CR, LF, NUL"),
    ({"X-Token": "SECRET-TOKEN\x1b[2J"}, "the value of X-Token contains CR, LF, NUL"),
    ({"X-Token": "SECRET-TOKEN-é"}, "the value of X-Token must be ASCII"),
    ({"X-Token": "SECRET-TOKEN" * 1000}, "the value of X-Token is longer than 8192"),
    ({"X-Token": ""}, "the value of X-Token is empty"),
    ({"X-Token": None}, "the value of X-Token must be a string, not null"),
    ({"X-Token": ["SECRET-TOKEN"]}, "the value of X-Token must be a string, not list"),
    ({"X-Token": True}, "the value of X-Token must be a string, not bool"),
    ({"Authorization: Bearer SECRET-TOKEN": "x"}, "the name of header #1 is not a valid HTTP header name"),
    ({"X-Ok": "1", "X-A\r\nSECRET-TOKEN": "x"}, "the name of header #2 is not a valid HTTP header name"),
    ({"X-A\x00": "SECRET-TOKEN"}, "the name of header #1 is not a valid HTTP header name"),
    ({"": "SECRET-TOKEN"}, "the name of header #1 is not a valid HTTP header name"),
    ({"Content-Length": "0"}, "Content-Length is set by the HTTP client"),
    ({"Host": "evil.contoso.lab"}, "Host is set by the HTTP client"),
    ({"X-Token": "SECRET-TOKEN", "x-token": "SECRET-TOKEN2"}, "x-token is given twice"),
    (["Authorization", "SECRET-TOKEN"], "must be a dictionary"),
])
def test_webhook_headers_are_checked_and_never_shown(headers, message):
    with pytest.raises(_alerts.AlertConfigError, match=message) as error:
        webhook(headers=headers)
    assert str(error.value).startswith("webhook.headers") and "SECRET" not in str(error.value)


def test_the_endpoint_shown_is_scheme_host_and_port_only():
    assert webhook("https://[::1]:8443/services/SECRET-TOKEN?x=1#y").endpoint == "https://[::1]:8443"
    assert webhook("HTTPS://Hooks.Contoso.lab/SECRET-TOKEN").endpoint == "https://hooks.contoso.lab"


def test_webhook_header_numbers_are_sent_as_text():
    with http_sink() as sink:
        _alerts.post_webhook({"title": "x"}, webhook(sink.url, allow_http=True, headers={"X-Tenant": 42}))
    assert sink.received[0].headers["X-Tenant"] == "42"


def test_webhook_delivery_errors_hide_header_tokens():
    settings = webhook(headers={"Authorization": "Bearer eyJhbGciOi.SECRET-TOKEN"})
    assert "eyJhbGciOi.SECRET-TOKEN" in settings.secrets and "SECRET-TOKEN" in settings.secrets
    assert "SECRET" not in _alerts._scrub("401: bad token eyJhbGciOi.SECRET-TOKEN for /services/T000/SECRET-TOKEN",
                                          settings.secrets)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("timeout", 0, "must be a number of seconds greater than 0 and at most 3600, not 0"),
    ("timeout", -1, "greater than 0"),
    ("timeout", math.nan, "greater than 0"),
    ("timeout", math.inf, "greater than 0"),
    ("timeout", 1e300, "greater than 0"),
    ("timeout", 3601, "greater than 0"),
    ("timeout", True, "must be a number of seconds, not bool"),
    ("timeout", "30", "must be a number of seconds, not str"),
    ("format", "discord", "must be one of generic, teams, slack"),
])
def test_webhook_numbers_and_choices_are_checked(option, value, message):
    with pytest.raises(_alerts.AlertConfigError, match=rf"^webhook\.{option} .*{message}"):
        webhook(**{option: value})


def test_a_webhook_that_drips_its_answer_cannot_hold_the_task():
    # A 38-byte answer at 0.5 s a byte takes 19 s: a per-read timeout never fires, only the deadline (1 s) does.
    # The bound on the elapsed time is loose on purpose (shared, loaded machines), far below the drip's 19 s.
    with http_sink(drip=0.5) as sink:
        started = time.monotonic()
        with pytest.raises(_alerts.AlertDeliveryError, match=r"HTTP POST \(timeout\) failed: .* within 1 s") as error:
            _alerts.post_webhook({"title": "x"}, webhook(sink.url, allow_http=True, timeout=1))
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert "SECRET" not in str(error.value)


# --- e-mail ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("starttls", [False, True])
def test_a_relay_that_drips_its_answers_cannot_hold_the_task(report, starttls):
    # Every reply one byte at a time, 0.5 s apart: 25 s and more without a deadline; the bound below is loose.
    with smtp_sink(drip=0.5, starttls=starttls) as sink:
        settings = email_settings(sink, timeout=1, starttls=starttls, validate_certs=False)
        message = _alerts.build_email(report, _alerts.select_findings(report, "critical"), "x", settings)
        started = time.monotonic()
        with pytest.raises(_alerts.AlertDeliveryError, match=r"SMTP connect \(timeout\) failed: .* within 1 s"):
            _alerts.send_email(message, settings)
        elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    assert sink.received == []


def mail_settings(**overrides) -> _alerts.EmailSettings:
    return _alerts.EmailSettings(**{"smtp_host": "smtp.contoso.lab", "smtp_port": 25, "sender": "pki@contoso.lab",
                                    "to": ("ops@contoso.lab",), **overrides})


@pytest.mark.parametrize("address", [
    "not-an-address", "", "   ", "a@", "@contoso.lab", "a@contoso..lab", "a@-contoso.lab", "a@contoso.lab.",
    "a@b, c@d", "a b@contoso.lab", "a@contoso.lab>", "<a@contoso.lab", "Ops <not-an-address>", "Ops <>",
    "é@contoso.lab", "a@bü.lab", "a@[999.1.1.1]", "x" * 65 + "@contoso.lab", "a@" + "b." * 130 + "lab",
])
@pytest.mark.parametrize("option", ["from", "to"])
def test_mail_addresses_must_be_addr_specs(option, address):
    kwargs = {"sender": address} if option == "from" else {"to": ("ops@contoso.lab", address)}
    name = "email.from" if option == "from" else "email.to[1]"
    with pytest.raises(_alerts.AlertConfigError, match=rf"^{re.escape(name)}"):
        mail_settings(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"to": ()}, r"^email\.to is empty: give at least one recipient"),
    ({"to": "ops@contoso.lab"}, r"^email\.to must be a list"),
    ({"to": ("ops@contoso.lab\r\nBcc: all@contoso.lab",)}, r"^email\.to\[0\] contains a control character"),
    ({"sender": "pki@contoso.lab\r\nBcc: all@contoso.lab"}, r"^email\.from contains a control character"),
    ({"sender": "pki@contoso.lab\x00"}, r"^email\.from contains a control character"),
    ({"sender": None}, r"^email\.from must be a string, not NoneType"),
    ({"subject_prefix": "[pki]\r\nBcc: all@contoso.lab "}, r"^email\.subject_prefix contains a control character"),
    ({"subject_prefix": "[pki]\n"}, r"^email\.subject_prefix contains a control character"),
    ({"subject_prefix": "\u2028"}, r"^email\.subject_prefix contains a control character"),
    ({"subject_prefix": "x" * 257}, r"^email\.subject_prefix is longer than 256 characters"),
    ({"subject_prefix": None}, r"^email\.subject_prefix must be a string"),
    ({"smtp_host": ""}, r"^email\.smtp_host is empty"),
    ({"smtp_host": "smtp.contoso.lab\r\nRCPT TO:<x@y>"}, r"^email\.smtp_host contains a control character"),
    ({"smtp_host": "smtp.contoso.lab:25"}, r"^email\.smtp_host must be a host name or an IP address"),
    ({"smtp_host": "smtp contoso"}, r"^email\.smtp_host must be a host name or an IP address"),
    ({"smtp_host": "smtp.bü.lab"}, r"^email\.smtp_host must be a host name or an IP address"),
    ({"smtp_host": "a" * 254}, r"^email\.smtp_host is longer than|^email\.smtp_host must be a host name"),
    ({"smtp_port": 0}, r"^email\.smtp_port must be a TCP port from 1 to 65535, not 0"),
    ({"smtp_port": -25}, r"^email\.smtp_port must be a TCP port from 1 to 65535, not -25"),
    ({"smtp_port": 65536}, r"^email\.smtp_port must be a TCP port from 1 to 65535, not 65536"),
    ({"smtp_port": True}, r"^email\.smtp_port must be an integer, not bool"),
    ({"smtp_port": "25"}, r"^email\.smtp_port must be an integer, not str"),
    ({"timeout": 0}, r"^email\.timeout must be a number of seconds greater than 0"),
    ({"timeout": -5.0}, r"^email\.timeout must be a number of seconds greater than 0"),
    ({"timeout": math.nan}, r"^email\.timeout must be a number of seconds greater than 0"),
    ({"timeout": 1e300}, r"^email\.timeout must be a number of seconds greater than 0"),
    ({"username": "", "password": PASSWORD, "starttls": True}, r"^email\.username is empty"),
    ({"username": "alerts\r\nMAIL FROM:<x@y>", "password": PASSWORD, "starttls": True},
     r"^email\.username contains a control character"),
    ({"username": "alerts", "password": "", "starttls": True}, r"^email\.password is empty"),
    ({"username": "alerts", "password": None, "starttls": True}, r"^email\.password is empty"),
    ({"username": "alerts", "password": PASSWORD + "\x00x", "starttls": True}, r"^email\.password must be"),
    ({"username": "alerts", "password": PASSWORD + "\r\n", "starttls": True}, r"^email\.password must be"),
    ({"username": "alerts", "password": PASSWORD + "é", "starttls": True}, r"^email\.password must be .*ASCII"),
    ({"password": PASSWORD}, r"^email\.password is given without email\.username"),
    ({"username": "alertsé", "password": PASSWORD, "starttls": True}, r"^email\.username must be ASCII"),
])
def test_mail_options_are_checked(kwargs, message):
    with pytest.raises(_alerts.AlertConfigError, match=message) as error:
        mail_settings(**kwargs)
    assert PASSWORD not in str(error.value)


def test_smtp_auth_without_starttls_is_refused_unless_allowed():
    with pytest.raises(_alerts.AlertConfigError, match="would send the password in clear text") as error:
        mail_settings(username="alerts", password=PASSWORD)
    assert "email.starttls: true" in str(error.value) and "email.allow_plaintext_auth: true" in str(error.value)
    assert PASSWORD not in str(error.value)
    assert mail_settings(username="alerts", password=PASSWORD, starttls=True).username == "alerts"


def test_plaintext_auth_when_explicitly_allowed(report):
    with smtp_sink(("alerts", PASSWORD)) as sink:
        settings = email_settings(sink, username="alerts", password=PASSWORD, allow_plaintext_auth=True)
        _alerts.send_email(_alerts.build_email(report, _alerts.select_findings(report, "critical"), "x", settings),
                           settings)
    assert sink.auth_over_tls == [False] and sink.received[0].authenticated_as == "alerts"


def test_display_names_reach_the_headers_and_only_addresses_the_envelope(report):
    with smtp_sink() as sink:
        settings = email_settings(sink, sender='"PKI, Alerts" <alerts@contoso.lab>',
                                  to=("Ops <ops@contoso.lab>", "oncall@contoso.lab"), subject_prefix="[pkî] ")
        _alerts.send_email(_alerts.build_email(report, _alerts.select_findings(report, "critical"), "x", settings),
                           settings)
    (mail,) = sink.received
    assert mail.sender == "alerts@contoso.lab" and mail.recipients == ["ops@contoso.lab", "oncall@contoso.lab"]
    assert mail.message["From"].addresses[0].display_name == "PKI, Alerts"
    assert [address.addr_spec for address in mail.message["To"].addresses] == mail.recipients
    assert mail.message["Subject"].startswith("[pkî] Contoso certificates: ")


def test_a_title_with_a_line_break_cannot_reach_the_subject():
    with pytest.raises(_alerts.AlertConfigError, match=r"^title contains a control character"):
        _alerts.check_title("Report\r\nBcc: all@contoso.lab")
    for bad, message in (("", "^title is empty"), (None, "^title must be a string"), ("x" * 257, "longer than")):
        with pytest.raises(_alerts.AlertConfigError, match=message):
            _alerts.check_title(bad)


# --- chat markup ---------------------------------------------------------------------------------------------


HOSTILE_SUBJECT = "CN=<https://evil.example/renew|Renew now> & <!channel> <@U012AB3CD> @here [Renew](https://evil.example)"


@pytest.fixture
def hostile_report():
    cert = certificate(HOSTILE_SUBJECT, days_remaining=-1)
    other = certificate("CN=mail.contoso.lab\nInjected line", days_remaining=-2)
    facts = {"ex1": host_fact("ex1", [cert, other], [finding("expired", "critical", cert),
                                                     finding("expired", "critical", other)])}
    return build_report(facts, title="Contoso <b> & co", now=NOW)


def slack_texts(payload) -> list[str]:
    texts = [payload["text"]]
    for block in payload["blocks"]:
        texts += [field["text"] for field in block.get("fields", ())]
        texts += [element["text"] for element in block.get("elements", ())]
        if block["type"] == "section" and "text" in block:
            texts.append(block["text"]["text"])
    return texts


def test_slack_mrkdwn_escapes_certificate_subjects(hostile_report):
    payload = _alerts.webhook_payload(hostile_report, _alerts.select_findings(hostile_report, "critical"), "slack", "")
    texts = slack_texts(payload)
    joined = "\n".join(texts)
    assert "&lt;https://evil.example/renew|Renew now&gt; &amp; &lt;!channel&gt; &lt;@U012AB3CD&gt;" in joined
    assert "@\u200bhere" in joined and "@here" not in joined
    for text in texts:
        assert "<" not in text and ">" not in text
        assert "&" not in text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")
    assert not any("\n" in text for text in texts if not text.startswith("*"))
    assert payload["text"] == "Contoso &lt;b&gt; &amp; co: 2 critical-level finding(s) on 1 server(s)"


@pytest.mark.parametrize("render", [_alerts.slack_text, _alerts.teams_text])
def test_chat_text_is_one_line_with_single_spaces(render):
    assert render("  CN=mail.contoso.lab\r\n\r\nInjected\t\x1b[2Kline\u2028 ") == "CN=mail.contoso.lab Injected [2Kline"


def test_slack_clipping_never_cuts_an_entity():
    clipped = _alerts.slack_text("a" * 2995 + "<<<<<<", 3000)
    assert len(clipped) <= 3000 and clipped.endswith("a...")


def test_teams_card_text_cannot_form_links(hostile_report):
    payload = _alerts.webhook_payload(hostile_report, _alerts.select_findings(hostile_report, "critical"), "teams", "")
    body = payload["attachments"][0]["content"]["body"]
    texts = [block["text"] for block in body if "text" in block]
    texts += [fact["value"] for block in body for fact in block.get("facts", ())]
    assert any("[Renew]\u200b(https://evil.example)" in text for text in texts)
    assert not any("](" in text or "\n" in text or "\r" in text for text in texts)


def test_generic_payload_keeps_the_raw_values(hostile_report):
    payload = _alerts.webhook_payload(hostile_report, _alerts.select_findings(hostile_report, "critical"), "generic",
                                      "md")
    assert HOSTILE_SUBJECT in [item["subject"] for item in payload["findings"]]
