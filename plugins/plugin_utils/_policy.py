# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The evaluation policy (the ``policy`` option) and the catalogue of findings.

:data:`CATALOGUE` is the single source of finding ids; docs/findings.md has one section per id (a unit
test keeps both equal) explaining when each fires, why it matters and how to fix it. Defaults follow
Microsoft's HealthChecker and MonitorExchangeAuthCertificate (reference/exchange-facts.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import DnsNameError, dns_name_to_a_label
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")  # most severe first


class PolicyError(ExchangePkiError, ValueError):
    """The ``policy`` option holds an unknown key or a bad value."""


# --- the catalogue --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FindingSpec:
    """One documented finding: its id, its usual severity, a one-line title and where the rule comes from.

    ``url`` is the public page the rule comes from (Microsoft Learn, or the CSS-Exchange page of the
    HealthChecker / MonitorExchangeAuthCertificate check); docs/findings.md links the same page.
    """

    id: str
    severity: Severity
    title: str
    source: str
    url: str | None = None


_HC = "HealthChecker certificate rules"
_MEAC = "MonitorExchangeAuthCertificate rules"
_CSS = "https://microsoft.github.io/CSS-Exchange/"
_HC_CERTIFICATES = _CSS + "Diagnostics/HealthChecker/CertificateCheck/"
_HC_AUTH = _CSS + "Diagnostics/HealthChecker/AuthCertificateCheck/"
_HC_TRANSPORT = _CSS + "Diagnostics/HealthChecker/InternalTransportCertificateCheck/"
_HC_IIS = _CSS + "Diagnostics/HealthChecker/IISInformation/"
_MEAC_URL = _CSS + "Admin/MonitorExchangeAuthCertificate/"
_LEARN = "https://learn.microsoft.com/"
_LEARN_CERTIFICATES = _LEARN + "exchange/architecture/client-access/certificates"
_LEARN_OAUTH = _LEARN + "exchange/plan-and-deploy/integration-with-sharepoint-and-skype/maintain-oauth-certificate"
_LEARN_CLIUSR = _LEARN + "archive/blogs/clusterguy/so-what-exactly-is-the-cliusr-account"
_SPECS = (
    FindingSpec("expired", "critical", "Certificate has expired", f"{_HC} (lifetime < 0)",
                url=_HC_CERTIFICATES),
    FindingSpec("expiring_critical", "critical", "Certificate expires within the critical window",
                f"{_HC} (lifetime < 30 days)",
                url=_HC_CERTIFICATES),
    FindingSpec("expiring_warning", "warning", "Certificate expires within the warning window",
                f"{_HC} (lifetime 30-59 days)",
                url=_HC_CERTIFICATES),
    FindingSpec("not_yet_valid", "warning", "Certificate is not valid yet", "RFC 5280 section 4.1.2.5",
                url=_LEARN_CERTIFICATES),
    FindingSpec("weak_key", "critical", "Key is shorter than the policy minimum", f"{_HC} (RSA < 2048 critical)",
                url=_HC_CERTIFICATES),
    FindingSpec("weak_signature", "warning", "Signed with a weak hash", f"{_HC} (SHA-1/MD5/MD4/MD2 warning)",
                url=_HC_CERTIFICATES),
    FindingSpec("missing_private_key", "warning", "Certificate in My has no private key",
                "exchange-facts Get-ExchangeCertificate (HasPrivateKey)",
                url=_LEARN + "exchange/architecture/client-access/import-certificates"),
    FindingSpec("untrusted", "warning", "Exchange reports the certificate as not valid",
                f"{_HC} (Status)",
                url=_HC_CERTIFICATES),
    FindingSpec("name_mismatch", "warning", "Client-facing certificate does not cover a required name",
                "RFC 6125 section 6.4",
                url=_LEARN_CERTIFICATES),
    FindingSpec("missing_server_auth_eku", "warning", "Certificate is not valid for TLS server authentication",
                "RFC 5280 section 4.2.1.12",
                url=_LEARN_CERTIFICATES),
    FindingSpec("auth_missing", "critical", "Current Auth certificate is missing on this server",
                f"{_HC} (Auth certificate); {_MEAC}",
                url=_HC_AUTH),
    FindingSpec("auth_expiring", "warning", "Current Auth certificate is within the renewal window", _MEAC,
                url=_MEAC_URL),
    FindingSpec("auth_next_not_staged", "critical", "No usable next Auth certificate is staged", _MEAC,
                url=_MEAC_URL),
    FindingSpec("auth_next_missing", "warning", "Configured next Auth certificate is missing on this server",
                f"{_MEAC} (NextAuthCertificateImportRequired)",
                url=_MEAC_URL),
    FindingSpec("auth_key_not_csp", "warning", "Auth certificate key is not a CSP key",
                "exchange-facts Auth (OAuth) certificate",
                url=_LEARN_OAUTH),
    FindingSpec("no_internal_transport", "critical", "No internal transport certificate",
                f"{_HC} (internal transport)",
                url=_HC_TRANSPORT),
    FindingSpec("internal_transport_expired", "critical", "Internal transport certificate has expired",
                f"{_HC} (internal transport)",
                url=_HC_TRANSPORT),
    FindingSpec("iis_binding_missing_cert", "critical", "IIS binding points at a missing certificate",
                f"{_HC} (IIS bindings)",
                url=_HC_IIS),
    FindingSpec("iis_binding_expired", "critical", "IIS binding serves an expired certificate",
                f"{_HC} (IIS bindings)",
                url=_HC_IIS),
    FindingSpec("back_end_binding_missing", "critical", "Exchange Back End has no *:444 binding",
                f"{_HC} (IIS bindings)",
                url=_HC_IIS),
    FindingSpec("connector_certificate_not_found", "critical", "Connector TlsCertificateName matches no certificate",
                f"{_HC} (connector TlsCertificateName)",
                url=_LEARN + "powershell/module/exchangepowershell/set-sendconnector"),
    FindingSpec("cluster_certificate_expired", "critical", "Failover-cluster certificate has expired",
                "exchange-facts CLIUSR and the failover-cluster certificates",
                url=_LEARN_CLIUSR),
    FindingSpec("cluster_certificate_expiring", "warning", "Failover-cluster certificate expires soon",
                "exchange-facts CLIUSR and the failover-cluster certificates",
                url=_LEARN_CLIUSR),
    FindingSpec("pending_request_stale", "info", "Certificate request pending for too long",
                "exchange-facts New-ExchangeCertificate (pending requests)",
                url=_LEARN + "exchange/architecture/client-access/complete-pending-certificate-requests"),
    FindingSpec("duplicate_certificates", "info", "Several certificates with the same subject and names",
                "exchange-facts Rolling changes",
                url=_LEARN + "exchange/architecture/client-access/assign-certificates-to-services"),
    FindingSpec("shared_key_not_exportable", "warning", "Client-facing certificate cannot be distributed",
                "exchange-facts Rolling changes; Export-ExchangeCertificate",
                url=_LEARN + "exchange/architecture/client-access/export-certificates"),
    FindingSpec("unparseable_certificate", "warning", "Certificate cannot be parsed",
                "RFC 5280 section 4.1 (the certificate structure); exchange-facts Get-ExchangeCertificate (RawData)",
                url="https://www.rfc-editor.org/rfc/rfc5280#section-4.1"),
)
CATALOGUE: Mapping[str, FindingSpec] = MappingProxyType({spec.id: spec for spec in _SPECS})
# Severity ranks for sorting and for "worst severity": 0 is the most severe.
SEVERITY_RANK: Mapping[str, int] = MappingProxyType({severity: rank for rank, severity in enumerate(SEVERITIES)})
_CATALOGUE_ORDER = {finding_id: index for index, finding_id in enumerate(CATALOGUE)}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem found on one server, with what to do about it."""

    id: str
    severity: Severity
    message: str
    remediation: str
    thumbprint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "thumbprint": self.thumbprint,
            "message": self.message,
            "remediation": self.remediation,
        }

    def sort_key(self) -> tuple[int, int, str]:
        """Most severe first, then catalogue order, then thumbprint."""
        return SEVERITY_RANK[self.severity], _CATALOGUE_ORDER[self.id], self.thumbprint or ""


def make_finding(finding_id: str, message: str, remediation: str, *, thumbprint: str | None = None,
                 severity: Severity | None = None) -> Finding:
    """A finding of a catalogued id, with the catalogue's severity unless the rule escalates it."""
    spec = CATALOGUE[finding_id]
    return Finding(finding_id, severity or spec.severity, message, remediation, thumbprint)


