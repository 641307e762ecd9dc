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
import tempfile

#: The mode of files holding a private key or a PFX (DESIGN safety invariant 4).
PRIVATE_MODE = 0o600
#: The mode of files holding only public material (certificates, CSRs).
PUBLIC_MODE = 0o644


def write_atomically(path: str, data: bytes, mode: int = PRIVATE_MODE) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, created with ``mode``.

    Raises OSError (the caller names the option); the temporary file never outlives a failure.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
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
