# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of fleet_alert's ``events`` option: validation, filtering, and what every channel shows."""

from __future__ import annotations

import pytest

from ansible_collections.exchange.pki.plugins.action import fleet_alert
from ansible_collections.exchange.pki.plugins.plugin_utils import _alerts
from ansible_collections.exchange.pki.plugins.plugin_utils._report import build_report
from tests.unit.plugins.action.action_harness import failed_result, run_action
from tests.unit.plugins.plugin_utils.alert_sinks import http_sink, smtp_sink
from tests.unit.plugins.plugin_utils.report_facts import NOW, certificate, dag_fleet, host_fact

FAILED = {"severity": "critical", "kind": "renewal_failed", "summary": "Renewal of mail.contoso.lab failed on ex2",
          "server": "ex2", "certificate": "mail.contoso.lab", "step": "verify",
          "error": "IIS on ex2 still serves 1A2B3C"}
STALLED = {"severity": "warning", "kind": "renewal_stalled", "summary": "mail.contoso.lab has been due for 9 days",
           "certificate": "mail.contoso.lab"}
INFO = {"severity": "info", "kind": "auth_staged", "summary": "The next Auth certificate is staged"}
HOSTILE = "<https://evil.example/x|Click> & <!channel> <@U012AB3CD> @here [Renew](https://evil.example) *bold*"


def run(args, **kwargs):
    return run_action(fleet_alert.ActionModule, args, **kwargs)


def hook_args(hook, fmt="generic"):
    return {"url": hook.url, "allow_http": True, "format": fmt, "timeout": 5}


def test_events_alone_alert_without_facts():
    with http_sink() as hook:
        result = run({"events": [FAILED, STALLED], "min_severity": "warning", "now": "2026-12-02T06:00:00Z",
                      "webhook": hook_args(hook)})
    assert result["changed"] is True and result["triggered"] is True, result
    assert (result["events"], result["findings"]) == (2, 0) and "summary" not in result
    (post,) = hook.received
    body = post.body
    assert [event["kind"] for event in body["events"]] == ["renewal_failed", "renewal_stalled"]
    assert body["events"][0] == FAILED and body["events"][1]["server"] is None
    assert body["findings"] == [] and body["summary"] is None and body["severity"] == "critical"
    assert body["title"] == "Exchange certificate report: 2 event(s), worst critical, on 1 server(s)"
    text = body["text"]
    assert text.startswith("# Exchange certificate report\n") and "## Events" in text
    for value in ("server: ex2", "step: verify", "error: IIS on ex2 still serves 1A2B3C"):
        assert value in text


def test_events_below_min_severity_do_not_trigger_and_are_left_out():
    with http_sink() as hook:
        quiet = run({"events": [STALLED, INFO], "webhook": hook_args(hook)})
        assert quiet == {"changed": False, "triggered": False, "findings": 0, "events": 0, "sent": []}
        assert hook.received == []
        loud = run({"events": [INFO, FAILED, STALLED], "webhook": hook_args(hook)})
    assert loud["events"] == 1 and [event["kind"] for event in hook.received[0].body["events"]] == ["renewal_failed"]


def test_events_are_listed_before_findings_in_the_mail():
    with smtp_sink() as smtp:
        result = run({"facts": dag_fleet(), "events": [STALLED, FAILED], "min_severity": "warning",
                      "email": {"smtp_host": smtp.host, "smtp_port": smtp.port, "from": "alerts@contoso.lab",
                                "to": ["ops@contoso.lab"], "timeout": 5}})
    assert result["events"] == 2 and result["findings"] == 11 and result["summary"]["hosts"] > 0
    (mail,) = smtp.received
    assert mail.message["Subject"] == ("[exchange.pki] Exchange certificate report: 2 event(s) and 11 finding(s), "
                                       "worst critical, on 4 server(s)")
    body = mail.message.get_content()
    assert body.index("## Events") < body.index("## Action plan") < body.index("## Critical and warning findings")
    events = body[body.index("## Events"):body.index("## Action plan")]
    assert events.index("renewal_failed") < events.index("renewal_stalled")  # most severe first
    assert "  - error: IIS on ex2 still serves 1A2B3C" in events


