#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_remove
short_description: Remove an Exchange certificate only when nothing references it
version_added: 0.2.0
description:
  - Removes one certificate, or one pending request, from an Exchange Server 2016, 2019 or Subscription Edition
    host with C(Remove-ExchangeCertificate). It does so only after proving that nothing on the server still needs
    it. A certificate that is not there is not a change.
  - The module reads everything that can point at a certificate, the same references
    M(exchange.pki.certificate_info) reports. These are its Exchange services, the IIS bindings of
    C(Default Web Site) (443) and C(Exchange Back End) (444), the internal transport certificate, the Auth
    certificate (current, next and previous), the C(TlsCertificateName) of Send and Receive connectors and of
    the hybrid configuration, and the failover cluster.
  - Any of these references blocks the removal. The task then fails and lists every reference with the way to
    move it, and nothing is sent. Exchange itself does not block the removal of a certificate that IIS is bound
    to or that is the internal transport certificate, so this check is what protects them.
  - Two kinds of reference do not block, because another certificate of the server takes over (a I(stand-in)).
    The first is the SMTP, IMAP or POP service of the certificate when another certificate holds the same
    service, has its private key, is inside its validity period and covers every DNS name of this one. Services
    are additive, so a renewed certificate's predecessor keeps SMTP for good. The second is a Receive connector
    or hybrid C(TlsCertificateName) that also names another valid certificate with a key; a renewal keeps the
    issuer and subject. A Send connector that does not list this server as a source server does not block
    either. RV(references) lists these references too, with their stand-in.
  - A stand-in's validity period is judged by the Exchange server's clock (read with the server's facts), not the
    controller's, because Exchange chooses the certificate it serves by its own time. Should the server's time be
    unknown, the controller's clock is used and a warning says so.
  - O(force=true) removes the certificate in spite of its references, and returns them in RV(references) and
    RV(warnings). Two cases are refused even then, before anything is sent. A failover-cluster (CLIUSR) certificate
    is never removed; the cluster manages it. A certificate named by the C(TlsCertificateName) of a Send connector
    that this server sources cannot be removed either, because C(Remove-ExchangeCertificate) refuses it. Point the
    connector elsewhere first.
  - When a read that can reveal references fails, the references it would show are unknown. Examples are the IIS
    bindings, the transport service, the Auth configuration, the connectors, the hybrid configuration, the
    cluster, or Exchange's own list returning only raw data. The task then refuses unless O(force=true).
  - Only the certificates Exchange manages are considered, those in C(LocalMachine\My) and the pending requests.
    Certificates in the C(Root) and C(CA) stores are left alone.
options:
  thumbprint:
    description:
      - The SHA-1 thumbprint of the certificate or pending request, 40 hexadecimal digits in either case.
      - Spaces, colons and invisible marks that are copied with a thumbprint (such as the U+200E mark the
        Windows certificate dialog adds) are removed. Any other character is an error.
    type: str
    required: true
  force:
    description:
      - Remove the certificate even when something references it.
      - A cluster certificate is never removed, and a certificate a Send connector of the server names cannot be
        removed (Exchange refuses it).
    type: bool
    default: false
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
      - Reads the server, runs every check and returns the plan and the predicted RV(changed). The same
        refusals fail the task. Nothing is removed and no ledger record is written.
  diff_mode:
    support: full
    details:
      - The diff shows the certificate (store, subject and references) before, and its absence after.
requirements:
  - cryptography >= 42.0 on the controller (the server's certificates are parsed there from their raw bytes).
  - Exchange Server 2016, 2019 or Subscription Edition on the managed host, reached over WinRM.
notes:
  - An expired certificate left in the store can make an Exchange cumulative update fail during setup. Expired,
    unreferenced certificates are worth removing before an update.
  - Returns RV(change_record) when it removed something. With O(ledger) the record is appended to the ledger.
seealso:
  - module: exchange.pki.certificate_info
  - module: exchange.pki.certificate_services
  - name: Remove-ExchangeCertificate
    description: Microsoft's reference of the cmdlet the module runs.
    link: https://learn.microsoft.com/powershell/module/exchange/remove-exchangecertificate
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Remove the certificate a renewal replaced
  exchange.pki.certificate_remove:
    thumbprint: "{{ old_thumbprint }}"
  register: removal

- name: Show what still pointed at it (and which certificate took over)
  ansible.builtin.debug:
    var: removal.references

- name: Remove an abandoned pending request
  exchange.pki.certificate_remove:
    thumbprint: 0F3A6C1E9B7D2A4F8C3E5B1D7A9F2C4E6B8D0A1F

- name: Remove a certificate although something still references it (the references are returned as warnings)
  exchange.pki.certificate_remove:
    thumbprint: 0F3A6C1E9B7D2A4F8C3E5B1D7A9F2C4E6B8D0A1F
    force: true
    ledger: /var/log/exchange-pki/ledger.jsonl
"""

RETURN = r"""
changed:
  description: Whether the certificate was removed (in check mode, whether it would be).
  returned: always
  type: bool
  sample: true
thumbprint:
  description: The thumbprint as Windows writes it (40 upper-case hexadecimal digits).
  returned: success
  type: str
  sample: 6BB4DAC82BF95B8EF975EB74B80EA1B93F63F74A
removed:
  description: Whether the task removed the certificate (in check mode, whether it would). V(false) when it was absent.
  returned: success
  type: bool
  sample: true
references:
  description:
    - Everything that referenced the certificate when the task ran. A refused task names the blocking ones in
      its message.
  returned: success
  type: list
  elements: dict
  contains:
    kind:
      description:
        - What references the certificate. One of V(exchange_service), V(iis_binding), V(internal_transport),
          V(auth_current), V(auth_next), V(auth_previous), V(send_connector), V(receive_connector), V(hybrid)
          or V(cluster).
      type: str
      returned: always
      sample: exchange_service
    name:
      description: Which one, for example the service, the IIS site and binding, or the connector's name.
      type: str
      returned: always
      sample: SMTP
    blocking:
      description: Whether this reference blocks the removal (and was overridden by O(force)).
      type: bool
      returned: always
      sample: false
    stand_in:
      description: The certificate that takes over this reference; V(null) when none does.
      type: str
      returned: always
      sample: 9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A
    note:
      description: Why the reference blocks or does not; V(null) when it simply blocks.
      type: str
      returned: always
      sample: 9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A also holds SMTP and covers its names
plan:
  description: The steps the task sends (or, in check mode, would send), each with its reason. Empty when absent.
  returned: always
  type: list
  elements: dict
  sample:
    - id: remove
      operation: Remove-ExchangeCertificate
      arguments: {"Server": {"$local": "server"}, "Thumbprint": "6BB4DAC82BF95B8EF975EB74B80EA1B93F63F74A"}
      reason: "EX1: 6BB4DAC82BF95B8EF975EB74B80EA1B93F63F74A (CN=mail.contoso.lab, store My) is referenced by
        nothing that needs it"
steps:
  description:
    - How each step of RV(plan) ended (V(ok), V(failed) or V(skipped)), when the plan was sent.
    - V(unknown) when the step was sent and its answer was lost (the connection broke); whether it took effect
      is not known, and C(changed) is true when it changes the server.
  returned: when changes were sent
  type: list
  elements: dict
  sample: [{"id": "remove", "operation": "Remove-ExchangeCertificate", "status": "ok", "changed": true}]
change_record:
  description:
    - The audit record of the removal (the line O(ledger) appends). Its C(before) and C(after) are the diff's.
    - The format is described in the collection's C(docs/ledger.md).
  returned: when changes were sent
  type: dict
  sample:
    version: 1
    time: "2026-11-25T08:00:12Z"
    host: ex1
    server: EX1
    module: exchange.pki.certificate_remove
    action: remove
    result: changed
    before: {"thumbprint": "6BB4DAC82BF95B8EF975EB74B80EA1B93F63F74A", "present": true, "store": "My",
             "subject": "CN=mail.contoso.lab", "references": []}
    after: {"thumbprint": "6BB4DAC82BF95B8EF975EB74B80EA1B93F63F74A", "present": false}
    who: "alice as CONTOSO\\exadmin"
    run_id: null
    message: null
warnings:
  description: The references O(force) overrode, reads that failed, and other problems that did not stop the task.
  returned: when there are any
  type: list
  elements: str
failure_reason:
  description: Why the task failed or the host was unreachable, in one word (for example V(failed), V(access_denied)).
  returned: failed or unreachable
  type: str
  sample: failed
"""
