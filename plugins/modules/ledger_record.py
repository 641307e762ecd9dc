#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ledger_record
short_description: Append a record of the play's own making to the exchange.pki audit ledger
version_added: 0.3.0
description:
  - Appends one record to the audit ledger, a file of JSON lines on the controller that every changing module of
    the collection appends to (the format is in the collection's C(docs/ledger.md)). Use it for what a play
    decides itself, beyond what one module changes. The C(exchange.pki.renewal) role records the outcome of each
    renewal with it (actions V(renewal_done) and V(renewal_failed)), and M(exchange.pki.renewal_plan) reads those
    records to back off from a certificate that failed before.
  - The record's C(module) is always V(exchange.pki.ledger_record); C(time) and C(who) are filled like every
    module's, C(host) is the task's inventory host.
  - Values under a key named like a secret (C(password), C(passphrase), C(private_key), C(secret), C(pfx),
    C(content)) are written as C(********), at any depth of O(before) and O(after).
  - Contacts no managed host.
options:
  ledger:
    description:
      - The ledger file to append to, a path on the controller. Required here (the record is this module's only
        effect); set it once for a play with C(module_defaults) for C(group/exchange.pki.lifecycle).
    type: path
    required: true
  action:
    description:
      - What happened, a short verb phrase such as V(renewal_done) or V(renewal_failed). One line, at most 128
        characters, no control characters.
    type: str
    required: true
  server:
    description:
      - The Exchange server the record is about, or V(organization) for something that concerns several. One
        line, at most 128 characters.
    type: str
    default: organization
  result:
    description:
      - V(changed) for something that was done, V(failed) for something that failed (then O(message) is
        required).
    type: str
    choices: [changed, failed]
    default: changed
  before:
    description: The state before, a dictionary of JSON values (thumbprints, services, ...).
    type: dict
    default: {}
  after:
    description: The state after (or found after the failure), a dictionary of JSON values.
    type: dict
    default: {}
  message:
    description: What went wrong (required with O(result=failed)), or a note.
    type: str
  run_id:
    description:
      - A correlation id, for example the renewal plan's C(plan_id). When not set, O(ledger_run_id) (which
        C(module_defaults) may give every module of the play) is written instead.
      - One line of at most 128 characters without control characters.
    type: str
extends_documentation_fragment:
  - exchange.pki.ledger
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - In check mode nothing is written; RV(change_record) is the record that would be.
  diff_mode:
    support: none
notes:
  - Appending is safe from many forks at once on a local filesystem (the ledger is locked around one write).
seealso:
  - module: exchange.pki.renewal_plan
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record that the renewal of a certificate failed on one server
  exchange.pki.ledger_record:
    ledger: /var/log/exchange-pki/ledger.jsonl
    action: renewal_failed
    server: EX2
    result: failed
    before: {thumbprint: "{{ old_thumbprint }}"}
    after: {identity: id-3f9a1b2c4d5e, plan_id: "{{ plan.plan_id }}", thumbprint: "{{ new_thumbprint }}",
            group: DAG1, failed_host: ex2, step: services}
    message: "{{ failure_message }}"
    run_id: "{{ plan.plan_id }}"
  delegate_to: localhost
"""

RETURN = r"""
changed:
  description: V(true) when the record was appended (in check mode, when it would be).
  returned: always
  type: bool
  sample: true
written:
  description:
    - Whether the record was appended (V(false) in check mode).
    - Also returned when the record was appended but O(ledger_webhook) failed (the task fails then).
  returned: success, and when only the webhook failed
  type: bool
  sample: true
change_record:
  description:
    - The record appended (in check mode, that would be), in the format of the collection's C(docs/ledger.md).
  returned: success, and when only the webhook failed
  type: dict
  contains:
    version:
      description: The record format version.
      type: int
      sample: 1
    time:
      description: When the record was made, ISO 8601 UTC with a C(Z) suffix.
      type: str
      sample: "2026-12-02T02:30:00Z"
    host:
      description: The inventory host name of the task, or V(null).
      type: str
      sample: localhost
    server:
      description: O(server).
      type: str
      sample: EX2
    module:
      description: Always V(exchange.pki.ledger_record).
      type: str
      sample: exchange.pki.ledger_record
    action:
      description: O(action).
      type: str
      sample: renewal_failed
    result:
      description: O(result).
      type: str
      sample: failed
    before:
      description: O(before), secrets masked.
      type: dict
      sample: {"thumbprint": "0F3A6C1E9B7D2A4F8C3E5B1D7A9F2C4E6B8D0A1F"}
    after:
      description: O(after), secrets masked.
      type: dict
      sample: {"identity": "id-3f9a1b2c4d5e", "group": "DAG1", "failed_host": "ex2", "step": "services"}
    who:
      description: The controller user.
      type: str
      sample: alice
    run_id:
      description: O(run_id), else O(ledger_run_id), else V(null).
      type: str
      sample: "20261202T0215Z-3f9a1b2c"
    message:
      description: O(message).
      type: str
      sample: "Enable-ExchangeCertificate failed: ..."
"""
