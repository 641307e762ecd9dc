#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: auth_certificate
short_description: Keep the Exchange organisation's Auth (OAuth) certificate valid on every server
version_added: 0.2.0
description:
  - Manages the organisation-wide Auth certificate (C(Get-AuthConfig)) the way Microsoft describes it (the rules of
    CSS-Exchange's MonitorExchangeAuthCertificate script). Run it once per organisation (C(run_once=true)) on an
    Exchange Mailbox server; it reaches the other servers with the C(-Server) parameter of the Exchange cmdlets.
  - The task reads the server it runs on, lists the organisation's Exchange servers (C(Get-ExchangeServer); Mailbox
    and Client Access servers of Exchange version 15) or takes O(servers), and reads each one's certificates
    with C(Get-ExchangeCertificate -Server). A server whose read fails is unreachable.
  - With O(state=present), in this order. A next certificate whose effective date has passed but that the AuthAdmin
    servicelet (which runs every 12 hours) has not published yet is published (C(Set-AuthConfig
    -PublishCertificate)). When the current certificate has O(renew_before_days) days left or fewer and there is no
    usable next certificate (none staged, or the staged one has 120 days left or fewer), or when the staged next
    certificate has expired or is on no server, a new certificate is made on this server and staged with an
    effective date O(lead_hours) hours ahead (C(Set-AuthConfig -NewCertificateThumbprint
    -NewCertificateEffectiveDate)); the servicelet publishes it then. The current and the next certificate are
    imported on every server that misses them. The previous certificate is cleared (C(Set-AuthConfig
    -ClearPreviousCertificate)) once the current one is valid and on every server. Otherwise nothing is changed,
    so a daily run is a no-op until something is due.
  - With O(remove_expired_retired) (the default), a retired Auth certificate is removed (C(Remove-ExchangeCertificate
    -Server)) from every reachable server that holds it once it is of no use - see O(remove_expired_retired).
  - With O(state=present) and the current certificate expired, missing everywhere or not configured (and no due
    next certificate to publish), the task fails and sends nothing, naming O(state=replaced).
  - O(state=replaced) is the emergency procedure for an expired or missing current certificate. A staged next
    certificate with more than 120 days left is imported where it is missing and published at once; otherwise a
    new certificate is made, imported on every server and set effective now (C(-Force) confirms the date less than
    48 hours ahead), then published. The previous certificate is cleared, C(MSExchangeServiceHost) is restarted and
    the C(MSExchangeOWAAppPool) and C(MSExchangeECPAppPool) application pools are recycled on the server the task
    runs on; a warning names the other servers, where the same restarts are left to the administrator. When the
    current certificate is usable, O(state=replaced) does what O(state=present) does.
  - The certificate is Microsoft's - C(New-ExchangeCertificate -KeySize 2048 -PrivateKeyExportable $true
    -SubjectName "cn=Microsoft Exchange Server Auth Certificate" -FriendlyName "Microsoft Exchange Server Auth
    Certificate" -DomainName @() -Services SMTP) - which makes a CSP key. In a remote session the SMTP prompt
    ("Overwrite the existing default SMTP certificate?") cannot be answered, so the task passes C(-Force) and then
    makes the server's previous internal transport certificate the internal transport certificate again
    (C(Enable-ExchangeCertificate -Services SMTP -Force)) in the same batch. When this server has no valid internal
    transport certificate to put back, the task fails and sends nothing (run it on another server). When putting
    it back fails, the new Auth certificate stays the internal transport certificate and a later run refuses to
    use it until the previous certificate is made the internal transport certificate again (the failed run's
    message names it).
  - A certificate is copied to a server with C(Export-ExchangeCertificate) on a server that has it (its key must
    be exportable) and C(Import-ExchangeCertificate -Server) with a random one-time password. The PFX passes
    through the controller between the two batches (for an Exchange 2016 target it is rebuilt there with legacy
    3DES/SHA-1 encryption); it and its password never appear in the result, the diff or the ledger.
  - Dates are judged by the clock of the Exchange server the task runs on, as C(Set-AuthConfig) and the
    servicelet judge them.
  - Refusals (the task fails, nothing that changes anything is sent) - a server cannot be reached (unless
    O(ignore_unreachable)); hybrid is configured, or C(Get-HybridConfiguration) cannot be read, and the task would
    make, stage or publish a certificate (unless O(acknowledge_hybrid), then a warning says to rerun the Hybrid
    Configuration Wizard); a certificate to copy has no exportable key anywhere.
extends_documentation_fragment:
  - exchange.pki.exchange_session
  - exchange.pki.ledger
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.exchange_host
attributes:
  check_mode:
    support: full
    details:
      - Reads the organisation (the same reads as a real run) and returns the plan, the predicted RV(changed),
        RV(actions) and RV(auth_config); nothing that changes anything is sent and no PFX is exported.
  diff_mode:
    support: full
    details:
      - The Auth configuration (current, next and previous thumbprints, the next effective date) and the servers
        that hold the current and the next certificate, before and after. A certificate the task makes is shown
        as C(<Thumbprint returned by step new>) until it exists.
      - When retired certificates are removed, C(retired_installed_on) - each one's thumbprint and the servers
        that hold it, before and after.
