#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: renewal_plan
short_description: Plan the renewal of an Exchange fleet's certificates (what, how, in which order, when)
version_added: 0.3.0
description:
  - Reads every host's C(exchange_pki) fact (what M(exchange.pki.certificate_info) returns, see the collection's
    C(docs/facts.md); the C(exchange.pki.inventory) role sets it) and a renewal policy, and returns the renewal
    plan as data (RV(items)) and as Markdown (RV(markdown)). The C(exchange.pki.renewal) role carries it out.
  - B(Identities.) The same thumbprint on several servers is one certificate; certificates with the same subject
    and the same DNS names (case-insensitive, A-labels) on members of one group are one identity too. Each
    identity is renewed once. Its id is C(id-) and 12 hex digits of the SHA-256 of its lower-case subject and
    sorted names, so the renewed certificate keeps it.
  - B(Candidates.) A certificate of the My store, with a private key on some server, used by something (an
    Exchange service or a reference). Not renewed here, each listed in RV(not_renewed) with the reason,
    Exchange's self-signed defaults (C(CN=<server>), C(CN=WMSvc-...)), the Auth certificate
    (M(exchange.pki.auth_certificate) rotates it), cluster certificates (Windows manages them), pending requests,
    unused certificates, certificates without a private key anywhere, and certificates that cannot be parsed.
    An unused certificate that a C(renewal_failed) outcome of O(ledger) names is a candidate (the renewed
    certificate of a rollout rolled back on every member it reached, which a rerun rolls out again; nothing is
    issued).
  - B(Due.) Fewer days left than O(policy.renew_before_days), or than O(policy.renew_before_percentage) of the
    lifetime, or a finding of O(policy.replace_on) about one of its thumbprints, on any server holding it, or (an
    identity whose O(policy.backends) entry is V(acme)) O(ari) says the ACME server's suggested renewal window for
    its newest certificate has begun. Else the item is V(current).
  - B(Superseded.) An older certificate left beside its renewed copy on the same servers (renewed with
    O(policy.cleanup=keep), or kept because something still named it) does not make the identity due again while
    the renewed copy is current and holds its services and references there; it is listed in RV(not_renewed)
    as superseded.
  - B(How.) The first O(policy.backends) entry that matches gives the backend (no match, V(skipped)); the
    request server is the first server holding it with a private key, in rollout order; the subject and names
    are the old ones plus O(policy.required_names); the PFX encryption is V(legacy) when a server holding it
    runs Exchange 2016 (version 15.1) or an unknown version, else V(modern).
  - B(Order.) Groups are the database availability groups (C(server.dag)) and the standalone servers, or the
    C(group) of O(host_vars), which overrides both; they are rolled out in name order, members in host name
    order, O(policy.rollout_batch) at a time.
  - B(When.) Outside every O(policy.windows) window a due item is V(deferred) with the start of the next
    window; after earlier failed renewals recorded in O(ledger) it waits an exponential backoff (V(backoff)); a
    group with a member whose facts could not be read is V(blocked).
  - Nothing changes and no host is contacted. The same input gives the same plan, with the same RV(plan_id).
