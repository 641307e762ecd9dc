# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of ``exchange.pki.fleet_alert``: e-mail and webhook alerts about the fleet's findings.

Every option is checked before anything is sent (and also when nothing triggers, so a broken configuration
shows at the first run, not at the first critical finding): a bad option fails the task, naming it, and no
channel sends. Every configured channel is then tried even when another fails; the task fails when any did,
and ``sent`` still lists what was delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ControllerAction
from ansible_collections.exchange.pki.plugins.plugin_utils._alerts import (
    EVENT_SEVERITIES,
    WEBHOOK_FORMATS,
    AlertConfigError,
    AlertDeliveryError,
    AlertEvent,
    AlertFinding,
    EmailSettings,
    WebhookSettings,
    alert_markdown,
    build_email,
    check_events,
    check_title,
    post_webhook,
    select_events,
    select_findings,
    send_email,
    webhook_payload,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    DEFAULT_TITLE,
    SEVERITIES,
    FleetReport,
    build_report,
    report_time,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import markdown_text

EMAIL_OPTIONS = {
    "smtp_host": {"type": "str", "required": True},
    "smtp_port": {"type": "int", "default": 25},
    "from": {"type": "str", "required": True},
    "to": {"type": "list", "elements": "str", "required": True},
    "starttls": {"type": "bool", "default": False},
    "validate_certs": {"type": "bool", "default": True},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "subject_prefix": {"type": "str", "default": "[exchange.pki] "},
    "timeout": {"type": "float", "default": 30.0},
    "allow_plaintext_auth": {"type": "bool", "default": False},
}
WEBHOOK_OPTIONS = {
    "url": {"type": "str", "required": True, "no_log": True},
    "format": {"type": "str", "choices": list(WEBHOOK_FORMATS), "default": "generic"},
    "headers": {"type": "dict", "default": {}, "no_log": True},
    "timeout": {"type": "float", "default": 30.0},
    "validate_certs": {"type": "bool", "default": True},
    "allow_http": {"type": "bool", "default": False},
}

EVENT_OPTIONS = {
    "severity": {"type": "str", "required": True, "choices": list(EVENT_SEVERITIES)},
    "kind": {"type": "str"},
    "summary": {"type": "str", "required": True},
    "server": {"type": "str"},
    "certificate": {"type": "str"},
    "step": {"type": "str"},
    "error": {"type": "str"},
}

#: The one argument spec; plugins/modules/fleet_alert.py documents exactly this (a unit test compares them).
ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        "facts": {"type": "dict"},
        "events": {"type": "list", "elements": "dict", "options": EVENT_OPTIONS},
        "min_severity": {"type": "str", "choices": list(SEVERITIES), "default": "critical"},
        "title": {"type": "str", "default": DEFAULT_TITLE},
        "now": {"type": "str"},
        "email": {"type": "dict", "options": EMAIL_OPTIONS, "required_together": [["username", "password"]]},
        "webhook": {"type": "dict", "options": WEBHOOK_OPTIONS},
    },
    required_one_of=[["email", "webhook"]],
)

Delivery = tuple[dict[str, Any], Callable[[], Mapping[str, Any]]]
"""What a channel reports (``sent`` entry) and the call that delivers it (returning details to add)."""


def email_settings(options: Mapping[str, Any]) -> EmailSettings:
    """The validated e-mail settings (:class:`AlertConfigError` names the bad option)."""
    return EmailSettings(
        smtp_host=options["smtp_host"], smtp_port=options["smtp_port"], sender=options["from"],
        to=tuple(options["to"] or ()), starttls=options["starttls"], validate_certs=options["validate_certs"],
        username=options["username"], password=options["password"], subject_prefix=options["subject_prefix"],
        timeout=options["timeout"], allow_plaintext_auth=options["allow_plaintext_auth"],
    )


def webhook_settings(options: Mapping[str, Any]) -> WebhookSettings:
    """The validated webhook settings (:class:`AlertConfigError` names the bad option, never a secret)."""
    return WebhookSettings(
        url=options["url"], format=options["format"], timeout=options["timeout"], headers=options["headers"],
        validate_certs=options["validate_certs"], allow_http=options["allow_http"],
    )


def email_delivery(settings: EmailSettings, report: FleetReport, findings: Sequence[AlertFinding],
                   markdown: str, events: Sequence[AlertEvent]) -> Delivery:
    message = build_email(report, findings, markdown, settings, events)

    def send() -> Mapping[str, Any]:
        send_email(message, settings)
        return {}

    return {"channel": "email", "to": list(settings.to), "subject": message["Subject"]}, send


def webhook_delivery(settings: WebhookSettings, report: FleetReport, findings: Sequence[AlertFinding],
                     markdown: str, events: Sequence[AlertEvent]) -> Delivery:
    payload = webhook_payload(report, findings, settings.format, markdown, events)
    return (
        {"channel": "webhook", "endpoint": settings.endpoint, "format": settings.format},
        lambda: {"status": post_webhook(payload, settings)},
    )


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    DATA_OPTIONS = ("facts",)  # a fleet's data: passed on uncopied

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        if not args["email"] and not args["webhook"]:
            raise AnsibleActionFail("email and webhook are both empty: give at least one channel to alert on")
        if args["facts"] is None and args["events"] is None:
            raise AnsibleActionFail("give facts (the fleet's exchange_pki facts), events, or both: there is nothing "
                                    "to alert on")
        try:
            check_title(args["title"])
            events = check_events(args["events"])
            channels = [
                (email_delivery, email_settings(args["email"]) if args["email"] else None),
                (webhook_delivery, webhook_settings(args["webhook"]) if args["webhook"] else None),
            ]
        except AlertConfigError as error:
            raise AnsibleActionFail(str(error)) from None
        report = build_report(args["facts"] or {}, title=args["title"], now=report_time(args["now"]))
        findings = select_findings(report, args["min_severity"])
        events = select_events(events, args["min_severity"])
        result: dict[str, Any] = {
            "changed": False, "triggered": bool(findings or events), "findings": len(findings),
            "events": len(events), "sent": [],
        }
        if args["facts"] is not None:
            result["summary"] = report.summary.as_dict()
        if not findings and not events:
            return result
        markdown = alert_markdown(report, events, markdown_text(report) if args["facts"] else "")
        errors = []
        deliveries = [make_delivery(settings, report, findings, markdown, events)
                      for make_delivery, settings in channels if settings is not None]
        for record, send in deliveries:
            try:
                record.update(send() if not self.check_mode else {})
            except AlertDeliveryError as error:
                errors.append(str(error))
                continue
            result["sent"].append({**record, "delivered": not self.check_mode})
        result["changed"] = bool(result["sent"])
        if errors:
            result.update(failed=True, msg="alert delivery failed: " + "; ".join(errors))
        return result