options:
  state:
    description:
      - V(present) stages, publishes, clears and distributes as Microsoft's rotation does; it never restarts
        anything.
      - V(replaced) also performs the emergency procedure when the current certificate is expired or missing.
    type: str
    choices: [present, replaced]
    default: present
  renew_before_days:
    description:
      - A new next certificate is staged when the current one has this many whole days left or fewer (and no
        usable next certificate is staged). Microsoft's script uses 60.
      - Between 1 and 365.
    type: int
    default: 60
  lead_hours:
    description:
      - How many hours after the read the staged certificate takes effect (15 minutes are added for the time the
        task takes). C(Set-AuthConfig) wants at least 48 hours, so that every server picks the certificate up
        before it is used; a smaller value fails the task.
      - Between 48 and 8760.
    type: int
    default: 49
  servers:
    description:
      - The Exchange servers that must hold the Auth certificate, by name or FQDN. The server the task runs on is
        always included.
      - Default, every Mailbox and Client Access server of Exchange version 15 (2013 and later) that
        C(Get-ExchangeServer) lists.
      - A name that is not an Exchange server of the organisation fails the task.
    type: list
    elements: str
  ignore_unreachable:
    description:
      - Act on the servers that can be reached when others cannot, instead of failing. A warning names the others;
        run the task again once they are back, before a staged certificate takes effect, to import it there.
    type: bool
    default: false
  acknowledge_hybrid:
    description:
      - Allow making, staging or publishing an Auth certificate in a hybrid organisation. Exchange Online trusts
        the Auth certificate, so hybrid OAuth (free/busy, mailbox moves) fails until the Hybrid Configuration
        Wizard runs again; the task warns when to run it.
    type: bool
    default: false
  remove_expired_retired:
    description:
      - Remove each retired Auth certificate that has expired from every reachable server that holds it, so that
        an unattended schedule does not report it as expired on every server for ever. Microsoft's guidance
        (and MonitorExchangeAuthCertificate) leaves an unused expired Auth certificate to be removed.
      - Retired means - the subject is C(CN=Microsoft Exchange Server Auth Certificate) and it is none of
        C(Get-AuthConfig)'s current, next or previous certificates as the task read them. While a certificate is
        the previous one Exchange may still validate tokens signed with it, so it stays; the run that clears it
        leaves it, and a later run removes it.
      - A retired certificate that has not expired yet stays - a partner application or Exchange Online may still
        hold OAuth tokens it signed. RV(retired) lists it with the date it expires.
      - On each server, the reference checks of M(exchange.pki.certificate_remove) must find nothing that uses it,
        else it stays there and RV(retired) says why - an IIS binding (the bindings of the server the task runs
        on, and C(IISServices) of C(Get-ExchangeCertificate -Server) for the others), any Exchange service but
        SMTP (the service C(New-ExchangeCertificate -Services SMTP) gave it; SMTP blocks too unless another valid
        SMTP certificate covers its names), the internal transport certificate, a Send connector, Receive
        connector or hybrid C(TlsCertificateName) that names it, or a read that failed (what it would tell is
        unknown).
      - A server that cannot be reached is skipped (with O(ignore_unreachable); otherwise the task fails as for
        any unreachable server) and a warning says so; a later run removes the certificate there.
      - V(false) leaves every retired certificate in place.
    type: bool
    default: true
requirements:
  - cryptography >= 42.0 on the controller (certificates are parsed there from their raw bytes, and PFX files for
    Exchange 2016 servers are rebuilt there).
  - Exchange Server 2016, 2019 or Subscription Edition on the managed host, reached over WinRM, with an account
    in Organization Management.
notes:
  - Round trips - one read (two without O(servers), C(Get-ExchangeServer) first); then one batch per phase (make
    the certificate; export it; import it and set the Auth configuration); then one more read of the other
    servers to confirm. With O(remove_expired_retired), each other server's read also carries its
    C(Get-TransportService) and C(Get-ReceiveConnector -Server) (no extra round trip).
  - The one-time PFX password travels only in the batch's no_log secrets.
  - Run the task on a server whose internal transport certificate is valid.
seealso:
  - module: exchange.pki.certificate_info
  - module: exchange.pki.certificate_remove
  - name: MonitorExchangeAuthCertificate
    description: Microsoft's script whose rules this module follows.
    link: https://microsoft.github.io/CSS-Exchange/Admin/MonitorExchangeAuthCertificate/
  - name: Maintain (rotate) the Exchange Server Auth certificate
    description: Microsoft's procedure.
    link: https://learn.microsoft.com/exchange/plan-and-deploy/integration-with-sharepoint-and-skype/maintain-oauth-certificate
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Keep the Auth certificate valid (daily; a no-op until something is due)
  exchange.pki.auth_certificate:
    ledger: /var/log/exchange-pki/ledger.jsonl
  run_once: true
  register: auth

