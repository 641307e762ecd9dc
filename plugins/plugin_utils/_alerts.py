# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Fleet alerts: select the findings at or above a severity and deliver them by e-mail and webhook.

Payload builders are pure functions of the :class:`~._report.FleetReport`; :func:`send_email` and
:func:`post_webhook` do the I/O and raise :class:`AlertDeliveryError` naming the stage that failed. Error
messages never contain the SMTP password, the webhook URL's path or query (Slack and Teams put their secret
there) or header values.
"""

from __future__ import annotations

import dataclasses
import email.message
import email.policy
import email.utils
import json
import smtplib
import socket
import ssl
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible.module_utils.urls import open_url

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import SEVERITY_RANK
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    FleetReport,
    expiry_date,
    worst,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime

WEBHOOK_FORMATS = ("generic", "teams", "slack")
CHAT_FINDINGS_SHOWN = 10
"""Findings listed one by one in a Teams or Slack message (their size limits are small); the rest is counted."""


class AlertDeliveryError(ExchangePkiError):
    """Delivering an alert failed; ``channel`` and ``stage`` say where."""

    def __init__(self, channel: str, stage: str, reason: str) -> None:
        super().__init__(f"{channel}: {stage} failed: {reason}")
        self.channel = channel
        self.stage = stage


@dataclasses.dataclass(frozen=True)
class AlertFinding:
    """One finding to alert on, with the certificate it is about (when it is about one)."""

    server: str
    severity: str
    id: str
    message: str
    remediation: str
    thumbprint: str | None
    subject: str | None
    not_after: str | None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def select_findings(report: FleetReport, min_severity: str) -> list[AlertFinding]:
    """The findings whose severity is at least ``min_severity``, most severe first, then by server."""
    threshold = SEVERITY_RANK[min_severity]
    selected = []
    for host in report.hosts:
        for finding in host.findings:
            if SEVERITY_RANK[finding["severity"]] <= threshold:  # 0 is the most severe
                cert = host.certificate(finding.get("thumbprint"))
                selected.append(AlertFinding(
                    server=host.host,
                    severity=finding["severity"],
                    id=finding["id"],
                    message=finding.get("message") or "",
                    remediation=finding.get("remediation") or "",
                    thumbprint=finding.get("thumbprint"),
                    subject=cert.subject if cert else None,
                    not_after=cert.data.get("not_after") if cert else None,
                ))
    return sorted(selected, key=lambda item: SEVERITY_RANK[item.severity])


def alert_title(report: FleetReport, findings: Sequence[AlertFinding]) -> str:
    severity = worst(item.severity for item in findings) or "no"
    servers = len({item.server for item in findings})
    return f"{report.title}: {len(findings)} {severity}-level finding(s) on {servers} server(s)"


def _finding_line(item: AlertFinding) -> str:
    about = f" {item.subject} (expires {item.not_after[:10]})" if item.subject and item.not_after else ""
    return f"[{item.severity}] {item.server}: {item.id}{about}: {item.message}"


# --- webhook payloads -----------------------------------------------------------------------------


def generic_payload(report: FleetReport, findings: Sequence[AlertFinding], markdown: str) -> dict[str, Any]:
    return {
        "title": alert_title(report, findings),
        "severity": worst(item.severity for item in findings),
        "generated_at": format_utc_datetime(report.generated_at),
        "summary": report.summary.as_dict(),
        "findings": [item.as_dict() for item in findings],
        "text": markdown,
    }


def _shown(findings: Sequence[AlertFinding]) -> tuple[Sequence[AlertFinding], int]:
    return findings[:CHAT_FINDINGS_SHOWN], max(len(findings) - CHAT_FINDINGS_SHOWN, 0)


def _summary_facts(report: FleetReport) -> list[tuple[str, str]]:
    summary = report.summary
    earliest = summary.earliest_expiry
    facts = [
        ("Servers", f"{summary.hosts_collected} collected, {len(summary.hosts_missing)} not collected"),
        ("Certificates", str(summary.certificates)),
        ("Findings", ", ".join(f"{count} {severity}" for severity, count in summary.findings.items())),
    ]
    if earliest:
        facts.append(("Earliest expiry", f"{expiry_date(earliest)} {earliest.subject} on {earliest.host}"))
    return facts


def teams_payload(report: FleetReport, findings: Sequence[AlertFinding]) -> dict[str, Any]:
    """A Teams message carrying an Adaptive Card (what a Teams Workflows webhook accepts)."""
    shown, more = _shown(findings)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True, "text": alert_title(report, findings)},
        {"type": "FactSet", "facts": [{"title": title, "value": value} for title, value in _summary_facts(report)]},
    ]
    body.extend({"type": "TextBlock", "wrap": True, "text": _finding_line(item),
                 "color": "Attention" if item.severity == "critical" else "Warning"} for item in shown)
    if more:
        body.append({"type": "TextBlock", "isSubtle": True, "text": f"... and {more} more"})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


def slack_payload(report: FleetReport, findings: Sequence[AlertFinding]) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notification fallback) plus Block Kit ``blocks``."""
    title = alert_title(report, findings)
    shown, more = _shown(findings)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"}
                                       for name, value in _summary_facts(report)]},
        {"type": "divider"},
    ]
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": _finding_line(item)[:3000]}} for item in shown)
    if more:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"... and {more} more"}]})
    return {"text": title, "blocks": blocks}


