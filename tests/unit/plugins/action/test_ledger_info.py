# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.ledger_info over ledgers the collection's own writers made (and hostile ones)."""

from __future__ import annotations

import json
import os
import pathlib
import tracemalloc
from typing import Any

import pytest

from ansible_collections.exchange.pki.plugins.action import ledger_info
from ansible_collections.exchange.pki.plugins.modules import ledger_info as ledger_info_docs
from ansible_collections.exchange.pki.plugins.plugin_utils import _ledger
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import argument_spec, documented_spec, failed_result, run_action
from tests.unit.plugins.action.ledger_lifecycle import IDENTITY, PLAN_ID, Lifecycle, write_lifecycle


def run(args: dict[str, Any]) -> dict[str, Any]:
    return run_action(ledger_info.ActionModule, args)


def lines(path: pathlib.Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def life(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, frozen_clock: Any) -> Lifecycle:
    return write_lifecycle(tmp_path / "ledger.jsonl", monkeypatch)


def test_the_documentation_mirrors_the_argument_spec() -> None:
    assert documented_spec(ledger_info_docs) == argument_spec(dict(ledger_info.ARGUMENT_SPEC.argument_spec))


def test_the_story_of_a_renewal_from_request_to_removal(life: Lifecycle) -> None:
    result = run({"ledger": str(life.ledger), "identity": IDENTITY})

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    stored = lines(life.ledger)
    assert result["records"] == stored  # every record of the file is this certificate's, exactly as stored
    assert result["count"] == result["matched"] == 5
    (story,) = result["stories"].values()
    assert list(result["stories"]) == [IDENTITY]
    assert [step["stage"] for step in story] == ["requested", "imported", "bound", "verified", "removed"]
    assert [step["action"] for step in story] == [
        "certificate_request", "import", "enable_services", "renewal_done", "remove"]
    assert [step["time"] for step in story] == [record["time"] for record in stored]
    assert story[0]["time"] < story[-1]["time"]
    assert all(step["result"] == "changed" for step in story)
    assert story[1]["after"]["certificate"]["thumbprint"] == life.new
    assert story[4]["before"]["thumbprint"] == life.old and story[4]["server"] == "EX1"
    assert story[3]["plan_id"] == PLAN_ID and story[3]["module"] == "exchange.pki.ledger_record"
    assert story[2]["who"].endswith(" as CONTOSO\\ansible")
    assert set(story[0]) == set(_ledger.STORY_KEYS)


def test_each_filter_narrows_the_answer(life: Lifecycle) -> None:
    base = {"ledger": str(life.ledger)}
    by_server = run({**base, "server": "ex1"})  # case does not matter
    assert [r["action"] for r in by_server["records"]] == ["certificate_request", "import", "enable_services", "remove"]
    assert run({**base, "server": "organization"})["count"] == 1

    pasted = "\u200e" + " ".join(life.new[i:i + 2].lower() for i in range(0, 40, 2))
    by_thumbprint = run({**base, "thumbprint": pasted})
    # the removal names the new certificate too: it took over SMTP from the old one (its references' stand_in)
    assert [r["action"] for r in by_thumbprint["records"]] == ["import", "enable_services", "renewal_done", "remove"]
    # binding the new one took IIS, IMAP and POP from it, renewal_done names it, remove removed it
    assert [r["action"] for r in run({**base, "thumbprint": life.old})["records"]] == [
        "enable_services", "renewal_done", "remove"]

    assert [r["action"] for r in run({**base, "plan_id": PLAN_ID})["records"]] == ["renewal_done"]
    assert [r["action"] for r in run({**base, "actions": ["remove", "import", "remove"]})["records"]] == [
        "import", "remove"]

    stored = lines(life.ledger)
    window = run({**base, "since": stored[1]["time"], "until": stored[2]["time"]})
    assert window["records"] == stored[1:3]
    day = NOW.date().isoformat()
    assert run({**base, "since": day, "until": day})["count"] == 5  # a date alone: the whole day
    assert run({**base, "until": NOW.isoformat()})["count"] == 0  # the first record came a minute later
    assert run({**base, "since": "2026-11-25T09:03:00+01:00"})["records"] == stored[2:]  # 08:03Z, an offset
    # the ends of the calendar are filters like any other: from the year 1, up to the last day of 9999
    assert run({**base, "since": "0001-01-01", "until": "9999-12-31"})["records"] == stored

    latest = run({**base, "limit": 2})
    assert latest["records"] == stored[-2:] and latest["count"] == 2 and latest["matched"] == 5
    assert [step["action"] for step in latest["stories"][IDENTITY]] == ["renewal_done", "remove"]
    assert run({**base, "identity": "id-000000000000"}) | {"changed": False} == {
        "changed": False, "records": [], "count": 0, "matched": 0, "stories": {}, "skipped": []}


def test_a_missing_ledger_is_an_empty_answer(tmp_path: pathlib.Path) -> None:
    result = run({"ledger": str(tmp_path / "never-written.jsonl"), "identity": IDENTITY})
    assert result.get("failed") is not True, result.get("msg")
    assert (result["records"], result["count"], result["stories"]) == ([], 0, {})


def test_a_torn_line_is_an_error_naming_file_and_line_unless_skipped(life: Lifecycle) -> None:
    stored = life.ledger.read_text(encoding="utf-8")
    with life.ledger.open("a", encoding="utf-8") as handle:
        handle.write(stored.splitlines()[0][:70])  # a writer killed half way through its line
    record = _ledger.make_record(server="EX2", module="exchange.pki.certificate_services", action="enable_services",
                                 result="changed", before={}, after={"thumbprint": life.new})
    _ledger.append_records(life.ledger, [record])  # the next writer starts on a new line

    result = run({"ledger": str(life.ledger)})
    assert result["failed"] is True
    assert result["msg"].startswith(f"ledger {life.ledger}, line 6: not a ledger record: not a complete JSON line")
    assert "skip_invalid" in result["msg"]

    skipped = run({"ledger": str(life.ledger), "skip_invalid": True})
    assert skipped["skipped"] == [{"line": 6, "reason": "not a complete JSON line (torn write?)"}]
    assert skipped["count"] == 6 and skipped["records"][-1]["server"] == "EX2"
    assert [step["stage"] for step in skipped["stories"][IDENTITY]][-1] == "bound"  # EX2's record joins the story


@pytest.mark.parametrize(("line", "reason"), [
    ('{"hello": "world"}', "unsupported change record version None"),
    ('{"version": 2, "time": "2026-11-25T08:00:00Z"}', "unsupported change record version 2"),
    ('["not", "an", "object"]', "a change record must be a JSON object"),
    ('{"version": 1, "time": "2026-11-25T08:00:00Z"}', "invalid change record: missing host"),
    ("\xff\xfe garbage", "not a complete JSON line"),
])
def test_a_foreign_line_is_an_error_naming_file_and_line(life: Lifecycle, line: str, reason: str) -> None:
    content = life.ledger.read_text(encoding="utf-8").splitlines(keepends=True)
    content.insert(2, line + "\n")
    life.ledger.write_text("".join(content), encoding="utf-8")

    result = run({"ledger": str(life.ledger), "identity": IDENTITY})
    assert result["failed"] is True
    assert result["msg"].startswith(f"ledger {life.ledger}, line 3: not a ledger record: ")
    assert reason in result["msg"]
    assert run({"ledger": str(life.ledger), "identity": IDENTITY, "skip_invalid": True})["count"] == 5


def test_a_huge_ledger_is_read_in_one_pass_with_bounded_memory(tmp_path: pathlib.Path, frozen_clock: Any) -> None:
    ledger = tmp_path / "huge.jsonl"
    thumbprints = [f"{number:040X}" for number in range(2000)]
    for _batch in range(3):  # 6,000 records, appended like 3 tasks would
        _ledger.append_records(ledger, [
            _ledger.make_record(server=f"EX{number % 50}", module="exchange.pki.certificate_services",
                                action="enable_services", result="changed",
                                before={"thumbprint": None, "services": ["IIS"] * 20},
                                after={"thumbprint": thumbprints[number], "services": ["IIS", "SMTP"] * 20})
            for number in range(2000)
        ])
    with ledger.open("ab") as handle:  # a 6 MiB line of garbage (no record is this long), then a valid line
        handle.write(b"x" * (6 << 20) + b"\n")
    _ledger.append_records(ledger, [_ledger.make_record(
        server="EX7", module="exchange.pki.certificate_remove", action="remove", result="changed",
        before={"thumbprint": thumbprints[7]}, after={"thumbprint": thumbprints[7], "present": False})])
    size = ledger.stat().st_size
    assert size > 9 << 20

    refused = run({"ledger": str(ledger), "server": "EX7"})
    assert refused["failed"] is True and "line 6001: not a ledger record: longer than 4194304 bytes" in refused["msg"]

    tracemalloc.start()
    try:
        result = run({"ledger": str(ledger), "thumbprint": thumbprints[7], "skip_invalid": True, "limit": 3})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.get("failed") is not True, result.get("msg")
    assert result["matched"] == 4 and result["count"] == 3  # three enable_services and the removal
    assert result["records"][-1]["action"] == "remove"
    assert result["skipped"] == [{"line": 6001, "reason": "longer than 4194304 bytes"}]
    # memory is bounded by the longest line read (4 MiB) and the read block, not by the file
    assert peak < _ledger.MAX_LINE_BYTES + (3 << 20) < size, f"peak {peak} bytes reading a {size} byte ledger"


@pytest.mark.parametrize(("args", "message"), [
    ({"identity": "id-1\r\nid-2"}, "identity contains a control character"),
    ({"server": "EX1\n"}, "server contains a control character"),
    ({"plan_id": "plan\x00"}, "plan_id contains a control character"),
    ({"actions": ["import", "remove\r"]}, r"actions\[1\] contains a control character"),
    ({"identity": "  "}, "identity is empty"),
    ({"server": "x" * 300}, "server is 300 characters long; at most 256"),
    ({"thumbprint": "ZZ" * 20}, "thumbprint: thumbprint 'ZZZZ"),
    ({"thumbprint": "AB" * 19}, "expected 40 hexadecimal digits"),
    ({"since": "2026-12-02", "until": "2026-12-01"}, r"since \(2026-12-02T00:00:00Z\) is after until"),
    ({"since": "2026-13-01"}, "since '2026-13-01' is not an ISO-8601 date"),
    ({"until": "yesterday"}, "until 'yesterday' is not an ISO-8601 date"),
    ({"since": "2026-12-01T08:00:00Z\n"}, "since contains a control character"),
    # valid ISO-8601 with no UTC form (before the first instant a datetime holds, after the last): no OverflowError
    ({"since": "0001-01-01T00:00:00+01:00"}, "since '0001-01-01T00:00:00\\+01:00' is not an ISO-8601 date"),
    ({"until": "9999-12-31T23:59:59-01:00"}, "until '9999-12-31T23:59:59-01:00' is not an ISO-8601 date"),
    ({"limit": 0}, "limit must be at least 1, got 0"),
    ({"limit": -5}, "limit must be at least 1"),
])
def test_bad_input_is_refused_naming_the_option(tmp_path: pathlib.Path, args: dict[str, Any], message: str) -> None:
    ledger = tmp_path / "ledger.jsonl"
    failed_result(run({"ledger": str(ledger), **args}), message)
    assert not ledger.exists()


def test_a_ledger_that_is_not_a_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    result = run({"ledger": str(tmp_path)})
    assert result["failed"] is True and result["msg"] == f"ledger {tmp_path}: is not a regular file (a directory)"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run({"ledger": str(fifo)})
    assert result["failed"] is True and "is not a regular file (a FIFO)" in result["msg"]
