# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Fleet alerts: select the findings at or above a severity and deliver them by e-mail and webhook.

Payload builders are pure functions of the :class:`~._report.FleetReport`; :func:`send_email` and
:func:`post_webhook` do the I/O and raise :class:`AlertDeliveryError` naming the stage that failed. Error
messages never contain the SMTP password, the webhook URL's path or query (Slack and Teams put their secret
there) or header values.

:class:`EmailSettings` and :class:`WebhookSettings` validate themselves when built and raise
:class:`AlertConfigError` naming the option: a caller that builds every channel's settings before sending
anything sends nothing when any input is bad. Text that comes from the certificates (subjects, messages) is
made inert before it goes into Slack mrkdwn or a Teams card: it cannot render a link or a mention there.
"""

from __future__ import annotations

import base64
import dataclasses
import email.errors
import email.headerregistry
import email.message
import email.policy
import email.utils
import ipaddress
import json
import math
import re
import smtplib
import socket
import ssl
import threading
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
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control, one_line
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


class AlertConfigError(ExchangePkiError, ValueError):
    """An alert option is invalid; the message names the option and never contains a secret value."""


MAX_TIMEOUT = 3600.0
"""The longest timeout accepted, in seconds (a socket timeout is per network operation)."""
MAX_TEXT = 256
"""The longest one-line text option (title, subject prefix, user name)."""
MAX_URL = 8192
MAX_HEADER_VALUE = 8192
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection"})
"""Headers the HTTP client sets itself; a caller's value would break the request's framing or routing."""

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Narrower than _text.CONTROL on purpose: an HTTP field value may hold TAB (RFC 9110 section 5.5), and a header value
# must be ASCII anyway (checked apart, with its own message), so C1 and U+2028/U+2029 never reach this.
_HEADER_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*")
_MAILBOX = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>")


def _quoted(value: str, limit: int = 80) -> str:
    """``value`` for an error message: quoted, escaped, shortened."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _check_line(option: str, value: Any, *, empty: bool = False, limit: int = MAX_TEXT) -> str:
    """One line of text: a string without control characters (CR, LF, NUL...), at most ``limit`` characters."""
    if not isinstance(value, str):
        raise AlertConfigError(f"{option} must be a string, not {type(value).__name__}")
    if not value.strip() and not empty:
        raise AlertConfigError(f"{option} is empty")
    if has_control(value):
        raise AlertConfigError(f"{option} contains a control character (CR, LF, NUL or another) ({_quoted(value)}); "
                               "give one line of text")
    if _SURROGATE.search(value):
        raise AlertConfigError(f"{option} holds a lone surrogate ({_quoted(value)}), which UTF-8 cannot encode")
    if len(value) > limit:
        raise AlertConfigError(f"{option} is longer than {limit} characters")
    return value


def check_title(value: Any, option: str = "title") -> str:
    """A report title usable in a mail subject and a chat message: one line, not empty."""
    return _check_line(option, value)


