# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.auth_certificate: the organisation's Auth (OAuth) certificate lifecycle.

Org-wide, run once. The read covers the server the task runs on (``_snapshot``: Get-AuthConfig,
Get-HybridConfiguration, its transport service and certificates) and every Exchange server of the organisation
(``Get-ExchangeCertificate -Server <name>``; a server whose read fails is unreachable). The rules are Microsoft's
(exchange-facts.md "Auth (OAuth) certificate" and "MonitorExchangeAuthCertificate decisions"):

- a due next certificate the AuthAdmin servicelet has not published yet is published;
- the current certificate within ``renew_before_days`` without a usable next one (missing, expired, or with
  120 days or fewer), or a staged next certificate that no server holds or that has expired: a new certificate
  is made on this server and staged ``lead_hours`` (>= 48) ahead;
- a current or next certificate missing on some servers is exported (PFX, random one-time password) from a
  server that has it and imported there (rebuilt with legacy encryption for Exchange 2016 targets);
- the previous certificate is cleared once the current one is usable everywhere;
- a retired Auth certificate (the Auth subject, none of Get-AuthConfig's current, next or previous as this run read
  it) that has expired is removed from every reachable server that holds it, unless something there references it
  (certificate_remove's checks: an IIS binding, another Exchange service than SMTP, the internal transport
  certificate, a connector or hybrid TlsCertificateName, a read that failed); ``remove_expired_retired: false``
  turns this off. One not yet expired stays: a partner may still hold tokens it signed;
- ``state: replaced`` with the current certificate expired or missing: the emergency procedure (a usable staged
  next certificate is published now, otherwise a new one is made effective now), then MSExchangeServiceHost is
  restarted and the OWA and ECP app pools recycled on this server.

Refusals (nothing changing is sent): a server cannot be reached (unless ``ignore_unreachable``), hybrid is
configured and the Auth certificate would change (unless ``acknowledge_hybrid``), ``state: present`` with the
current certificate expired or missing, the internal transport certificate of this server could not be kept.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.action.certificate_remove import READ_NAMES, REFERENCE_READS, judge
from ansible_collections.exchange.pki.plugins.plugin_utils._action import Applied, ArgumentSpec, ChangingAction
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CRYPTOGRAPHY_REQUIREMENT,
    PENDING_REQUEST_STATUS,
    is_cluster_certificate,
    parse_certificate,
    sha1_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import (
    ExchangeAccessDenied,
    ExchangePkiError,
    ExchangeToolsMissing,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import ChangeRecord, ledger_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._pfx import HAS_CRYPTOGRAPHY, legacy_compatible
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import Plan, ResultOf, Secret, Step, describe_value
from ansible_collections.exchange.pki.plugins.plugin_utils._references import build_references
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    LOCAL_SERVER,
    Batch,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import (
    ServerSnapshot,
    build_batch,
    collect_certificates,
    read_snapshot,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import has_control
from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime, whole_days
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    AuthConfig,
    ExchangeCertificateRecord,
    ExchangeServer,
    ExchangeVersion,
    parse_exchange_certificates,
    parse_exchange_server,
    parse_list,
    parse_receive_connector,
    parse_transport_service,
)

# --- Microsoft's Auth certificate (exchange-facts.md "Auth (OAuth) certificate") ----------------------------

AUTH_SUBJECT = "cn=Microsoft Exchange Server Auth Certificate"
AUTH_FRIENDLY_NAME = "Microsoft Exchange Server Auth Certificate"
AUTH_KEY_SIZE = 2048
#: Set-AuthConfig asks to confirm an effective date less than 48 hours ahead.
MIN_LEAD_HOURS = 48
MAX_LEAD_HOURS = 24 * 365
#: A next certificate with this many days left or fewer does not count (MonitorExchangeAuthCertificate).
NEXT_MIN_DAYS = 120
#: Bounded well below the certificate's five-year lifetime, so that a fresh certificate is never due at once.
MAX_RENEW_BEFORE_DAYS = 365
#: Added to the effective date: the time between the read and Set-AuthConfig (48 h must still be ahead then).
EFFECTIVE_MARGIN = datetime.timedelta(minutes=15)
SERVICE_HOST = "MSExchangeServiceHost"
APP_POOLS = ("MSExchangeOWAAppPool", "MSExchangeECPAppPool")
#: Server roles that hold the Auth certificate (MonitorExchangeAuthCertificate: Mailbox or Client Access, v15).
AUTH_ROLES = frozenset({"mailbox", "clientaccess"})

_SERVER_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,253}[A-Za-z0-9])?$")
_LOOKS_LIKE_PATH = re.compile(r"[\\/]")

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={
        **exchange_session_argspec(),
        **ledger_argspec(),
        "state": {"type": "str", "default": "present", "choices": ["present", "replaced"]},
        "renew_before_days": {"type": "int", "default": 60},
        "lead_hours": {"type": "int", "default": 49},
        "servers": {"type": "list", "elements": "str"},
        "ignore_unreachable": {"type": "bool", "default": False},
        "acknowledge_hybrid": {"type": "bool", "default": False},
        "remove_expired_retired": {"type": "bool", "default": True},
    },
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)


class AuthCertificateRefused(ExchangePkiError):
    """The module will not act (nothing changing is sent); the message says why and what to do."""


# --- options -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Options:
    state: str
    renew_before_days: int
    lead_hours: int
    servers: tuple[str, ...] | None
    ignore_unreachable: bool
    acknowledge_hybrid: bool
    remove_expired_retired: bool

    @classmethod
    def from_args(cls, args: Mapping[str, Any]) -> Options:
        """The validated options; ``AnsibleActionFail`` names the option that is wrong."""
        renew = args["renew_before_days"]
        if not 1 <= renew <= MAX_RENEW_BEFORE_DAYS:
            raise AnsibleActionFail(
                f"renew_before_days must be between 1 and {MAX_RENEW_BEFORE_DAYS} (days before the current Auth "
                f"certificate expires), got {renew}",
            )
        lead = args["lead_hours"]
        if lead < MIN_LEAD_HOURS:
            raise AnsibleActionFail(
                f"lead_hours must be at least {MIN_LEAD_HOURS}: Exchange needs 48 hours between staging a next Auth "
                f"certificate and its effective date, so that every server picks it up; got {lead}",
            )
        if lead > MAX_LEAD_HOURS:
            raise AnsibleActionFail(f"lead_hours must be at most {MAX_LEAD_HOURS} (one year), got {lead}")
        servers = None
        if args.get("servers") is not None:
            servers = tuple(dict.fromkeys(_server_name(item) for item in args["servers"]))
            if not servers:
                raise AnsibleActionFail("servers must name at least one Exchange server (leave it out for all of them)")
        return cls(args["state"], renew, lead, servers, args["ignore_unreachable"], args["acknowledge_hybrid"],
                   args["remove_expired_retired"])


