# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internationalised DNS names: compared in A-label form (IDNA 2008), in certificates and in the policy."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible_collections.exchange.pki.plugins.plugin_utils import _certificate
from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    DnsNameError,
    dns_name_matches,
    dns_name_to_a_label,
    parse_certificate,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import Policy, PolicyError
from tests.unit.clock import NOW


@pytest.mark.parametrize(
    ("name", "a_label"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.Example.", "xn--bcher-kva.example"),  # UTS #46 mapping: case, trailing dot
        ("bücher\uff0eexample", "xn--bcher-kva.example"),  # a full-width full stop is a dot
        ("*.bücher.example", "*.xn--bcher-kva.example"),
        ("straße.de", "xn--strae-oqa.de"),  # IDNA 2008 keeps the sharp s (IDNA 2003 mapped it to "ss")
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("Mail.Contoso.COM", "mail.contoso.com"),
        ("mail.contoso.com.", "mail.contoso.com"),
        ("_sip._tls.contoso.com", "_sip._tls.contoso.com"),
        ("*.contoso.com", "*.contoso.com"),
        ("почта.пример.рф", "xn--80a1acny.xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_dns_name_to_a_label(name: str, a_label: str) -> None:
    assert dns_name_to_a_label(name) == a_label


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "has an empty label"),
        ("mail..contoso.com", "has an empty label"),
        (".", "has an empty label"),
        ("mail contoso", "character ' ' (U+0020) in label 'mail contoso'"),
        (" mail.contoso.com", "character ' ' (U+0020)"),
        ("mail.contoso.com\r\nX: y", r"character '\r' (U+000D)"),
        ("mail\x00.contoso.com", r"character '\x00' (U+0000)"),
        ("../../etc/passwd", "has an empty label"),
        ("mail/x.contoso.com", "character '/' (U+002F)"),
        ("m*.contoso.com", "character '*' (U+002A)"),
        ("mail.*.contoso.com", "character '*' (U+002A)"),
        ("*", "character '*' (U+002A)"),
        ("a" * 64 + ".contoso.com", "is 64 octets long (at most 63)"),
        (".".join(["a" * 63] * 4), "255 octets (at most 253)"),
        ("bü cher.example", "not a valid internationalised DNS name (IDNA 2008)"),
        ("a\u200db.example", "not a valid internationalised DNS name (IDNA 2008)"),  # ZWJ outside its context
        ("\u0661\u0031.example", "not a valid internationalised DNS name (IDNA 2008)"),  # bidi rule
        ("☃.example", "not a valid internationalised DNS name (IDNA 2008)"),  # symbols are not PVALID
    ],
)
def test_dns_name_to_a_label_errors_name_the_name(name: str, message: str) -> None:
    with pytest.raises(DnsNameError, match=re.escape(message)) as raised:
        dns_name_to_a_label(name)
    assert repr(name)[:20] in str(raised.value) or repr(name[:40]) in str(raised.value)


@pytest.mark.parametrize("value", [None, 1, b"mail.contoso.com", ["mail"]])
def test_dns_name_to_a_label_refuses_other_types(value: Any) -> None:
    with pytest.raises(DnsNameError, match="expected a string, got "):
        dns_name_to_a_label(value)


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("xn--bcher-kva.example", "bücher.example", True),
        ("xn--bcher-kva.example", "BÜCHER.example", True),
        ("bücher.example", "xn--bcher-kva.example", True),  # a UTF-8 SAN (invalid, but seen) still matches
        ("*.xn--bcher-kva.example", "www.bücher.example", True),
        ("*.xn--bcher-kva.example", "bücher.example", False),  # never the bare domain
        ("*.bücher.example", "shop.xn--bcher-kva.example", True),
        ("xn--bcher-kva.example", "bucher.example", False),
        ("xn--strae-oqa.de", "straße.de", True),
        ("strasse.de", "straße.de", False),
        # Names without an A-label form match nothing, on either side, and never raise.
        ("☃.example", "☃.example", False),
        ("mail contoso.com", "mail contoso.com", False),
        ("mail.contoso.com", "mail\x00.contoso.com", False),
        ("", "", False),
    ],
)
def test_dns_name_matches_in_a_label_form(pattern: str, host: str, matches: bool) -> None:
    assert dns_name_matches(pattern, host) is matches


def _certificate_with_sans(*names: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "idn")])
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    )


def test_a_u_label_required_name_is_covered_by_the_a_label_san() -> None:
    facts = parse_certificate(_certificate_with_sans("xn--bcher-kva.example", "*.xn--caf-dma.example"))
    policy = Policy.from_options({"required_names": ["bücher.example", "www.café.example", "bücher.example."]})
    assert policy.required_names == ("xn--bcher-kva.example", "www.xn--caf-dma.example")
    assert all(facts.covers(name) for name in policy.required_names)
    assert not facts.covers("café.example")


def test_policy_normalises_required_names_built_directly() -> None:
    assert Policy(required_names=("Bücher.Example.", "MAIL.contoso.com")).required_names == (
        "xn--bcher-kva.example", "mail.contoso.com"
    )
    assert Policy(required_names=("mail.contoso.com",)) == Policy.from_options(
        {"required_names": [" Mail.Contoso.com. "]}
    )


def test_policy_names_every_required_name_that_cannot_be_converted() -> None:
    with pytest.raises(PolicyError) as raised:
        Policy.from_options({"required_names": ["mail.contoso.com", "☃.example", "a..b", "bücher.example"]})
    message = str(raised.value)
    assert message.startswith("policy.required_names: ")
    assert "'☃.example' is not a valid internationalised DNS name (IDNA 2008)" in message
    assert "'a..b' is not a DNS name: it has an empty label" in message
    assert "mail.contoso.com'" not in message and "bücher" not in message


def test_a_missing_idna_library_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_certificate, "HAS_IDNA", False)
    _certificate._idna_a_label.cache_clear()
    try:
        assert dns_name_to_a_label("mail.contoso.com") == "mail.contoso.com"  # ASCII needs no library
        with pytest.raises(PolicyError, match=r"policy\.required_names: .*requires the Python library idna"):
            Policy(required_names=("bücher.example",))
        assert dns_name_matches("bücher.example", "bücher.example") is False  # a SAN never fails the host
    finally:
        _certificate._idna_a_label.cache_clear()
