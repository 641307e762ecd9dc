#!/usr/bin/python
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: certificate_info
short_description: Inventory the certificates of an Exchange server, what depends on them and what is wrong
version_added: 0.1.0
description:
  - Reads, in one round trip, every certificate of an Exchange Server 2016, 2019 or Subscription Edition host
    (LocalMachine C(My), pending requests, and the failover-cluster CLIUSR/CSUSR certificates of DAG members)
    and everything that points at them, evaluates them against a policy and returns the facts, the findings and
    a summary.
  - Certificates are parsed from their raw DER bytes with C(cryptography) on the controller. Exchange's own
    metadata (C(Status), C(Services)) enriches them when available; when Exchange delivers certificate objects
    with only their raw data, or its cmdlets cannot be read, RV(certificates) still carries every certificate
    fact and RV(certificates[].status) is V(null).
  - The references graph covers the Exchange services, the IIS bindings of C(Default Web Site) (443) and
    C(Exchange Back End) (444), the internal transport certificate, the Auth certificate (current, next,
    previous), the C(TlsCertificateName) of Send and Receive connectors and of the hybrid configuration, and
    the cluster certificates.
  - Reads only; never changes anything on the host. RV(changed) is always V(false).
  - A reading that fails (for example C(Get-HybridConfiguration)) does not fail the task; the facts it would
    have given are V(null) and RV(warnings) names it. The task fails when the Exchange management session is
    refused (access denied, typically the WinRM double hop; the message names the remedies), when the
    Exchange management endpoint or tools are missing, when C(host.info) fails (the server cannot be
    identified), and when neither the certificate store nor Exchange can list the certificates. An unreachable
    host is reported as unreachable.
options:
  fact_name:
    description:
      - Also return the result as the host fact of this name (RV(ansible_facts)), so later tasks and plays read
        it as C(ansible_facts[fact_name]) without a C(set_fact) task per host (for example from a fact cache).
      - The fact is the result without Ansible's own result keys (RV(changed), C(failed), C(msg), RV(warnings),
        C(skipped), C(deprecations), C(invocation), C(failure_reason)), plus an empty C(probes), in the shape of the
        C(exchange_pki) fact the C(exchange.pki.inventory) role sets (docs/facts.md).
      - Not set (the default) returns no fact. A failed or unreachable host gets no fact.
      - A module fact is kept in Ansible's fact cache and has the precedence of a fact, lower than C(set_fact)
        and play variables. Read it through C(ansible_facts); its top-level copy exists only while
        C(INJECT_FACTS_AS_VARS) is true, which ansible-core plans to deprecate.
      - Must be a valid variable name (ASCII letters, digits and underscores, not starting with a digit, not
        a Python keyword), neither reserved by Ansible nor starting with C(ansible_).
    type: str
    version_added: 0.2.0
extends_documentation_fragment:
  - exchange.pki.exchange_session
  - exchange.pki.policy
  - exchange.pki._attributes
  - exchange.pki._attributes.action
  - exchange.pki._attributes.read_only
  - exchange.pki._attributes.exchange_host
requirements:
  - cryptography >= 42.0 on the controller (certificates are parsed there from their raw bytes).
  - idna on the controller, to compare internationalized names in their A-label form (IDNA 2008).
  - Exchange Server 2016, 2019 or Subscription Edition on the managed host, reached over WinRM.
notes:
  - One task sends one batch of reading operations to the host (the remote executor
    M(exchange.pki.exchange_batch)) and evaluates the answer on the controller.
  - Without O(exchange_username) the Exchange session uses the identity of the Ansible connection, which over
    WinRM cannot authenticate onward to the Exchange endpoint (the double hop) unless the task uses become
    (C(become_method=runas)), the connection uses CredSSP or Kerberos delegation.
  - C(Get-ExchangeServer), C(Get-TransportService), C(Get-ReceiveConnector) and the DAG are read for the managed
    server only, which the executor resolves on the host (the inventory name need not be the Exchange server's
    name), so one server's answer does not grow with the size of the organisation.
