# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A minimal ASN.1 BER/DER reader: just enough to walk PKCS#12 and X.509 envelopes.

``cryptography`` parses certificates and PFX files but exposes neither the PKCS#12 encryption
algorithms nor the raw structure needed to re-sign a certificate with a weak hash; this module fills
those two gaps. It reads low tag numbers, definite lengths and BER indefinite lengths (some tools write
PFX files that way) and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import PkiError

SEQUENCE = 0x30
OCTET_STRING = 0x04
CONSTRUCTED_OCTET_STRING = 0x24
OBJECT_IDENTIFIER = 0x06
INTEGER = 0x02
CONTEXT_0 = 0xA0
_CONSTRUCTED = 0x20
_END_OF_CONTENTS = b"\x00\x00"


class DerError(PkiError):
    """The bytes are not well-formed ASN.1."""


@dataclass(frozen=True)
class Tlv:
    """One tag-length-value element and where it sits in the buffer it was read from."""

    tag: int
    content: bytes
    start: int
    end: int

    def children(self) -> list[Tlv]:
        """The elements inside a constructed element (offsets relative to its content)."""
        if not self.tag & _CONSTRUCTED:
            raise DerError(f"ASN.1 element with tag 0x{self.tag:02x} is not constructed")
        return read_all(self.content)

    def octets(self) -> bytes:
        """The value of an OCTET STRING, joining the chunks of a BER constructed one."""
        if self.tag == OCTET_STRING:
            return self.content
        if self.tag == CONSTRUCTED_OCTET_STRING:
            return b"".join(chunk.octets() for chunk in self.children())
        raise DerError(f"expected an OCTET STRING, found tag 0x{self.tag:02x}")

    def oid(self) -> str:
        """The dotted form of an OBJECT IDENTIFIER."""
        if self.tag != OBJECT_IDENTIFIER or not self.content:
            raise DerError(f"expected an OBJECT IDENTIFIER, found tag 0x{self.tag:02x}")
        return _decode_oid(self.content)


def read_tlv(data: bytes, offset: int = 0) -> Tlv:
    """Read the element that starts at ``offset``."""
    tag = _byte(data, offset)
    if tag & 0x1F == 0x1F:
        raise DerError(f"ASN.1 high tag numbers are not supported (offset {offset})")
    first = _byte(data, offset + 1)
    header_end = offset + 2
    if first == 0x80:
        return _read_indefinite(data, tag, offset, header_end)
    if first & 0x80:
        count = first & 0x7F
        if count > 4:
            raise DerError(f"ASN.1 length of {count} bytes is too large (offset {offset})")
        length = int.from_bytes(_slice(data, header_end, count), "big")
        header_end += count
    else:
        length = first
    return Tlv(tag, _slice(data, header_end, length), offset, header_end + length)


def read_all(data: bytes) -> list[Tlv]:
    """Read consecutive elements until the end of ``data``."""
    elements = []
    offset = 0
    while offset < len(data):
        element = read_tlv(data, offset)
        elements.append(element)
        offset = element.end
    return elements


def read_single(data: bytes, what: str) -> Tlv:
    """Read one element that must fill ``data`` exactly (``what`` names it in errors)."""
    element = read_tlv(data)
    if element.end != len(data):
        raise DerError(f"{what} has {len(data) - element.end} unexpected trailing bytes")
    return element


def encode_tlv(tag: int, content: bytes) -> bytes:
    """DER-encode one element."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    size = (length.bit_length() + 7) // 8
    return bytes((tag, 0x80 | size)) + length.to_bytes(size, "big") + content


def encode_oid(dotted: str) -> bytes:
    """DER-encode an OBJECT IDENTIFIER from its dotted form."""
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return encode_tlv(OBJECT_IDENTIFIER, bytes(body))


def _read_indefinite(data: bytes, tag: int, offset: int, header_end: int) -> Tlv:
    if not tag & _CONSTRUCTED:
        raise DerError(f"indefinite length on a primitive ASN.1 element (offset {offset})")
    cursor = header_end
    while data[cursor : cursor + 2] != _END_OF_CONTENTS:
        cursor = read_tlv(data, cursor).end
    return Tlv(tag, data[header_end:cursor], offset, cursor + 2)


def _decode_oid(content: bytes) -> str:
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])


def _byte(data: bytes, offset: int) -> int:
    if offset >= len(data):
        raise DerError(f"truncated ASN.1 data (offset {offset})")
    return data[offset]


def _slice(data: bytes, offset: int, length: int) -> bytes:
    if offset + length > len(data):
        raise DerError(f"truncated ASN.1 data: {length} bytes needed at offset {offset}")
    return data[offset : offset + length]
