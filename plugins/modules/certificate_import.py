#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_import
short_description: Complete a pending certificate request, or import a PFX, on an Exchange server with its chain
version_added: 0.2.0
description:
  - Completes a pending request made with M(exchange.pki.certificate_request)
    (O(exchange.pki.certificate_request#module:key_location=server)) by importing the issued certificate
    (O(certificate) or O(src), PEM, DER or P7B) with C(Import-ExchangeCertificate). The
    certificate must complete a pending request of THIS server (its public key is the request's); a pending
    request can only be completed on the server that generated it. When no pending request here has the
    certificate's key, the task fails and sends nothing; complete it on the originating server, then distribute
    the certificate with its key as a PFX.
  - Imports a PFX (O(pfx_path) or O(pfx_content), with O(pfx_password)), for example one made by
    M(exchange.pki.certificate_export) on another server of the site.
  - Imports a certificate (O(certificate) or O(src)) whose private key is on the controller
    (O(private_key_path)), for example one issued by an own CA, an ACME CA or a manual process for a key made
    with O(exchange.pki.certificate_request#module:key_location=controller). The key must belong to the
    certificate; the PFX is built on the controller (legacy 3DES/SHA-1 encryption where the server needs it, see
    below) with a password made for this one import, and the key never appears in results, diffs, change records
    or the ledger.
  - Everything is checked on the controller before anything is sent, with C(cryptography) - the data parses, the
    PFX password is right, the private key belongs to the certificate, the certificate and its CA certificates
    have not expired (an expired one fails the task), and the chain is complete (what is missing, does not fit or
    is outside its validity period is a warning, also returned in RV(chain_warnings)).
  - Validity is judged by the Exchange server's clock (read with the server's facts, before anything is sent),
    not the controller's, because Exchange and Windows on the server decide by their own time whether a
    certificate can be used. Should the server's time be unknown, the controller's clock is used and a warning
    says so.
  - For Exchange 2016 hosts (and any host on Windows Server 2016 or older, or whose versions are unknown), a PFX
    encrypted with AES (OpenSSL 3's default) is rebuilt on the controller with legacy 3DES/SHA-1 encryption
    before it is sent; Windows Server 2016 cannot read the AES form and fails with a misleading "The specified
    network password is not correct". RV(pfx_rebuilt_legacy) says when that happened.
  - The chain's intermediate CA certificates are added to C(LocalMachine\CA) (C(host.add_certificate)) before the
    import, so that IIS and SMTP serve the full chain; Exchange's import is not relied on for that. The chain's
    root is added to C(LocalMachine\Root) only with O(trust_root=true); otherwise a root that is not there is a
    warning.
  - Idempotent by thumbprint. When the certificate is already in C(LocalMachine\My) with its private key, it is
    not imported again (the intermediates that are missing are still added). A copy without its private key
    already there fails the task (Exchange refuses a second copy); remove it first.
  - O(friendly_name) and O(exportable) are set on import only; when the certificate is already there with other
    values, the task warns and changes nothing.
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
      - Reads the server and the CA and Root stores, checks the input, and returns the plan and the predicted
        C(changed); nothing that changes the server is sent.
  diff_mode:
    support: full
    details:
      - The certificate, the pending request it completes, and the CA and Root store entries of its chain, before
        and after. Never the PFX, its password or key material (the PFX appears in the plan only as its size and
        SHA-256).
options:
  certificate:
    description:
      - The issued certificate, to complete a pending request, as PEM text (optionally followed by its chain, or
        a PKCS#7 PEM block) or as base64 of a DER certificate or P7B chain.
      - Exactly one of O(certificate), O(src), O(pfx_path) and O(pfx_content) is required.
      - With O(private_key_path), the certificate whose private key that file holds.
    type: str
  src:
    description:
      - Controller path of the issued certificate file (PEM, DER or P7B), to complete a pending request, or to
        import with O(private_key_path).
    type: path
  private_key_path:
    description:
      - Controller path of the private key of O(certificate) or O(src) (PEM, PKCS#8 or PKCS#1, or DER;
        encrypted keys need O(private_key_password)). The certificate is imported with this key, as a PFX built
        on the controller, instead of completing a pending request.
      - The key must belong to the certificate, or the task fails and sends nothing. Not with O(pfx_path) or
        O(pfx_content).
    type: path
  private_key_password:
    description:
      - Password of an encrypted O(private_key_path). Never shown in results, diffs, change records, the ledger
        or messages.
    type: str
  pfx_path:
    description:
      - Controller path of a PFX (PKCS#12) file with the certificate and its private key.
    type: path
  pfx_content:
    description:
      - A PFX (PKCS#12) as base64, for example the content M(exchange.pki.certificate_export) returns.
    type: str
  pfx_password:
    description:
      - Password of the PFX. Never shown in results, diffs, change records, the ledger or messages.
      - Only with O(pfx_path) or O(pfx_content).
    type: str
  exportable:
    description:
      - Whether the private key imported from a PFX can be exported again (C(-PrivateKeyExportable)).
      - Exchange's default, V(false). Only for a PFX or with O(private_key_path); a completed request keeps the
        exportability it was requested with, and giving V(true) with O(certificate) or O(src) alone fails the
        task.
    type: bool
    default: false
  friendly_name:
    description:
      - Friendly name of the imported certificate; shorter than 64 characters. Without it, a PFX keeps its own
        friendly name and a completed request the request's.
    type: str
  trust_root:
    description:
      - Add the chain's self-signed root to C(LocalMachine\Root) of the server when it is not there.
      - Only for a root you trust; by default a missing root is a warning.
    type: bool
    default: false
requirements:
  - cryptography >= 42.0 on the controller (the files are read, checked and, for Exchange 2016, rebuilt there).
  - Exchange Server 2016, 2019 or Subscription Edition on the managed host, reached over WinRM.
notes:
  - One batch reads the server (with its CA and Root stores); one more adds the missing CA certificates, imports,
    and re-reads the server to confirm.
  - Input larger than 1 MiB is refused.
seealso:
  - module: exchange.pki.certificate_request
  - module: exchange.pki.certificate_export
  - module: exchange.pki.certificate_services
  - module: exchange.pki.tls_probe
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Complete the pending request on the server that made it
  exchange.pki.certificate_import:
    src: /srv/pki/mail-2027.cer
    ledger: /var/log/exchange-pki/ledger.jsonl
  register: completed

- name: Import the exported PFX on the other members of the site (rebuilt for Exchange 2016 when needed)
  exchange.pki.certificate_import:
    pfx_path: /srv/pki/mail-2027.pfx
    pfx_password: "{{ vault_pfx_password }}"
    friendly_name: mail 2027

- name: Import a certificate from an own CA with the key made on the controller
  exchange.pki.certificate_import:
    src: /srv/pki/mail-2027.crt
    private_key_path: /srv/pki/mail-2027.key
    private_key_password: "{{ vault_key_password }}"
    friendly_name: mail 2027

- name: Import a PFX whose root CA the servers do not trust yet
  exchange.pki.certificate_import:
    pfx_content: "{{ exported.pfx }}"
    pfx_password: "{{ vault_pfx_password }}"
    trust_root: true
"""

RETURN = r"""
changed:
  description: Whether the certificate was imported or a CA certificate added (in check mode, whether it would be).
  returned: always
  type: bool
  sample: true
plan:
  description: The steps the task sends (or would send in check mode), each with its reason.
  returned: success
  type: list
  elements: dict
  sample:
    - id: import
      operation: Import-ExchangeCertificate
      arguments: {FileData: "<2563 bytes, SHA-256 7d2f...>", Password: "********"}
      reason: 8060427B76346F3BD31DBC03FFEABD09CF2B8634 is not in LocalMachine\My on this server
steps:
  description:
    - How each sent step ended (C(ok), C(failed) or C(skipped)); only when something was sent.
    - C(unknown) when the step was sent and its answer was lost (the connection broke); whether it took effect
      is not known, and C(changed) is true when it changes the server.
  returned: when the server was changed
  type: list
  elements: dict
thumbprint:
  description: Thumbprint of the certificate (SHA-1 of its DER bytes, upper-case hex).
  returned: success
  type: str
  sample: 8060427B76346F3BD31DBC03FFEABD09CF2B8634
subject:
  description: Subject of the certificate (RFC 4514).
  returned: success
  type: str
  sample: CN=mail.contoso.com,O=Contoso,C=US
not_after:
  description: End of the certificate's validity (ISO-8601 UTC).
  returned: success
  type: str
  sample: "2027-11-25T08:00:00Z"
completed_request:
  description: Whether the task completes (completed) a pending request of this server.
  returned: success
  type: bool
  sample: true
pfx_rebuilt_legacy:
  description: Whether the PFX was rebuilt with legacy 3DES/SHA-1 encryption for this server.
  returned: success
  type: bool
  sample: false
pfx_built:
  description:
    - With O(private_key_path), the encryption of the PFX built on the controller and imported (V(legacy) for
      Exchange 2016 and Windows Server 2016 or unknown versions, else V(modern)); V(null) when nothing was built
      (the certificate is already there, or no O(private_key_path)).
  returned: success
  type: str
  sample: modern
intermediates_added:
  description: Thumbprints of the intermediate CA certificates added to C(LocalMachine\CA) (in check mode, to add).
  returned: success
  type: list
  elements: str
  sample: [2365C7CACCC17711BC8B43B660741F04A085F777]
root_added:
  description: Whether the chain's root was added to C(LocalMachine\Root) (O(trust_root)).
  returned: success
  type: bool
  sample: false
chain_warnings:
  description: What is wrong with the chain that came with the certificate (a missing intermediate, a member
    that is not part of the chain); empty when it is complete.
  returned: success
  type: list
  elements: str
  sample: ["the chain has no issuer for CN=mail.contoso.com (issuer CN=Contoso Issuing CA)"]
diff:
  description: Before and after (with C(--diff)) when something changes.
  returned: when changed and diff mode is on
  type: dict
change_record:
  description: The audit record of the change (also appended to O(ledger) when set); never a password or key.
  returned: when something was sent (not in check mode)
  type: dict
warnings:
  description: Chain problems, a root that is not trusted, a rebuilt PFX, settings that are only set on import.
  returned: when there are warnings
  type: list
  elements: str
"""
