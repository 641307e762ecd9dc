# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The renewal plan: what is due, grouped by certificate identity, in which order, when, and what waits.

Pure decisions on the controller, from the fleet's ``exchange_pki`` facts (docs/facts.md), a renewal policy
(:class:`RenewalPolicy`), the host variables that group hosts, and the ledger's earlier renewal outcomes. Nothing
here calls the clock or contacts a host: ``now`` is an argument, so the same input always gives the same plan
(and the same ``plan_id``).

- **Identity**: certificates with the same thumbprint (on any servers) are one identity; so are certificates with
  the same subject and the same set of DNS names (lower case, A-labels) on members of one group. Its id is
  ``"id-" + sha256(lower(subject) + "\\n" + "\\n".join(sorted(lower(names))))[:12]``, so a renewed certificate
  (same subject and names) keeps the id, and the ledger's records of earlier attempts still apply.
- **Candidates**: store My, not a cluster, Auth or Exchange self-signed default certificate, not a pending
  request, used by something (a service or a reference), with a private key on some server. The others are
  listed in ``not_renewed`` with the reason. An unused certificate that a ``renewal_failed`` outcome of the ledger
  names is a candidate too: a renewed certificate whose rollout was rolled back on every member it reached (so
  its rollout resumes with it, nothing is issued again).
- **Due**: fewer days left than ``renew_before_days``, or (when set) than ``renew_before_percentage`` of the
  lifetime, or a finding listed in ``replace_on`` about one of its thumbprints, or (an identity its policy entry
  issues with ACME) the ACME server's renewal information (RFC 9773 ARI, the ``ari`` input: what
  community.crypto.acme_certificate_renewal_info answered for its newest thumbprint) says its suggested renewal
  window has begun.
- **Superseded**: an older certificate of an identity left beside its newer one on the same servers (renewed with
  ``cleanup: keep``, or kept because something still named it) is not a reason to renew again: while the newer
  one is current and serves what the older one did there, the older one is listed in ``not_renewed``.
- **Groups**: the database availability group of each server (``server.dag``), a standalone server on its own,
  or the ``group`` of its host variables, which overrides both. Groups are rolled out in name order, members in
  host name order, ``rollout_batch`` at a time.
- **When**: outside every maintenance window a due item is ``deferred`` with the next window's start; after
  ``n`` consecutive failed renewals (ledger records of ``exchange.pki.ledger_record``) it waits
  ``initial_hours * 2**(n-1)`` hours (at most ``max_hours``) from the last failure (``backoff``), unless forced.
- **Blocked**: a group with a member whose facts could not be read does not renew (``blocked``).
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import DnsNameError, dns_name_to_a_label
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import (
    MASK,
    ChangeRecord,
    is_secret_key,
    read_ledger,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import CATALOGUE
from ansible_collections.exchange.pki.plugins.plugin_utils._report import (
    CENSORED_TEXT,
    NOT_COLLECTED_REASONS,
    clean_text,
    is_censored,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._text import escape_controls, has_control, one_line
from ansible_collections.exchange.pki.plugins.plugin_utils._time import (
    UTC,
    TimeRangeError,
    format_utc_datetime,
    parse_iso_datetime,
    parse_now_option,
    shifted,
    whole_days,
)

try:
    import zoneinfo
except ImportError:  # pragma: no cover - Python < 3.9 has no zoneinfo; only UTC windows then
    zoneinfo = None  # type: ignore[assignment]


class RenewalInputError(ExchangePkiError, ValueError):
    """The policy, the host variables or the facts hold a bad value; the message names the key."""


# --- constants ------------------------------------------------------------------------------------------------

#: The backends a ``policy.backends`` entry can name (the renewal role has one issue file per backend).
BACKENDS = ("adcs", "acme", "ownca", "manual")
#: The key sizes the policy accepts, and those the adcs backend (New-ExchangeCertificate -KeySize) accepts.
KEY_SIZES = (2048, 3072, 4096)
ADCS_KEY_SIZES = (2048, 4096)
STATUSES = ("due", "current", "deferred", "backoff", "blocked", "skipped")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NAMES = {name: index for index, name in enumerate(WEEKDAYS)}
_WEEKDAY_NAMES.update({name: index for index, name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))})

#: The ledger records the backoff reads: written by the renewal role through this module.
LEDGER_MODULE = "exchange.pki.ledger_record"
FAILED_ACTION = "renewal_failed"
DONE_ACTION = "renewal_done"

MAX_DAYS = 3650
MAX_BATCH = 10000
MAX_BACKOFF_HOURS = 8760  # one year
MAX_LIST = 100
MAX_TEXT = 253
_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_PLAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_THUMBPRINT = re.compile(r"^[0-9A-F]{40}$")

# exchange-facts New-ExchangeCertificate: "Renew: Get-ExchangeCertificate -Thumbprint X | New-ExchangeCertificate".
_DEFAULT_REASON = ("Exchange's self-signed default certificate: Exchange renews it itself "
                   "(on that server: Get-ExchangeCertificate -Thumbprint {thumbprint} | New-ExchangeCertificate)")
_AUTH_REASON = "the Auth certificate: exchange.pki.auth_certificate rotates it"
_CLUSTER_REASON = "a cluster certificate: managed by Windows"
_PENDING_REASON = "a pending certificate request, not a certificate: complete it with exchange.pki.certificate_import"
_STORE_REASON = "not in the My store: Exchange does not use it"
_UNUSED_REASON = "unused; remove it with exchange.pki.certificate_remove"
_NO_KEY_REASON = "no server holds its private key: it serves nothing; remove it with exchange.pki.certificate_remove"
_UNPARSEABLE_REASON = "its bytes cannot be parsed"
_SUPERSEDED_REASON = ("superseded by the renewed certificate {newest} on the same servers ({hosts}), which serves "
                      "what it served there (kept by cleanup: keep or still named by something); remove it with "
                      "exchange.pki.certificate_remove")
_ARI_PREFIX = "ACME renewal information (ARI)"
_AUTH_ROLES = frozenset({"auth_current", "auth_next", "auth_previous"})
_DEFAULT_ROLES = frozenset({"exchange_default", "wmsvc"})


# --- the policy -----------------------------------------------------------------------------------------------


def renewal_policy_argspec() -> dict[str, Any]:
    """The ``policy`` option of renewal_plan (core validates the types; :meth:`RenewalPolicy.from_options`
    the values). plugins/modules/renewal_plan.py documents exactly this."""
    return {
        "type": "dict",
        "options": {
            "renew_before_days": {"type": "int", "default": 30},
            "renew_before_percentage": {"type": "int"},
            "replace_on": {"type": "list", "elements": "str", "default": ["expired"]},
            "required_names": {"type": "list", "elements": "str", "default": []},
            "key_size": {"type": "int", "default": 2048, "choices": list(KEY_SIZES)},
            "backends": {
                "type": "list", "elements": "dict", "default": [],
                "options": {
                    "match": {"type": "dict", "options": {
                        "names": {"type": "list", "elements": "str"},
                        "subject": {"type": "str"},
                    }},
                    "backend": {"type": "str", "required": True, "choices": list(BACKENDS)},
                    "options": {"type": "dict", "default": {}},
                },
            },
            "windows": {
                "type": "list", "elements": "dict", "default": [],
                "options": {
                    "days": {"type": "list", "elements": "str"},
                    "start": {"type": "str", "required": True},
                    "end": {"type": "str", "required": True},
                    "timezone": {"type": "str", "default": "UTC"},
                },
            },
            "rollout_batch": {"type": "int", "default": 1},
            "group_concurrency": {"type": "int", "default": 1},
            "stop_on_failure": {"type": "str", "default": "group", "choices": ["group", "all"]},
            "cleanup": {"type": "str", "default": "remove_unreferenced", "choices": ["remove_unreferenced", "keep"]},
            "backoff": {"type": "dict", "options": {
                "initial_hours": {"type": "int", "default": 1},
                "max_hours": {"type": "int", "default": 32},
            }},
        },
    }


_POLICY_KEYS = tuple(renewal_policy_argspec()["options"])