seealso:
  - module: exchange.pki.exchange_batch
  - name: Exchange Server HealthChecker certificate checks
    description: The rules the default policy follows.
    link: https://microsoft.github.io/CSS-Exchange/Diagnostics/HealthChecker/
author:
  - Contributors to the exchange.pki project (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Gather the certificate facts of every Exchange server
  exchange.pki.certificate_info:
  register: certificate_facts

- name: Show what needs attention
  ansible.builtin.debug:
    msg: "{{ certificate_facts.findings | map(attribute='message') }}"

- name: Gather with an explicit credential for the Exchange session (avoids the WinRM double hop)
  exchange.pki.certificate_info:
    exchange_username: CONTOSO\exadmin
    exchange_password: "{{ vault_exadmin_password }}"
  register: certificate_facts

- name: Fail when a server has a critical certificate finding
  ansible.builtin.assert:
    that:
      - certificate_facts.summary.findings.critical == 0
    fail_msg: "{{ inventory_hostname }}: {{ critical | map(attribute='message') | join('; ') }}"
  vars:
    critical: "{{ certificate_facts.findings | selectattr('severity', 'equalto', 'critical') }}"

- name: Require the client-facing names and an earlier renewal warning
  exchange.pki.certificate_info:
    policy:
      required_names:
        - mail.contoso.com
        - autodiscover.contoso.com
      warning_days: 90
      critical_days: 30
  register: certificate_facts

- name: List the thumbprints bound to IIS
  ansible.builtin.debug:
    msg: "{{ certificate_facts.certificates | selectattr('roles', 'contains', 'iis') | map(attribute='thumbprint') }}"
"""

RETURN = r"""
changed:
  description: Always V(false); the module only reads.
  returned: always
  type: bool
  sample: false
collected_at:
  description: Controller time (ISO-8601 UTC) when the host's answer arrived; the time findings are judged at.
  returned: success
  type: str
  sample: "2026-11-25T08:00:00Z"
server:
  description: The Exchange server the host is.
  returned: success
  type: dict
  contains:
    name:
      description: Exchange's name of the server (C(Get-ExchangeServer)), else the computer name.
      type: str
      returned: always
      sample: EX1
    fqdn:
      description: Fully qualified domain name.
      type: str
      returned: always
      sample: ex1.contoso.lab
    version:
      description:
        - Exchange build, from C(AdminDisplayVersion) or the file version of C(ExSetup.exe); V(null) when unknown.
      type: str
      returned: always
      sample: "15.2.1544.4"
    product:
      description: Product and cumulative update the build belongs to; V(null) when unknown.
      type: str
      returned: always
      sample: Exchange Server 2019 CU14
    roles:
      description: Exchange server roles.
      type: list
      elements: str
      returned: always
      sample: [Mailbox]
    site:
      description: Active Directory site; V(null) when unknown.
      type: str
      returned: always
      sample: Site-A
    dag:
      description: Database availability group the server belongs to; V(null) when none.
      type: str
      returned: always
      sample: DAG1
certificates:
  description:
    - One entry per certificate in LocalMachine C(My), per pending certificate request, and per failover-cluster
      certificate (CLIUSR/CSUSR) of a DAG member.
  returned: success
  type: list
  elements: dict
  contains:
    thumbprint:
      description: SHA-1 thumbprint, uppercase hex as Windows shows it.
      type: str
      returned: always
      sample: 9F1C0D6E2A7B4C3D8E5F60718293A4B5C6D7E8F9
    subject:
      description: Subject distinguished name (RFC 4514).
      type: str
      returned: always
      sample: CN=mail.contoso.lab
    issuer:
      description: Issuer distinguished name (RFC 4514).
      type: str
      returned: always
      sample: CN=Contoso Lab Issuing CA
    serial_number:
      description: Serial number, uppercase hex.
      type: str
      returned: always
      sample: 1A2B3C4D5E6F
    not_before:
      description: Start of validity (ISO-8601 UTC).
      type: str
      returned: always
      sample: "2025-12-15T08:00:00Z"
    not_after:
      description: End of validity (ISO-8601 UTC).
      type: str
      returned: always
      sample: "2026-12-15T08:00:00Z"
    days_remaining:
      description: Whole days until RV(certificates[].not_after), rounded down; negative when expired.
      type: int
      returned: always
      sample: 20
    lifetime_days:
      description: Whole days between RV(certificates[].not_before) and RV(certificates[].not_after).
      type: int
      returned: always
      sample: 365
    dns_names:
      description:
        - DNS names of the subject alternative name extension.
        - V(null) when the certificate's extensions cannot be read (see RV(certificates[].parse_problems)).
      type: list
      elements: str
      returned: always
      sample: [mail.contoso.lab, autodiscover.contoso.lab]
    key_type:
      description:
        - Public key algorithm, one of V(rsa), V(ec), V(dsa), V(ed25519), V(unknown).
        - V(null) when the public key cannot be read.
      type: str
      returned: always
      sample: rsa
    key_size:
      description: Public key size in bits; V(null) when unknown.
      type: int
      returned: always
      sample: 2048
    signature_hash:
      description: Hash algorithm of the signature (V(sha1), V(md5), V(sha256), ...); V(null) when it has none.
      type: str
      returned: always
      sample: sha256
    ekus:
      description:
        - Extended key usages as dotted OIDs; an empty list means no EKU extension (any purpose).
        - V(null) when the certificate's extensions cannot be read.
      type: list
      elements: str
      returned: always
      sample: ["1.3.6.1.5.5.7.3.1"]
    is_self_signed:
      description: Whether the certificate is issued by itself; V(null) when its signature cannot be checked.
      type: bool
      returned: always
      sample: false
    has_private_key:
      description: Whether the server holds the private key.
      type: bool
      returned: always
      sample: true
    private_key_exportable:
      description: Whether the private key can be exported; V(null) when unknown.
      type: bool
      returned: always
      sample: true
    key_provider:
      description: Kind of key storage provider, V(csp) (legacy CryptoAPI) or V(cng); V(null) when unknown or no key.
      type: str
      returned: always
      sample: csp
    network_service_can_read_key:
      description: Whether NETWORK SERVICE may read the private key; V(null) when unknown.
      type: bool
      returned: always
      sample: true
    store:
      description: The LocalMachine store the certificate is in (V(My), V(REQUEST), V(PKU2U), ...).
      type: str
      returned: always
      sample: My
    friendly_name:
      description: Friendly name; V(null) when it has none.
      type: str
      returned: always
      sample: mail 2026
    status:
      description:
        - Exchange's C(Status) (V(Valid), V(Invalid), V(DateInvalid), V(PendingRequest), V(RevocationCheckFailure),
          V(Revoked), V(Unknown), V(Untrusted)).
        - V(null) when Exchange did not say (objects with only raw data, the cmdlet failed, or a certificate
          Exchange does not list, such as a cluster certificate).
      type: str
      returned: always
      sample: Valid
    services:
      description: Exchange services the certificate is enabled for; an empty list when none or unknown.
      type: list
      elements: str
      returned: always
      sample: [IIS, SMTP]
    roles:
      description:
        - What the certificate is used for, sorted. Any of V(iis), V(smtp), V(imap), V(pop), V(back_end),
          V(internal_transport), V(auth_current), V(auth_next), V(auth_previous), V(connector), V(hybrid),
          V(cluster), V(exchange_default), V(wmsvc), V(pending_request).
      type: list
      elements: str
      returned: always
      sample: [iis, smtp]
    references:
      description: Everything that points at the certificate.
      type: list
      elements: dict
      returned: always
      contains:
        kind:
          description:
            - V(exchange_service), V(iis_binding), V(internal_transport), V(auth_current), V(auth_next),
              V(auth_previous), V(send_connector), V(receive_connector), V(hybrid) or V(cluster).
          type: str
          returned: always
          sample: iis_binding
        name:
          description: What refers to it (a service, a binding, a server, a connector name).
          type: str
          returned: always
          sample: "Default Web Site *:443:"
      sample:
        - {kind: iis_binding, name: "Default Web Site *:443:"}
        - {kind: exchange_service, name: SMTP}
    parse_problems:
      description:
        - The parts of the certificate that could not be read and why, one entry per part; empty when the
          certificate was read completely. The facts from those parts are V(null) and the finding
          C(unparseable_certificate) (severity V(info)) names them.
      type: list
      elements: str
      returned: always
      sample: []
