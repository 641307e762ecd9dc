# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PowerShell syntax gate: parse every .ps1/.psm1 file with tree-sitter-powershell.

No PowerShell runs on our CI machines, so this is the check that our remote scripts at least parse.
A file fails when its syntax tree holds an ERROR or MISSING node. tree-sitter-powershell misparses a
few valid constructs (generic type names such as List`1[...], nested types [Outer+Inner], loop labels);
such a construct is tolerated when the source line where the error starts matches a regular expression
in the allowlist file (one per line, each with a comment saying why the construct is valid).

Usage: python tools/ps_syntax_check.py [--allowlist FILE] [PATH ...]   (default: plugins, when it exists)
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import re
import sys
from collections.abc import Iterable, Iterator, Sequence

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

SUFFIXES = (".ps1", ".psm1")
DEFAULT_PATHS = (pathlib.Path("plugins"),)
DEFAULT_ALLOWLIST = pathlib.Path(__file__).with_name("ps_syntax_allowlist.txt")
UTF8_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass(frozen=True)
class SyntaxProblem:
    """One ERROR or MISSING node, located 1-based (column counted in characters)."""

    path: pathlib.Path
    line: int
    column: int
    kind: str
    source_line: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.kind}: {self.source_line.strip()!r}"


def make_parser() -> Parser:
    """Return a tree-sitter parser for PowerShell."""
    return Parser(Language(tree_sitter_powershell.language()))


def load_allowlist(path: pathlib.Path) -> list[re.Pattern[str]]:
    """Read the allowlist: one regular expression per line; blank lines and # comments are ignored."""
    if not path.is_file():
        return []
    entries = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [re.compile(entry) for entry in entries if entry and not entry.startswith("#")]


def has_no_statements(root: Node) -> bool:
    """Tell whether a script is blank or comments only, which the grammar parses as one ERROR root."""
    return root.is_error and all(child.type == "comment" or not child.text.strip() for child in root.children)


def error_nodes(root: Node) -> Iterator[Node]:
    """Yield the outermost ERROR nodes and every MISSING node, in document order."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            yield node
            continue
        if node.has_error:
            stack.extend(reversed(node.children))


def check_source(path: pathlib.Path, source: bytes, parser: Parser,
                 allowlist: Sequence[re.Pattern[str]] = ()) -> list[SyntaxProblem]:
    """Return the syntax problems of one script that no allowlist entry tolerates."""
    source = source.removeprefix(UTF8_BOM)
    lines = source.splitlines()
    root = parser.parse(source).root_node
    if has_no_statements(root):
        return []
    problems = []
    for node in error_nodes(root):
        row, byte_column = node.start_point
        raw_line = lines[row] if row < len(lines) else b""
        text_line = raw_line.decode("utf-8", errors="replace")
        if any(pattern.search(text_line) for pattern in allowlist):
            continue
        column = len(raw_line[:byte_column].decode("utf-8", errors="replace")) + 1
        kind = f"missing {node.type}" if node.is_missing else "syntax error"
        problems.append(SyntaxProblem(path, row + 1, column, kind, text_line))
    return problems


def find_scripts(paths: Iterable[pathlib.Path]) -> list[pathlib.Path]:
    """Expand files and directories into the sorted list of PowerShell scripts they hold."""
    found: set[pathlib.Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        elif path.suffix.lower() in SUFFIXES:
            found.add(path)
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    """Check the scripts; print each problem and a summary; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=pathlib.Path)
    parser.add_argument("--allowlist", type=pathlib.Path, default=DEFAULT_ALLOWLIST)
    args = parser.parse_args(argv)
    if not args.paths:
        args.paths = [path for path in DEFAULT_PATHS if path.exists()]

    missing = [path for path in args.paths if not path.exists()]
    if missing:
        parser.error(f"no such file or directory: {', '.join(map(str, missing))}")

    ps_parser = make_parser()
    allowlist = load_allowlist(args.allowlist)
    scripts = find_scripts(args.paths)
    failed = 0
    for script in scripts:
        problems = check_source(script, script.read_bytes(), ps_parser, allowlist)
        if problems:
            failed += 1
            print(f"{problems[0]}  ({len(problems)} error node(s) in this file)")
    print(f"ps-syntax: {len(scripts)} PowerShell file(s) checked, {failed} with syntax errors")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
