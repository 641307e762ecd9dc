# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the fleet_alert action plugin against local SMTP and HTTP sinks."""

from __future__ import annotations

import socket

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.action import fleet_alert
from ansible_collections.exchange.pki.plugins.modules import fleet_alert as fleet_alert_docs
from tests.unit.plugins.action.action_harness import argument_spec, documented_spec, run_action
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
    with smtp_sink(("alerts", PASSWORD)) as smtp, http_sink() as hook:
        result = run({
            "facts": dag_fleet(), "min_severity": "warning",
            "email": email(smtp, username="alerts", password=PASSWORD),
            "webhook": {"url": hook.url, "format": "slack", "timeout": 5},
        })
    assert result["changed"] is True and result["triggered"] is True and result["findings"] == 11, result
    assert [entry["channel"] for entry in result["sent"]] == ["email", "webhook"]
    assert result["sent"][1] == {"channel": "webhook", "endpoint": hook.url.split("/hooks")[0], "format": "slack",
                                 "status": 200, "delivered": True}
    assert len(smtp.received) == 1 and len(hook.received) == 1
    assert hook.received[0].body["text"].startswith("Exchange certificate report: 11 ")
    assert PASSWORD not in repr(result) and "SECRET-TOKEN" not in repr(result)


def test_nothing_is_sent_below_the_severity():
    facts = {"ex1": host_fact("ex1", [certificate("CN=web", days_remaining=300)])}
    with http_sink() as hook:
        result = run({"facts": facts, "webhook": {"url": hook.url}})
    assert result["changed"] is False and result["triggered"] is False and result["sent"] == []
    assert hook.received == []


def test_check_mode_sends_nothing_but_says_what_would_be_sent():
    with smtp_sink() as smtp, http_sink() as hook:
        result = run({"facts": dag_fleet(), "email": email(smtp), "webhook": {"url": hook.url}}, check_mode=True)
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
                      "to": ["b@contoso.lab"], "username": "u", "password": PASSWORD, "timeout": 5},
            "webhook": {"url": hook.url},
        })
    assert result["failed"] is True
    assert result["msg"].startswith("alert delivery failed: e-mail via 127.0.0.1:")
    assert "SMTP connect failed" in result["msg"] and PASSWORD not in result["msg"]
    assert [entry["channel"] for entry in result["sent"]] == ["webhook"] and len(hook.received) == 1


@pytest.mark.parametrize(("args", "message"), [
    ({"facts": {}}, "one of the following is required: email, webhook"),
    ({"facts": {}, "webhook": {"url": "http://x", "format": "discord"}}, "value of format must be one of"),
    ({"facts": {}, "email": {"smtp_host": "h", "from": "a@b", "to": ["c@d"], "username": "u"}},
     "parameters are required together: username, password found in email"),
])
def test_bad_arguments_are_refused(args, message):
    with pytest.raises(AnsibleActionFail, match=message):
        run(args)
