#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write the certificate report of an Exchange fleet (HTML, CSV, JSON, Markdown, Prometheus)
version_added: 0.1.0
description:
  - Reads every host's C(exchange_pki) fact (what M(exchange.pki.certificate_info) returns, see the
    collection's C(docs/facts.md)) and writes the fleet's certificate report to O(dest) on the controller.
  - Every format leads with the B(action plan), the distinct problems worst first, each with the servers it
    affects and the one thing to do first (the finding's remediation) and the page its rule comes from
    (Microsoft Learn or CSS-Exchange). The same certificate on several servers is one problem; a problem of the
    organisation's Auth certificate is one organisation-wide problem. Failover-cluster certificates, whose
    remediation says not to modify them, come after the problems of the same severity that can be acted on and
    say C(Inform, do not modify).
  - A server without facts shows why (unreachable, authentication refused, access denied, connection dropped,
    Exchange unavailable, failed); a read that failed on a collected server (C(unavailable) in its fact) marks
    the facts it reads as unknown and counts as a warning, and so does a TLS probe (C(probes)) that failed.
  - C(exchange_pki_report.html) is one self-contained page (inline style, script and SVG; no external asset). It
    opens with the action plan, summary cards, the servers to look at (not collected, failed reads, failed
    probes), an expiry timeline (certificates counted per week or month and severity) and each database
    availability group's members side by side, with the certificates that differ highlighted and why that
    matters; all of this is plain HTML, readable with JavaScript off. The certificate, finding and server
    tables travel as compact JSON inside the page and are shown 50 rows at a time, with filter and sort, so a
    fleet of 10,000 servers stays a page a browser opens in seconds; the full detail is in the CSV and JSON.
    Every value is escaped.
  - >-
    C(exchange_pki_report.csv) has a C(record) column: first one C(action) row per problem of the action plan,
    then one C(certificate) row per server and certificate with its key facts, severity, finding ids and their
    source pages (C(finding_urls)), the server's failed reads and probes; a server without facts gets one
    C(server) row with C(collected=false) and the reason. Lists are joined with C(;). Text cells that a
    spreadsheet would evaluate as a formula (starting with C(=), C(+), C(-), C(@)) get a leading C(').
  - >-
    C(exchange_pki_report.json) is the whole model (format C(exchange.pki.report/v1)) with one top-level key,
    one action and one host per line: C(action_plan), C(summary), C(dags) and C(hosts) (each finding with its
    C(url), the host's C(unavailable) reads, C(unknown_facts), C(probes) and C(problems); a host without facts
    has C(not_collected) with its C(reason) and C(message)).
  - C(exchange_pki_report.md) is a short Markdown summary fit for a job log or a mail (also returned as
    RV(markdown)).
  - C(exchange_pki_report.prom) is a Prometheus textfile (for node_exporter's textfile collector) in the
    style of cert-manager's certificate metrics.
  - Only the documented keys of the facts are published; an unexpected key in a fact is left out. The facts
    contain no secret, and no other host variable is read.
options:
  facts:
    description:
      - The fleet's facts, a dictionary of inventory host name to that host's C(exchange_pki) fact.
      - >-
        A host whose value is V(null), a failure record C({"not_collected": {"reason": R, "message": M}}) (what
        the inventory role records; R is one of V(unreachable), V(authentication_refused), V(access_denied),
        V(connection_dropped), V(exchange_unavailable), V(failed)), a failed task result (its C(failure_reason)
        and C(msg)) or another value without a C(certificates) list is reported as not collected, with the
        reason when there is one. A value Ansible censored (C(no_log)) reads "reason hidden by no_log".
      - Every fact is checked before anything is written; a malformed one (a certificate without a
        thumbprint, a C(days_remaining) that is not an integer, ...) fails the task naming the host and the
        field.
      - "Typically
        C({{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'exchange_pki')
        | map('default', none))) }}); the C(exchange.pki.report) role builds it."
    type: dict
    required: true
  dest:
    description:
      - Directory on the controller to write the files to. It is created with mode C(0750) when missing. It must
        not be empty.
      - Files are written with mode C(0640). Every format is first rendered to a temporary file in O(dest); they
        are renamed into place only when all of them rendered, so a failure leaves the previous files as they
        were (all formats or none).
    type: path
    required: true
  formats:
    description:
      - The files to write; at least one.
    type: list
    elements: str
    choices: [html, csv, json, markdown, prometheus]
    default: [html, csv, json, markdown, prometheus]
  title:
    description:
      - Title of the report, also the first line of the Markdown summary. One line of at most 200 characters.
    type: str
    default: Exchange certificate report
  now:
    description:
      - The report's generation time, an ISO-8601 date and time such as V(2026-11-25T08:00:00Z), for
        reproducible output. The default is the controller's current UTC time.
      - It positions "today" on the timeline; days remaining are the facts' own values, as collected.
      - It must lie from V(1970-01-01T00:00:00Z) to before V(9000-01-01T00:00:00Z), since
        the timeline's years before and after it are computed from it.
    type: str
  ledger:
    description:
      - The audit ledger on the controller (the O(exchange.pki.certificate_import#module:ledger) file of the
        changing modules and the renewal role). With it every format tells the B(story) of each renewed
        certificate (each certificate identity the renewal role recorded), the documentation of the certificate
        process administrators are asked to keep. The story holds the certificate's records in time order
        (requested, issued, imported, bound, verified, removed), with who, when, on which server and how each
        step ended; M(exchange.pki.ledger_info) tells which records belong to a certificate.
      - HTML, a collapsible section per certificate after the tables. JSON, C(ledger) (the file, the certificates,
        the skipped lines) and C(stories) (identity to its steps). Markdown, a section per certificate (its
        latest 30 steps). CSV, a separate file C(exchange_pki_ledger.csv) with one row per step (written with
        the V(csv) format). The Prometheus textfile does not change.
      - A missing file is no story (the report says so). A line of the ledger that is not a record (a torn last
        line) is skipped and the report lists it; M(exchange.pki.ledger_info) fails on it instead.
      - Without it the report is exactly what it is without a ledger, byte for byte.
    type: path
extends_documentation_fragment:
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written; each format is rendered and compared with the file on disk, and
        RV(changed_files) lists the files that would change.
  diff_mode:
    support: none
  platform:
    details:
      - Runs on the controller; no host is contacted. Run it once (C(run_once)) for the whole fleet.
notes:
  - Idempotence. Every file says when it was generated (the time of this run, or O(now)) and when each host's
    facts were collected; those lines do not count as a change. Re-running over the same facts rewrites the
    files with the new generation time and reports RV(changed=false); a file that would be byte-identical is
    left alone. Facts collected again are new content only when something in them changed, for example a
    certificate, a finding or a day less remaining.
  - Pending requests (role C(pending_request)) appear in the tables but not on the timeline, in the earliest
    expiry nor in the Prometheus expiry metrics, since their placeholder certificate expires nothing.
  - >-
    Prometheus metrics, all gauges: C(exchange_pki_action_plan_problems) labelled C(severity) (first);
    C(exchange_pki_certificate_expiration_timestamp_seconds) and C(exchange_pki_certificate_days_remaining)
    labelled C(server) (inventory host), C(thumbprint), C(subject), C(store) and C(role), one series per role of
    the certificate (C(role="") when it has none; aggregate with C(min by (server, thumbprint)) for one value per
    certificate); C(exchange_pki_findings) labelled C(server) and C(severity); C(exchange_pki_server_collected)
    (1 or 0) labelled C(server); C(exchange_pki_server_not_collected_info) labelled C(server) and C(reason);
    C(exchange_pki_server_read_failed) labelled C(server) and C(read); C(exchange_pki_probe_success) labelled
    C(server) and C(probe); C(exchange_pki_server_collected_timestamp_seconds) labelled C(server); and
    C(exchange_pki_report_generated_timestamp_seconds).
seealso:
  - module: exchange.pki.certificate_info
  - module: exchange.pki.fleet_alert
  - name: cert-manager Prometheus metrics
    description: The certificate metrics whose style the textfile follows.
    link: https://cert-manager.io/docs/devops-tips/prometheus-metrics/
  - name: node_exporter textfile collector
    description: How to publish the C(.prom) file.
    link: https://github.com/prometheus/node_exporter#textfile-collector
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Collect the facts of every Exchange server
  exchange.pki.certificate_info:
  register: certificate_info

- name: Keep them as the exchange_pki fact
  ansible.builtin.set_fact:
    exchange_pki: "{{ certificate_info }}"

- name: Write the fleet report once, on the controller
  exchange.pki.fleet_report:
    facts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all
      | map('extract', hostvars, 'exchange_pki') | map('default', none))) }}"
    dest: /var/lib/exchange-pki/report
    title: Contoso Exchange certificates
  run_once: true
  delegate_to: localhost
  register: report