@dataclasses.dataclass(frozen=True)
class Window:
    """A maintenance window: it opens on each of ``days`` at ``start`` (local time of ``timezone``) and closes at
    ``end`` the same day, or the next day when ``end`` is not after ``start`` (``22:00``-``04:00`` crosses
    midnight; ``start == end`` is a whole day)."""

    days: tuple[int, ...]
    start: datetime.time
    end: datetime.time
    timezone: str

    @property
    def tz(self) -> datetime.tzinfo:
        return _zone(self.timezone)

    def opening(self, day: datetime.date) -> tuple[datetime.datetime, datetime.datetime] | None:
        """The window opened on local ``day`` as (start, end) in UTC, or None when it does not open that day.

        Local times are wall-clock times: on a daylight-saving change a window keeps its local start and end
        (it is an hour shorter or longer); a start inside the skipped hour means the same instant one hour later.
        """
        if day.weekday() not in self.days:
            return None
        start = datetime.datetime.combine(day, self.start, tzinfo=self.tz)
        end_day = day if self.end > self.start else day + datetime.timedelta(days=1)
        end = datetime.datetime.combine(end_day, self.end, tzinfo=self.tz)
        return start.astimezone(UTC), end.astimezone(UTC)

    def as_dict(self) -> dict[str, Any]:
        return {"days": [WEEKDAYS[day] for day in self.days], "start": self.start.strftime("%H:%M"),
                "end": self.end.strftime("%H:%M"), "timezone": self.timezone}


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """One ``policy.backends`` entry: which identities it matches, the backend and its options (as given)."""

    index: int
    backend: str
    names: tuple[str, ...] | None = None
    subject: str | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def matches(self, subject: str, names: Sequence[str]) -> bool:
        """``names``: every DNS name matches one of the globs (and there is one); ``subject``: the regular
        expression is found in the subject; no criterion: every identity."""
        if self.names is not None:
            return bool(names) and all(any(fnmatch.fnmatchcase(name.lower(), glob) for glob in self.names)
                                       for name in names)
        if self.subject is not None:
            return re.search(self.subject, subject) is not None
        return True

    def describe(self) -> str:
        if self.names is not None:
            return f"policy.backends[{self.index}] (names {', '.join(self.names)})"
        if self.subject is not None:
            return f"policy.backends[{self.index}] (subject {self.subject})"
        return f"policy.backends[{self.index}] (default)"

    def as_dict(self) -> dict[str, Any]:
        match: dict[str, Any] = {}
        if self.names is not None:
            match["names"] = list(self.names)
        if self.subject is not None:
            match["subject"] = self.subject
        return {"match": match, "backend": self.backend, "options": masked(self.options)}


@dataclasses.dataclass(frozen=True)
class RenewalPolicy:
    """The renewal policy, validated (see :func:`renewal_policy_argspec` for the keys and defaults)."""

    renew_before_days: int = 30
    renew_before_percentage: int | None = None
    replace_on: tuple[str, ...] = ("expired",)
    required_names: tuple[str, ...] = ()
    key_size: int = 2048
    backends: tuple[BackendEntry, ...] = ()
    windows: tuple[Window, ...] = ()
    rollout_batch: int = 1
    group_concurrency: int = 1
    stop_on_failure: str = "group"
    cleanup: str = "remove_unreferenced"
    backoff_initial_hours: int = 1
    backoff_max_hours: int = 32

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> RenewalPolicy:
        """Validate the ``policy`` option (raw, or as core's argument spec left it: absent keys ``None``).

        Raises :class:`RenewalInputError` naming the key (``policy.windows[0].start``) and the problem.
        """
        if options is None:
            return cls()
        if not isinstance(options, Mapping):
            raise RenewalInputError(f"policy must be a dictionary, got {_kind(options)}")
        unknown = sorted(str(key) for key in options if key not in _POLICY_KEYS)
        if unknown:
            raise RenewalInputError(f"policy: unknown key(s) {', '.join(_shown(key) for key in unknown)}; "
                                    f"expected one of {', '.join(_POLICY_KEYS)}")
        given = {key: value for key, value in options.items() if value is not None}
        values: dict[str, Any] = {}
        if "renew_before_days" in given:
            values["renew_before_days"] = _int("policy.renew_before_days", given["renew_before_days"], 0, MAX_DAYS)
        if "renew_before_percentage" in given:
            values["renew_before_percentage"] = _int("policy.renew_before_percentage",
                                                     given["renew_before_percentage"], 1, 99)
        if "replace_on" in given:
            values["replace_on"] = _finding_ids(given["replace_on"])
        if "required_names" in given:
            values["required_names"] = _required_names(given["required_names"])
        if "key_size" in given:
            size = _int("policy.key_size", given["key_size"], 1, 1 << 16)
            if size not in KEY_SIZES:
                raise RenewalInputError(f"policy.key_size must be one of {', '.join(map(str, KEY_SIZES))}, got {size}")
            values["key_size"] = size
        if "backends" in given:
            values["backends"] = _backends(given["backends"])
        if "windows" in given:
            values["windows"] = _windows(given["windows"])
        for name in ("rollout_batch", "group_concurrency"):
            if name in given:
                values[name] = _int(f"policy.{name}", given[name], 1, MAX_BATCH)
        for name, choices in (("stop_on_failure", ("group", "all")), ("cleanup", ("remove_unreferenced", "keep"))):
            if name in given:
                values[name] = _choice(f"policy.{name}", given[name], choices)
        if "backoff" in given:
            values.update(_backoff(given["backoff"]))
        policy = cls(**values)
        policy.check_backend_key_size()
        return policy

    def check_backend_key_size(self) -> None:
        if self.key_size in ADCS_KEY_SIZES:
            return
        for entry in self.backends:
            if entry.backend == "adcs":
                raise RenewalInputError(
                    f"policy.key_size {self.key_size}: the adcs backend ({entry.describe()}) creates the key with "
                    f"New-ExchangeCertificate, which allows {' or '.join(map(str, ADCS_KEY_SIZES))} only"
                )

    def backend_for(self, subject: str, names: Sequence[str]) -> BackendEntry | None:
        """The first backend entry that matches, or None."""
        return next((entry for entry in self.backends if entry.matches(subject, names)), None)

    def as_dict(self) -> dict[str, Any]:
        """The normalised policy, as the plan returns it (secret-named backend options masked)."""
        return {
            "renew_before_days": self.renew_before_days,
            "renew_before_percentage": self.renew_before_percentage,
            "replace_on": list(self.replace_on),
            "required_names": list(self.required_names),
            "key_size": self.key_size,
            "backends": [entry.as_dict() for entry in self.backends],
            "windows": [window.as_dict() for window in self.windows],
            "rollout_batch": self.rollout_batch,
            "group_concurrency": self.group_concurrency,
            "stop_on_failure": self.stop_on_failure,
            "cleanup": self.cleanup,
            "backoff": {"initial_hours": self.backoff_initial_hours, "max_hours": self.backoff_max_hours},
        }


