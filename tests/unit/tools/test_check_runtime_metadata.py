# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the action group drift check (tools/check_runtime_metadata.py)."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from tools import check_runtime_metadata

SESSION = "exchange.pki.exchange_session"


def module_doc(name: str, fragment: str) -> str:
    """A module file whose DOCUMENTATION extends one doc fragment."""
    return f"DOCUMENTATION = {yaml.safe_dump({'module': name, 'extends_documentation_fragment': [fragment]})!r}\n"


def make_collection(root: pathlib.Path, modules: list[str], group: list[str] | None,
                    controller_only: tuple[str, ...] = ("probe",)) -> pathlib.Path:
    """Write session modules (<name>.py + .ps1), controller-only modules and meta/runtime.yml."""
    (root / "plugins" / "modules").mkdir(parents=True)
    (root / "meta").mkdir()
    for module in modules:
        (root / "plugins" / "modules" / f"{module}.py").write_text(module_doc(module, "exchange.pki.exchange_session"))
        (root / "plugins" / "modules" / f"{module}.ps1").write_text("$null\n")
    for module in controller_only:
        (root / "plugins" / "modules" / f"{module}.py").write_text(module_doc(module, "exchange.pki.policy"))
    runtime = {"requires_ansible": ">=2.16.0"}
    if group is not None:
        runtime["action_groups"] = {"exchange": group}
    (root / "meta" / "runtime.yml").write_text(yaml.safe_dump(runtime))
    return root


@pytest.mark.parametrize(
    ("modules", "group", "expected"),
    [
        (["a_mod", "b_mod"], ["a_mod", "b_mod"], []),
        ([], [], []),
        (["a_mod", "b_mod"], ["a_mod"], ["modules missing from action group 'exchange': b_mod"]),
        (["a_mod"], ["a_mod", "gone"],
         [f"action group 'exchange' lists modules that do not exist or do not extend {SESSION}: gone"]),
        (["a_mod"], ["a_mod", "probe"],
         [f"action group 'exchange' lists modules that do not exist or do not extend {SESSION}: probe"]),
        (["a_mod"], None, ["modules missing from action group 'exchange': a_mod"]),
        (["a_mod", "b_mod"], ["b_mod", "a_mod"], ["action group 'exchange' is not sorted: b_mod, a_mod"]),
        (["a_mod"], ["a_mod", "a_mod"], ["listed more than once in action group 'exchange': a_mod"]),
    ],
    ids=["equal", "both-empty", "missing", "unknown", "controller-only", "no-group", "unsorted", "duplicate"],
)
def test_problems(tmp_path, modules, group, expected):
    assert check_runtime_metadata.problems(make_collection(tmp_path, modules, group)) == expected


def test_init_file_is_not_a_module(tmp_path):
    root = make_collection(tmp_path, ["a_mod"], ["a_mod"])
    (root / "plugins" / "modules" / "__init__.py").write_text("")

    assert check_runtime_metadata.problems(root) == []


@pytest.mark.parametrize(("group", "status"), [(["a_mod"], 0), ([], 1)], ids=["ok", "drift"])
def test_main_exit_code(tmp_path, capsys, group, status):
    root = make_collection(tmp_path, ["a_mod"], group)

    assert check_runtime_metadata.main([str(root)]) == status
    assert capsys.readouterr().out.startswith("meta/runtime.yml: ")


def test_lifecycle_group_follows_the_ledger_fragment(tmp_path):
    """A changing module (extends exchange.pki.ledger) must be in the lifecycle group, and only such modules."""
    root = make_collection(tmp_path, ["a_mod"], ["a_mod"])
    changer = root / "plugins" / "modules" / "changer.py"
    changer.write_text(module_doc("changer", "exchange.pki.ledger"))

    assert check_runtime_metadata.problems(root) == ["modules missing from action group 'lifecycle': changer"]

    runtime = yaml.safe_load((root / "meta" / "runtime.yml").read_text())
    runtime["action_groups"]["lifecycle"] = ["a_mod", "changer"]
    (root / "meta" / "runtime.yml").write_text(yaml.safe_dump(runtime))

    assert check_runtime_metadata.problems(root) == [
        "action group 'lifecycle' lists modules that do not exist or do not extend exchange.pki.ledger: a_mod",
    ]
