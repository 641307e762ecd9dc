#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_export
short_description: Export an Exchange certificate with its private key as a PFX file on the controller
version_added: 0.2.0
description:
  - Exports a certificate and its private key from an Exchange Server 2016, 2019 or Subscription Edition host
    (C(Export-ExchangeCertificate -BinaryEncoded)) and writes it as a PFX (PKCS#12) file on the Ansible
    controller, or returns it, so that the same certificate can be imported on the other members of a DAG or
    site (M(exchange.pki.certificate_import)).
  - The host exports the PFX protected by a one-time password that the task makes; O(password) never reaches
    the host. The controller then reads that PFX, rebuilds it protected by O(password) with the requested
    O(encryption), checks that the result loads with O(password) and holds the certificate O(thumbprint), and
    only then writes it.
  - O(encryption) matters because Exchange 2016 runs on Windows Server 2016 or older, which cannot import a
    PFX encrypted with AES (it answers "The specified network password is not correct"), while Exchange on
    Windows Server 2019 or later may export exactly such a file.
  - A private key that is not exportable fails the task and names the fix. The key was created or imported
    without C(-PrivateKeyExportable $true); re-issue the certificate with an exportable key
    (M(exchange.pki.certificate_request) with C(exportable=true)), import its original PFX again as exportable,
    or export it from the server where it was made.
  - Idempotent. When O(dest) already holds a PFX of the same certificate that O(password) opens, with the
    requested encryption, nothing is sent to the host and RV(changed) is V(false). A file mode looser than
    C(0600) is then tightened, which is a change.
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
      - Check mode reads the server (the certificate exists, has a private key, and the key is exportable) and
        O(dest), and predicts RV(changed). It exports nothing and writes nothing, so RV(content) is not returned.
  diff_mode:
    support: full
    details:
      - The diff shows O(dest) with the thumbprint and encryption it holds before and after (never the PFX or
        the password).
options:
  thumbprint:
    description:
      - Thumbprint (SHA-1) of the certificate to export, in LocalMachine C(My) of the managed host.
      - Spaces, colons and the invisible marks that copying from the Windows certificate dialog adds (U+200E)
        are removed; any other character that is not a hexadecimal digit fails the task.
    type: str
    required: true
  password:
    description:
      - Password that protects the PFX written to O(dest) or returned in RV(content).
      - Must not be empty and must not contain a NUL character; at most 1024 characters.
      - Never returned, logged, shown in the diff or written to the ledger.
    type: str
    required: true
  encryption:
    description:
      - How the PFX protects the private key and certificates.
      - V(legacy) is C(pbeWithSHAAnd3-KeyTripleDES-CBC) with a SHA-1 MAC, which every Windows version can
        import, Windows Server 2016 (Exchange 2016) included.
      - V(modern) is AES-256-CBC (PBES2, PBKDF2 with HMAC-SHA-256) and a SHA-256 MAC, for Windows Server 2019 and
        later (Exchange 2019 and Subscription Edition).
      - V(auto) chooses V(modern) only when O(target_versions) is given and every target is Exchange 2019 or
        later, else V(legacy).
    type: str
    choices: [auto, legacy, modern]
    default: auto
  target_versions:
    description:
      - The Exchange versions of the servers that will import the PFX, for O(encryption=auto).
      - Each is V(2016), V(2019), V(SE), a build number such as V(15.1.2507.6) (15.1 is Exchange 2016, 15.2 is
        2019 or SE), or a product name such as V(Exchange Server 2019 CU14) (the C(server.version) or
        C(server.product) that M(exchange.pki.certificate_info) returns).
      - Any Exchange 2016 (or older) target makes V(auto) choose V(legacy). Without this option V(auto) is
        V(legacy).
    type: list
    elements: str
  dest:
    description:
      - Path on the controller of the PFX file to write. Its directory must exist.
      - The file is written with mode C(0600), through a temporary file in the same directory and a rename, so
        a reader never sees half a file.
      - When it already exists and holds another certificate, or something O(password) does not open, the
        task fails unless O(force=true).
      - One of O(dest) and O(return_content=true) is required.
    type: path
  return_content:
    description:
      - Also return the PFX, base64-encoded, in RV(content).
      - B(The PFX holds the private key.) Set C(no_log=true) on the task, and never register the result into
        a variable that is printed or saved, or the key leaves with the log. Prefer O(dest).
    type: bool
    default: false
  force:
    description:
      - Overwrite O(dest) even when it holds another certificate or a file O(password) does not open.
      - A file that holds the same certificate is rewritten without O(force) when its encryption differs.
    type: bool
    default: false
requirements:
  - cryptography >= 42.0 on the controller (the PFX is read, rebuilt and checked there).
  - Exchange Server 2016, 2019 or Subscription Edition on the managed host, reached over WinRM.
notes:
  - One task sends at most one batch to the host, the export together with the server read that explains a
    refusal (missing certificate, pending request, no private key, key not exportable).
  - Without O(exchange_username) the Exchange session uses the identity of the Ansible connection, which over
    WinRM cannot authenticate onward to the Exchange endpoint (the double hop) unless the task uses become
    (C(become_method=runas)), the connection uses CredSSP or Kerberos delegation.
  - When the PFX is exported or O(dest) is changed, RV(change_record) is returned and appended to O(ledger).
    A task that only returns RV(content) changes nothing, but the export is still recorded, because a private
    key left the server.
  - The friendly name of the certificate on the server is kept in the PFX. The chain certificates the server
    included are kept too (RV(chain_thumbprints)).
seealso:
  - module: exchange.pki.certificate_import
  - module: exchange.pki.certificate_info
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Export the new certificate once, for the other members of the DAG (some run Exchange 2016)
  exchange.pki.certificate_export:
    thumbprint: "{{ new_thumbprint }}"
    password: "{{ vault_pfx_password }}"
    dest: /srv/exchange-pki/mail-2027.pfx
    target_versions: "{{ groups['dag1'] | map('extract', hostvars, ['facts', 'server', 'version']) | list }}"
  run_once: true
  register: exported

- name: Export with AES-256 for Exchange 2019 and SE servers only
  exchange.pki.certificate_export:
    thumbprint: "{{ new_thumbprint }}"
    password: "{{ vault_pfx_password }}"
    dest: /srv/exchange-pki/mail-2027-aes.pfx
    encryption: modern

- name: Return the PFX instead of writing it (the result holds the private key - never log it)
  exchange.pki.certificate_export:
    thumbprint: "{{ new_thumbprint }}"
    password: "{{ vault_pfx_password }}"
    return_content: true
  register: exported
  no_log: true

- name: Replace an older export at the same path
  exchange.pki.certificate_export:
    thumbprint: "{{ new_thumbprint }}"
    password: "{{ vault_pfx_password }}"
    dest: /srv/exchange-pki/mail.pfx
    force: true
    ledger: /var/log/exchange-pki/ledger.jsonl
"""

RETURN = r"""
changed:
  description:
    - Whether O(dest) was (or, in check mode, would be) written or its mode tightened. Returning RV(content)
      alone is no change.
  returned: always
  type: bool
  sample: true
thumbprint:
  description: The thumbprint of the exported certificate (normalised, upper case).
  returned: always
  type: str
  sample: 9C2B5D3E1F4A6B7C8D9E0F1A2B3C4D5E6F7A8B9C
dest:
  description: O(dest) as given, or V(null).
  returned: always
  type: str
  sample: /srv/exchange-pki/mail-2027.pfx
encryption:
  description: The encryption of the PFX, V(legacy) or V(modern) (what O(encryption=auto) chose).
  returned: always
  type: str
  sample: legacy
encryption_reason:
  description: Why that encryption was chosen.
  returned: always
  type: str
  sample: "auto: 15.1.2507.6 (Windows Server 2016 or older) imports only legacy 3DES/SHA-1 PFX files"
content:
  description:
    - The PFX, base64-encoded. B(It holds the private key); the task should run with C(no_log).
  returned: when O(return_content=true), not in check mode
  type: str
  sample: MIIKcQIBAzCCCi0GCSqGSIb3DQEHAaCCCh4Eggoa...
chain_thumbprints:
  description: Thumbprints of the other certificates in the PFX (the chain), issuer first; V(null) in check mode.
  returned: always
  type: list
  elements: str
  sample: [A8A66BFC4014BAD4C87FD932BF5DF4ABD6E3000D, 92770581DC89581A8ADFA34A3DA0ED67ED147A19]
warnings:
  description: Reads of the server that failed (the facts they give were not needed to export).
  returned: when a read failed
  type: list
  elements: str
  sample: ["Get-HybridConfiguration could not be read; the facts it gives are null: ..."]
plan:
  description: The export step with its reason (the password is shown as C(********)); empty when nothing is
    sent.
  returned: always
  type: list
  elements: dict
  sample:
    - id: export
      operation: Export-ExchangeCertificate
      arguments: {Thumbprint: 9C2B5D3E1F4A6B7C8D9E0F1A2B3C4D5E6F7A8B9C, Password: "********"}
      reason: export 9C2B... with its private key from EX1 (protected by a one-time password)
steps:
  description: How the export step ended (C(id), C(operation), C(status), C(changed), and C(message) on failure).
  returned: when the export was sent
  type: list
  elements: dict
  sample: [{id: export, operation: Export-ExchangeCertificate, status: ok, changed: false}]
change_record:
  description:
    - What the task did, as one audit record (action V(export)); appended to O(ledger) when set.
    - RV(change_record.before) and RV(change_record.after) hold C(dest), C(thumbprint) and C(encryption) (or
      C(dest) and C(mode) when only the file mode was tightened). Passwords and keys never appear in it.
  returned: when the PFX was exported or O(dest) changed, not in check mode
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
      description: The Exchange server that exported the certificate, or V(null) when it was not contacted.
      type: str
      sample: EX01
    module:
      description: The module that made the change.
      type: str
      sample: exchange.pki.certificate_export
    action:
      description: Always V(export).
      type: str
      sample: export
    result:
      description: V(changed) (O(dest) written), V(unchanged) (only RV(content) returned) or V(failed).
      type: str
      sample: changed
    before:
      description: What O(dest) held before.
      type: dict
      sample: {"dest": "/srv/exchange-pki/mail.pfx", "thumbprint": null, "encryption": null}
    after:
      description: What O(dest) holds after.
      type: dict
      sample: {"dest": "/srv/exchange-pki/mail.pfx", "thumbprint": "9C2B...", "encryption": "legacy"}
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
  description: O(dest) before and after (thumbprint and encryption), with C(--diff) when it changes.
  returned: when the task runs with C(--diff) and O(dest) changes
  type: dict
  sample: {"before": {"dest": "/srv/mail.pfx", "thumbprint": null, "encryption": null},
           "after": {"dest": "/srv/mail.pfx", "thumbprint": "9C2B...", "encryption": "legacy"}}
"""
