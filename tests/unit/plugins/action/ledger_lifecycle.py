# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A ledger written by the real writers: one certificate's renewal on the lab's ex1, step by step.

request (certificate_request) -> issue (a test CA signs the CSR) -> import (certificate_import) -> bind
(certificate_services) -> the renewal role's record (ledger_record, renewal_done, naming the identity) -> remove
the old certificate (certificate_remove). The ledger's clock ticks one minute per record, so the story has an
order in time as well as in the file.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.action import (
    certificate_import,
    certificate_remove,
    certificate_request,
    certificate_services,
    ledger_record,
)
from ansible_collections.exchange.pki.plugins.plugin_utils import _ledger
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.lab_host import LabHost

IDENTITY = "id-3f9a1b2c4d5e"
PLAN_ID = "20261125T0800Z-3f9a1b2c"
SERVICES = ["IIS", "SMTP", "IMAP", "POP"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _certificate(subject: x509.Name, public_key: Any, issuer: x509.Name, key: Any, *, ca: bool,
                 names: tuple[str, ...] = ()) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(key, hashes.SHA256())


def thumbprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - the Windows thumbprint


class TickingClock:
    """The ledger's clock: each record one minute after the previous one."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        self.now += datetime.timedelta(minutes=1)
        return self.now


@dataclasses.dataclass
class Lifecycle:
    ledger: pathlib.Path
    host: LabHost
    request: str
    new: str
    old: str
    results: dict[str, dict[str, Any]]


def ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result.get("failed") is not True, result.get("msg")
    return result


def write_lifecycle(ledger: pathlib.Path, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Lifecycle:
    """Renew ex1's mail.contoso.lab certificate with every step recorded in ``ledger`` (``extra``: more options
    for every writer, e.g. ``ledger_webhook``)."""
    monkeypatch.setattr(_ledger, "utc_now", TickingClock())
    ex1 = LabHost(Fleet.from_scenario("dag", now=NOW), "ex1")
    common = {"ledger": str(ledger), **extra}
    (old,) = [entry["thumbprint"] for entry in ex1.dump()["certificates"]["My"]
              if entry.get("subject") == "CN=mail.contoso.lab"]
    results: dict[str, dict[str, Any]] = {}
    results["request"] = ok(ex1.run(certificate_request.ActionModule, {
        "subject": "C=US,O=Contoso,CN=mail.contoso.lab", "dns_names": ["autodiscover.contoso.lab"], **common,
    }, action="exchange.pki.certificate_request"))
    csr = x509.load_pem_x509_csr(results["request"]["csr"].encode("ascii"))
    (pending,) = ex1.dump()["certificates"]["REQUEST"]
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate(_name("Fabrikam Ledger CA"), ca_key.public_key(), _name("Fabrikam Ledger CA"), ca_key, ca=True)
    leaf = _certificate(csr.subject, csr.public_key(), ca.subject, ca_key, ca=False,
                        names=("mail.contoso.lab", "autodiscover.contoso.lab"))
    chain = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca)).decode("ascii")
    results["import"] = ok(ex1.run(certificate_import.ActionModule, {"certificate": chain, **common},
                                   action="exchange.pki.certificate_import"))
    new = thumbprint(leaf)
    results["services"] = ok(ex1.run(certificate_services.ActionModule, {
        "thumbprint": new, "services": SERVICES, **common}, action="exchange.pki.certificate_services"))
    results["renewal_done"] = ok(ex1.run(ledger_record.ActionModule, {
        "action": "renewal_done", "server": "organization", "before": {"thumbprints": [old]},
        "after": {"identity": IDENTITY, "plan_id": PLAN_ID, "thumbprint": new, "group": "DAG1", "members": ["ex1"],
                  "removed": [old], "kept": []},
        "run_id": PLAN_ID, **common},
        task_vars={"inventory_hostname": "localhost"}, action="exchange.pki.ledger_record"))
    results["remove"] = ok(ex1.run(certificate_remove.ActionModule, {"thumbprint": old, **common},
                                   action="exchange.pki.certificate_remove"))
    return Lifecycle(ledger, ex1, pending["thumbprint"], new, old, results)