def test_one_event_alone_is_the_subject():
    with smtp_sink() as smtp:
        mail = {"smtp_host": smtp.host, "smtp_port": smtp.port, "from": "alerts@contoso.lab",
                "to": ["ops@contoso.lab"], "timeout": 5}
        run({"events": [FAILED], "email": mail})
    subject = smtp.received[0].message["Subject"]
    assert subject == "[exchange.pki] Exchange certificate report: [critical] Renewal of mail.contoso.lab failed on ex2"


def test_check_mode_sends_no_event():
    with http_sink() as hook:
        result = run({"events": [FAILED], "webhook": hook_args(hook)}, check_mode=True)
    assert result["changed"] is True and result["sent"][0]["delivered"] is False and hook.received == []


def test_facts_without_findings_and_a_triggering_event_still_sends():
    facts = {"ex1": host_fact("ex1", [certificate("CN=web", days_remaining=300)])}
    with http_sink() as hook:
        result = run({"facts": facts, "events": [FAILED], "webhook": hook_args(hook, "slack")})
    assert result["triggered"] is True and result["findings"] == 0 and result["summary"]["hosts"] == 1
    fields = [field["text"] for field in hook.received[0].body["blocks"][1]["fields"]]
    assert fields[0] == "*Events*\n1 critical" and any(text.startswith("*Servers*") for text in fields)


# --- validation: nothing is sent, and a bad value is never echoed ---------------------------------------------


def test_neither_facts_nor_events_is_a_clear_error():
    with http_sink() as hook:
        failed_result(run({"webhook": hook_args(hook)}), r"^give facts .*, events, or both")
    assert hook.connections == 0


@pytest.mark.parametrize(("event", "message"), [
    ({**FAILED, "severity": "fatal"}, r"value of severity must be one of: critical, warning, info"),
    ({"severity": "critical"}, r"missing required arguments: summary"),
    ({**FAILED, "colour": "red"}, r"colour"),
])
def test_the_argument_spec_checks_events(event, message):
    with http_sink() as hook:
        failed_result(run({"events": [event], "webhook": hook_args(hook)}), message)
    assert hook.connections == 0


SECRET_LINE = "token=SECRET-VALUE"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("summary", f"Renewal failed\r\nBcc: all@contoso.lab {SECRET_LINE}", r"^events\[1\]\.summary contains CR, LF"),
    ("summary", "   ", r"^events\[1\]\.summary is empty"),
    ("summary", "x" * 1025, r"^events\[1\]\.summary is longer than 1024 characters"),
    ("error", f"line one\n{SECRET_LINE}", r"^events\[1\]\.error contains CR, LF"),
    ("error", f"nul\x00{SECRET_LINE}", r"^events\[1\]\.error contains CR, LF, NUL"),
    ("server", f"ex2\u2028{SECRET_LINE}", r"^events\[1\]\.server contains CR, LF"),
    ("step", f"verify\r{SECRET_LINE}", r"^events\[1\]\.step contains CR, LF"),
    ("certificate", f"mail\x1b[31m{SECRET_LINE}", r"^events\[1\]\.certificate contains CR, LF"),
    ("kind", "Renewal-Failed", r"^events\[1\]\.kind must be an id of lower-case letters, digits and _"),
    ("kind", "renewal failed", r"^events\[1\]\.kind must be an id"),
    ("kind", f"x\n{SECRET_LINE}", r"^events\[1\]\.kind contains CR, LF"),
])
def test_bad_event_fields_fail_naming_the_field_without_echoing_it(field, value, message):
    with http_sink() as hook:
        error = failed_result(run({"events": [STALLED, {**FAILED, field: value}], "webhook": hook_args(hook)}), message)
    assert hook.connections == 0
    assert "SECRET-VALUE" not in error["msg"] and "Bcc" not in error["msg"]


def test_a_bad_event_fails_even_below_min_severity():
    failed_result(run({"events": [{**INFO, "summary": "a\nb"}], "webhook": {"url": "https://hooks.contoso.lab/x"}}),
                  r"^events\[0\]\.summary contains CR")


