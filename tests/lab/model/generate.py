# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Large generated fleets for benchmarks: ``Fleet.from_scenario(generate_scenario(100))``.

Servers are spread over ``sites`` round-robin and grouped into DAGs of ``dag_size`` (a remainder
smaller than two stays standalone); each site shares one SAN certificate (EF "Rolling changes": the same
certificate on all servers of a site), and each server gets ``certificates_per_server`` extra
certificates with staggered expiry. Keys come from pki's key pool, so building stays fast.
"""

from __future__ import annotations

from typing import Any

_VERSIONS = ("2019-cu14", "2019-cu15", "se", "2016-cu23")


def generate_scenario(
    servers: int, *, dag_size: int = 4, sites: int = 2, certificates_per_server: int = 2
) -> dict[str, Any]:
    """A scenario mapping with ``servers`` Exchange servers named ex1..exN."""
    if servers < 1 or sites < 1 or dag_size < 2 or certificates_per_server < 0:
        raise ValueError("need servers >= 1, sites >= 1, dag_size >= 2, certificates_per_server >= 0")
    names = [f"ex{index}" for index in range(1, servers + 1)]
    site_of = {name: f"Site-{index % sites + 1}" for index, name in enumerate(names)}
    certificates: dict[str, Any] = {
        f"site{site}": {
            "subject": f"CN=mail{site}.contoso.lab",
            "dns_names": [f"mail{site}.contoso.lab", f"autodiscover{site}.contoso.lab"],
            "not_before": "-300d",
            "not_after": f"{30 + 15 * site}d",
        }
        for site in range(1, sites + 1)
    }
    server_specs = []
    for index, name in enumerate(names):
        site_cert = f"site{index % sites + 1}"
        installs = [{"ref": site_cert, "services": ["IMAP", "POP", "SMTP"], "exportable": True}]
        for extra in range(certificates_per_server):
            cert_id = f"{name}-c{extra}"
            certificates[cert_id] = {
                "subject": f"CN={name}-app{extra}.contoso.lab",
                "dns_names": [f"{name}-app{extra}.contoso.lab"],
                "not_after": f"{(index * 7 + extra * 31) % 400 - 20}d",
                "not_before": "-400d",
            }
            installs.append({"ref": cert_id})
        server_specs.append(
            {
                "name": name,
                "version": _VERSIONS[index % len(_VERSIONS)],
                "site": site_of[name],
                "certificates": installs,
                "iis": {"default_web_site": site_cert, "back_end": "exchange"},
            }
        )
    dags = [
        {"name": f"DAG{number + 1}", "members": names[start : start + dag_size]}
        for number, start in enumerate(range(0, servers, dag_size))
        if len(names[start : start + dag_size]) >= 2
    ]
    return {
        "description": f"generated fleet of {servers} servers",
        "accounts": [
            {"username": "ansible", "password": "Ex-Lab-2026!", "exchange_admin": True},
            {"username": "helpdesk", "password": "Help-Desk-2026!"},
        ],
        "certificates": certificates,
        "servers": server_specs,
        "dags": dags,
        "send_connectors": [{"name": "Internet", "address_spaces": ["SMTP:*;1"], "fqdn": "mail1.contoso.lab"}],
    }