- name: Show the summary in the job log
  ansible.builtin.debug:
    msg: "{{ report.markdown.splitlines() }}"
  run_once: true

- name: Only the Prometheus textfile, for node_exporter on the controller
  exchange.pki.fleet_report:
    facts: "{{ fleet_facts }}"
    dest: /var/lib/node_exporter/textfile_collector
    formats: [prometheus]
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
changed:
  description: Whether O(dest) was created or any file was (or in check mode would be) rewritten.
  returned: always
  type: bool
  sample: true
dest:
  description: The directory written to.
  returned: success
  type: str
  sample: /var/lib/exchange-pki/report
files:
  description:
    - The path of each format's file, whether it changed or not.
    - C(ledger_csv) (the certificate stories) only with O(ledger) and the V(csv) format.
  returned: success
  type: dict
  sample:
    html: /var/lib/exchange-pki/report/exchange_pki_report.html
    csv: /var/lib/exchange-pki/report/exchange_pki_report.csv
    json: /var/lib/exchange-pki/report/exchange_pki_report.json
    markdown: /var/lib/exchange-pki/report/exchange_pki_report.md
    prometheus: /var/lib/exchange-pki/report/exchange_pki_report.prom
    ledger_csv: /var/lib/exchange-pki/report/exchange_pki_ledger.csv