@pytest.mark.parametrize(("events", "message"), [
    ("not a list", r"^events must be a list"),
    ([["severity"]], r"^events\[0\] must be a dictionary"),
    ([{"severity": "urgent", "summary": "x"}], r"^events\[0\]\.severity must be one of critical, warning, info"),
    ([{"severity": "critical\n", "summary": "x"}], r"^events\[0\]\.severity must be one of .*, not it$"),
    ([{"severity": "critical", "summary": None}], r"^events\[0\]\.summary must be a string, not null"),
    ([{"severity": "critical", "summary": "x", "extra": 1}], r"^events\[0\]: unknown field\(s\) 'extra'"),
])
def test_check_events_refuses_malformed_events(events, message):
    with pytest.raises(_alerts.AlertConfigError, match=message):
        _alerts.check_events(events)


def test_check_events_accepts_numbers_as_text_and_drops_empty_optionals():
    (event,) = _alerts.check_events([{"severity": "info", "summary": 42, "server": "", "step": None}])
    assert event == _alerts.AlertEvent(severity="info", summary="42")


# --- chat markup: every event field is made inert -------------------------------------------------------------


@pytest.fixture
def hostile_events():
    event = {"severity": "critical", "kind": "renewal_failed", "summary": HOSTILE, "server": HOSTILE,
             "certificate": HOSTILE, "step": HOSTILE, "error": HOSTILE}
    return _alerts.check_events([event])


@pytest.fixture
def empty_report():
    return build_report({}, title="Renewal <b> & co", now=NOW)


def test_slack_escapes_every_event_field(hostile_events, empty_report):
    payload = _alerts.webhook_payload(empty_report, [], "slack", "", hostile_events)
    section = next(block["text"]["text"] for block in payload["blocks"]
                   if block["type"] == "section" and "text" in block)
    escaped = "&lt;https://evil.example/x|Click&gt; &amp; &lt;!channel&gt; &lt;@U012AB3CD&gt; @\u200bhere"
    assert section.count(escaped) == 5  # summary, server, certificate, step, error
    texts = [payload["text"], section] + [field["text"] for field in payload["blocks"][1]["fields"]]
    for text in texts:
        assert "<" not in text and ">" not in text and "@here" not in text
        assert "&" not in text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


def test_teams_escapes_every_event_field(hostile_events, empty_report):
    payload = _alerts.webhook_payload(empty_report, [], "teams", "", hostile_events)
    body = payload["attachments"][0]["content"]["body"]
    line = body[2]["text"]
    assert line.count("[Renew]\u200b(https://evil.example)") == 5 and body[2]["color"] == "Attention"
    texts = [block["text"] for block in body if "text" in block]
    texts += [fact["value"] for block in body for fact in block.get("facts", ())]
    assert not any("](" in text or "\n" in text for text in texts)


def test_markdown_text_escapes_every_event_field(hostile_events, empty_report):
    text = _alerts.alert_markdown(empty_report, hostile_events, "")
    events = text[text.index("## Events"):]
    assert events.count("\\[Renew\\](https://evil.example) \\*bold\\*") == 5
    unescaped = events.replace("\\]", "").replace("\\<", "").replace("\\>", "")
    assert "](" not in unescaped and "<" not in unescaped and ">" not in unescaped
    assert text.startswith("# Renewal \\<b\\> & co\n")


def test_generic_payload_keeps_raw_event_values(hostile_events, empty_report):
    payload = _alerts.webhook_payload(empty_report, [], "generic", "md", hostile_events)
    assert payload["events"][0]["error"] == HOSTILE


def test_chat_lists_events_first_and_caps_the_total():
    report = build_report(dag_fleet(), title="Fleet", now=NOW)
    findings = _alerts.select_findings(report, "warning")
    events = _alerts.check_events([{**FAILED, "server": f"ex{index}"} for index in range(4)])
    slack = _alerts.webhook_payload(report, findings, "slack", "", events)
    sections = [block["text"]["text"] for block in slack["blocks"] if block["type"] == "section" and "text" in block]
    assert len(sections) == _alerts.CHAT_FINDINGS_SHOWN
    assert all(text.startswith("[critical] renewal_failed:") for text in sections[:4])
    assert slack["blocks"][-1]["elements"][0]["text"] == f"... and {len(findings) + 4 - 10} more"
    teams = _alerts.webhook_payload(report, findings, "teams", "", events)
    body = teams["attachments"][0]["content"]["body"]
    assert body[2]["text"].startswith("[critical] renewal_failed: ") and "step: verify" in body[2]["text"]
