# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_ledger: the append-only audit ledger (safety invariants 4 and 7 of ../shared/DESIGN.md section 5)."""

from __future__ import annotations

import datetime
import errno
import json
import multiprocessing
import os
import pathlib
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.doc_fragments.ledger import ModuleDocFragment
from ansible_collections.exchange.pki.plugins.plugin_utils import _ledger
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import (
    LEDGER_ARGSPEC,
    LEDGER_VERSION,
    MASK,
    RECORD_KEYS,
    ChangeRecord,
    LedgerError,
    LedgerRecordError,
    append_records,
    ledger_argspec,
    make_record,
    read_ledger,
    read_records,
    scrub,
    who_am_i,
)
from tests.unit.clock import NOW

MODULE = "exchange.pki.certificate_services"
RECORD_NAME = f"({MODULE} on EX01: enable_services)"
# JSON-special characters (quote, backslash, braces, colon, comma, a newline) and non-ASCII (Latin, BMP, astral).
PASSWORD = 'p"\\{a}:b,\nä€😀'


def _record(**overrides: Any) -> ChangeRecord:
    fields: dict[str, Any] = {
        "time": NOW,
        "server": "EX01",
        "module": MODULE,
        "action": "enable_services",
        "result": "changed",
        "before": {"thumbprint": "0F3A" * 10, "services": ["IIS"]},
        "after": {"thumbprint": "9C2B" * 10, "services": ["IIS", "SMTP"]},
        "who": "alice as CONTOSO\\exadmin",
        "host": "ex01",
        "message": None,
        "run_id": "run-1",
    }
    fields.update(overrides)
    return ChangeRecord(**fields)


def _lines(path: pathlib.Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


# --- the record ---------------------------------------------------------------------------------------------


def test_round_trip_through_dict_and_line() -> None:
    record = _record(message="Enable-ExchangeCertificate failed", result="failed")
    assert ChangeRecord.from_dict(record.as_dict()) == record
    assert ChangeRecord.from_dict(json.loads(record.to_line())) == record
    assert record.as_dict()["version"] == LEDGER_VERSION == 1


def test_key_order_is_stable_and_complete() -> None:
    expected = ["version", "time", "host", "server", "module", "action", "result", "before", "after", "who",
                "run_id", "message"]
    assert list(RECORD_KEYS) == expected
    assert list(_record().as_dict()) == expected
    assert list(_record(who=None, host=None, run_id=None).as_dict()) == expected
    line = _record().to_line()
    assert line.startswith('{"version":1,"time":"2026-11-25T08:00:00Z","host":"ex01","server":"EX01",')
    assert list(json.loads(line)) == expected
    # The module's own key order inside before/after is kept, not sorted.
    assert list(json.loads(_record(after={"z": 1, "a": 2}).to_line())["after"]) == ["z", "a"]


def test_time_is_utc_with_z_whole_seconds() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    record = _record(time=datetime.datetime(2026, 11, 25, 10, 0, 5, 987654, tzinfo=plus_two))
    assert record.as_dict()["time"] == "2026-11-25T08:00:05Z"
    assert record.time == datetime.datetime(2026, 11, 25, 8, 0, 5, tzinfo=datetime.timezone.utc)
    assert record.time.utcoffset() == datetime.timedelta(0)


def test_before_and_after_are_stored_as_json() -> None:
    record = _record(before=MappingProxyType({"services": ("IIS", "SMTP"), "n": {"k": (1, 2.5, None, True)}}))
    assert record.before == {"services": ["IIS", "SMTP"], "n": {"k": [1, 2.5, None, True]}}
    assert type(record.before) is dict  # pylint: disable=unidiomatic-typecheck


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"time": datetime.datetime(2026, 11, 25, 8, 0)}, "timezone-aware"),
        ({"time": "2026-11-25T08:00:00Z"}, "timezone-aware"),
        ({"server": ""}, "server must be a non-empty string"),
        ({"module": None}, "module must be a non-empty string"),
        ({"result": "ok"}, "result must be one of changed, failed, unchanged, check_mode"),
        ({"before": ["IIS"]}, "before must be a mapping"),
        ({"after": {"services": {"IIS"}}}, "after must hold only JSON values"),
        ({"after": {"days": float("nan")}}, "after must hold only JSON values"),
        ({"after": {1: "one"}}, "after must have string keys only"),
        ({"before": {"x": "\ud800"}}, "before holds a lone surrogate"),
        ({"message": "\udcff"}, "message holds a lone surrogate"),
        ({"who": 7}, "who must be a string or None"),
    ],
)
def test_invalid_records_are_refused(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(LedgerRecordError, match=re.escape(problem)) as caught:
        _record(**overrides)
    assert isinstance(caught.value, LedgerError)
    assert isinstance(caught.value, ExchangePkiError)


def test_a_refused_value_is_not_in_the_message() -> None:
    with pytest.raises(LedgerRecordError) as caught:
        _record(after={"password": {PASSWORD}})
    assert "after must hold only JSON values" in str(caught.value)
    for form in _forms(PASSWORD):
        assert form not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"version": 2}, "unsupported change record version 2"),
        ({"version": True}, "unsupported change record version True"),
        ({"version": "1"}, "unsupported change record version '1'"),
        ({"time": "2026-11-25T08:00:00"}, "not an ISO-8601 UTC date/time ending in Z"),
        ({"time": 1764057600}, "time must be a string"),
        ({"extra": 1}, "unknown extra"),
        ({"result": "done"}, "result must be one of"),
    ],
)
def test_from_dict_validates(change: dict[str, Any], problem: str) -> None:
    data = {**_record().as_dict(), **change}
    with pytest.raises(LedgerRecordError, match=re.escape(problem)):
        ChangeRecord.from_dict(data)


