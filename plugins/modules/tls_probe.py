#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: tls_probe
short_description: Inspect the certificate a server really serves over TLS, from the controller
version_added: 0.1.0
description:
  - Connects from the Ansible controller to O(host):O(port), optionally upgrades the connection with STARTTLS
    (SMTP, IMAP or POP3), completes a TLS 1.2 or later handshake and reports the certificate chain the server
    presented, the leaf certificate's thumbprint, names and validity, whether its names cover the expected
    names and whether it is the expected certificate.
  - Certificate verification is off during the handshake, so an expired, self-signed or wrongly named
    certificate is still reported rather than refused. Set O(validate_chain) to also verify the chain.
  - Nothing connects to the managed host itself; the task's host only provides variables. The probe works
    against any TLS server, not only Exchange.
options:
  host:
    description:
      - Host name or IP address to connect to.
      - A DNS name is made of labels of 1 to 63 letters, digits, hyphens and underscores, at most 253 characters
        in all; an internationalized name (U-label) is converted to its A-label (C(xn--...), IDNA 2008) with the
        Python library C(idna) on the controller. An IPv6 address is given without brackets.
      - Empty values, whitespace, control characters (such as CR, LF or NUL) and anything that is neither an IP
        address nor a DNS name are errors; nothing is sent then.
    type: str
    required: true
  port:
    description:
      - TCP port to connect to, for example V(443) for IIS, V(444) for the Exchange Back End site, V(25) or
        V(587) for SMTP, V(143) for IMAP and V(110) for POP3 with O(starttls).
      - Between V(1) and V(65535).
    type: int
    default: 443
  starttls:
    description:
      - The plain-text protocol to speak before the TLS handshake.
      - V(smtp) expects a C(220) greeting, sends C(EHLO), requires C(STARTTLS) in the EHLO reply and sends
        C(STARTTLS) (RFC 3207). V(imap) expects an C(* OK) greeting, requires the C(STARTTLS) capability and
        sends C(STARTTLS) (RFC 9051). V(pop3) expects C(+OK), requires C(STLS) in the C(CAPA) reply and sends
        C(STLS) (RFC 2595).
      - V(none) starts TLS at once (HTTPS, SMTPS, IMAPS, POP3S).
    type: str
    choices: [none, smtp, imap, pop3]
    default: none
  server_name:
    description:
      - The server name sent in the TLS Server Name Indication extension.
      - Defaults to O(host) when it is a DNS name; no SNI is sent when O(host) is an IP address and this is
        not set.
      - Checked like O(host); an internationalized name is sent, and returned in RV(server_name), as its
        A-label (IDNA 2008, needs the Python library C(idna) on the controller).
    type: str
  expected_names:
    description:
      - Names (DNS names or IP addresses) the leaf certificate must be valid for.
      - Matched against the certificate's subject alternative names as RFC 6125 describes; the subject's
        common name is not considered. A wildcard matches exactly one whole left-most label.
      - Defaults to O(server_name), or O(host) when no server name is set. An empty list skips the check.
      - Each entry must be an IP address or a DNS name (checked like O(host)); a C(*) is allowed as the whole
        left-most label, to check for a wildcard certificate. Internationalized names are compared in A-label
        form and reported as given.
    type: list
    elements: str
  expected_thumbprint:
    description:
      - The SHA-1 thumbprint of the certificate the server should present, as Windows shows it.
      - Spaces, colons and invisible characters (such as the U+200E mark copied from the Windows certificate
        dialog) are removed and the letters uppercased; anything else than 40 hexadecimal digits (a thumbprint
        that is too short or too long, a control character, more than 256 characters) is an error, raised
        before anything is sent.
      - A different served certificate does not fail the task; see RV(expected_thumbprint_matches).
    type: str
  timeout:
    description:
      - Seconds the whole probe may take, from resolving O(host) to the end of the TLS handshake, STARTTLS
        dialogue included. A server that answers slowly, even one byte at a time, cannot hold the probe longer.
      - Greater than V(0) and at most V(300).
    type: float
    default: 10
  validate_chain:
    description:
      - Also verify the served chain on the controller as a TLS client connecting to O(server_name) (or
        O(host)) would, with the Web PKI rules of the C(cryptography) library; the result is in RV(chain_valid)
        and RV(chain_error).
      - This includes the validity period, the server authentication purpose and the name.
    type: bool
    default: false
  ca_path:
    description:
      - A PEM file on the controller with the trusted root certificates for O(validate_chain).
      - Defaults to the controller's system CA bundle. Only allowed with O(validate_chain=true).
      - Must be a regular file of at most 16 MiB; an empty value or a control character is an error.
    type: path
  smtp_helo:
    description:
      - The name the probe gives in C(EHLO) with O(starttls=smtp).
      - A domain (labels of letters, digits and inner hyphens; an internationalized domain is sent as its
        A-label) or an address literal such as V([192.0.2.1]) or V([IPv6:2001:db8::1]), as RFC 5321 defines
        the argument of C(EHLO). Anything else, in particular CR, LF or any other control character, is an
        error and nothing is sent.
      - Defaults to the controller's fully qualified domain name when that is a valid domain and is known
        within 2 seconds, else the address literal of the controller's end of the connection.
    type: str
