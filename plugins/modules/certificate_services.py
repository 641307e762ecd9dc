#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_services
short_description: Enable Exchange services on a certificate, keeping the internal transport certificate
version_added: 0.2.0
description:
  - Makes sure one certificate of an Exchange Server 2016, 2019 or Subscription Edition host holds the services
    in O(services), with C(Enable-ExchangeCertificate). Only the services the certificate lacks are enabled, so a
    second run changes nothing.
  - Exchange services are additive. A service is never removed from a certificate; it moves to another
    certificate when that one is enabled for it. V(IIS) is the C(Default Web Site) binding on port 443 (the
    C(Exchange Back End) binding on 444 is left alone). V(IMAP) and V(POP) move to the certificate. V(SMTP) is
    added to the certificate and the other certificates keep it.
  - The certificate must be in the server's C(LocalMachine\My) store, have its private key, be inside its
    validity period, allow TLS server authentication and not be reported C(Revoked) or C(Invalid) by Exchange.
    Otherwise the task fails, naming the problem, and nothing is sent. A pending request fails the same way (use
    M(exchange.pki.certificate_import) to complete it first).
  - The validity period of the certificate, and of the previous internal transport certificate that is enabled
    again, is judged by the Exchange server's clock (read with the server's facts), not the controller's, because
    Exchange decides by its own time whether it accepts a certificate. Should the server's time be unknown, the
    controller's clock is used and a warning says so.
  - B(The internal transport certificate.) Enabling SMTP on a host without a console asks
    C(Overwrite the existing default SMTP certificate?). The only way past that prompt is C(-Force), and
    C(-Force) makes the certificate the server's internal transport certificate (the one Exchange servers use
    for SMTP between them; Microsoft recommends keeping the server's own). Unless
    O(replace_internal_transport=true), the module therefore sends a second
    C(Enable-ExchangeCertificate -Services SMTP -Force) for the previous internal transport certificate in the
    same batch. That sets it back as the internal transport certificate and leaves SMTP where it was. The
    previous certificate held SMTP already, and the new one keeps it. When the previous certificate cannot be
    enabled again (it is not on the server, it has expired or it has no private key), or the server names no
    internal transport certificate, the task fails before sending anything and says so.
  - B(IIS.) Require SSL is set on the C(Default Web Site) unless O(require_ssl=false) (C(-DoNotRequireSsl)).
    Outlook on the web keeps using the old certificate until IIS restarts, so when the task moves IIS to the
    certificate it also recycles the C(MSExchangeOWAAppPool) and C(MSExchangeECPAppPool) app pools, or resets
    IIS, as O(iis_restart) says.
  - B(IMAP and POP with a wildcard certificate.) IMAP and POP choose their certificate by
    C(X509CertificateName) (C(Set-ImapSettings), C(Set-PopSettings)). For a wildcard certificate the module sets
    it to a host name the certificate covers. That is O(x509_certificate_name) when given. Otherwise the current
    name is kept when the certificate covers it, or else the certificate's first name without a wildcard is
    used. With none of these the task fails and names the reason. For other certificates the name is changed
    only when O(x509_certificate_name) is given, and a name the certificate does not cover is reported as a
    warning.
  - One read of the server, then one batch with every change and the re-read that confirms it, then one more
    read of the IMAP/POP settings when they were changed.
