# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The audit ledger: one JSON line per change, appended to a controller file that many forks share.

Every changing module returns a ``change_record`` (:meth:`ChangeRecord.as_dict`) and, when its ``ledger``
option names a controller path, appends the record to that file with :func:`append_records`. The format,
an example and how to read it are in the collection's docs/ledger.md.

Guarantees of :func:`append_records` (safety invariant 7; invariant 4 through :func:`scrub`):

- one record is one line: JSON escapes CR, LF, NUL and every other control character, and this module also
  escapes U+0085, U+2028 and U+2029 (line breaks to some readers), so no value can split a record;
- the lines of one call are written with one ``os.write`` under an exclusive ``flock`` of the file, then
  ``fsync``-ed, so concurrent processes (Ansible forks) never interleave or lose lines on a local filesystem;
- a file left without a final newline (a writer killed mid-write) gets one before the new lines, so the torn
  line stays on its own and :func:`read_ledger` skips it;
- a new file is created with mode 0600; an existing file's mode is never changed;
- a symbolic link is followed to an existing regular file (an administrator may point the ledger elsewhere); a
  dangling link, a directory, a FIFO, a device or a socket is refused, and so is a missing parent directory;
- any failure raises :class:`LedgerError` naming the path and the records that were not written; a failed
  write is undone (the file is truncated back) where the filesystem allows it.

Records never carry secrets: modules build them with :func:`make_record`, which passes ``before``, ``after``
and ``message`` through :func:`scrub` with the task's secrets.

The ``change_record`` return value, for a changing module's RETURN documentation (copy, then adjust the
``action`` values and the ``before``/``after`` keys to the module)::

    change_record:
      description:
        - What the task did (or, in check mode, would do), as one audit record.
        - With O(ledger) the same record is appended to that file as one JSON line; the format is described
          in the collection's C(docs/ledger.md).
        - Passwords and private keys never appear in it.
      returned: always
      type: dict
      contains:
        version:
          description: The record format version.
          type: int
          sample: 1
        time:
          description: When the change was made, ISO 8601 UTC with a C(Z) suffix.
          type: str
          sample: "2026-11-25T08:00:00Z"
        host:
          description: The inventory host name of the task, or V(null).
          type: str
          sample: ex01
        server:
          description: The Exchange server changed, or V(organization) for an organization-wide change.
          type: str
          sample: EX01
        module:
          description: The module that made the change.
          type: str
          sample: exchange.pki.certificate_services
        action:
          description: What was done, a short verb phrase.
          type: str
          sample: enable_services
        result:
          description: V(changed), V(unchanged), V(failed), or V(check_mode) (what check mode would change).
          type: str
          sample: changed
        before:
          description: The state before the change (thumbprints, services, ...).
          type: dict
          sample: {"thumbprint": "0F3A...", "services": ["IIS"]}
        after:
          description: The state after the change (the predicted state in check mode).
          type: dict
          sample: {"thumbprint": "9C2B...", "services": ["IIS", "SMTP"]}
        who:
          description: The controller user, and the remote user when known (V(alice as CONTOSO\\exadmin)).
          type: str
          sample: alice
        run_id:
          description: A correlation id of the run, or V(null).
          type: str
          sample: null
        message:
          description: The error message when RV(change_record.result) is V(failed), else V(null).
          type: str
          sample: null
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import fcntl
import getpass
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._text import CONTROL_OR_SURROGATE, escape_controls
from ansible_collections.exchange.pki.plugins.plugin_utils._time import (
    UTC,
    format_utc_datetime,
    parse_utc_datetime,
    utc_now,
)

#: The version of the record format (the ``version`` field of every line).
LEDGER_VERSION = 1

#: What replaces a secret in a record.
MASK = "********"

#: The values of :attr:`ChangeRecord.result`.
RESULTS = ("changed", "failed", "unchanged", "check_mode")

#: The keys of a serialised record, in the order they are written.
RECORD_KEYS = (
    "version", "time", "host", "server", "module", "action", "result", "before", "after", "who", "run_id", "message",
)

#: The suboptions of ``ledger_webhook`` (the SIEM sink; see :func:`deliver_record`).
LEDGER_WEBHOOK_OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "url": MappingProxyType({"type": "str", "required": True, "no_log": True}),
    "headers": MappingProxyType({"type": "dict", "default": {}, "no_log": True}),
    "timeout": MappingProxyType({"type": "float", "default": 30.0}),
    "ca_path": MappingProxyType({"type": "path"}),
    "allow_http": MappingProxyType({"type": "bool", "default": False}),
})

#: The ``ledger`` and ``ledger_webhook`` options of every changing module; plugins/doc_fragments/ledger.py
#: documents them.
LEDGER_ARGSPEC: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "ledger": MappingProxyType({"type": "path"}),
    "ledger_webhook": MappingProxyType({"type": "dict", "options": LEDGER_WEBHOOK_OPTIONS}),
    "ledger_run_id": MappingProxyType({"type": "str"}),
})