def _check_port(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AlertConfigError(f"{option} must be an integer, not {type(value).__name__}")
    if not 1 <= value <= 65535:
        raise AlertConfigError(f"{option} must be a TCP port from 1 to 65535, not {value}")
    return value


def _check_timeout(option: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AlertConfigError(f"{option} must be a number of seconds, not {type(value).__name__}")
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise AlertConfigError(f"{option} must be a number of seconds greater than 0 and at most "
                               f"{MAX_TIMEOUT:g}, not {value!r}")
    return float(value)


def _check_host(option: str, value: Any) -> str:
    """A host name (ASCII, A-label form for international names) or an IP address."""
    _check_line(option, value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        raise AlertConfigError(f"{option} must be a host name or an IP address, not {_quoted(value)} "
                               "(give an international name in its A-label form, xn--...)")
    return value


def _check_addr_spec(option: str, value: str) -> email.headerregistry.Address:
    if not value.isascii():
        raise AlertConfigError(f"{option}: {_quoted(value)} is not ASCII; international addresses (SMTPUTF8) are "
                               "not supported (give the domain in its A-label form, xn--...)")
    try:
        address = email.headerregistry.Address(addr_spec=value)
    except (ValueError, IndexError, email.errors.HeaderParseError):
        address = None
    domain = address.domain if address else ""
    literal = domain.startswith("[") and domain.endswith("]")
    if literal:
        try:
            ipaddress.ip_address(domain[1:-1].removeprefix("IPv6:"))
        except ValueError:
            literal = False
    if (address is None or not address.username or not (literal or _DOMAIN.fullmatch(domain))
            or len(address.username) > 64 or len(value) > 254):
        raise AlertConfigError(f"{option}: {_quoted(value)} is not an e-mail address (local-part@domain)")
    return address


def parse_mailbox(option: str, value: Any) -> email.headerregistry.Address:
    """``a@b.c`` or ``Display Name <a@b.c>``, the address checked as an RFC 5322 addr-spec."""
    text = _check_line(option, value).strip()
    match = _MAILBOX.fullmatch(text)
    if match is None:
        return _check_addr_spec(option, text)
    name = match.group("name").strip()
    if len(name) > 1 and name.startswith('"') and name.endswith('"'):
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    address = _check_addr_spec(option, match.group("addr").strip())
    return email.headerregistry.Address(display_name=name, username=address.username, domain=address.domain)


def _check_url(value: Any, allow_http: bool) -> str:
    """The webhook URL: http(s) only, no credentials; errors never show it (it holds the secret)."""
    option = "webhook.url"
    if not isinstance(value, str):
        raise AlertConfigError(f"{option} must be a string, not {type(value).__name__}")
    if not value:
        raise AlertConfigError(f"{option} is empty")
    if len(value) > MAX_URL:
        raise AlertConfigError(f"{option} is longer than {MAX_URL} characters")
    if not value.isascii():
        raise AlertConfigError(f"{option} must be ASCII: percent-encode its path and query and give an "
                               "international host name in its A-label form (xn--...)")
    if has_control(value) or " " in value:
        raise AlertConfigError(f"{option} contains a space or a control character (CR, LF, NUL or another); "
                               "the URL is not shown")
    parts = urllib.parse.urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        raise AlertConfigError(f"{option} is an http:// URL: the alert and the URL's token would cross the "
                               "network unencrypted. Use https://, or set webhook.allow_http: true to accept that")
    if scheme not in ("http", "https"):
        raise AlertConfigError(f"{option} must be an https:// URL (or http:// with webhook.allow_http: true); "
                               "other schemes are refused and the URL is not shown")
    if "@" in parts.netloc:
        raise AlertConfigError(f"{option} must not contain credentials (user:password@host); give them as a "
                               "header in webhook.headers, for example Authorization")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or not parts.hostname:
        raise AlertConfigError(f"{option} has no host or an invalid port (1 to 65535); the URL is not shown")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        if not _HOSTNAME.fullmatch(parts.hostname):
            raise AlertConfigError(f"{option} has an invalid host name; the URL is not shown") from None
    return value


def _check_headers(headers: Mapping[Any, Any] | None) -> dict[str, str]:
    """Header names as HTTP tokens, values as one line; errors name the header, never its value."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise AlertConfigError(f"webhook.headers must be a dictionary of name: value, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for number, (raw_name, raw_value) in enumerate(headers.items(), start=1):
        name = str(raw_name) if isinstance(raw_name, (str, int)) and not isinstance(raw_name, bool) else ""
        if not _TOKEN.fullmatch(name) or len(name) > 256:
            raise AlertConfigError(
                f"webhook.headers: the name of header #{number} is not a valid HTTP header name (letters, digits "
                "and !#$%&'*+-.^_`|~ only: no space, colon, CR, LF or NUL); the header is not shown")
        if name.lower() in FRAMING_HEADERS:
            raise AlertConfigError(f"webhook.headers: {name} is set by the HTTP client and cannot be given")
        if name.lower() in seen:
            raise AlertConfigError(f"webhook.headers: {name} is given twice (header names ignore case)")
        seen.add(name.lower())
        if isinstance(raw_value, bool) or not isinstance(raw_value, (str, int, float)):
            kind = "null" if raw_value is None else type(raw_value).__name__
            raise AlertConfigError(f"webhook.headers: the value of {name} must be a string, not {kind}")
        value = str(raw_value)
        if not value.strip():
            raise AlertConfigError(f"webhook.headers: the value of {name} is empty")
        if _HEADER_VALUE_CONTROL.search(value):
            raise AlertConfigError(f"webhook.headers: the value of {name} contains CR, LF, NUL or another control "
                                   "character (the value is not shown); give it on one line")
        if not value.isascii():
            raise AlertConfigError(f"webhook.headers: the value of {name} must be ASCII (the value is not shown)")
        if len(value) > MAX_HEADER_VALUE:
            raise AlertConfigError(f"webhook.headers: the value of {name} is longer than {MAX_HEADER_VALUE} "
                                   "characters")
        checked[name] = value
    return checked


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


EVENT_SEVERITIES = ("critical", "warning", "info")
EVENT_FIELDS = ("severity", "kind", "summary", "server", "certificate", "step", "error")
EVENT_LIMITS = {"kind": 64, "summary": 1024, "server": 256, "certificate": 256, "step": 256, "error": 4096}
"""The longest text of each event field (an error from a failed step can be long, a server name cannot)."""
_KIND = re.compile(r"[a-z0-9_]+")


@dataclasses.dataclass(frozen=True)
class AlertEvent:
    """Something that happened (a failed rollout, a stalled renewal...), told by the caller: ``summary`` is one
    line, the optional fields say where (``server``, ``certificate``, ``step``) and what failed (``error``)."""

    severity: str
    summary: str
    kind: str | None = None
    server: str | None = None
    certificate: str | None = None
    step: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in EVENT_FIELDS}

    def details(self) -> list[tuple[str, str]]:
        """The optional fields that are set, as (name, value) in a fixed order."""
        return [(name, value) for name in ("server", "certificate", "step", "error")
                if (value := getattr(self, name))]

    def line(self) -> str:
        """The event as one line of plain text: ``[severity] kind: summary (server: ...; step: ...; error: ...)``."""
        details = "; ".join(f"{name}: {value}" for name, value in self.details())
        return f"[{self.severity}] {self.kind or 'event'}: {self.summary}" + (f" ({details})" if details else "")


def _check_event_text(option: str, value: Any, limit: int, *, required: bool) -> str | None:
    """One line of event text; unlike the other options the value is never echoed (it may hold anything a failed
    step printed)."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise AlertConfigError(f"{option} must be a string, not {'null' if value is None else type(value).__name__}")
    text = str(value)
    if not text.strip():
        if required:
            raise AlertConfigError(f"{option} is empty")
        return None
    if has_control(text):
        raise AlertConfigError(f"{option} contains CR, LF, NUL or another control character (the value is not "
                               "shown); give one line of text")
    if len(text) > limit:
        raise AlertConfigError(f"{option} is longer than {limit} characters")
    return text


def check_events(events: Any) -> list[AlertEvent]:
    """The validated events, in the order given (:class:`AlertConfigError` names ``events[i].field``)."""
    if events is None:
        return []
    if isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Sequence):
        raise AlertConfigError(f"events must be a list of events, not {type(events).__name__}")
    checked = []
    for index, event in enumerate(events):
        where = f"events[{index}]"
        if not isinstance(event, Mapping):
            raise AlertConfigError(f"{where} must be a dictionary (severity, kind, summary...), not "
                                   f"{type(event).__name__}")
        unknown = sorted(str(key) for key in event if key not in EVENT_FIELDS)
        if unknown:
            raise AlertConfigError(f"{where}: unknown field(s) {', '.join(map(_quoted, unknown))}; the fields are "
                                   f"{', '.join(EVENT_FIELDS)}")
        severity = event.get("severity")
        if severity not in EVENT_SEVERITIES:
            shown = _quoted(severity) if isinstance(severity, str) and not has_control(severity) else "it"
            raise AlertConfigError(f"{where}.severity must be one of {', '.join(EVENT_SEVERITIES)}, not {shown}")
        kind = _check_event_text(f"{where}.kind", event.get("kind"), EVENT_LIMITS["kind"], required=False)
        if kind is not None and not _KIND.fullmatch(kind):
            raise AlertConfigError(f"{where}.kind must be an id of lower-case letters, digits and _ (such as "
                                   f"renewal_failed), not {_quoted(kind)}")
        fields = {name: _check_event_text(f"{where}.{name}", event.get(name), EVENT_LIMITS[name],
                                          required=name == "summary")
                  for name in ("summary", "server", "certificate", "step", "error")}
        checked.append(AlertEvent(severity=severity, kind=kind, **fields))
    return checked


def select_events(events: Iterable[AlertEvent], min_severity: str) -> list[AlertEvent]:
    """The events whose severity is at least ``min_severity``, most severe first (else in the order given)."""
    threshold = SEVERITY_RANK[min_severity]
    return sorted((event for event in events if SEVERITY_RANK[event.severity] <= threshold),
                  key=lambda event: SEVERITY_RANK[event.severity])


def events_markdown(events: Sequence[AlertEvent]) -> str:
    """The events as a Markdown section (the mail body and the generic payload's ``text`` lead with it)."""
    if not events:
        return ""
    lines = ["## Events", ""]
    for event in events:
        lines.append(f"- **{event.severity}** {_md_inline(event.kind or 'event')}: {_md_inline(event.summary)}")
        lines.extend(f"  - {name}: {_md_inline(value)}" for name, value in event.details())
    return "\n".join(lines) + "\n\n"


def alert_markdown(report: FleetReport, events: Sequence[AlertEvent], fleet_markdown: str) -> str:
    """The mail body and generic ``text``: the title, the events, then the fleet's Markdown summary (when facts
    were given; ``fleet_markdown`` starts with the title)."""
    if not has_fleet(report):
        return (f"# {_md_inline(report.title)}\n\n_Generated {format_utc_datetime(report.generated_at)} by "
                f"exchange.pki._\n\n{events_markdown(events)}")
    if not events:
        return fleet_markdown
    title, separator, rest = fleet_markdown.partition("\n\n")
    return title + separator + events_markdown(events) + rest


def _md_inline(text: str) -> str:
    """``text`` as inert inline Markdown: no link, image, emphasis or HTML can form."""
    return re.sub(r"([\\`*\[\]<>|])", r"\\\1", one_line(text))


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


def alert_title(report: FleetReport, findings: Sequence[AlertFinding], events: Sequence[AlertEvent] = ()) -> str:
    """The subject: the count and worst severity of the findings; one event says its summary."""
    severity = worst([*(item.severity for item in findings), *(event.severity for event in events)]) or "no"
    servers = len({item.server for item in findings} | {event.server for event in events if event.server})
    if not events:
        return f"{report.title}: {len(findings)} {severity}-level finding(s) on {servers} server(s)"
    if len(events) == 1 and not findings:
        return f"{report.title}: [{severity}] {_clip(one_line(events[0].summary), 200)}"
    counted = f"{len(events)} event(s)" + (f" and {len(findings)} finding(s)" if findings else "")
    return f"{report.title}: {counted}, worst {severity}, on {servers} server(s)"


def _finding_line(item: AlertFinding) -> str:
    about = f" {item.subject} (expires {item.not_after[:10]})" if item.subject and item.not_after else ""
    return f"[{item.severity}] {item.server}: {item.id}{about}: {item.message}"


def has_fleet(report: FleetReport) -> bool:
    """Whether the alert carries a fleet (facts were given): without one, no fleet summary is shown."""
    return bool(report.hosts)


# --- webhook payloads -----------------------------------------------------------------------------


def generic_payload(report: FleetReport, findings: Sequence[AlertFinding], markdown: str,
                    events: Sequence[AlertEvent] = ()) -> dict[str, Any]:
    return {
        "title": alert_title(report, findings, events),
        "severity": worst([*(item.severity for item in findings), *(event.severity for event in events)]),
        "generated_at": format_utc_datetime(report.generated_at),
        "summary": report.summary.as_dict() if has_fleet(report) or not events else None,
        "events": [event.as_dict() for event in events],
        "findings": [item.as_dict() for item in findings],
        "text": markdown,
    }


def _shown(findings: Sequence[AlertFinding], events: Sequence[AlertEvent] = ()
           ) -> tuple[Sequence[AlertEvent], Sequence[AlertFinding], int]:
    """What a chat message lists one by one, events first, and how many more there are."""
    shown_events = events[:CHAT_FINDINGS_SHOWN]
    shown_findings = findings[:CHAT_FINDINGS_SHOWN - len(shown_events)]
    return shown_events, shown_findings, len(events) + len(findings) - len(shown_events) - len(shown_findings)


def _summary_facts(report: FleetReport, events: Sequence[AlertEvent] = ()) -> list[tuple[str, str]]:
    facts = []
    if events:
        counts = {severity: 0 for severity in EVENT_SEVERITIES}
        for event in events:
            counts[event.severity] += 1
        facts.append(("Events", ", ".join(f"{count} {severity}" for severity, count in counts.items() if count)))
    if not has_fleet(report) and events:
        return facts
    summary = report.summary
    earliest = summary.earliest_expiry
    facts += [
        ("Servers", f"{summary.hosts_collected} collected, {len(summary.hosts_missing)} not collected"),
        ("Certificates", str(summary.certificates)),
        ("Findings", ", ".join(f"{count} {severity}" for severity, count in summary.findings.items())),
    ]
    if earliest:
        facts.append(("Earliest expiry", f"{expiry_date(earliest)} {earliest.subject} on {earliest.host}"))
    return facts


_SLACK_BROADCAST = re.compile(r"@(?=(?:here|channel|everyone)\b)", re.IGNORECASE)
_ZERO_WIDTH_SPACE = "\u200b"


def _clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters without leaving half of an ``&amp;``-style entity."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 3]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "..."


def slack_text(text: str, limit: int = 3000) -> str:
    """``text`` made inert in Slack mrkdwn: one line, ``& < >`` escaped as Slack requires (so no ``<url|text>``
    link, ``<@user>`` or ``<!here>`` mention can form) and ``@here``/``@channel``/``@everyone`` broken."""
    escaped = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _clip(_SLACK_BROADCAST.sub("@" + _ZERO_WIDTH_SPACE, escaped), limit)


def teams_text(text: str, limit: int = 2000) -> str:
    """``text`` made inert in an Adaptive Card TextBlock or Fact (which render a subset of Markdown): one line (no
    list, heading or link reference definition can start), and no ``[text](url)`` link or image can form."""
    return _clip(one_line(text).replace("](", "]" + _ZERO_WIDTH_SPACE + "("), limit)


_TEAMS_COLORS = {"critical": "Attention", "warning": "Warning", "info": "Default"}


def teams_payload(report: FleetReport, findings: Sequence[AlertFinding],
                  events: Sequence[AlertEvent] = ()) -> dict[str, Any]:
    """A Teams message carrying an Adaptive Card (what a Teams Workflows webhook accepts)."""
    shown_events, shown, more = _shown(findings, events)
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": True,
         "text": teams_text(alert_title(report, findings, events))},
        {"type": "FactSet", "facts": [{"title": title, "value": teams_text(value)}
                                      for title, value in _summary_facts(report, events)]},
    ]
    body.extend({"type": "TextBlock", "wrap": True, "text": teams_text(event.line()),
                 "color": _TEAMS_COLORS[event.severity]} for event in shown_events)
    body.extend({"type": "TextBlock", "wrap": True, "text": teams_text(_finding_line(item)),
                 "color": "Attention" if item.severity == "critical" else "Warning"} for item in shown)
    if more:
        body.append({"type": "TextBlock", "isSubtle": True, "text": f"... and {more} more"})
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": "1.4", "body": body}
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]}


