# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""Files the modules write on the controller: keys, CSRs, PFX files and certificates.

A file is written whole or not at all (a temporary file in the same directory, synced, then renamed over the
path, and the directory synced), with its mode set before any byte is written, so a private key is never
readable by others, not even for an instant, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import Any

#: The mode of files holding a private key or a PFX (DESIGN safety invariant 4).
PRIVATE_MODE = 0o600
#: The mode of files holding only public material (certificates, CSRs).
PUBLIC_MODE = 0o644
#: The longest path (PATH_MAX) and file name (NAME_MAX) Linux and the BSDs take, in bytes: a longer path would fail
#: only when the file is opened, after a module may have changed a server or a CA.
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255
# The temporary file is named ".<name>.<8 random characters>.tmp" when that fits in MAX_NAME_BYTES: a file name
# that is itself valid but too long for that gets a fixed prefix instead, so that it does not fail after a module
# changed a server or a CA.
_TEMPORARY_SUFFIX = ".tmp"
_TEMPORARY_ROOM = MAX_NAME_BYTES - len("..") - 8 - len(_TEMPORARY_SUFFIX)
_TEMPORARY_PREFIX = ".exchange-pki."


def write_atomically(path: str, data: bytes, mode: int = PRIVATE_MODE) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, created with ``mode``.

    Raises OSError (the caller names the option); the temporary file never outlives a failure.
    """
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    prefix = f".{name}." if len(os.fsencode(name)) <= _TEMPORARY_ROOM else _TEMPORARY_PREFIX
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=_TEMPORARY_SUFFIX)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _sync_directory(directory: str) -> None:
    """Make the rename durable; a filesystem that cannot sync a directory is left as it is."""
    try:
        directory_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory_fd)
    except OSError:
        pass
    finally:
        os.close(directory_fd)


def read_prefix(path: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``path``: a caller that gets more than ``limit`` knows the file is too big."""
    with open(path, "rb") as handle:
        return handle.read(limit + 1)


def unusable_path(value: Any) -> str | None:
    """Why ``value`` cannot name a file (the os functions would raise ValueError or UnicodeEncodeError), or None."""
    if not isinstance(value, str):
        return None
    if "\x00" in value:
        shown = repr(value if len(value) <= 80 else value[:80] + "...")
        return f"{shown} contains the control character U+0000 (NUL), which no file name can hold"
    try:
        encoded = os.fsencode(value)
    except UnicodeEncodeError:
        return "holds a lone surrogate, which no file name can hold"
    if len(encoded) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes, the longest path the controller's file functions take"
    if any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        return f"has a file or directory name longer than {MAX_NAME_BYTES} bytes, which no file system holds"
    return None


def output_file_problem(path: str, what: str) -> str | None:
    """Why a module could not write ``what`` (for example "the PFX file") to ``path`` on the controller, or None.

    Checked before the module changes anything, so that a path it cannot write fails the task while nothing has
    happened yet, instead of after a CA issued a certificate or a server exported a key. The message follows the
    option's name.
    """
    problem = unusable_path(path)
    if problem:
        return problem
    if any(char in path for char in "\r\n"):
        return "must not contain CR or LF characters"
    if path.endswith(os.sep) or os.path.isdir(path):
        return f"{path!r} is a directory: give the path of {what}"
    real = os.path.realpath(path)
    parent = os.path.dirname(real) or "."
    if not os.path.isdir(parent):
        return f"{path!r}: the directory {parent!r} does not exist on the controller"
    if os.path.lexists(real) and not stat.S_ISREG(os.stat(real).st_mode):
        return f"{path!r} exists and is not a regular file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{path!r}: the directory {parent!r} is not writable by the controller's user"
    return None
