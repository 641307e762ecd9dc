# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The rules: from one server's snapshot, its certificates and their references to findings.

One small function per concern; each yields :class:`~._policy.Finding` objects of catalogued ids. Their ids,
severities, titles and sources are in ``_policy.CATALOGUE`` and documented in docs/findings.md. A rule never
guesses: when a read it needs failed (``ServerSnapshot.has``), it stays silent and the facts say "unknown".
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import LocatedCertificate
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import Finding, Policy, make_finding
from ansible_collections.exchange.pki.plugins.plugin_utils._references import (
    AUTH_ROLES,
    CLIENT_FACING_ROLES,
    ConnectorMatch,
    ReferenceGraph,
    binding_name,
    binding_role,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot, UnreadableCertificate
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime, whole_days
from ansible_collections.exchange.pki.plugins.plugin_utils._values import AuthConfig, IisBinding

_STATUS_SEVERITY = MappingProxyType({  # HealthChecker: Status rules (Unknown is treated like Untrusted)
    "Unknown": "warning",
    "Untrusted": "warning",
    "RevocationCheckFailure": "warning",
    "Revoked": "critical",
    "Invalid": "critical",
    "DateInvalid": "critical",
})


@dataclasses.dataclass(frozen=True)
class Exclusion:
    """A kind of certificate the rules skip on purpose, and where that decision comes from (docs/findings.md)."""

    id: str
    description: str
    source: str
    matches: Callable[[LocatedCertificate], bool]


def _names_rdn(certificate: LocatedCertificate, attribute: str, value: str) -> bool:
    """Whether the subject or the issuer has the relative name ``attribute=value`` (case-insensitively)."""
    wanted = (attribute, value.casefold())
    facts = certificate.facts
    return any(wanted in rdn for name in (facts.subject_name, facts.issuer_name) if name for rdn in name)


#: The one list of certificates no rule looks at. Each stays in the facts; it just raises no finding.
EXCLUSIONS: tuple[Exclusion, ...] = (
    Exclusion(
        "azure_fabric",
        "The certificate Azure places on every virtual machine for its own fabric (issuer or subject "
        "DC=Windows Azure CRP Certificate Generator); Azure renews it, Exchange never uses it.",
        "HealthChecker, Get-ExchangeServerCertificateInformation.ps1 (skipped on purpose)",
        lambda certificate: _names_rdn(certificate, "DC", "Windows Azure CRP Certificate Generator"),
    ),
)


def excluded_by(certificate: LocatedCertificate) -> Exclusion | None:
    """The exclusion that makes the rules skip ``certificate``, if any."""
    return next((exclusion for exclusion in EXCLUSIONS if exclusion.matches(certificate)), None)


# --- the evaluation context -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Context:
    snapshot: ServerSnapshot
    certificates: Mapping[str, LocatedCertificate]
    graph: ReferenceGraph
    policy: Policy
    now: datetime.datetime
    #: Certificates whose bytes cannot be parsed, by thumbprint: references to them are not "missing".
    unreadable: Mapping[str, UnreadableCertificate] = dataclasses.field(default_factory=dict)

    def roles(self, certificate: LocatedCertificate) -> frozenset[str]:
        return self.graph.roles_of(certificate.thumbprint)

    def in_my(self) -> Iterator[LocatedCertificate]:
        """Usable certificates the rules look at: in My, not a pending request, not on :data:`EXCLUSIONS`."""
        return (c for c in self.certificates.values()
                if c.in_my_store and not c.is_pending_request and excluded_by(c) is None)

    def local(self, thumbprint: str | None) -> LocatedCertificate | None:
        """The certificate with this thumbprint if the server has it in My."""
        certificate = self.certificates.get(thumbprint) if thumbprint else None
        return certificate if certificate is not None and certificate.in_my_store else None

    def is_unreadable(self, thumbprint: str | None) -> bool:
        """Whether the server has this certificate but its bytes cannot be parsed (unparseable_certificate)."""
        return thumbprint is not None and thumbprint in self.unreadable

    def days(self, certificate: LocatedCertificate) -> int:
        return certificate.facts.days_remaining(self.now)

    def expired(self, certificate: LocatedCertificate) -> bool:
        return certificate.facts.is_expired(self.now)


def _label(certificate: LocatedCertificate) -> str:
    return f"{certificate.facts.subject} ({certificate.thumbprint})"


# --- rules: one certificate at a time -------------------------------------------------------------

_RENEW = (
    "Renew it: create a request with "
    "'Get-ExchangeCertificate -Thumbprint {t} | New-ExchangeCertificate -GenerateRequest', complete it with "
    "Import-ExchangeCertificate, move its services with Enable-ExchangeCertificate and remove the old "
    "certificate once nothing references it."
)
_AUTH_ROTATE = (
    "Create a new Auth certificate (New-ExchangeCertificate -KeySize 2048 -PrivateKeyExportable $true "
    "-SubjectName 'cn=Microsoft Exchange Server Auth Certificate' -DomainName @()), import it on every "
    "Exchange server, stage it with Set-AuthConfig -NewCertificateThumbprint <T> -NewCertificateEffectiveDate "
    "(Get-Date).AddHours(49)."
)
#: Exchange's Auth certificate subject (New-ExchangeCertificate -SubjectName "cn=Microsoft Exchange Server Auth ...").
AUTH_CERTIFICATE_COMMON_NAME = "microsoft exchange server auth certificate"
_AUTH_LEAD = datetime.timedelta(hours=48)  # Set-AuthConfig: a next certificate is staged >= 48 h ahead
_AUTH_RECYCLE = (
    "restart MSExchangeServiceHost and recycle MSExchangeOWAAppPool and MSExchangeECPAppPool (or run iisreset); "
    "hybrid organizations then rerun the Hybrid Configuration Wizard."
)
_AUTH_EMERGENCY = _AUTH_ROTATE.replace("(Get-Date).AddHours(49)", "(Get-Date)") + (
    " The current certificate has expired, so only the emergency path applies (MonitorExchangeAuthCertificate: "
    "replace, no staging): make the new one effective now, run Set-AuthConfig -PublishCertificate, "
    "Set-AuthConfig -ClearPreviousCertificate, then " + _AUTH_RECYCLE
)
_AUTH_PUBLISH_NEXT = (
    "The current certificate has expired but the configured next certificate {t} is valid: publish it now "
    "(Set-AuthConfig -PublishCertificate, then Set-AuthConfig -ClearPreviousCertificate), then " + _AUTH_RECYCLE
)


def _expiry_findings(ctx: Context) -> Iterator[Finding]:
    """expired / expiring_* / not_yet_valid for usable certificates (HealthChecker lifetime rule)."""
    auth_current = ctx.snapshot.auth_config.current_certificate_thumbprint if ctx.snapshot.auth_config else None
    for certificate in ctx.in_my():
        facts, thumbprint = certificate.facts, certificate.thumbprint
        days = ctx.days(certificate)
        if facts.is_not_yet_valid(ctx.now):
            yield make_finding(
                "not_yet_valid",
                f"{_label(certificate)} is not valid before {format_utc_datetime(facts.not_before)}.",
                "Check the server clock and the issuing CA's clock; do not bind the certificate to services "
                "before it becomes valid (Enable-ExchangeCertificate would serve a certificate clients reject).",
                thumbprint=thumbprint,
            )
        elif ctx.expired(certificate):
            remediation = _auth_expired_remediation(ctx) if thumbprint == auth_current else _RENEW.format(t=thumbprint)
            yield make_finding("expired", f"{_label(certificate)} expired on {format_utc_datetime(facts.not_after)}.",
                               remediation, thumbprint=thumbprint)
        elif thumbprint == auth_current:
            continue  # the Auth certificate's window is auth_expiring's (MonitorExchangeAuthCertificate)
        elif days < ctx.policy.warning_days:
            finding_id = "expiring_critical" if days < ctx.policy.critical_days else "expiring_warning"
            yield make_finding(finding_id,
                               f"{_label(certificate)} expires in {days} days "
                               f"({format_utc_datetime(facts.not_after)}).",
                               _RENEW.format(t=thumbprint), thumbprint=thumbprint)


def _auth_expired_remediation(ctx: Context) -> str:
    """What to do when the current Auth certificate has expired: publish a usable next one, else replace."""
    auth = ctx.snapshot.auth_config
    following = ctx.local(auth.next_certificate_thumbprint) if auth is not None else None
    if following is not None and not ctx.expired(following) and not following.facts.is_not_yet_valid(ctx.now):
        return _AUTH_PUBLISH_NEXT.format(t=following.thumbprint)
    return _AUTH_EMERGENCY


def _key_findings(ctx: Context) -> Iterator[Finding]:
    """weak_key, weak_signature, missing_private_key, missing_server_auth_eku."""
    policy = ctx.policy
    minimum = {"rsa": policy.min_rsa_key_size, "ec": policy.min_ec_key_size}
    for certificate in ctx.in_my():
        facts, thumbprint = certificate.facts, certificate.thumbprint
        required = minimum.get(facts.key_type)
        if required is not None and facts.key_size is not None and facts.key_size < required:
            yield make_finding(
                "weak_key",
                f"{_label(certificate)} has a {facts.key_size}-bit {facts.key_type.upper()} key; "
                f"the policy requires at least {required} bits.",
                "Replace it with a certificate whose key has at least the required size (New-ExchangeCertificate "
                "-GenerateRequest -KeySize 2048 or more), then move its "
                "services and remove this one.",
                thumbprint=thumbprint,
            )
        if facts.signature_hash in policy.weak_signature_hashes:
            yield make_finding(
                "weak_signature",
                f"{_label(certificate)} is signed with {facts.signature_hash.upper()}, which clients reject.",
                "Have the CA reissue it with a SHA-256 (or stronger) signature, then move its services and remove "
                "this one.",
                thumbprint=thumbprint,
            )
        if certificate.has_private_key is False:
            yield make_finding(
                "missing_private_key",
                f"{_label(certificate)} has no private key on this server and cannot serve TLS.",
                "Import the certificate with its key (Import-ExchangeCertificate -FileData <PFX bytes> -Password), "
                "or complete it on the server that generated the request; remove the key-less copy "
                "with Remove-ExchangeCertificate if it is not needed.",
                thumbprint=thumbprint,
            )
        if facts.allows_server_auth is False:
            yield make_finding(
                "missing_server_auth_eku",
                f"{_label(certificate)} has an Extended Key Usage without Server Authentication "
                "(1.3.6.1.5.5.7.3.1); TLS clients reject it for IIS, SMTP, IMAP and POP.",
                "Request a certificate from a template that includes Server Authentication (for AD CS: WebServer) "
                "and do not enable this one for Exchange services.",
                thumbprint=thumbprint,
            )


def _status_findings(ctx: Context) -> Iterator[Finding]:
    """untrusted: Exchange's Status says the chain or the certificate is not valid (HealthChecker)."""
    for certificate in ctx.in_my():
        status = certificate.status
        severity = _STATUS_SEVERITY.get(status or "")
        if severity is None or "exchange_default" in ctx.roles(certificate):
            continue
        facts = certificate.facts
        if status == "DateInvalid" and (ctx.expired(certificate) or facts.is_not_yet_valid(ctx.now)):
            continue  # the date findings already report it
        yield make_finding(
            "untrusted",
            f"Exchange reports {_label(certificate)} as {status}.",
            "Make sure the issuing CA's root and intermediate certificates are in the server's Trusted Root and "
            "Intermediate stores and that the CRL/OCSP locations are reachable from the server; replace a revoked "
            "or invalid certificate. Check with Get-ExchangeCertificate -Thumbprint "
            f"{certificate.thumbprint} | Format-List Status.",
            thumbprint=certificate.thumbprint,
            severity=severity,  # type: ignore[arg-type]  # a key of _STATUS_SEVERITY
        )


def _shared_key_findings(ctx: Context) -> Iterator[Finding]:
    """shared_key_not_exportable: a CA-issued client-facing certificate whose key cannot be exported."""
    for certificate in ctx.in_my():
        if (certificate.private_key_exportable is not False or certificate.facts.is_self_signed
                or ctx.expired(certificate) or not CLIENT_FACING_ROLES & ctx.roles(certificate)):
            continue
        yield make_finding(
            "shared_key_not_exportable",
            f"{_label(certificate)} holds {', '.join(sorted(CLIENT_FACING_ROLES & ctx.roles(certificate)))} but its "
            "private key is not exportable: it cannot be copied to the other servers of the site or DAG, which "
            "must serve the same certificate behind a load balancer.",
            "At the next renewal request the certificate with an exportable key (New-ExchangeCertificate "
            "-GenerateRequest -PrivateKeyExportable $true), export it once with "
            "Export-ExchangeCertificate and import it on every member with Import-ExchangeCertificate.",
            thumbprint=certificate.thumbprint,
        )


def _cluster_findings(ctx: Context) -> Iterator[Finding]:
    """cluster_certificate_expired / _expiring for CLIUSR/PKU2U certificates."""
    remediation = (
        "Failover-cluster certificates are managed by Windows and their renewal is not publicly documented: do "
        "not delete them. Check the cluster's health (Get-ClusterNode, Test-Cluster) and open a case with "
        "Microsoft support before any regeneration; exchange.pki never modifies them by default."
    )
    for certificate in ctx.certificates.values():
        if "cluster" not in ctx.roles(certificate):
            continue
        facts, days = certificate.facts, ctx.days(certificate)
        if ctx.expired(certificate):
            yield make_finding("cluster_certificate_expired",
                               f"Cluster certificate {_label(certificate)} in store {certificate.store} expired on "
                               f"{format_utc_datetime(facts.not_after)}.", remediation,
                               thumbprint=certificate.thumbprint)
        elif days < ctx.policy.cluster_warning_days:
            yield make_finding("cluster_certificate_expiring",
                               f"Cluster certificate {_label(certificate)} in store {certificate.store} expires in "
                               f"{days} days ({format_utc_datetime(facts.not_after)}).", remediation,
                               thumbprint=certificate.thumbprint)


def _pending_request_findings(ctx: Context) -> Iterator[Finding]:
    """pending_request_stale: the placeholder's NotBefore is when the request was generated."""
    for certificate in ctx.certificates.values():
        if not certificate.is_pending_request:
            continue
        age = whole_days(ctx.now, certificate.facts.not_before)
        if age > ctx.policy.pending_request_stale_days:
            yield make_finding(
                "pending_request_stale",
                f"The request for {certificate.facts.subject} ({certificate.thumbprint}) has been pending for {age} "
                "days.",
                "Complete it on this server with Import-ExchangeCertificate -FileData <issued certificate> once the "
                "CA has issued it, or remove the abandoned request with Remove-ExchangeCertificate -Thumbprint "
                f"{certificate.thumbprint}.",
                thumbprint=certificate.thumbprint,
            )


def _duplicate_findings(ctx: Context) -> Iterator[Finding]:
    """duplicate_certificates: same subject and same SAN set, grouped by hashing.

    Expired certificates are left out (``expired`` already tells to remove them once unreferenced), and so
    are the Auth certificates Get-AuthConfig names: current, next and previous share one subject by design.
    The remediation fits what the group is: stale Auth certificates and Exchange's self-signed defaults are
    not moved between services like a CA-issued certificate.
    """
    groups: dict[tuple[Any, frozenset[str]], list[LocatedCertificate]] = collections.defaultdict(list)
    for certificate in ctx.in_my():
        if ctx.expired(certificate) or AUTH_ROLES & ctx.roles(certificate) or certificate.facts.dns_names is None:
            continue  # expired: `expired` says it; Auth: by design; unknown names: never a known duplicate
        names = frozenset(name.lower() for name in certificate.facts.dns_names)
        groups[(certificate.facts.subject_name, names)].append(certificate)
    for group in groups.values():
        if len(group) < 2:
            continue
        remediation = _duplicate_remediation(ctx, group)
        for certificate in group:
            others = ", ".join(other.thumbprint for other in group if other is not certificate)
            yield make_finding(
                "duplicate_certificates",
                f"{_label(certificate)} has the same subject and names as {others}.",
                remediation,
                thumbprint=certificate.thumbprint,
            )


def _duplicate_remediation(ctx: Context, group: list[LocatedCertificate]) -> str:
    if all(certificate.facts.common_name == AUTH_CERTIFICATE_COMMON_NAME for certificate in group):
        return (
            "These are Auth certificates that Get-AuthConfig no longer names (not current, next or previous); the "
            "SMTP service Exchange lists for them is nominal, so there is nothing to move. Check on every server "
            "that Get-AuthConfig does not name them, then remove them with Remove-ExchangeCertificate -Thumbprint "
            "<T>."
        )
    if any("exchange_default" in ctx.roles(certificate) for certificate in group):
        return (
            "These are Exchange's self-signed certificates for this server. Keep the one Get-TransportService names "
            "as InternalTransportCertificateThumbprint and the one the Exchange Back End site binds on *:444; "
            "remove the others with Remove-ExchangeCertificate once nothing references them (never with -Force)."
        )
    return (
        "Keep the newest valid certificate: move any services to it with Enable-ExchangeCertificate, then "
        "remove the others with Remove-ExchangeCertificate once nothing references them."
    )


# --- rules: server configuration ------------------------------------------------------------------


def _name_findings(ctx: Context) -> Iterator[Finding]:
    """name_mismatch: the client-facing certificate must cover every required name (RFC 6125)."""
    if not ctx.policy.required_names:
        return
    for certificate in _client_facing(ctx):
        if certificate.facts.dns_names is None:
            continue  # its names cannot be read: unknown, not "missing" (unparseable_certificate says so)
        missing = [name for name in ctx.policy.required_names if not certificate.facts.covers(name)]
        if missing:
            yield make_finding(
                "name_mismatch",
                f"{_label(certificate)} serves the Default Web Site but does not cover {', '.join(missing)} "
                f"(its names: {', '.join(certificate.facts.dns_names) or 'none'}).",
                "Request a certificate whose Subject Alternative Names include every name clients use "
                "(New-ExchangeCertificate -GenerateRequest -DomainName ...), then bind it with "
                "Enable-ExchangeCertificate -Services IIS.",
                thumbprint=certificate.thumbprint,
            )


def _client_facing(ctx: Context) -> list[LocatedCertificate]:
    """Certificates bound to Default Web Site :443; without binding facts, those with the IIS service."""
    if ctx.snapshot.has("iis_bindings"):
        bound = {binding.certificate_hash for binding in ctx.snapshot.iis_bindings if binding_role(binding) == "iis"}
        return [c for c in (ctx.local(thumbprint) for thumbprint in sorted(filter(None, bound))) if c is not None]
    return [c for c in ctx.in_my() if "IIS" in c.services and "exchange_default" not in ctx.roles(c)]


def _auth_findings(ctx: Context) -> Iterator[Finding]:
    """auth_missing, auth_expiring, auth_next_not_staged, auth_key_not_csp (MonitorExchangeAuthCertificate)."""
    auth = ctx.snapshot.auth_config
    if auth is None or not ctx.snapshot.has("auth_config"):
        return
    current = ctx.local(auth.current_certificate_thumbprint)
    if current is None and not ctx.is_unreadable(auth.current_certificate_thumbprint):
        yield _auth_missing(auth.current_certificate_thumbprint)
    elif current is not None:
        yield from _auth_window(ctx, current, auth)
    following = auth.next_certificate_thumbprint
    if following is not None and ctx.local(following) is None and not ctx.is_unreadable(following):
        yield _auth_next_missing(ctx, auth)
    for thumbprint in dict.fromkeys((auth.current_certificate_thumbprint, auth.next_certificate_thumbprint)):
        certificate = ctx.local(thumbprint)
        if certificate is not None and certificate.key_provider == "cng":
            yield make_finding(
                "auth_key_not_csp",
                f"Auth certificate {_label(certificate)} has a CNG key; Exchange's OAuth signing requires a "
                "CSP key.",
                "Create the next Auth certificate with New-ExchangeCertificate (which makes a CSP key), stage and "
                "publish it with Set-AuthConfig.",
                thumbprint=certificate.thumbprint,
            )


def _auth_missing(thumbprint: str | None) -> Finding:
    if thumbprint is None:
        message = "No Auth certificate is configured (Get-AuthConfig CurrentCertificateThumbprint is empty)."
    else:
        message = f"The current Auth certificate {thumbprint} is not installed on this server."
    return make_finding(
        "auth_missing", message,
        "Export the Auth certificate with its key from a server that has it (Export-ExchangeCertificate "
        "-BinaryEncoded -Password) and import it here (Import-ExchangeCertificate -FileData ... -Password); if no "
        "server has a valid one, create and publish a new one (Set-AuthConfig -PublishCertificate).",
        thumbprint=thumbprint,
    )


def _auth_next_missing(ctx: Context, auth: AuthConfig) -> Finding:
    """MonitorExchangeAuthCertificate's NextAuthCertificateImportRequired: checked whenever a next one is set."""
    thumbprint = auth.next_certificate_thumbprint
    effective = auth.next_certificate_effective_date
    soon = effective is not None and effective - ctx.now <= _AUTH_LEAD
    when = f", effective {format_utc_datetime(effective)}" if effective is not None else ""
    return make_finding(
        "auth_next_missing",
        f"The next Auth certificate {thumbprint}{when} is not installed on this server; once the AuthAdmin "
        "servicelet publishes it, this server cannot sign or validate OAuth tokens.",
        "Export it with its key from a server that has it (Export-ExchangeCertificate -Thumbprint "
        f"{thumbprint} -BinaryEncoded -Password) and import it here (Import-ExchangeCertificate -FileData ... "
        "-Password) before its effective date.",
        thumbprint=thumbprint,
        severity="critical" if soon else None,
    )


def _auth_window(ctx: Context, current: LocatedCertificate, auth: AuthConfig) -> Iterator[Finding]:
    days = ctx.days(current)
    if days >= ctx.policy.auth_warning_days or ctx.expired(current):
        return  # an expired current certificate is the `expired` finding's, with the emergency path only
    yield make_finding(
        "auth_expiring",
        f"The current Auth certificate {_label(current)} expires in {days} days "
        f"({format_utc_datetime(current.facts.not_after)}).",
        "Make sure a next Auth certificate is staged at least 48 hours before the current one expires; "
        "the AuthAdmin servicelet publishes it on its effective date (event 2014, source MSExchange AuthAdmin).",
        thumbprint=current.thumbprint,
    )
    problem = _next_auth_problem(ctx, auth)
    if problem is not None:
        yield make_finding(
            "auth_next_not_staged",
            f"The current Auth certificate {_label(current)} has {days} days left and {problem}.",
            _AUTH_ROTATE + " Hybrid organizations must rerun the Hybrid Configuration Wizard afterwards.",
            thumbprint=current.thumbprint,
        )


def _next_auth_problem(ctx: Context, auth: AuthConfig) -> str | None:
    """Why the staged next Auth certificate does not count, or None when it does."""
    thumbprint = auth.next_certificate_thumbprint
    if thumbprint is None:
        return "no next certificate is staged"
    following = ctx.local(thumbprint)
    if following is None:
        return None  # configured but not imported here: auth_next_missing (import, not configure)
    days = ctx.days(following)
    if days <= ctx.policy.auth_next_min_days:
        return f"the next certificate {thumbprint} has only {days} days left"
    return None


def _transport_findings(ctx: Context) -> Iterator[Finding]:
    """no_internal_transport / internal_transport_expired (HealthChecker: critical)."""
    service = ctx.snapshot.local_transport_service
    if service is None or not ctx.snapshot.has("transport_services"):
        return
    recreate = (
        "Recreate it as Microsoft recommends: New-ExchangeCertificate -KeySize 2048 -PrivateKeyExportable $true "
        "-FriendlyName $env:COMPUTERNAME -DomainName $env:COMPUTERNAME -IncludeServerFQDN -Services SMTP -Force."
    )
    thumbprint = service.internal_transport_certificate_thumbprint
    certificate = ctx.local(thumbprint)
    if certificate is None and not ctx.is_unreadable(thumbprint):
        where = "none is configured" if thumbprint is None else f"{thumbprint} is not installed on this server"
        yield make_finding("no_internal_transport",
                           f"This server has no internal transport certificate ({where}); server-to-server SMTP "
                           "cannot use TLS.", recreate, thumbprint=thumbprint)
    elif certificate is not None and ctx.expired(certificate):
        yield make_finding("internal_transport_expired",
                           f"The internal transport certificate {_label(certificate)} expired on "
                           f"{format_utc_datetime(certificate.facts.not_after)}.", recreate,
                           thumbprint=certificate.thumbprint)


def _iis_findings(ctx: Context) -> Iterator[Finding]:
    """iis_binding_missing_cert, iis_binding_expired, back_end_binding_missing (HealthChecker)."""
    if not ctx.snapshot.has("iis_bindings"):
        return
    for binding in ctx.snapshot.iis_bindings:
        yield from _binding_findings(ctx, binding)
    roles = ctx.snapshot.exchange_server.server_role if ctx.snapshot.exchange_server else ()
    is_mailbox = not roles or any(role.casefold() == "mailbox" for role in roles)
    if is_mailbox and not any(binding_role(binding) == "back_end" for binding in ctx.snapshot.iis_bindings):
        yield make_finding(
            "back_end_binding_missing",
            "The Exchange Back End site has no https binding on *:444; front-end services cannot proxy to it.",
            "Bind the Exchange Back End site on *:444 to the server's 'Microsoft Exchange' self-signed certificate "
            "in IIS Manager (Bindings > https > port 444), then run iisreset.",
        )


def _binding_findings(ctx: Context, binding: IisBinding) -> Iterator[Finding]:
    name = binding_name(binding)
    thumbprint = binding.certificate_hash
    certificate = ctx.local(thumbprint)
    bind = ("Bind a valid certificate: Enable-ExchangeCertificate -Thumbprint <T> -Services IIS for the Default Web "
            "Site, or the binding's SSL certificate in IIS Manager for Exchange Back End (the server's 'Microsoft "
            "Exchange' certificate); then run iisreset.")
    if certificate is None and ctx.is_unreadable(thumbprint):
        return  # installed, but its bytes cannot be parsed: unparseable_certificate says so
    if certificate is None:
        what = "no certificate" if thumbprint is None else f"certificate {thumbprint}, which is not in the store"
        yield make_finding("iis_binding_missing_cert", f"IIS binding {name} points at {what}.", bind,
                           thumbprint=thumbprint)
    elif ctx.expired(certificate):
        yield make_finding("iis_binding_expired",
                           f"IIS binding {name} serves {_label(certificate)}, which expired on "
                           f"{format_utc_datetime(certificate.facts.not_after)}.", bind,
                           thumbprint=certificate.thumbprint)


def _connector_findings(ctx: Context) -> Iterator[Finding]:
    """connector_certificate_not_found for connectors this server uses (HealthChecker TlsCertificateName)."""
    for connector in ctx.graph.connectors:
        if not connector.applies_here or connector.matched_thumbprints:
            continue
        reason = connector.syntax_error or "no certificate in My has that issuer and subject"
        yield make_finding(
            "connector_certificate_not_found",
            f"The {_connector_label(connector)} has TlsCertificateName {connector.tls_certificate_name!r}: {reason}.",
            "Install the certificate it names, or point the connector at an installed one: "
            f"{_connector_command(connector)} -TlsCertificateName \"<I>$($c.Issuer)<S>$($c.Subject)\" with "
            "$c = Get-ExchangeCertificate -Thumbprint <T>.",
        )


def _connector_label(connector: ConnectorMatch) -> str:
    return {"send": "Send connector", "receive": "Receive connector", "hybrid": "hybrid configuration"}[
        connector.kind] + f" {connector.name!r}"


def _connector_command(connector: ConnectorMatch) -> str:
    if connector.kind == "hybrid":
        return "rerun the Hybrid Configuration Wizard, or Set-HybridConfiguration"
    cmdlet = "Set-SendConnector" if connector.kind == "send" else "Set-ReceiveConnector"
    return f"{cmdlet} -Identity '{connector.name}'"


def _unparseable_findings(ctx: Context) -> Iterator[Finding]:
    """unparseable_certificate: bytes that cannot be parsed (warning), or parts of a certificate (info)."""
    for unreadable in ctx.unreadable.values():
        named = f" ({unreadable.friendly_name})" if unreadable.friendly_name else ""
        yield make_finding(
            "unparseable_certificate",
            f"The certificate {unreadable.thumbprint}{named} in store {unreadable.store} cannot be parsed "
            f"({unreadable.reason}); none of its facts are known and no other rule can check it.",
            _INSPECT.format(store=unreadable.store, t=unreadable.thumbprint),
            thumbprint=unreadable.thumbprint,
        )
    for certificate in ctx.certificates.values():
        if certificate.facts.problems:
            yield make_finding(
                "unparseable_certificate",
                f"Parts of {_label(certificate)} cannot be read ({'; '.join(certificate.facts.problems)}); the facts "
                "from those parts are null and the rules that need them stay silent.",
                _INSPECT.format(store=certificate.store, t=certificate.thumbprint),
                thumbprint=certificate.thumbprint,
                severity="info",
            )


_INSPECT = (
    "Inspect it on the server (certutil -store {store} {t}, or Get-Item Cert:\\LocalMachine\\{store}\\{t} | "
    "Format-List *). If nothing uses it, remove it; if Exchange or IIS uses it, replace it with a standard X.509 v3 "
    "certificate from your CA and move its services first."
)


_RULES: tuple[Callable[[Context], Iterable[Finding]], ...] = (
    _expiry_findings,
    _key_findings,
    _status_findings,
    _name_findings,
    _auth_findings,
    _transport_findings,
    _iis_findings,
    _connector_findings,
    _cluster_findings,
    _pending_request_findings,
    _duplicate_findings,
    _shared_key_findings,
    _unparseable_findings,
)


def evaluate(ctx: Context) -> list[Finding]:
    """Every finding of every rule the policy does not ignore, most severe first."""
    findings = (finding for rule in _RULES for finding in rule(ctx) if not ctx.policy.is_ignored(finding.id))
    return sorted(findings, key=Finding.sort_key)
