# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The minimal ASN.1 reader behind PFX inspection and weak-hash signing (tests/lab/pki/_der.py)."""

from __future__ import annotations

import pytest

from tests.lab.pki import _der


@pytest.mark.parametrize("oid", ["1.2.840.113549.1.12.1.3", "1.2.840.113549.1.5.13", "2.16.840.1.101.3.4.1.42", "2.5"])
def test_oid_round_trip(oid: str) -> None:
    assert _der.read_single(_der.encode_oid(oid), "OID").oid() == oid


@pytest.mark.parametrize("size", [0, 0x7F, 0x80, 0x1234])
def test_lengths_round_trip(size: int) -> None:
    element = _der.read_single(_der.encode_tlv(_der.OCTET_STRING, b"x" * size), "OCTET STRING")
    assert element.octets() == b"x" * size


def test_ber_indefinite_length_and_constructed_octet_string() -> None:
    chunks = _der.encode_tlv(_der.OCTET_STRING, b"ab") + _der.encode_tlv(_der.OCTET_STRING, b"cd")
    data = b"\x30\x80" + b"\x24\x80" + chunks + b"\x00\x00" + _der.encode_tlv(_der.INTEGER, b"\x03") + b"\x00\x00"
    sequence = _der.read_single(data, "SEQUENCE")
    octets, integer = sequence.children()
    assert octets.octets() == b"abcd"
    assert (integer.tag, integer.content) == (_der.INTEGER, b"\x03")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated ASN.1 data \\(offset 0\\)"),
        (b"\x04\x05abc", "5 bytes needed at offset 2"),
        (b"\x1f\x01\x00", "high tag numbers are not supported"),
        (b"\x04\x80ab\x00\x00", "indefinite length on a primitive"),
        (b"\x04\x85\x01\x02\x03\x04\x05", "length of 5 bytes is too large"),
        (b"\x04\x01ab", "OCTET STRING has 1 unexpected trailing bytes"),
        (b"\x30\x80\x04\x01a", "truncated ASN.1 data"),
    ],
)
def test_malformed_data_is_named(data: bytes, message: str) -> None:
    with pytest.raises(_der.DerError, match=message):
        _der.read_single(data, "OCTET STRING")


@pytest.mark.parametrize(
    ("element", "call", "message"),
    [
        (b"\x04\x01a", "children", "tag 0x04 is not constructed"),
        (b"\x02\x01\x03", "octets", "expected an OCTET STRING, found tag 0x02"),
        (b"\x04\x01a", "oid", "expected an OBJECT IDENTIFIER, found tag 0x04"),
    ],
)
def test_wrong_element_type_is_named(element: bytes, call: str, message: str) -> None:
    with pytest.raises(_der.DerError, match=message):
        getattr(_der.read_single(element, "element"), call)()