unparseable_certificates:
  description:
    - Certificates whose bytes cannot be parsed at all. Each is still listed, by what the server says of it, with
      the finding C(unparseable_certificate); the server's other certificates are unaffected.
  returned: success
  type: list
  elements: dict
  contains:
    thumbprint:
      description: SHA-1 of the certificate's bytes (uppercase hex), as Windows computes its thumbprint.
      type: str
      returned: always
      sample: 5E0D7A5C3B9D1C1F0A7E2B8C4D6F9A1B3C5D7E9F
    store:
      description: The LocalMachine store it is in.
      type: str
      returned: always
      sample: My
    friendly_name:
      description: Its friendly name; V(null) when it has none.
      type: str
      returned: always
      sample: legacy import
    reason:
      description: Why it cannot be parsed.
      type: str
      returned: always
      sample: "not a DER-encoded X.509 certificate: ..."
  sample: []
auth:
  description: The organisation's Auth (OAuth) certificate configuration (C(Get-AuthConfig)); V(null) when unreadable.
  returned: success
  type: dict
  contains:
    current_thumbprint:
      description: Thumbprint of the current Auth certificate.
      type: str
      returned: always
      sample: BDF2754E2F1432C27A0A86057F1976030E9861F5
    next_thumbprint:
      description: Thumbprint of the staged next Auth certificate; V(null) when none is staged.
      type: str
      returned: always
      sample: null
    previous_thumbprint:
      description: Thumbprint of the previous Auth certificate; V(null) when cleared.
      type: str
      returned: always
      sample: null
    next_effective_date:
      description: When the next certificate becomes current (ISO-8601 UTC); V(null) when none is staged.
      type: str
      returned: always
      sample: null
    current_present_locally:
      description: Whether the current Auth certificate is installed on this server.
      type: bool
      returned: always
      sample: true
