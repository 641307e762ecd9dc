# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builders of ``exchange_pki`` host facts in the docs/facts.md shape, for the report and alert tests.

The facts are what certificate_info returns; these builders compute the derived fields the same way the
document defines them (days_remaining is the floor of days to not_after, summary counts the findings).
"""

from __future__ import annotations

import collections
import datetime
import hashlib
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._time import format_utc_datetime
from tests.unit.clock import NOW

CA = "CN=Contoso Lab Issuing CA, DC=contoso, DC=lab"


def iso(moment: datetime.datetime) -> str:
    return format_utc_datetime(moment)


def thumbprint(*seed: object) -> str:
    """A stable 40-hex-digit uppercase thumbprint, as Windows shows it."""
    return hashlib.sha1("\0".join(map(str, seed)).encode()).hexdigest().upper()


def certificate(
    subject: str,
    *,
    days_remaining: int,
    roles: tuple[str, ...] = (),
    lifetime_days: int = 365,
    seed: object = "",
    now: datetime.datetime = NOW,
    **overrides: Any,
) -> dict[str, Any]:
    """One certificate entry; ``seed`` distinguishes certificates of the same subject."""
    not_after = now + datetime.timedelta(days=days_remaining, hours=2)
    self_signed = overrides.pop("self_signed", False)
    cert = {
        "thumbprint": thumbprint(subject, seed, days_remaining),
        "subject": subject,
        "issuer": subject if self_signed else CA,
        "serial_number": thumbprint("serial", subject, seed)[:16],
        "not_before": iso(not_after - datetime.timedelta(days=lifetime_days)),
        "not_after": iso(not_after),
        "days_remaining": (not_after - now) // datetime.timedelta(days=1),
        "lifetime_days": lifetime_days,
        "dns_names": [subject.removeprefix("CN=")] if "." in subject else [],
        "key_type": "rsa",
        "key_size": 2048,
        "signature_hash": "sha256",
        "ekus": ["1.3.6.1.5.5.7.3.1"],
        "is_self_signed": self_signed,
        "has_private_key": True,
        "private_key_exportable": True,
        "key_provider": "csp",
        "network_service_can_read_key": True,
        "store": "My",
        "friendly_name": subject.removeprefix("CN="),
        "status": "Valid",
        "services": [],
        "roles": sorted(roles),
        "references": [],
    }
    cert.update(overrides)
    return cert


def finding(finding_id: str, severity: str, cert: dict[str, Any] | None = None, message: str = "") -> dict[str, Any]:
    return {
        "id": finding_id,
        "severity": severity,
        "thumbprint": cert["thumbprint"] if cert else None,
        "message": message or f"{finding_id} on {cert['subject'] if cert else 'the server'}",
        "remediation": f"Resolve {finding_id}.",
    }


def host_fact(
    name: str,
    certificates: list[dict[str, Any]],
    findings: list[dict[str, Any]] = (),
    *,
    dag: str | None = None,
    site: str = "Site-A",
    product: str = "Exchange Server 2019 CU14",
    version: str = "15.2.1544.4",
    now: datetime.datetime = NOW,
    **extra: Any,
) -> dict[str, Any]:
    """A whole ``exchange_pki`` fact with its summary computed from ``certificates`` and ``findings``."""
    counts = collections.Counter(item["severity"] for item in findings)
    ordered = [severity for severity in ("critical", "warning", "info") if counts[severity]]
    dated = [cert for cert in certificates if "pending_request" not in cert["roles"]]
    earliest = min(dated, key=lambda cert: cert["not_after"], default=None)
    fact = {
        "changed": False,
        "collected_at": iso(now),
        "server": {
            "name": name.upper(), "fqdn": f"{name}.contoso.lab", "version": version, "product": product,
            "roles": ["Mailbox"], "site": site, "dag": dag,
        },
        "certificates": certificates,
        "auth": {"current_thumbprint": None, "next_thumbprint": None, "previous_thumbprint": None,
                 "next_effective_date": None, "current_present_locally": True},
        "iis_bindings": [],
        "connectors": [],
        "internal_transport_thumbprint": None,
        "cluster": None,
        "findings": list(findings),
        "summary": {
            "certificates": len(certificates),
            "findings": {severity: counts[severity] for severity in ("critical", "warning", "info")},
            "worst_severity": ordered[0] if ordered else None,
            "earliest_expiry": earliest["not_after"] if earliest else None,
            "earliest_expiry_thumbprint": earliest["thumbprint"] if earliest else None,
        },
    }
    fact.update(extra)
    return fact


def server_certificates(name: str, *, mail: dict[str, Any], auth: dict[str, Any]) -> list[dict[str, Any]]:
    """The certificates of an Exchange server: the shared mail and Auth certificates plus its own."""
    return [
        mail,
        auth,
        certificate(f"CN={name.upper()}", days_remaining=1500, lifetime_days=1826, seed=name, self_signed=True,
                    roles=("back_end", "exchange_default", "internal_transport"), services=["SMTP"]),
        certificate(f"CN=WMSvc-SHA2-{name.upper()}", days_remaining=3000, lifetime_days=3652, seed=name,
                    self_signed=True, roles=("wmsvc",)),
    ]


def dag_fleet(now: datetime.datetime = NOW) -> dict[str, Any]:
    """Facts like the lab's ``dag`` scenario, plus a DAG member with a different mail certificate and a host
    that was not collected: ex1-ex3 in DAG1, ex4 standalone in Site-B, ex5 unreachable (``None``)."""
    shared = {"roles": ("iis", "imap", "pop", "smtp", "connector"), "services": ["IIS", "IMAP", "POP", "SMTP"],
              "dns_names": ["mail.contoso.lab", "autodiscover.contoso.lab"], "now": now}
    mail = certificate("CN=mail.contoso.lab", days_remaining=20, **shared)
    other_mail = certificate("CN=mail.contoso.lab", days_remaining=300, seed="renewed-on-ex3", **shared)
    auth = certificate("CN=Microsoft Exchange Server Auth Certificate", days_remaining=45, lifetime_days=1825,
                       self_signed=True, roles=("auth_current",), now=now)
    facts: dict[str, Any] = {}
    for name, mail_cert in (("ex1", mail), ("ex2", mail), ("ex3", other_mail)):
        certs = server_certificates(name, mail=mail_cert, auth=auth)
        findings = [finding("auth_expiring", "warning", auth), finding("auth_next_not_staged", "warning")]
        if mail_cert is mail:
            findings.insert(0, finding("expiring_critical", "critical", mail))
        cliusr = certificate("CN=CLIUSR", days_remaining=-5 if name == "ex2" else 200, seed=name,
                             self_signed=True, roles=("cluster",), store="PKU2U", now=now)
        certs.append(cliusr)
        if name == "ex2":
            findings.append(finding("cluster_certificate_expired", "critical", cliusr))
        cluster = {"name": "DAG1", "nodes": [{"name": node, "state": "Up"} for node in ("EX1", "EX2", "EX3")],
                   "cliusr_account": {"exists": True, "enabled": True, "password_last_set": iso(now)}}
        facts[name] = host_fact(name, certs, findings, dag="DAG1", cluster=cluster, now=now)
    facts["ex4"] = host_fact(
        "ex4", server_certificates("ex4", mail=mail, auth=auth),
        [finding("expiring_critical", "critical", mail), finding("auth_expiring", "warning", auth)],
        site="Site-B", product="Exchange Server 2016 CU23", version="15.1.2507.6", now=now,
    )
    facts["ex5"] = None
    return facts


def bulk_fleet(servers: int, certificates_per_server: int = 12, now: datetime.datetime = NOW) -> dict[str, Any]:
    """A large fleet for the benchmark: ``servers`` hosts, each with ``certificates_per_server`` certificates,
    a few of which expire soon (with the matching findings)."""
    facts: dict[str, Any] = {}
    for index in range(servers):
        name = f"ex{index:05d}"
        certs = [
            certificate(f"CN=svc{slot}.{name}.contoso.lab", days_remaining=(index * 7 + slot * 53) % 800 - 30,
                        seed=name, roles=(("iis", "smtp") if slot == 0 else ()), now=now)
            for slot in range(certificates_per_server)
        ]
        findings = [
            finding("expired" if cert["days_remaining"] < 0 else "expiring_critical", "critical", cert)
            for cert in certs if cert["days_remaining"] < 30
        ] + [finding("expiring_warning", "warning", cert) for cert in certs if 30 <= cert["days_remaining"] < 60]
        facts[name] = host_fact(name, certs, findings, dag=f"DAG{index // 4}", now=now)
    return facts


def lab_dag_fleet(now: datetime.datetime = NOW) -> dict[str, Any]:
    """Facts like certificate_info collects from the lab's ``dag`` scenario: the same mail certificate on
    ex1-ex4 expiring in 20 days, the organisation's Auth certificate with 45 days and nothing staged (critical
    on every server), ex2's expired CLIUSR certificate. Nine critical findings, three problems."""
    shared = {"roles": ("iis", "imap", "pop", "smtp", "connector"), "services": ["IIS", "IMAP", "POP", "SMTP"],
              "dns_names": ["mail.contoso.lab", "autodiscover.contoso.lab"], "now": now}
    mail = certificate("CN=mail.contoso.lab", days_remaining=20, **shared)
    auth = certificate("CN=Microsoft Exchange Server Auth Certificate", days_remaining=45, lifetime_days=1825,
                       self_signed=True, roles=("auth_current",), now=now)
    renew = "Renew it: create a request with New-ExchangeCertificate -GenerateRequest."
    cluster_remediation = ("Failover-cluster certificates are managed by Windows: do not delete them; open a case "
                           "with Microsoft support before any regeneration.")
    facts: dict[str, Any] = {}
    for name in ("ex1", "ex2", "ex3", "ex4"):
        certs = server_certificates(name, mail=mail, auth=auth)
        findings = [
            {**finding("expiring_critical", "critical", mail), "remediation": renew},
            {**finding("auth_next_not_staged", "critical", auth), "remediation": "Stage the next Auth certificate."},
            finding("auth_expiring", "warning", auth),
        ]
        dag = None
        if name != "ex4":
            dag = "DAG1"
            cliusr = certificate("CN=CLIUSR", days_remaining=-5 if name == "ex2" else 200, seed=name,
                                 self_signed=True, roles=("cluster",), store="PKU2U", now=now)
            certs.append(cliusr)
            if name == "ex2":
                findings.insert(1, {**finding("cluster_certificate_expired", "critical", cliusr),
                                    "remediation": cluster_remediation})
        facts[name] = host_fact(name, certs, findings, dag=dag, now=now)
    return facts


def not_collected(reason: str, message: str) -> dict[str, Any]:
    """The failure record the inventory role passes for a host it could not read (interfaces: not_collected)."""
    return {"not_collected": {"reason": reason, "message": message}}
