# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a built collection tarball: the metadata is there and no local state leaked into it.

galaxy.yml's build_ignore keeps virtualenvs, caches and test output out of the artifact; this fails the
build when a new kind of local state slips through (a forgotten entry can ship hundreds of megabytes).

Usage: python tools/check_build.py dist/exchange-pki-<version>.tar.gz
"""

from __future__ import annotations

import re
import sys
import tarfile
from collections.abc import Iterable, Sequence

REQUIRED = ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml")
# Hidden top-level entries are local state (.venv, .ansible, .cache, .lab, .mypy_cache, ...), never content.
FORBIDDEN = re.compile(r"^\.[^/]+|^(?:dist|tests/output)(?:/|$)|(?:^|/)__pycache__(?:/|$)|\.py[co]$")


def problems(names: Iterable[str]) -> list[str]:
    """Return what is wrong with a tarball holding these member names (empty when it is fine)."""
    members = {name.removeprefix("./") for name in names}
    found = [f"missing: {name}" for name in REQUIRED if name not in members]
    found += [f"must not be shipped: {name}" for name in sorted(members) if FORBIDDEN.search(name)]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Check each tarball given; return the process exit code."""
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print("usage: check_build.py TARBALL...", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        with tarfile.open(path) as tarball:
            names = tarball.getnames()
        found = problems(names)
        for problem in found:
            print(f"{path}: {problem}")
        if found:
            status = 1
        else:
            print(f"{path}: {len(names)} members, no local state")
    return status


if __name__ == "__main__":
    sys.exit(main())