options:
  facts:
    description:
      - The fleet's facts, a dictionary of inventory host name to that host's C(exchange_pki) fact.
      - >-
        A host whose value is V(null), a failure record C({"not_collected": {"reason": R, "message": M}}) (what
        the inventory role records in C(exchange_pki_failure)), a failed task result, or another value without a
        C(certificates) list is listed in RV(unavailable_hosts), and the due items of its group are V(blocked).
        Its group is its O(host_vars) C(group), or the DAG whose read members list it as a cluster node.
      - A malformed fact (a thumbprint that is not 40 hexadecimal digits, a C(days_remaining) that is not an
        integer, a C(not_after) that is not an ISO-8601 date and time, ...) fails the task naming the host and the
        field.
    type: dict
    required: true
  host_vars:
    description:
      - Inventory host name to C({group, exchange_version}), both optional.
      - C(group) puts the host in that rollout group instead of its DAG or its own standalone group (for example
        the value of a C(group_by) key). C(exchange_version) is the Exchange version (such as V(15.1.2507.6)),
        used when the fact does not know it.
      - A host listed here without a fact is unavailable, like a host without facts in O(facts).
    type: dict
    default: {}
  policy:
    description:
      - The renewal policy. Every bad key or value fails the task naming it (C(policy.windows[0].start)).
    type: dict
    suboptions:
      renew_before_days:
        description:
          - Renew when fewer days than this are left (0 to 3650; 0 renews only expired certificates).
        type: int
        default: 30
      renew_before_percentage:
        description:
          - Also renew when less than this percentage (1 to 99) of the certificate's lifetime is left.
            cert-manager renews when a third is left (33). Not set, only O(policy.renew_before_days) counts.
        type: int
      replace_on:
        description:
          - Finding ids (C(docs/findings.md)) that make a certificate due whatever its expiry, for example
            V(weak_key), V(weak_signature), V(name_mismatch), V(expired).
        type: list
        elements: str
        default: [expired]
      required_names:
        description:
          - DNS names added to every new certificate's names (compared and added in A-label form).
        type: list
        elements: str
        default: []
      key_size:
        description:
          - The RSA key size of the new certificates. The V(adcs) backend (New-ExchangeCertificate) allows
            V(2048) and V(4096) only.
        type: int
        default: 2048
        choices: [2048, 3072, 4096]
      backends:
        description:
          - How certificates are issued; the first entry whose O(policy.backends[].match) matches an identity is
            used. An identity that is due and matches no entry is V(skipped).
        type: list
        elements: dict
        default: []
        suboptions:
          match:
            description:
              - Which identities the entry applies to; empty or absent, every identity.
              - C(names) is a list of globs (C(*.contoso.com), case-insensitive, C(*) matches dots too); every DNS
                name of the certificate must match one of them. C(subject) is a Python regular expression
                searched in the subject (RFC 4514, as the facts give it). Give one of them, not both.
            type: dict
            suboptions:
              names:
                description: Globs every DNS name of the certificate must match.
                type: list
                elements: str
              subject:
                description: A regular expression searched in the certificate's subject.
                type: str
          backend:
            description: The backend that issues the new certificate (the renewal role's C(issue_<backend>.yml)).
            type: str
            required: true
            choices: [adcs, acme, ownca, manual]
          options:
            description:
              - The backend's options, returned in each item's C(issue.options) as given, except that the value
                of every key named like a secret (C(password), C(passphrase), C(secret), ...) is masked, since the plan
                is printed. The renewal role reads the secret from its own policy variable
                (C(issue.backend_index) says which entry).
            type: dict
            default: {}
      windows:
        description:
          - Maintenance windows; empty means always open. A window opens on each of its days at C(start) and
            closes at C(end) (local times of C(timezone)); an C(end) not after C(start) closes the next day
            (crosses midnight), C(start) equal to C(end) is a whole day. Across a daylight-saving change the local
            times are kept.
        type: list
        elements: dict
        default: []
        suboptions:
          days:
            description:
              - The weekdays the window opens, V(mon) to V(sun) (or full names, any case); absent, every day.
            type: list
            elements: str
          start:
            description: When it opens, C(HH:MM) (quote it in YAML, unquoted C(22:00) is the number 1320).
            type: str
            required: true
          end:
            description: When it closes, C(HH:MM).
            type: str
            required: true
          timezone:
            description: An IANA time zone such as V(Europe/Berlin) (the controller's tzdata), or V(UTC).
            type: str
            default: UTC
      rollout_batch:
        description:
          - How many members of a group are changed at a time (1 to 10000).
          - C(playbooks/renew.yml) rolls the members of a batch out at the same time (one pseudo-host per member,
            batch after batch; C(--forks) at least O(policy.rollout_batch) times O(policy.group_concurrency)); the
            C(exchange.pki.renewal) role used alone rolls them out one after another in batch order.
        type: int
        default: 1
      group_concurrency:
        description: How many groups the renewal role rolls out at the same time (1 to 10000).
        type: int
        default: 1
      stop_on_failure:
        description: On a failure, stop the failing group only (V(group)) or every group (V(all)).
        type: str
        default: group
        choices: [group, all]
      cleanup:
        description: After a group is verified, remove the old certificates nothing references any more, or keep them.
        type: str
        default: remove_unreferenced
        choices: [remove_unreferenced, keep]
      backoff:
        description:
          - After C(n) consecutive failed renewals of an identity, wait C(initial_hours * 2**(n-1)) hours, at most
            C(max_hours), from the last failure. A successful renewal resets the count.
        type: dict
        suboptions:
          initial_hours:
            description: The first wait, in hours (1 to 8760).
            type: int
            default: 1
          max_hours:
            description: The longest wait, in hours (1 to 8760, not less than C(initial_hours)).
            type: int
            default: 32
  ledger:
    description:
      - The renewal ledger (the JSON-lines file the renewal role appends to, C(docs/ledger.md)), read to find
        earlier renewal outcomes; it is never written. Records of C(exchange.pki.ledger_record) with the action
        V(renewal_failed) or V(renewal_done) and C(after.identity) set count. A file that does not exist yet holds
        no outcome; torn lines are skipped with a warning.
    type: path
  force:
    description:
      - Ignore the backoff of earlier failures (the item is V(due) again, with a reason saying so).
    type: bool
    default: false
  now:
    description:
      - The plan's time, an ISO-8601 date and time such as V(2026-12-02T02:15:00Z) (an offset, or none meaning
        UTC), for reproducible plans. The default is the controller's current time.
      - The maintenance windows, the backoff and each certificate's days left (from its C(not_after)) are judged at
        this time, so a plan made for a later date previews what is due then.
      - It must lie from V(1970-01-01T00:00:00Z) to before V(9000-01-01T00:00:00Z), since
        the maintenance windows and backoffs after it are computed from it.
    type: str
  ari:
    description:
      - ACME renewal information (L(RFC 9773, https://www.rfc-editor.org/rfc/rfc9773.html)) of ACME-issued
        certificates - thumbprint to the result of M(community.crypto.acme_certificate_renewal_info) for that
        certificate (C(should_renew), C(supports_ari) and C(msg) are read, other keys ignored).
      - Counts only for an identity whose O(policy.backends) entry is V(acme), about its newest thumbprint, and only
        where the ACME server offered renewal information (C(supports_ari=true)); then C(should_renew=true) makes it
        V(due) with the reason C(ACME renewal information (ARI)) and the module's message. Without renewal
        information (a directory without C(renewalInfo)) nothing changes.
      - The C(ari.yml) tasks of the C(exchange.pki.renewal) role gather it; C(ansible-playbook exchange.pki.renew) does.
        They ask at the plan's time (O(now) of the first plan, as C(now) of
        M(community.crypto.acme_certificate_renewal_info)), so the answer agrees with the rest of the plan. Answers
        gathered otherwise should be asked at O(now) too.
    type: dict
    default: {}
  plan_id:
    description:
      - The plan's id (1 to 64 letters, digits, C(.), C(_), C(:), C(-)). The default is the UTC minute of O(now)
        and 8 hex digits of the plan's content hash, such as V(20261202T0215Z-3f9a1b2c).
    type: str
extends_documentation_fragment:
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.controller
attributes:
  check_mode:
    support: full
    details:
      - The module changes nothing, so check mode returns the same plan.
  diff_mode:
    support: none
  platform:
    details:
      - Run it once (C(run_once)) for the whole fleet.
requirements:
  - idna on the controller, for internationalized names in O(policy.required_names) (IDNA 2008 A-labels).
  - The time zone database (tzdata) on the controller, for O(policy.windows) in a time zone other than UTC.
notes:
  - An empty plan (no item V(due)) means there is nothing to do now; running the renewal again after a complete
    renewal gives one.
  - Days left are counted from the plan's time (O(now)) to each certificate's C(not_after), not taken from the
    facts' C(days_remaining), which counts from when they were collected. A plan for a later time (O(now), the
    role's C(renewal_now)) therefore shows what is due by then. Only a certificate whose fact has no C(not_after)
    keeps the facts' C(days_remaining). Everything else (services, references, findings) is as the facts were
    collected; collect them right before planning.
seealso:
  - module: exchange.pki.certificate_info
  - module: exchange.pki.fleet_report
  - name: cert-manager renewal
    description: The percentage rule (renew when a third of the lifetime is left) follows cert-manager's default.
    link: https://cert-manager.io/docs/usage/certificate/#renewal
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the renewal of every Exchange certificate that expires within 30 days
  exchange.pki.renewal_plan:
    facts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all
      | map('extract', hostvars, 'exchange_pki') | map('default', none))) }}"
    policy:
      backends:
        - backend: adcs
          options:
            ca_config: ca01.contoso.lab\Contoso Issuing CA
            template: WebServer
  run_once: true
  delegate_to: localhost
  register: renewal_plan

- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ renewal_plan.markdown.splitlines() }}"
  run_once: true

- name: Weekend nights in Berlin, a third of the lifetime, weak keys too, sites as groups
  exchange.pki.renewal_plan:
    facts: "{{ fleet_facts }}"
    host_vars: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all
      | map('extract', hostvars, 'exchange_site') | map('community.general.dict_kv', 'group'))) }}"
    ledger: /var/lib/exchange-pki/renewal-ledger.jsonl
    policy:
      renew_before_percentage: 33
      replace_on: [expired, weak_key, weak_signature]
      required_names: [autodiscover.contoso.com]
      backends:
        - match: {names: ["*.contoso.com", contoso.com]}
          backend: acme
          options: {directory: "https://acme-v02.api.letsencrypt.org/directory", challenge: http-01}
        - backend: adcs
          options: {ca_config: ca01.contoso.lab\Contoso Issuing CA, template: WebServer}
      windows:
        - {days: [sat, sun], start: "22:00", end: "05:00", timezone: Europe/Berlin}
      backoff: {initial_hours: 1, max_hours: 32}
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
changed:
  description: Always V(false); the module changes nothing.
  returned: always
  type: bool
  sample: false
plan_id:
  description: The plan's id (O(plan_id), or the UTC minute and 8 hex digits of the content hash).
  returned: success
  type: str
  sample: 20261202T0215Z-3f9a1b2c
