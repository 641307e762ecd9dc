# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the fleet_alert action plugin against local SMTP and HTTP sinks."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.exchange.pki.plugins.action import fleet_alert
from ansible_collections.exchange.pki.plugins.modules import fleet_alert as fleet_alert_docs
from tests.unit.plugins.action.action_harness import argument_spec, documented_spec, failed_result, run_action
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink
from tests.unit.plugins.plugin_utils.report_facts import certificate, dag_fleet, host_fact

PASSWORD = "Alert-Pa55w0rd!"


def run(args, **kwargs):
    return run_action(fleet_alert.ActionModule, args, **kwargs)


def email(sink, **extra):
    return {"smtp_host": sink.host, "smtp_port": sink.port, "from": "alerts@contoso.lab", "to": ["ops@contoso.lab"],
            "timeout": 5, **extra}


def test_documentation_matches_the_argument_spec():
    assert documented_spec(fleet_alert_docs) == argument_spec(fleet_alert.ARGUMENT_SPEC.argument_spec)


def test_sends_mail_and_webhook_when_findings_reach_the_severity():
    with smtp_sink(("alerts", PASSWORD), starttls=True) as smtp, http_sink(tls=True) as hook:
        result = run({
            "facts": dag_fleet(), "min_severity": "warning",
            "email": email(smtp, username="alerts", password=PASSWORD, starttls=True, validate_certs=False),
            "webhook": {"url": hook.url, "format": "slack", "timeout": 5, "validate_certs": False},
        })
    assert result["changed"] is True and result["triggered"] is True and result["findings"] == 11, result
    assert [entry["channel"] for entry in result["sent"]] == ["email", "webhook"]
    assert result["sent"][1] == {"channel": "webhook", "endpoint": hook.url.split("/hooks")[0], "format": "slack",
                                 "status": 200, "delivered": True}
    assert len(smtp.received) == 1 and len(hook.received) == 1
    assert smtp.auth_over_tls == [True] and hook.url.startswith("https://")
    assert hook.received[0].body["text"].startswith("Exchange certificate report: 11 ")
    assert PASSWORD not in repr(result) and "SECRET-TOKEN" not in repr(result)


def test_nothing_is_sent_below_the_severity():
    facts = {"ex1": host_fact("ex1", [certificate("CN=web", days_remaining=300)])}
    with http_sink() as hook:
        result = run({"facts": facts, "webhook": {"url": hook.url, "allow_http": True}})
    assert result["changed"] is False and result["triggered"] is False and result["sent"] == []
    assert hook.received == []


def test_check_mode_sends_nothing_but_says_what_would_be_sent():
    with smtp_sink() as smtp, http_sink() as hook:
        result = run({"facts": dag_fleet(), "email": email(smtp), "webhook": {"url": hook.url, "allow_http": True}},
                     check_mode=True)
    assert result["changed"] is True
    sent = [(entry["channel"], entry["delivered"]) for entry in result["sent"]]
    assert sent == [("email", False), ("webhook", False)]
    assert smtp.received == [] and hook.received == []


def test_a_failing_channel_does_not_stop_the_other():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with http_sink() as hook:
        result = run({
            "facts": dag_fleet(),
            "email": {"smtp_host": "127.0.0.1", "smtp_port": closed_port, "from": "a@contoso.lab",
                      "to": ["b@contoso.lab"], "username": "u", "password": PASSWORD, "timeout": 5,
                      "allow_plaintext_auth": True},
            "webhook": {"url": hook.url, "allow_http": True},
        })
    assert result["failed"] is True
    assert result["msg"].startswith("alert delivery failed: e-mail via 127.0.0.1:")
    assert "SMTP connect failed" in result["msg"] and PASSWORD not in result["msg"]
    assert [entry["channel"] for entry in result["sent"]] == ["webhook"] and len(hook.received) == 1


