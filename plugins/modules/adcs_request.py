#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: adcs_request
short_description: Get a certificate request signed by an Active Directory Certificate Services CA
version_added: 0.2.0
description:
  - Submits a PKCS#10 certificate request (CSR) to an AD CS enterprise CA with C(certreq -submit), run on a
    domain-joined Windows host (an Exchange server), and returns the issued certificate and its chain.
  - When the template requires a CA administrator's approval, the request is pending. That is not a failure.
    The task reports RV(status=pending) with the RV(request_id) and a warning, and a later run with the same
    CSR (or with O(request_id)) retrieves it with C(certreq -retrieve) once it is issued.
  - A request the CA denies, or that fails at the CA, fails the task with the CA's disposition message.
  - B(Never submits the same CSR twice.) The module remembers each submission in a submission state file on
    the controller (O(state_path)), keyed by the SHA-256 fingerprint of the CSR. Each later run with that CSR only
    retrieves the request the CA numbered, from any host, so that a rerun, a retry after a failure, or a play over
    several hosts never makes a second request at the CA. A submission the CA never received (certreq could
    not reach it) is not remembered, so the next run submits again.
  - The chain is built on the controller from the issuing CA certificates in the host's LocalMachine C(CA) and
    C(Root) stores (an AD CS enterprise CA publishes them to every domain member). A warning says when it does
    not reach a root.
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
      - A submission is never sent in check mode; the task predicts V(changed=true) and RV(status) is V(null).
      - A request already submitted is retrieved in check mode too (retrieval only reads), so check mode reports
        its real status. Nothing is written, neither the state file nor O(certificate_path) or O(chain_path).
  diff_mode:
    support: full
    details:
      - The diff shows the request's state by CSR fingerprint (request id and status) before and after.
  platform:
    details:
      - The host only needs to be a domain member that can reach the CA and has C(certreq.exe); Exchange
        is not used.
