# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that each action group of meta/runtime.yml lists exactly the modules that take its shared options.

- `exchange` lets users set the Exchange session options (exchange_uri, exchange_username, ...) once with
  module_defaults (`group/exchange.pki.exchange`): the modules whose DOCUMENTATION extends the
  `exchange.pki.exchange_session` doc fragment.
- `lifecycle` lets them set the `ledger` path once (`group/exchange.pki.lifecycle`): the modules whose
  DOCUMENTATION extends `exchange.pki.ledger`, i.e. every module that changes something.

A module that takes the options but is missing from the group silently ignores the defaults; a module in
the group that does not take them would reject them. So each group must equal its set of modules.

Usage: python tools/check_runtime_metadata.py [COLLECTION_ROOT]   (default: the current directory)
"""

from __future__ import annotations

import ast
import pathlib
import sys
from collections.abc import Sequence

import yaml

#: Each action group and the doc fragment its members extend.
GROUPS = {"exchange": "exchange.pki.exchange_session", "lifecycle": "exchange.pki.ledger"}


def documentation(module_file: pathlib.Path) -> dict:
    """Return a module file's DOCUMENTATION, parsed without importing the module."""
    for node in ast.parse(module_file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value)) or {}
    raise ValueError(f"{module_file}: no DOCUMENTATION")


def module_names(collection_root: pathlib.Path, fragment: str) -> set[str]:
    """Return the modules documented in plugins/modules/ whose DOCUMENTATION extends ``fragment``."""
    modules_dir = collection_root / "plugins" / "modules"
    return {
        path.stem
        for path in modules_dir.glob("*.py")
        if path.stem != "__init__"
        and fragment in (documentation(path).get("extends_documentation_fragment") or [])
    }


def action_group(collection_root: pathlib.Path, group: str) -> list[str]:
    """Return the entries of one action group of meta/runtime.yml (empty when it is absent)."""
    runtime = yaml.safe_load((collection_root / "meta" / "runtime.yml").read_text(encoding="utf-8")) or {}
    return list((runtime.get("action_groups") or {}).get(group) or [])


def problems(collection_root: pathlib.Path) -> list[str]:
    """Describe every difference between the action groups and the modules; empty when they agree."""
    found: list[str] = []
    for group, fragment in GROUPS.items():
        found.extend(group_problems(collection_root, group, fragment))
    return found


def group_problems(collection_root: pathlib.Path, group: str, fragment: str) -> list[str]:
    """Describe every difference between one action group and the modules extending its fragment."""
    entries = action_group(collection_root, group)
    modules = module_names(collection_root, fragment)
    found: list[str] = []
    duplicates = sorted({entry for entry in entries if entries.count(entry) > 1})
    if duplicates:
        found.append(f"listed more than once in action group {group!r}: {', '.join(duplicates)}")
    missing = sorted(modules - set(entries))
    if missing:
        found.append(f"modules missing from action group {group!r}: {', '.join(missing)}")
    unknown = sorted(set(entries) - modules)
    if unknown:
        found.append(
            f"action group {group!r} lists modules that do not exist or do not extend {fragment}: "
            f"{', '.join(unknown)}"
        )
    if entries != sorted(entries):
        found.append(f"action group {group!r} is not sorted: {', '.join(entries)}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Print the problems found in the given collection root; return the process exit code."""
    args = sys.argv[1:] if argv is None else argv
    root = pathlib.Path(args[0] if args else ".")
    found = problems(root)
    for problem in found:
        print(f"meta/runtime.yml: {problem}")
    if not found:
        for group, fragment in GROUPS.items():
            print(f"meta/runtime.yml: action group {group!r} matches the modules that extend {fragment}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
