# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exceptions raised by the lab's PKI helpers.

Bad *data* (a malformed CSR, PFX or certificate file, an unknown CA) raises :class:`PkiError`;
a bad *argument* from the lab's own code (an unsupported key size in a spec) raises ``ValueError``.
Messages never contain passwords or key material.
"""

from __future__ import annotations


class PkiError(Exception):
    """A PKI object could not be parsed, verified or found."""


class BadPfxPassword(PkiError):
    """The PFX password is wrong (or the PFX cannot be decrypted with it)."""

    #: The message Windows gives for a wrong PFX password, and for an AES PFX on Server 2016
    #: (exchange-facts.md, "Import-ExchangeCertificate").
    WINDOWS_MESSAGE = "The specified network password is not correct."

    def __init__(self, message: str = WINDOWS_MESSAGE) -> None:
        super().__init__(message)


class UnknownAuthority(PkiError, LookupError):
    """No CA of that name exists in the lab's registry."""
