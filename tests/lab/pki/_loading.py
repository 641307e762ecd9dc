# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate files as Import-ExchangeCertificate accepts them: PEM (one or many), DER, PKCS#7."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from ._errors import PkiError

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----.*?-----END \1-----", re.DOTALL)
_PEM_CERTIFICATE_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE"}
_PEM_PKCS7_LABEL = b"PKCS7"
_T = TypeVar("_T")


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in ``data``: PEM blocks (CERTIFICATE or PKCS7), a DER certificate or a DER PKCS#7.

    Raises :class:`PkiError` naming the format it tried when the data is malformed or holds no certificate.
    """
    certificates = _from_pem(data) if b"-----BEGIN" in data else _from_der(data)
    if not certificates:
        raise PkiError("the certificate data holds no certificate")
    return certificates


def _from_pem(data: bytes) -> list[x509.Certificate]:
    blocks = list(_PEM_BLOCK.finditer(data))
    if not blocks:
        raise PkiError("malformed PEM certificate data: no complete BEGIN/END block")
    certificates: list[x509.Certificate] = []
    for block in blocks:
        label = block.group(1)
        if label in _PEM_CERTIFICATE_LABELS:
            certificates.append(_parse(x509.load_pem_x509_certificate, block.group(0), "PEM certificate"))
        elif label == _PEM_PKCS7_LABEL:
            certificates.extend(_parse(pkcs7.load_pem_pkcs7_certificates, block.group(0), "PEM PKCS#7 chain"))
        else:
            raise PkiError(f"PEM block {label.decode()!r} is not a certificate or PKCS#7 chain")
    return certificates


def _from_der(data: bytes) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        pass
    try:
        return pkcs7.load_der_pkcs7_certificates(data)
    except ValueError:
        raise PkiError("malformed certificate data: neither PEM, a DER certificate nor a DER PKCS#7 chain") from None


def _parse(parser: Callable[[bytes], _T], data: bytes, what: str) -> _T:
    try:
        return parser(data)
    except ValueError as error:
        raise PkiError(f"malformed {what}: {error}") from None
