# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a controller-only action plugin without a play, and compare a module's docs with its argument spec."""

from __future__ import annotations

import dataclasses
import re
from types import ModuleType, SimpleNamespace
from typing import Any

import yaml
from ansible.plugins.action import ActionBase


@dataclasses.dataclass
class FakeTask:
    """The attributes of a Task that ActionBase and exchange.pki's base class read."""

    args: dict[str, Any]
    check_mode: bool = False
    async_val: int = 0
    action: str = "exchange.pki.plugin"
    resolved_action: str = "exchange.pki.plugin"
    diff: bool = False


def run_action(cls: type[ActionBase], args: dict[str, Any], *, check_mode: bool = False) -> dict[str, Any]:
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    plugin = cls(FakeTask(dict(args), check_mode), connection, SimpleNamespace(), None, None, None)
    return plugin.run(task_vars={})


def _documented(options: dict[str, Any]) -> dict[str, Any]:
    spec = {}
    for name, doc in options.items():
        entry = {key: doc[key] for key in ("type", "required", "default", "choices", "elements") if key in doc}
        if "suboptions" in doc:
            entry["options"] = _documented(doc["suboptions"])
        spec[name] = entry
    return spec


def _normalised(spec: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for name, entry in spec.items():
        kept = {key: entry[key] for key in ("type", "required", "default", "choices", "elements") if key in entry}
        if kept.get("required") is False:
            del kept["required"]
        if "options" in entry:
            kept["options"] = _normalised(entry["options"])
        result[name] = kept
    return result


def documented_spec(module: ModuleType) -> dict[str, Any]:
    """The options of a module's DOCUMENTATION in argument-spec form (type, required, default, choices...)."""
    return _normalised(_documented(yaml.safe_load(module.DOCUMENTATION)["options"]))


def argument_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return _normalised(spec)


def failed_result(result: Any, match: str | None = None) -> dict[str, Any]:
    """``result`` when it is a failed task result, as ansible-core reports it (exchange.pki's plugins return their
    failures, so that a task's ``failed_when`` applies to them); ``match``, a regular expression, must be found in its
    message, as with ``pytest.raises(match=...)``."""
    assert isinstance(result, dict) and result.get("failed") is True, f"the task did not fail: {result!r:.1000}"
    assert result.get("changed") is False, result
    assert isinstance(result.get("msg"), str) and result["msg"], result
    if match is not None:
        assert re.search(match, result["msg"]), f"{match!r} is not found in {result['msg']!r}"
    return result
