# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module docs share one attributes fragment and declare what the code needs (requirements)."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.doc_fragments._attributes import ModuleDocFragment
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import CRYPTOGRAPHY_REQUIREMENT
from tools.check_runtime_metadata import documentation

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODULES = sorted(path for path in (ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
FRAGMENT = "exchange.pki._attributes"
# Modules whose controller side parses certificates, requests or keys with cryptography (every module that reads a
# server through _snapshot parses its certificates from their raw bytes).
NEEDS_CRYPTOGRAPHY = {
    "adcs_request", "auth_certificate", "certificate_export", "certificate_import", "certificate_info",
    "certificate_remove", "certificate_request", "certificate_services", "tls_probe",
}


def _fragments(path: pathlib.Path) -> list[str]:
    return list(documentation(path).get("extends_documentation_fragment") or [])


def test_every_module_is_checked():
    assert {path.stem for path in MODULES} >= {"certificate_info", "exchange_batch", "tls_probe"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_module_uses_the_shared_attributes_fragment(path):
    fragments = _fragments(path)
    assert FRAGMENT in fragments
    assert not [name for name in fragments if name.startswith("ansible.builtin.action_common_attributes")]
    has_action_plugin = (ROOT / "plugins" / "action" / path.name).is_file()
    assert (f"{FRAGMENT}.action" in fragments) == has_action_plugin
    # Exactly one fragment says where the module runs.
    assert len({f"{FRAGMENT}.controller", f"{FRAGMENT}.exchange_host"} & set(fragments)) == 1


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_module_keeps_only_its_own_attribute_details(path):
    """What the fragment says is not repeated: a module's own attributes only add details or support."""
    own = documentation(path).get("attributes") or {}
    for name, value in own.items():
        assert set(value) <= {"support", "details"}, f"{path.stem}: attribute {name} repeats the fragment"


@pytest.mark.parametrize("variable", ["DOCUMENTATION", "ACTION", "READ_ONLY", "EXCHANGE_HOST", "CONTROLLER"])
def test_fragment_variables_are_attribute_only_yaml(variable):
    fragment = yaml.safe_load(getattr(ModuleDocFragment, variable))
    assert fragment["options"] == {}
    assert fragment["attributes"]


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.stem)
def test_requirements_name_the_cryptography_version_the_code_needs(path):
    requirements = documentation(path).get("requirements") or []
    mentions = [line for line in requirements if "cryptography" in line]
    if path.stem in NEEDS_CRYPTOGRAPHY:
        assert [line for line in mentions if line.startswith(CRYPTOGRAPHY_REQUIREMENT)], requirements
    else:
        assert not mentions


def test_collection_requirements_file_agrees_with_the_code():
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert CRYPTOGRAPHY_REQUIREMENT.replace(" ", "") in [line.split("#")[0].strip() for line in lines]
