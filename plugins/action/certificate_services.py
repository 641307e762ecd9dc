# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_services: enable the missing services of one certificate.

The server read is ``_snapshot``'s; this plugin decides the plan (``_plan``) and ``ChangingAction`` sends,
confirms and records it. Exchange's rules it follows (exchange-facts.md, "Enable-ExchangeCertificate" and
"New-ExchangeCertificate"):

- services are additive: a service is enabled on a certificate, never removed from one; it moves by being
  enabled on another certificate, so only the services this certificate lacks are enabled;
- IIS means the Default Web Site's ``*:443`` binding; Require SSL is set unless ``-DoNotRequireSsl``; OWA keeps
  the old certificate until IIS restarts, so the OWA and ECP app pools are recycled (or IIS reset);
- SMTP on a non-interactive host needs ``-Force`` (the "Overwrite the existing default SMTP certificate?"
  prompt), and ``-Force`` makes the certificate the internal transport certificate. The internal transport
  certificate is put back by enabling the previous one for SMTP again with ``-Force`` (it keeps SMTP, which
  it held already; the new certificate keeps SMTP too). When that is impossible (the previous certificate is
  missing, expired or has no key) the task refuses before sending anything, unless
  ``replace_internal_transport`` allows the replacement (DESIGN.md safety invariant 5);
- IMAP/POP with a wildcard certificate: ``X509CertificateName`` (Set-ImapSettings / Set-PopSettings) names
  the host name clients use, one the certificate covers.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import Applied, ArgumentSpec, ChangingAction
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    LocatedCertificate,
    dns_name_to_a_label,
    normalize_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ledger_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, Step
from ansible_collections.exchange.pki.plugins.plugin_utils._references import binding_role
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    LOCAL_SERVER,
    Batch,
    BatchResult,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import (
    ServerSnapshot,
    build_batch,
    collect_certificates,
    read_snapshot,
    server_time,
)

#: The services this module enables, in the order Exchange lists them.
SERVICES = ("IMAP", "POP", "IIS", "SMTP")
IIS_RESTART_CHOICES = ("none", "app_pools", "iisreset")
#: App pools that keep the old certificate until recycled (exchange-facts.md "Enable": OWA; "Auth": OWA and ECP).
APP_POOLS = ("MSExchangeOWAAppPool", "MSExchangeECPAppPool")
#: The operations of the restart that follows moving IIS (restart_steps).
RESTART_OPERATIONS = frozenset({"host.recycle_app_pool", "host.iis_reset"})
#: The protocol settings a wildcard certificate needs, per service: (read, write).
PROTOCOL_SETTINGS = {"IMAP": ("Get-ImapSettings", "Set-ImapSettings"), "POP": ("Get-PopSettings", "Set-PopSettings")}
#: Statuses Exchange gives a certificate no client should be served.
UNUSABLE_STATUSES = frozenset({"Revoked", "Invalid"})
PROTOCOL_READ_PREFIX = "protocol."
#: What the server's clock decides here (named in the warning when it is unknown and the controller's is used).
CLOCK_JUDGES = "whether the certificate, and the internal transport certificate to put back, are valid"

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        **exchange_session_argspec(),
        **ledger_argspec(),
        "thumbprint": {"type": "str", "required": True},
        "services": {"type": "list", "elements": "str", "required": True},
        "require_ssl": {"type": "bool", "default": True},
        "iis_restart": {"type": "str", "choices": list(IIS_RESTART_CHOICES)},
        "replace_internal_transport": {"type": "bool", "default": False},
        "x509_certificate_name": {"type": "str"},
    },
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)


def parse_thumbprint(text: str) -> str:
    """The option ``thumbprint`` normalised (pasted spaces, colons and U+200E marks removed), or a user error."""
    try:
        return normalize_thumbprint(text)
    except ValueError as error:
        raise AnsibleActionFail(f"thumbprint: {error}") from None


