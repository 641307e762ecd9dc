# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of the tls_probe action plugin: documented options, argument errors, wiring of the probe."""

from __future__ import annotations

import datetime
import hashlib
import pathlib
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.exchange.pki.plugins.action import tls_probe
from ansible_collections.exchange.pki.plugins.modules import tls_probe as tls_probe_docs
from ansible_collections.exchange.pki.plugins.plugin_utils import _tls
from ansible_collections.exchange.pki.plugins.plugin_utils._tls import Handshake, ProbeRequest, TlsProbeError
from tests.unit.plugins.action.action_harness import failed_result

NOW = datetime.datetime.now(datetime.timezone.utc)
TIMEOUT_RANGE = "timeout must be a number of seconds greater than 0 and at most 300"


@pytest.fixture(scope="module")
def certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.contoso.test")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30, hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("mail.contoso.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch, der: bytes) -> list[ProbeRequest]:
    """Replace the network: every handshake 'serves' ``certificate``; the requests are recorded."""
    requests: list[ProbeRequest] = []

    def fake_handshake(request: ProbeRequest) -> Handshake:
        requests.append(request)
        return Handshake(request, "TLSv1.3", "TLS_AES_256_GCM_SHA384", (der,), True)

    monkeypatch.setattr(tls_probe, "handshake", fake_handshake)
    return requests


def run(args: dict[str, Any], *, check_mode: bool = False) -> dict[str, Any]:
    """Run the action as TaskExecutor would, with a task and a connection that is never used."""
    task = SimpleNamespace(
        args=args, async_val=0, check_mode=check_mode, action="tls_probe", resolved_action="exchange.pki.tls_probe"
    )
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    action = tls_probe.ActionModule(task, connection, None, None, None, None)  # type: ignore[arg-type]
    return action.run(task_vars={})


# --- the documentation is the argument spec ------------------------------------------------------------
def documented_options() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(tls_probe_docs.DOCUMENTATION)["options"]


def test_documented_options_equal_the_argument_spec() -> None:
    keys = ("type", "required", "default", "choices", "elements")
    spec = {name: {key: option.get(key) for key in keys} for name, option in
            tls_probe.ARGUMENT_SPEC.argument_spec.items()}
    documented = {name: {key: option.get(key) for key in keys} for name, option in documented_options().items()}
    assert documented == spec


def test_action_runs_on_the_controller_only() -> None:
    assert tls_probe.ActionModule._requires_connection is False
    assert tls_probe.ActionModule.TRANSFERS_FILES is False


@pytest.mark.parametrize("section", ["EXAMPLES", "RETURN"])
def test_examples_and_return_are_yaml(section: str) -> None:
    assert yaml.safe_load(getattr(tls_probe_docs, section))


def test_every_result_key_is_documented(probes: list[ProbeRequest]) -> None:
    result = run({"host": "mail.contoso.test", "expected_thumbprint": "00" * 20})
    assert set(result) - {"invocation"} <= set(yaml.safe_load(tls_probe_docs.RETURN))


