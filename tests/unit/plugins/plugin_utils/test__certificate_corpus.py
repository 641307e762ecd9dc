# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""parse_certificate against pyca's x509 test corpus (the cryptography-vectors package, requirements/dev.txt).

Every certificate of the corpus must either parse (fully, or partly with ``problems``) or raise
CertificateParseError: one odd certificate on a server must never take the server's other facts down.
The corpus holds certificates written by many CAs and tools, and deliberately broken ones.
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import pathlib
import re
import warnings
from collections.abc import Callable

import cryptography
import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    CertificateFacts,
    CertificateParseError,
    parse_certificate,
    sha1_thumbprint,
)

cryptography_vectors = pytest.importorskip(
    "cryptography_vectors", reason="the x509 corpus is test data from requirements/dev.txt (cryptography-vectors)"
)
X509 = pathlib.Path(cryptography_vectors.__file__).parent / "x509"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_PEM_CERTIFICATE_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
# DER files that are not certificates: tried after the certificate loader.
_OTHER_DER_LOADERS: tuple[Callable[[bytes], object], ...] = (
    x509.load_der_x509_crl, x509.load_der_x509_csr, ocsp.load_der_ocsp_request, ocsp.load_der_ocsp_response,
)


@dataclasses.dataclass(frozen=True)
class Corpus:
    certificates: tuple[tuple[str, bytes], ...]  # ("path#index", DER)
    other_files: tuple[tuple[str, bytes], ...]  # CRLs, CSRs, keys, OCSP, PKCS#12, S/MIME, certificate pairs


def _loads(loader: Callable[[bytes], object], data: bytes) -> bool:
    try:
        loader(data)
    except Exception:  # noqa: BLE001 - any failure means "not this kind of object"
        return False
    return True


def _pem_certificates(data: bytes) -> list[bytes]:
    """The DER of each CERTIFICATE block (RFC 7468; RFC 1421 header lines such as Proc-Type skipped)."""
    ders = []
    for label, body in _PEM_BLOCK.findall(data):
        if label in _PEM_CERTIFICATE_LABELS:
            base64_lines = [line for line in body.splitlines() if b":" not in line]
            try:
                ders.append(base64.b64decode(b"".join(base64_lines)))
            except binascii.Error:
                ders.append(body)  # still fed to the parser: it must refuse it cleanly
    return ders


def _is_certificate_der(path: pathlib.Path, data: bytes) -> bool:
    """Certificate loading first; a .der/.crt nothing can load is a certificate cryptography refuses."""
    if _loads(x509.load_der_x509_certificate, data):
        return True
    if path.suffix not in (".der", ".crt") or "crl" in path.name or path.parent.name in ("ocsp", "requests"):
        return False
    return not any(_loads(loader, data) for loader in _OTHER_DER_LOADERS)