def slack_payload(report: FleetReport, findings: Sequence[AlertFinding],
                  events: Sequence[AlertEvent] = ()) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notification fallback) plus Block Kit ``blocks``."""
    title = alert_title(report, findings, events)
    shown_events, shown, more = _shown(findings, events)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(one_line(title), 150)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{slack_text(value, 1900)}"}
                                       for name, value in _summary_facts(report, events)]},
        {"type": "divider"},
    ]
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": slack_text(event.line())}}
                  for event in shown_events)
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": slack_text(_finding_line(item))}}
                  for item in shown)
    if more:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"... and {more} more"}]})
    return {"text": slack_text(title), "blocks": blocks}


def webhook_payload(report: FleetReport, findings: Sequence[AlertFinding], fmt: str, markdown: str,
                    events: Sequence[AlertEvent] = ()) -> dict[str, Any]:
    if fmt == "teams":
        return teams_payload(report, findings, events)
    if fmt == "slack":
        return slack_payload(report, findings, events)
    return generic_payload(report, findings, markdown, events)


# --- delivery -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EmailSettings:
    """Where and how to send the mail; validated when built (:class:`AlertConfigError` names the option).

    ``sender`` and each of ``to`` are ``a@b.c`` or ``Display Name <a@b.c>``. SMTP AUTH (``username``) needs
    ``starttls`` unless ``allow_plaintext_auth`` accepts sending the password in clear text.
    """

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
    allow_plaintext_auth: bool = False
    sender_address: email.headerregistry.Address = dataclasses.field(init=False, repr=False, compare=False)
    recipient_addresses: tuple[email.headerregistry.Address, ...] = dataclasses.field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            self._validate()
        except AlertConfigError as error:
            raise AlertConfigError(_scrub(str(error), self.secrets)) from None

    @property
    def secrets(self) -> tuple[str, ...]:
        """The password and the forms it takes on the wire (AUTH PLAIN, AUTH LOGIN), to scrub from messages."""
        if not isinstance(self.password, str) or not self.password:
            return ()
        forms = [self.password]
        for raw in (self.password, f"\0{self.username}\0{self.password}"):
            try:
                forms.append(base64.b64encode(raw.encode()).decode())
            except (UnicodeError, TypeError):
                pass
        return tuple(forms)

    def _validate(self) -> None:
        _check_host("email.smtp_host", self.smtp_host)
        _check_port("email.smtp_port", self.smtp_port)
        _check_timeout("email.timeout", self.timeout)
        _check_line("email.subject_prefix", self.subject_prefix, empty=True)
        object.__setattr__(self, "sender_address", parse_mailbox("email.from", self.sender))
        if isinstance(self.to, str) or not isinstance(self.to, Sequence):
            raise AlertConfigError("email.to must be a list of addresses")
        if not self.to:
            raise AlertConfigError("email.to is empty: give at least one recipient")
        object.__setattr__(self, "recipient_addresses",
                           tuple(parse_mailbox(f"email.to[{index}]", value) for index, value in enumerate(self.to)))
        if self.username is None:
            if self.password is not None:
                raise AlertConfigError("email.password is given without email.username")
            return
        _check_line("email.username", self.username)
        if not self.username.isascii():
            raise AlertConfigError("email.username must be ASCII (SMTP AUTH as Python's smtplib sends it)")
        if not isinstance(self.password, str) or not self.password:
            raise AlertConfigError("email.password is empty: SMTP AUTH with email.username needs a password")
        if has_control(self.password) or not self.password.isascii() or len(self.password) > 1024:
            raise AlertConfigError("email.password must be at most 1024 ASCII characters without control "
                                   "characters (CR, LF, NUL...); the password is not shown")
        if not self.starttls and not self.allow_plaintext_auth:
            raise AlertConfigError(
                "email: SMTP AUTH (email.username) over a connection without STARTTLS would send the password in "
                "clear text. Set email.starttls: true (the relay must offer STARTTLS), or set "
                "email.allow_plaintext_auth: true to accept that risk (for example for a relay on the same host)")


@dataclasses.dataclass(frozen=True)
class WebhookSettings:
    """Where and how to POST; validated when built (:class:`AlertConfigError` names the option, never a secret).

    ``url`` must be https, or http when ``allow_http`` is true, and carry no credentials; redirects are never
    followed. ``headers`` are HTTP tokens with one-line values.
    """

    url: str = dataclasses.field(repr=False)
    format: str = "generic"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    timeout: float = 30.0
    validate_certs: bool = True
    allow_http: bool = False
    ca_path: str | None = None
    """A PEM file of the CA certificates to trust for the webhook's server (the system's trust store when None)."""

    def __post_init__(self) -> None:
        values = [self.url, *(self.headers.values() if isinstance(self.headers, Mapping) else ())]
        secrets = [str(value) for value in values if isinstance(value, (str, int)) and not isinstance(value, bool)]
        try:
            _check_url(self.url, self.allow_http)
            if self.format not in WEBHOOK_FORMATS:
                raise AlertConfigError(f"webhook.format must be one of {', '.join(WEBHOOK_FORMATS)}")
            _check_timeout("webhook.timeout", self.timeout)
            object.__setattr__(self, "headers", _check_headers(self.headers))
        except AlertConfigError as error:
            raise AlertConfigError(_scrub(str(error), secrets)) from None

    @property
    def endpoint(self) -> str:
        """The URL reduced to scheme, host and port: safe to show (the path often holds the secret)."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        return f"{parts.scheme.lower()}://{host}{f':{parts.port}' if parts.port else ''}"

    @property
    def secrets(self) -> tuple[str, ...]:
        """The URL, the parts of it that may be the credential, and the header values (with their tokens)."""
        parts = urllib.parse.urlsplit(self.url)
        found = [self.url, self.url.split("://", 1)[-1], parts.path.strip("/"), parts.query]
        found += [segment for segment in parts.path.split("/") if len(segment) >= 8]
        found += [value for _name, value in urllib.parse.parse_qsl(parts.query) if len(value) >= 8]
        for value in self.headers.values():
            found += [value, *(token for token in value.split() if len(token) >= 8)]
        return tuple(sorted({secret for secret in found if secret}, key=len, reverse=True))


