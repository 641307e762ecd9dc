# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check that meta/runtime.yml's action group lists exactly the modules that open an Exchange session.

The `exchange` action group lets users set the Exchange session options (exchange_uri, exchange_username,
...) once with module_defaults (`group/exchange.pki.exchange`). A module that takes those options but is
missing from the group silently ignores the defaults; a controller-only module (tls_probe, fleet_report)
in the group would reject them. So the group must equal the set of plugins/modules/*.py whose
DOCUMENTATION extends the `exchange.pki.exchange_session` doc fragment.

Usage: python tools/check_runtime_metadata.py [COLLECTION_ROOT]   (default: the current directory)
"""

from __future__ import annotations

import ast
import pathlib
import sys
from collections.abc import Sequence

import yaml

ACTION_GROUP = "exchange"
SESSION_FRAGMENT = "exchange.pki.exchange_session"


def documentation(module_file: pathlib.Path) -> dict:
    """Return a module file's DOCUMENTATION, parsed without importing the module."""
    for node in ast.parse(module_file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value)) or {}
    raise ValueError(f"{module_file}: no DOCUMENTATION")


def module_names(collection_root: pathlib.Path) -> set[str]:
    """Return the modules documented in plugins/modules/ that take the Exchange session options."""
    modules_dir = collection_root / "plugins" / "modules"
    return {
        path.stem
        for path in modules_dir.glob("*.py")
        if path.stem != "__init__"
        and SESSION_FRAGMENT in (documentation(path).get("extends_documentation_fragment") or [])
    }


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
        found.append(
            f"action group {ACTION_GROUP!r} lists modules that do not exist or take no Exchange session options: "
            f"{', '.join(unknown)}"
        )
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
        print(f"meta/runtime.yml: action group {ACTION_GROUP!r} matches the modules that extend {SESSION_FRAGMENT}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