# --- argument errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "missing required arguments: host"),
        ({"host": "h", "starttls": "ftp"}, "value of starttls must be one of: none, smtp, imap, pop3, got: ftp"),
        ({"host": "h", "port": "https"}, "argument 'port' is of type str and we were unable to convert to int"),
        ({"host": "h", "colour": "blue"}, "module: colour. Supported parameters include: ca_path,"),
        ({"host": " "}, "host must not be empty"),
        ({"host": "h", "server_name": ""}, "server_name must not be empty"),
        ({"host": "h", "server_name": "a" * 64 + ".test"}, "server_name 'aaaa"),
        ({"host": "h", "port": 0}, "port must be between 1 and 65535, got 0"),
        ({"host": "h", "port": 65536}, "port must be between 1 and 65535, got 65536"),
        ({"host": "h", "timeout": 0}, f"{TIMEOUT_RANGE}, got 0.0"),
        ({"host": "h", "ca_path": "/etc/ssl/certs/ca-certificates.crt"}, "set validate_chain=true with it"),
        ({"host": "h", "expected_thumbprint": "9F1C"}, "expected 40 hexadecimal digits (SHA-1), got 4"),
        ({"host": "h", "expected_thumbprint": "G" * 40}, "character 'G' (U+0047) at position 1"),
        # hostile values: each named, nothing sent
        ({"host": "h", "starttls": "smtp", "smtp_helo": "probe.test\r\nMAIL FROM:<a@evil.test>"},
         "smtp_helo 'probe.test\\r\\nMAIL FROM:<a@evil.test>' contains the control character U+000D at position 11"),
        ({"host": "h", "smtp_helo": "probe\nRSET"}, "smtp_helo 'probe\\nRSET' contains the control character U+000A"),
        ({"host": "h", "smtp_helo": "probe_1"}, "smtp_helo 'probe_1' is not a domain or an address literal"),
        ({"host": "h", "smtp_helo": "[IPv6:nope]"}, "smtp_helo '[IPv6:nope]' is not an address literal"),
        ({"host": "h", "smtp_helo": "h\u200d.test"},
         "smtp_helo 'h\\u200d.test' is not a valid internationalized name (IDNA 2008)"),
        ({"host": "h", "timeout": 1e300}, f"{TIMEOUT_RANGE}, got 1e+300"),
        ({"host": "h", "timeout": "inf"}, f"{TIMEOUT_RANGE}, got inf"),
        ({"host": "h", "timeout": "nan"}, f"{TIMEOUT_RANGE}, got nan"),
        ({"host": "h", "timeout": -3}, f"{TIMEOUT_RANGE}, got -3.0"),
        ({"host": "h", "timeout": 301}, f"{TIMEOUT_RANGE}, got 301.0"),
        ({"host": "h", "timeout": True}, "timeout must be a number, got the boolean True"),
        ({"host": "h", "port": True}, "port must be a number, got the boolean True"),
        ({"host": "h", "port": -25}, "port must be between 1 and 65535, got -25"),
        ({"host": "h", "port": 10**20}, "port must be between 1 and 65535, got 100000000000000000000"),
        ({"host": "h", "server_name": "mail.contoso.test\x00.evil.test"},
         "server_name 'mail.contoso.test\\x00.evil.test' contains the control character U+0000 at position 18"),
        ({"host": "h", "server_name": "ma\u2603il.test"}, "server_name 'ma\u2603il.test' is not a valid"),
        ({"host": "h", "server_name": "mail contoso"}, "server_name 'mail contoso' contains whitespace"),
        ({"host": "mail.contoso.test\x00"}, "host 'mail.contoso.test\\x00' contains the control character"),
        ({"host": "mail.contoso.test\r\n"}, "host 'mail.contoso.test\\r\\n' contains the control character U+000D"),
        ({"host": "../../etc/passwd"}, "host '../../etc/passwd' is neither an IP address nor a DNS name"),
        ({"host": "h" * 100_000}, "(100000 characters) is longer than 1012 characters"),
        ({"host": {"a": 1}}, "host \"{'a': 1}\" contains whitespace"),
        ({"host": "h", "expected_names": ["mail.contoso.test", ""]}, "expected_names[1] must not be empty"),
        ({"host": "h", "expected_names": ["mail\x00.test"]}, "expected_names[0] 'mail\\x00.test' contains the"),
        ({"host": "h", "expected_names": ["a\r\nb"]}, "expected_names[0] 'a\\r\\nb' contains the control"),
        ({"host": "h", "expected_names": ["mail/owa"]}, "expected_names[0] 'mail/owa' is neither an IP address nor"),
        ({"host": "h", "expected_thumbprint": ""}, "expected_thumbprint must not be empty"),
        ({"host": "h", "expected_thumbprint": "00" * 19}, "expected 40 hexadecimal digits (SHA-1), got 38"),
        ({"host": "h", "expected_thumbprint": "00" * 21}, "expected 40 hexadecimal digits (SHA-1), got 42"),
        ({"host": "h", "expected_thumbprint": "0" * 39 + "\x00"}, "control character U+0000 at position 40"),
        ({"host": "h", "expected_thumbprint": "0" * 100_000}, "expected_thumbprint '0000"),
        ({"host": "h", "validate_chain": True, "ca_path": ""}, "ca_path must not be empty"),
        ({"host": "h", "validate_chain": True, "ca_path": "/tmp/a\x00b"}, "ca_path '/tmp/a\\x00b' contains the"),
        ({"host": "h", "validate_chain": True, "ca_path": "/"}, "ca_path /: not a regular file"),
        ({"host": "h", "validate_chain": True, "ca_path": "/dev/zero"}, "ca_path /dev/zero: not a regular"),
    ],
)
def test_argument_errors_name_the_problem(probes: list[ProbeRequest], args: dict[str, Any], message: str) -> None:
    error = failed_result(run(args))
    assert message in error["msg"]
    assert probes == [], "nothing is probed when the arguments are wrong"


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read it (No such file or directory)"), (b"not a certificate", "not a PEM bundle")],
)
def test_a_bad_ca_path_is_named(probes: list[ProbeRequest], tmp_path: pathlib.Path, content: bytes | None,
                                message: str) -> None:
    bundle = tmp_path / "roots.pem"
    if content is not None:
        bundle.write_bytes(content)
    error = failed_result(run({"host": "h", "validate_chain": True, "ca_path": str(bundle)}))
    assert error["msg"].startswith(f"ca_path {bundle}: {message}")


# --- wiring --------------------------------------------------------------------------------------------
def test_defaults_probe_https_with_the_host_as_sni_and_expected_name(probes: list[ProbeRequest], der: bytes) -> None:
    result = run({"host": "mail.contoso.test"})

    assert probes == [ProbeRequest("mail.contoso.test", 443, "none", "mail.contoso.test", 10.0, None)]
    assert result["changed"] is False
    assert result["thumbprint"] == hashlib.sha1(der).hexdigest().upper()
    assert result["days_remaining"] == 30
    assert (result["name_matches"], result["matched_names"]) == (True, ["mail.contoso.test"])
    assert result["expected_thumbprint_matches"] is None
    assert result["chain_valid"] is None