def build_email(report: FleetReport, findings: Sequence[AlertFinding], markdown: str,
                settings: EmailSettings, events: Sequence[AlertEvent] = ()) -> email.message.EmailMessage:
    """A text/plain message whose body is the Markdown summary (led by the events)."""
    # RFC 5322's hard line limit: the default 78 makes Python fold a subject starting with "[" before its
    # first word, which readers then show with a leading space.
    message = email.message.EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    message["Subject"] = f"{settings.subject_prefix}{one_line(alert_title(report, findings, events))}".strip()
    message["From"] = str(settings.sender_address)
    message["To"] = ", ".join(str(address) for address in settings.recipient_addresses)
    message["Date"] = email.utils.format_datetime(report.generated_at)
    message["Message-ID"] = email.utils.make_msgid(domain="exchange-pki.invalid")
    message.set_content(markdown)
    return message


def _scrub(text: str, secrets: Iterable[str | None]) -> str:
    for secret in sorted((secret for secret in secrets if secret), key=len, reverse=True):
        text = text.replace(secret, "********")
    return text


class _Deadline:
    """Ends an SMTP session that outlasts its timeout: a relay that drips its answers cannot hold the task.

    A socket timeout only bounds each read; at the deadline this shuts the session's socket down, which ends
    the read that is waiting (and, while the socket is still being connected, retries until it exists).
    """

    RETRY = 0.05

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self.stage = "connect"
        """The stage the session is in; at the deadline, :attr:`expired_in` keeps the one it had reached."""
        self.expired_in = ""
        self.smtp: smtplib.SMTP | None = None
        self._done = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done = True
        self._timer.cancel()

    def _expire(self) -> None:
        self.expired, self.expired_in = True, self.stage
        self._shut_down()

    def _shut_down(self) -> None:
        if self._done:
            return
        sock = self.smtp.sock if self.smtp is not None else None
        if sock is None:  # still connecting (each attempt is bounded by the socket timeout)
            self._timer = threading.Timer(self.RETRY, self._shut_down)
            self._timer.daemon = True
            self._timer.start()
            return
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS
        except OSError:
            pass


