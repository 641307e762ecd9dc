# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Control characters, in one place: which characters never belong in one line of text, and the two ways of
making text safe to show (flattened to one line, or with the control characters escaped visibly).

A one-line value (an option, a host name, a header, a record field, a message) is refused when
:func:`has_control`; a text shown to people is either :func:`one_line` (a message, an event, a cell) or
:func:`escape_controls` (where the exact value matters, such as an error naming a record).
"""

from __future__ import annotations

import re
from typing import Any

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""A control character: C0 (NUL, TAB, LF, CR, ESC...), DEL, C1 (NEL U+0085 among them) and the Unicode line and
paragraph separators U+2028 and U+2029. Each of them can break a line, a log, a mail header, a command sent over a
socket or a terminal, so none of them is part of a one-line value."""

CONTROL_OR_SURROGATE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
""":data:`CONTROL` and the surrogate code points U+D800 to U+DFFF: a Python string holds one only alone (from
``surrogateescape``, or a JSON ``\\ud800``), and UTF-8 cannot encode it, so a file or a message cannot carry it
either."""


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (:data:`CONTROL`)."""
    return CONTROL.search(text) is not None


def one_line(value: Any) -> str:
    """``value`` as text on one line: every control character a space, runs of white space one space, no white
    space at either end (an empty string when nothing else is left)."""
    return " ".join(CONTROL.sub(" ", str(value)).split())


def _escaped(match: re.Match[str]) -> str:
    return ascii(match.group())[1:-1]


def escape_controls(text: str) -> str:
    """``text`` with every control character and surrogate (:data:`CONTROL_OR_SURROGATE`) written as its Python
    escape (``\\n``, ``\\x00``, ``\\u2028``, ``\\ud800``); every other character, and the length of a text without
    them, stays as it is."""
    return CONTROL_OR_SURROGATE.sub(_escaped, text)
