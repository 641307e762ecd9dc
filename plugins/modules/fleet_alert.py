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
    (or one of O(events)) is at or above O(min_severity), sends an alert by e-mail (O(email)) and/or to a
    webhook (O(webhook)). When none reaches it, nothing is sent and RV(changed) is V(false).
  - The mail is C(text/plain) (UTF-8) and its body is the fleet's Markdown summary, the same text as
    M(exchange.pki.fleet_report) writes.
  - Every option is checked before anything is sent, also when no finding triggers. A bad option fails the task
    with a message naming it, and no channel sends anything.
  - Every configured channel is tried even when another one fails; the task then fails naming the channel and
    the stage (SMTP connect, STARTTLS, login or send; HTTP POST with its status) and RV(sent) lists what was
    delivered. Messages never contain the SMTP password, the webhook URL, header values or a header name that is
    not a valid one.
  - Text taken from the certificates (subjects, finding messages) is made inert in chat messages. For
    V(slack), C(&), C(<) and C(>) are escaped as Slack requires, so no C(<url|text>) link, C(<@user>) or
    C(<!here>) mention can form, and C(@here), C(@channel) and C(@everyone) get a zero-width space after the
    C(@). For V(teams), a zero-width space separates C(]) from C((), so no Markdown link or image can form in
    the card. In both, line breaks and other control characters become spaces.
  - O(events) lets a playbook alert on what happened during a run (a failed or rolled-back rollout, a stalled
    renewal; M(exchange.pki.renewal_status) returns them ready for this option). Events at or above
    O(min_severity) trigger like findings and are listed first in the mail, the webhook payload and the chat
    messages, with the same escaping as certificate subjects.
options:
  facts:
    description:
      - The fleet's facts, a dictionary of inventory host name to that host's C(exchange_pki) fact, as for
        M(exchange.pki.fleet_report). Hosts without a fact are listed in the summary; they do not trigger.
      - Give O(facts), O(events) or both. Without O(facts) the alert carries no fleet summary.
    type: dict
  events:
    description:
      - Things that happened, told by the playbook, each one an alert line of its own. Every text field is one
        line (CR, LF, NUL or another control character fails the task, naming the field but not showing its
        value).
    type: list
    elements: dict
    suboptions:
      severity:
        description: How bad it is; compared with O(min_severity).
        type: str
        required: true
        choices: [critical, warning, info]
      kind:
        description:
          - What happened, an id of lower-case letters, digits and C(_) of at most 64 characters, for example
            V(renewal_failed), V(rolled_back), V(renewal_stalled), V(auth_staged), V(auth_published) or
            V(auth_refused).
        type: str
      summary:
        description: The event in one line of at most 1024 characters.
        type: str
        required: true
      server:
        description: The server it happened on (at most 256 characters).
        type: str
      certificate:
        description: The certificate it is about, its identity or thumbprint (at most 256 characters).
        type: str
      step:
        description: The step that failed, for example V(verify) (at most 256 characters).
        type: str
      error:
        description: The error, on one line of at most 4096 characters.
        type: str
  min_severity:
    description:
      - The lowest finding or event severity that triggers an alert. V(warning) also sends for V(critical)
        findings and events. Events below it are left out of the alert.
    type: str
    choices: [critical, warning, info]
    default: critical
  title:
    description:
      - Title of the fleet report, used in the subject and the webhook title.
      - One line of at most 256 characters (no CR, LF, NUL or other control character).
    type: str
    default: Exchange certificate report
  now:
    description:
      - The alert's time, an ISO-8601 date and time; the default is the controller's current UTC time.
      - It must lie from V(1970-01-01T00:00:00Z) to before V(9000-01-01T00:00:00Z), as the O(now) of
        M(exchange.pki.fleet_report) must.
    type: str
  email:
    description:
      - Send the alert by e-mail through an SMTP relay.
    type: dict
    suboptions:
      smtp_host:
        description:
          - The SMTP relay, a host name or an IP address. Give an international name in its A-label form
            (C(xn--...)).
        type: str
        required: true
      smtp_port:
        description: Its port, from 1 to 65535.
        type: int
        default: 25
      from:
        description:
          - The sender address, C(alerts@contoso.com) or C(PKI alerts <alerts@contoso.com>). The address is
            checked as an RFC 5322 addr-spec (ASCII; international addresses are not supported); the display
            name only goes into the C(From) header.
        type: str
        required: true
      to:
        description:
          - The recipients, at least one, each in the form of O(email.from) (one address per element).
        type: list
        elements: str
        required: true
      starttls:
        description:
          - Upgrade the connection with STARTTLS before authenticating and sending. When the relay does not offer
            STARTTLS, the task fails before authenticating or sending.
        type: bool
        default: false
      validate_certs:
        description: Verify the relay's certificate and name during STARTTLS.
        type: bool
        default: true
      username:
        description:
          - Authenticate with this user name (SMTP AUTH); requires O(email.password), and O(email.starttls) unless
            O(email.allow_plaintext_auth) is set. ASCII, one line.
        type: str
      password:
        description:
          - The password of O(email.username), ASCII without control characters. Never logged or returned.
        type: str
      allow_plaintext_auth:
        description:
          - Authenticate even though the connection is not encrypted (O(email.starttls=false)), which sends the
            password in clear text (base64). Without it, O(email.username) without O(email.starttls) fails the
            task before anything is sent.
          - Only for a relay on the same host or a trusted network segment.
        type: bool
        default: false
      subject_prefix:
        description: Text put before the subject; one line of at most 256 characters.
        type: str
        default: "[exchange.pki] "
      timeout:
        description:
          - Seconds the whole SMTP session (connect, STARTTLS, login, send) may take, and each network operation
            in it; greater than 0 and at most 3600. A relay that answers too slowly fails the task at the stage
            it had reached.
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
          - An C(https://) URL; C(http://) only with O(webhook.allow_http). Other schemes (C(file), C(ftp),
            C(data)...) and URLs with credentials (C(user:password@host); give them in O(webhook.headers)) fail
            the task. ASCII only; percent-encode the path and give an international host name in its A-label form.
          - Redirects are not followed (a redirected POST fails, naming its status); give the final URL.
        type: str
        required: true
      allow_http:
        description:
          - Accept an C(http://) URL, which sends the alert, the URL and the headers unencrypted.
        type: bool
        default: false
      format:
        description:
          - >-
            V(generic): C({"title", "severity", "generated_at", "summary", "events": [{"severity", "kind",
            "summary", "server", "certificate", "step", "error"}], "findings": [{"server", "severity", "id",
            "message", "remediation", "thumbprint", "subject", "not_after"}], "text"}) where C(summary) is
            RV(summary) (V(null) when only O(events) were given) and C(text) the Markdown summary, led by the
            events.
          - >-
            V(teams): a Microsoft Teams message for a Workflows webhook, C({"type": "message", "attachments":
            [{"contentType": "application/vnd.microsoft.card.adaptive", "content": <Adaptive Card 1.4>}]}); the
            card holds the title, a FactSet of the fleet summary and the first 10 events and findings (events
            first).
          - >-
            V(slack): a Slack incoming-webhook message, C({"text": <title>, "blocks": [header, section with the
            summary fields, divider, one section per event, then per finding (first 10 in all), context "... and N
            more"]}).
        type: str
        choices: [generic, teams, slack]
        default: generic
      headers:
        description:
          - Extra HTTP headers, for example an C(Authorization) token. Never logged or returned.
          - Names are HTTP tokens (letters, digits and C(!#$%&'*+-.^_`|~)), each given once; C(Content-Length),
            C(Transfer-Encoding), C(Host) and C(Connection) cannot be set. Values are non-empty ASCII strings (or
            numbers) on one line, without CR, LF, NUL or another control character.
        type: dict
        default: {}
      timeout:
        description:
          - Seconds the whole request may take until the webhook has answered, and each network operation in it;
            greater than 0 and at most 3600.
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
  - When O(webhook.timeout) passes before the webhook has answered, the task fails, but the server may still
    have received the alert.
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

- name: Tell the on-call channel about a failed rollout (events need no facts)
  exchange.pki.fleet_alert:
    events:
      - severity: critical
        kind: renewal_failed
        summary: The renewal of mail.contoso.com failed on ex2
        server: ex2
        certificate: mail.contoso.com
        step: verify
        error: IIS on ex2 still serves the old certificate
    webhook:
      url: "{{ vault_slack_webhook_url }}"
      format: slack
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
  description: Whether some finding or event reached O(min_severity).
  returned: success
  type: bool
  sample: true
findings:
  description: How many findings reached O(min_severity).
  returned: success
  type: int
  sample: 4
events:
  description: How many events reached O(min_severity).
  returned: success
  type: int
  sample: 1
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
  returned: when O(facts) is given
  type: dict
  sample:
    hosts: 5
    hosts_collected: 4
    hosts_missing: [ex5]
    certificates: 19
    findings: {critical: 4, warning: 7, info: 0}
"""
