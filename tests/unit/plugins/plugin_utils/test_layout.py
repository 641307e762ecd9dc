# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The layout of plugin_utils (../shared/DESIGN.md section 7): data flows one way, no import cycles.

Imports under ``if TYPE_CHECKING:`` count too: a cycle there is still two files that each need the other.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PLUGIN_UTILS = pathlib.Path(__file__).parents[4] / "plugins" / "plugin_utils"
PREFIX = "ansible_collections.exchange.pki.plugins.plugin_utils."
BANNER = "# FOR INTERNAL COLLECTION USE ONLY"


def _imports(path: pathlib.Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(PREFIX):
                names.add(node.module.removeprefix(PREFIX))
            elif node.module == PREFIX.rstrip("."):
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name.removeprefix(PREFIX) for alias in node.names if alias.name.startswith(PREFIX))
    return names - {path.stem}


def _graph() -> dict[str, set[str]]:
    return {path.stem: _imports(path) for path in sorted(PLUGIN_UTILS.glob("_*.py"))}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)) is not None:
                return found
        path.pop()
        state[module] = 2
        return None

    for module in graph:
        if module not in state and (found := visit(module)) is not None:
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"_a": {"_b"}, "_b": {"_c"}, "_c": {"_a"}}) == ["_a", "_b", "_c", "_a"]
    assert _cycle({"_a": {"_b"}, "_b": set()}) is None


def test_plugin_utils_has_no_import_cycle() -> None:
    graph = _graph()
    assert {"_snapshot", "_findings", "_facts", "_time"} <= graph.keys()
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


@pytest.mark.parametrize(
    ("module", "must_not_import"),
    [
        ("_time", {"_values", "_certificate", "_snapshot", "_findings", "_facts", "_report", "_policy"}),
        ("_snapshot", {"_findings", "_facts", "_references", "_report", "_policy"}),  # read before decide
        ("_findings", {"_facts", "_report"}),  # decide before shape and report
    ],
)
def test_data_flows_one_way(module: str, must_not_import: set[str]) -> None:
    assert not _graph()[module] & must_not_import


@pytest.mark.parametrize("path", sorted(PLUGIN_UTILS.glob("_*.py")), ids=lambda path: path.name)
def test_every_internal_file_carries_the_banner(path: pathlib.Path) -> None:
    assert BANNER in path.read_text(encoding="utf-8")
