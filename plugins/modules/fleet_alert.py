#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: fleet_alert
short_description: Alert by e-mail or webhook when the Exchange fleet's certificate findings reach a severity
version_added: 0.1.0
description:
  - Reads every host's C(exchange_pki) fact (see M(exchange.pki.fleet_report)) and, when at least one finding
    is at or above O(min_severity), sends an alert by e-mail (O(email)) and/or to a webhook (O(webhook)).
    When no finding reaches it, nothing is sent and RV(changed) is V(false).
  - The mail is C(text/plain) (UTF-8) and its body is the fleet's Markdown summary, the same text as
    M(exchange.pki.fleet_report) writes.
  - Every configured channel is tried even when another one fails; the task then fails naming the channel and
    the stage (SMTP connect, STARTTLS, login or send; HTTP POST with its status) and RV(sent) lists what was
    delivered. Messages never contain the SMTP password, the webhook URL's path or query, or header values.
options:
  facts:
    description:
      - The fleet's facts, a dictionary of inventory host name to that host's C(exchange_pki) fact, as for
        M(exchange.pki.fleet_report). Hosts without a fact are listed in the summary; they do not trigger.
    type: dict
    required: true
  min_severity:
    description:
      - The lowest finding severity that triggers an alert. V(warning) also sends for V(critical) findings.
    type: str
    choices: [critical, warning, info]
    default: critical
  title:
    description:
      - Title of the fleet report, used in the subject and the webhook title.
    type: str
    default: Exchange certificate report
  now:
    description:
      - The alert's time, an ISO-8601 date and time; the default is the controller's current UTC time.
    type: str
  email:
    description:
      - Send the alert by e-mail through an SMTP relay.
    type: dict
    suboptions:
      smtp_host:
        description: The SMTP relay.
        type: str
        required: true
      smtp_port:
        description: Its port.
        type: int
        default: 25
      from:
        description: The sender address.
        type: str
        required: true
      to:
        description: The recipients.
        type: list
        elements: str
        required: true
      starttls:
        description: Upgrade the connection with STARTTLS before authenticating and sending.
        type: bool
        default: false
      validate_certs:
        description: Verify the relay's certificate and name during STARTTLS.
        type: bool
        default: true
      username:
        description: Authenticate with this user name (SMTP AUTH); requires O(email.password).
        type: str
      password:
        description: The password of O(email.username). Never logged or returned.
        type: str
      subject_prefix:
        description: Text put before the subject.
        type: str
        default: "[exchange.pki] "
      timeout:
        description: Seconds to wait for the relay.
        type: float
        default: 30
  webhook:
    description:
      - POST the alert as JSON to a webhook.
    type: dict
    suboptions:
      url:
        description:
          - The webhook URL. Treated as a secret (Slack and Teams put the credential in the path); only its
            scheme, host and port are ever shown.
        type: str
        required: true
      format:
        description:
          - >-
            V(generic): C({"title", "severity", "generated_at", "summary", "findings": [{"server", "severity",
            "id", "message", "remediation", "thumbprint", "subject", "not_after"}], "text"}) where C(summary) is
            RV(summary) and C(text) the Markdown summary.
          - >-
            V(teams): a Microsoft Teams message for a Workflows webhook, C({"type": "message", "attachments":
            [{"contentType": "application/vnd.microsoft.card.adaptive", "content": <Adaptive Card 1.4>}]}); the
            card holds the title, a FactSet of the fleet summary and the first 10 findings.
          - >-
            V(slack): a Slack incoming-webhook message, C({"text": <title>, "blocks": [header, section with the
            summary fields, divider, one section per finding (first 10), context "... and N more"]}).
        type: str
        choices: [generic, teams, slack]
        default: generic
      headers:
        description: Extra HTTP headers, for example an C(Authorization) token. Never logged or returned.
        type: dict
        default: {}
      timeout:
        description: Seconds to wait for the webhook.
        type: float
        default: 30
      validate_certs:
        description: Verify the webhook's TLS certificate.
        type: bool
        default: true
extends_documentation_fragment:
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is sent; RV(sent) lists what would be, with C(delivered=false).
  diff_mode:
    support: none
  platform:
    details:
      - Runs on the controller; no managed host is contacted. Run it once (C(run_once)) for the whole fleet.
notes:
  - An alert is sent at every run that finds a triggering finding; schedule the play (for example an AWX
    schedule) at the rate you want to be reminded.
  - Plain SMTP, or STARTTLS with O(email.starttls); implicit TLS (port 465) is not supported.
seealso:
  - module: exchange.pki.fleet_report
  - name: Adaptive Cards
    description: The card format of the V(teams) payload.
    link: https://adaptivecards.io/
  - name: Slack Block Kit
    description: The message format of the V(slack) payload.
    link: https://api.slack.com/block-kit
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Mail the on-call team when a certificate finding is critical
  exchange.pki.fleet_alert:
    facts: "{{ fleet_facts }}"
    email:
      smtp_host: smtp.contoso.com
      smtp_port: 587
      starttls: true
      username: alerts@contoso.com
      password: "{{ vault_smtp_password }}"
      from: alerts@contoso.com
      to: [exchange-admins@contoso.com]
  run_once: true
  delegate_to: localhost

- name: Post warnings and worse to a Teams channel
  exchange.pki.fleet_alert:
    facts: "{{ fleet_facts }}"
    min_severity: warning
    webhook:
      url: "{{ vault_teams_workflow_url }}"
      format: teams
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
changed:
  description: Whether an alert was (or in check mode would be) sent.
  returned: always
  type: bool
  sample: true
triggered:
  description: Whether some finding reached O(min_severity).
  returned: success
  type: bool
  sample: true
findings:
  description: How many findings reached O(min_severity).
  returned: success
  type: int
  sample: 4
sent:
  description: The alerts sent (in check mode, that would be sent).
  returned: success
  type: list
  elements: dict
  sample:
    - channel: email
      to: [exchange-admins@contoso.com]
      subject: "[exchange.pki] Exchange certificate report: 4 critical-level finding(s) on 3 server(s)"
      delivered: true
    - {channel: webhook, endpoint: "https://contoso.webhook.office.com", format: teams, status: 202, delivered: true}
summary:
  description: The fleet summary, as M(exchange.pki.fleet_report) returns it.
  returned: success
  type: dict
  sample:
    hosts: 5
    hosts_collected: 4
    hosts_missing: [ex5]
    certificates: 19
    findings: {critical: 4, warning: 7, info: 0}
"""