extends_documentation_fragment:
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.read_only
  - exchange.pki._attributes.controller
requirements:
  - cryptography >= 42.0 on the controller.
  - idna on the controller, for internationalized names (IDNA 2008 A-labels).
notes:
  - The served chain is read with C(SSLSocket.get_unverified_chain()) on Python 3.13 and later, and with the
    same CPython method on the socket's internal object on Python 3.10 to 3.12. Where neither exists only the
    leaf certificate is returned and RV(chain_complete) is V(false).
  - The task fails when the connection, the STARTTLS dialogue or the handshake fails, or takes longer than
    O(timeout) in all; the message and C(stage) (V(connect), V(starttls) or V(handshake)) say which.
  - A server may send at most 8 KiB in one line and 256 KiB in all before the TLS handshake.
seealso:
  - module: exchange.pki.exchange_batch
  - name: RFC 6125, Representation and Verification of Domain-Based Application Service Identity
    description: The name matching rules used for O(expected_names).
    link: https://www.rfc-editor.org/rfc/rfc6125
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check the certificate IIS serves for Outlook on the web
  exchange.pki.tls_probe:
    host: "{{ ansible_host }}"
    server_name: mail.contoso.com
    expected_names: [mail.contoso.com, autodiscover.contoso.com]
  register: owa

- name: Fail when it expires within 30 days or does not cover the names
  ansible.builtin.assert:
    that:
      - owa.days_remaining >= 30
      - owa.name_matches
    fail_msg: "{{ owa.subject }} ({{ owa.thumbprint }}) expires {{ owa.not_after }}; missing {{ owa.unmatched_names }}"

- name: Verify that SMTP STARTTLS offers the new certificate after a renewal
  exchange.pki.tls_probe:
    host: "{{ ansible_host }}"
    port: 25
    starttls: smtp
    server_name: mail.contoso.com
    expected_thumbprint: "{{ new_thumbprint }}"
    validate_chain: true
    ca_path: /etc/pki/contoso-root.pem
  register: smtp
  failed_when: not smtp.expected_thumbprint_matches or not smtp.chain_valid

- name: Inspect IMAP and POP3 with STARTTLS
  exchange.pki.tls_probe:
    host: ex1.contoso.com
    port: "{{ item.port }}"
    starttls: "{{ item.starttls }}"
  loop:
    - {port: 143, starttls: imap}
    - {port: 110, starttls: pop3}
"""

RETURN = r"""
changed:
  description: Always V(false); the probe changes nothing.
  returned: always
  type: bool
  sample: false
host:
  description: The host connected to (an internationalized name as its A-label).
  returned: success
  type: str
  sample: ex1.contoso.com
port:
  description: The port connected to.
  returned: success
  type: int
  sample: 443
starttls:
  description: The STARTTLS protocol spoken before the handshake, or V(none).
  returned: success
  type: str
  sample: none
server_name:
  description: The SNI server name sent (an internationalized name as its A-label), null when none was sent.
  returned: success
  type: str
  sample: mail.contoso.com