def _server_name(value: Any) -> str:
    text = str(value).strip()
    if has_control(text):
        raise AnsibleActionFail(f"servers: {text!r} contains a control character (CR, LF, NUL, ...)")
    if _LOOKS_LIKE_PATH.search(text):
        raise AnsibleActionFail(f"servers: {text!r} is a path, not an Exchange server name (no / or \\)")
    if not _SERVER_NAME.match(text):
        raise AnsibleActionFail(
            f"servers: {text!r} is not an Exchange server name (letters, digits, '-', '_' and '.', at most 255)",
        )
    return text


# --- what the organisation holds -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Installed:
    """One certificate in a server's My store, as far as the Auth rules need it."""

    thumbprint: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    exportable: bool | None
    key_provider: str | None = None  # known for the server the task runs on only
    subject: str | None = None

    def valid(self, now: datetime.datetime) -> bool:
        return self.not_before <= now < self.not_after


def _installed(record: ExchangeCertificateRecord) -> Installed | None:
    """A certificate of Get-ExchangeCertificate; None for a pending request. RawData is the one field relied on:
    the thumbprint is its SHA-1, the dates are parsed from it when Exchange sent RawData only."""
    if record.status == PENDING_REQUEST_STATUS:
        return None
    not_before, not_after, subject = record.not_before, record.not_after, record.subject
    if not_before is None or not_after is None or subject is None:
        facts = parse_certificate(record.raw_data)
        not_before, not_after, subject = facts.not_before, facts.not_after, facts.subject
    return Installed(sha1_thumbprint(record.raw_data), not_before, not_after, record.private_key_exportable,
                     subject=subject)


@dataclasses.dataclass(frozen=True)
class ServerCertificates:
    """One Exchange server of the organisation: its certificates, or why they could not be read."""

    name: str
    version: ExchangeVersion | None
    local: bool
    certificates: Mapping[str, Installed] | None = None
    problem: str | None = None
    #: What the reference checks of a retired certificate's removal read on this server (certificate_remove's
    #: rules): the local server's whole snapshot; for another server its Get-ExchangeCertificate -Server records,
    #: its transport service and Receive connectors, and the organisation's objects of the local read.
    references: ServerSnapshot | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def reachable(self) -> bool:
        return self.certificates is not None

    def get(self, thumbprint: str | None) -> Installed | None:
        if not thumbprint or self.certificates is None:
            return None
        return self.certificates.get(thumbprint.upper())

    @property
    def legacy_pfx(self) -> bool:
        """Exchange 2016 (Windows Server 2016 or older) reads only 3DES/SHA-1 PFX files; unknown counts as old."""
        return self.version is None or (self.version.major, self.version.minor) < (15, 2)

    @property
    def target(self) -> Any:
        """The value of a -Server parameter naming this server."""
        return LOCAL_SERVER if self.local else self.name


@dataclasses.dataclass(frozen=True)
class Organisation:
    """What the read found: the server the task runs on (its full snapshot) and every Exchange server."""

    local: ServerSnapshot
    servers: tuple[ServerCertificates, ...]  # the local server first

    @property
    def server_name(self) -> str | None:
        return self.local.server_name

    @property
    def unavailable(self) -> Mapping[str, str]:
        return self.local.unavailable

    @property
    def now(self) -> datetime.datetime:
        """The Exchange server's clock: Set-AuthConfig and the servicelet judge effective dates by it."""
        if self.local.host_info is None:  # build_snapshot refuses a snapshot without it
            raise ExchangePkiError("the server's clock is unknown: host.info did not answer")
        return self.local.host_info.utc_now

    @property
    def reachable(self) -> tuple[ServerCertificates, ...]:
        return tuple(server for server in self.servers if server.reachable)

    @property
    def unreachable(self) -> tuple[ServerCertificates, ...]:
        return tuple(server for server in self.servers if not server.reachable)

    def find(self, thumbprint: str | None) -> Installed | None:
        """The certificate as the first reachable server holding it has it (the local server first)."""
        return next((found for found in (server.get(thumbprint) for server in self.reachable) if found), None)

    def holders(self, thumbprint: str | None) -> list[str]:
        return [server.name for server in self.reachable if server.get(thumbprint)]

    def missing(self, thumbprint: str | None) -> list[ServerCertificates]:
        return [server for server in self.reachable if not server.get(thumbprint)]


def _local_certificates(snapshot: ServerSnapshot) -> dict[str, Installed]:
    """The local server's certificates: Exchange's list, with the key facts of the store read."""
    store = {entry.thumbprint.upper(): entry for entry in snapshot.store_certificates if entry.store.casefold() == "my"}
    found: dict[str, Installed] = {}
    for record in snapshot.exchange_certificates or ():
        installed = _installed(record)
        if installed is not None:
            found[installed.thumbprint] = installed
    if snapshot.exchange_certificates is None:  # Exchange did not answer: the store read lists My alone
        for entry in store.values():
            facts = parse_certificate(entry.raw_data)
            found[facts.thumbprint] = Installed(facts.thumbprint, facts.not_before, facts.not_after, None,
                                                subject=facts.subject)
    for thumbprint, installed in found.items():
        entry = store.get(thumbprint)
        if entry is not None:
            exportable = installed.exportable if installed.exportable is not None else entry.key_exportable
            found[thumbprint] = dataclasses.replace(installed, exportable=exportable, key_provider=entry.key_provider)
    return found


def _holds_auth(server: ExchangeServer) -> bool:
    roles = {role.replace(" ", "").casefold() for role in server.server_role}
    right_role = not roles or bool(roles & AUTH_ROLES)
    return right_role and (server.version is None or server.version.major == 15)