def test_an_ip_address_host_sends_no_sni_and_expects_the_address(probes: list[ProbeRequest]) -> None:
    result = run({"host": "192.0.2.10", "port": 25, "starttls": "smtp", "smtp_helo": "ansible.contoso.test"})

    assert probes == [ProbeRequest("192.0.2.10", 25, "smtp", None, 10.0, "ansible.contoso.test")]
    assert (result["name_matches"], result["unmatched_names"]) == (False, ["192.0.2.10"])


def test_a_pasted_thumbprint_is_normalized(probes: list[ProbeRequest], der: bytes) -> None:
    thumbprint = hashlib.sha1(der).hexdigest()
    pasted = "\u200e" + " ".join(thumbprint[i : i + 2] for i in range(0, 40, 2))
    assert run({"host": "h.test", "expected_thumbprint": pasted})["expected_thumbprint_matches"] is True


def test_check_mode_probes_too(probes: list[ProbeRequest]) -> None:
    result = run({"host": "mail.contoso.test", "expected_names": []}, check_mode=True)
    assert len(probes) == 1
    assert result["name_matches"] is None


def test_validate_chain_uses_the_ca_path(probes: list[ProbeRequest], certificate: x509.Certificate,
                                         tmp_path: pathlib.Path) -> None:
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    result = run({"host": "mail.contoso.test", "validate_chain": True, "ca_path": str(bundle)})
    # A self-signed end-entity certificate is no trust anchor under Web PKI rules.
    assert result["chain_valid"] is False
    assert result["chain_error"]


def test_a_failed_probe_reports_its_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(request: ProbeRequest) -> Handshake:
        raise TlsProbeError("connect", request.endpoint, "Connection refused")

    monkeypatch.setattr(tls_probe, "handshake", refused)
    error = failed_result(run({"host": "mail.contoso.test", "port": 25}))
    assert error["msg"] == "connecting to mail.contoso.test:25 failed: Connection refused"
    assert (error["failed"], error["stage"]) == (True, "connect")


def test_a_missing_cryptography_is_named(probes: list[ProbeRequest], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_probe, "HAS_CRYPTOGRAPHY", False)
    failed_result(run({"host": "mail.contoso.test"}),
                  r"needs the Python library cryptography >= 42\.0 on the controller")
    assert probes == []


def test_a_huge_thumbprint_is_not_echoed_whole(probes: list[ProbeRequest]) -> None:
    error = failed_result(run({"host": "h", "expected_thumbprint": "0" * 100_000}))
    assert error["msg"].endswith("(100000 characters) is longer than 256 characters")


def test_a_huge_ca_bundle_is_refused(probes: list[ProbeRequest], tmp_path: pathlib.Path) -> None:
    bundle = tmp_path / "roots.pem"
    with bundle.open("wb") as handle:
        handle.truncate(tls_probe.MAX_CA_BUNDLE + 1)
    failed_result(run({"host": "h", "validate_chain": True, "ca_path": str(bundle)}),
                  r"ca_path .*: larger than 16 MiB, not a CA bundle")
    assert probes == []


def test_internationalized_names_are_sent_as_a_labels(probes: list[ProbeRequest], certificate: x509.Certificate,
                                                      der: bytes) -> None:
    result = run({"host": "bücher.contoso.test", "starttls": "smtp", "smtp_helo": "pröbe.contoso.test",
                  "expected_names": ["bücher.contoso.test", "mail.contoso.test"]})
    assert probes == [ProbeRequest("xn--bcher-kva.contoso.test", 443, "smtp", "xn--bcher-kva.contoso.test", 10.0,
                                   "xn--prbe-6qa.contoso.test")]
    assert (result["host"], result["server_name"]) == ("xn--bcher-kva.contoso.test", "xn--bcher-kva.contoso.test")
    # The names are reported as given; the certificate holds only mail.contoso.test.
    assert (result["matched_names"], result["unmatched_names"]) == (["mail.contoso.test"], ["bücher.contoso.test"])


def test_a_u_label_server_name_without_idna_is_refused(probes: list[ProbeRequest],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tls, "HAS_IDNA", False)
    failed_result(run({"host": "192.0.2.1", "server_name": "bücher.test"}),
                  r"^server_name 'bücher.test' is an internationalized name: .* needs the Python library idna on the "
                  r"controller")
    assert probes == []


@pytest.mark.parametrize("timeout", [0.001, 300, "2.5"])
def test_the_timeout_range_is_inclusive_of_its_maximum(probes: list[ProbeRequest], timeout: object) -> None:
    run({"host": "mail.contoso.test", "timeout": timeout})
    assert probes[0].timeout == float(timeout)  # type: ignore[arg-type]
