# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/findings.md names, for every finding, the exchange.pki modules that fix it, and only real modules."""

from __future__ import annotations

import pathlib
import re

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils._policy import CATALOGUE

COLLECTION = pathlib.Path(__file__).parents[4]
FINDINGS_DOC = COLLECTION / "docs" / "findings.md"
MODULES_DIR = COLLECTION / "plugins" / "modules"

# The lifecycle modules of issue 7, whose names and purposes are fixed while they are being written. The docs
# may name them before their plugins/modules/<name>.py exists; a name outside this list is accepted only when
# its module file exists, so a typo or an invented module fails.
EXPECTED_MODULES = frozenset({
    "certificate_request",
    "adcs_request",
    "certificate_import",
    "certificate_services",
    "certificate_export",
    "certificate_remove",
    "auth_certificate",
})

WITH_LINE = "**With exchange.pki:**"
FQCN = re.compile(r"exchange\.pki\.([A-Za-z0-9_]+)")


def _doc_text() -> str:
    return FINDINGS_DOC.read_text(encoding="utf-8")


def _doc_sections() -> dict[str, str]:
    # The same split as test__policy: one "## <finding_id>" section per finding.
    parts = re.split(r"^## ([a-z_]+)\s*$", _doc_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def _paragraph(section: str, heading: str) -> str:
    """The paragraph of ``section`` that starts with ``heading`` (up to the next blank line)."""
    start = section.index(f"\n{heading}") + 1
    end = section.find("\n\n", start)
    return section[start:] if end < 0 else section[start:end]


def _is_module(name: str) -> bool:
    return (MODULES_DIR / f"{name}.py").is_file() or name in EXPECTED_MODULES


@pytest.mark.parametrize("finding_id", list(CATALOGUE))
def test_every_finding_names_the_modules_that_fix_it(finding_id: str) -> None:
    section = _doc_sections().get(finding_id)
    assert section is not None, f"docs/findings.md has no '## {finding_id}' section"
    assert section.count(f"\n{WITH_LINE}") == 1, finding_id
    # After the Remediation paragraph (which may hold a list), before the Source.
    assert section.index("\n**Remediation:**") < section.index(f"\n{WITH_LINE}") < section.index("\n**Source:**")
    line = _paragraph(section, WITH_LINE)
    assert line[len(WITH_LINE):].strip(), finding_id
    # Modules are named by FQCN in backticks; even "nothing to run" lines say which module is involved.
    assert re.search(r"`exchange\.pki\.[a-z_]+`", line), finding_id


def test_the_fixing_section_explains_the_line_and_ansible_doc() -> None:
    text = _doc_text()
    assert "\n## Fixing findings with exchange.pki\n" in text
    section = text.split("\n## Fixing findings with exchange.pki\n", 1)[1].split("\n## ", 1)[0]
    assert WITH_LINE in section and "ansible-doc exchange.pki." in section
    assert text.index("## Fixing findings with exchange.pki") < text.index(f"\n## {next(iter(CATALOGUE))}\n")


def test_every_module_named_in_the_doc_exists_or_is_an_expected_lifecycle_module() -> None:
    names = set(FQCN.findall(_doc_text()))
    assert names, "docs/findings.md names no exchange.pki module"
    unknown = sorted(name for name in names if not _is_module(name))
    assert not unknown, f"docs/findings.md names modules the collection does not have: {unknown}"


def test_the_module_check_accepts_files_and_the_expected_list_only() -> None:
    assert _is_module("certificate_info")  # a module file of the collection
    assert _is_module("auth_certificate")  # expected: accepted with or without its file
    assert not _is_module("certificate_renew")
    assert not _is_module("rolling_renewal")
    # The expected names are plain module names, never paths or FQCNs.
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in EXPECTED_MODULES)