# --- the PFX that travels between two servers ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ExportedPfx(ResultOf):
    """The PFX an Export-ExchangeCertificate step returned, as bytes for Import-ExchangeCertificate.

    For an Exchange 2016 target it is rebuilt with legacy 3DES/SHA-1 encryption when the source wrote AES. The
    bytes exist on the controller only between the two phases; they are never part of a result or record.
    """

    legacy: bool = False
    password: Secret | None = dataclasses.field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        rebuilt = ", rebuilt with legacy 3DES/SHA-1 encryption for Exchange 2016" if self.legacy else ""
        return f"<PFX exported by step {self.step}{rebuilt}>"

    def resolve(self, value: Any) -> bytes:
        text = super().resolve(value)
        try:
            data = base64.b64decode(str(text), validate=True)
        except (binascii.Error, ValueError):
            raise ExchangePkiError(f"step {self.step} returned no PFX (FileData is not base64)") from None
        if self.legacy:
            data = legacy_compatible(data, self.password.reveal() if self.password else None)
        return data


# --- the decision --------------------------------------------------------------------------------------------


def _auth_view(auth: Mapping[str, Any]) -> dict[str, Any]:
    return describe_value(dict(auth))


def _auth_state(auth: AuthConfig) -> dict[str, Any]:
    return {
        "current_thumbprint": auth.current_certificate_thumbprint,
        "next_thumbprint": auth.next_certificate_thumbprint,
        "next_effective_date": auth.next_certificate_effective_date,
        "previous_thumbprint": auth.previous_certificate_thumbprint,
    }


@dataclasses.dataclass
class _Draft:
    """The plan as it is being decided."""

    steps: list[Step] = dataclasses.field(default_factory=list)
    actions: list[str] = dataclasses.field(default_factory=list)
    imports: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)

    def act(self, action: str) -> None:
        if action not in self.actions:
            self.actions.append(action)


NEW = ResultOf("new", "Thumbprint")


def decide_auth(options: Options, org: Organisation, password: Secret, keep: frozenset[str] = frozenset()) -> Plan:
    """The plan that brings the organisation's Auth certificate to what ``options`` ask (see the module docstring).

    ``keep``: thumbprints never removed as retired besides Get-AuthConfig's (the confirming decision passes those
    the first read named, so a previous certificate this run cleared is not counted as left to remove).
    """
    local = org.local
    auth = local.auth_config
    if auth is None:
        raise ExchangePkiError(f"Get-AuthConfig could not be read: {local.unavailable.get('Get-AuthConfig')}")
    now = org.now
    draft = _Draft()
    _check_reachable(options, org, draft)

    current_tp, next_tp = auth.current_certificate_thumbprint, auth.next_certificate_thumbprint
    current, upcoming = org.find(current_tp), org.find(next_tp)
    current_ok = current is not None and current.valid(now)
    next_valid = upcoming is not None and now < upcoming.not_after
    next_usable = next_valid and whole_days(upcoming.not_after, now) > NEXT_MIN_DAYS  # type: ignore[union-attr]
    effective = auth.next_certificate_effective_date
    next_due = next_tp is not None and effective is not None and effective <= now

    publish = create = stage = emergency = False
    reason = ""
    if next_due and next_valid:
        publish = True
        emergency = options.state == "replaced" and not current_ok
        reason = (f"the next Auth certificate {next_tp} became effective on {format_utc_datetime(effective)}"  # type: ignore[arg-type]
                  " and the AuthAdmin servicelet has not published it yet")
    elif not current_ok:
        problem = _current_problem(current_tp, current, now)
        if options.state == "present":
            raise AuthCertificateRefused(
                f"{problem}. That needs the emergency procedure (a certificate effective now, published at once, "
                f"{SERVICE_HOST} restarted and the OWA/ECP app pools recycled): run this task with state=replaced",
            )
        emergency = True
        if next_usable and not next_due:
            publish = True
            reason = f"{problem}; the staged next Auth certificate {next_tp} is published now instead"
        else:
            create = True
            reason = f"{problem}; a new Auth certificate is made effective now"
    else:
        days = whole_days(current.not_after, now)  # type: ignore[union-attr]
        if next_tp is not None and not next_valid:
            create = stage = True
            reason = (f"the staged next Auth certificate {next_tp} "
                      + ("has expired" if upcoming is not None else "is installed on no reachable server"))
        elif days <= options.renew_before_days and not next_usable:
            create = stage = True
            why_next = ("no next certificate is staged" if next_tp is None else
                        f"the next one ({next_tp}) has only {whole_days(upcoming.not_after, now)} days left")  # type: ignore[union-attr]
            reason = (f"the current Auth certificate {current_tp} expires in {days} days "
                      f"(renew_before_days {options.renew_before_days}) and {why_next}")

    effective_date = now + datetime.timedelta(hours=options.lead_hours) + EFFECTIVE_MARGIN
    if create or publish:
        _check_hybrid(options, local, draft, when=effective_date if stage else None)
    new_tp: str | ResultOf = NEW
    if create:
        new_tp = _create(org, draft, reason, exclude={current_tp, next_tp, auth.previous_certificate_thumbprint})

    # Distribute what stays in use: the next certificate about to be published, else the current one and a
    # next one that is not being replaced.
    distribute = []
    if publish:
        distribute.append(("next", next_tp))
    else:
        if current_ok:
            distribute.append(("current", current_tp))
        if not create and next_valid:
            distribute.append(("next", next_tp))
    for role, thumbprint in distribute:
        _distribute(org, draft, role, thumbprint, password)
    if create:
        if new_tp is NEW:
            _distribute_new(org, draft, password)
        else:
            _distribute(org, draft, "new", new_tp, password)  # type: ignore[arg-type]
    legacy = sorted({target for entry in draft.imports for target in entry["servers"]
                     if next(server for server in org.servers if server.name == target).legacy_pfx})
    if legacy and not HAS_CRYPTOGRAPHY:
        raise AuthCertificateRefused(
            f"{', '.join(legacy)} run Exchange 2016, whose Windows reads only legacy 3DES/SHA-1 PFX files: copying "
            "the Auth certificate there rebuilds the PFX on the controller, which needs the Python library "
            f"{CRYPTOGRAPHY_REQUIREMENT}; install it where Ansible runs. Nothing was changed",
        )

    before = _auth_state(auth)
    after = dict(before)
    if stage:
        draft.steps.append(Step("stage", "Set-AuthConfig",
                                {"NewCertificateThumbprint": new_tp, "NewCertificateEffectiveDate": effective_date},
                                f"{reason}: the new certificate is staged to take effect {options.lead_hours} hours "
                                "from now, when the AuthAdmin servicelet publishes it"))
        draft.act("staged")
        after.update(next_thumbprint=new_tp, next_effective_date=effective_date)
        if current is not None and effective_date >= current.not_after:
            draft.warnings.append(
                f"the current Auth certificate {current_tp} expires on {format_utc_datetime(current.not_after)}, "
                f"before the new one takes effect ({format_utc_datetime(effective_date)}): OAuth fails in between; "
                "once it has expired, run this task with state=replaced",
            )
    if emergency and create:
        draft.steps.append(Step("set_new", "Set-AuthConfig",
                                {"NewCertificateThumbprint": new_tp, "NewCertificateEffectiveDate": now, "Force": True},
                                f"{reason}: the new certificate is set effective now (-Force confirms the date less "
                                "than 48 hours ahead)"))
        draft.steps.append(Step("publish", "Set-AuthConfig", {"PublishCertificate": True},
                                "the emergency procedure publishes the new certificate at once"))
        draft.act("published")
        after.update(previous_thumbprint=after["current_thumbprint"], current_thumbprint=new_tp,
                     next_thumbprint=None, next_effective_date=None)
    elif publish:
        draft.steps.append(Step("publish", "Set-AuthConfig", {"PublishCertificate": True}, reason))
        draft.act("published")
        after.update(previous_thumbprint=after["current_thumbprint"], current_thumbprint=next_tp,
                     next_thumbprint=None, next_effective_date=None)
    if after["previous_thumbprint"] is not None and (current_ok or publish or emergency):
        draft.steps.append(Step("clear", "Set-AuthConfig", {"ClearPreviousCertificate": True},
                                f"the previous Auth certificate {after['previous_thumbprint']} is no longer needed: "
                                f"the current one is valid and installed on every reachable server"))
        draft.act("cleared")
        after["previous_thumbprint"] = None
    if emergency and draft.steps:
        _restart(org, draft)
    _key_warnings(org, auth, draft)
    protected = {thumbprint.upper() for thumbprint in (current_tp, next_tp, auth.previous_certificate_thumbprint, *keep)
                 if thumbprint}
    retired = _retire(options, org, protected, draft)

    holders_before = {"current": org.holders(current_tp), "next": org.holders(next_tp)}
    everywhere = [server.name for server in org.reachable]
    copied = {thumbprint for _role, thumbprint in distribute}
    if create:
        copied.add(new_tp)
    holders_after = {
        role: [] if thumbprint is None else everywhere if thumbprint in copied else org.holders(thumbprint)
        for role, thumbprint in (("current", after["current_thumbprint"]), ("next", after["next_thumbprint"]))
    }
    plan_before: dict[str, Any] = {"auth_config": before, "installed_on": holders_before}
    plan_after: dict[str, Any] = {"auth_config": after, "installed_on": holders_after}
    removals = {entry["thumbprint"]: entry["removed"] for entry in retired if entry["removed"]}
    if removals:  # the diff and the ledger record name every removal: which certificate, from which servers
        plan_before["retired_installed_on"] = {thumbprint: org.holders(thumbprint) for thumbprint in removals}
        plan_after["retired_installed_on"] = {
            thumbprint: [name for name in org.holders(thumbprint) if name not in removed]
            for thumbprint, removed in removals.items()}
    result = {
        "auth_config": {"before": _auth_view(before), "after": _auth_view(after)},
        "actions": list(draft.actions),
        "imports": describe_value(draft.imports),
        "thumbprint": new_tp if create and isinstance(new_tp, str) else None,
        "server_status": _server_status(org, current_tp, next_tp),
        "retired": retired,
    }
    return Plan("auth_certificate", tuple(draft.steps), before=plan_before, after=plan_after, result=result,
                warnings=tuple(draft.warnings))


