# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pyca's x509 corpus through the whole pipeline, not only the parser (test__certificate_corpus.py).

Every certificate of the cryptography-vectors corpus is put in the My store of a server (as Get-ExchangeCertificate
and the host's store read would list it, beside the healthy server's own certificates), a few dozen per server.
Each server's facts must build, survive a JSON round trip (what Ansible does to a result), and the fleet of them
must give a report in every format and a renewal plan: certificates written by many CAs and tools, and
deliberately broken ones, must not take a report or a plan down.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import sha1_thumbprint
from ansible_collections.exchange.pki.plugins.plugin_utils._renewal import RenewalPolicy, build_plan
from ansible_collections.exchange.pki.plugins.plugin_utils._report import build_report
from ansible_collections.exchange.pki.plugins.plugin_utils._report_formats import FORMATS
from ansible_collections.exchange.pki.plugins.plugin_utils._values import ExchangeCertificateRecord, StoreCertificate
from tests.unit.clock import NOW
from tests.unit.plugins.plugin_utils.test__certificate_corpus import _walk
from tests.unit.plugins.plugin_utils.test__facts import facts_of, server
from tests.unit.plugins.plugin_utils.test__renewal import ADCS

pytest.importorskip("cryptography_vectors", reason="the x509 corpus is test data from requirements/dev.txt")

PER_SERVER = 60


def test_the_corpus_gives_facts_a_report_in_every_format_and_a_plan() -> None:
    certificates = _walk().certificates
    fleet = {}
    for start in range(0, len(certificates), PER_SERVER):
        chunk = certificates[start:start + PER_SERVER]
        base = server()
        stored = tuple(StoreCertificate("My", sha1_thumbprint(der), der, f"corpus {where}", False)
                       for where, der in chunk)
        listed = tuple(ExchangeCertificateRecord(raw_data=der, thumbprint=sha1_thumbprint(der), status="Valid")
                       for _where, der in chunk)
        name = f"EX{start // PER_SERVER + 1}"
        snapshot = dataclasses.replace(
            base,
            host_info=dataclasses.replace(base.host_info, computer_name=name, fqdn=f"{name.lower()}.contoso.lab"),
            exchange_server=dataclasses.replace(base.exchange_server, name=name, fqdn=f"{name.lower()}.contoso.lab"),
            store_certificates=base.store_certificates + stored,
            exchange_certificates=base.exchange_certificates + listed,
        )
        facts = facts_of(snapshot)
        fact = json.loads(json.dumps(facts, allow_nan=False))  # facts are JSON: no NaN or infinity
        listed_thumbprints = {cert["thumbprint"] for cert in fact["certificates"]}
        listed_thumbprints |= {cert["thumbprint"] for cert in fact["unparseable_certificates"]}
        assert {sha1_thumbprint(der) for _where, der in chunk} <= listed_thumbprints, name  # none dropped
        fleet[name.lower()] = {**fact, "probes": {}}

    report = build_report(fleet, title="corpus", now=NOW)
    assert report.summary.certificates >= len(certificates) * 0.9
    for fmt in FORMATS.values():
        assert "".join(fmt.render(report)), fmt.name

    plan = build_plan(fleet, policy=RenewalPolicy.from_options(ADCS), now=NOW)
    assert plan["items"] or plan["not_renewed"], plan.keys()