options:
  csr:
    description:
      - The certificate request, PEM text (C(-----BEGIN CERTIFICATE REQUEST-----) or Windows'
        C(-----BEGIN NEW CERTIFICATE REQUEST-----)), for example the C(csr) that
        M(exchange.pki.certificate_request) returns.
      - Its signature must verify. Requires O(state_path).
      - One of O(csr), O(csr_path) and O(request_id) is required; O(csr) and O(csr_path) exclude each other.
    type: str
  csr_path:
    description:
      - Path on the controller of the certificate request, PEM or DER.
    type: path
  ca_config:
    description:
      - The CA's config string, C(CAHost\CA name) with exactly one backslash, as C(certutil -dump) or
        C(certutil -config - -ping) show it, for example V(ca01.contoso.com\\Contoso Issuing CA).
      - The host part must be a host name; the CA name is 1 to 64 characters. Control characters (CR, LF, NUL),
        quotes and the two characters C(\\n) are refused.
    type: str
    required: true
  template:
    description:
      - The certificate template, by name (not display name), for example V(WebServer). Sent as the
        C(CertificateTemplate) attribute.
      - A submission needs a template, here or as a C(CertificateTemplate:<name>) entry of O(attributes); an
        enterprise CA denies a request without one. When both are given they must agree.
    type: str
  attributes:
    description:
      - Extra request attributes, each C(Name:Value) (C(certreq -attrib)), for example
        V(SAN:dns=mail.contoso.com&dns=autodiscover.contoso.com) when the CA allows names from attributes.
      - At most 32; control characters, quotes and the two characters C(\\n) (certreq's separator) are refused.
    type: list
    elements: str
  request_id:
    description:
      - Retrieve this AD CS request instead of submitting, for example a pending request approved since the
        last run, or one submitted by other means.
      - With O(csr) or O(csr_path), the issued certificate must certify the CSR's key, and the request is
        remembered in O(state_path). Between 1 and 2147483647.
    type: int
  state_path:
    description:
      - Path on the controller of the submission state file. It records, one JSON line per event, what was
        submitted (CSR fingerprint and subject, CA config, template, request id, status, certificate thumbprint,
        host, time). It holds no secret.
      - Defaults to O(csr_path) followed by C(.adcs.jsonl); required with O(csr).
      - Created with mode C(0600). Read and appended under an exclusive C(flock), held while the request is
        submitted, so that forks running the same CSR at once submit it once (on a local filesystem; NFS does
        not guarantee C(flock)).
      - Keep it as long as the request may be retrieved; removing it lets the same CSR be submitted again.
    type: path
  certificate_path:
    description:
      - Path on the controller to write the issued certificate to, PEM. Mode C(0644); written only when its
        content differs, through a temporary file and a rename.
    type: path
  chain_path:
    description:
      - Path on the controller to write the chain to (issuer first, up to the root), PEM, like
        O(certificate_path).
    type: path
requirements:
  - cryptography >= 42.0 on the controller (the CSR is read and the certificate checked there).
  - A domain-joined Windows host with C(certreq.exe), reached over WinRM, whose identity may enroll for the
    template.
notes:
  - B(The double hop.) C(certreq) on the host authenticates to the CA (DCOM/RPC) as the identity of the
    Ansible connection, and over WinRM that network logon cannot authenticate onward. The CA then answers access
    denied (C(0x80070005)) or the RPC server is unavailable. Use become (C(become=true),
    C(become_method=runas) with the same account), CredSSP (C(ansible_winrm_transport=credssp)), or Kerberos
    delegation (C(ansible_winrm_kerberos_delegation=true)). The collection's C(docs/real-servers.md) explains
    each.
  - The Exchange session options (O(exchange_username), O(exchange_password), O(exchange_uri),
    O(exchange_authentication)) are accepted so that C(module_defaults) for the action group
    C(group/exchange.pki.exchange) can set them once for every module, but they have no effect here and are not
    sent to the host. This module opens no Exchange session, and certreq always runs as the connection's identity.
  - The request is submitted in the user context of that identity, which needs the Enroll permission on the
    template.
  - One task sends one batch to the host, the submission (or retrieval) and the read of the host's C(CA) and
    C(Root) stores.
  - When a request is submitted, or a certificate file is written, RV(change_record) is returned and appended
    to O(ledger); its C(server) is the CA's config string.
  - When the connection breaks while a submission is sent, the CA may have received the request, and the task
    cannot know its request id. The task is unreachable, the attempt is recorded as failed in O(ledger), and its
    message says to look for the request at the CA. Running the task again submits the CSR again as another request.
seealso:
  - module: exchange.pki.certificate_request
  - module: exchange.pki.certificate_import
  - name: certreq
    description: Microsoft's reference of the certreq command.
    link: https://learn.microsoft.com/windows-server/administration/windows-commands/certreq_1
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Get the CSR made on the server signed by the enterprise CA (runas avoids the double hop)
  exchange.pki.adcs_request:
    csr: "{{ request.csr }}"
    state_path: /srv/exchange-pki/mail-2027.adcs.jsonl
    ca_config: ca01.contoso.com\Contoso Issuing CA
    template: WebServer
    certificate_path: /srv/exchange-pki/mail-2027.pem
    chain_path: /srv/exchange-pki/mail-2027-chain.pem
  become: true
  become_method: ansible.builtin.runas
  become_user: CONTOSO\svc-exchange-pki
  register: issued

- name: Stop here while a CA administrator has to approve the request
  ansible.builtin.meta: end_host
  when: issued.status == 'pending'

- name: Later, retrieve a request that was pending (same CSR - the state file knows its id)
  exchange.pki.adcs_request:
    csr_path: /srv/exchange-pki/mail-2027.csr
    ca_config: ca01.contoso.com\Contoso Issuing CA
    template: ExchangeManualApproval
  register: issued

- name: Retrieve a request by its id
  exchange.pki.adcs_request:
    request_id: 4711
    ca_config: ca01.contoso.com\Contoso Issuing CA
  register: issued
"""

RETURN = r"""
changed:
  description:
    - Whether a request was (or, in check mode, would be) submitted to the CA, or O(certificate_path) or
      O(chain_path) written. Retrieving a request is no change.
  returned: always
  type: bool
  sample: true
status:
  description:
    - V(issued), V(pending) or V(denied) (V(failed) when the CA could not process the request). V(null) in check
      mode when the request would be submitted.
  returned: always
  type: str
  sample: issued
request_id:
  description: The CA's request id, or V(null) when the CA never received the request.
  returned: always
  type: int
  sample: 1001
certificate:
  description: The issued certificate, PEM; V(null) unless RV(status=issued).
  returned: always
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIDUDCCAjigAwIBAgIU...\n-----END CERTIFICATE-----\n"
chain:
  description: The chain of the issued certificate, PEM each, issuer first, up to the root when the host
    trusts it; empty unless RV(status=issued).
  returned: always
  type: list
  elements: str
  sample: ["-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"]
thumbprint:
  description: The issued certificate's thumbprint (SHA-1, upper case), or V(null).
  returned: always
  type: str
  sample: ACFE56F71593B76EE14C0AE164123066F3ACB3F7
disposition_message:
  description: What the CA said (certreq's disposition), for example V(Taken Under Submission).
  returned: always
  type: str
  sample: Issued
csr_sha256:
  description: The SHA-256 fingerprint of the CSR's DER, the key of the submission state file; V(null) without a
    CSR.
  returned: always
  type: str
  sample: 83d452cf0ce01d4208753227b18253dc2fee648e51e3284b199136621bc23300
state_path:
  description: The submission state file used, or V(null).
  returned: always
  type: str
  sample: /srv/exchange-pki/mail-2027.csr.adcs.jsonl
warnings:
  description:
    - A pending request (what to do next), and a chain the host's stores cannot complete up to a root.
  returned: when there is something to say
  type: list
  elements: str
  sample: ["request 1001 is pending at ca01.contoso.com\\Contoso Issuing CA (Taken Under Submission): ..."]
plan:
  description: The certreq step (submit or retrieve) and the store read, with their reasons; the CSR is shown
    as its size and SHA-256.
  returned: always
  type: list
  elements: dict
  sample:
    - id: submit
      operation: host.certreq_submit
      arguments: {config: "ca01.contoso.com\\Contoso Issuing CA", template: WebServer,
                  request: "<658 bytes, SHA-256 83d4...>"}
      reason: "CSR CN=mail.contoso.com (SHA-256 83d452cf0ce01d42...) has not been submitted to ..."
steps:
  description: How each step ended (C(id), C(operation), C(status), C(changed), and C(message) on failure).
  returned: when the batch was sent
  type: list
  elements: dict
  sample: [{id: submit, operation: host.certreq_submit, status: ok, changed: true}]
change_record:
  description:
    - What the task did, as one audit record (action V(adcs_submit) or V(adcs_retrieve)); appended to O(ledger)
      when set. Its C(server) is the CA's config string.
    - RV(change_record.before) and RV(change_record.after) hold C(csr_sha256), C(request_id) and C(status).
  returned: when a request was submitted or a certificate file written (or that failed), not in check mode
  type: dict
  contains:
    version:
      description: The record format version.
      type: int
      sample: 1
    time:
      description: When the change was made, ISO 8601 UTC with a C(Z) suffix.
      type: str
      sample: "2026-11-25T08:00:00Z"
    host:
      description: The inventory host name of the task, or V(null).
      type: str
      sample: ex01
    server:
      description: The CA's config string.
      type: str
      sample: ca01.contoso.com\\Contoso Issuing CA
    module:
      description: The module that made the change.
      type: str
      sample: exchange.pki.adcs_request
    action:
      description: V(adcs_submit) or V(adcs_retrieve).
      type: str
      sample: adcs_submit
    result:
      description: V(changed) or V(failed).
      type: str
      sample: changed
    before:
      description: The request's state before the task.
      type: dict
      sample: {"csr_sha256": "83d4...", "request_id": null, "status": null}
    after:
      description: The request's state after the task.
      type: dict
      sample: {"csr_sha256": "83d4...", "request_id": 1001, "status": "pending"}
    who:
      description: The controller user, and the remote user when known.
      type: str
      sample: alice as CONTOSO\\exadmin
    run_id:
      description: A correlation id of the run, or V(null).
      type: str
      sample: null
    message:
      description: The error message when RV(change_record.result) is V(failed), else V(null).
      type: str
      sample: null
diff:
  description: The request's state before and after, with C(--diff) when the task submits.
  returned: when the task runs with C(--diff) and submits a request
  type: dict
  sample: {"before": {"csr_sha256": "83d4...", "request_id": null, "status": null},
           "after": {"csr_sha256": "83d4...", "request_id": 1001, "status": "issued"}}
"""