changed_files:
  description: The files that were (or in check mode would be) rewritten.
  returned: success
  type: list
  elements: str
  sample: [/var/lib/exchange-pki/report/exchange_pki_report.html]
summary:
  description: Counts for the whole fleet.
  returned: success
  type: dict
  contains:
    hosts:
      description: Hosts in O(facts).
      type: int
      sample: 5
    hosts_collected:
      description: Hosts with a fact.
      type: int
      sample: 4
    hosts_missing:
      description: Hosts without a fact (not collected, for example unreachable).
      type: list
      elements: str
      sample: [ex5]
    not_collected:
      description: For each host without a fact, the C(reason) (null when unknown) and C(message) of its failure.
      type: dict
      sample: {ex5: {reason: unreachable, message: "ex5.contoso.lab:5986: connection timed out"}}
    hosts_incomplete:
      description: Collected hosts with at least one read that failed (their C(unavailable) facts are unknown).
      type: list
      elements: str
      sample: [ex3]
    probes_failed:
      description: TLS probes that failed or found a problem, all hosts together.
      type: int
      sample: 0
    actions:
      description: Problems of the action plan by severity.
      type: dict
      sample: {critical: 3, warning: 1, info: 0}
    certificates:
      description: Certificates of all collected hosts.
      type: int
      sample: 19
    findings:
      description: Findings by severity.
      type: dict
      sample: {critical: 4, warning: 7, info: 0}
    worst_severity:
      description:
        - The worst severity of the findings and the host problems (a host without facts is critical, a failed
          read or probe a warning); V(null) when there is none.
      type: str
      sample: critical
    earliest_expiry:
      description: The earliest C(not_after) of all certificates (pending requests left out).
      type: str
      sample: "2026-11-20T10:00:00Z"
    earliest_expiry_host:
      description: The host of that certificate.
      type: str
      sample: ex2
    earliest_expiry_thumbprint:
      description: Its thumbprint.
      type: str
      sample: 615EC568C5A5B52C8D4C8A1D5F5A2C0B33D1E9AF
    earliest_expiry_subject:
      description: Its subject.
      type: str
      sample: CN=CLIUSR
action_plan:
  description: The distinct problems of the fleet, worst first (the report's action plan).
  returned: success
  type: list
  elements: dict
  contains:
    severity:
      description: The worst severity of the grouped findings.
      type: str
      sample: critical
    finding_id:
      description: The finding's catalogue id, or V(not_collected), V(unavailable_read), V(probe_failed).
      type: str
      sample: expiring_critical
    title:
      description: What the problem is, in one line.
      type: str
      sample: "Certificate expires within the critical window: mail.contoso.lab (20 days left)"
    scope:
      description: V(certificate), V(organization) (the Auth configuration) or V(server).
      type: str
      sample: certificate
    thumbprint:
      description: The certificate's thumbprint, null when the problem is not about one certificate.
      type: str
      sample: 615EC568C5A5B52C8D4C8A1D5F5A2C0B33D1E9AF
    subject:
      description: The certificate's subject, null when unknown.
      type: str
      sample: CN=mail.contoso.lab
    servers:
      description: The inventory hosts affected, sorted.
      type: list
      elements: str
      sample: [ex1, ex2, ex3, ex4]
    action:
      description: The one thing to do first (the finding's remediation).
      type: str
      sample: "Renew it: create a request with ..."
    url:
      description: The Microsoft Learn or CSS-Exchange page the rule comes from, null for host problems.
      type: str
      sample: https://microsoft.github.io/CSS-Exchange/Diagnostics/HealthChecker/CertificateCheck/
markdown:
  description: The Markdown summary (the content of C(exchange_pki_report.md)), whether or not it was written.
  returned: success
  type: str
  sample: "# Exchange certificate report\n\n- **Servers:** 5 (4 collected, 1 not collected)\n"
"""