protocol:
  description: The negotiated TLS version.
  returned: success
  type: str
  sample: TLSv1.3
cipher:
  description: The negotiated cipher suite.
  returned: success
  type: str
  sample: TLS_AES_256_GCM_SHA384
thumbprint:
  description: SHA-1 hash of the leaf certificate's DER bytes, uppercase hexadecimal as Windows shows it.
  returned: success
  type: str
  sample: 3B5E8F2C4A1D9E7F6B0C2A4D8E1F3A5C7B9D0E2F
sha256_fingerprint:
  description: SHA-256 hash of the leaf certificate's DER bytes, uppercase hexadecimal.
  returned: success
  type: str
  sample: 9A2C4E6F80B1D3F5A7C9E1B3D5F7A9C1E3B5D7F9A1C3E5B7D9F1A3C5E7B9D1F3
subject:
  description: The leaf certificate's subject, RFC 4514.
  returned: success
  type: str
  sample: CN=mail.contoso.com
issuer:
  description: The leaf certificate's issuer, RFC 4514.
  returned: success
  type: str
  sample: CN=Contoso Issuing CA,DC=contoso,DC=com
serial_number:
  description: The leaf certificate's serial number, uppercase hexadecimal.
  returned: success
  type: str
  sample: 1A2B3C4D5E6F
not_before:
  description: Start of the leaf certificate's validity, ISO-8601 UTC.
  returned: success
  type: str
  sample: "2026-01-10T08:00:00Z"
not_after:
  description: End of the leaf certificate's validity, ISO-8601 UTC.
  returned: success
  type: str
  sample: "2027-01-10T08:00:00Z"
days_remaining:
  description: Whole days until RV(not_after) (rounded down); negative once expired.
  returned: success
  type: int
  sample: 46
dns_names:
  description: The DNS names of the leaf certificate's subject alternative name extension.
  returned: success
  type: list
  elements: str
  sample: [mail.contoso.com, autodiscover.contoso.com]
ip_addresses:
  description: The IP addresses of the leaf certificate's subject alternative name extension.
  returned: success
  type: list
  elements: str
  sample: []
name_matches:
  description:
    - Whether the leaf certificate is valid for every one of O(expected_names); null when that list is empty.
  returned: success
  type: bool
  sample: true
matched_names:
  description: The expected names the leaf certificate is valid for.
  returned: success
  type: list
  elements: str
  sample: [mail.contoso.com]
unmatched_names:
  description: The expected names the leaf certificate is not valid for.
  returned: success
  type: list
  elements: str
  sample: []
expected_thumbprint_matches:
  description: Whether the leaf is the O(expected_thumbprint) certificate; null when none was given.
  returned: success
  type: bool
  sample: true
chain:
  description: The certificates the server presented, PEM, leaf first, in the order sent.
  returned: success
  type: list
  elements: str
  sample: ["-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIQ...\n-----END CERTIFICATE-----\n"]
chain_complete:
  description: Whether RV(chain) holds every certificate sent, or only the leaf (see the notes).
  returned: success
  type: bool
  sample: true
chain_valid:
  description: Whether the chain verified against the trusted roots; null unless O(validate_chain=true).
  returned: success
  type: bool
  sample: false
missing_intermediate:
  description:
    - The issuer (distinguished name) the server should send with its certificate but does not, so that clients
      without it cached cannot build the chain; on Exchange, import the chain's intermediates into
      LocalMachine\CA (M(exchange.pki.certificate_import) does) and restart IIS or the transport service.
    - Null when the served chain reaches a trusted root or a self-signed certificate, and when it is not known
      (only with O(validate_chain=true) and a complete RV(chain)).
  returned: success
  type: str
  sample: "CN=Contoso Issuing CA,DC=contoso,DC=com"
chain_error:
  description: Why the chain did not verify; null when it did or was not verified.
  returned: success
  type: str
  sample: "validation failed: cert is not valid at validation time"
stage:
  description: Where a failed probe stopped, V(connect), V(starttls) or V(handshake).
  returned: failure
  type: str
  sample: starttls
"""