- name: Show what was done
  ansible.builtin.debug:
    msg: "{{ auth.actions }} {{ auth.auth_config.after }}"
  run_once: true

- name: Emergency - the current Auth certificate has expired
  exchange.pki.auth_certificate:
    state: replaced
    ledger: /var/log/exchange-pki/ledger.jsonl
  run_once: true

- name: Hybrid organisation, one server in maintenance
  exchange.pki.auth_certificate:
    acknowledge_hybrid: true
    ignore_unreachable: true
    exchange_username: CONTOSO\exadmin
    exchange_password: "{{ vault_exadmin_password }}"
  run_once: true
  register: auth

- name: Remind to rerun the Hybrid Configuration Wizard
  ansible.builtin.debug:
    var: auth.warnings
  run_once: true
  when: auth is changed
"""

RETURN = r"""
changed:
  description: Whether anything was changed (in check mode, whether it would be).
  returned: always
  type: bool
  sample: true
auth_config:
  description:
    - The Auth configuration before the task and after it. After a change, C(after) is what the server reads back;
      in check mode it is the prediction.
    - Each has C(current_thumbprint), C(next_thumbprint), C(next_effective_date) (ISO-8601 UTC) and
      C(previous_thumbprint).
  returned: success
  type: dict
  sample:
    before:
      current_thumbprint: D8FAFF6A45C953472E40ADE305043ED6C0F345BF
      next_thumbprint: null
      next_effective_date: null
      previous_thumbprint: null
    after:
      current_thumbprint: D8FAFF6A45C953472E40ADE305043ED6C0F345BF
      next_thumbprint: 2834FBB24CA087A889D03A51BC652ECC376869CF
      next_effective_date: "2026-11-27T09:15:00Z"
      previous_thumbprint: null
actions:
  description:
    - What the task did (in check mode, would do), in order - V(created), V(imported), V(staged), V(published),
      V(cleared), V(restarted), V(removed) (a retired certificate, see RV(retired)). Empty when nothing was due.
  returned: success
  type: list
  elements: str
  sample: [created, imported, staged]
imports:
  description: The certificates copied to servers that missed them - C(certificate) (V(current), V(next) or
    V(new)), its C(thumbprint) and the C(servers).
  returned: success
  type: list
  elements: dict
  sample:
    - certificate: new
      thumbprint: 2834FBB24CA087A889D03A51BC652ECC376869CF
      servers: [EX2, EX3, EX4]
thumbprint:
  description: The thumbprint of the certificate the task made; V(null) when it made none (and in check mode).
  returned: success
  type: str
  sample: 2834FBB24CA087A889D03A51BC652ECC376869CF
server_status:
  description: Each Exchange server - C(name), C(reachable), C(problem) (why it is unreachable), C(has_current) and
    C(has_next) (V(null) when unknown or when none is configured). After a change, as read back.
  returned: success
  type: list
  elements: dict
  sample:
    - {name: EX1, reachable: true, problem: null, has_current: true, has_next: true}
retired:
  description:
    - Each retired Auth certificate found on a reachable server (see O(remove_expired_retired); empty when it is
      V(false)) - C(thumbprint), C(not_after) (ISO-8601 UTC), C(expired), C(removed) (the servers it is removed
      from, or in check mode would be), C(kept) (C(server) and C(reason) for each server where it stays) and
      C(skipped) (unreachable servers where it was not looked for; only for an expired one).
  returned: success
  type: list
  elements: dict
  sample:
    - thumbprint: 0CCD54D945794C7275D46612EDFECEF082765D6E
      not_after: "2027-01-09T08:00:00Z"
      expired: true
      removed: [EX1, EX2, EX4]
      kept: [{server: EX3, reason: "still referenced: iis_binding 'Default Web Site *:443:'"}]
      skipped: []
plan:
  description: The steps the task sends (or would send in check mode), each with its reason; the PFX password is
    shown as C(********) and the PFX by its size and SHA-256.
  returned: success
  type: list
  elements: dict
steps:
  description:
    - How each sent step ended (C(ok), C(failed) or C(skipped)); only when something was sent.
    - C(unknown) when the step was sent and its answer was lost (the connection broke); whether it took effect
      is not known, and C(changed) is true when it changes the server.
  returned: when something was sent
  type: list
  elements: dict
diff:
  description: Before and after (with C(--diff)) when something changes; see the diff_mode attribute.
  returned: when changed and diff mode is on
  type: dict
change_record:
  description: The audit record of the change (also appended to O(ledger) when set); never a password or key.
  returned: when something was sent (not in check mode)
  type: dict
warnings:
  description: Unreachable servers that were ignored (and a retired certificate not removed there), hybrid
    reminders, restarts left for other servers, a CNG key on the Auth certificate, a current certificate that
    expires before the staged one takes effect.
  returned: when there are warnings
  type: list
  elements: str
"""