def _walk() -> Corpus:
    certificates: list[tuple[str, bytes]] = []
    others: list[tuple[str, bytes]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the loaders used for sorting warn on the corpus' odd certificates
        for path in sorted(X509.rglob("*")):
            if not path.is_file():
                continue
            name, data = path.relative_to(X509).as_posix(), path.read_bytes()
            if b"-----BEGIN " in data:
                ders = _pem_certificates(data)
                certificates.extend((f"{name}#{index}", der) for index, der in enumerate(ders))
                if not ders:
                    others.append((name, data))
            elif _is_certificate_der(path, data):
                certificates.append((f"{name}#0", data))
            else:
                others.append((name, data))
    return Corpus(tuple(certificates), tuple(others))


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return _walk()


def _outcome(der: bytes) -> CertificateFacts | CertificateParseError | Exception:
    try:
        return parse_certificate(der)
    except CertificateParseError as error:
        return error
    except Exception as error:  # noqa: BLE001 - collected, then reported by the assertion
        return error


def test_the_vectors_are_the_pinned_cryptography_version() -> None:
    assert cryptography_vectors.__version__ == cryptography.__version__, (
        "pin cryptography-vectors to the cryptography version in requirements/dev.in and dev.txt"
    )


def test_every_certificate_of_the_corpus_parses_or_raises_the_domain_error(
    corpus: Corpus, capsys: pytest.CaptureFixture[str]
) -> None:
    counts: collections.Counter[str] = collections.Counter()
    unexpected = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may escape the parser either
        for where, der in corpus.certificates:
            result = _outcome(der)
            if isinstance(result, CertificateFacts):
                counts["partial" if result.problems else "full"] += 1
                assert result.thumbprint == sha1_thumbprint(der), where
                assert all(re.match(r"^(extensions|public key|signature algorithm): \S", problem)
                           for problem in result.problems), (where, result.problems)
            elif isinstance(result, CertificateParseError):
                counts["unparseable"] += 1
                assert str(result), where
            else:
                unexpected.append(f"{where}: {type(result).__name__}: {result}")
    assert unexpected == []
    with capsys.disabled():
        print(f"\ncryptography-vectors {cryptography_vectors.__version__} x509: {len(corpus.certificates)} "
              f"certificates: {counts['full']} parsed fully, {counts['partial']} partially (with problems), "
              f"{counts['unparseable']} not at all; {len(corpus.other_files)} other files")
    # The walk must have found the corpus (540 certificates in 50.0.2), and most of it is ordinary.
    assert len(corpus.certificates) >= 500
    assert counts["full"] >= 0.9 * len(corpus.certificates)


def test_every_other_file_of_the_corpus_is_refused_with_the_domain_error(corpus: Corpus) -> None:
    # CRLs, CSRs, keys, OCSP messages, PKCS#12, S/MIME and certificate pairs are hostile input here. (The
    # certificates inside the PKCS#12 files, S/MIME messages and certificate pairs are PKITS certificates
    # that the walk already reads from PKITS_data/certs.)
    unexpected = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for where, data in corpus.other_files:
            result = _outcome(data)
            if not isinstance(result, CertificateParseError):
                unexpected.append(f"{where}: {type(result).__name__}: {result}")
    assert len(corpus.other_files) > 1000
    assert unexpected == []


# --- each failure class observed on real certificates ---------------------------------------------


def _vector(name: str) -> bytes:
    data = (X509 / name).read_bytes()
    return _pem_certificates(data)[0] if b"-----BEGIN " in data else data


@pytest.mark.parametrize(
    ("name", "serial"),
    [
        # Observed: OverflowError. Two's complement of the DER INTEGER, as Windows shows SerialNumber.
        ("custom/negative_serial.pem", "FBCE996C13"),
        ("PKITS_data/certs/InvalidNegativeSerialNumberTest15EE.crt", "FF"),
    ],
)
def test_negative_serial_numbers(name: str, serial: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        facts = parse_certificate(_vector(name))
    assert facts.serial_number == serial
    assert facts.problems == ()


@pytest.mark.parametrize(
    ("name", "problem", "unknown"),
    [
        # Observed: x509.DuplicateExtension.
        ("custom/two_basic_constraints.pem", "extensions: duplicate extension 2.5.29.19", ("dns_names", "ekus")),
        # Observed: x509.UnsupportedGeneralNameType.
        ("san_edipartyname.der", "extensions: unsupported subject/issuer alternative name form "
         "(x400Address/EDIPartyName are not supported types)", ("dns_names", "ekus")),
        ("san_x400address.der", "extensions: unsupported subject/issuer alternative name form "
         "(x400Address/EDIPartyName are not supported types)", ("dns_names", "ekus")),
        # A malformed path length (basic constraints of a non-CA with a path length).
        ("wosign-bc-invalid.pem", "extensions: path_length must be None when ca is False", ("dns_names", "ekus")),
        # A GOST R 34.10-2001 key (Russian national CAs).
        ("e-trust.ru.der", "public key: Unknown key type: 1.2.643.2.2.19 (algorithm 1.2.643.2.2.19)",
         ("key_type", "key_size", "public_key_sha256", "is_self_signed")),
    ],
)
def test_a_certificate_with_an_unreadable_part_keeps_the_readable_facts(
    name: str, problem: str, unknown: tuple[str, ...]
) -> None:
    der = _vector(name)
    facts = parse_certificate(der)
    assert facts.problems == (problem,)
    assert all(getattr(facts, field) is None for field in unknown)
    assert facts.thumbprint == sha1_thumbprint(der)
    assert facts.subject and facts.issuer and facts.serial_number
    assert facts.not_before <= facts.not_after
    facts.covers("mail.contoso.com")  # safe on the unknown parts
    assert facts.allows_server_auth is (None if "ekus" in unknown else True)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        # Observed: x509.InvalidVersion.
        ("custom/invalid_version.pem", "unsupported X.509 version field 7 (only 0-2, v1-v3, exist)"),
        ("badasn1time.pem", "error parsing asn1 value"),
        ("custom/invalid_utf8_common_name.pem", "with unreadable names, serial number or dates"),
    ],
)
def test_a_certificate_that_cannot_be_loaded_raises_the_domain_error_naming_the_reason(name: str, reason: str) -> None:
    der = _vector(name)
    with pytest.raises(CertificateParseError, match=re.escape(reason)) as raised:
        parse_certificate(der)
    assert f"({len(der)} bytes)" in str(raised.value)


def test_an_md5_signature_named_by_the_bare_hash_oid_is_md5() -> None:
    assert parse_certificate(_vector("v1_cert.pem")).signature_hash == "md5"
