# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serial numbers of the lab's certificates, negative ones included (RFC 5280 forbids them; CAs issued some)."""

from __future__ import annotations

import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.lab import pki
from tests.lab.model.certificates import Material
from tests.lab.tests.pki_fixtures import MAIL, lab_authorities


@pytest.mark.parametrize(
    ("number", "text"),
    [(0x1234, "1234"), (0x80FF, "0080FF"), (0, "00"), (-1, "FF"), (-0x80, "80"), (-0x81, "FF7F"),
     (-0x1A2B, "E5D5"), (-(2**159), "80" + "00" * 19)],
)
def test_serial_hex_is_the_der_integer_like_windows(number: int, text: str) -> None:
    assert pki.serial_hex(number) == text


@pytest.mark.parametrize(
    ("serial", "signature_hash", "key_type"),
    [(-0x1A2B, "sha256", "rsa"), (-0x1A2B, "sha256", "ec"), (0, "sha256", "rsa"), (0, "sha384", "ec"),
     (-5, "sha1", "rsa")],  # sha1 needs an RSA signer
)
def test_a_certificate_with_a_serial_number_that_is_not_positive(serial: int, signature_hash: str,
                                                                 key_type: str) -> None:
    authorities = lab_authorities()
    issuer = "self" if key_type == "ec" else "lab-ca"
    spec = pki.CertificateSpec(f"CN={MAIL}", dns_names=(MAIL,), serial_number=serial, issuer=issuer,
                               key_type=key_type, key_size=256 if key_type == "ec" else 2048,
                               signature_hash=signature_hash)  # type: ignore[arg-type]
    issued = pki.make_certificate(spec, now=authorities.now, authorities=authorities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cryptography warns on reading a serial number that is not positive
        certificate = x509.load_der_x509_certificate(issued.der())
        assert certificate.serial_number == serial
        # The lab's Exchange model reports it the way Windows does (it raised OverflowError before).
        assert Material.from_issued(issued).serial_number == pki.serial_hex(serial)
    hash_algorithm = certificate.signature_hash_algorithm
    assert hash_algorithm is not None and hash_algorithm.name == signature_hash
    signer = certificate if issuer == "self" else authorities.get("lab-ca").certificate
    if key_type == "rsa":  # verify_directly_issued_by refuses SHA-1
        signer.public_key().verify(certificate.signature, certificate.tbs_certificate_bytes, padding.PKCS1v15(),
                                   hash_algorithm)
    else:
        certificate.verify_directly_issued_by(signer)
    assert issued.certificate.public_bytes(serialization.Encoding.DER) == issued.der()
