# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Domain errors of exchange.pki and the error record of a remote operation.

Everything raised inside the collection's controller code derives from ExchangePkiError; action plugins
translate these at the edge (AnsibleActionFail, ``unreachable``). Messages never carry secrets: they are
built from operation names, thumbprints and the remote error text only.
"""

from __future__ import annotations

import dataclasses
import re


class ExchangePkiError(Exception):
    """Base class of every error raised by exchange.pki's controller code."""


class BatchDefinitionError(ExchangePkiError, ValueError):
    """A batch was built wrongly: unknown operation or parameter, wrong value type, duplicate id."""


class RemoteProtocolError(ExchangePkiError):
    """The remote executor answered something that does not follow docs/remote-protocol.md."""


class HostUnreachable(ExchangePkiError):
    """The connection to the Windows host failed; the task is reported ``unreachable``."""


class RemoteModuleError(ExchangePkiError):
    """The remote executor failed as a whole (an argument error: nothing in the batch ran)."""


@dataclasses.dataclass(frozen=True)
class RemoteError:
    """The error record of one failed operation, as the executor reports it."""

    message: str
    category: str | None = None
    fully_qualified_error_id: str | None = None
    reason: str | None = None
    target: str | None = None


class RemoteOperationError(ExchangePkiError):
    """One operation of a batch did not produce a value (failed or skipped)."""

    def __init__(self, op: str, message: str, error: RemoteError | None = None) -> None:
        super().__init__(message)
        self.op = op
        self.error = error


class OperationSkipped(RemoteOperationError):
    """The operation did not run: an earlier changing operation failed, or check mode refused it."""

    def __init__(self, op: str, *, check_mode: bool) -> None:
        reason = "check mode" if check_mode else "an earlier changing operation failed"
        super().__init__(op, f"{op} was skipped ({reason})")
        self.check_mode = check_mode


class OperationFailed(RemoteOperationError):
    """An operation failed on the host for a reason the controller has no special handling for."""

    def __init__(self, op: str, error: RemoteError) -> None:
        fqid = f" [{error.fully_qualified_error_id}]" if error.fully_qualified_error_id else ""
        super().__init__(op, f"{op} failed: {error.message}{fqid}", error)
        self.fully_qualified_error_id = error.fully_qualified_error_id


DOUBLE_HOP_REMEDIES = (
    "run the task with become (become_method: runas) so the session uses a fresh logon",
    "use CredSSP for the WinRM connection (ansible_winrm_transport: credssp)",
    "allow Kerberos delegation for the connection's account (ansible_winrm_kerberos_delegation: true)",
    "or give an explicit credential with exchange_username and exchange_password",
)


class ExchangeAccessDenied(RemoteOperationError):
    """The Exchange management session was refused: almost always the WinRM double hop."""

    def __init__(self, op: str, error: RemoteError) -> None:
        remedies = "; ".join(DOUBLE_HOP_REMEDIES)
        super().__init__(
            op,
            f"{op}: access to the Exchange management endpoint was denied ({error.message}). "
            "A WinRM session cannot authenticate onward to http://<server>/PowerShell (double hop). "
            f"Remedies: {remedies}.",
            error,
        )


class ExchangeToolsMissing(RemoteOperationError):
    """The Exchange management endpoint or its cmdlets are not available on or from this host."""

    def __init__(self, op: str, error: RemoteError) -> None:
        super().__init__(
            op,
            f"{op}: the Exchange management endpoint could not be used ({error.message}). "
            "Check that the host is an Exchange server (or has the management tools), that the "
            "PowerShell virtual directory answers, or set exchange_uri.",
            error,
        )


_NOT_FOUND = re.compile(
    r"(?:special Rpc error occurs on server (?P<server>[^:\s]+):\s*)?"
    r"The certificate with thumbprint (?P<thumbprint>[0-9A-Fa-f]+) was not found",
)


class CertificateNotFound(RemoteOperationError):
    """Exchange reports that a certificate with the given thumbprint is not on the server."""

    def __init__(self, op: str, error: RemoteError, thumbprint: str, server: str | None) -> None:
        where = f" on {server}" if server else ""
        super().__init__(op, f"{op}: the certificate {thumbprint} was not found{where}", error)
        self.thumbprint = thumbprint
        self.server = server

    @classmethod
    def from_error(cls, op: str, error: RemoteError) -> CertificateNotFound | None:
        """Return the error when the message is Exchange's "certificate ... was not found" text."""
        match = _NOT_FOUND.search(error.message)
        if match is None:
            return None
        return cls(op, error, match.group("thumbprint").upper(), match.group("server"))