iis_bindings:
  description: The https bindings of IIS; V(null) when unreadable.
  returned: success
  type: list
  elements: dict
  contains:
    site:
      description: IIS site.
      type: str
      returned: always
      sample: Default Web Site
    binding:
      description: Binding information (C(ip:port:host)).
      type: str
      returned: always
      sample: "*:443:"
    certificate_hash:
      description: Thumbprint of the bound certificate; V(null) when none.
      type: str
      returned: always
      sample: E0304D0B2705E49331859B66610AE22CC0BF6621
    certificate_store:
      description: Store of the bound certificate.
      type: str
      returned: always
      sample: My
    certificate_found:
      description: Whether the bound certificate is installed in that store.
      type: bool
      returned: always
      sample: true
connectors:
  description:
    - Send connectors of this server, its Receive connectors and the hybrid configuration that name a certificate
      through C(TlsCertificateName).
  returned: success
  type: list
  elements: dict
  contains:
    kind:
      description: V(send), V(receive) or V(hybrid).
      type: str
      returned: always
      sample: send
    name:
      description: The connector's name.
      type: str
      returned: always
      sample: Internet
    tls_certificate_name:
      description: The C(TlsCertificateName) value (C(<I>issuer<S>subject)).
      type: str
      returned: always
      sample: "<I>CN=Contoso Lab Issuing CA<S>CN=mail.contoso.lab"
    matched_thumbprints:
      description: Thumbprints of the local certificates that value designates; empty when none.
      type: list
      elements: str
      returned: always
      sample: [E0304D0B2705E49331859B66610AE22CC0BF6621]
