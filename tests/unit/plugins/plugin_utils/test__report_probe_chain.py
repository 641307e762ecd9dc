# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A served chain that lacks its intermediate is a problem of the probe in every report (issue 7)."""

from __future__ import annotations

from ansible_collections.exchange.pki.plugins.plugin_utils._report import probe_problem

ISSUER = "CN=Contoso Issuing CA,DC=contoso,DC=com"


def test_a_missing_intermediate_is_a_probe_problem_naming_it_and_the_fix():
    problem = probe_problem({"host": "ex1", "port": 443, "thumbprint": "AB" * 20, "missing_intermediate": ISSUER,
                             "chain_valid": False, "chain_error": "candidates exhausted"})
    assert problem is not None
    assert f"does not send the intermediate {ISSUER}" in problem
    assert "exchange.pki.certificate_import" in problem


def test_a_complete_chain_is_no_problem():
    assert probe_problem({"host": "ex1", "port": 443, "missing_intermediate": None, "chain_valid": True}) is None
