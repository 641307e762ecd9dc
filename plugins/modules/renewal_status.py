#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: renewal_status
short_description: Tell how the fleet's certificate renewal stands after a run, alert events and Prometheus metrics
version_added: 0.1.0
description:
  - Runs on the controller after a renewal run (the end of C(playbooks/renew.yml)) and says, per certificate
    identity of the renewal plan, when it expires, when the policy makes it due, whether it is ready, when it was
    last renewed and how often its renewal failed; which renewals are stalled; and which rollouts of this run
    failed or were rolled back, naming the server, the step and the error.
  - Returns RV(events) ready for the O(exchange.pki.fleet_alert#module:events) option of
    M(exchange.pki.fleet_alert), and RV(metrics), a Prometheus text exposition in cert-manager's naming style,
    which it also writes to O(metrics_path) for node_exporter's textfile collector.
  - The identities and their due rules are those of M(exchange.pki.renewal_plan), and the outcomes those of the
    ledger's C(renewal_failed) and C(renewal_done) records, which the renewal role writes.
  - An identity is B(ready) when its newest certificate is valid and the plan made from O(facts) finds nothing to
    do about it (status C(current)). Without O(facts), it is ready when O(plan) found it current or O(results)
    say this run renewed it.
  - A renewal is B(stalled) when the identity is not ready and has been due for more than O(stalled_after) (by
    its dates, or since the first failure after its last successful renewal), or when its last O(failed_attempts)
    outcomes in the ledger all failed. A successful renewal resets both.
  - Changes nothing but the O(metrics_path) file.
options:
  plan:
    description:
      - The registered result of M(exchange.pki.renewal_plan) for this run (its C(plan_id), C(policy), C(groups)
        and C(items)).
    type: dict
    required: true
  facts:
    description:
      - The fleet's C(exchange_pki) facts after the run, a dictionary of inventory host name to fact, as
        M(exchange.pki.renewal_plan) takes them. The status of each identity then comes from a plan made from
        them with the policy and groups of O(plan), so a renewed identity shows its new certificate.
      - Without it the status comes from O(plan) (the state before the run) and O(results).
    type: dict
  ledger:
    description:
      - The ledger file (JSON Lines) the renewal wrote to (the renewal role's C(renewal_ledger)). Read only.
        Without it nothing is known of earlier outcomes (last renewal, failures) and O(results) tell the failed
        rollouts.
      - A file that does not exist yet holds no record; torn or foreign lines are skipped with a warning.
    type: path
  results:
    description:
      - The renewal role's C(renewal_results) of this run. They say which identities this run renewed, and,
        without O(ledger), which rollouts failed.
    type: list
    elements: dict
  stalled_after:
    description:
      - How long an identity may be due without a successful renewal before its renewal counts as stalled, as
        a duration of weeks, days, hours, minutes and seconds such as V(7d), V(36h), V(1w) or V(1d12h).
    type: str
    default: 7d
  failed_attempts:
    description:
      - The renewal of an identity whose last this many outcomes in the ledger all failed is stalled.
      - From 1 to 1000.
    type: int
    default: 3
  run:
    description:
      - The run the status is about, for the run metrics.
    type: dict
    suboptions:
      started:
        description:
          - When the run started, ISO-8601. The default is the plan's C(generated_at). Ledger records written
            between it and O(now) belong to this run (besides those naming the plan).
        type: str
      outcome:
        description:
          - How the run ended. The default is taken from O(results) and the failed rollouts (V(failed) when one
            failed, V(pending) when a request awaits approval, V(success) when something was renewed, else
            V(noop)).
        type: str
        choices: [success, failed, pending, noop]
  metrics_path:
    description:
      - Write RV(metrics) to this file, for node_exporter's textfile collector (a name ending in C(.prom) in its
        directory). The file is replaced atomically, with mode C(0644); its directory must exist.
    type: path
  now:
    description:
      - The time of the status, ISO-8601; the default is the controller's current UTC time.
      - It must lie from V(1970-01-01T00:00:00Z) to before V(9000-01-01T00:00:00Z), since
        the due dates and stalls are computed from it.
    type: str
extends_documentation_fragment:
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - In check mode the status is the same and O(metrics_path) is not written; RV(changed) says whether it
        would be.
  diff_mode:
    support: none
  platform:
    details:
      - Run it once (C(run_once)) for the whole fleet.
notes:
  - The metrics are one series per identity (labels C(identity) and C(subject)), per condition or per outcome;
    no label holds several values. C(exchange_pki_certificate_expiration_timestamp_seconds) has the same HELP
    text as in the textfile of M(exchange.pki.fleet_report), so both files can be in node_exporter's textfile
    directory (its series there have other labels).
seealso:
  - module: exchange.pki.renewal_plan
  - module: exchange.pki.fleet_alert
  - name: cert-manager metrics
    description: The naming style of the metrics.
    link: https://cert-manager.io/docs/devops-tips/prometheus-metrics/
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Say how the renewal stands, write the metrics
  exchange.pki.renewal_status:
    plan: "{{ renew_plan }}"
    facts: "{{ dict(groups['exchange'] | zip(groups['exchange'] | map('extract', hostvars, 'exchange_pki'))) }}"
    ledger: /var/log/exchange-pki/ledger.jsonl
    results: "{{ renewal_results | default([]) }}"
    metrics_path: /var/lib/node_exporter/textfile/exchange_pki_renewal.prom
  register: renew_status
  run_once: true
  delegate_to: localhost

- name: Alert on failed rollouts and stalled renewals
  exchange.pki.fleet_alert:
    events: "{{ renew_status.events }}"
    min_severity: warning
    webhook:
      url: "{{ vault_teams_workflow_url }}"
      format: teams
  run_once: true
  delegate_to: localhost
  when: renew_status.events | length > 0
"""

RETURN = r"""
changed:
  description: Whether the O(metrics_path) file was (in check mode, would be) written with new content.
  returned: always
  type: bool
  sample: true
plan_id:
  description: The plan the status is about.
  returned: success
  type: str
  sample: 20261202T0215Z-3f9a1b2c
generated_at:
  description: The time of the status (O(now)).
  returned: success
  type: str
  sample: "2026-12-02T02:40:00Z"
identities:
  description:
    - Identity id -> its status. C(expiration), C(renewal_due) and C(last_renewal) are ISO-8601 times or
      V(null); C(status) is the plan's status of the identity after the run (C(current), C(due), C(backoff),
      ...); C(failures) counts the failed outcomes since the last successful renewal, C(failures_total) all of
      them in the ledger.
  returned: success
  type: dict
  sample:
    id-5c1f0e2a9b3d:
      identity: id-5c1f0e2a9b3d
      subject: CN=mail.contoso.com
      thumbprint: 9C2B4E6A8D0F1B3C5E7A9D2F4B6C8E0A1D3F5B7C
      status: current
      expiration: "2027-12-02T02:30:00Z"
      renewal_due: "2027-11-02T02:30:00Z"
      ready: true
      last_renewal: "2026-12-02T02:35:12Z"
      failures: 0
      failures_total: 1
      stalled: false
      stalled_reason: null
