# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that meta/runtime.yml's action group lists exactly the collection's modules.

The `exchange` action group lets users set connection options once with module_defaults
(`group/exchange.pki.exchange`). A module missing from it silently ignores those defaults, so the group
must equal the set of plugins/modules/*.py (a module's documentation file; its code may be a .ps1).

Usage: python tools/check_runtime_metadata.py [COLLECTION_ROOT]   (default: the current directory)
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

import yaml

ACTION_GROUP = "exchange"


def module_names(collection_root: pathlib.Path) -> set[str]:
    """Return the names of the modules documented in plugins/modules/."""
    modules_dir = collection_root / "plugins" / "modules"
    return {path.stem for path in modules_dir.glob("*.py") if path.stem != "__init__"}


def action_group(collection_root: pathlib.Path, group: str = ACTION_GROUP) -> list[str]:
    """Return the entries of one action group of meta/runtime.yml (empty when it is absent)."""
    runtime = yaml.safe_load((collection_root / "meta" / "runtime.yml").read_text(encoding="utf-8")) or {}
    return list((runtime.get("action_groups") or {}).get(group) or [])


def problems(collection_root: pathlib.Path) -> list[str]:
    """Describe every difference between the action group and the modules; empty when they agree."""
    entries = action_group(collection_root)
    modules = module_names(collection_root)
    found: list[str] = []
    duplicates = sorted({entry for entry in entries if entries.count(entry) > 1})
    if duplicates:
        found.append(f"listed more than once in action group {ACTION_GROUP!r}: {', '.join(duplicates)}")
    missing = sorted(modules - set(entries))
    if missing:
        found.append(f"modules missing from action group {ACTION_GROUP!r}: {', '.join(missing)}")
    unknown = sorted(set(entries) - modules)
    if unknown:
        found.append(f"action group {ACTION_GROUP!r} lists modules that do not exist: {', '.join(unknown)}")
    if entries != sorted(entries):
        found.append(f"action group {ACTION_GROUP!r} is not sorted: {', '.join(entries)}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Print the problems found in the given collection root; return the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    root = pathlib.Path(args[0] if args else ".")
    found = problems(root)
    for problem in found:
        print(f"meta/runtime.yml: {problem}")
    if not found:
        print(f"meta/runtime.yml: action group {ACTION_GROUP!r} matches plugins/modules/")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
