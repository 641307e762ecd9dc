# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """The ``policy`` option (mirrors POLICY_ARGSPEC in plugin_utils/_policy.py; a unit test keeps them equal)."""

    DOCUMENTATION = r"""
options:
  policy:
    description:
      - Thresholds used to evaluate the certificates and produce findings.
      - Every finding id, when it fires and how to fix it is documented in the collection's
        C(docs/findings.md).
      - The defaults follow Microsoft's HealthChecker (expiry windows, key size, signature hash) and
        MonitorExchangeAuthCertificate (Auth certificate windows).
    type: dict
    suboptions:
      warning_days:
        description:
          - A certificate with fewer whole days remaining than this gets the finding C(expiring_warning).
        type: int
        default: 60
      critical_days:
        description:
          - A certificate with fewer whole days remaining than this gets the finding C(expiring_critical).
          - Must be less than O(policy.warning_days).
        type: int
        default: 30
      min_rsa_key_size:
        description:
          - RSA keys shorter than this many bits get the finding C(weak_key).
        type: int
        default: 2048
      min_ec_key_size:
        description:
          - Elliptic-curve keys on a curve shorter than this many bits get the finding C(weak_key).
        type: int
        default: 256
      weak_signature_hashes:
        description:
          - Signature hash algorithms (as C(signature_hash) reports them) that get the finding C(weak_signature).
          - The list replaces the default; each entry must be one of V(md2), V(md4), V(md5), V(sha1), V(sha224),
            V(sha256), V(sha384), V(sha512), V(sha512-224), V(sha512-256), V(sha3-224), V(sha3-256), V(sha3-384),
            V(sha3-512) (case-insensitive; V(sha-1) and V(sha-256) style spellings are accepted). An unknown name is
            an error, so a typo never silently disables the check.
        type: list
        elements: str
        default: [md2, md4, md5, sha1]
      required_names:
        description:
          - Host names clients use, for example V(mail.contoso.com) and V(autodiscover.contoso.com).
          - The certificate bound to the Default Web Site on port 443 must cover each of them (wildcards as in
            RFC 6125), otherwise the finding C(name_mismatch) is raised.
          - Internationalised names may be given in either form, V(bücher.example) or V(xn--bcher-kva.example).
            Names are compared in A-label form (IDNA 2008), and a name that has none is an error naming it.
          - Empty disables the check.
        type: list
        elements: str
        default: []
      pending_request_stale_days:
        description:
          - A pending certificate request older than this many days gets the finding C(pending_request_stale).
        type: int
        default: 30
      auth_warning_days:
        description:
          - When the current Auth certificate has fewer whole days remaining than this, the findings
            C(auth_expiring) and, without a usable next certificate, C(auth_next_not_staged) are raised.
        type: int
        default: 60
      auth_next_min_days:
        description:
          - A staged next Auth certificate with this many whole days remaining or fewer does not count as staged.
        type: int
        default: 120
      cluster_warning_days:
        description:
          - A failover-cluster (CLIUSR/PKU2U) certificate with fewer whole days remaining than this gets the
            finding C(cluster_certificate_expiring).
        type: int
        default: 30
      ignore_findings:
        description:
          - Finding ids never to report, for example V(duplicate_certificates).
        type: list
        elements: str
        default: []
        choices:
          - expired
          - expiring_critical
          - expiring_warning
          - not_yet_valid
          - weak_key
          - weak_signature
          - missing_private_key
          - untrusted
          - name_mismatch
          - missing_server_auth_eku
          - auth_missing
          - auth_expiring
          - auth_next_not_staged
          - auth_next_missing
          - auth_key_not_csp
          - no_internal_transport
          - internal_transport_expired
          - iis_binding_missing_cert
          - iis_binding_expired
          - back_end_binding_missing
          - connector_certificate_not_found
          - cluster_certificate_expired
          - cluster_certificate_expiring
          - pending_request_stale
          - duplicate_certificates
          - shared_key_not_exportable
          - unparseable_certificate
"""
