#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: exchange_batch
short_description: Run a batch of allow-listed Exchange certificate operations on a Windows host
version_added: 0.1.0
description:
  - The remote executor of the C(exchange.pki) collection. The collection's action plugins build one batch
    per task and send it to this module; it runs the operations in order on the Exchange server and
    reports what each one returned. It decides nothing; all decisions are made on the controller.
  - Only allow-listed operations with allow-listed parameters run. Exchange cmdlets
    (C(Get-ExchangeCertificate), C(New-ExchangeCertificate), C(Import-ExchangeCertificate),
    C(Enable-ExchangeCertificate), C(Export-ExchangeCertificate), C(Remove-ExchangeCertificate),
    C(Get-AuthConfig), C(Set-AuthConfig), C(Get-TransportService), C(Get-SendConnector), C(Set-SendConnector),
    C(Get-ReceiveConnector), C(Set-ReceiveConnector), C(Get-HybridConfiguration), C(Get-ExchangeServer),
    C(Get-DatabaseAvailabilityGroup)) run in an implicit remoting session to the Exchange management endpoint,
    opened only when the batch holds one and always removed.
  - Host operations run locally without an Exchange session. C(host.info) reports the host and the Exchange
    build, C(host.certificates) reads LocalMachine certificate stores with key provider, exportability and
    NETWORK SERVICE read access of the private key, C(host.iis_bindings) and C(host.set_iis_binding) read and
    set IIS https bindings, C(host.cluster) reports failover-cluster facts and the CLIUSR account,
    C(host.restart_service), C(host.recycle_app_pool) and C(host.iis_reset) restart services, and
    C(host.certreq_submit) and C(host.certreq_retrieve) enrol with an AD CS certification authority.
  - >-
    Argument values are data, never code. Bytes travel as C({"$bytes": "<base64>"}), secure strings as
    C({"$secret": "<name>"}) naming an entry of O(secrets), and dates as C({"$datetime": "<ISO-8601 UTC>Z"});
    every cmdlet is invoked with splatted parameters.
  - >-
    A server parameter (C(-Server) of the certificate cmdlets and of C(Get-ReceiveConnector), C(-Identity) of
    C(Get-ExchangeServer) and C(Get-TransportService)) also takes C({"$local": "server"}): the Exchange server
    the module runs on, resolved on the host (C(Get-ExchangeServer -Identity $env:COMPUTERNAME), else by the
    host's FQDN), so that a read returns that server's objects only.
  - C(host.certificates) selects certificates whose subject matches C(subject_pattern) or whose issuer matches
    C(issuer_pattern) (case-insensitive regular expressions) when either is given.
  - A failed reading operation does not stop the batch; a failed changing operation skips every later one.
    The module itself only fails for argument errors (unknown operation or parameter, wrong value type,
    missing secret); operation errors are reported per operation.
  - Most users do not call this module directly; use the collection's modules and roles.
options:
  operations:
    description:
      - The operations to run, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      id:
        description:
          - Identifier of the operation, unique in the batch; its result carries it.
        type: str
        required: true
      op:
        description:
          - The operation, an Exchange cmdlet name such as C(Get-ExchangeCertificate) or a host operation such
            as C(host.certificates).
        type: str
        required: true
      args:
        description:
          - Parameters of the operation. For Exchange cmdlets these are the cmdlet's own parameter names;
            a switch parameter is present when its value is V(true).
        type: dict
        default: {}
  secrets:
    description:
      - >-
        Secret strings referenced from O(operations[].args) as C({"$secret": "<name>"}); each is passed to the
        operation as a SecureString.
      - The values are never logged or returned.
    type: dict
    default: {}
extends_documentation_fragment:
  - exchange.pki.exchange_session
  - exchange.pki._attributes
  - exchange.pki._attributes.exchange_host
attributes:
  check_mode:
    support: full
    details:
      - Changing operations are not run in check mode; they are reported as skipped with C(check_mode=true).
  diff_mode:
    support: none
requirements:
  - Windows PowerShell 5.1 on an Exchange Server 2016, 2019 or Subscription Edition host.
seealso:
  - name: Exchange Server PowerShell (Exchange Management Shell)
    description: Connecting to Exchange servers with remote PowerShell.
    link: https://learn.microsoft.com/powershell/exchange/connect-to-exchange-servers-using-remote-powershell
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the certificates of an Exchange server and its internal transport certificate
  exchange.pki.exchange_batch:
    operations:
      - id: certs
        op: Get-ExchangeCertificate
      - id: transport
        op: Get-TransportService
        args:
          Identity: "{{ inventory_hostname_short }}"
      - id: store
        op: host.certificates
        args:
          stores: [My]
  register: read

- name: Stage the next Auth certificate 49 hours ahead
  exchange.pki.exchange_batch:
    operations:
      - id: stage
        op: Set-AuthConfig
        args:
          NewCertificateThumbprint: "{{ next_auth_thumbprint }}"
          NewCertificateEffectiveDate:
            $datetime: "{{ '%Y-%m-%dT%H:%M:%SZ' | strftime(now(utc=true).timestamp() + 49 * 3600, utc=true) }}"
      - id: after
        op: Get-AuthConfig

- name: Import a PFX with an explicit credential for the Exchange session
  exchange.pki.exchange_batch:
    operations:
      - id: import
        op: Import-ExchangeCertificate
        args:
          FileData:
            $bytes: "{{ lookup('ansible.builtin.file', 'mail.pfx.b64') }}"
          Password:
            $secret: pfx
          PrivateKeyExportable: false
    secrets:
      pfx: "{{ vault_pfx_password }}"
    exchange_username: CONTOSO\exadmin
    exchange_password: "{{ vault_exadmin_password }}"
"""

RETURN = r"""
changed:
  description: Whether any operation changed something.
  returned: always
  type: bool
  sample: false
results:
  description: One entry per operation, in the order they were sent.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: The operation's id.
      type: str
      returned: always
      sample: certs
    op:
      description: The operation's name.
      type: str
      returned: always
      sample: Get-ExchangeCertificate
    status:
      description:
        - V(ok), V(failed), or V(skipped) (an earlier changing operation failed, or check mode).
      type: str
      returned: always
      sample: ok
    changed:
      description: Whether this operation changed something.
      type: bool
      returned: always
      sample: false
    check_mode:
      description: Present and V(true) when the operation was skipped because of check mode.
      type: bool
      returned: when skipped in check mode
      sample: true
    value:
      description:
        - What the operation returned, projected on documented properties with the cmdlet's own (PascalCase)
          names. Bytes are base64 strings, dates ISO-8601 UTC strings ending in C(Z), enumerations strings and
          flag sets lists of strings.
        - For an C(ExchangeCertificate) C(RawData) is always present; other properties may be null when Exchange's
          objects arrive with only their raw data.
      type: raw
      returned: when RV(results[].status=ok)
      sample:
        - Thumbprint: 3B5E8F2C4A1D9E7F6B0C2A4D8E1F3A5C7B9D0E2F
          Subject: CN=mail.contoso.com
          Services: [IIS, SMTP]
          Status: Valid
          NotAfter: "2027-03-01T12:00:00.000Z"
          RawData: MIIDdzCCAl+gAwIBAgIQ...
    error:
      description: The error record of a failed operation.
      type: dict
      returned: when RV(results[].status=failed)
      contains:
        message:
          description: The error message.
          type: str
          returned: always
          sample: The certificate with thumbprint 3B5E8F2C4A1D9E7F6B0C2A4D8E1F3A5C7B9D0E2F was not found.
        category:
          description: The error category (C(CategoryInfo.Category)).
          type: str
          returned: always
          sample: InvalidOperation
        fully_qualified_error_id:
          description: The fully qualified error id.
          type: str
          returned: always
          sample: AccessDenied,PSSessionOpenFailed
        reason:
          description: The reason (C(CategoryInfo.Reason)), usually the exception type name.
          type: str
          returned: always
          sample: InvalidOperationException
        target:
          description: The target name, when there is one.
          type: str
          returned: always
          sample: null
exchange_session:
  description:
    - The Exchange session of the batch; null when the batch held no Exchange cmdlet.
  returned: success
  type: dict
  contains:
    uri:
      description: The connection URI used.
      type: str
      returned: always
      sample: http://ex1.contoso.lab/PowerShell/
    opened:
      description: Whether the session was opened.
      type: bool
      returned: always
      sample: true
    removed:
      description: Whether the session was removed at the end.
      type: bool
      returned: always
      sample: true
"""
