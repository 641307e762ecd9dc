# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""exchange.pki.tls_probe through ansible-playbook against the lab's real TLS endpoints (IIS :443, SMTP STARTTLS).

Expected certificates come from the lab's dump (the Default Web Site binding) and, for SMTP, from an
independent client (the standard library's smtplib), never from values written in the test.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import smtplib
import socket
import ssl
from typing import Any

from tests.integration.conftest import Lab

SERVER_NAME = "mail.contoso.lab"


def iis_thumbprint(dump: dict[str, Any], server: str) -> str:
    """The certificate bound to the Default Web Site on *:443: in the lab's model."""
    bindings = dump["servers"][server]["iis_bindings"]
    return next(
        binding["certificate_hash"]
        for binding in bindings
        if binding["site"] == "Default Web Site" and binding["binding_information"] == "*:443:"
    ).upper()


def smtp_thumbprint(port: int) -> str:
    """The certificate offered after EHLO / STARTTLS, read with smtplib."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=context)
        return hashlib.sha1(smtp.sock.getpeercert(binary_form=True)).hexdigest().upper()


def certificate(dump: dict[str, Any], server: str, thumbprint: str) -> dict[str, Any]:
    return next(c for c in dump["servers"][server]["certificates"]["My"] if c["thumbprint"].upper() == thumbprint)


def days_until(not_after: str, now: datetime.datetime) -> int:
    return (datetime.datetime.fromisoformat(not_after.replace("Z", "+00:00")) - now).days


def test_probes_every_https_and_smtp_endpoint_of_the_lab(dag_lab: Lab, playbook) -> None:
    tasks = f"""\
        - name: Probe each lab server's IIS and SMTP endpoints from the controller
          exchange.pki.tls_probe:
            host: 127.0.0.1
            port: "{{{{ hostvars[item.0].exchange_pki_lab_ports[item.1.endpoint] }}}}"
            starttls: "{{{{ item.1.starttls }}}}"
            server_name: {SERVER_NAME}
            validate_chain: true
            ca_path: {dag_lab.state_dir / "ca.pem"}
          loop: "{{{{ groups['exchange'] | product(endpoints) | list }}}}"
          vars:
            endpoints: [{{endpoint: https, starttls: none}}, {{endpoint: smtp, starttls: smtp}}]
          register: result
        """
    before = datetime.datetime.now(datetime.timezone.utc)
    run = playbook(dag_lab, tasks, hosts="localhost")
    after = datetime.datetime.now(datetime.timezone.utc)
    assert run.returncode == 0, run.stdout + run.stderr

    dump = dag_lab.dump()
    ports = dag_lab.endpoints()["servers"]
    probes = {(item["item"][0], item["item"][1]["endpoint"]): item for item in run.result("localhost")["results"]}
    assert set(probes) == {(server, endpoint) for server in ports for endpoint in ("https", "smtp")}
    for (server, endpoint), probe in probes.items():
        expected = iis_thumbprint(dump, server) if endpoint == "https" else smtp_thumbprint(ports[server]["smtp"])
        stored = certificate(dump, server, expected)
        assert probe["thumbprint"] == expected, (server, endpoint)
        assert probe["changed"] is False
        assert probe["starttls"] == ("none" if endpoint == "https" else "smtp")
        assert probe["not_after"] == stored["not_after"]
        assert probe["subject"] == stored["subject"]
        assert probe["days_remaining"] in {days_until(stored["not_after"], moment) for moment in (before, after)}
        assert probe["chain_complete"] is True
        if endpoint == "https":
            # The shared SAN certificate from the lab CA (dag.yml "mail"): names and chain are right.
            assert (probe["name_matches"], probe["chain_valid"], probe["chain_error"]) == (True, True, None)
        else:
            # SMTP offers Exchange's self-signed CN=<server> certificate (EF "Default certificates on a server").
            assert "SMTP" in stored["services"]
            assert probe["name_matches"] is False
            assert probe["unmatched_names"] == [SERVER_NAME]
            assert probe["chain_valid"] is False


def test_runs_without_connecting_to_the_host_and_in_check_mode(dag_lab: Lab, playbook) -> None:
    """A wrong WinRM password changes nothing: the probe never opens the task host's connection."""
    tasks = """\
        - name: Probe the host's own IIS endpoint, expecting the bound certificate
          exchange.pki.tls_probe:
            host: 127.0.0.1
            port: "{{ exchange_pki_lab_ports.https }}"
            server_name: mail.contoso.lab
            expected_thumbprint: "{{ expected[inventory_hostname] }}"
          check_mode: true
          register: result
        """
    dump = dag_lab.dump()
    expected = {server: " ".join(iis_thumbprint(dump, server).lower()) for server in dump["servers"]}
    run = playbook(dag_lab, tasks, host_vars={"ansible_password": "not-the-password", "expected": expected})
    assert run.returncode == 0, run.stdout + run.stderr
    for server in dump["servers"]:
        assert run.result(server)["expected_thumbprint_matches"] is True
    assert dag_lab.mutations() == dump["mutations"]


def test_a_failed_dialogue_names_its_stage(dag_lab: Lab, playbook) -> None:
    tasks = """\
        - name: Speak IMAP to the SMTP endpoint
          exchange.pki.tls_probe:
            host: 127.0.0.1
            port: "{{ exchange_pki_lab_ports.smtp }}"
            starttls: imap
          register: result
          ignore_errors: true
        """
    run = playbook(dag_lab, tasks, hosts="ex1")
    result = run.result("ex1")
    assert result["failed"] is True
    assert result["stage"] == "starttls"
    assert result["msg"].startswith("STARTTLS with 127.0.0.1:")
    assert "imap: expected an '* OK' greeting, got '220 ex1.contoso.lab Microsoft ESMTP" in result["msg"]


HOSTILE = [
    # (probe arguments, start of the failure message); the host and port are the lab's, so only the
    # validation can stop these before a connection.
    ({"endpoint": "smtp", "starttls": "smtp", "smtp_helo": "probe.test\r\nMAIL FROM:<a@evil.test>"},
     "smtp_helo 'probe.test\\r\\nMAIL FROM:<a@evil.test>' contains the control character U+000D"),
    ({"endpoint": "smtp", "starttls": "smtp", "smtp_helo": "probe_1"}, "smtp_helo 'probe_1' is not a domain"),
    ({"timeout": "1e300"}, "timeout must be a number of seconds greater than 0 and at most 300, got 1e+300"),
    ({"server_name": "mail\u0000.contoso.lab"}, "server_name 'mail\\x00.contoso.lab' contains the control character"),
    ({"port": 0}, "port must be between 1 and 65535, got 0"),
    ({"expected_thumbprint": "9F1C"}, "expected_thumbprint: thumbprint '9F1C': expected 40 hexadecimal digits"),
    ({"expected_names": ["mail.contoso.lab", ""]}, "expected_names[1] must not be empty"),
]


def test_hostile_arguments_fail_clearly_before_connecting(dag_lab: Lab, playbook) -> None:
    tasks = f"""\
        - name: Probe with hostile values
          exchange.pki.tls_probe:
            host: 127.0.0.1
            port: "{{{{ item.port | default(exchange_pki_lab_ports[item.endpoint | default('https')]) }}}}"
            starttls: "{{{{ item.starttls | default(omit) }}}}"
            server_name: "{{{{ item.server_name | default(omit) }}}}"
            smtp_helo: "{{{{ item.smtp_helo | default(omit) }}}}"
            timeout: "{{{{ item.timeout | default(omit) }}}}"
            expected_thumbprint: "{{{{ item.expected_thumbprint | default(omit) }}}}"
            expected_names: "{{{{ item.expected_names | default(omit) }}}}"
          loop: {json.dumps([arguments for arguments, _message in HOSTILE])}
          register: result
          ignore_errors: true
        """
    run = playbook(dag_lab, tasks, hosts="ex1")
    assert run.returncode == 0, run.stdout + run.stderr
    results = run.result("ex1")["results"]
    for (arguments, message), result in zip(HOSTILE, results, strict=True):
        assert result["failed"] is True, arguments
        assert result["msg"].startswith(message), (arguments, result["msg"])
        assert "stage" not in result, "nothing was sent"
        assert "Traceback" not in result.get("exception", ""), "a user error, not a bug"


def test_an_internationalized_server_name_is_sent_as_its_a_label(dag_lab: Lab, playbook) -> None:
    tasks = """\
        - name: Probe IIS with a U-label server name
          exchange.pki.tls_probe:
            host: 127.0.0.1
            port: "{{ exchange_pki_lab_ports.https }}"
            server_name: bücher.contoso.lab
            expected_names: [bücher.contoso.lab, mail.contoso.lab]
          register: result
        """
    run = playbook(dag_lab, tasks, hosts="ex1")
    assert run.returncode == 0, run.stdout + run.stderr
    result = run.result("ex1")
    assert result["server_name"] == "bücher.contoso.lab".encode("idna").decode()
    assert (result["matched_names"], result["unmatched_names"]) == (["mail.contoso.lab"], ["bücher.contoso.lab"])


def test_failed_when_applies_to_a_probe_that_cannot_connect(dag_lab: Lab, playbook) -> None:
    """A role that probes an endpoint before a change records a refused connection (failed_when: false) instead of
    failing: ansible-core applies failed_when only to a result the plugin returns, not to one it raises. The same
    holds for bad input, which a task can turn into its own decision (failed_when on the message)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    tasks = f"""\
        - name: Probe a port where nothing listens, as a role does before a change
          exchange.pki.tls_probe:
            host: 127.0.0.1
            port: {port}
            starttls: smtp
            timeout: 5
          register: refused
          failed_when: false
        - name: Give a bad option, failing only on another message
          exchange.pki.tls_probe:
            host: 127.0.0.1
            port: 70000
          register: bad
          failed_when: "'not the message' in bad.msg"
        - name: Keep both results
          ansible.builtin.set_fact:
            result: "{{{{ {{'refused': refused, 'bad': bad}} }}}}"
        """
    run = playbook(dag_lab, tasks, hosts="localhost")
    assert run.returncode == 0, run.stdout + run.stderr
    refused, bad = run.result("localhost")["refused"], run.result("localhost")["bad"]
    assert refused["failed"] is False and refused["failed_when_result"] is False
    assert refused["msg"] == f"connecting to 127.0.0.1:{port} failed: Connection refused"
    assert refused["stage"] == "connect" and refused["failure_reason"] == "failed"
    assert bad["failed"] is False and "port" in bad["msg"] and "65535" in bad["msg"], bad