def webhook_payload(report: FleetReport, findings: Sequence[AlertFinding], fmt: str, markdown: str) -> dict[str, Any]:
    if fmt == "teams":
        return teams_payload(report, findings)
    if fmt == "slack":
        return slack_payload(report, findings)
    return generic_payload(report, findings, markdown)


# --- delivery -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EmailSettings:
    smtp_host: str
    smtp_port: int
    sender: str
    to: tuple[str, ...]
    starttls: bool = False
    validate_certs: bool = True
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    subject_prefix: str = ""
    timeout: float = 30.0


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    url: str = dataclasses.field(repr=False)
    format: str = "generic"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    timeout: float = 30.0
    validate_certs: bool = True

    @property
    def endpoint(self) -> str:
        """The URL reduced to scheme, host and port: safe to show (the path often holds the secret)."""
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


def build_email(report: FleetReport, findings: Sequence[AlertFinding], markdown: str,
                settings: EmailSettings) -> email.message.EmailMessage:
    """A text/plain message whose body is the Markdown summary."""
    # RFC 5322's hard line limit: the default 78 makes Python fold a subject starting with "[" before its
    # first word, which readers then show with a leading space.
    message = email.message.EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    message["Subject"] = f"{settings.subject_prefix}{alert_title(report, findings)}".strip()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = email.utils.format_datetime(report.generated_at)
    message["Message-ID"] = email.utils.make_msgid(domain="exchange-pki.invalid")
    message.set_content(markdown)
    return message


def _scrub(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


def send_email(message: email.message.EmailMessage, settings: EmailSettings) -> None:
    stage = "connect"
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout) as smtp:
            if settings.starttls:
                stage = "STARTTLS"
                context = ssl.create_default_context()
                if not settings.validate_certs:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                smtp.starttls(context=context)
            if settings.username:
                stage = "login"
                smtp.login(settings.username, settings.password or "")
            stage = "send"
            smtp.send_message(message, from_addr=settings.sender, to_addrs=list(settings.to))
    except (smtplib.SMTPException, OSError) as error:
        reason = _scrub(f"{type(error).__name__}: {error}", (settings.password,))
        raise AlertDeliveryError(f"e-mail via {settings.smtp_host}:{settings.smtp_port}", f"SMTP {stage}",
                                 reason) from None


def post_webhook(payload: Mapping[str, Any], settings: WebhookSettings) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Any non-2xx answer is an error."""
    headers = {"Content-Type": "application/json", **settings.headers}
    channel = f"webhook {settings.endpoint}"
    try:
        response = open_url(
            settings.url, data=json.dumps(payload).encode(), headers=headers, method="POST",
            timeout=settings.timeout, validate_certs=settings.validate_certs, follow_redirects="safe",
        )
        with response:
            return response.status
    except Exception as error:  # open_url raises HTTPError, URLError, SSLValidationError, socket errors...
        code = getattr(error, "code", None)
        stage = f"HTTP POST (status {code})" if isinstance(code, int) else "HTTP POST"
        if isinstance(error, (socket.timeout, TimeoutError)):
            stage = "HTTP POST (timeout)"
        parts = urllib.parse.urlsplit(settings.url)
        reason = _scrub(f"{type(error).__name__}: {getattr(error, 'reason', None) or error}",
                        (settings.url, parts.path.strip("/"), parts.query, *settings.headers.values()))
        raise AlertDeliveryError(channel, stage, reason) from None
