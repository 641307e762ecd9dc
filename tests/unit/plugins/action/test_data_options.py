# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""DATA_OPTIONS: a fleet's facts or a plan given to a module is checked as a dictionary and read as it is, never
deep-copied by ansible-core's validator (for 10,000 servers that copy took about as long as writing the report), and
never changed by the module."""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import pytest

from tests.unit.plugins.action.action_harness import failed_result
from tests.unit.plugins.action.test_hostile_options import (  # pylint: disable=unused-import
    MODULES,
    no_network,  # noqa: F401 - a fixture, used by name
    run_hostile,
)


class NoCopy(dict):  # type: ignore[type-arg]
    """A mapping that fails the test when it is deep-copied."""

    def __deepcopy__(self, memo: Any) -> Any:
        raise AssertionError("a data option was deep-copied")


WITH_DATA = [module for module in MODULES if module.plugin.ActionModule.DATA_OPTIONS]


def test_the_modules_that_take_a_fleets_data_declare_it() -> None:
    assert {module.name: module.plugin.ActionModule.DATA_OPTIONS for module in WITH_DATA} == {
        "fleet_alert": ("facts",), "fleet_report": ("facts",), "renewal_plan": ("facts",),
        "renewal_status": ("plan", "facts"),
    }


@pytest.mark.usefixtures("no_network", "frozen_clock")
@pytest.mark.parametrize("module", WITH_DATA, ids=lambda module: module.name)
def test_data_options_are_read_uncopied_and_unchanged(module: Any, tmp_path: pathlib.Path) -> None:
    args = module.bases[0](tmp_path)
    expected = run_hostile(module.plugin.ActionModule, copy.deepcopy(args), [])
    for name in module.plugin.ActionModule.DATA_OPTIONS:
        if isinstance(args.get(name), dict):
            args[name] = NoCopy(args[name])
    given = json.dumps(args, sort_keys=True)
    result = run_hostile(module.plugin.ActionModule, args, [])
    assert json.dumps(args, sort_keys=True) == given  # the module changed none of it
    assert "exception" not in result and result.get("msg") == expected.get("msg")
    assert result.get("failed") == expected.get("failed")


@pytest.mark.parametrize("value", ['{"ex1": null}', ["ex1"]])
def test_a_data_option_that_is_no_mapping_still_meets_the_validator(value: Any, tmp_path: pathlib.Path) -> None:
    fleet_report = next(module for module in WITH_DATA if module.name == "fleet_report")
    args = {**fleet_report.bases[0](tmp_path), "facts": value}
    if isinstance(value, str):  # core parses JSON text for a dict option
        result = run_hostile(fleet_report.plugin.ActionModule, args, [])
        assert not result.get("failed"), result
    else:
        failed_result(run_hostile(fleet_report.plugin.ActionModule, args, []), "argument 'facts' is of type list")


def test_deep_data_is_read_without_a_crash_and_found_unusable(tmp_path: pathlib.Path) -> None:
    renewal_plan = next(module for module in WITH_DATA if module.name == "renewal_plan")
    deep: dict[str, Any] = {}
    for _level in range(5000):
        deep = {"a": deep}
    args = {**renewal_plan.bases[0](tmp_path), "facts": deep}
    result = run_hostile(renewal_plan.plugin.ActionModule, args, [])
    assert not result.get("failed") and result["unavailable_hosts"] == {"a": "no usable facts (no certificates list)"}
