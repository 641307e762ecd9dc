# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Domain errors of exchange.pki and the error record of a remote operation.

Everything raised inside the collection's controller code derives from ExchangePkiError; action plugins
translate these at the edge (AnsibleActionFail, ``unreachable``). Messages never carry secrets: they are
built from operation names, thumbprints and the remote error text only.

Every error carries a ``failure_reason``, the one word a role can classify a failed or unreachable task by
(the ``failure_reason`` of the task result, one of :data:`FAILURE_REASONS`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import ClassVar

#: The values of ``failure_reason`` (the ``not_collected`` reasons of the report's input, interfaces.md).
FAILURE_REASONS = (
    "unreachable", "authentication_refused", "access_denied", "connection_dropped", "exchange_unavailable", "failed",
)


class ExchangePkiError(Exception):
    """Base class of every error raised by exchange.pki's controller code."""

    #: Why the task failed, for roles and reports (one of FAILURE_REASONS); subclasses narrow it.
    failure_reason: ClassVar[str] = "failed"


class BatchDefinitionError(ExchangePkiError, ValueError):
    """A batch was built wrongly: unknown operation or parameter, wrong value type, duplicate id."""


class RemoteProtocolError(ExchangePkiError):
    """The remote executor answered something that does not follow docs/remote-protocol.md."""


class HostUnreachable(ExchangePkiError):
    """The connection to the Windows host failed; the task is reported ``unreachable``.

    ``reason`` tells how: ``unreachable`` (no connection), ``authentication_refused`` (the connection's
    credentials were rejected) or ``connection_dropped`` (the connection broke during the task).
    """

    failure_reason: str  # per instance (shadows the class default)

    def __init__(self, message: str, reason: str = "unreachable") -> None:
        if reason not in ("unreachable", "authentication_refused", "connection_dropped"):
            raise ValueError(f"not a reason for an unreachable host: {reason!r}")
        super().__init__(message)
        self.failure_reason = reason


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
    """The Exchange management session was refused to the connection's own identity: the WinRM double hop.

    The subclasses name the other ways Exchange refuses an account: :class:`ExchangeAuthenticationRefused`
    (the explicit credential is wrong) and :class:`ExchangePermissionDenied` (no RBAC role for the cmdlet).
    """

    failure_reason = "access_denied"

    def __init__(self, op: str, error: RemoteError, message: str | None = None) -> None:
        if message is None:
            remedies = "; ".join(DOUBLE_HOP_REMEDIES)
            message = (
                f"{op}: access to the Exchange management endpoint was denied ({error.message}). "
                "A WinRM session cannot authenticate onward to http://<server>/PowerShell (double hop). "
                f"Remedies: {remedies}. If the session already has a fresh logon, the account itself is refused: "
                "it needs an Exchange RBAC role and remote PowerShell enabled (Set-User -RemotePowerShellEnabled)."
            )
        super().__init__(op, message, error)


class ExchangeAuthenticationRefused(ExchangeAccessDenied):
    """The Exchange endpoint rejected the explicit credential (exchange_username / exchange_password)."""

    failure_reason = "authentication_refused"

    def __init__(self, op: str, error: RemoteError) -> None:
        super().__init__(
            op,
            error,
            f"{op}: the Exchange management endpoint refused the credential given with exchange_username and "
            f"exchange_password ({error.message}). Check the user name (DOMAIN\\user or user@domain) and the "
            "password, and that the account is enabled, not locked out and allowed remote PowerShell.",
        )


#: The RBAC role groups that grant what exchange.pki runs (Exchange's built-in role groups).
READ_ROLE_GROUPS = "View-Only Organization Management or Organization Management"
CHANGE_ROLE_GROUPS = (
    "Organization Management (or Server Management, which holds the Exchange Server Certificates role, "
    "for certificate changes)"
)


class ExchangePermissionDenied(ExchangeAccessDenied):
    """The Exchange session opened but does not offer the cmdlet: the account has no RBAC role granting it."""

    def __init__(self, op: str, error: RemoteError, *, changes: bool = False) -> None:
        needed = CHANGE_ROLE_GROUPS if changes else READ_ROLE_GROUPS
        super().__init__(
            op,
            error,
            f"{op}: access denied: the Exchange session opened, but the account has no Exchange RBAC role that "
            f"grants {op} ({error.message}). Add the account to {needed}.",
        )


class ExchangeToolsMissing(RemoteOperationError):
    """The Exchange management endpoint or its cmdlets are not available on or from this host."""

    failure_reason = "exchange_unavailable"

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
