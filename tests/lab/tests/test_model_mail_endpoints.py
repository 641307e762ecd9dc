# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which certificate the IMAP and POP endpoints present (exchange-facts "Enable-ExchangeCertificate": IMAP/POP with
wildcard certificates: X509CertificateName via Set-ImapSettings/Set-PopSettings; else the certificate enabled for
the service, which is single-instance)."""

from __future__ import annotations

from cryptography import x509

from tests.lab import pki
from tests.lab.model import Fleet
from tests.lab.tests.model_fixtures import NOW, by_subject, value


def presented(fleet: Fleet, server: str, endpoint: str) -> str | None:
    pair = fleet.served_certificate(server, endpoint)
    return None if pair is None else pki.thumbprint(x509.load_pem_x509_certificates(pair[0])[0])


def test_imap_and_pop_present_the_certificate_enabled_for_them_or_the_one_x509certificatename_names() -> None:
    fleet = Fleet.from_scenario("dag", now=NOW)
    mail = by_subject(fleet, "ex1", "CN=mail.contoso.lab")["Thumbprint"]
    default = next(cert["Thumbprint"] for cert in value(fleet, "ex1", "Get-ExchangeCertificate")
                   if cert["IsSelfSigned"] and cert["Subject"].upper() == "CN=EX1")
    assert presented(fleet, "ex1", "imap") == presented(fleet, "ex1", "pop") == mail  # enabled for IMAP, POP

    value(fleet, "ex1", "Enable-ExchangeCertificate", Thumbprint=default, Services=["IMAP"])
    assert presented(fleet, "ex1", "imap") == default  # the service moved (single-instance)
    assert presented(fleet, "ex1", "pop") == mail
    assert presented(fleet, "ex2", "imap") == mail  # per server

    value(fleet, "ex1", "Set-ImapSettings", X509CertificateName="autodiscover.contoso.lab")
    assert presented(fleet, "ex1", "imap") == mail  # named: the certificate whose names cover it

    value(fleet, "ex1", "Set-ImapSettings", X509CertificateName="imap.fabrikam.com")
    assert presented(fleet, "ex1", "imap") == default  # no certificate has that name: the enabled one