class _BoundedSMTP(smtplib.SMTP):
    """smtplib's client, known to its :class:`_Deadline` before it connects."""

    def __init__(self, deadline: _Deadline, host: str, port: int, timeout: float) -> None:
        deadline.smtp = self
        super().__init__(host, port, timeout=timeout)


def send_email(message: email.message.EmailMessage, settings: EmailSettings) -> None:
    """Deliver ``message``; ``settings.timeout`` bounds each network operation and the whole session."""
    deadline = _Deadline(settings.timeout)
    try:
        with deadline, _BoundedSMTP(deadline, settings.smtp_host, settings.smtp_port, settings.timeout) as smtp:
            if settings.starttls:
                deadline.stage = "STARTTLS"
                context = ssl.create_default_context()
                if not settings.validate_certs:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                smtp.starttls(context=context)
            if settings.username:
                deadline.stage = "login"
                smtp.login(settings.username, settings.password or "")
            deadline.stage = "send"
            smtp.send_message(message, from_addr=settings.sender_address.addr_spec,
                              to_addrs=[address.addr_spec for address in settings.recipient_addresses])
    except (smtplib.SMTPException, OSError, ValueError) as error:  # ValueError: e.g. UnicodeError from smtplib
        stage, reason = deadline.stage, _scrub(f"{type(error).__name__}: {error}", settings.secrets)
        if deadline.expired:
            stage = f"{deadline.expired_in} (timeout)"
            reason = f"the relay did not finish within {settings.timeout:g} s"
        raise AlertDeliveryError(f"e-mail via {settings.smtp_host}:{settings.smtp_port}", f"SMTP {stage}",
                                 reason) from None


