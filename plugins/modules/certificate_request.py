#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_request
short_description: Make a certificate signing request (CSR), with the key on the Exchange server or the controller
version_added: 0.2.0
description:
  - With O(key_location=server) (the default) the key is made on the Exchange server by
    C(New-ExchangeCertificate -GenerateRequest) and waits there as a pending request (C(Status) C(PendingRequest)).
    Complete it with M(exchange.pki.certificate_import) on the same server once the CA has issued the
    certificate; a pending request can only be completed on the server that generated it.
  - Idempotent. When a pending request for the same subject, DNS names and key size already waits on the server,
    no new request is made and that request is returned (its thumbprint and CSR). The CSR of an existing
    request is read with C(Export-ExchangeCertificate), which returns a pending request's PKCS#10 bytes.
  - With O(key_location=controller) the RSA key and the CSR are made on the Ansible controller with
    C(cryptography); the managed host is not contacted. The key is written to O(private_key_path) with mode
    C(0600) (through a temporary file in the same directory, renamed into place) and never returned. When
    O(private_key_path) already holds an RSA key of O(key_size), it is reused and the same CSR is made again
    (PKCS#1 v1.5 signatures are deterministic). Import the issued certificate with its key as a PFX with
    M(exchange.pki.certificate_import).
  - The subject's CN, when it is a DNS name, is the first DNS name of the request (Exchange adds it too), then
    O(dns_names), in order, as A-labels (IDNA 2008), duplicates merged.
  - Only RSA keys are offered. C(New-ExchangeCertificate) makes RSA keys only, and an ECC certificate on Exchange
    needs a setting override this collection does not manage; an ECC key made on the controller could not be
    used by the Exchange services without it.
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
      - Server mode reads the server and returns the plan and the predicted C(changed); nothing is sent that
        changes the server. An existing request's CSR is still read and returned. A new request's CSR and
        thumbprint are V(null) in check mode (the key does not exist yet).
      - Controller mode writes no file; the CSR is returned when an existing key is reused.
  diff_mode:
    support: full
    details:
      - The pending request (server mode) or the key file and CSR file (controller mode) before and after; never
        key material.
options:
  subject:
    description:
      - The subject as X.500 attributes, least specific first, in the order they are encoded, as
        C(New-ExchangeCertificate -SubjectName) takes it, for example V(C=US,O=Contoso,CN=mail.contoso.com).
      - Attributes C, O, OU, L, S (or ST), CN, E and DC. Exactly one CN is required. C must be a two-letter
        country code. A value with a comma is written in double quotes (V(O="Contoso, Ltd")).
      - Include C=; without it the task warns (Exchange's documentation writes subjects with C=, and public CAs
        may refuse a request without it).
      - Control and invisible characters (CR, LF, NUL, U+200E), empty RDNs and multi-valued RDNs (C(+)) are
        refused.
    type: str
    required: true
  dns_names:
    description:
      - The DNS names of the subject alternative name extension, besides the CN.
      - Internationalized names are converted to their A-labels. A wildcard is accepted only as the whole
        left-most label over at least two labels (V(*.contoso.com)). IP addresses are refused.
      - At most 100 names in all.
    type: list
    elements: str
  key_size:
    description:
      - RSA key size in bits.
      - V(3072) only with O(key_location=controller); C(New-ExchangeCertificate) accepts 2048 or 4096.
    type: int
    default: 2048
    choices: [2048, 3072, 4096]
  friendly_name:
    description:
      - Friendly name of the pending request (and of the certificate once completed); shorter than 64
        characters.
      - Server mode only; with O(key_location=controller) it has no effect (a warning says so).
    type: str
  exportable:
    description:
      - Whether the private key made on the server can be exported (C(-PrivateKeyExportable)).
      - Defaults to V(true) in server mode, unlike Exchange's own default of V(false). The same certificate must be
        on every server of a site behind one load balancer (and for Extended Protection); it is requested once,
        exported with M(exchange.pki.certificate_export) and imported on the others, which needs an exportable
        key. Set V(false) for a certificate used on one server only.
      - The exportability of an existing pending request cannot be changed; the task warns when it differs.
      - Server mode only; with O(key_location=controller) it has no effect (a warning says so).
    type: bool
  key_location:
    description:
      - Where the private key is made and kept.
      - V(server) makes a pending request on the Exchange server (C(New-ExchangeCertificate -GenerateRequest)).
      - V(controller) makes the key and CSR on the controller; O(private_key_path) is required.
    type: str
    default: server
    choices: [server, controller]
  private_key_path:
    description:
      - Controller path of the PEM (PKCS#8, unencrypted) private key, mode C(0600). Required with
        O(key_location=controller), refused otherwise.
      - An existing RSA key of O(key_size) is reused. A file that holds something else (another key size, an
        encrypted key, no key) is left alone and the task fails, unless O(force=true).
      - Symbolic links are refused; the directory must exist.
    type: path
  csr_path:
    description:
      - Controller path where the CSR is written as PEM (mode C(0644); a CSR holds no secret). Optional in both
        modes; written only when its content differs.
    type: path
  force:
    description:
      - With O(key_location=controller), replace a O(private_key_path) file that does not hold a usable RSA key of
        O(key_size). A certificate issued for the old key no longer matches the new one.
    type: bool
    default: false
requirements:
  - cryptography >= 42.0 on the controller (CSRs are read and made there).
  - idna on the controller, for internationalized DNS names.
  - Exchange Server 2016, 2019 or Subscription Edition on the managed host, reached over WinRM (server mode).
notes:
  - Server mode sends one batch that reads the server, and one that makes the request (with the confirming
    re-read); an existing request's CSR needs one more read.
  - The returned RV(dns_names) are the names the request carries; Exchange lists them as the pending request's
    C(CertificateDomains).
seealso:
  - module: exchange.pki.certificate_import
  - module: exchange.pki.adcs_request
  - module: exchange.pki.certificate_export
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Request the client-facing certificate on the first server (key made there, exportable)
  exchange.pki.certificate_request:
    subject: C=US,O=Contoso,CN=mail.contoso.com
    dns_names:
      - mail.contoso.com
      - autodiscover.contoso.com
    friendly_name: mail 2027
    csr_path: /srv/pki/mail-2027.csr
    ledger: /var/log/exchange-pki/ledger.jsonl
  register: request

- name: Show the CSR to paste into the CA
  ansible.builtin.debug:
    msg: "{{ request.csr }}"

- name: Make the key and the CSR on the controller instead
  exchange.pki.certificate_request:
    subject: C=DE,O=Contoso,CN=mail.contoso.de
    dns_names: [mail.contoso.de, autodiscover.contoso.de]
    key_size: 3072
    key_location: controller
    private_key_path: /srv/pki/mail.contoso.de.key
    csr_path: /srv/pki/mail.contoso.de.csr
  delegate_to: localhost
"""

RETURN = r"""
changed:
  description: Whether a request was made, or a key or CSR file written.
  returned: always
  type: bool
  sample: true
plan:
  description:
    - The steps the task sends (or would send in check mode), each with its reason; empty when nothing is to do.
    - In controller mode the steps name the files to write (C(controller.write_private_key), C(controller.write_csr)).
  returned: success
  type: list
  elements: dict
  sample:
    - id: request
      operation: New-ExchangeCertificate
      arguments: {GenerateRequest: true, SubjectName: "C=US,O=Contoso,CN=mail.contoso.com", KeySize: 2048}
      reason: no pending request for C=US,O=Contoso,CN=mail.contoso.com with these names and key size on this server
steps:
  description:
    - How each sent step ended (C(ok), C(failed) or C(skipped)); only when something was sent.
    - C(unknown) when the step was sent and its answer was lost (the connection broke); whether it took effect
      is not known, and C(changed) is true when it changes the server.
  returned: when the server was changed
  type: list
  elements: dict
  sample: [{id: request, operation: New-ExchangeCertificate, status: ok, changed: true}]
csr:
  description: The certificate signing request as PEM; V(null) in check mode when the request does not exist yet.
  returned: success
  type: str
  sample: "-----BEGIN CERTIFICATE REQUEST-----\nMIIC...\n-----END CERTIFICATE REQUEST-----\n"
csr_sha256:
  description: SHA-256 of the CSR's DER bytes, lower-case hex; V(null) when RV(csr) is.
  returned: success
  type: str
  sample: f054bc157fb800087ff563a54f3c0d9df35bd376875f3408f51aecee2b86d095
thumbprint:
  description:
    - Thumbprint of the pending request on the server (what Get-ExchangeCertificate lists with Status PendingRequest).
    - V(null) in controller mode and in check mode for a request not made yet.
  returned: success
  type: str
  sample: 450A8D473406043122B4E353B9D848702A191B79
subject:
  description: The subject as sent to Exchange (attributes as written, values quoted where needed).
  returned: success
  type: str
  sample: C=US,O=Contoso,CN=mail.contoso.com
dns_names:
  description: The DNS names the request carries (the CN first when it is a DNS name), as A-labels.
  returned: success
  type: list
  elements: str
  sample: [mail.contoso.com, autodiscover.contoso.com]
key_size:
  description: RSA key size in bits.
  returned: success
  type: int
  sample: 2048
key_location:
  description: Where the key is, V(server) or V(controller).
  returned: success
  type: str
  sample: server
private_key_path:
  description: The controller path of the key file (never its content).
  returned: with key_location=controller
  type: str
  sample: /srv/pki/mail.contoso.de.key
csr_path:
  description: The controller path the CSR was written to.
  returned: when csr_path is set
  type: str
  sample: /srv/pki/mail-2027.csr
diff:
  description: Before and after (with C(--diff)) when something changes.
  returned: when changed and diff mode is on
  type: dict
change_record:
  description:
    - The audit record of the change (also appended to O(ledger) when set); never key material or passwords.
    - In controller mode its C(server) is V(controller).
  returned: when something was changed (not in check mode)
  type: dict
  sample:
    server: EX1
    action: certificate_request
    result: changed
    before: {pending_request: null}
    after: {pending_request: {subject: "C=US,O=Contoso,CN=mail.contoso.com", key_size: 2048}}
warnings:
  description: What the task noticed (a subject without C=, an existing request's different exportability).
  returned: when there are warnings
  type: list
  elements: str
"""