def _with_thumbprint(value: Any, thumbprint: str) -> Any:
    """``value`` with the placeholder of the new certificate's thumbprint replaced by the real one."""
    if value is NEW:
        return thumbprint
    if isinstance(value, Mapping):
        return {key: _with_thumbprint(item, thumbprint) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_thumbprint(item, thumbprint) for item in value]
    return value


def _current_problem(thumbprint: str | None, current: Installed | None, now: datetime.datetime) -> str:
    if thumbprint is None:
        return "no current Auth certificate is configured (Get-AuthConfig names none)"
    if current is None:
        return f"the current Auth certificate {thumbprint} is installed on no reachable Exchange server"
    if now >= current.not_after:
        return f"the current Auth certificate {thumbprint} expired on {format_utc_datetime(current.not_after)}"
    return f"the current Auth certificate {thumbprint} is not valid before {format_utc_datetime(current.not_before)}"


def _check_reachable(options: Options, org: Organisation, draft: _Draft) -> None:
    unreachable = org.unreachable
    if not unreachable:
        return
    listing = "; ".join(f"{server.name} ({server.problem})" for server in unreachable)
    if not options.ignore_unreachable:
        raise AuthCertificateRefused(
            f"these Exchange servers cannot be reached: {listing}. Nothing was changed: the Auth certificate must be "
            "on every Mailbox server and its state there cannot be checked. Bring them back, or set "
            "ignore_unreachable=true to act on the others and import it there by running this task again later",
        )
    draft.warnings.append(
        f"ignored unreachable Exchange servers (ignore_unreachable): {listing}. Run this task again once they are "
        "back: the Auth certificates must be imported there before the next one takes effect",
    )


def _check_hybrid(options: Options, local: ServerSnapshot, draft: _Draft, *, when: datetime.datetime | None) -> None:
    """Refuse to change the Auth certificate of a hybrid organisation unless acknowledged (then warn).

    ``when``: the effective date of a staged certificate; None when the change takes effect now.
    """
    if local.has("hybrid") and local.hybrid is None:
        return
    what = (f"a hybrid configuration ({local.hybrid.name or 'Hybrid Configuration'}) is configured"
            if local.hybrid is not None else
            f"Get-HybridConfiguration could not be read ({local.unavailable.get('Get-HybridConfiguration')}), so "
            "hybrid cannot be ruled out")
    if not options.acknowledge_hybrid:
        raise AuthCertificateRefused(
            f"{what}: Exchange Online trusts the organisation's Auth certificate, so changing it breaks hybrid OAuth "
            "(free/busy, mailbox moves) until the Hybrid Configuration Wizard is run again. Nothing was changed; set "
            "acknowledge_hybrid=true to go ahead and then rerun the Hybrid Configuration Wizard",
        )
    moment = "now" if when is None else (
        f"once the new certificate is current (from {format_utc_datetime(when)}, at the AuthAdmin run after it)")
    draft.warnings.append(
        f"{what}: rerun the Hybrid Configuration Wizard {moment}, so that Exchange Online trusts the new Auth "
        "certificate",
    )