stalled:
  description: The identities (as in RV(identities)) whose renewal is stalled, with C(stalled_reason).
  returned: success
  type: list
  elements: dict
failed_rollouts:
  description:
    - Every rollout of this run that failed or was rolled back, from the ledger's C(renewal_failed) records of
      this run (without O(ledger), from O(results)).
  returned: success
  type: list
  elements: dict
  sample:
    - {identity: id-5c1f0e2a9b3d, subject: CN=mail.contoso.com, server: EX2, host: ex2, group: DAG1, step: verify,
       error: "IIS on EX2 still serves 0F3A6C1E9B7D2A4F8C3E5B1D7A9F2C4E6B8D0A1F", rolled_back: true,
       time: "2026-12-02T02:33:40Z"}
events:
  description:
    - Events for the O(exchange.pki.fleet_alert#module:events) option of M(exchange.pki.fleet_alert), that is
      a V(critical) C(renewal_failed) (or C(rolled_back)) event per failed rollout naming the server, the step
      and the error, and a C(renewal_stalled) event per stalled renewal (V(critical) when the certificate
      expires within O(stalled_after) or has expired, else V(warning)). C(certificate) is the identity; the
      C(summary) names the certificate's subject. Every text is one line.
  returned: success
  type: list
  elements: dict
  sample:
    - {severity: critical, kind: rolled_back, server: EX2, certificate: id-5c1f0e2a9b3d, step: verify,
       summary: "Renewal of CN=mail.contoso.com failed on EX2 at step verify; the server was rolled back to the
         old certificate",
       error: "IIS on EX2 still serves 0F3A6C1E9B7D2A4F8C3E5B1D7A9F2C4E6B8D0A1F"}
run:
  description: The run's C(started), C(finished), C(outcome) and C(duration_seconds).
  returned: success
  type: dict
  sample: {started: "2026-12-02T02:15:00Z", finished: "2026-12-02T02:40:00Z", outcome: failed,
           duration_seconds: 1500.0}
ledger_records:
  description:
    - This run's ledger records, as stored (those naming the plan in C(run_id) or C(after.plan_id), and those
      written between C(run.started) and O(now)).
  returned: success
  type: list
  elements: dict
metrics:
  description:
    - The Prometheus text exposition. Per identity (labels C(identity), C(subject)),
      C(exchange_pki_certificate_expiration_timestamp_seconds),
      C(exchange_pki_certificate_renewal_timestamp_seconds),
      C(exchange_pki_certificate_ready_status) (one series per C(condition), V(True) and V(False), 1 for the
      identity's), C(exchange_pki_certificate_last_renewal_timestamp_seconds),
      C(exchange_pki_certificate_renewal_failures_total) (a counter),
      C(exchange_pki_certificate_renewal_consecutive_failures) and C(exchange_pki_certificate_renewal_stalled);
      per run C(exchange_pki_renewal_run_outcome) (one series per C(outcome)),
      C(exchange_pki_renewal_run_duration_seconds) and C(exchange_pki_renewal_run_timestamp_seconds).
  returned: success
  type: str
metrics_path:
  description: The file the metrics went to.
  returned: when O(metrics_path) is given
  type: str
"""
