# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the policy option, its documentation and the findings catalogue."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.exchange.pki.plugins.doc_fragments.policy import ModuleDocFragment
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import (
    CATALOGUE,
    POLICY_ARGSPEC,
    SEVERITIES,
    Finding,
    Policy,
    PolicyError,
    make_finding,
    policy_argspec,
)

FINDINGS_DOC = pathlib.Path(__file__).parents[4] / "docs" / "findings.md"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, Policy()),
        ({}, Policy()),
        ({"warning_days": 90, "critical_days": 14}, Policy(warning_days=90, critical_days=14)),
        ({"required_names": ["Mail.Contoso.com.", " autodiscover.contoso.com"]},
         Policy(required_names=("mail.contoso.com", "autodiscover.contoso.com"))),
        ({"weak_signature_hashes": ["SHA1"]}, Policy(weak_signature_hashes=("sha1",))),
        ({"ignore_findings": ["duplicate_certificates"], "min_rsa_key_size": 3072},
         Policy(ignore_findings=("duplicate_certificates",), min_rsa_key_size=3072)),
        ({"cluster_warning_days": None}, Policy()),  # an unset suboption keeps its default
    ],
)
def test_from_options(options: dict[str, Any] | None, expected: Policy) -> None:
    assert Policy.from_options(options) == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"warn_days": 10}, "unknown option(s) warn_days; expected one of warning_days, critical_days"),
        ({"warning_days": "60"}, "policy.warning_days must be an integer, got '60'"),
        ({"warning_days": True}, "policy.warning_days must be an integer, got True"),
        ({"required_names": "mail.contoso.com"}, "policy.required_names must be a list of strings"),
        ({"required_names": [1]}, "policy.required_names must be a list of strings, got [1]"),
        ({"required_names": ["mail contoso"]}, "policy.required_names: 'mail contoso' is not a DNS name"),
        ({"critical_days": 60}, "policy.critical_days (60) must be less than policy.warning_days (60)"),
        ({"critical_days": 40, "warning_days": 30}, "policy.critical_days (40) must be less than"),
        ({"pending_request_stale_days": -1}, "policy.pending_request_stale_days must not be negative, got -1"),
        ({"min_rsa_key_size": 0}, "policy.min_rsa_key_size must be positive"),
        ({"ignore_findings": ["expird"]}, "policy.ignore_findings: unknown finding id(s) expird"),
        (["warning_days"], "policy must be a dictionary, got list"),
    ],
)
def test_from_options_errors(options: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        Policy.from_options(options)


def test_argspec_validates_and_fills_defaults_for_from_options() -> None:
    spec = {"policy": policy_argspec()}
    result = ArgumentSpecValidator(spec).validate({"policy": {"warning_days": "45", "critical_days": 10}})
    assert not result.error_messages
    assert Policy.from_options(result.validated_parameters["policy"]) == Policy(warning_days=45, critical_days=10)
    rejected = ArgumentSpecValidator(spec).validate({"policy": {"ignore_findings": ["nope"]}})
    assert rejected.error_messages


def test_argspec_defaults_are_the_policy_defaults() -> None:
    assert Policy.from_options({name: spec["default"] for name, spec in POLICY_ARGSPEC.items()}) == Policy()


def test_doc_fragment_mirrors_the_argspec() -> None:
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["policy"]["suboptions"]
    assert list(documented) == list(POLICY_ARGSPEC)
    for name, spec in POLICY_ARGSPEC.items():
        doc = documented[name]
        assert {key: doc.get(key) for key in spec} == dict(spec), name
        assert doc["description"], name


def test_policy_argspec_is_a_fresh_copy() -> None:
    first = policy_argspec()
    first["options"]["weak_signature_hashes"]["default"].append("sha256")
    assert POLICY_ARGSPEC["weak_signature_hashes"]["default"] == ["md2", "md4", "md5", "sha1"]


# --- the catalogue --------------------------------------------------------------------------------

ISSUE_CATALOGUE = (
    "expired expiring_critical expiring_warning not_yet_valid weak_key weak_signature missing_private_key untrusted "
    "name_mismatch missing_server_auth_eku auth_missing auth_expiring auth_next_not_staged auth_next_missing "
    "auth_key_not_csp "
    "no_internal_transport internal_transport_expired iis_binding_missing_cert iis_binding_expired "
    "back_end_binding_missing connector_certificate_not_found cluster_certificate_expired "
    "cluster_certificate_expiring pending_request_stale duplicate_certificates shared_key_not_exportable "
    "unparseable_certificate"
).split()


def test_catalogue_holds_every_finding_of_the_issue() -> None:
    assert list(CATALOGUE) == ISSUE_CATALOGUE
    for finding_id, spec in CATALOGUE.items():
        assert spec.id == finding_id
        assert spec.severity in SEVERITIES
        assert spec.title and spec.source


def _doc_sections() -> dict[str, str]:
    text = FINDINGS_DOC.read_text(encoding="utf-8")
    parts = re.split(r"^## ([a-z_]+)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_findings_doc_has_one_section_per_catalogue_id() -> None:
    assert list(_doc_sections()) == list(CATALOGUE)


@pytest.mark.parametrize("finding_id", ISSUE_CATALOGUE)
def test_findings_doc_section_states_severity_and_source(finding_id: str) -> None:
    section = _doc_sections()[finding_id]
    assert f"**Severity:** {CATALOGUE[finding_id].severity}" in section
    for heading in ("**When it fires:**", "**Why it matters:**", "**Remediation:**", "**Source:**"):
        assert heading in section, heading


def test_findings_doc_lists_every_policy_option_with_its_default() -> None:
    text = FINDINGS_DOC.read_text(encoding="utf-8")
    for name in POLICY_ARGSPEC:
        assert f"| `{name}` |" in text, name


def test_make_finding_uses_the_catalogue_severity_unless_escalated() -> None:
    finding = make_finding("untrusted", "m", "r", thumbprint="AB")
    assert finding == Finding("untrusted", "warning", "m", "r", "AB")
    assert make_finding("untrusted", "m", "r", severity="critical").severity == "critical"
    assert finding.as_dict() == {"id": "untrusted", "severity": "warning", "thumbprint": "AB", "message": "m",
                                 "remediation": "r"}
    with pytest.raises(KeyError):
        make_finding("no_such_finding", "m", "r")


def test_findings_sort_most_severe_first_then_catalogue_order() -> None:
    findings = [make_finding("duplicate_certificates", "m", "r"), make_finding("weak_key", "m", "r", thumbprint="B"),
                make_finding("expired", "m", "r", thumbprint="Z"), make_finding("weak_key", "m", "r", thumbprint="A")]
    assert [(f.id, f.thumbprint) for f in sorted(findings, key=Finding.sort_key)] == [
        ("expired", "Z"), ("weak_key", "A"), ("weak_key", "B"), ("duplicate_certificates", None)]


@pytest.mark.parametrize(
    ("given", "expected"),
    [(["SHA1", " md5 "], ("sha1", "md5")), (["sha-1", "SHA-256"], ("sha1", "sha256")), (["sha3-256"], ("sha3-256",))],
)
def test_weak_signature_hashes_are_canonical_names(given: list[str], expected: tuple[str, ...]) -> None:
    assert Policy.from_options({"weak_signature_hashes": given}).weak_signature_hashes == expected


@pytest.mark.parametrize("bad", ["shaa1", "", "sha-", "sh\na1", "md5\x00", "rsa"])
def test_an_unknown_weak_signature_hash_is_refused_by_name(bad: str) -> None:
    # A typo must not silently replace the defaults with a list that matches nothing.
    with pytest.raises(PolicyError, match=r"policy\.weak_signature_hashes: .*not a signature hash name"):
        Policy.from_options({"weak_signature_hashes": ["sha1", bad]})
