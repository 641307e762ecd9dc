# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`make demo` installs requirements/demo.txt: a subset of the lock that still runs the collection and the lab."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[3]


def _names(path: pathlib.Path) -> dict[str, str]:
    """Requirement name (normalised) -> rest of the line, for every requirement line of a pip file."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        name, rest = re.match(r"([A-Za-z0-9._-]+)(?:\[[^\]]*\])?(.*)", line).groups()
        found[re.sub(r"[-_.]+", "-", name).lower()] = rest.strip()
    return found


def test_demo_requirements_are_constrained_by_the_lock():
    text = (ROOT / "requirements" / "demo.txt").read_text(encoding="utf-8")
    assert "--constraint dev.txt" in text.splitlines()
    lock = _names(ROOT / "requirements" / "dev.txt")
    demo = _names(ROOT / "requirements" / "demo.txt")
    assert sorted(name for name in demo if name not in lock) == []
    # Versions come from the lock only: a second pin here would drift from it.
    assert {name: rest for name, rest in demo.items() if rest} == {}


def test_demo_installs_the_collections_controller_requirements():
    demo = _names(ROOT / "requirements" / "demo.txt")
    assert sorted(set(_names(ROOT / "requirements.txt")) - set(demo)) == []


def test_demo_installs_what_the_lab_imports():
    demo = _names(ROOT / "requirements" / "demo.txt")
    distributions = {"yaml": "pyyaml", "spnego": "pyspnego", "cryptography": "cryptography", "ansible": "ansible-core"}
    imported = set()
    for path in (ROOT / "tests" / "lab").rglob("*.py"):
        if "tests" in path.relative_to(ROOT / "tests" / "lab").parts:
            continue
        imported |= set(re.findall(r"^(?:import|from) (yaml|spnego|cryptography|ansible)\b",
                                   path.read_text(encoding="utf-8"), re.MULTILINE))
    assert imported
    assert sorted(distributions[module] for module in imported if distributions[module] not in demo) == []


def test_demo_output_is_where_the_docs_say_and_git_and_the_build_ignore_it():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    demo_dir = re.search(r"^DEMO_DIR := \$\(CURDIR\)/(\S+)$", makefile, re.MULTILINE).group(1)
    assert re.search(r"^DEMO_REPORT := \$\(DEMO_DIR\)/report$", makefile, re.MULTILINE)
    doc = (ROOT / "docs" / "lab-demo.md").read_text(encoding="utf-8")
    assert f"{demo_dir}/report/exchange_pki_report.html" in doc
    assert "demo-report" not in doc
    assert f"/{demo_dir}/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    galaxy = (ROOT / "galaxy.yml").read_text(encoding="utf-8")
    assert f"  - {demo_dir}\n" in galaxy