#: The longest one-line field a play gives a record: ``ledger_run_id`` (a renewal plan id is 16 hexadecimal digits; a
#: job id is shorter), and ``action``, ``server`` and ``run_id`` of ``exchange.pki.ledger_record``.
MAX_ONE_LINE = 128

# A key whose value is replaced whatever it holds: the key's name, lower case without separators, contains one of
# these ("pfx_password", "PrivateKey", "pfx", "content", "key_passphrase", ...).
_SECRET_KEY_WORDS = ("password", "passwd", "passphrase", "privatekey", "secret", "pfx", "content")
_KEY_SEPARATORS = re.compile(r"[\W_]+")

# Characters JSON leaves unescaped (with ensure_ascii=False) that some readers take for a line break.
_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINE_BREAK = re.compile("[\u0085\u2028\u2029]")


class LedgerError(ExchangePkiError):
    """The ledger could not be written or read; the message names the path and the records concerned."""


class LedgerSinkError(LedgerError):
    """A record could not be sent to a sink beyond the file; ``in_file`` says whether the file has it."""

    def __init__(self, message: str, *, in_file: bool) -> None:
        super().__init__(message)
        self.in_file = in_file


class LedgerRecordError(LedgerError, ValueError):
    """A change record is not valid (a missing or wrongly typed field, a value JSON cannot hold)."""


def ledger_argspec() -> dict[str, dict[str, Any]]:
    """A fresh, mutable copy of the ``ledger`` options for an action plugin's argument spec."""
    return {name: _mutable(spec) for name, spec in LEDGER_ARGSPEC.items()}


def _mutable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _mutable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mutable(item) for item in value]
    return value


