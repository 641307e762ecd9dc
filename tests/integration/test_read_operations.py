# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every reading operation of exchange.pki.exchange_batch through ansible-playbook -> winrm -> lab.

Each answer is compared with the lab's dump of its model, over every transport the lab offers.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

READ_BATCH = """\
- name: Read everything the executor can read
  exchange.pki.exchange_batch:
    operations:
      - {id: info, op: host.info}
      - {id: certs, op: Get-ExchangeCertificate}
      - {id: store, op: host.certificates, args: {stores: ["*"]}}
      - {id: cluster_certs, op: host.certificates, args: {stores: ["*"], subject_pattern: "^CN=(CLIUSR|CSUSR)"}}
      - {id: bindings, op: host.iis_bindings}
      - {id: cluster, op: host.cluster}
      - {id: auth, op: Get-AuthConfig}
      - {id: transport, op: Get-TransportService}
      - {id: send, op: Get-SendConnector}
      - {id: receive, op: Get-ReceiveConnector, args: {Server: "{{ inventory_hostname }}"}}
      - {id: hybrid, op: Get-HybridConfiguration}
      - {id: servers, op: Get-ExchangeServer}
      - {id: dags, op: Get-DatabaseAvailabilityGroup, args: {Status: true}}
  register: result
"""

# (ansible_winrm_transport, ansible_winrm_scheme): every way in the lab offers.
TRANSPORTS = [
    pytest.param({"ansible_winrm_transport": "basic", "ansible_winrm_scheme": "http"}, id="basic-http"),
    pytest.param({"ansible_winrm_transport": "ntlm", "ansible_winrm_scheme": "http"}, id="ntlm-http-encrypted"),
    pytest.param({"ansible_winrm_transport": "ntlm", "ansible_winrm_scheme": "https"}, id="ntlm-https"),
    pytest.param({"ansible_winrm_transport": "basic", "ansible_winrm_scheme": "https"}, id="basic-https"),
]


def by_id(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in result["results"]}


def https_vars(lab) -> dict[str, Any]:
    """Connection variables that point every host at its WinRM HTTPS listener."""
    return {
        "ansible_port": "{{ exchange_pki_lab_ports.winrm_https }}",
        "ansible_winrm_ca_trust_path": str(lab.state_dir / "ca.pem"),
        "ansible_winrm_server_cert_validation": "validate",
    }


@pytest.mark.parametrize("connection", TRANSPORTS)
def test_every_read_operation_matches_the_lab(dag_lab, playbook, connection):
    host_vars = dict(connection)
    if connection["ansible_winrm_scheme"] == "https":
        host_vars.update(https_vars(dag_lab))
    before = dag_lab.dump()
    run = playbook(dag_lab, READ_BATCH, host_vars=host_vars)
    assert run.returncode == 0, run.stdout + run.stderr
    after = dag_lab.dump()
    assert after["mutations"] == before["mutations"], "reading must not change anything"

    for name, server in before["servers"].items():
        result = run.result(name)
        assert result["changed"] is False
        assert result["exchange_session"]["opened"] and result["exchange_session"]["removed"]
        ops = by_id(result)
        assert {r["status"] for r in ops.values()} == {"ok"}, ops

        # Get-ExchangeCertificate: My plus pending requests, RawData is the certificate itself.
        exchange = {c["Thumbprint"]: c for c in ops["certs"]["value"]}
        expected = {c["thumbprint"]: c for store in ("My", "REQUEST") for c in server["certificates"][store]}
        assert set(exchange) == set(expected)
        for thumbprint, cert in exchange.items():
            der = base64.b64decode(cert["RawData"])
            assert hashlib.sha1(der).hexdigest().upper() == thumbprint  # noqa: S324 - the Windows thumbprint
            assert x509.load_der_x509_certificate(der).subject.rfc4514_string()
            assert sorted(cert["Services"]) == sorted(expected[thumbprint]["services"])
            assert cert["NotAfter"] == expected[thumbprint]["not_after"]
            assert cert["Status"] == expected[thumbprint]["status"]

        # host.certificates over every store, and the cluster filter.
        store_view = {(c["Store"], c["Thumbprint"]) for c in ops["store"]["value"]}
        assert store_view == {(s, c["thumbprint"]) for s, certs in server["certificates"].items() for c in certs}
        cluster_certs = ops["cluster_certs"]["value"]
        pku2u = server["certificates"].get("PKU2U", [])
        assert {c["Thumbprint"] for c in cluster_certs} == {c["thumbprint"] for c in pku2u}

        assert [(b["Site"], b["BindingInformation"], b["CertificateHash"]) for b in ops["bindings"]["value"]] == [
            (b["site"], b["binding_information"], b["certificate_hash"]) for b in server["iis_bindings"]
        ]
        if server["dag"]:
            dag = next(d for d in before["organization"]["dags"] if d["Name"] == server["dag"])
            assert sorted(n["Name"].lower() for n in ops["cluster"]["value"]["Nodes"]) == sorted(
                s.lower() for s in dag["Servers"])
        else:
            assert ops["cluster"]["value"] is None

        assert ops["auth"]["value"] == before["organization"]["auth_config"]
        internal = {t["Name"].lower(): t["InternalTransportCertificateThumbprint"] for t in ops["transport"]["value"]}
        assert internal == {n: s["internal_transport_thumbprint"] for n, s in before["servers"].items()}
        assert ops["send"]["value"] == before["organization"]["send_connectors"]
        assert ops["receive"]["value"] == server["receive_connectors"]
        assert ops["hybrid"]["value"] == before["organization"]["hybrid"]
        assert sorted(s["Name"].lower() for s in ops["servers"]["value"]) == sorted(before["servers"])
        assert [d["Name"] for d in ops["dags"]["value"]] == [d["Name"] for d in before["organization"]["dags"]]
        assert ops["info"]["value"]["Fqdn"] == server["fqdn"]


def test_export_returns_a_pfx_the_password_opens_and_the_log_never_shows(dag_lab, playbook):
    shared = next(c for c in dag_lab.dump()["servers"]["ex1"]["certificates"]["My"] if c["exportable"]
                  and c["subject"] == "CN=mail.contoso.lab")
    run = playbook(dag_lab, f"""\
        - name: Export the shared certificate with its key
          exchange.pki.exchange_batch:
            operations:
              - {{id: export, op: Export-ExchangeCertificate, args: {{Thumbprint: "{shared['thumbprint']}",
                 Password: {{"$secret": pfx}}}}}}
            secrets: {{pfx: "Correct-Horse-42"}}
          register: result
        """, hosts="ex1", extra_args=("-vvv",))
    assert run.returncode == 0, run.stdout + run.stderr
    export = by_id(run.result("ex1"))["export"]
    assert export["status"] == "ok", export
    pfx = base64.b64decode(export["value"]["FileData"])
    key, cert, _chain = pkcs12.load_key_and_certificates(pfx, b"Correct-Horse-42")
    assert key is not None
    assert hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest().upper() == shared["thumbprint"]  # noqa: S324
    assert "Correct-Horse-42" not in run.stdout + run.stderr, "a secret reached Ansible's output at -vvv"
    assert "Correct-Horse-42" not in str(dag_lab.dump())