# --- the policy -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Policy:
    """Thresholds of the evaluation. Day counts compare with ``days_remaining`` (whole days, floor)."""

    warning_days: int = 60  # HealthChecker: < 60 days warning
    critical_days: int = 30  # HealthChecker: < 30 days critical
    min_rsa_key_size: int = 2048  # HealthChecker: RSA < 2048 critical
    min_ec_key_size: int = 256  # HealthChecker exempts ECC; P-256 is the smallest curve Windows offers for TLS
    weak_signature_hashes: tuple[str, ...] = ("md2", "md4", "md5", "sha1")  # HealthChecker: warning
    required_names: tuple[str, ...] = ()
    pending_request_stale_days: int = 30
    auth_warning_days: int = 60  # MonitorExchangeAuthCertificate: current with 0-60 days -> configure next
    auth_next_min_days: int = 120  # MonitorExchangeAuthCertificate: a next with <= 120 days does not count
    cluster_warning_days: int = 30
    ignore_findings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int) and value < 0:
                raise PolicyError(f"policy.{field.name} must not be negative, got {value}")
        for name in ("min_rsa_key_size", "min_ec_key_size"):
            if getattr(self, name) == 0:
                raise PolicyError(f"policy.{name} must be positive, got 0")
        if self.critical_days >= self.warning_days:
            raise PolicyError(
                f"policy.critical_days ({self.critical_days}) must be less than policy.warning_days "
                f"({self.warning_days})"
            )
        unknown = sorted(set(self.ignore_findings) - CATALOGUE.keys())
        if unknown:
            raise PolicyError(f"policy.ignore_findings: unknown finding id(s) {', '.join(unknown)}")
        # Compared in A-label form (IDNA 2008), like the certificates' names: "bücher.example" is the
        # SAN "xn--bcher-kva.example". Stored converted, without duplicates.
        object.__setattr__(self, "required_names", _required_names(self.required_names))

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> Policy:
        """Build from the ``policy`` option (validated by :data:`POLICY_ARGSPEC` or raw); None is the default.

        Raises :class:`PolicyError` naming the unknown key or the bad value.
        """
        if options is None:
            return cls()
        if not isinstance(options, Mapping):
            raise PolicyError(f"policy must be a dictionary, got {type(options).__name__}")
        unknown = sorted(set(options) - POLICY_ARGSPEC.keys())
        if unknown:
            raise PolicyError(
                f"policy: unknown option(s) {', '.join(unknown)}; expected one of {', '.join(POLICY_ARGSPEC)}"
            )
        values = {name: _converted(name, value) for name, value in options.items() if value is not None}
        return cls(**values)

    def is_ignored(self, finding_id: str) -> bool:
        return finding_id in self.ignore_findings


