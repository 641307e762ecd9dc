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
  - C(exchange_pki_report.html) is one self-contained page (inline style, script and SVG; no external asset)
    with summary cards, an expiry timeline chart (one marker per certificate, colored by severity), the
    findings grouped by severity and then by server, each database availability group's members side by side
    with the certificates that differ from the other members highlighted, a server table and a sortable,
    filterable certificate table. Every value is HTML-escaped.
  - C(exchange_pki_report.csv) has one row per server and certificate with its key facts, severity and finding
    ids (lists joined with C(;)); a server without facts gets one row with C(collected=false). Text cells
    that a spreadsheet would evaluate as a formula (starting with C(=), C(+), C(-), C(@)) get a leading C(').
  - C(exchange_pki_report.json) is the whole model (format C(exchange.pki.report/v1)) with one top-level key
    and one host per line.
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
      - A host whose value is V(null) or not a fact (no C(certificates) list), for example because it was
        unreachable, is reported as not collected.
      - "Typically
        C({{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'exchange_pki')
        | map('default', none))) }}); the C(exchange.pki.report) role builds it."
    type: dict
    required: true
  dest:
    description:
      - Directory on the controller to write the files to. It is created with mode C(0750) when missing.
      - Files are written with mode C(0640), atomically (a temporary file renamed over the old one).
    type: path
    required: true
  formats:
    description:
      - The files to write.
    type: list
    elements: str
    choices: [html, csv, json, markdown, prometheus]
    default: [html, csv, json, markdown, prometheus]
  title:
    description:
      - Title of the report, also the first line of the Markdown summary.
    type: str
    default: Exchange certificate report
  now:
    description:
      - The report's generation time, an ISO-8601 date and time such as V(2026-11-25T08:00:00Z), for
        reproducible output. The default is the controller's current UTC time.
      - It positions "today" on the timeline; days remaining are the facts' own values, as collected.
    type: str
extends_documentation_fragment:
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.controller
requirements:
  - jinja2 >= 3.0 on the controller (for the HTML page; ansible-core installs it).
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
  - Idempotence. The generation time (and the hosts' collection times) appear in the content, but a file is
    only rewritten when anything else in it changed, so re-running over the same facts reports
    RV(changed=false). Facts collected again are new content only when something in them changed, for example
    a certificate, a finding or a day less remaining.
  - Pending requests (role C(pending_request)) appear in the tables but not on the timeline, in the earliest
    expiry nor in the Prometheus expiry metrics, since their placeholder certificate expires nothing.
  - >-
    Prometheus metrics, all gauges: C(exchange_pki_certificate_expiration_timestamp_seconds) and
    C(exchange_pki_certificate_days_remaining) labelled C(server) (inventory host), C(thumbprint), C(subject),
    C(role) (the certificate's roles joined with commas, empty when none) and C(store);
    C(exchange_pki_findings) labelled C(server) and C(severity); C(exchange_pki_server_collected) (1 or 0) and
    C(exchange_pki_server_collected_timestamp_seconds) labelled C(server); and
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
  description: The path of each format's file, whether it changed or not.
  returned: success
  type: dict
  sample:
    html: /var/lib/exchange-pki/report/exchange_pki_report.html
    csv: /var/lib/exchange-pki/report/exchange_pki_report.csv
    json: /var/lib/exchange-pki/report/exchange_pki_report.json
    markdown: /var/lib/exchange-pki/report/exchange_pki_report.md
    prometheus: /var/lib/exchange-pki/report/exchange_pki_report.prom
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
    certificates:
      description: Certificates of all collected hosts.
      type: int
      sample: 19
    findings:
      description: Findings by severity.
      type: dict
      sample: {critical: 4, warning: 7, info: 0}
    worst_severity:
      description: The most severe finding's severity, V(null) when there is none.
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
markdown:
  description: The Markdown summary (the content of C(exchange_pki_report.md)), whether or not it was written.
  returned: success
  type: str
  sample: "# Exchange certificate report\n\n- **Servers:** 5 (4 collected, 1 not collected)\n"
"""