internal_transport_thumbprint:
  description: Thumbprint of the server's internal transport certificate; V(null) when none or unreadable.
  returned: success
  type: str
  sample: DF3D4390AF90284506CCB31521C9FAF2568F4D92
cluster:
  description: Failover-cluster facts of a DAG member; V(null) when the host is not a cluster node.
  returned: success
  type: dict
  contains:
    name:
      description: Cluster name.
      type: str
      returned: always
      sample: DAG1
    nodes:
      description: Cluster nodes.
      type: list
      elements: dict
      returned: always
      contains:
        name:
          description: Node name.
          type: str
          returned: always
          sample: EX1
        state:
          description: Node state.
          type: str
          returned: always
          sample: Up
    cliusr_account:
      description: The local CLIUSR account the cluster service authenticates with; V(null) when unreadable.
      type: dict
      returned: always
      contains:
        exists:
          description: Whether the account exists.
          type: bool
          returned: always
          sample: true
        enabled:
          description: Whether it is enabled.
          type: bool
          returned: always
          sample: true
        password_last_set:
          description: When its password was last set (ISO-8601 UTC).
          type: str
          returned: always
          sample: "2026-10-01T03:00:00Z"
findings:
  description:
    - What is wrong, one entry per problem, from the catalogue in the collection's C(docs/findings.md).
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description:
        - Stable finding id, for example V(expiring_critical) or V(cluster_certificate_expired).
      type: str
      returned: always
      sample: expiring_critical
    severity:
      description: V(critical), V(warning) or V(info).
      type: str
      returned: always
      sample: critical
    thumbprint:
      description: The certificate the finding is about; V(null) for a finding about the server.
      type: str
      returned: always
      sample: E0304D0B2705E49331859B66610AE22CC0BF6621
    message:
      description: What is wrong.
      type: str
      returned: always
      sample: The certificate CN=mail.contoso.lab expires in 20 days.
    remediation:
      description: What to do about it.
      type: str
      returned: always
      sample: Renew it and enable the new certificate for the same services before it expires.
summary:
  description: Counts and the earliest expiry.
  returned: success
  type: dict
  contains:
    certificates:
      description: Number of entries in RV(certificates).
      type: int
      returned: always
      sample: 7
    findings:
      description: Number of findings per severity.
      type: dict
      returned: always
      sample: {critical: 1, warning: 2, info: 0}
    worst_severity:
      description: The highest severity among the findings; V(null) when there is none.
      type: str
      returned: always
      sample: critical
    earliest_expiry:
      description: The earliest RV(certificates[].not_after) (ISO-8601 UTC); V(null) without certificates.
      type: str
      returned: always
      sample: "2026-12-15T08:00:00Z"
    earliest_expiry_thumbprint:
      description: The certificate that expires first; V(null) without certificates.
      type: str
      returned: always
      sample: E0304D0B2705E49331859B66610AE22CC0BF6621
ansible_facts:
  description:
    - With O(fact_name), the host fact of that name, the result without Ansible's result keys plus an empty
      C(probes).
  returned: success, when O(fact_name) is set
  type: dict
  sample: {"exchange_pki": {"collected_at": "2026-11-25T08:00:00Z", "server": {}, "certificates": [], "probes": {}}}
unavailable:
  description:
    - The reading operations that failed on the host, each with its error message. The facts that depend on
      one are V(null) and the findings that need it are not evaluated (nothing is guessed).
  returned: success
  type: dict
  sample: {"Get-HybridConfiguration": "Get-HybridConfiguration failed: The service is temporarily unavailable."}
warnings:
  description: One entry per reading that failed, naming it and the facts left V(null) because of it.
  returned: when a reading failed
  type: list
  elements: str
  sample: ["Get-HybridConfiguration could not be read (...): hybrid connector facts are unavailable."]
"""