def _required_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """The names in the form they are compared in; a PolicyError names every name that has none."""
    converted: dict[str, None] = {}
    bad: list[str] = []
    for name in names:
        try:
            converted[dns_name_to_a_label(name)] = None
        except DnsNameError as error:
            bad.append(str(error))
        except ExchangePkiError as error:  # the idna library is missing
            raise PolicyError(f"policy.required_names: {error}") from None
    if bad:
        raise PolicyError(f"policy.required_names: {'; '.join(bad)}")
    return tuple(converted)


def _converted(name: str, value: Any) -> Any:
    """Check one option's type against the argspec and convert lists to tuples."""
    if POLICY_ARGSPEC[name]["type"] == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise PolicyError(f"policy.{name} must be an integer, got {value!r}")
        return value
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise PolicyError(f"policy.{name} must be a list of strings, got {value!r}")
    if name == "weak_signature_hashes":
        return tuple(_signature_hash_name(item) for item in value)
    if name == "required_names":
        return tuple(item.strip() for item in value)  # Policy converts them (see _required_names)
    return tuple(value)


#: The names ``signature_hash`` can report (cryptography's hash names, plus the legacy MD2/MD4).
SIGNATURE_HASHES = frozenset({
    "md2", "md4", "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha512-224", "sha512-256",
    "sha3-224", "sha3-256", "sha3-384", "sha3-512",
})


def _signature_hash_name(text: str) -> str:
    """The canonical name of a signature hash (``SHA-256`` -> ``sha256``); PolicyError for an unknown one."""
    name = text.strip().lower()
    if name not in SIGNATURE_HASHES and name.startswith("sha-"):
        name = "sha" + name[4:]
    if name not in SIGNATURE_HASHES:
        raise PolicyError(
            f"policy.weak_signature_hashes: {text!r} is not a signature hash name; expected one of "
            f"{', '.join(sorted(SIGNATURE_HASHES))}"
        )
    return name


def _argspec() -> dict[str, dict[str, Any]]:
    spec: dict[str, dict[str, Any]] = {}
    for field in dataclasses.fields(Policy):
        default = field.default
        if isinstance(default, tuple):
            spec[field.name] = {"type": "list", "elements": "str", "default": list(default)}
        else:
            spec[field.name] = {"type": "int", "default": default}
    spec["ignore_findings"]["choices"] = list(CATALOGUE)
    return spec


POLICY_ARGSPEC: Mapping[str, Mapping[str, Any]] = MappingProxyType(_argspec())


def policy_argspec() -> dict[str, Any]:
    """A fresh, mutable ``policy`` option for an action plugin's argument spec."""
    return {
        "type": "dict",
        "options": {name: {key: list(value) if isinstance(value, list) else value for key, value in spec.items()}
                    for name, spec in POLICY_ARGSPEC.items()},
    }
