# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""_text: the one owner of control characters (which they are, one-line text, visible escapes)."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils._text import (
    CONTROL,
    CONTROL_OR_SURROGATE,
    escape_controls,
    has_control,
    one_line,
)

# Unicode's own classification is the reference: Cc is C0, DEL and C1; Zl and Zp are U+2028 and U+2029.
ALL_CHARS = [chr(code) for code in range(sys.maxunicode + 1)]
EVERY_CHAR = "".join(ALL_CHARS)


def _category(*categories: str) -> set[str]:
    return {char for char in ALL_CHARS if unicodedata.category(char) in categories}


def test_control_is_every_unicode_control_and_separator_and_nothing_else() -> None:
    assert set(CONTROL.findall(EVERY_CHAR)) == _category("Cc", "Zl", "Zp")
    assert {char for char in ALL_CHARS if has_control(char)} == _category("Cc", "Zl", "Zp")


def test_control_or_surrogate_adds_exactly_the_surrogates() -> None:
    assert set(CONTROL_OR_SURROGATE.findall(EVERY_CHAR)) == _category("Cc", "Zl", "Zp", "Cs")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", False),
        ("mail.contoso.com", False),
        ("two words", False),
        ("Zürich – 東京 🙂", False),
        ("no\u00a0break and zero\u200bwidth", False),  # invisible, but not a line break or a control
        ("tab\there", True),
        ("line\nbreak", True),
        ("carriage\rreturn", True),
        ("nul\x00", True),
        ("\x1b[31mred", True),
        ("del\x7f", True),
        ("next\u0085line", True),
        ("csi\x9b", True),
        ("line\u2028separator", True),
        ("paragraph\u2029separator", True),
        ("lone \ud800 surrogate", False),  # only CONTROL_OR_SURROGATE holds them
    ],
)
def test_has_control(text: str, expected: bool) -> None:
    assert has_control(text) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("one line", "one line"),
        ("  padded  ", "padded"),
        ("first\r\nsecond", "first second"),
        ("a\x00b", "a b"),
        ("a \t\n\x0b\x0c  b", "a b"),
        ("a\u2028b\u2029c\u0085d", "a b c d"),
        ("\x1b[31mred\x1b[0m", "[31mred [0m"),
        ("Zürich\u00a0– 東京", "Zürich – 東京"),  # str.split() takes U+00A0 for white space
        ("\r\n\x00 \u2028", ""),
        ("", ""),
        (42, "42"),
        (1.5, "1.5"),
        (None, "None"),
    ],
)
def test_one_line(value: object, expected: str) -> None:
    assert one_line(value) == expected


@pytest.mark.parametrize("char", [char for char in ALL_CHARS[:0x3000] if CONTROL.fullmatch(char)])
def test_one_line_never_leaves_a_control_character(char: str) -> None:
    flat = one_line(f" a{char}{char}b{char} ")
    assert flat == "a b"
    assert not has_control(flat)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("Zürich 東京 🙂", "Zürich 東京 🙂"),
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("tab\t", "tab\\t"),
        ("\x00", "\\x00"),
        ("\x1b[31m", "\\x1b[31m"),
        ("\x7f\x85\x9f", "\\x7f\\x85\\x9f"),
        ("\u2028\u2029", "\\u2028\\u2029"),
        ("lone \ud800 and \udfff", "lone \\ud800 and \\udfff"),
        ("back\\slash and 'quotes\"", "back\\slash and 'quotes\""),  # only control characters change
    ],
)
def test_escape_controls(text: str, expected: str) -> None:
    assert escape_controls(text) == expected


def test_escape_controls_leaves_text_printable_on_one_line_and_encodable() -> None:
    hostile = "".join(char for char in ALL_CHARS[:0x3000] if CONTROL_OR_SURROGATE.fullmatch(char)) + "\ud800\udfff"
    escaped = escape_controls(f"start{hostile}end")
    assert escaped.startswith("start") and escaped.endswith("end")
    assert not CONTROL_OR_SURROGATE.search(escaped)
    assert escaped.isprintable() and escaped.isascii()
    escaped.encode("utf-8")  # a lone surrogate would raise UnicodeEncodeError