def _unused_auth_certificate(org: Organisation, exclude: set[str | None]) -> Installed | None:
    """An Auth certificate on this server that nothing uses yet, long-lived, exportable, with a CSP key: what an
    earlier run made before it failed. It is staged instead of making another one."""
    now = org.now
    candidates = [
        installed for installed in (org.servers[0].certificates or {}).values()
        if _is_auth_subject(installed.subject) and installed.thumbprint not in exclude and installed.valid(now)
        and whole_days(installed.not_after, now) > NEXT_MIN_DAYS and installed.exportable is not False
        and installed.key_provider != "cng"
    ]
    return max(candidates, key=lambda installed: installed.not_after, default=None)


def _create(org: Organisation, draft: _Draft, reason: str, exclude: set[str | None]) -> str | ResultOf:
    """New-ExchangeCertificate on this server; the internal transport certificate is put back at once.

    Returns the new certificate's thumbprint: the step's result, or an unused one an earlier run left.
    """
    local = org.local
    name = local.server_name
    unused = _unused_auth_certificate(org, exclude)
    if unused is not None:
        service = local.local_transport_service
        if service is not None and service.internal_transport_certificate_thumbprint == unused.thumbprint:
            # an earlier run made it with -Services SMTP -Force and could not put the previous one back
            raise AuthCertificateRefused(
                f"the Auth certificate {unused.thumbprint} on {name}, made by an earlier run and not in use, is "
                f"{name}'s internal transport certificate: that run could not make the previous one the internal "
                "transport certificate again (its step keep_internal_transport failed or its answer was lost; that "
                "run's message and plan name the previous certificate). Nothing was changed. Make the previous "
                "certificate the internal transport certificate again (Enable-ExchangeCertificate -Thumbprint "
                "<previous> -Services SMTP -Force), then run this task again",
            )
        draft.warnings.append(
            f"the Auth certificate {unused.thumbprint} on {name}, made earlier and not in use, is used instead of "
            "making another one",
        )
        return unused.thumbprint
    if not local.has("transport_services"):
        raise AuthCertificateRefused(
            f"Get-TransportService could not be read on {name} ({local.unavailable.get('Get-TransportService')}): "
            "the internal transport certificate, which creating the Auth certificate with -Services SMTP -Force "
            "replaces, could not be put back. Nothing was changed",
        )
    service = local.local_transport_service
    internal = service.internal_transport_certificate_thumbprint if service is not None else None
    installed = org.servers[0].get(internal)
    if internal is None or installed is None or not installed.valid(org.now):
        state = ("has no internal transport certificate" if internal is None else
                 f"has no valid internal transport certificate ({internal} is "
                 + ("not installed there" if installed is None else "expired") + ")")
        raise AuthCertificateRefused(
            f"{name} {state}: the new Auth certificate, made with -Services SMTP, would become it. Nothing was "
            "changed. Recreate the internal transport certificate first (New-ExchangeCertificate -KeySize 2048 "
            "-PrivateKeyExportable $true -FriendlyName <server> -DomainName <server> -IncludeServerFQDN "
            "-Services SMTP -Force) or run this task on another Exchange server",
        )
    draft.steps.append(Step(
        "new", "New-ExchangeCertificate",
        {"Server": LOCAL_SERVER, "KeySize": AUTH_KEY_SIZE, "PrivateKeyExportable": True, "SubjectName": AUTH_SUBJECT,
         "FriendlyName": AUTH_FRIENDLY_NAME, "DomainName": [], "Services": ["SMTP"], "Force": True},
        f"{reason}: Microsoft's Auth certificate (RSA {AUTH_KEY_SIZE}, CSP key, exportable) is made on {name}",
    ))
    draft.steps.append(Step(
        "keep_internal_transport", "Enable-ExchangeCertificate",
        {"Server": LOCAL_SERVER, "Thumbprint": internal, "Services": ["SMTP"], "Force": True},
        f"New-ExchangeCertificate -Services SMTP -Force made the Auth certificate {name}'s internal transport "
        f"certificate: {internal} is made it again",
    ))
    draft.act("created")
    return NEW


def _source(org: Organisation, thumbprint: str) -> ServerCertificates | None:
    """A reachable server that holds the certificate with a key that can be exported (the local one first)."""
    holders = [server for server in org.reachable if server.get(thumbprint)]
    return next((server for server in holders if server.get(thumbprint).exportable is True),  # type: ignore[union-attr]
                next((server for server in holders if server.get(thumbprint).exportable is None), None))  # type: ignore[union-attr]


def _distribute(org: Organisation, draft: _Draft, role: str, thumbprint: str | None, password: Secret) -> None:
    targets = org.missing(thumbprint)
    if thumbprint is None or not targets:
        return
    source = _source(org, thumbprint)
    names = [server.name for server in targets]
    if source is None:
        hint = " (or replace it: state=replaced once it is unusable)" if role == "current" else ""
        raise AuthCertificateRefused(
            f"the {role} Auth certificate {thumbprint} is missing on {', '.join(names)}, and no reachable server holds "
            f"it with an exportable private key, so it cannot be copied there{hint}. Nothing was changed",
        )
    export = f"export_{role}"
    draft.steps.append(Step(export, "Export-ExchangeCertificate",
                            {"Server": source.target, "Thumbprint": thumbprint, "Password": password},
                            f"the {role} Auth certificate is missing on {', '.join(names)}: "
                            f"exported from {source.name}"))
    _imports(draft, export, role, thumbprint, targets, password, source.name)


def _distribute_new(org: Organisation, draft: _Draft, password: Secret) -> None:
    targets = [server for server in org.reachable if not server.local]
    if not targets:
        return
    draft.steps.append(Step("export_new", "Export-ExchangeCertificate",
                            {"Server": LOCAL_SERVER, "Thumbprint": NEW, "Password": password},
                            "the new Auth certificate must be on every Exchange server"))
    _imports(draft, "export_new", "new", None, targets, password, org.servers[0].name)