def test_from_dict_names_missing_keys() -> None:
    data = _record().as_dict()
    del data["after"], data["who"]
    with pytest.raises(LedgerRecordError, match="missing after, who"):
        ChangeRecord.from_dict(data)
    with pytest.raises(LedgerRecordError, match="JSON object"):
        ChangeRecord.from_dict(["not", "a", "record"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["EX01\r\nEX02", "EX\x0001", "EX01\u2028x", "EX01\u2029x", "EX01\x85x", "EX01\rx\x0bx\x0cx\x1cx"],
)
def test_line_breaks_in_values_stay_inside_one_line(tmp_path: pathlib.Path, text: str) -> None:
    record = _record(server=text, message=f"failed on {text}\n", after={"note": text, text: [text]})
    line = record.to_line()
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert len(line.splitlines()) == 1  # str.splitlines also breaks at U+0085, U+2028, U+2029, \v, \f, \x1c
    assert len(line.encode("utf-8").split(b"\n")) == 2
    assert json.loads(line)["server"] == text

    path = tmp_path / "ledger.jsonl"
    append_records(path, [record, _record()])
    assert len(_lines(path)) == 2
    assert read_records(path) == [record, _record()]


def test_who_am_i(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_ledger.getpass, "getuser", lambda: "alice")
    assert who_am_i() == "alice"
    assert who_am_i("CONTOSO\\exadmin") == "alice as CONTOSO\\exadmin"

    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(_ledger.getpass, "getuser", no_user)
    assert who_am_i() == f"uid {os.getuid()}"


def test_make_record_fills_time_and_who_and_scrubs(
    monkeypatch: pytest.MonkeyPatch, frozen_clock: datetime.datetime,
) -> None:
    monkeypatch.setattr(_ledger.getpass, "getuser", lambda: "alice")
    record = make_record(
        server="EX01", module=MODULE, action="import", result="failed",
        before={"thumbprint": None}, after={"thumbprint": "9C2B", "pfx_password": PASSWORD, "note": f"pw={PASSWORD}"},
        secrets=[PASSWORD], host="ex01", remote_user="CONTOSO\\exadmin",
        message=f"Import-ExchangeCertificate -Password {PASSWORD} failed",
    )
    assert record.time == frozen_clock == NOW
    assert record.who == "alice as CONTOSO\\exadmin"
    assert record.after == {"thumbprint": "9C2B", "pfx_password": MASK, "note": f"pw={MASK}"}
    assert record.message == f"Import-ExchangeCertificate -Password {MASK} failed"
    assert PASSWORD not in record.to_line()


# --- scrub ----------------------------------------------------------------------------------------------------


def _forms(secret: str) -> list[str]:
    """The secret as it could appear in a serialised line: raw, and JSON-escaped with and without ensure_ascii."""
    return [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]


def test_scrub_replaces_a_secret_everywhere() -> None:
    value = {
        "thumbprint": "0F3A",
        "nested": {"list": ["a", f"x{PASSWORD}y", {"deeper": (PASSWORD, 5, None, f"{PASSWORD}{PASSWORD}")}]},
        "escaped": f"argument {json.dumps(PASSWORD)}",  # a message quoting the secret as JSON
        PASSWORD: "a secret used as a key",
        "bytes": b"raw " + PASSWORD.encode("utf-8"),
        "count": 3,
    }
    scrubbed = scrub(value, [PASSWORD, ""])
    assert scrubbed == {
        "thumbprint": "0F3A",
        "nested": {"list": ["a", f"x{MASK}y", {"deeper": (MASK, 5, None, f"{MASK}{MASK}")}]},
        "escaped": f'argument "{MASK}"',
        MASK: "a secret used as a key",
        "bytes": b"raw " + MASK.encode(),
        "count": 3,
    }
    assert value["nested"]["list"][1] == f"x{PASSWORD}y"  # the input is not changed
    line = _record(after=scrub({k: v for k, v in value.items() if k != "bytes"}, [PASSWORD])).to_line()
    for form in _forms(PASSWORD):
        assert form not in line, form


@pytest.mark.parametrize(
    "key", ["password", "pfx_password", "PfxPassword", "exchange-password", "private_key", "PrivateKey",
            "key_passphrase", "pfx", "pfx_data", "content", "PfxContent", "client_secret", "passwd"],
)
def test_scrub_masks_values_of_secret_keys(key: str) -> None:
    value = {"outer": [{key: "ZmFrZSBrZXk=", "thumbprint": "0F3A"}], key: {"nested": ["whatever"]}}
    assert scrub(value, []) == {"outer": [{key: MASK, "thumbprint": "0F3A"}], key: MASK}


def test_scrub_of_a_task_result_keeps_secret_named_keys_but_not_the_secrets() -> None:
    value = {"content": "UEZYIGRhdGE=", "msg": f"step import failed: Cannot convert the {json.dumps(PASSWORD)} value",
             "steps": [{"password": f"({PASSWORD})"}]}
    expected = {"content": "UEZYIGRhdGE=", "msg": f'step import failed: Cannot convert the "{MASK}" value',
                "steps": [{"password": f"({MASK})"}]}
    assert scrub(value, [PASSWORD], by_key=False) == expected


def test_scrub_keeps_ordinary_keys_and_absent_secrets() -> None:
    value = {"thumbprint": "0F3A", "services": ["IIS"], "key_size": 2048, "key_location": "server",
             "exportable": True, "friendly_name": "mail", "password": None, "password_set": False}
    assert scrub(value, ["not-there"]) == value


# --- writing --------------------------------------------------------------------------------------------------


@pytest.fixture
def umask_000() -> Any:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("umask_000")
def test_a_new_file_is_created_0600(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ledger.jsonl"
    append_records(path, [_record()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_records(str(path)) == [_record()]


def test_a_new_file_is_0600_whatever_the_umask(tmp_path: pathlib.Path) -> None:
    old = os.umask(0o277)  # would make it 0400
    try:
        append_records(tmp_path / "ledger.jsonl", [_record()])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ledger.jsonl").stat().st_mode) == 0o600


@pytest.mark.usefixtures("umask_000")
def test_an_existing_file_keeps_its_mode_and_content(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ledger.jsonl"
    first = _record(action="remove").to_line()
    path.write_text(first, encoding="utf-8")
    path.chmod(0o640)
    append_records(path, [_record()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text(encoding="utf-8") == first + _record().to_line()


def test_no_records_touch_nothing(tmp_path: pathlib.Path) -> None:
    append_records(tmp_path / "ledger.jsonl", [])
    assert not list(tmp_path.iterdir())


def test_one_call_writes_all_its_lines_in_order(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ledger.jsonl"
    records = [_record(server=f"EX{number:02}") for number in range(5)]
    append_records(path, records)
    append_records(path, records[:1])
    assert read_records(path) == [*records, records[0]]
    assert len(_lines(path)) == 6


def test_a_symbolic_link_is_followed_to_a_regular_file(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "elsewhere" / "ledger.jsonl"
    target.parent.mkdir()
    target.write_bytes(b"")
    link = tmp_path / "ledger.jsonl"
    link.symlink_to(target)
    append_records(link, [_record()])
    assert link.is_symlink()
    assert read_records(target) == [_record()]


def _append_worker(path: str, worker: int, count: int, barrier: Any) -> None:
    barrier.wait()
    padding = "x" * 5000  # larger than PIPE_BUF: atomicity must come from the lock and the one write
    for index in range(count):
        append_records(path, [_record(server=f"EX{worker:02}", after={"index": index, "padding": padding})])


def test_concurrent_processes_never_interleave_or_lose_a_line(tmp_path: pathlib.Path) -> None:
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    context = multiprocessing.get_context("fork")
    workers, count = 8, 200
    path = tmp_path / "ledger.jsonl"
    barrier = context.Barrier(workers)
    processes = [context.Process(target=_append_worker, args=(str(path), worker, count, barrier))
                 for worker in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * workers

    lines = _lines(path)
    assert len(lines) == workers * count
    seen: dict[str, list[int]] = {}
    for line in lines:
        data = json.loads(line)
        record = ChangeRecord.from_dict(data)
        seen.setdefault(record.server, []).append(record.after["index"])
    # Every record of every worker is there once, and each worker's records are in the order it wrote them.
    assert seen == {f"EX{worker:02}": list(range(count)) for worker in range(workers)}
    contents = read_ledger(path)
    assert len(contents.records) == workers * count
    assert not contents.skipped


def test_a_torn_last_line_is_left_alone_and_skipped(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ledger.jsonl"
    first, torn_source = _record(action="remove"), _record(action="import")
    torn = torn_source.to_line().encode("utf-8")[:-30]  # a writer killed mid-line
    path.write_bytes(first.to_line().encode("utf-8") + torn)
    append_records(path, [_record()])
    assert _lines(path) == [first.to_line().encode("utf-8")[:-1], torn, _record().to_line().encode("utf-8")[:-1]]
    contents = read_ledger(path)
    assert contents.records == (first, _record())
    assert [skipped.line_number for skipped in contents.skipped] == [2]
    assert "torn" in contents.skipped[0].reason
    assert read_records(path) == [first, _record()]


def test_the_reader_skips_and_counts_bad_lines(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ledger.jsonl"
    good = _record().to_line().encode("utf-8")
    newer = json.dumps({**_record().as_dict(), "version": 2}).encode("utf-8") + b"\n"
    path.write_bytes(good + b"\n" + b"\xff\xfe\n" + b"[1, 2]\n" + newer + b'{"version":1,"time":NaN}\n' + good)
    contents = read_ledger(path)
    assert contents.records == (_record(), _record())
    assert [skipped.line_number for skipped in contents.skipped] == [3, 4, 5, 6]
    assert "not UTF-8" in contents.skipped[0].reason
    assert "version 2" in contents.skipped[2].reason


def test_reading_a_missing_ledger_names_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "absent.jsonl"
    with pytest.raises(LedgerError, match=re.escape(str(path))):
        read_records(path)


def _refused(path: pathlib.Path, problem: str) -> LedgerError:
    """Append to ``path``, which must fail naming the path, the record and the problem; return the error."""
    record = _record(message=f"failed with {PASSWORD}")
    with pytest.raises(LedgerError) as caught:
        append_records(path, [record])
    message = str(caught.value)
    assert str(path) in message
    assert RECORD_NAME in message
    assert problem in message
    assert "not written: 1 record(s)" in message
    for form in _forms(PASSWORD):
        assert form not in message
    return caught.value


def test_a_directory_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ledger"
    path.mkdir()
    _refused(path, "is a directory")
    assert not list(path.iterdir())


def test_a_missing_parent_is_refused_naming_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "missing" / "ledger.jsonl"
    _refused(path, f"the parent directory {tmp_path / 'missing'} does not exist")
    assert not list(tmp_path.iterdir())


def test_a_fifo_is_refused_and_nothing_is_written(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ledger.fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # with a reader there, a write would succeed and stay
    try:
        _refused(path, "is not a regular file (a FIFO)")
        assert os.read(reader, 100) == b""  # no writer left and nothing in the pipe
    finally:
        os.close(reader)


def test_a_device_is_refused(tmp_path: pathlib.Path) -> None:
    if not os.path.exists(os.devnull):
        pytest.skip("no /dev/null")
    link = tmp_path / "ledger.jsonl"
    link.symlink_to(os.devnull)
    _refused(link, "is not a regular file (a character device)")


def test_a_dangling_symbolic_link_is_refused(tmp_path: pathlib.Path) -> None:
    link = tmp_path / "ledger.jsonl"
    link.symlink_to(tmp_path / "nowhere.jsonl")
    _refused(link, "is a symbolic link to a file that does not exist")
    assert not (tmp_path / "nowhere.jsonl").exists()


def _in_unprivileged_child(function: Callable[[], str]) -> str:
    """Run ``function`` in a forked child as nobody (root ignores file modes) and return what it returned."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            answer = function()
        except BaseException as exc:  # pylint: disable=broad-exception-caught
            # Anything the child meets is reported to the parent.
            answer, status = f"child failed: {type(exc).__name__}: {exc}", 1
        os.write(write_end, answer.encode("utf-8", "backslashreplace"))
        # A forked child must not run pytest's cleanup.
        os._exit(status)  # pylint: disable=protected-access
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode("utf-8")


def test_a_read_only_file_is_refused_and_unchanged() -> None:
    # Not tmp_path: its parents are 0700 root, so an unprivileged child could not reach the file.
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ledger-ro-"))
    try:
        directory.chmod(0o755)
        path = directory / "ledger.jsonl"
        path.write_text(_record(action="remove").to_line(), encoding="utf-8")
        path.chmod(0o444)
        before = path.read_bytes()

        def attempt() -> str:
            try:
                _refused(path, "cannot be opened for appending (Permission denied)")
            except AssertionError as exc:
                return f"assertion failed: {exc}"
            return "refused"

        answer = _in_unprivileged_child(attempt) if os.geteuid() == 0 else attempt()
        assert answer == "refused"
        assert path.read_bytes() == before
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
    finally:
        shutil.rmtree(directory)


def test_a_failed_write_is_undone_and_reported(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.jsonl"
    first = _record(action="remove").to_line().encode("utf-8")
    path.write_bytes(first)
    real_write = os.write
    calls: list[int] = []

    def disk_full_halfway(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_ledger.os, "write", disk_full_halfway)
    with pytest.raises(LedgerError) as caught:
        append_records(path, [_record(), _record(server="EX02")])
    monkeypatch.undo()
    message = str(caught.value)
    assert str(path) in message
    assert "No space left on device" in message
    assert "the partial write was undone" in message
    assert "not written: 2 record(s)" in message and "on EX02: enable_services" in message
    assert len(calls) == 2
    assert path.read_bytes() == first


# --- the option and its documentation -----------------------------------------------------------------------


def test_the_doc_fragment_documents_the_argspec() -> None:
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    assert documented.keys() == LEDGER_ARGSPEC.keys() == {"ledger", "ledger_webhook", "ledger_run_id"}
    assert documented["ledger_run_id"]["type"] == LEDGER_ARGSPEC["ledger_run_id"]["type"] == "str"
    assert documented["ledger"]["type"] == LEDGER_ARGSPEC["ledger"]["type"] == "path"
    assert "default" not in documented["ledger"] and "default" not in LEDGER_ARGSPEC["ledger"]
    webhook = documented["ledger_webhook"]
    assert webhook["type"] == "dict" and isinstance(webhook["description"], list)
    spec = LEDGER_ARGSPEC["ledger_webhook"]["options"]
    assert webhook["suboptions"].keys() == spec.keys()
    for name, option in spec.items():
        doc = webhook["suboptions"][name]
        assert doc["type"] == option["type"], name
        assert doc.get("default") == option.get("default"), name
        assert bool(doc.get("required")) == bool(option.get("required")), name
    assert spec["url"]["no_log"] and spec["headers"]["no_log"]
    assert ledger_argspec()["ledger"] == {"type": "path"}
    copy = ledger_argspec()
    copy["ledger"]["type"] = "str"
    copy["ledger_webhook"]["options"]["url"]["required"] = False
    assert LEDGER_ARGSPEC["ledger"]["type"] == "path"
    assert LEDGER_ARGSPEC["ledger_webhook"]["options"]["url"]["required"] is True


def test_the_change_record_return_snippet_matches_the_record() -> None:
    doc = _ledger.__doc__ or ""
    snippet = doc[doc.index("::\n") + 3:]
    returned = yaml.safe_load(snippet.replace("\n    ", "\n"))
    contains = returned["change_record"]["contains"]
    assert list(contains) == list(RECORD_KEYS)
    assert contains["version"]["sample"] == LEDGER_VERSION
    assert contains["time"]["sample"] == "2026-11-25T08:00:00Z"
