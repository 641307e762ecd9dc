#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: ledger_info
short_description: Query the exchange.pki audit ledger, the history of a certificate or a server
version_added: 0.4.0
description:
  - Reads the audit ledger, the file of JSON lines that every changing module of the collection appends to
    (O(ledger) of those modules; the format is in the collection's C(docs/ledger.md)), and returns the records
    that match every filter given, oldest first, exactly as the file holds them.
  - Also returns, per certificate, its B(story) (RV(stories)) told from the matching records, the documentation of
    the certificate process that administrators are asked to keep (when it was requested, issued, imported, bound
    to services, verified and removed, on which server, by whom, and how each step ended).
  - A record belongs to the story of the certificate identity it names (the renewal role's records name it), else
    to the identity of a thumbprint it holds (learnt from the whole ledger, where the renewal's record names the new and
    the old thumbprints), else to its first thumbprint. A record about no certificate belongs to no story.
  - Changes nothing. The file is read with a shared lock, in one pass with bounded memory, so it is safe while
    other tasks append to it. Contacts no managed host.
options:
  ledger:
    description:
      - The ledger file on the controller. A missing file is an empty answer (no change was ever recorded there).
      - A line that is not a record of the known format (a torn last line of a writer that was killed, a foreign
        line, a line longer than 4 MiB) fails the task, naming the file and the line number, unless
        O(skip_invalid).
    type: path
    required: true
  identity:
    description:
      - Only the records of this certificate identity (the C(identity) of an item of the plan of
        M(exchange.pki.renewal_plan)), including the module records about its thumbprints.
    type: str
  server:
    description:
      - Only the records about this Exchange server (its C(server) field, compared without regard to case), or
        V(organization) for the organisation-wide ones.
    type: str
  thumbprint:
    description:
      - Only the records that hold this certificate thumbprint anywhere in C(before) or C(after). Pasted forms
        (spaces, colons, lower case, an invisible U+200E mark) are accepted.
    type: str
  plan_id:
    description:
      - Only the records of this renewal plan (C(run_id), or C(plan_id) in C(after) or C(before)).
    type: str
  since:
    description:
      - Only the records made at or after this time, ISO-8601 (C(2026-12-01T08:00:00Z), an offset, or none
        meaning UTC). A date alone means the start of that day (UTC).
    type: str
  until:
    description:
      - Only the records made at or before this time, like O(since). A date alone means the end of that day. Must
        not be before O(since).
    type: str
  actions:
    description:
      - Only the records of these actions (V(certificate_request), V(adcs_submit), V(adcs_retrieve), V(import),
        V(enable_services), V(remove), V(renewal_done), V(renewal_failed), ...).
    type: list
    elements: str
    default: []
  limit:
    description:
      - Return only the latest O(limit) matching records (still oldest first); at least 1. RV(matched) says how
        many matched in all.
    type: int
  skip_invalid:
    description:
      - Skip lines that are not records instead of failing, and list them in RV(skipped). No line is ever
        rewritten or removed by the collection.
    type: bool
    default: false
extends_documentation_fragment:
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.read_only
  - exchange.pki._attributes.controller
notes:
  - Filters are one line each (a CR, LF or NUL is refused, naming the option); O(since) after O(until) is refused.
seealso:
  - module: exchange.pki.ledger_record
  - module: exchange.pki.fleet_report
    description: With O(exchange.pki.fleet_report#module:ledger) the report tells each renewed certificate's story.
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The story of one certificate identity
  exchange.pki.ledger_info:
    ledger: /var/log/exchange-pki/ledger.jsonl
    identity: id-3f9a1b2c4d5e
  register: history
  delegate_to: localhost
  run_once: true

- name: What changed on EX01 in November
  exchange.pki.ledger_info:
    ledger: /var/log/exchange-pki/ledger.jsonl
    server: EX01
    since: "2026-11-01"
    until: "2026-11-30"
  delegate_to: localhost
  run_once: true

- name: The records of this run's renewal, for AWX's artifacts
  exchange.pki.ledger_info:
    ledger: "{{ renewal_ledger }}"
    plan_id: "{{ plan.plan_id }}"
  register: this_run
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
records:
  description:
    - The matching records, oldest first (records of the same second in file order), each exactly as the ledger
      holds it (the C(change_record) format of the collection's C(docs/ledger.md)).
  returned: success
  type: list
  elements: dict
  sample:
    - {"version": 1, "time": "2026-12-02T02:30:00Z", "host": "ex1", "server": "EX1",
       "module": "exchange.pki.certificate_services", "action": "enable_services", "result": "changed",
       "before": {"thumbprint": "9C2B4E6A8D0F1B3C5E7A9D2F4B6C8E0A1D3F5B7C"}, "after": {}, "who": "alice",
       "run_id": null, "message": null}
count:
  description: The number of records returned.
  returned: success
  type: int
  sample: 6
matched:
  description: The number of records that matched, before O(limit) kept the latest.
  returned: success
  type: int
  sample: 6
stories:
  description:
    - Per certificate identity (or thumbprint, for a certificate no renewal record names), its steps in time order.
    - Each step has C(time), C(who), C(server), C(action), C(stage) (V(requested), V(issued), V(imported), V(bound),
      V(verified), V(failed), V(removed), or the action itself when it is none of these), C(result), C(before),
      C(after), C(plan_id), C(module) and C(message) (the error of a failed step, else V(null)).
  returned: success
  type: dict
  sample:
    id-3f9a1b2c4d5e:
      - {"time": "2026-12-02T02:20:00Z", "who": "alice", "server": "EX1", "action": "certificate_request",
         "stage": "requested", "result": "changed", "before": {}, "after": {}, "plan_id": null,
         "module": "exchange.pki.certificate_request", "message": null}
      - {"time": "2026-12-02T02:31:00Z", "who": "alice", "server": "organization", "action": "renewal_done",
         "stage": "verified", "result": "changed", "before": {}, "after": {}, "plan_id": "20261202T0215Z-3f9a1b2c",
         "module": "exchange.pki.ledger_record", "message": null}
skipped:
  description: With O(skip_invalid), the lines that are not records (C(line), from 1, and C(reason)).
  returned: success
  type: list
  elements: dict
  sample: [{"line": 1042, "reason": "not a complete JSON line (torn write?)"}]
"""
