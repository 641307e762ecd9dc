# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared material for the tests of tests/lab/pki: a fixed clock, the lab CAs, one leaf, a verifier.

The CAs and the leaf are built once per process (RSA key generation dominates the cost); test modules
wrap them in fixtures. Tests that change a registry build their own.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone

from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store

from tests.lab import pki

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
MAIL = "mail.contoso.lab"


@functools.cache
def lab_authorities() -> pki.AuthorityRegistry:
    """The default lab PKI at :data:`NOW` (do not add CAs to it)."""
    return pki.AuthorityRegistry(now=NOW)


@functools.cache
def lab_leaf() -> pki.IssuedCertificate:
    """An Exchange-like SAN certificate from the lab issuing CA."""
    spec = pki.CertificateSpec("CN=mail.contoso.lab,O=Contoso,C=US", dns_names=(MAIL, "autodiscover.contoso.lab"))
    return pki.make_certificate(spec, now=NOW, authorities=lab_authorities())


def verify_server(
    certificate: x509.Certificate,
    chain: tuple[x509.Certificate, ...],
    anchors: list[x509.Certificate],
    *,
    name: str = MAIL,
    at: datetime = NOW,
) -> None:
    """Verify like a TLS client that trusts ``anchors``; raises VerificationError on failure."""
    verifier = PolicyBuilder().store(Store(anchors)).time(at).build_server_verifier(DNSName(name))
    verifier.verify(certificate, list(chain))