def _imports(draft: _Draft, export: str, role: str, thumbprint: str | None, targets: Sequence[ServerCertificates],
             password: Secret, source: str) -> None:
    for index, target in enumerate(targets, start=1):
        data = ExportedPfx(export, "FileData", legacy=target.legacy_pfx, password=password)
        draft.steps.append(Step(f"import_{role}_{index}", "Import-ExchangeCertificate",
                                {"Server": target.target, "FileData": data, "Password": password,
                                 "PrivateKeyExportable": True},
                                f"the {role} Auth certificate is missing on {target.name}: imported from {source}"))
    draft.imports.append({"certificate": role, "thumbprint": thumbprint or NEW,
                          "servers": [target.name for target in targets]})
    draft.act("imported")


# --- retired Auth certificates --------------------------------------------------------------------------------

#: The reads of certificate_remove's reference checks that only the server the task runs on can answer (host
#: operations). For another server IIS bindings come from Get-ExchangeCertificate -Server (IISServices: the IIS
#: sites the certificate is bound to there), and a certificate with the Auth subject is no cluster certificate.
LOCAL_ONLY_READS = frozenset({"iis_bindings", "cluster"})
#: The organisation's objects of the local read that also tell what points at another server's certificates.
ORGANISATION_READS = ("auth_config", "send_connectors", "hybrid")
#: The Auth certificate's own Exchange service (New-ExchangeCertificate -Services SMTP); any other keeps it.
AUTH_SERVICE = "SMTP"


def _add_reference_reads(batch: Batch, name: str, index: int) -> None:
    """What else points at another server's certificates: its transport service and Receive connectors."""
    batch.add("Get-TransportService", {"Identity": name}, id=f"org.transport.{index}")
    batch.add("Get-ReceiveConnector", {"Server": name}, id=f"org.receive.{index}")


def _reference_snapshot(name: str, version: ExchangeVersion | None, records: Sequence[ExchangeCertificateRecord],
                        answer: Any, index: int, local: ServerSnapshot) -> ServerSnapshot:
    """Another server as certificate_remove's reference checks see it (``_references.build_references``)."""
    unavailable = {READ_NAMES[read]: local.unavailable[READ_NAMES[read]]
                   for read in ORGANISATION_READS if not local.has(read)}
    values: dict[str, Any] = {"transport_services": (), "receive_connectors": ()}
    for read, operation_id, parse, kind in (
            ("transport_services", f"org.transport.{index}", parse_transport_service, "TransportService[]"),
            ("receive_connectors", f"org.receive.{index}", parse_receive_connector, "ReceiveConnector[]")):
        error = answer[operation_id].exception()
        if error is not None:
            unavailable[READ_NAMES[read]] = str(error)
            continue
        try:
            values[read] = parse_list(answer[operation_id].value, parse, kind)
        except (TypeError, ValueError) as problem:
            unavailable[READ_NAMES[read]] = str(problem)
    server = ExchangeServer(name=name, fqdn=None, admin_display_version=None, version=version, server_role=(),
                            site=None, edition=None, is_exchange_trial_edition=None)
    return ServerSnapshot(exchange_server=server, exchange_certificates=tuple(records),
                          auth_config=local.auth_config, transport_services=values["transport_services"],
                          send_connectors=local.send_connectors, receive_connectors=values["receive_connectors"],
                          hybrid=local.hybrid, unavailable=unavailable)


def _is_auth_subject(subject: str | None) -> bool:
    return (subject or "").replace(" ", "").casefold() == AUTH_SUBJECT.replace(" ", "").casefold()


def _removal_blockers(server: ServerCertificates, thumbprint: str, now: datetime.datetime) -> list[str]:
    """Why ``thumbprint`` must stay on ``server``: certificate_remove's reference checks, stricter on services.

    Every reference blocks except the SMTP flag New-ExchangeCertificate gave the Auth certificate when another valid
    SMTP certificate takes it over (certificate_remove's stand-in rule); any other Exchange service, an IIS binding,
    the internal transport certificate, a connector or hybrid TlsCertificateName, or a read that failed keeps it.
    ``now`` is the Exchange server's clock (a stand-in must be valid by it).
    """
    snapshot = server.references
    if snapshot is None:
        return ["what references it could not be read"]
    collected = collect_certificates(snapshot)
    certificate = collected.parsed.get(thumbprint)
    if certificate is None or certificate.exchange is None or certificate.exchange.thumbprint is None:
        return ["Get-ExchangeCertificate did not describe it (or returned only RawData): its services and IIS "
                "bindings are unknown"]
    if is_cluster_certificate(certificate):
        return ["it is a failover-cluster certificate"]
    graph = build_references(snapshot, collected.parsed)
    reasons = []
    for reference in graph.references_of(thumbprint):
        if reference.kind == "exchange_service" and reference.name.upper() != AUTH_SERVICE:
            reasons.append(f"Exchange service {reference.name} is enabled on it")
            continue
        found = judge(reference, certificate, collected.parsed, graph.connectors, now)
        if found.blocking:
            reasons.append(found.describe())
    if not any(reference.kind == "iis_binding" for reference in graph.references_of(thumbprint)):
        reasons += [f"IIS binding {site} (IISServices)" for site in certificate.exchange.iis_services]
    for read, what in REFERENCE_READS.items():
        if (server.local or read not in LOCAL_ONLY_READS) and not snapshot.has(read):
            reasons.append(f"unknown: {what} ({READ_NAMES[read]}: {snapshot.unavailable.get(READ_NAMES[read])})")
    return reasons