options:
  thumbprint:
    description:
      - The SHA-1 thumbprint of the certificate, 40 hexadecimal digits in either case.
      - Spaces, colons and invisible marks that are copied with a thumbprint (such as the U+200E mark the
        Windows certificate dialog adds) are removed. Any other character is an error.
    type: str
    required: true
  services:
    description:
      - The services the certificate must hold, in any order and letter case.
      - Services the certificate holds but that are not listed are left alone (Exchange cannot remove them).
      - A name that is not one of V(IIS), V(SMTP), V(IMAP) or V(POP) fails the task, naming it.
    type: list
    elements: str
    required: true
  require_ssl:
    description:
      - Whether enabling IIS sets Require SSL on the C(Default Web Site). V(false) passes C(-DoNotRequireSsl).
      - Used only when the task enables IIS on the certificate. The current setting is not read, so a certificate
        that already holds IIS is not enabled again to change it.
    type: bool
    default: true
  iis_restart:
    description:
      - What restarts when the task moves IIS to the certificate, so that Outlook on the web uses the new one.
      - V(app_pools) recycles C(MSExchangeOWAAppPool) and C(MSExchangeECPAppPool). V(iisreset) restarts IIS as a
        whole, which drops every client connection of the server. V(none) restarts nothing; restart IIS yourself.
      - Without a value, V(app_pools).
      - Nothing is restarted when IIS already used the certificate. So when the restart fails after IIS moved, a
        second run restarts nothing either; the failure's message says what to restart by hand.
    type: str
    choices: [none, app_pools, iisreset]
  replace_internal_transport:
    description:
      - Whether the certificate may become the server's internal transport certificate.
      - V(false) keeps the current internal transport certificate (see the description).
      - V(true) makes the certificate the internal transport certificate when V(SMTP) is in O(services). This is
        done even when the certificate held SMTP already, and even when the server had no internal transport
        certificate. Microsoft recommends keeping the server's own self-signed certificate for this.
    type: bool
    default: false
  x509_certificate_name:
    description:
      - The host name IMAP and POP clients connect to. It is written to C(X509CertificateName) of the IMAP and
        POP settings that O(services) names.
      - It must be a name the certificate covers and must not be a wildcard.
      - Needed only for a wildcard certificate that covers neither the current name nor a name without a
        wildcard.
    type: str
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
      - Reads the server and returns the plan (RV(plan)) and the predicted RV(changed). Nothing is sent that
        changes the server, and no ledger record is written.
  diff_mode:
    support: full
    details:
      - The diff shows, for each service in O(services), the certificates that hold it before and after, and the
        internal transport certificate before and after.