@pytest.mark.parametrize(("args", "message"), [
    ({"facts": {}}, "one of the following is required: email, webhook"),
    ({"facts": {}, "webhook": {"url": "https://x", "format": "discord"}}, "value of format must be one of"),
    ({"facts": {}, "email": {"smtp_host": "h", "from": "a@b", "to": ["c@d"], "username": "u"}},
     "parameters are required together: username, password found in email"),
])
def test_bad_arguments_are_refused(args, message):
    failed_result(run(args), message)


# --- hardening: a bad option fails the task, naming it, and nothing is sent -----------------------------------


TOKEN = "Bearer SECRET-TOKEN"


@pytest.mark.parametrize(("email_extra", "webhook_extra", "message"), [
    ({}, {"url": "file:///etc/hostname"}, r"^webhook\.url must be an https:// URL"),
    ({}, {"url": "http://127.0.0.1/SECRET-TOKEN", "allow_http": False}, r"^webhook\.url is an http:// URL"),
    ({}, {"headers": {"Authorization": TOKEN + "\r\nX-Injected: 1"}},
     r"^webhook\.headers: the value of Authorization contains CR, LF"),
    ({}, {"timeout": 0}, r"^webhook\.timeout must be a number of seconds greater than 0"),
    ({}, {"timeout": "nan"}, r"^webhook\.timeout must be a number of seconds greater than 0"),
    ({"to": ["not-an-address"]}, {}, r"^email\.to\[0\]: 'not-an-address' is not an e-mail address"),
    ({"to": [""]}, {}, r"^email\.to\[0\] is empty"),
    ({"to": []}, {}, r"^email\.to is empty"),
    ({"from": "alerts@contoso.lab\r\nBcc: all@contoso.lab"}, {}, r"^email\.from contains a control character"),
    ({"subject_prefix": "[pki]\r\n"}, {}, r"^email\.subject_prefix contains a control character"),
    ({"username": "alerts", "password": PASSWORD}, {}, r"^email: SMTP AUTH .* clear text"),
    ({"smtp_port": 0}, {}, r"^email\.smtp_port must be a TCP port from 1 to 65535, not 0"),
    ({"smtp_port": 70000}, {}, r"^email\.smtp_port must be a TCP port from 1 to 65535, not 70000"),
    ({"timeout": -1}, {}, r"^email\.timeout must be a number of seconds greater than 0"),
    ({"smtp_host": ""}, {}, r"^email\.smtp_host is empty"),
])
def test_a_bad_option_fails_the_task_and_nothing_is_sent(email_extra, webhook_extra, message):
    with smtp_sink(("alerts", PASSWORD)) as smtp, http_sink() as hook:
        webhook = {"url": hook.url, "allow_http": True, "headers": {"Authorization": TOKEN}, **webhook_extra}
        error = failed_result(run({"facts": dag_fleet(), "email": email(smtp, **email_extra), "webhook": webhook}),
                              message)
    assert smtp.connections == 0 and hook.connections == 0
    assert "SECRET-TOKEN" not in error["msg"] and PASSWORD not in error["msg"]


@pytest.mark.parametrize("channels", [{"webhook": None}, {"email": None}, {"email": None, "webhook": None}])
def test_empty_channels_are_refused_instead_of_alerting_nobody(channels):
    failed_result(run({"facts": dag_fleet(), **channels}), "email and webhook are (both|all) empty")


def test_a_bad_option_fails_even_when_nothing_triggers():
    facts = {"ex1": host_fact("ex1", [certificate("CN=web", days_remaining=300)])}
    failed_result(run({"facts": facts, "webhook": {"url": "file:///etc/hostname"}}),
                  r"^webhook\.url must be an https:// URL")


@pytest.mark.parametrize("title", ["Report\r\nBcc: all@contoso.lab", "", "Report\x00"])
def test_a_title_that_cannot_be_a_subject_is_refused(title):
    with smtp_sink() as smtp:
        failed_result(run({"facts": dag_fleet(), "title": title, "email": email(smtp)}), r"^title ")
    assert smtp.connections == 0


def test_a_webhook_file_url_is_never_read():
    error = failed_result(run({"facts": dag_fleet(), "webhook": {"url": "file:///etc/hostname", "allow_http": True}}))
    assert "delivered" not in error["msg"] and "hostname" not in error["msg"]