def _post(payload: Mapping[str, Any], settings: WebhookSettings) -> int:
    headers = {"Content-Type": "application/json", **settings.headers}
    response = open_url(
        settings.url, data=json.dumps(payload).encode(), headers=headers, method="POST",
        timeout=settings.timeout, validate_certs=settings.validate_certs, follow_redirects="none",
        ca_path=settings.ca_path,
    )
    with response:
        return response.status


def post_webhook(payload: Mapping[str, Any], settings: WebhookSettings) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Any non-2xx answer is an error; redirects are not followed.

    Following one would POST the alert (and the headers) to wherever the webhook points, maybe with another scheme.
    ``settings.timeout`` bounds each network operation and the whole request: the POST runs in a daemon thread
    that is abandoned (and reported as a timeout) when the server has not answered completely in time.
    """
    channel = f"webhook {settings.endpoint}"
    outcome: dict[str, Any] = {}

    def post() -> None:
        try:
            outcome["status"] = _post(payload, settings)
        except Exception as error:  # noqa: BLE001 - reported by the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=post, name="exchange.pki webhook", daemon=True)
    worker.start()
    worker.join(settings.timeout)
    if worker.is_alive():
        raise AlertDeliveryError(channel, "HTTP POST (timeout)",
                                 f"the webhook did not answer completely within {settings.timeout:g} s")
    if "status" in outcome:
        return outcome["status"]
    error = outcome["error"]  # open_url raises HTTPError, URLError, SSLValidationError, socket errors...
    code = getattr(error, "code", None)
    stage = f"HTTP POST (status {code})" if isinstance(code, int) else "HTTP POST"
    reason = f"{type(error).__name__}: {getattr(error, 'reason', None) or error}"
    if isinstance(error, (socket.timeout, TimeoutError)):
        stage = "HTTP POST (timeout)"
    elif isinstance(code, int) and 300 <= code < 400:
        reason = "the webhook answered with a redirect, which is not followed: configure the URL it redirects to"
    raise AlertDeliveryError(channel, stage, _scrub(reason, settings.secrets))