def _retire(options: Options, org: Organisation, protected: set[str], draft: _Draft) -> list[dict[str, Any]]:
    """Remove each expired retired Auth certificate from every reachable server that holds it, unless referenced.

    Retired: the Auth certificate's subject, and none of Get-AuthConfig's current, next or previous certificates
    (``protected``). One that has not expired yet stays: a partner application may still hold tokens it signed.
    """
    if not options.remove_expired_retired:
        return []
    now = org.now
    entries: dict[str, dict[str, Any]] = {}
    for server in org.reachable:
        for installed in (server.certificates or {}).values():
            if not _is_auth_subject(installed.subject) or installed.thumbprint in protected:
                continue
            entry = entries.setdefault(installed.thumbprint, {
                "thumbprint": installed.thumbprint, "not_after": format_utc_datetime(installed.not_after),
                "expired": now >= installed.not_after, "removed": [], "kept": [], "skipped": [],
            })
            if not entry["expired"]:
                reason = (f"not expired (until {entry['not_after']}): a partner application may still hold OAuth "
                          "tokens it signed; it is removed once it has expired")
            else:
                blockers = _removal_blockers(server, installed.thumbprint, now)
                reason = "still referenced: " + "; ".join(blockers) if blockers else None
            if reason is None:
                entry["removed"].append(server)
            else:
                entry["kept"].append({"server": server.name, "reason": reason})
    retired = []
    for number, entry in enumerate(sorted(entries.values(), key=lambda item: item["thumbprint"]), start=1):
        thumbprint = entry["thumbprint"]
        if entry["expired"]:
            entry["skipped"] = [server.name for server in org.unreachable]
        for index, server in enumerate(entry["removed"], start=1):
            draft.steps.append(Step(
                f"remove_{number}_{index}", "Remove-ExchangeCertificate",
                {"Server": server.target, "Thumbprint": thumbprint},
                f"the retired Auth certificate {thumbprint} expired on {entry['not_after']}, is no longer in "
                f"Get-AuthConfig and nothing on {server.name} references it: removed from {server.name}",
            ))
            draft.act("removed")
        entry["removed"] = [server.name for server in entry["removed"]]
        if entry["removed"] and entry["skipped"]:
            draft.warnings.append(
                f"the expired retired Auth certificate {thumbprint} could not be looked for on "
                f"{', '.join(entry['skipped'])} (unreachable): a run after they are back removes it there too",
            )
        retired.append(entry)
    return retired


def _restart(org: Organisation, draft: _Draft) -> None:
    name = org.server_name
    draft.steps.append(Step("restart_service_host", "host.restart_service", {"name": SERVICE_HOST},
                            f"the emergency procedure restarts {SERVICE_HOST} on {name} (the AuthAdmin servicelet)"))
    for pool in APP_POOLS:
        draft.steps.append(Step(f"recycle_{pool}", "host.recycle_app_pool", {"name": pool},
                                f"OWA and ECP keep the old Auth certificate until {pool} is recycled on {name}"))
    draft.act("restarted")
    others = [server.name for server in org.reachable if not server.local]
    if others:
        draft.warnings.append(
            f"restart {SERVICE_HOST} and recycle {' and '.join(APP_POOLS)} (or run iisreset) on {', '.join(others)} "
            f"too: this task restarts them on {name} only, where it runs",
        )


def _key_warnings(org: Organisation, auth: AuthConfig, draft: _Draft) -> None:
    local = org.servers[0]
    for role, thumbprint in (("current", auth.current_certificate_thumbprint),
                             ("next", auth.next_certificate_thumbprint)):
        installed = local.get(thumbprint)
        if installed is not None and installed.key_provider == "cng":
            draft.warnings.append(
                f"the {role} Auth certificate {thumbprint} has a CNG key on {local.name} (auth_key_not_csp): Exchange "
                "needs a CSP key for it; New-ExchangeCertificate makes one, so let the next rotation replace it",
            )


def _server_status(org: Organisation, current: str | None, upcoming: str | None) -> list[dict[str, Any]]:
    return [
        {"name": server.name, "reachable": server.reachable, "problem": server.problem,
         "has_current": bool(server.get(current)) if server.reachable and current else None,
         "has_next": bool(server.get(upcoming)) if server.reachable and upcoming else None}
        for server in org.servers
    ]


# --- the action plugin ----------------------------------------------------------------------------------------