generated_at:
  description: The plan's time (O(now) or the controller's clock), ISO 8601 UTC.
  returned: success
  type: str
  sample: "2026-12-02T02:15:00Z"
policy:
  description: The normalised policy (every key with its value or default; secret-named backend options masked).
  returned: success
  type: dict
  sample: {renew_before_days: 30, renew_before_percentage: null, replace_on: [expired], rollout_batch: 1}
summary:
  description: Items by status, and the number of certificates not renewed here.
  returned: success
  type: dict
  sample: {due: 1, current: 3, deferred: 0, backoff: 0, blocked: 0, skipped: 0, not_renewed: 9}
groups:
  description: Every group, in rollout order.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The DAG's name, the standalone host's name, or the O(host_vars) group.
      type: str
      sample: DAG1
    kind:
      description: V(dag), V(standalone) or V(group) (from O(host_vars)).
      type: str
      sample: dag
    members:
      description: The inventory hosts of the group, sorted (unavailable members included).
      type: list
      elements: str
      sample: [ex1, ex2, ex3]
items:
  description: One entry per certificate identity that is a renewal candidate, sorted by group then identity.
  returned: success
  type: list
  elements: dict
  contains:
    identity:
      description: The identity's id.
      type: str
      sample: id-3f9a1b2c4d5e
    status:
      description: V(due), V(current), V(deferred), V(backoff), V(blocked) or V(skipped).
      type: str
      sample: due
    reasons:
      description: Why it is due (or, when current, how far from due it is), then why it waits, if it does.
      type: list
      elements: str
      sample: ["20 days left (renew_before_days 30)", "finding expired"]
    status_reason:
      description: Why a due item waits (deferred, backoff, blocked, skipped), else V(null).
      type: str
      sample: null
    next_window:
      description: For a deferred item, the start of the next window (ISO 8601 UTC); else V(null).
      type: str
      sample: null
    backoff_until:
      description: For an item in backoff, when the backoff ends (ISO 8601 UTC); else V(null).
      type: str
      sample: null
    certificate:
      description:
        - The newest certificate of the identity (C(thumbprint), C(subject), C(dns_names), C(issuer),
          C(not_before), C(not_after), C(days_remaining), C(lifetime_days), C(key_size)) and C(thumbprints),
          every thumbprint of the identity (the ones the new certificate replaces).
      type: dict
      sample: {thumbprint: 5037965E98D3C7E7A4B21B1673892D50FF3130D5, subject: CN=mail.contoso.lab, days_remaining: 20}
    issue:
      description:
        - How the new certificate is issued. C(backend) and C(backend_index) (the matching O(policy.backends)
          entry, V(null) when none), C(options) (the entry's options, secret-named values masked),
          C(request_server) (inventory host where a key-on-server backend creates the key), C(subject) and
          C(dns_names) (old names plus O(policy.required_names)), C(key_size), C(pfx_encryption) (V(legacy) or
          V(modern)) and C(legacy_servers) (the hosts that need the legacy PFX).
        - C(resume) is null, or says that an earlier renewal is unfinished and that nothing is issued (the newest
          certificate of the identity (valid, not itself due, its key on a holder) is missing on some holder, or the
          ledger's last C(renewal_failed)/C(renewal_done) outcome about it in a group failed). It holds
          C(thumbprint) (the certificate to roll out), C(holder) (the inventory host it is exported from, with its
          key), C(missing) (the holders that lack it), C(groups) (the groups to roll it out to again) and
          C(reason). Such an item is C(due) (subject to blocking, backoff and windows like any other).
      type: dict
      sample: {backend: adcs, backend_index: 0, request_server: ex1, key_size: 2048, pfx_encryption: legacy}
    groups:
      description: The groups holding the identity, in rollout order.
      type: list
      elements: str
      sample: [DAG1, ex4]
    servers:
      description:
        - Every host holding the identity, in rollout order, with C(host), C(server) (Exchange's name),
          C(group), C(thumbprints) (the identity's certificates there), C(services) and C(references) (to
          carry over, as C(docs/facts.md) gives them) and C(exchange_version).
      type: list
      elements: dict
      sample: [{host: ex1, server: EX1, group: DAG1, services: [IIS, SMTP], exchange_version: 15.2.1544.4}]
    rollout:
      description: Batches of at most O(policy.rollout_batch) hosts, group by group, groups in rollout order.
      type: list
      elements: list
      sample: [[ex1], [ex2], [ex3], [ex4]]
not_renewed:
  description: Certificates this plan leaves alone, with C(thumbprint), C(subject), C(servers) and C(reason).
  returned: success
  type: list
  elements: dict
  sample: [{thumbprint: 9AFD8F14B0A567B69E61464EED7FE4654ED80B39, subject: CN=CLIUSR, servers: [ex1],
            reason: "a cluster certificate: managed by Windows"}]
unavailable_hosts:
  description: Hosts without usable facts, and why.
  returned: success
  type: dict
  sample: {ex5: "unreachable: ex5.contoso.lab:5986: connection timed out"}
markdown:
  description: The plan for people; summary, every item to renew (why, certificate, backend, servers, order),
    the current ones, what is not renewed and why, the hosts that could not be read.
  returned: success
  type: str
  sample: "# Renewal plan 20261202T0215Z-3f9a1b2c\n\nGenerated 2026-12-02T02:15:00Z. due 1, ..."
"""