def masked(options: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of backend options with every secret-named value (password, passphrase, secret, ...) masked, at any
    depth: the plan is printed and logged, a CA key password must not be in it."""
    def mask(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: (MASK if is_secret_key(key) and item is not None and not isinstance(item, bool)
                          else mask(item)) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [mask(item) for item in value]
        return value
    return mask(options)


def _kind(value: Any) -> str:
    """How an error shows a bad value: short values as they are, others by type."""
    if value is None or isinstance(value, (bool, int, float)):
        text = repr(value)
        return text if len(text) <= 40 else f"an integer of {len(text)} digits"
    if isinstance(value, str):
        return _shown(value)
    return f"a {type(value).__name__}"


def _shown(text: str) -> str:
    """A string for an error message: quoted, control characters escaped, at most 80 characters."""
    shown = ascii(text) if has_control(text) else repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RenewalInputError(f"{key} must be an integer, got {_kind(value)}")
    if value < low or value > high:
        raise RenewalInputError(f"{key} must be an integer from {low} to {high}, got {_kind(value)}")
    return value


def _choice(key: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise RenewalInputError(f"{key} must be one of {', '.join(choices)}, got {_kind(value)}")
    return value


def _text(key: str, value: Any, *, max_chars: int = MAX_TEXT) -> str:
    """A one-line, non-empty string without control characters."""
    if not isinstance(value, str):
        raise RenewalInputError(f"{key} must be a string, got {_kind(value)}")
    if has_control(value):
        raise RenewalInputError(f"{key} {_shown(value)} contains a control character (CR, LF, NUL, ...)")
    if not value.strip():
        raise RenewalInputError(f"{key} must not be empty")
    if len(value) > max_chars:
        raise RenewalInputError(f"{key} is longer than {max_chars} characters")
    return value.strip()


def _list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise RenewalInputError(f"{key} must be a list, got {_kind(value)}")
    if len(value) > MAX_LIST:
        raise RenewalInputError(f"{key} has {len(value)} entries, at most {MAX_LIST} are allowed")
    return list(value)


def _mapping(key: str, value: Any, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise RenewalInputError(f"{key} must be a dictionary, got {_kind(value)}")
    unknown = sorted(str(name) for name in value if name not in allowed)
    if unknown:
        raise RenewalInputError(f"{key}: unknown key(s) {', '.join(_shown(name) for name in unknown)}; "
                                f"expected one of {', '.join(allowed)}")
    return value


def _finding_ids(value: Any) -> tuple[str, ...]:
    ids: dict[str, None] = {}
    for index, item in enumerate(_list("policy.replace_on", value)):
        text = _text(f"policy.replace_on[{index}]", item)
        if text not in CATALOGUE:
            raise RenewalInputError(f"policy.replace_on[{index}]: {_shown(text)} is not a finding id "
                                    "(docs/findings.md lists them)")
        ids[text] = None
    return tuple(ids)


def _required_names(value: Any) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for index, item in enumerate(_list("policy.required_names", value)):
        text = _text(f"policy.required_names[{index}]", item)
        try:
            names[dns_name_to_a_label(text)] = None
        except DnsNameError as error:
            raise RenewalInputError(f"policy.required_names[{index}]: {error}") from None
        except ExchangePkiError as error:  # the idna library is missing
            raise RenewalInputError(f"policy.required_names[{index}]: {error}") from None
    return tuple(names)


def _backends(value: Any) -> tuple[BackendEntry, ...]:
    entries = []
    for index, item in enumerate(_list("policy.backends", value)):
        key = f"policy.backends[{index}]"
        entry = _mapping(key, item, ("match", "backend", "options"))
        if entry.get("backend") is None:
            raise RenewalInputError(f"{key}.backend is required: one of {', '.join(BACKENDS)}")
        backend = _choice(f"{key}.backend", entry["backend"], BACKENDS)
        options = entry.get("options") or {}
        if not isinstance(options, Mapping) or not all(isinstance(name, str) for name in options):
            raise RenewalInputError(f"{key}.options must be a dictionary with string keys, got {_kind(options)}")
        try:
            json.dumps(options, allow_nan=False, sort_keys=True)
        except (TypeError, ValueError):
            raise RenewalInputError(f"{key}.options must hold only JSON values") from None
        match = _mapping(f"{key}.match", entry.get("match") or {}, ("names", "subject"))
        names = match.get("names")
        subject = match.get("subject")
        if names is not None and subject is not None:
            raise RenewalInputError(f"{key}.match: give names or subject, not both")
        globs = None
        if names is not None:
            globs = tuple(_text(f"{key}.match.names[{number}]", glob).lower()
                          for number, glob in enumerate(_list(f"{key}.match.names", names)))
            if not globs:
                raise RenewalInputError(f"{key}.match.names must name at least one glob (or leave match empty)")
        if subject is not None:
            subject = _text(f"{key}.match.subject", subject, max_chars=1000)
            try:
                re.compile(subject)
            except re.error as error:
                raise RenewalInputError(f"{key}.match.subject {_shown(subject)} is not a regular expression: "
                                        f"{error}") from None
        entries.append(BackendEntry(index, backend, globs, subject, dict(options)))
    return tuple(entries)


def _zone(name: str) -> datetime.tzinfo:
    if name in ("UTC", "Etc/UTC", "Z"):
        return UTC
    if zoneinfo is None:
        raise RenewalInputError(f"time zone {name!r}: this Python has no zoneinfo; use UTC")
    return zoneinfo.ZoneInfo(name)


def _timezone(key: str, value: Any) -> str:
    name = _text(key, value, max_chars=100)
    try:
        _zone(name)
    except RenewalInputError:
        raise
    except (ValueError, OSError, LookupError):  # ZoneInfoNotFoundError is a KeyError
        raise RenewalInputError(f"{key}: {_shown(name)} is not a known time zone; give an IANA name such as "
                                "Europe/Berlin, or UTC (the system's tzdata must know it)") from None
    return name


def _clock(key: str, value: Any) -> datetime.time:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(key, value, max_chars=10)
    match = _HH_MM.match(text)
    if match is None:
        hint = (" (an unquoted 22:00 in YAML is read as the number 1320: quote the time)"
                if text.isdigit() else "")
        raise RenewalInputError(f"{key} must be a time HH:MM from 00:00 to 23:59, got {_shown(text)}{hint}")
    return datetime.time(int(match.group(1)), int(match.group(2)))


def _windows(value: Any) -> tuple[Window, ...]:
    windows = []
    for index, item in enumerate(_list("policy.windows", value)):
        key = f"policy.windows[{index}]"
        entry = _mapping(key, item, ("days", "start", "end", "timezone"))
        for name in ("start", "end"):
            if entry.get(name) is None:
                raise RenewalInputError(f"{key}.{name} is required (HH:MM)")
        days_value = entry.get("days")
        if days_value is None:
            days: tuple[int, ...] = tuple(range(7))
        else:
            found = set()
            for number, day in enumerate(_list(f"{key}.days", days_value)):
                text = _text(f"{key}.days[{number}]", day, max_chars=20).lower()
                if text not in _WEEKDAY_NAMES:
                    raise RenewalInputError(f"{key}.days[{number}]: {_shown(text)} is not a weekday; "
                                            f"use {', '.join(WEEKDAYS)}")
                found.add(_WEEKDAY_NAMES[text])
            if not found:
                raise RenewalInputError(f"{key}.days must name at least one weekday (or be left out for every day)")
            days = tuple(sorted(found))
        windows.append(Window(days, _clock(f"{key}.start", entry["start"]), _clock(f"{key}.end", entry["end"]),
                              _timezone(f"{key}.timezone", entry.get("timezone") or "UTC")))
    return tuple(windows)


def _backoff(value: Any) -> dict[str, int]:
    entry = _mapping("policy.backoff", value, ("initial_hours", "max_hours"))
    initial = entry.get("initial_hours")
    maximum = entry.get("max_hours")
    initial = 1 if initial is None else _int("policy.backoff.initial_hours", initial, 1, MAX_BACKOFF_HOURS)
    maximum = 32 if maximum is None else _int("policy.backoff.max_hours", maximum, 1, MAX_BACKOFF_HOURS)
    if maximum < initial:
        raise RenewalInputError(f"policy.backoff.max_hours ({maximum}) must not be less than "
                                f"policy.backoff.initial_hours ({initial})")
    return {"backoff_initial_hours": initial, "backoff_max_hours": maximum}


# --- host variables -------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class HostVars:
    """What the inventory says about a host beyond its facts: its rollout group and its Exchange version."""

    group: str | None = None
    exchange_version: str | None = None


def parse_host_vars(value: Any) -> dict[str, HostVars]:
    """Validate ``host_vars`` (inventory host -> {group, exchange_version}); errors name the host and key."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RenewalInputError(f"host_vars must be a dictionary of host name to variables, got {_kind(value)}")
    result = {}
    for host, entry in value.items():
        name = _host_name("host_vars", host)
        if entry is None:
            result[name] = HostVars()
            continue
        fields = _mapping(f"host_vars.{name}", entry, ("group", "exchange_version"))
        group = fields.get("group")
        version = fields.get("exchange_version")
        result[name] = HostVars(
            group=None if group is None else _text(f"host_vars.{name}.group", group, max_chars=100),
            exchange_version=None if version is None else _text(f"host_vars.{name}.exchange_version",
                                                                str(version), max_chars=40),
        )
    return result


@dataclasses.dataclass(frozen=True)
class AriAdvice:
    """What community.crypto.acme_certificate_renewal_info answered about one certificate."""

    should_renew: bool
    supports_ari: bool
    msg: str


def parse_ari(value: Any) -> dict[str, AriAdvice]:
    """The ``ari`` option: thumbprint -> the result of acme_certificate_renewal_info for that certificate
    (``should_renew``, ``supports_ari``, ``msg``; other keys are ignored)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RenewalInputError(f"ari must be a dictionary of thumbprint to renewal information, got {_kind(value)}")
    advice: dict[str, AriAdvice] = {}
    for key, entry in value.items():
        thumbprint = str(key).upper() if isinstance(key, str) else ""
        if not _THUMBPRINT.match(thumbprint):
            raise RenewalInputError(f"ari: {_shown(str(key))} is not a thumbprint (40 hexadecimal digits)")
        if not isinstance(entry, Mapping):
            raise RenewalInputError(f"ari.{thumbprint} must be a dictionary, got {_kind(entry)}")
        flags = {}
        for name in ("should_renew", "supports_ari"):
            flag = entry.get(name, False)
            if not isinstance(flag, bool):
                raise RenewalInputError(f"ari.{thumbprint}.{name} must be true or false, got {_kind(flag)}")
            flags[name] = flag
        msg = entry.get("msg", "")
        if not isinstance(msg, str):
            raise RenewalInputError(f"ari.{thumbprint}.msg must be a string, got {_kind(msg)}")
        msg = one_line(msg)[:500]
        advice[thumbprint] = AriAdvice(msg=msg, **flags)
    return advice


def _host_name(key: str, host: Any) -> str:
    if not isinstance(host, str):
        raise RenewalInputError(f"{key}: host name {_kind(host)} is not a string")
    if has_control(host):
        raise RenewalInputError(f"{key}: host name {_shown(host)} contains a control character (CR, LF, NUL, ...)")
    if not host.strip() or len(host) > MAX_TEXT:
        raise RenewalInputError(f"{key}: host name {_shown(host)} must be 1 to {MAX_TEXT} characters")
    return host


# --- the ledger's renewal outcomes ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One earlier renewal outcome of an identity, from the ledger."""

    time: datetime.datetime
    failed: bool
    host: str | None = None
    message: str | None = None
    thumbprint: str | None = None  # the new certificate the outcome is about
    group: str | None = None


def renewal_outcomes(records: Iterable[ChangeRecord]) -> dict[str, list[Outcome]]:
    """Identity id -> its renewal outcomes in time order (records of :data:`LEDGER_MODULE` only)."""
    outcomes: dict[str, list[Outcome]] = {}
    for record in records:
        if record.module != LEDGER_MODULE or record.action not in (FAILED_ACTION, DONE_ACTION):
            continue
        identity = record.after.get("identity") if isinstance(record.after, Mapping) else None
        if not isinstance(identity, str) or not identity:
            continue
        failed_host = record.after.get("failed_host")
        thumbprint = record.after.get("thumbprint")
        group = record.after.get("group")
        outcomes.setdefault(identity, []).append(Outcome(
            record.time, record.action == FAILED_ACTION,
            failed_host if isinstance(failed_host, str) else record.host, clean_text(record.message),
            thumbprint.upper() if isinstance(thumbprint, str) and _THUMBPRINT.match(thumbprint.upper()) else None,
            group if isinstance(group, str) else None,
        ))
    for items in outcomes.values():
        items.sort(key=lambda outcome: outcome.time)  # stable: file order for equal times
    return outcomes


def read_outcomes(path: str) -> tuple[dict[str, list[Outcome]], list[str]]:
    """The renewal outcomes of the ledger at ``path`` (:func:`renewal_outcomes`) and warnings about the lines
    it skipped. A ledger that does not exist yet holds no outcome; one that cannot be read raises LedgerError."""
    if not os.path.lexists(path):
        return {}, []
    contents = read_ledger(path)
    warnings = [f"ledger {path}: line {line.line_number} skipped ({line.reason})" for line in contents.skipped[:5]]
    if len(contents.skipped) > 5:
        warnings.append(f"ledger {path}: {len(contents.skipped) - 5} more lines skipped")
    return renewal_outcomes(contents.records), warnings


def backoff_until(outcomes: Sequence[Outcome], policy: RenewalPolicy) -> tuple[int, datetime.datetime | None]:
    """(consecutive failures since the last success, the end of their backoff or None)."""
    failures = []
    for outcome in outcomes:
        failures = [*failures, outcome] if outcome.failed else []
    if not failures:
        return 0, None
    count = len(failures)
    hours = min(policy.backoff_initial_hours * 2 ** min(count - 1, 40), policy.backoff_max_hours)
    return count, shifted(failures[-1].time, datetime.timedelta(hours=hours))


# --- the facts ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cert:
    """One certificate on one host, the fields the plan uses (validated)."""

    host: str
    thumbprint: str
    subject: str
    issuer: str | None
    names: tuple[str, ...]  # as the fact gives them
    keys: frozenset[str]  # compared form: lower case A-labels
    not_after: str | None
    not_before: str | None
    days_remaining: int | None
    lifetime_days: int | None
    key_size: int | None
    self_signed: bool | None
    has_private_key: bool
    store: str
    status: str | None
    services: tuple[str, ...]
    roles: frozenset[str]
    references: tuple[Mapping[str, str], ...]

    @property
    def used(self) -> bool:
        return bool(self.services or self.references)


@dataclasses.dataclass(frozen=True)
class Host:
    """A collected host."""

    host: str
    server: str | None
    version: str | None
    dag: str | None
    certificates: tuple[Cert, ...]
    findings: tuple[Mapping[str, Any], ...]
    cluster_nodes: tuple[str, ...]


def _facts_error(host: str, field: str, problem: str) -> RenewalInputError:
    return RenewalInputError(f"facts.{host}: {field} {problem}")


def _opt_str(host: str, field: str, value: Any) -> str | None:
    if value is None or is_censored(value):
        return None
    if not isinstance(value, str):
        raise _facts_error(host, field, f"must be a string, got {_kind(value)}")
    return value


def _opt_int(host: str, field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _facts_error(host, field, f"must be an integer, got {_kind(value)}")
    return value


def _str_list(host: str, field: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise _facts_error(host, field, "must be a list of strings")
    return tuple(value)


def _name_key(name: str) -> str:
    try:
        return dns_name_to_a_label(name)
    except (DnsNameError, ExchangePkiError):
        return name.strip().lower()


def _cert(host: str, index: int, value: Any) -> Cert:
    field = f"certificates[{index}]"
    if not isinstance(value, Mapping):
        raise _facts_error(host, field, f"must be a dictionary, got {_kind(value)}")
    thumbprint = value.get("thumbprint")
    if not isinstance(thumbprint, str) or not _THUMBPRINT.match(thumbprint.upper()):
        raise _facts_error(host, f"{field}.thumbprint", f"must be 40 hexadecimal digits, got {_kind(thumbprint)}")
    names = _str_list(host, f"{field}.dns_names", value.get("dns_names"))
    references = value.get("references") or []
    if not isinstance(references, list) or not all(isinstance(item, Mapping) for item in references):
        raise _facts_error(host, f"{field}.references", "must be a list of dictionaries")
    for key in ("has_private_key", "is_self_signed"):
        if value.get(key) is not None and not isinstance(value.get(key), bool):
            raise _facts_error(host, f"{field}.{key}", f"must be true, false or null, got {_kind(value.get(key))}")
    return Cert(
        host=host,
        thumbprint=thumbprint.upper(),
        subject=_opt_str(host, f"{field}.subject", value.get("subject")) or "",
        issuer=_opt_str(host, f"{field}.issuer", value.get("issuer")),
        names=names,
        keys=frozenset(_name_key(name) for name in names),
        not_after=_opt_str(host, f"{field}.not_after", value.get("not_after")),
        not_before=_opt_str(host, f"{field}.not_before", value.get("not_before")),
        days_remaining=_opt_int(host, f"{field}.days_remaining", value.get("days_remaining")),
        lifetime_days=_opt_int(host, f"{field}.lifetime_days", value.get("lifetime_days")),
        key_size=_opt_int(host, f"{field}.key_size", value.get("key_size")),
        self_signed=value.get("is_self_signed"),
        has_private_key=value.get("has_private_key") is True,
        store=_opt_str(host, f"{field}.store", value.get("store")) or "My",
        status=_opt_str(host, f"{field}.status", value.get("status")),
        services=_str_list(host, f"{field}.services", value.get("services")),
        roles=frozenset(_str_list(host, f"{field}.roles", value.get("roles"))),
        references=tuple({"kind": str(item.get("kind")), "name": str(item.get("name"))} for item in references),
    )


def _collected_host(host: str, fact: Mapping[str, Any]) -> Host:
    server = fact.get("server") or {}
    if not isinstance(server, Mapping):
        raise _facts_error(host, "server", f"must be a dictionary, got {_kind(server)}")
    findings = fact.get("findings") or []
    if not isinstance(findings, list) or not all(isinstance(item, Mapping) for item in findings):
        raise _facts_error(host, "findings", "must be a list of dictionaries")
    cluster = fact.get("cluster")
    nodes: tuple[str, ...] = ()
    if isinstance(cluster, Mapping) and isinstance(cluster.get("nodes"), list):
        nodes = tuple(str(node.get("name")) for node in cluster["nodes"]
                      if isinstance(node, Mapping) and isinstance(node.get("name"), str))
    return Host(
        host=host,
        server=_opt_str(host, "server.name", server.get("name")),
        version=_opt_str(host, "server.version", server.get("version")),
        dag=_opt_str(host, "server.dag", server.get("dag")) or None,
        certificates=tuple(_cert(host, index, cert) for index, cert in enumerate(fact["certificates"])),
        findings=tuple(findings),
        cluster_nodes=nodes,
    )


def _at(host: Host, now: datetime.datetime) -> Host:
    """``host`` with every certificate's ``days_remaining`` counted from ``now`` (the plan's time) to its
    ``not_after``: the facts' own count is from when they were collected, so a plan for a later time (``now``)
    would otherwise count days that have passed by then. A certificate without ``not_after`` keeps the facts'
    count; a ``not_after`` that is no date is an error naming it."""
    certificates = []
    for index, cert in enumerate(host.certificates):
        if cert.not_after is not None:
            try:
                not_after = parse_iso_datetime(cert.not_after)
            except ValueError:
                raise _facts_error(host.host, f"certificates[{index}].not_after",
                                   f"must be an ISO-8601 date and time, got {_shown(cert.not_after)}") from None
            cert = dataclasses.replace(cert, days_remaining=whole_days(not_after, now))
        certificates.append(cert)
    return dataclasses.replace(host, certificates=tuple(certificates))


def _is_collected(fact: Any) -> bool:
    return isinstance(fact, Mapping) and not is_censored(fact) and isinstance(fact.get("certificates"), list)


def _not_collected_text(fact: Any) -> str:
    """Why a host has no usable fact, as ``unavailable_hosts`` says it."""
    if fact is None:
        return "no facts (the host was not inventoried)"
    if is_censored(fact):
        return CENSORED_TEXT
    if isinstance(fact, Mapping):
        record = fact.get("not_collected")
        if record is None and (fact.get("failed") or fact.get("unreachable")):
            record = {"reason": fact.get("failure_reason") or ("unreachable" if fact.get("unreachable") else "failed"),
                      "message": fact.get("msg")}
        if isinstance(record, Mapping):
            reason = clean_text(record.get("reason"))
            label = NOT_COLLECTED_REASONS.get(reason or "", reason or "not collected")
            message = clean_text(record.get("message"))
            return f"{label}: {message}" if message else label
        if is_censored(record):
            return CENSORED_TEXT
    return "no usable facts (no certificates list)"


def _version_tuple(version: str | None) -> tuple[int, ...] | None:
    if not version:
        return None
    match = re.match(r"^\s*(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


# --- building the plan ------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Group:
    name: str
    kind: str
    members: set[str] = dataclasses.field(default_factory=set)


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, first: str, second: str) -> None:
        roots = sorted((self.find(first), self.find(second)))
        self.parent[roots[1]] = roots[0]


def identity_id(subject: str, names: Iterable[str]) -> str:
    """The stable id of an identity: ``id-`` and 12 hex digits of its subject's and names' SHA-256."""
    text = subject.lower() + "\n" + "\n".join(sorted(name.lower() for name in names))
    return "id-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _exclusion(certs: Sequence[Cert], server_names: set[str]) -> str | None:
    """Why a thumbprint (its copies on every host) is not a renewal candidate, or None."""
    roles = frozenset().union(*(cert.roles for cert in certs))
    stores = {cert.store.lower() for cert in certs}
    subject = certs[0].subject
    common_name = subject[3:].split(",", 1)[0].strip().lower() if subject.upper().startswith("CN=") else ""
    self_signed = any(cert.self_signed for cert in certs)
    if "cluster" in roles or stores & {"pku2u", "clusterstore"}:
        return _CLUSTER_REASON
    # A former Auth certificate keeps Exchange's subject and its SMTP service flag after a rotation cleared it from
    # the Auth configuration (exchange-facts.md: default certificates, Auth certificate): still not the plan's.
    if roles & _AUTH_ROLES or common_name == "microsoft exchange server auth certificate":
        return _AUTH_REASON
    if roles & _DEFAULT_ROLES or (self_signed and (common_name in server_names or common_name.startswith("wmsvc-"))):
        return _DEFAULT_REASON
    if "pending_request" in roles or "request" in stores or any(cert.status == "PendingRequest" for cert in certs):
        return _PENDING_REASON
    if "my" not in stores:
        return _STORE_REASON
    if not any(cert.used for cert in certs):
        return _UNUSED_REASON
    return None


def build_plan(
    facts: Mapping[str, Any],
    *,
    policy: RenewalPolicy,
    now: datetime.datetime,
    host_vars: Mapping[str, HostVars] | None = None,
    outcomes: Mapping[str, Sequence[Outcome]] | None = None,
    force: bool = False,
    plan_id: str | None = None,
    ari: Mapping[str, AriAdvice] | None = None,
) -> dict[str, Any]:
    """The renewal plan (the module's result without ``changed``), JSON-able and deterministic."""
    host_vars = dict(host_vars or {})
    outcomes = outcomes or {}
    ari = ari or {}
    now = now.astimezone(UTC).replace(microsecond=0)
    if not isinstance(facts, Mapping):
        raise RenewalInputError(f"facts must be a dictionary of host name to fact, got {_kind(facts)}")
    hosts: dict[str, Host] = {}
    unavailable: dict[str, str] = {}
    for name in sorted({*facts, *host_vars}, key=lambda text: (str(text).lower(), str(text))):
        host = _host_name("facts", name)
        fact = facts.get(host)
        if _is_collected(fact):
            hosts[host] = _at(_collected_host(host, fact), now)
        else:
            unavailable[host] = _not_collected_text(fact)

    groups = _groups(hosts, unavailable, host_vars)
    group_of = {member: group.name for group in groups for member in group.members}
    group_order = {group.name: index for index, group in enumerate(groups)}
    server_names = {host.server.lower() for host in hosts.values() if host.server}

    by_thumbprint: dict[str, list[Cert]] = {}
    for host in hosts.values():
        for cert in host.certificates:
            by_thumbprint.setdefault(cert.thumbprint, []).append(cert)

    # The renewed certificates of failed rollouts (the ledger): unused where every member it reached was rolled back.
    rolled_back = {outcome.thumbprint for found in outcomes.values() for outcome in found
                   if outcome.failed and outcome.thumbprint}
    not_renewed: list[dict[str, Any]] = []
    candidates: dict[str, list[Cert]] = {}
    for thumbprint, certs in by_thumbprint.items():
        reason = _exclusion(certs, server_names)
        if reason is None or (reason == _UNUSED_REASON and thumbprint in rolled_back):
            candidates[thumbprint] = certs
        else:
            not_renewed.append(_not_renewed(certs, reason.format(thumbprint=thumbprint)))
    for host in hosts.values():
        for record in _unparseable(facts[host.host]):
            not_renewed.append({"thumbprint": record[0], "subject": None, "servers": [host.host],
                                "reason": f"{_UNPARSEABLE_REASON}: {record[1]}" if record[1] else _UNPARSEABLE_REASON})

    joined = _UnionFind()
    first_by_key: dict[tuple[str, str, frozenset[str]], str] = {}
    for thumbprint in sorted(candidates):
        joined.find(thumbprint)
        for cert in candidates[thumbprint]:
            key = (group_of[cert.host], cert.subject.lower(), cert.keys)
            if key in first_by_key:
                joined.union(first_by_key[key], thumbprint)
            else:
                first_by_key[key] = thumbprint
    members: dict[str, list[str]] = {}
    for thumbprint in sorted(candidates):
        members.setdefault(joined.find(thumbprint), []).append(thumbprint)

    identities = []
    for thumbprints in members.values():
        certs = [cert for thumbprint in thumbprints for cert in candidates[thumbprint]]
        if not any(cert.has_private_key for cert in certs):
            not_renewed.extend(_not_renewed(candidates[thumbprint], _NO_KEY_REASON) for thumbprint in thumbprints)
            continue
        identities.append(certs)

    ids = _identity_ids(identities, group_of, group_order)
    blocked_groups: dict[str, list[str]] = {}
    for host, text in unavailable.items():
        for group in groups:
            if host in group.members:
                blocked_groups.setdefault(group.name, []).append(f"member {host} could not be read ({text})")

    items = []
    for index, certs in enumerate(identities):
        superseded = _superseded(certs, hosts, policy, group_of, outcomes.get(ids[index], ()), ari)
        for thumbprint, holders in superseded.items():
            entry = _not_renewed([cert for cert in certs if cert.thumbprint == thumbprint], "")
            entry["reason"] = _SUPERSEDED_REASON.format(newest=_newest(certs).thumbprint, hosts=", ".join(holders))
            not_renewed.append(entry)
        kept = [cert for cert in certs if cert.thumbprint not in superseded]
        items.append(_item(ids[index], kept, policy=policy, now=now, hosts=hosts, host_vars=host_vars,
                           group_of=group_of, group_order=group_order, blocked_groups=blocked_groups,
                           outcomes=outcomes.get(ids[index], ()), force=force, ari=ari))
    items.sort(key=lambda item: (group_order[item["servers"][0]["group"]], item["identity"]))
    not_renewed.sort(key=lambda entry: ((entry["subject"] or "").lower(), entry["thumbprint"], entry["servers"]))

    summary = {status: sum(1 for item in items if item["status"] == status) for status in STATUSES}
    summary["not_renewed"] = len(not_renewed)
    content = {
        "policy": policy.as_dict(),
        "summary": summary,
        "groups": [{"name": group.name, "kind": group.kind, "members": _sorted_hosts(group.members)}
                   for group in groups],
        "items": items,
        "not_renewed": not_renewed,
        "unavailable_hosts": unavailable,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"),
                                       ensure_ascii=True).encode("ascii")).hexdigest()
    plan = {
        "plan_id": plan_id or f"{now.strftime('%Y%m%dT%H%MZ')}-{digest[:8]}",
        "generated_at": format_utc_datetime(now),
        **content,
    }
    plan["markdown"] = render_markdown(plan)
    return plan


def _sorted_hosts(hosts: Iterable[str]) -> list[str]:
    return sorted(hosts, key=lambda host: (host.lower(), host))


def _unparseable(fact: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    records = fact.get("unparseable_certificates") or []
    found = []
    if isinstance(records, list):
        for record in records:
            if isinstance(record, Mapping) and isinstance(record.get("thumbprint"), str):
                found.append((record["thumbprint"].upper(), clean_text(record.get("reason"))))
    return found


def _not_renewed(certs: Sequence[Cert], reason: str) -> dict[str, Any]:
    return {"thumbprint": certs[0].thumbprint, "subject": certs[0].subject,
            "servers": _sorted_hosts({cert.host for cert in certs}), "reason": reason}


def _groups(hosts: Mapping[str, Host], unavailable: Mapping[str, str],
            host_vars: Mapping[str, HostVars]) -> list[_Group]:
    """Every group, in rollout order (name order), with its members (collected and unavailable hosts)."""
    groups: dict[str, _Group] = {}

    def add(name: str, kind: str, member: str) -> None:
        group = groups.setdefault(name, _Group(name, kind))
        if kind == "group":
            group.kind = "group"
        group.members.add(member)

    for host in hosts.values():
        chosen = host_vars.get(host.host, HostVars()).group
        if chosen:
            add(chosen, "group", host.host)
        elif host.dag:
            add(host.dag, "dag", host.host)
        else:
            add(host.host, "standalone", host.host)
    # An unavailable host belongs to its host_vars group, or to the DAG whose collected members list it as a
    # cluster node (its inventory name or the first label of it equals the node's name); else it is on its own.
    for host in unavailable:
        chosen = host_vars.get(host, HostVars()).group
        if chosen:
            add(chosen, "group", host)
            continue
        short = host.split(".", 1)[0].lower()
        dags = {collected.host for collected in hosts.values()
                if collected.dag and any(node.lower() in (host.lower(), short) for node in collected.cluster_nodes)}
        targets = {name for name, group in groups.items() if group.members & dags}
        for name in targets:
            groups[name].members.add(host)
        if not targets:
            add(host, "standalone", host)
    return sorted(groups.values(), key=lambda group: (group.name.lower(), group.name))


def _identity_ids(identities: Sequence[Sequence[Cert]], group_of: Mapping[str, str],
                  group_order: Mapping[str, int]) -> list[str]:
    """The id of each identity; identities that would share one (the same subject and names in several groups
    with different certificates) get the ``-`` and 6 hex digits of their first group's name appended."""
    bases = []
    for certs in identities:
        newest = _newest(certs)
        bases.append(identity_id(newest.subject, newest.keys))
    counts: dict[str, int] = {}
    for base in bases:
        counts[base] = counts.get(base, 0) + 1
    ids = []
    for base, certs in zip(bases, identities):
        if counts[base] > 1:
            first = min((group_of[cert.host] for cert in certs), key=lambda name: group_order[name])
            base = f"{base}-{hashlib.sha256(first.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"
        ids.append(base)
    return ids


def _newest(certs: Sequence[Cert]) -> Cert:
    return max(certs, key=lambda cert: (cert.not_after or "", cert.not_before or "", cert.thumbprint))


def _days_text(days: int) -> str:
    if days < 0:
        return f"expired {-days} day{'s' if days != -1 else ''} ago"
    return f"{days} day{'s' if days != 1 else ''} left"


def _due_reasons(certs: Sequence[Cert], hosts: Mapping[str, Host], policy: RenewalPolicy,
                 newest: Cert) -> tuple[list[str], list[str]]:
    """(why it is due, why it is not) over every thumbprint of the identity."""
    by_thumbprint: dict[str, list[Cert]] = {}
    for cert in certs:
        by_thumbprint.setdefault(cert.thumbprint, []).append(cert)
    due: list[str] = []
    current: list[str] = []

    def where(thumbprint: str) -> str:
        if thumbprint == newest.thumbprint:
            return ""
        return f" on {thumbprint} ({', '.join(_sorted_hosts({cert.host for cert in by_thumbprint[thumbprint]}))})"

    for thumbprint in sorted(by_thumbprint, key=lambda item: (item != newest.thumbprint, item)):
        days = [cert.days_remaining for cert in by_thumbprint[thumbprint] if cert.days_remaining is not None]
        if not days:
            continue
        left = min(days)
        if left < policy.renew_before_days:
            due.append(f"{_days_text(left)}{where(thumbprint)} (renew_before_days {policy.renew_before_days})")
        elif thumbprint == newest.thumbprint:
            current.append(f"{_days_text(left)}; renew_before_days {policy.renew_before_days}")
        lifetime = next((cert.lifetime_days for cert in by_thumbprint[thumbprint] if cert.lifetime_days), None)
        pct = policy.renew_before_percentage
        if pct is not None and lifetime:
            if left * 100 < lifetime * pct:
                due.append(f"{_days_text(left)}{where(thumbprint)}, less than {pct}% of its {lifetime}-day lifetime "
                           f"(renew_before_percentage {pct})")
            elif thumbprint == newest.thumbprint:
                current.append(f"{left * 100 // lifetime}% of its {lifetime}-day lifetime left; "
                               f"renew_before_percentage {pct}")
    found = set()
    for host in {cert.host for cert in certs}:
        for finding in hosts[host].findings:
            if finding.get("id") in policy.replace_on and finding.get("thumbprint") in by_thumbprint:
                found.add(finding["id"])
    order = list(CATALOGUE)
    due.extend(f"finding {finding_id}" for finding_id in sorted(found, key=order.index))
    return due, current


def _window_state(policy: RenewalPolicy, now: datetime.datetime) -> tuple[bool, datetime.datetime | None]:
    """(whether a window is open now, the start of the next one)."""
    if not policy.windows:
        return True, None
    upcoming = []
    for window in policy.windows:
        today = now.astimezone(window.tz).date()
        for offset in range(-1, 9):
            opening = window.opening(today + datetime.timedelta(days=offset))
            if opening is None:
                continue
            start, end = opening
            if start <= now < end:
                return True, None
            if start > now:
                upcoming.append(start)
    return False, min(upcoming) if upcoming else None


def _resume(certs: Sequence[Cert], newest: Cert, holders: Sequence[str], group_of: Mapping[str, str],
            outcomes: Sequence[Outcome], newest_due: bool) -> dict[str, Any] | None:
    """Whether an earlier renewal of the identity is left unfinished, and how to finish it: the newest certificate
    (valid, not itself due, its key on some holder) is missing on some holder of the identity, or the ledger's
    last outcome about it in some group is ``renewal_failed``. Then nothing is issued: the certificate is exported
    from ``holder`` and rolled out to ``groups`` (those with a member lacking it or whose last outcome failed)."""
    if newest_due or newest.days_remaining is None or newest.days_remaining < 0:
        return None
    keyed = [host for host in holders
             if any(cert.host == host and cert.thumbprint == newest.thumbprint and cert.has_private_key
                    for cert in certs)]
    if not keyed:
        return None
    with_newest = {cert.host for cert in certs if cert.thumbprint == newest.thumbprint}
    missing = [host for host in holders if host not in with_newest]
    last: dict[str, Outcome] = {}
    for outcome in outcomes:
        if outcome.thumbprint == newest.thumbprint and outcome.group:
            last[outcome.group] = outcome
    failed_groups = {group for group, outcome in last.items() if outcome.failed}
    order = list(dict.fromkeys(group_of[host] for host in holders))
    groups = [group for group in order
              if group in failed_groups or any(group_of[host] == group for host in missing)]
    if not groups:
        return None
    reasons = []
    if missing:
        reasons.append(f"the renewed certificate {newest.thumbprint} is on {', '.join(sorted(with_newest))} "
                       f"but not on {', '.join(missing)}")
    failed = [group for group in groups if group in failed_groups]
    if failed:
        reasons.append(f"the last rollout of {newest.thumbprint} failed in {', '.join(failed)} (ledger)")
    return {"thumbprint": newest.thumbprint, "holder": keyed[0], "missing": missing, "groups": groups,
            "reason": "; ".join(reasons)}


def _ari_reason(newest: Cert, entry: BackendEntry | None,
                ari: Mapping[str, AriAdvice]) -> tuple[str | None, str | None]:
    """(why ARI makes it due, why ARI does not) for an identity its policy entry issues with ACME; the ACME server's
    answer counts only where it offered renewal information (supports_ari)."""
    advice = ari.get(newest.thumbprint)
    if entry is None or entry.backend != "acme" or advice is None or not advice.supports_ari:
        return None, None
    text = f"{_ARI_PREFIX}: {advice.msg}" if advice.msg else _ARI_PREFIX
    if advice.should_renew:
        return text, None
    return None, f"{_ARI_PREFIX}: the suggested renewal window has not begun"


def _newest_due(certs: Sequence[Cert], hosts: Mapping[str, Host], policy: RenewalPolicy, newest: Cert,
                ari_due: str | None) -> bool:
    """Whether the newest certificate itself is due (its days, its lifetime, a finding about it, ARI)."""
    days = [cert.days_remaining for cert in certs
            if cert.thumbprint == newest.thumbprint and cert.days_remaining is not None]
    return bool(ari_due) or bool(days) and (
        min(days) < policy.renew_before_days
        or (policy.renew_before_percentage is not None and bool(newest.lifetime_days)
            and min(days) * 100 < newest.lifetime_days * policy.renew_before_percentage)
    ) or any(finding.get("id") in policy.replace_on and finding.get("thumbprint") == newest.thumbprint
             for host in {cert.host for cert in certs} for finding in hosts[host].findings)


def _superseded(certs: Sequence[Cert], hosts: Mapping[str, Host], policy: RenewalPolicy,
                group_of: Mapping[str, str], outcomes: Sequence[Outcome],
                ari: Mapping[str, AriAdvice]) -> dict[str, list[str]]:
    """The older thumbprints of an identity that its newest certificate has replaced: thumbprint -> its hosts.

    An older certificate is superseded when the newest is valid and not itself due, no earlier rollout of it is left
    unfinished, and on every host that holds the older one the newest is there too (with its key) and holds every
    service and reference the older one has (so a member rolled back to the older one is not superseded)."""
    newest = _newest(certs)
    if newest.days_remaining is None or newest.days_remaining < 0:
        return {}
    entry = policy.backend_for(newest.subject, list(newest.names))
    if _newest_due(certs, hosts, policy, newest, _ari_reason(newest, entry, ari)[0]):
        return {}
    holders = sorted({cert.host for cert in certs})
    if _resume(certs, newest, holders, group_of, outcomes, False) is not None:
        return {}
    on_host = {(cert.host, cert.thumbprint): cert for cert in certs}
    found: dict[str, list[str]] = {}
    for thumbprint in sorted({cert.thumbprint for cert in certs} - {newest.thumbprint}):
        older = [cert for cert in certs if cert.thumbprint == thumbprint]
        replaced = True
        for cert in older:
            new = on_host.get((cert.host, newest.thumbprint))
            if new is None or not new.has_private_key or not set(cert.services) <= set(new.services) or not {
                    (ref["kind"], ref["name"]) for ref in cert.references} <= {
                    (ref["kind"], ref["name"]) for ref in new.references}:
                replaced = False
                break
        if replaced:
            found[thumbprint] = _sorted_hosts({cert.host for cert in older})
    return found


def _item(identity: str, certs: Sequence[Cert], *, policy: RenewalPolicy, now: datetime.datetime,
          hosts: Mapping[str, Host], host_vars: Mapping[str, HostVars], group_of: Mapping[str, str],
          group_order: Mapping[str, int], blocked_groups: Mapping[str, Sequence[str]],
          outcomes: Sequence[Outcome], force: bool, ari: Mapping[str, AriAdvice]) -> dict[str, Any]:
    newest = _newest(certs)
    holders = sorted({cert.host for cert in certs},
                     key=lambda host: (group_order[group_of[host]], host.lower(), host))
    item_groups = list(dict.fromkeys(group_of[host] for host in holders))
    servers = []
    versions = {}
    for host in holders:
        mine = [cert for cert in certs if cert.host == host]
        version = hosts[host].version or host_vars.get(host, HostVars()).exchange_version
        versions[host] = version
        references = {(ref["kind"], ref["name"]): ref for cert in mine for ref in cert.references}
        servers.append({
            "host": host,
            "server": hosts[host].server,
            "group": group_of[host],
            "thumbprints": sorted({cert.thumbprint for cert in mine}),
            "services": sorted({service for cert in mine for service in cert.services}),
            "references": [dict(references[key]) for key in sorted(references)],
            "exchange_version": version,
        })
    rollout = []
    for group in item_groups:
        in_group = [host for host in holders if group_of[host] == group]
        rollout.extend(in_group[start:start + policy.rollout_batch]
                       for start in range(0, len(in_group), policy.rollout_batch))

    legacy = [host for host in holders if (_version_tuple(versions[host]) or (0, 0)) < (15, 2)]
    entry = policy.backend_for(newest.subject, list(newest.names))
    with_key = [host for host in holders if any(cert.has_private_key for cert in certs if cert.host == host)]
    request_server = next(iter(with_key), holders[0])
    required = [name for name in policy.required_names if name not in {_name_key(old) for old in newest.names}]
    days = [cert.days_remaining for cert in certs
            if cert.thumbprint == newest.thumbprint and cert.days_remaining is not None]

    due, current = _due_reasons(certs, hosts, policy, newest)
    ari_due, ari_current = _ari_reason(newest, entry, ari)
    if ari_due:
        due.append(ari_due)
    elif ari_current:
        current.append(ari_current)
    newest_due = _newest_due(certs, hosts, policy, newest, ari_due)
    resume = _resume(certs, newest, holders, group_of, outcomes, newest_due)
    if resume is not None:
        # Finishing the earlier rollout is the work: the newest certificate is not renewed again.
        due = [*due, f"unfinished rollout: {resume['reason']}"]
    status = "due" if due else "current"
    reasons = due or current
    status_reason = None
    next_window = None
    until = None
    if due:
        blockers = [text for group in item_groups for text in blocked_groups.get(group, ())]
        failures, backoff_end = backoff_until(outcomes, policy)
        is_open, upcoming = _window_state(policy, now)
        if blockers:
            status, status_reason = "blocked", "; ".join(blockers)
        elif entry is None:
            status, status_reason = "skipped", "no backend entry matches"
        elif backoff_end is not None and now < backoff_end and not force:
            status = "backoff"
            until = format_utc_datetime(backoff_end)
            status_reason = (f"{failures} consecutive failed renewal{'s' if failures > 1 else ''}: "
                             f"waiting until {until}")
        elif not is_open:
            status = "deferred"
            next_window = format_utc_datetime(upcoming) if upcoming else None
            status_reason = f"outside the maintenance windows; the next opens {next_window or 'never'}"
        elif backoff_end is not None and now < backoff_end:
            reasons = [*reasons, f"backoff until {format_utc_datetime(backoff_end)} ignored (force)"]
    if status_reason:
        reasons = [*reasons, status_reason]

    return {
        "identity": identity,
        "status": status,
        "reasons": reasons,
        "status_reason": status_reason,
        "next_window": next_window,
        "backoff_until": until,
        "certificate": {
            "thumbprint": newest.thumbprint,
            "thumbprints": sorted({cert.thumbprint for cert in certs}),
            "subject": newest.subject,
            "dns_names": list(newest.names),
            "issuer": newest.issuer,
            "not_before": newest.not_before,
            "not_after": newest.not_after,
            "days_remaining": min(days) if days else None,
            "lifetime_days": newest.lifetime_days,
            "key_size": newest.key_size,
        },
        "issue": {
            "backend": entry.backend if entry else None,
            "backend_index": entry.index if entry else None,
            "options": masked(entry.options) if entry else {},
            "request_server": request_server,
            "subject": newest.subject,
            "dns_names": [*newest.names, *required],
            "key_size": policy.key_size,
            "pfx_encryption": "legacy" if legacy else "modern",
            "legacy_servers": legacy,
            "resume": resume,
        },
        "groups": item_groups,
        "servers": servers,
        "rollout": rollout,
    }


# --- time helpers for callers ---------------------------------------------------------------------------------


def parse_now(text: str | None, default: datetime.datetime) -> datetime.datetime:
    """The ``now`` option: an ISO-8601 date/time (``Z``, an offset, or naive meaning UTC)."""
    if text is None:
        return default
    try:
        return parse_now_option(text)
    except TypeError:
        raise RenewalInputError(f"now must be an ISO-8601 date and time, got {_kind(text)}") from None
    except TimeRangeError as error:
        raise RenewalInputError(f"now: {error}") from None
    except ValueError:
        raise RenewalInputError(f"now: {_shown(text)} is not an ISO-8601 date and time "
                                "(such as 2026-12-02T02:15:00Z)") from None


def check_plan_id(value: str | None) -> str | None:
    """The ``plan_id`` option: 1-64 characters of letters, digits, ``.``, ``_``, ``:`` and ``-``."""
    if value is None:
        return None
    if not isinstance(value, str) or not _PLAN_ID.match(value):
        raise RenewalInputError(f"plan_id must be 1 to 64 letters, digits, '.', '_', ':' or '-' (starting with a "
                                f"letter or digit), got {_kind(value)}")
    return value


# --- Markdown -------------------------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _md(value: Any) -> str:
    """Text for Markdown: one line, control characters escaped, Markdown punctuation backslash-escaped."""
    text = "-" if value is None else str(value)
    text = escape_controls(text)
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_item(item: Mapping[str, Any]) -> list[str]:
    cert = item["certificate"]
    issue = item["issue"]
    title = cert["dns_names"][0] if cert["dns_names"] else cert["subject"] or cert["thumbprint"]
    lines = [f"### {_md(title)} ({_md(item['identity'])}): {item['status']}", ""]
    lines.append(f"- **Why:** {'; '.join(_md(reason) for reason in item['reasons'])}")
    if item["next_window"]:
        lines.append(f"- **Next window:** {item['next_window']}")
    if item["backoff_until"]:
        lines.append(f"- **Backoff until:** {item['backoff_until']}")
    lines.append(
        f"- **Certificate:** {_md(cert['subject'])}, {_md(cert['thumbprint'])}, issued by {_md(cert['issuer'])}, "
        f"expires {_md(cert['not_after'])}; names {', '.join(_md(name) for name in cert['dns_names']) or '-'}"
    )
    if len(cert["thumbprints"]) > 1:
        lines.append(f"- **Replaces:** {', '.join(_md(thumbprint) for thumbprint in cert['thumbprints'])}")
    if issue["backend"]:
        legacy = (f" (Exchange 2016 or unknown version: {', '.join(_md(host) for host in issue['legacy_servers'])})"
                  if issue["legacy_servers"] else "")
        lines.append(
            f"- **Issue:** backend {_md(issue['backend'])} (policy.backends[{issue['backend_index']}]), request on "
            f"{_md(issue['request_server'])}, subject {_md(issue['subject'])}, names "
            f"{', '.join(_md(name) for name in issue['dns_names']) or '-'}, RSA {issue['key_size']}, "
            f"PFX {issue['pfx_encryption']}{legacy}"
        )
    resume = issue.get("resume")
    if resume:
        lines.append(
            f"- **Resume:** nothing is issued; {_md(resume['thumbprint'])} is exported from {_md(resume['holder'])} "
            f"and rolled out to {', '.join(_md(group) for group in resume['groups'])} ({_md(resume['reason'])})"
        )
    servers = "; ".join(
        f"{_md(server['host'])} ({_md(server['group'])}, {_md(server['exchange_version'])}): "
        f"{', '.join(_md(service) for service in server['services']) or 'no service'}"
        for server in item["servers"]
    )
    lines.append(f"- **Servers:** {servers}")
    order = " → ".join(f"{number}. {', '.join(_md(host) for host in batch)}"
                       for number, batch in enumerate(item["rollout"], start=1))
    lines.append(f"- **Order:** {order}")
    lines.append("")
    return lines


def render_markdown(plan: Mapping[str, Any]) -> str:
    """The plan for people: summary, every item that needs something (why, servers, backend, order), the current
    ones, what is not renewed and why, the hosts that could not be read."""
    summary = plan["summary"]
    counts = ", ".join(f"{status} {summary[status]}" for status in STATUSES)
    lines = [f"# Renewal plan {_md(plan['plan_id'])}", "",
             f"Generated {plan['generated_at']}. {counts}; not renewed {summary['not_renewed']}; "
             f"unavailable hosts {len(plan['unavailable_hosts'])}.", ""]
    groups = "; ".join(f"{_md(group['name'])} ({group['kind']}): {', '.join(_md(host) for host in group['members'])}"
                       for group in plan["groups"])
    lines.extend([f"Groups in rollout order: {groups or 'none'}.", ""])
    waiting = [item for item in plan["items"] if item["status"] != "current"]
    lines.extend(["## To renew", ""])
    if not waiting:
        lines.extend(["Nothing is due: nothing to do.", ""])
    for item in waiting:
        lines.extend(_md_item(item))
    current = [item for item in plan["items"] if item["status"] == "current"]
    if current:
        lines.extend(["## Current", "", "| Identity | Subject | Days left | Servers |", "|---|---|---|---|"])
        lines.extend(
            f"| {_md(item['identity'])} | {_md(item['certificate']['subject'])} | "
            f"{_md(item['certificate']['days_remaining'])} | "
            f"{', '.join(_md(server['host']) for server in item['servers'])} |"
            for item in current
        )
        lines.append("")
    if plan["not_renewed"]:
        lines.extend(["## Not renewed here", "", "| Subject | Thumbprint | Servers | Why |", "|---|---|---|---|"])
        lines.extend(
            f"| {_md(entry['subject'])} | {_md(entry['thumbprint'])} | {', '.join(_md(h) for h in entry['servers'])} "
            f"| {_md(entry['reason'])} |"
            for entry in plan["not_renewed"]
        )
        lines.append("")
    if plan["unavailable_hosts"]:
        lines.extend(["## Hosts that could not be read", ""])
        lines.extend(f"- {_md(host)}: {_md(text)}" for host, text in plan["unavailable_hosts"].items())
        lines.append("")
    return "\n".join(lines)