# --- the record --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChangeRecord:
    """One change (or non-change) a module made on one server, as the ledger and ``change_record`` hold it.

    ``time`` is stored in UTC, whole seconds (the serialised form has no fraction). ``before`` and ``after``
    are stored as JSON-normalised copies (tuples become lists), so ``from_dict(record.as_dict()) == record``.
    Build records with :func:`make_record`, which fills ``time`` and ``who`` and scrubs secrets.
    """

    time: datetime.datetime
    server: str
    module: str
    action: str
    result: Literal["changed", "failed", "unchanged", "check_mode"]
    before: Mapping[str, Any] = dataclasses.field(hash=False)
    after: Mapping[str, Any] = dataclasses.field(hash=False)
    who: str | None = None
    host: str | None = None
    message: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("server", "module", "action"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise self._error(f"{name} must be a non-empty string, got {_kind(value)}")
        for name in ("who", "host", "message", "run_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise self._error(f"{name} must be a string or None, got {_kind(value)}")
        if self.result not in RESULTS:
            raise self._error(f"result must be one of {', '.join(RESULTS)}, got {_kind(self.result)}")
        if not isinstance(self.time, datetime.datetime) or self.time.utcoffset() is None:
            raise self._error(f"time must be a timezone-aware datetime, got {_kind(self.time)}")
        object.__setattr__(self, "time", self.time.astimezone(UTC).replace(microsecond=0))
        for name in ("before", "after"):
            object.__setattr__(self, name, self._json_copy(name, getattr(self, name)))
        for name in ("server", "module", "action", "who", "host", "message", "run_id"):
            value = getattr(self, name)
            if value is not None and not _is_utf8(value):
                raise self._error(f"{name} holds a lone surrogate, which UTF-8 cannot encode")

    def _error(self, problem: str) -> LedgerRecordError:
        return LedgerRecordError(f"invalid change record {describe_record(self)}: {problem}")

    def _json_copy(self, name: str, value: Any) -> dict[str, Any]:
        """A plain JSON copy of ``before`` or ``after``; the errors name the field and types, never a value."""
        if not isinstance(value, Mapping):
            raise self._error(f"{name} must be a mapping, got {_kind(value)}")
        try:
            text = json.dumps(_plain(value), ensure_ascii=False, allow_nan=False)
        except _NotJson as exc:
            raise self._error(f"{name} {exc}") from None
        except (TypeError, ValueError) as exc:
            raise self._error(f"{name} must hold only JSON values (strings, finite numbers, booleans, null, "
                              f"lists, mappings): {type(exc).__name__}") from None
        if not _is_utf8(text):
            raise self._error(f"{name} holds a lone surrogate, which UTF-8 cannot encode")
        return json.loads(text)

    def as_dict(self) -> dict[str, Any]:
        """The record as the ledger line and ``change_record`` hold it: every key of RECORD_KEYS, in order."""
        return {
            "version": LEDGER_VERSION,
            "time": format_utc_datetime(self.time),
            "host": self.host,
            "server": self.server,
            "module": self.module,
            "action": self.action,
            "result": self.result,
            "before": json.loads(json.dumps(self.before)),
            "after": json.loads(json.dumps(self.after)),
            "who": self.who,
            "run_id": self.run_id,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChangeRecord:
        """Build from :meth:`as_dict`'s form (a parsed ledger line); :class:`LedgerRecordError` says what is wrong."""
        if not isinstance(data, Mapping):
            raise LedgerRecordError(f"a change record must be a JSON object, got {_kind(data)}")
        version = data.get("version")
        if type(version) is not int or version != LEDGER_VERSION:  # pylint: disable=unidiomatic-typecheck
            raise LedgerRecordError(f"unsupported change record version {version!r} (expected {LEDGER_VERSION})")
        missing = [key for key in RECORD_KEYS if key not in data]
        unknown = sorted(str(key) for key in data if key not in RECORD_KEYS)
        if missing or unknown:
            problems = []
            if missing:
                problems.append(f"missing {', '.join(missing)}")
            if unknown:
                problems.append(f"unknown {', '.join(unknown)}")
            raise LedgerRecordError(f"invalid change record: {'; '.join(problems)}")
        if not isinstance(data["time"], str):
            raise LedgerRecordError(f"invalid change record: time must be a string, got {_kind(data['time'])}")
        try:
            moment = parse_utc_datetime(data["time"])
        except ValueError as exc:
            raise LedgerRecordError(f"invalid change record: {exc}") from None
        return cls(
            time=moment,
            server=data["server"],
            module=data["module"],
            action=data["action"],
            result=data["result"],
            before=data["before"],
            after=data["after"],
            who=data["who"],
            host=data["host"],
            message=data["message"],
            run_id=data["run_id"],
        )

    def to_line(self) -> str:
        """The record's ledger line: compact JSON, UTF-8 text as is, no line break inside, newline-terminated."""
        text = json.dumps(self.as_dict(), ensure_ascii=False, separators=(",", ":"), sort_keys=False, allow_nan=False)
        return _LINE_BREAK.sub(lambda match: _LINE_BREAKS[match.group()], text) + "\n"


class _NotJson(Exception):
    """A value :func:`_plain` cannot turn into JSON (the message names the problem, never the value)."""


def _plain(value: Any) -> Any:
    """``value`` with every mapping a dict and every tuple a list; a non-string key raises :class:`_NotJson`."""
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotJson(f"must have string keys only, got a {type(key).__name__} key")
            plain[key] = _plain(item)
        return plain
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _kind(value: Any) -> str:
    """A value's description for an error message: its type, or the value when it cannot be a secret."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, datetime.datetime):
        return f"naive datetime {value.isoformat()}" if value.utcoffset() is None else value.isoformat()
    return type(value).__name__


def describe_record(record: Any) -> str:
    """``module on server: action``, the way errors name a record (these three fields never hold secrets)."""
    parts = []
    for name in ("module", "server", "action"):
        value = getattr(record, name, None)
        parts.append(escape_controls(value) if isinstance(value, str) and value else "?")
    return f"({parts[0]} on {parts[1]}: {parts[2]})"


# --- building records ---------------------------------------------------------------------------------------


def who_am_i(remote_user: str | None = None) -> str:
    """The controller user, ``"alice"``, or with the remote user known, ``"alice as CONTOSO\\\\exadmin"``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError, ImportError):  # no LOGNAME/USER/... and no passwd entry (containers)
        user = f"uid {os.getuid()}"
    return f"{user} as {remote_user}" if remote_user else user


def scrub(value: Any, secrets: Iterable[str], *, by_key: bool = True) -> Any:
    """A copy of ``value`` with every secret replaced by ``********``, however deep it is nested.

    - In every string (values and mapping keys), each occurrence of a secret, and of its JSON-escaped form,
      is replaced. Empty secrets are ignored; longer secrets are replaced first.
    - With ``by_key`` (for records, which must never hold one), the value of every key named like a secret (its
      name, lower case without ``_``/``-``/spaces, contains ``password``, ``passwd``, ``passphrase``,
      ``privatekey``, ``secret``, ``pfx`` or ``content``) is replaced whatever it holds, except ``None`` and
      booleans (which cannot carry a secret). A task result keeps those keys (a PFX asked for with
      return_content), so it is scrubbed without.

    Mappings become dicts, lists and tuples keep their type, bytes are scrubbed as UTF-8, other values are
    returned as they are.
    """
    forms = _secret_forms(secrets)
    return _scrub(value, forms, by_key=by_key)


def _secret_forms(secrets: Iterable[str]) -> list[str]:
    forms: set[str] = set()
    for secret in secrets:
        if not isinstance(secret, str) or not secret or secret in MASK:
            continue
        forms.add(secret)
        forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        forms.add(json.dumps(secret, ensure_ascii=True)[1:-1])
    return sorted(forms, key=lambda form: (-len(form), form))


def _scrub_text(text: str, forms: Sequence[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def is_secret_key(key: Any) -> bool:
    """Whether a mapping key names a secret (see :func:`scrub`)."""
    if not isinstance(key, str):
        return False
    normalized = _KEY_SEPARATORS.sub("", key).lower()
    return any(word in normalized for word in _SECRET_KEY_WORDS)


def _scrub(value: Any, forms: Sequence[str], *, by_key: bool = True) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, forms)
    if isinstance(value, Mapping):
        scrubbed = {}
        for key, item in value.items():
            new_key = _scrub_text(key, forms) if isinstance(key, str) else key
            if by_key and is_secret_key(key) and item is not None and not isinstance(item, bool):
                scrubbed[new_key] = MASK
            else:
                scrubbed[new_key] = _scrub(item, forms, by_key=by_key)
        return scrubbed
    if isinstance(value, list):
        return [_scrub(item, forms, by_key=by_key) for item in value]
    if isinstance(value, tuple):
        return tuple(_scrub(item, forms, by_key=by_key) for item in value)
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        for form in forms:
            data = data.replace(form.encode("utf-8", "surrogatepass"), MASK.encode("ascii"))
        return data
    return value


def make_record(
    *,
    server: str,
    module: str,
    action: str,
    result: Literal["changed", "failed", "unchanged", "check_mode"],
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    secrets: Iterable[str] = (),
    time: datetime.datetime | None = None,
    host: str | None = None,
    remote_user: str | None = None,
    message: str | None = None,
    run_id: str | None = None,
) -> ChangeRecord:
    """Build a record the way modules do: ``who`` from :func:`who_am_i`, ``time`` now unless given, and
    ``before``, ``after`` and ``message`` scrubbed of ``secrets`` (the task's passwords and key material)."""
    forms = _secret_forms(secrets)
    return ChangeRecord(
        time=utc_now() if time is None else time,
        server=server,
        module=module,
        action=action,
        result=result,
        before=_scrub(before, forms),
        after=_scrub(after, forms),
        who=who_am_i(remote_user),
        host=host,
        message=None if message is None else _scrub_text(message, forms),
        run_id=run_id,
    )


# --- writing ------------------------------------------------------------------------------------------------

_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def _names(records: Sequence[ChangeRecord]) -> str:
    """The records an error concerns: all of them when few, else the first ones and a count."""
    shown = ", ".join(describe_record(record) for record in records[:5])
    more = f" and {len(records) - 5} more" if len(records) > 5 else ""
    return f"{len(records)} record(s) {shown}{more}"


def _open_ledger(path: str, records: Sequence[ChangeRecord]) -> tuple[int, bool]:
    """Open (or create, 0600) the ledger for reading and appending; return the descriptor and whether it is new."""

    def fail(problem: str) -> LedgerError:
        return LedgerError(f"ledger {path}: {problem}; not written: {_names(records)}")

    for _attempt in range(3):
        try:
            return os.open(path, _OPEN_FLAGS), False
        except FileNotFoundError:
            pass  # absent (or a dangling symbolic link): create it below
        except IsADirectoryError:
            raise fail("is a directory, not a file") from None
        except OSError as exc:
            raise fail(f"cannot be opened for appending ({exc.strerror or exc})") from None
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise fail(f"the parent directory {parent} does not exist")
        try:
            # O_EXCL: never through a symbolic link, never a file another process created meanwhile.
            return os.open(path, _OPEN_FLAGS | os.O_CREAT | os.O_EXCL, 0o600), True
        except FileExistsError:
            if os.path.islink(path) and not os.path.exists(path):
                raise fail("is a symbolic link to a file that does not exist") from None
            # another process created it between both calls: open it again
        except OSError as exc:
            raise fail(f"cannot be created ({exc.strerror or exc})") from None
    raise fail("appears and disappears while it is opened")


def _needs_newline(fd: int, size: int) -> bool:
    """Whether the file's last byte is not a newline (a torn previous write)."""
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def append_records(path: str | os.PathLike[str], records: Sequence[ChangeRecord]) -> None:
    """Append each record as one JSON line to the ledger at ``path`` (see the module's docstring).

    Nothing is done for no records. Raises :class:`LedgerError` naming the path and the records not written.
    """
    records = list(records)
    if not records:
        return
    for record in records:
        if not isinstance(record, ChangeRecord):
            raise LedgerRecordError(f"append_records takes ChangeRecord objects, got {type(record).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise LedgerError(f"ledger path must be a non-empty string, got {_kind(path)}; "
                          f"not written: {_names(records)}")
    lines = [record.to_line().encode("utf-8") for record in records]

    fd, created = _open_ledger(path, records)
    try:
        _append_locked(fd, path, records, lines, created)
    finally:
        os.close(fd)


def _append_locked(fd: int, path: str, records: Sequence[ChangeRecord], lines: Sequence[bytes], created: bool) -> None:
    def fail(problem: str, unwritten: Sequence[ChangeRecord] = records) -> LedgerError:
        return LedgerError(f"ledger {path}: {problem}; not written: {_names(unwritten)}")

    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise fail(f"is not a regular file ({_file_kind(info.st_mode)})")
        if created:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask narrowed
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except LedgerError:
        raise
    except OSError as exc:
        raise fail(f"cannot be locked ({exc.strerror or exc})") from None

    start = 0
    written = 0
    try:
        start = os.fstat(fd).st_size
        data = b"".join(lines)
        if _needs_newline(fd, start):
            data = b"\n" + data
        # One write for the whole call; a regular file takes it whole unless the disk is full, and then the
        # loop writes the rest or meets the error.
        while written < len(data):
            count = os.write(fd, data[written:])
            if count <= 0:
                raise OSError(errno.EIO, "the write made no progress")
            written += count
        os.fsync(fd)
    except OSError as exc:
        problem = f"write failed ({exc.strerror or exc})"
        if written == 0:
            raise fail(problem) from None
        if written == len(data):  # fsync failed: the lines may or may not be on disk
            raise fail(f"{problem}; the lines may be lost") from None
        try:
            os.ftruncate(fd, start)
        except OSError:
            # Truncating failed too: the records written whole stay, the torn rest is skipped by readers.
            offset = len(data) - sum(len(line) for line in lines)
            done = 0
            for line in lines:
                offset += len(line)
                if offset > written:
                    break
                done += 1
            raise fail(f"{problem}, a partial line remains", records[done:]) from None
        raise fail(f"{problem}, the partial write was undone") from None
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass  # closing the descriptor releases it too


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a file"


# --- reading ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SkippedLine:
    """A line :func:`read_ledger` could not take as a record: its number (from 1) and why."""

    line_number: int
    reason: str


@dataclasses.dataclass(frozen=True)
class LedgerContents:
    """What :func:`read_ledger` found: the records in file order and the lines it skipped."""

    records: tuple[ChangeRecord, ...]
    skipped: tuple[SkippedLine, ...]


#: The longest line :func:`iter_ledger` parses; a longer one is skipped (a record is a few kilobytes at most).
MAX_LINE_BYTES = 4 << 20


def read_ledger(path: str | os.PathLike[str]) -> LedgerContents:
    """Read every record of the ledger, tolerantly: a torn or otherwise invalid line is skipped and counted.

    Blank lines are ignored. The read holds a shared ``flock``, so it never sees half of a concurrent append.
    Raises :class:`LedgerError` when the file cannot be read at all.
    """
    records: list[ChangeRecord] = []
    skipped: list[SkippedLine] = []
    for item in iter_ledger(path):
        (records if isinstance(item, ChangeRecord) else skipped).append(item)
    return LedgerContents(tuple(records), tuple(skipped))


def iter_ledger(path: str | os.PathLike[str], *,
                max_line: int = MAX_LINE_BYTES) -> Iterator[ChangeRecord | SkippedLine]:
    """The ledger's records (and the lines that are not records, as :class:`SkippedLine`) in file order.

    Reads in blocks under a shared ``flock`` (held until the generator ends), so memory stays bounded by the
    longest line, whatever the file's size; a line longer than ``max_line`` bytes is skipped unparsed.
    Raises :class:`LedgerError` when the file cannot be read.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise LedgerError(f"ledger {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise LedgerError(f"ledger {path}: is not a regular file ({_file_kind(info.st_mode)})")
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError as exc:
            raise LedgerError(f"ledger {path}: cannot be read ({exc.strerror or exc})") from None
        number = 0
        pending = bytearray()
        too_long = False
        while True:
            try:
                chunk = os.read(fd, 1 << 20)
            except OSError as exc:
                raise LedgerError(f"ledger {path}: cannot be read ({exc.strerror or exc})") from None
            if not chunk:
                break
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                number += 1
                if too_long:
                    yield SkippedLine(number, f"longer than {max_line} bytes")
                else:
                    pending += chunk[start:end]
                    item = _parse_line(number, pending, max_line)
                    if item is not None:
                        yield item
                pending.clear()
                too_long = False
                start = end + 1
            if not too_long:
                pending += chunk[start:]
                if len(pending) > max_line:
                    pending.clear()
                    too_long = True
        if too_long or pending:
            number += 1
            item = (SkippedLine(number, f"longer than {max_line} bytes") if too_long
                    else _parse_line(number, pending, max_line))
            if item is not None:
                yield item
    finally:
        os.close(fd)


def _parse_line(number: int, raw: bytes | bytearray, max_line: int) -> ChangeRecord | SkippedLine | None:
    """The record of one line, a :class:`SkippedLine` saying why it is none, or None for a blank line."""
    if not raw.strip():
        return None
    if len(raw) > max_line:
        return SkippedLine(number, f"longer than {max_line} bytes")
    try:
        data = json.loads(bytes(raw).decode("utf-8"), parse_constant=_no_constant)
        return ChangeRecord.from_dict(data)
    except UnicodeDecodeError:
        return SkippedLine(number, "not UTF-8")
    except RecursionError:
        return SkippedLine(number, "nested too deeply")
    except ValueError as exc:  # JSONDecodeError and LedgerRecordError are ValueErrors
        reason = "not a complete JSON line (torn write?)" if isinstance(exc, json.JSONDecodeError) else str(exc)
        return SkippedLine(number, reason)


def _no_constant(name: str) -> float:
    """Refuse NaN and Infinity, which Python's json reads but JSON does not have."""
    raise ValueError(f"{name} is not JSON")


def read_records(path: str | os.PathLike[str]) -> list[ChangeRecord]:
    """The ledger's records in file order, torn lines skipped (:func:`read_ledger` also says which)."""
    return list(read_ledger(path).records)


# --- sinks: the file, then the webhook ----------------------------------------------------------------------


def _webhook_settings(options: Mapping[str, Any]) -> Any:
    """The validated settings of ``ledger_webhook`` (an ``_alerts.WebhookSettings``); :class:`LedgerError` names
    the bad suboption and never shows the URL or a header value."""
    # Imported here: only a task with a webhook sink pays for the HTTP client and the alert module.
    from ansible_collections.exchange.pki.plugins.plugin_utils._alerts import (  # noqa: PLC0415
        AlertConfigError,
        WebhookSettings,
    )

    try:
        return WebhookSettings(
            url=options.get("url"), headers=options.get("headers") or {},
            timeout=options.get("timeout") if options.get("timeout") is not None else 30.0,
            allow_http=bool(options.get("allow_http")), ca_path=options.get("ca_path") or None,
        )
    except AlertConfigError as error:
        raise LedgerError(f"ledger_{error}".replace("webhook.allow_http", "ledger_webhook.allow_http")) from None


def check_one_line(option: str, value: str) -> str:
    """``value`` as a one-line record field a play gives: not empty or blank, at most :data:`MAX_ONE_LINE`
    characters, no control character (nor a lone surrogate, which the file could not hold).
    :class:`LedgerError` names ``option`` and never repeats the value."""
    if not value:
        raise LedgerError(f"{option} must not be empty")
    if not value.strip():
        raise LedgerError(f"{option} must not be blank")
    if len(value) > MAX_ONE_LINE:
        raise LedgerError(f"{option} is {len(value)} characters long; at most {MAX_ONE_LINE} are allowed")
    if CONTROL_OR_SURROGATE.search(value):
        raise LedgerError(f"{option} must be one line without control characters (CR, LF, NUL, ...) or lone "
                          "surrogates")
    return value


def check_run_id(option: str, value: str | None) -> str | None:
    """``value`` as a record's ``run_id`` (:func:`check_one_line`), or None when not given (an empty string is not
    given)."""
    if value is None or value == "":
        return None
    return check_one_line(option, value)


def ledger_path_problem(path: str) -> str | None:
    """Why no record could be appended to the ledger at ``path`` (what :func:`append_records` would find there), or
    None. Only what is known before writing: a directory, a file that is not a regular one, a dangling symbolic
    link, a parent directory that does not exist."""
    try:
        if os.path.exists(path):
            kind = os.stat(path).st_mode
            return None if stat.S_ISREG(kind) else f"is not a regular file ({_file_kind(kind)})"
        if os.path.islink(path):
            return "is a symbolic link to a file that does not exist"
        parent = os.path.dirname(os.path.abspath(path))
    except (OSError, ValueError):
        return None  # append_records names what it finds
    return None if os.path.isdir(parent) else f"the parent directory {parent} does not exist"


def check_sinks(args: Mapping[str, Any]) -> None:
    """Refuse a bad ``ledger``, ``ledger_webhook`` or ``ledger_run_id`` before anything changes (:class:`LedgerError`
    names the option), in check mode too: a change is never made that its record cannot follow.

    A webhook needs the file: each record is appended to ``ledger`` first, so that a webhook that is down loses
    nothing.
    """
    check_run_id("ledger_run_id", args.get("ledger_run_id"))
    path = args.get("ledger")
    problem = ledger_path_problem(path) if isinstance(path, str) and path else None
    if problem:
        raise LedgerError(f"ledger {path}: {problem}; nothing was changed")
    options = args.get("ledger_webhook")
    if not options:
        return
    if not args.get("ledger"):
        raise LedgerError("ledger_webhook needs ledger: every record is appended to the ledger file first and then "
                          "sent to the webhook, so that nothing is lost when the webhook is down")
    settings = _webhook_settings(options)
    if settings.ca_path is not None and not os.path.isfile(settings.ca_path):
        raise LedgerError(f"ledger_webhook.ca_path {settings.ca_path}: not a file (give a PEM file of the CA "
                          "certificates that issued the webhook's server certificate)")


def record_label(record: ChangeRecord) -> str:
    """How a sink failure names a record: its time and ``(module on server: action)``."""
    return f"{format_utc_datetime(record.time)} {describe_record(record)}"


def deliver_records(args: Mapping[str, Any], records: Sequence[ChangeRecord]) -> None:
    """Append ``records`` to the ``ledger`` file, then POST each to ``ledger_webhook`` (when set) as JSON.

    The file comes first: it is the record of truth. The webhook gets each record exactly as the file holds it
    (already scrubbed of secrets by :func:`make_record`), one POST per record. Raises :class:`LedgerError`
    naming the sink, the record, and where the record is: a record is never lost silently.
    """
    path = args.get("ledger")
    options = args.get("ledger_webhook")
    if not path or not records:
        return
    file_error = None
    try:
        append_records(path, records)
    except LedgerError as error:
        if not options:
            raise
        file_error = str(error)
    if not options:
        return
    from ansible_collections.exchange.pki.plugins.plugin_utils._alerts import post_webhook  # noqa: PLC0415

    settings = _webhook_settings(options)
    for index, record in enumerate(records):
        try:
            post_webhook(record.as_dict(), settings)
        except ExchangePkiError as error:  # AlertDeliveryError: names the endpoint and stage, never the URL path
            where = (f"it is NOT in the ledger file either ({file_error})" if file_error else
                     f"it IS in the ledger file {path}, send it again from there")
            unsent = f" (and {len(records) - index - 1} later record(s))" if index < len(records) - 1 else ""
            raise LedgerSinkError(f"ledger_webhook: the record {record_label(record)}{unsent} was not sent: "
                                  f"{error}; {where}", in_file=file_error is None) from None
    if file_error:
        raise LedgerError(f"{file_error}; the record(s) were sent to the ledger_webhook "
                          f"{settings.endpoint} only")


# --- querying ---------------------------------------------------------------------------------------------------

#: The keys of one step of a certificate's story (``ledger_info``'s ``stories`` and the report's).
STORY_KEYS = ("time", "who", "server", "action", "stage", "result", "before", "after", "plan_id", "module",
              "message")

#: The stage each known action is in a certificate's life, in that life's order.
STAGES: Mapping[str, str] = MappingProxyType({
    "certificate_request": "requested",
    "adcs_submit": "requested",
    "adcs_retrieve": "issued",
    "import": "imported",
    "enable_services": "bound",
    "renewal_done": "verified",
    "renewal_failed": "failed",
    "remove": "removed",
    "export": "exported",
    "auth_certificate": "auth",
})
STAGE_ORDER = ("requested", "issued", "imported", "bound", "verified", "failed", "removed")

_THUMBPRINT = re.compile(r"[0-9A-Fa-f]{40}")


def record_identity(record: ChangeRecord) -> str | None:
    """The certificate identity a record names (``after.identity``, else ``before.identity``), if any."""
    for side in (record.after, record.before):
        value = side.get("identity")
        if isinstance(value, str) and value:
            return value
    return None


def record_plan_id(record: ChangeRecord) -> str | None:
    """The renewal plan a record belongs to: its ``run_id``, else ``after.plan_id`` / ``before.plan_id``."""
    if record.run_id:
        return record.run_id
    for side in (record.after, record.before):
        value = side.get("plan_id")
        if isinstance(value, str) and value:
            return value
    return None


def record_thumbprints(record: ChangeRecord) -> list[str]:
    """Every certificate thumbprint (40 hexadecimal digits, upper-cased) in ``after`` then ``before``, in order."""
    found: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if len(value) == 40 and _THUMBPRINT.fullmatch(value):
                found[value.upper()] = None
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(record.after)
    walk(record.before)
    return list(found)


def story_step(record: ChangeRecord) -> dict[str, Any]:
    """One step of a story: who did what, when, where, and how it ended."""
    return {
        "time": format_utc_datetime(record.time), "who": record.who, "server": record.server,
        "action": record.action, "stage": STAGES.get(record.action, record.action), "result": record.result,
        "before": dict(record.before), "after": dict(record.after), "plan_id": record_plan_id(record),
        "module": record.module, "message": record.message,
    }


@dataclasses.dataclass
class StoryIndex:
    """Which certificate identity each thumbprint belongs to, learnt from the records that name an identity
    (the renewal role's ``renewal_done`` / ``renewal_failed``: the new and the old thumbprints).

    A new request's record holds no thumbprint (Exchange names the pending request only when it is completed): it
    is linked to the next import on the same server that completes a pending request, and takes that import's
    thumbprints.
    """

    identities: dict[str, str] = dataclasses.field(default_factory=dict)
    links: dict[ChangeRecord, list[str]] = dataclasses.field(default_factory=dict)
    _open_requests: dict[str, list[ChangeRecord]] = dataclasses.field(default_factory=dict)

    def learn(self, record: ChangeRecord) -> None:
        identity = record_identity(record)
        if identity is not None:
            for thumbprint in record_thumbprints(record):
                self.identities.setdefault(thumbprint, identity)
        if record.result != "changed":
            return
        server = record.server.casefold()
        if record.action == "certificate_request" and isinstance(record.after.get("pending_request"), Mapping):
            self._open_requests.setdefault(server, []).append(record)
        elif record.action == "import" and isinstance(record.before.get("pending_request"), str):
            waiting = self._open_requests.get(server)
            if waiting:
                self.links[waiting.pop(0)] = record_thumbprints(record)

    def thumbprints(self, record: ChangeRecord) -> list[str]:
        """The record's thumbprints, or those of the import that completed its request."""
        return record_thumbprints(record) or list(self.links.get(record, ()))

    def key(self, record: ChangeRecord) -> str | None:
        """The story a record belongs to: its identity, the identity of a thumbprint it names, else its first
        thumbprint; None for a record about no certificate."""
        identity = record_identity(record)
        if identity is not None:
            return identity
        thumbprints = self.thumbprints(record)
        for thumbprint in thumbprints:
            if thumbprint in self.identities:
                return self.identities[thumbprint]
        return thumbprints[0] if thumbprints else None


def build_stories(records: Iterable[ChangeRecord], index: StoryIndex | None = None) -> dict[str, list[dict[str, Any]]]:
    """identity (or thumbprint) -> its steps in time order (file order for the same second)."""
    if index is None:
        records = list(records)
        index = StoryIndex()
        for record in records:
            index.learn(record)
    stories: dict[str, list[tuple[datetime.datetime, int, ChangeRecord]]] = {}
    for number, record in enumerate(records):
        key = index.key(record)
        if key is not None:
            stories.setdefault(key, []).append((record.time, number, record))
    return {key: [story_step(record) for _time, _number, record in sorted(steps, key=lambda item: item[:2])]
            for key, steps in sorted(stories.items())}


@dataclasses.dataclass(frozen=True)
class LedgerQuery:
    """What ``ledger_info`` asks: every field None (or empty) matches everything."""

    identity: str | None = None
    server: str | None = None
    thumbprint: str | None = None
    plan_id: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    actions: tuple[str, ...] = ()

    def matches_record(self, record: ChangeRecord) -> bool:
        """Every condition but ``identity`` (which needs the whole ledger's :class:`StoryIndex`)."""
        if self.since is not None and record.time < self.since:
            return False
        if self.until is not None and record.time > self.until:
            return False
        if self.server is not None and record.server.casefold() != self.server.casefold():
            return False
        if self.actions and record.action not in self.actions:
            return False
        if self.plan_id is not None and record_plan_id(record) != self.plan_id:
            return False
        return self.thumbprint is None or self.thumbprint in record_thumbprints(record)


@dataclasses.dataclass(frozen=True)
class QueryAnswer:
    records: tuple[ChangeRecord, ...]
    stories: Mapping[str, list[dict[str, Any]]]
    skipped: tuple[SkippedLine, ...]
    total: int
    """How many records matched before ``limit`` kept the latest."""


def query_ledger(path: str | os.PathLike[str], query: LedgerQuery, *, limit: int | None = None,
                 skip_invalid: bool = False) -> QueryAnswer:
    """The records of the ledger that match ``query``, oldest first, and their stories.

    One pass over the file (bounded memory: only matching records are kept). A missing file is an empty
    answer. A line that is not a record (torn, foreign, too long) raises :class:`LedgerError` naming the file and
    the line, unless ``skip_invalid`` (then it is listed in ``skipped``). With ``limit`` only the latest
    ``limit`` matching records are returned (and the stories are told from them).
    """
    path = os.fspath(path)
    if not os.path.lexists(path):
        return QueryAnswer((), {}, (), 0)
    index = StoryIndex()
    kept: list[ChangeRecord] = []
    skipped: list[SkippedLine] = []
    for item in iter_ledger(path):
        if isinstance(item, SkippedLine):
            if not skip_invalid:
                raise LedgerError(f"ledger {path}, line {item.line_number}: not a ledger record: {item.reason}. "
                                  "No line is ever rewritten by the collection; set skip_invalid to read past it")
            skipped.append(item)
            continue
        index.learn(item)
        if query.matches_record(item):
            kept.append(item)
    if query.identity is not None:
        kept = [record for record in kept if index.key(record) == query.identity]
    order = sorted(range(len(kept)), key=lambda number: (kept[number].time, number))
    matched = [kept[number] for number in order]
    total = len(matched)
    if limit is not None:
        matched = matched[-limit:] if limit else []
    return QueryAnswer(tuple(matched), build_stories(matched, index), tuple(skipped), total)