def parse_services(values: Sequence[str]) -> tuple[str, ...]:
    """The option ``services`` in Exchange's spelling and order; unknown names are a user error naming them."""
    canonical = {name.casefold(): name for name in SERVICES}
    unknown = [value for value in values if str(value).strip().casefold() not in canonical]
    if unknown:
        raise AnsibleActionFail(
            f"services: unknown service name(s) {', '.join(repr(value) for value in unknown)}; "
            f"choose from {', '.join(SERVICES)}"
        )
    if not values:
        raise AnsibleActionFail(f"services: name at least one of {', '.join(SERVICES)}")
    wanted = {canonical[str(value).strip().casefold()] for value in values}
    return tuple(name for name in SERVICES if name in wanted)


def parse_host_name(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        name = dns_name_to_a_label(text)
    except ExchangePkiError as error:  # DnsNameError, or idna missing for a non-ASCII name
        raise AnsibleActionFail(f"x509_certificate_name: {error}") from None
    if name.startswith("*."):
        raise AnsibleActionFail(f"x509_certificate_name: {text!r} is a wildcard; name the host clients connect to")
    return name


def front_end_bindings(snapshot: ServerSnapshot) -> list[Any]:
    """The Default Web Site's :443 bindings (the IIS service of Enable-ExchangeCertificate)."""
    return [binding for binding in snapshot.iis_bindings if binding_role(binding) == "iis"]


def is_wildcard(certificate: LocatedCertificate) -> bool:
    return any(name.startswith("*.") for name in certificate.facts.dns_names or ())


def _protocol_names(result: BatchResult, services: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """X509CertificateName per protocol: (value, None), or (None, why it could not be read)."""
    names: dict[str, tuple[str | None, str | None]] = {}
    for service in services:
        if service not in PROTOCOL_SETTINGS:
            continue
        answer = result[PROTOCOL_READ_PREFIX + service]
        error = answer.exception()
        if error is not None:
            names[service] = (None, str(error))
            continue
        value = answer.value
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, Mapping):
            found = value.get("X509CertificateName")
            names[service] = (str(found) if found else None, None)
        else:
            names[service] = (None, f"{PROTOCOL_SETTINGS[service][0]} returned no settings")
    return names


class ActionModule(ChangingAction):
    """exchange.pki.certificate_services: enable what is missing; keep the internal transport certificate."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._x509_names: dict[str, tuple[str | None, str | None]] = {}

    # --- reading ---------------------------------------------------------------------------------

    def _protocol_batch(self, batch: Batch, services: Sequence[str]) -> Batch:
        for service in services:
            if service in PROTOCOL_SETTINGS:
                batch.add(PROTOCOL_SETTINGS[service][0], {"Server": LOCAL_SERVER}, id=PROTOCOL_READ_PREFIX + service)
        return batch

    def read(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> ServerSnapshot:
        """The server read plus, for IMAP/POP, the protocols' X509CertificateName (one round trip)."""
        services = parse_services(args["services"])
        parse_thumbprint(args["thumbprint"])  # a bad thumbprint fails before the host is contacted
        parse_host_name(args.get("x509_certificate_name"))
        answer = self.run_batch(self._protocol_batch(build_batch(), services), task_vars, args)
        snapshot = read_snapshot(answer)
        self._x509_names = _protocol_names(answer, services)
        return snapshot

    def confirm(self, args: dict[str, Any], plan: Plan, after: ServerSnapshot,
                task_vars: Mapping[str, Any]) -> list[str]:
        """Decide again on the re-read server; X509CertificateName is read again first when the plan set it."""
        written = [step for step in plan.steps if step.operation in {w for _r, w in PROTOCOL_SETTINGS.values()}]
        if written:
            services = [service for service, (_r, w) in PROTOCOL_SETTINGS.items()
                        if any(step.operation == w for step in written)]
            answer = self.run_batch(self._protocol_batch(Batch(), services), task_vars, args)
            self._x509_names.update(_protocol_names(answer, services))
        return super().confirm(args, plan, after, task_vars)

    def failure_note(self, plan: Plan, applied: Applied) -> str | None:
        """A restart that did not happen after IIS moved: running the task again finds IIS on the certificate and
        restarts nothing (the documented rule), so the administrator must restart it."""
        restarts = [outcome for outcome in applied.outcomes if outcome.step.operation in RESTART_OPERATIONS]
        moved = any(outcome.step.id == "enable" and outcome.status in ("ok", "unknown")
                    for outcome in applied.outcomes)
        if not moved or not restarts or all(outcome.status == "ok" for outcome in restarts):
            return None
        del plan  # the outcomes say it all
        what = ("run iisreset" if any(outcome.step.operation == "host.iis_reset" for outcome in restarts) else
                f"recycle {' and '.join(APP_POOLS)} (Restart-WebAppPool)")
        return (f"IIS may already use the certificate, and then running this task again restarts nothing: {what} on "
                "this server yourself, or Outlook on the web keeps the previous certificate")

    # --- deciding --------------------------------------------------------------------------------

    def decide(self, args: dict[str, Any], snapshot: ServerSnapshot, task_vars: Mapping[str, Any]) -> Plan:
        thumbprint = parse_thumbprint(args["thumbprint"])
        services = parse_services(args["services"])
        host_name = parse_host_name(args.get("x509_certificate_name"))
        server = snapshot.server_name or "the server"
        certificates = collect_certificates(snapshot)
        certificate = certificates.parsed.get(thumbprint)
        warnings: list[str] = []
        now = server_time(snapshot, server, warnings, CLOCK_JUDGES)
        check_certificate(thumbprint, certificate, server, certificates.unreadable, now)
        if certificate is None:  # check_certificate refused a missing certificate already
            raise ExchangePkiError(f"{thumbprint} is not on {server}")
        warnings.extend(usable_warnings(certificate))

        holders = current_holders(snapshot, certificates.parsed, services)
        missing = [service for service in services if thumbprint not in holders[service]]
        transport = internal_transport(snapshot)

        steps: list[Step] = []
        enabled = list(missing)  # what Enable-ExchangeCertificate is given
        reason = f"{server}: {', '.join(missing)} not enabled on {thumbprint}"
        after_transport = transport
        force = False
        restore: Step | None = None
        if "SMTP" in services:
            after_transport, force, restore = self._smtp(thumbprint, transport, certificates.parsed,
                                                         bool(args["replace_internal_transport"]),
                                                         "SMTP" in missing, server, now)
            if force and "SMTP" not in enabled:  # replace_internal_transport on a certificate that holds SMTP
                enabled.append("SMTP")
                reason = f"{server}: {thumbprint} should be the internal transport certificate " \
                         f"(replace_internal_transport), {transport} is"
        if enabled:
            enable: dict[str, Any] = {"Server": LOCAL_SERVER, "Thumbprint": thumbprint, "Services": enabled}
            if force:
                enable["Force"] = True
            if "IIS" in enabled and not args["require_ssl"]:
                enable["DoNotRequireSsl"] = True
            steps.append(Step("enable", "Enable-ExchangeCertificate", enable, reason))
        if restore is not None:
            steps.append(restore)

        protocol_steps, protocol_warnings = self._protocol_settings(certificate, services, host_name, server)
        steps.extend(protocol_steps.values())
        warnings.extend(protocol_warnings)
        if host_name is not None and not set(services) & set(PROTOCOL_SETTINGS):
            warnings.append("x509_certificate_name is used only with IMAP or POP in services; it was ignored")

        restart = iis_restart_mode(args.get("iis_restart"), "IIS" in missing)
        steps.extend(restart_steps(restart, server))

        moved = {service: sorted(holders[service] - {thumbprint}) for service in missing}
        after_holders = predicted_holders(holders, missing, thumbprint)
        before = {"thumbprint": thumbprint,
                  "services": {service: sorted(holders[service]) for service in services},
                  "internal_transport_thumbprint": transport}
        after = {"thumbprint": thumbprint,
                 "services": {service: sorted(after_holders[service]) for service in services},
                 "internal_transport_thumbprint": after_transport}
        if protocol_steps:
            before["x509_certificate_name"] = {service: self._x509_names.get(service, (None, None))[0]
                                               for service in protocol_steps}
            after["x509_certificate_name"] = {service: step.arguments["X509CertificateName"]
                                              for service, step in protocol_steps.items()}
        result = {
            "thumbprint": thumbprint,
            "services": [*certificate.services, *(name for name in missing if name not in certificate.services)],
            "moved": moved,
            "internal_transport_thumbprint": after_transport,
            "iis_restart": restart,
        }
        return Plan("enable_services", tuple(steps), before=before, after=after, result=result,
                    warnings=tuple(warnings))

    @staticmethod
    def _smtp(thumbprint: str, transport: str | None, certificates: Mapping[str, LocatedCertificate],
              replace: bool, enabling: bool, server: str,
              now: datetime.datetime) -> tuple[str | None, bool, Step | None]:
        """(internal transport certificate after the plan, whether -Force is needed, the restoring step); ``now`` is
        the server's time, by which the previous certificate must be valid to be enabled again."""
        if transport == thumbprint:
            return transport, False, None  # no prompt: this certificate already is the internal transport one
        if replace:
            return thumbprint, True, None
        if not enabling:
            return transport, False, None
        if transport is None:
            raise ExchangePkiError(
                f"{server} has no internal transport certificate (Get-TransportService could not say, or names "
                f"none): enabling SMTP on {thumbprint} would make it the internal transport certificate, which "
                "Exchange does without asking. Set replace_internal_transport: true to accept that, or recreate "
                "the server's own SMTP certificate first (exchange-facts: New-ExchangeCertificate ... -Services "
                "SMTP -Force). Nothing was changed."
            )
        previous = certificates.get(transport)
        problem = restore_problem(previous, now)
        if problem is not None:
            raise ExchangePkiError(
                f"enabling SMTP on {thumbprint} needs -Force on a non-interactive host, which makes it the internal "
                f"transport certificate of {server}; the current one, {transport}, could not be put back: {problem}. "
                "Set replace_internal_transport: true to let the new certificate replace it. Nothing was changed."
            )
        restore = Step(
            "restore_internal_transport", "Enable-ExchangeCertificate",
            {"Server": LOCAL_SERVER, "Thumbprint": transport, "Services": ["SMTP"], "Force": True},
            f"{server}: -Force on the previous step makes {thumbprint} the internal transport certificate; "
            f"{transport} was, and stays (replace_internal_transport is false)",
        )
        return transport, True, restore

    def _protocol_settings(self, certificate: LocatedCertificate, services: Sequence[str], host_name: str | None,
                           server: str) -> tuple[dict[str, Step], list[str]]:
        """Set-ImapSettings / Set-PopSettings steps by service, and warnings about a name the certificate misses.

        With ``x509_certificate_name`` the name is set for IMAP/POP whatever the certificate; without it only a
        wildcard certificate needs one: the current name when the certificate covers it, else the certificate's
        first name without a wildcard, else the task fails with the reason.
        """
        steps: dict[str, Step] = {}
        warnings: list[str] = []
        facts = certificate.facts
        for service in (service for service in services if service in PROTOCOL_SETTINGS):
            read_op, write_op = PROTOCOL_SETTINGS[service]
            current, problem = self._x509_names.get(service, (None, "not read"))
            covered = bool(current) and not current.startswith("*.") and facts.covers(current)
            if host_name is None and not is_wildcard(certificate):
                if problem is not None:
                    warnings.append(
                        f"{server}: {read_op} could not be read ({problem}), so whether {service} "
                        f"X509CertificateName names a host {certificate.thumbprint} covers is unknown"
                    )
                elif current and not facts.covers(current):
                    warnings.append(
                        f"{server}: {service} X509CertificateName is {current!r}, a name {certificate.thumbprint} "
                        f"does not cover; {service} clients may be served another certificate"
                    )
                continue
            if problem is not None:
                raise ExchangePkiError(
                    f"{service} with {certificate.thumbprint} needs X509CertificateName (exchange-facts: "
                    f"{write_op}), but {read_op} could not be read on {server}: {problem}. Nothing was changed."
                )
            wanted = host_name
            if wanted is None:
                if covered:
                    continue
                wanted = next((name for name in facts.dns_names or () if not name.startswith("*.")), None)
                if wanted is None:
                    raise ExchangePkiError(
                        f"{service} with the wildcard certificate {certificate.thumbprint} needs X509CertificateName, "
                        f"the host name {service} clients connect to (exchange-facts: {write_op} "
                        f"-X509CertificateName); {server} has {current!r}, which the certificate does not cover, and "
                        "the certificate names no host without a wildcard. Set x509_certificate_name. "
                        "Nothing was changed."
                    )
            if not facts.covers(wanted):
                raise ExchangePkiError(
                    f"x509_certificate_name {wanted!r} is not covered by {certificate.thumbprint} "
                    f"(its names: {', '.join(facts.dns_names or ())}). Nothing was changed."
                )
            if current is not None and current.lower() == wanted:
                continue
            steps[service] = Step(
                f"x509_{service.lower()}", write_op, {"Server": LOCAL_SERVER, "X509CertificateName": wanted},
                f"{server}: {service} should name {wanted!r}, a host {certificate.thumbprint} covers"
                f"{' (a wildcard certificate)' if is_wildcard(certificate) else ''}; X509CertificateName is "
                f"{current!r}",
            )
        return steps, warnings


# --- the rules, as functions of the read --------------------------------------------------------------


def check_certificate(thumbprint: str, certificate: LocatedCertificate | None, server: str,
                      unreadable: Mapping[str, Any], now: datetime.datetime) -> None:
    """Refuse a certificate Exchange cannot serve: absent, a pending request, no key, outside its validity at
    ``now`` (the server's time: Enable-ExchangeCertificate refuses a certificate its server sees expired)."""
    if certificate is None:
        if thumbprint in unreadable:
            raise ExchangePkiError(
                f"certificate {thumbprint} on {server} cannot be parsed ({unreadable[thumbprint].reason}); "
                "it cannot be enabled. Nothing was changed."
            )
        raise ExchangePkiError(
            f"certificate {thumbprint} is not on {server} (LocalMachine\\My); import it first "
            "(exchange.pki.certificate_import). Nothing was changed."
        )
    if certificate.is_pending_request:
        raise ExchangePkiError(
            f"{thumbprint} on {server} is a pending request, not a certificate; complete it first "
            "(exchange.pki.certificate_import). Nothing was changed."
        )
    if not certificate.in_my_store:
        raise ExchangePkiError(f"{thumbprint} on {server} is in store {certificate.store}, not My; Exchange cannot "
                               "use it. Nothing was changed.")
    if certificate.exchange is None or certificate.exchange.thumbprint is None:
        raise ExchangePkiError(
            f"Exchange did not describe {thumbprint} on {server} (Get-ExchangeCertificate failed or returned only "
            "RawData), so its services are unknown. Nothing was changed."
        )
    if certificate.has_private_key is False:
        raise ExchangePkiError(
            f"{thumbprint} on {server} has no private key; Exchange cannot serve TLS with it. Import it with its "
            "key (a PFX) or complete the request on the server that made it. Nothing was changed."
        )
    facts = certificate.facts
    if facts.is_expired(now):
        raise ExchangePkiError(
            f"{thumbprint} on {server} expired on {facts.not_after.isoformat()} (judged at "
            f"{now.isoformat()}); enable a valid certificate. Nothing was changed."
        )
    if facts.is_not_yet_valid(now):
        raise ExchangePkiError(
            f"{thumbprint} on {server} is valid only from {facts.not_before.isoformat()} (judged at "
            f"{now.isoformat()}). Nothing was changed."
        )
    if certificate.status in UNUSABLE_STATUSES:
        raise ExchangePkiError(f"Exchange reports {thumbprint} on {server} as {certificate.status}. "
                               "Nothing was changed.")
    if facts.allows_server_auth is False:
        raise ExchangePkiError(
            f"{thumbprint} on {server} does not allow TLS server authentication (its extended key usages are "
            f"{', '.join(facts.ekus or ())}). Nothing was changed."
        )


def usable_warnings(certificate: LocatedCertificate) -> list[str]:
    if certificate.status == "Untrusted":
        return [f"Exchange reports {certificate.thumbprint} as Untrusted: clients will not trust it either"]
    return []


def restore_problem(previous: LocatedCertificate | None, now: datetime.datetime) -> str | None:
    """Why the previous internal transport certificate could not be enabled for SMTP again (None: it can); ``now``
    is the server's time."""
    if previous is None or not previous.in_my_store or previous.is_pending_request:
        return "it is not in this server's certificate store"
    if previous.has_private_key is False:
        return "it has no private key"
    if previous.facts.is_expired(now) or previous.facts.is_not_yet_valid(now):
        return f"it is outside its validity ({previous.facts.not_before.isoformat()} to " \
               f"{previous.facts.not_after.isoformat()})"
    return None


def internal_transport(snapshot: ServerSnapshot) -> str | None:
    if not snapshot.has("transport_services"):
        return None
    service = snapshot.local_transport_service
    value = service.internal_transport_certificate_thumbprint if service else None
    return value.upper() if value else None


def current_holders(snapshot: ServerSnapshot, certificates: Mapping[str, LocatedCertificate],
                    services: Sequence[str]) -> dict[str, set[str]]:
    """Which certificates hold each service now: IIS by the :443 binding, the others by Exchange's flags."""
    holders: dict[str, set[str]] = {}
    for service in services:
        if service == "IIS":
            if not snapshot.has("iis_bindings"):
                raise ExchangePkiError(
                    "the IIS bindings could not be read, so it is unknown which certificate IIS uses: "
                    f"{snapshot.unavailable.get('host.iis_bindings')}. Nothing was changed."
                )
            holders[service] = {binding.certificate_hash.upper() for binding in front_end_bindings(snapshot)
                                if binding.certificate_hash}
        else:
            holders[service] = {thumbprint for thumbprint, certificate in certificates.items()
                                if certificate.in_my_store and service in certificate.services}
    return holders


def predicted_holders(holders: Mapping[str, set[str]], missing: Sequence[str], thumbprint: str) -> dict[str, set[str]]:
    """After the plan: IIS, IMAP and POP move to the certificate; SMTP is added to it (others keep SMTP)."""
    after = {service: set(found) for service, found in holders.items()}
    for service in missing:
        after[service] = {thumbprint} if service != "SMTP" else after.get(service, set()) | {thumbprint}
    return after


def iis_restart_mode(option: str | None, iis_moves: bool) -> str:
    """What restarts: only when this task moves IIS; by default the OWA and ECP app pools."""
    if not iis_moves:
        return "none"
    return option or "app_pools"


def restart_steps(mode: str, server: str) -> list[Step]:
    reason = f"{server}: OWA keeps the previous certificate until IIS restarts (exchange-facts: Enable, IIS)"
    if mode == "app_pools":
        return [Step(f"recycle_{pool}", "host.recycle_app_pool", {"name": pool}, reason) for pool in APP_POOLS]
    if mode == "iisreset":
        return [Step("iis_reset", "host.iis_reset", {}, reason)]
    return []