requirements:
  - cryptography >= 42.0 on the controller (the server's certificates are parsed there from their raw bytes).
  - Exchange Server 2016, 2019 or Subscription Edition on the managed host, reached over WinRM.
notes:
  - The IMAP and POP protocol services may also need a restart before they use a new certificate. The module
    does not restart them.
  - Returns RV(change_record) when it changed something. With O(ledger) the record is appended to the ledger.
seealso:
  - module: exchange.pki.certificate_info
  - module: exchange.pki.certificate_import
  - module: exchange.pki.certificate_remove
  - name: Enable-ExchangeCertificate
    description: Microsoft's reference of the cmdlet the module runs.
    link: https://learn.microsoft.com/powershell/module/exchange/enable-exchangecertificate
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Serve Outlook on the web, ActiveSync and SMTP STARTTLS with the new certificate
  exchange.pki.certificate_services:
    thumbprint: "{{ new_certificate.thumbprint }}"
    services: [IIS, SMTP]
  register: bound

- name: Show which certificates the services moved from
  ansible.builtin.debug:
    var: bound.moved

- name: Enable IMAP and POP on a wildcard certificate, naming the host clients use
  exchange.pki.certificate_services:
    thumbprint: 9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A
    services: [IMAP, POP]
    x509_certificate_name: imap.contoso.com

- name: Bind IIS, keep Require SSL off, and reset IIS instead of recycling the app pools
  exchange.pki.certificate_services:
    thumbprint: 9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A
    services: [IIS]
    require_ssl: false
    iis_restart: iisreset

- name: Record every change in an audit ledger on the controller
  exchange.pki.certificate_services:
    thumbprint: "{{ new_certificate.thumbprint }}"
    services: [IIS, SMTP, IMAP, POP]
    ledger: /var/log/exchange-pki/ledger.jsonl
"""

RETURN = r"""
changed:
  description: Whether the task enabled anything (in check mode, whether it would).
  returned: always
  type: bool
  sample: true
thumbprint:
  description: The certificate's thumbprint as Windows writes it (40 upper-case hexadecimal digits).
  returned: success
  type: str
  sample: 9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A
services:
  description:
    - The certificate's Exchange services after the task (in check mode, after the plan).
    - V(IIS) also appears when the certificate is bound only to the C(Exchange Back End) site.
  returned: success
  type: list
  elements: str
  sample: [IMAP, POP, IIS, SMTP]
moved:
  description:
    - For each service the task enabled, the thumbprints of the certificates that held it before. The list is
      empty when no certificate held it.
    - The C(Default Web Site) binding moves from the certificate listed for V(IIS). V(IMAP) and V(POP) move from
      the certificates listed for them. For V(SMTP) the listed certificates keep the service, because several
      certificates hold SMTP at once.
  returned: success
  type: dict
  sample: {"IIS": ["6BB4DAC82BF95B8EF975EB74B80EA1B93F63F74A"], "SMTP": ["56C575763106FC8747977972A482BA0529571F7C"]}
internal_transport_thumbprint:
  description:
    - The server's internal transport certificate after the task (in check mode, after the plan). It is the one
      it was before unless O(replace_internal_transport=true).
    - V(null) when the server names none, or when the transport service could not be read and SMTP was not
      requested.
  returned: success
  type: str
  sample: 56C575763106FC8747977972A482BA0529571F7C
iis_restart:
  description: What the task restarted (or, in check mode, would restart) for IIS.
  returned: success
  type: str
  sample: app_pools
plan:
  description:
    - The steps the task sends (or, in check mode, would send), each with the reason for it. Empty when there is
      nothing to do.
  returned: always
  type: list
  elements: dict
  sample:
    - id: enable
      operation: Enable-ExchangeCertificate
      arguments: {"Server": {"$local": "server"}, "Thumbprint": "9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A",
                  "Services": ["SMTP"], "Force": true}
      reason: "EX1: SMTP not enabled on 9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A"
    - id: restore_internal_transport
      operation: Enable-ExchangeCertificate
      arguments: {"Server": {"$local": "server"}, "Thumbprint": "56C575763106FC8747977972A482BA0529571F7C",
                  "Services": ["SMTP"], "Force": true}
      reason: "EX1: -Force on the previous step makes ... the internal transport certificate; ... was, and stays"
steps:
  description:
    - How each step of RV(plan) ended (V(ok), V(failed) or V(skipped)), when the plan was sent.
    - V(unknown) when the step was sent and its answer was lost (the connection broke); whether it took effect
      is not known, and C(changed) is true when it changes the server.
  returned: when changes were sent
  type: list
  elements: dict
  sample: [{"id": "enable", "operation": "Enable-ExchangeCertificate", "status": "ok", "changed": true}]
change_record:
  description:
    - The audit record of the change (the line O(ledger) appends). Its C(before) and C(after) are the diff's.
    - The format is described in the collection's C(docs/ledger.md).
  returned: when changes were sent
  type: dict
  sample:
    version: 1
    time: "2026-11-25T08:00:12Z"
    host: ex1
    server: EX1
    module: exchange.pki.certificate_services
    action: enable_services
    result: changed
    before: {"thumbprint": "9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A", "services": {"SMTP": []},
             "internal_transport_thumbprint": "56C575763106FC8747977972A482BA0529571F7C"}
    after: {"thumbprint": "9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A",
            "services": {"SMTP": ["9F1C3A5E7B9D0F2A4C6E8B0D2F4A6C8E0B2D4F6A"]},
            "internal_transport_thumbprint": "56C575763106FC8747977972A482BA0529571F7C"}
    who: "alice as CONTOSO\\exadmin"
    run_id: null
    message: null
warnings:
  description:
    - Problems that did not stop the task. Examples are an C(Untrusted) certificate, an IMAP or POP
      C(X509CertificateName) the certificate does not cover, and a read that failed.
  returned: when there are any
  type: list
  elements: str
failure_reason:
  description: Why the task failed or the host was unreachable, in one word (for example V(failed), V(access_denied)).
  returned: failed or unreachable
  type: str
  sample: failed
"""