class ActionModule(ChangingAction):
    """exchange.pki.auth_certificate: read the organisation, decide, apply in phases, confirm, record."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._others: tuple[tuple[str, ExchangeVersion | None], ...] = ()
        self._confirmed: Organisation | None = None
        self._made: str | None = None  # the thumbprint New-ExchangeCertificate returned
        self._protected: frozenset[str] | None = None  # Get-AuthConfig's thumbprints as the first read found them
        self._password = Secret(secrets.token_urlsafe(32))  # one PFX password per task, never shown

    def failure_note(self, plan: Plan, applied: Applied) -> str | None:
        """The emergency procedure's restarts that did not happen once the new certificate was made current: a rerun
        finds it current and restarts nothing, so the administrator must. When publishing it failed (or never ran),
        a rerun does the whole procedure again, restarts included: no note."""
        del plan  # the outcomes say it all
        published = any(outcome.step.id == "publish" and outcome.status in ("ok", "unknown")
                        for outcome in applied.outcomes)
        restarts = [outcome for outcome in applied.outcomes if outcome.step.id == "restart_service_host"
                    or outcome.step.operation == "host.recycle_app_pool"]
        if not published or not restarts or all(outcome.status == "ok" for outcome in restarts):
            return None
        return (f"The new Auth certificate may already be current, and then running this task again restarts "
                f"nothing: restart {SERVICE_HOST} and recycle {' and '.join(APP_POOLS)} (or run iisreset) on this "
                "server yourself, or OAuth and Outlook on the web keep using the old certificate")

    # -- read --------------------------------------------------------------------------------------------
    def read(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> Organisation:  # type: ignore[override]
        """The local server's read plus the organisation's servers and each one's certificates.

        With ``servers`` given, one round trip: their certificate reads travel with the local read. Without it, two:
        Get-ExchangeServer first (every Mailbox/Client Access server of Exchange 15), then one
        Get-ExchangeCertificate -Server per server.
        """
        options = Options.from_args(args)  # before anything is sent
        batch = build_batch()
        batch.add("Get-ExchangeServer", {}, id="org.servers")
        for index, name in enumerate(options.servers or ()):
            batch.add("Get-ExchangeCertificate", {"Server": name}, id=f"org.certificates.{index}")
            if options.remove_expired_retired:
                _add_reference_reads(batch, name, index)
        answer = self.run_batch(batch, task_vars, args)
        local = read_snapshot(answer)
        me = self._local(local)
        listed = self._listed_servers(answer)
        by_name = {}
        for server in listed:
            by_name[server.name.casefold()] = server
            if server.fqdn:
                by_name[server.fqdn.casefold()] = server
        itself = {me.name.casefold(), *(name.casefold() for name in (local.exchange_server.fqdn,) if name)}
        if options.servers is None:
            self._others = tuple((server.name, server.version) for server in listed
                                 if server.name.casefold() not in itself and _holds_auth(server))
            return Organisation(local, self._read_servers(args, task_vars, local))
        servers = [me]
        others = []
        for index, name in enumerate(options.servers):
            if name.casefold() in itself:
                continue
            known = by_name.get(name.casefold())
            if known is None:
                raise AnsibleActionFail(
                    f"servers: {name} is not an Exchange server of this organisation (Get-ExchangeServer lists "
                    f"{', '.join(server.name for server in listed) or 'none'})",
                )
            if known.name.casefold() in (other.casefold() for other, _version in others):
                continue
            others.append((known.name, known.version))
            servers.append(self._server(known.name, known.version, answer, index, local,
                                        options.remove_expired_retired))
        self._others = tuple(others)
        return Organisation(local, tuple(servers))

    @staticmethod
    def _listed_servers(answer: Any) -> tuple[ExchangeServer, ...]:
        error = answer["org.servers"].exception()
        if isinstance(error, (ExchangeAccessDenied, ExchangeToolsMissing)):
            raise error
        if error is not None:
            raise ExchangePkiError(f"the organisation's Exchange servers could not be listed: {error}")
        return parse_list(answer["org.servers"].value, parse_exchange_server, "ExchangeServer[]")

    def _read_servers(self, args: dict[str, Any], task_vars: Mapping[str, Any],
                      local: ServerSnapshot) -> tuple[ServerCertificates, ...]:
        """The local server from its snapshot, the others with one Get-ExchangeCertificate -Server each."""
        servers = [self._local(local)]
        references = Options.from_args(args).remove_expired_retired
        if self._others:
            batch = Batch()
            for index, (name, _version) in enumerate(self._others):
                batch.add("Get-ExchangeCertificate", {"Server": name}, id=f"org.certificates.{index}")
                if references:
                    _add_reference_reads(batch, name, index)
            answer = self.run_batch(batch, task_vars, args)
            servers += [self._server(name, version, answer, index, local, references)
                        for index, (name, version) in enumerate(self._others)]
        return tuple(servers)

    @staticmethod
    def _local(local: ServerSnapshot) -> ServerCertificates:
        server = local.exchange_server
        if server is None:
            raise ExchangePkiError(
                "the Exchange server this task runs on could not be identified (Get-ExchangeServer: "
                f"{local.unavailable.get('Get-ExchangeServer', 'not found')}); run it on an Exchange Mailbox server",
            )
        version = server.version or (local.host_info.exchange_version if local.host_info else None)
        return ServerCertificates(server.name, version, True, _local_certificates(local), references=local)

    @staticmethod
    def _server(name: str, version: ExchangeVersion | None, answer: Any, index: int, local: ServerSnapshot,
                references: bool) -> ServerCertificates:
        """One server's Get-ExchangeCertificate -Server: its certificates, or unreachable (any other failure)."""
        operation_id = f"org.certificates.{index}"
        error = answer[operation_id].exception()
        if error is None:
            records = parse_exchange_certificates(answer[operation_id].value)
            found = (_installed(record) for record in records)
            snapshot = _reference_snapshot(name, version, records, answer, index, local) if references else None
            return ServerCertificates(name, version, False, {item.thumbprint: item for item in found if item},
                                      references=snapshot)
        if isinstance(error, (ExchangeAccessDenied, ExchangeToolsMissing)):
            raise error  # the session itself failed: nothing is known about any server
        return ServerCertificates(name, version, False, None, str(error))

    # -- decide / confirm -------------------------------------------------------------------------------------
    def decide(self, args: dict[str, Any], snapshot: Any, task_vars: Mapping[str, Any]) -> Plan:
        auth = snapshot.local.auth_config
        if auth is not None and self._protected is None:
            self._protected = frozenset(thumbprint.upper() for thumbprint in (
                auth.current_certificate_thumbprint, auth.next_certificate_thumbprint,
                auth.previous_certificate_thumbprint) if thumbprint)
        return decide_auth(Options.from_args(args), snapshot, self._password)

    def confirm(self, args: dict[str, Any], plan: Plan, after: ServerSnapshot,
                task_vars: Mapping[str, Any]) -> list[str]:
        """Read the other servers again (the local re-read came with the last phase) and decide afresh."""
        del plan
        try:
            org = Organisation(after, self._read_servers(args, task_vars, after))
            again = decide_auth(Options.from_args(args), org, self._password, keep=self._protected or frozenset())
        except ExchangePkiError as error:
            return [f"the organisation could not be checked again: {error}"]
        self._confirmed = org
        return [f"{step.operation}: {step.reason}" for step in again.steps if step.changes]

    def applied_result(self, plan: Plan, applied: Any) -> dict[str, Any]:
        """The thumbprint New-ExchangeCertificate returned (the result, the diff and the record name it)."""
        del plan
        made = next((outcome for outcome in applied.outcomes if outcome.step.id == "new" and outcome.status == "ok"),
                    None)
        if made is None:
            return {}
        self._made = str(NEW.resolve(made.value)).upper()
        return {"thumbprint": self._made}

    def change_record(self, plan: Plan, args: Mapping[str, Any], task_vars: Mapping[str, Any], *,
                      server: str | None, changed: bool, message: str | None) -> ChangeRecord:
        """The ledger record names the thumbprint New-ExchangeCertificate returned, not a placeholder."""
        if self._made is not None:
            plan = dataclasses.replace(plan, after=_with_thumbprint(plan.after, self._made))
        return super().change_record(plan, args, task_vars, server=server, changed=changed, message=message)

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        org = self.read(args, task_vars)
        plan = self.decide(args, org, task_vars)
        result = self.carry_out(plan, args, task_vars, server=org.server_name, warnings=org.unavailable)
        made = self._made
        if made is not None:  # the placeholder of the plan becomes the real thumbprint
            if "diff" in result:
                result["diff"]["after"] = describe_value(_with_thumbprint(plan.after, made))
            for entry in result.get("imports") or ():
                if entry["certificate"] == "new":
                    entry["thumbprint"] = made
        if self._confirmed is not None and self._confirmed.local.auth_config is not None:
            result["auth_config"] = {
                "before": result["auth_config"]["before"],
                "after": _auth_view(_auth_state(self._confirmed.local.auth_config)),
            }
            result["server_status"] = _server_status(
                self._confirmed, self._confirmed.local.auth_config.current_certificate_thumbprint,
                self._confirmed.local.auth_config.next_certificate_thumbprint)
        return result
