# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small in-memory Windows file system per simulated host, for Ansible's mkdtemp/put_file/fetch_file.

Paths are case-insensitive and use backslashes, like NTFS through PowerShell. Only what Ansible's
connection needs is modelled: directories, whole-file writes, ranged reads and recursive removal.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

_ENV_VAR = re.compile(r"%([^%]+)%")


class FileSystemError(OSError):
    """A file operation failed; the message is the one PowerShell would print."""


def _key(path: str) -> str:
    return normalise(path).casefold()


def normalise(path: str) -> str:
    """Backslashes, no trailing separator (except for a drive root), no ``.`` segments."""
    path = path.replace("/", "\\")
    drive, _sep, rest = path.partition(":\\") if ":\\" in path else ("", "", path)
    parts = [part for part in rest.split("\\") if part not in ("", ".")]
    prefix = f"{drive}:\\" if drive else ""
    return prefix + "\\".join(parts)


def parent(path: str) -> str:
    path = normalise(path)
    head = path.rpartition("\\")[0]
    return head + "\\" if head.endswith(":") else head


@dataclass
class FileSystem:
    """The files of one simulated host (thread-safe)."""

    files: dict[str, bytes] = field(default_factory=dict)
    directories: dict[str, str] = field(default_factory=lambda: {_key(d): normalise(d) for d in _ROOTS})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def profile(user: str) -> str:
        """The user profile directory Windows would create for ``DOMAIN\\user``."""
        return f"C:\\Users\\{user.rpartition(chr(92))[2] or 'Administrator'}"

    def expand(self, path: str, user: str) -> str:
        """Expand ``%VAR%`` like [Environment]::ExpandEnvironmentVariables for the user's profile."""
        profile = self.profile(user)
        variables = {
            "temp": f"{profile}\\AppData\\Local\\Temp",
            "tmp": f"{profile}\\AppData\\Local\\Temp",
            "userprofile": profile,
            "localappdata": f"{profile}\\AppData\\Local",
            "appdata": f"{profile}\\AppData\\Roaming",
            "systemroot": "C:\\Windows",
            "windir": "C:\\Windows",
            "programdata": "C:\\ProgramData",
        }
        return _ENV_VAR.sub(lambda m: variables.get(m[1].casefold(), m[0]), path)

    def ensure_profile(self, user: str) -> None:
        """Create the user's profile and temp directories, as the first logon on Windows does."""
        temp = normalise(self.expand("%TEMP%", user))
        if _key(temp) not in self.directories:
            self.make_directory(temp)

    def make_directory(self, path: str) -> str:
        """Create a directory and its parents (New-Item -ItemType Directory); return its full name."""
        path = normalise(path)
        with self._lock:
            if _key(path) in self.files or _key(path) in self.directories:
                raise FileSystemError(f"An item with the specified name {path} already exists.")
            current = path
            while current and _key(current) not in self.directories:
                self.directories[_key(current)] = current
                current = parent(current)
        return path

    def write(self, path: str, data: bytes) -> None:
        """[File]::Create + Write: the parent directory must exist."""
        path = normalise(path)
        with self._lock:
            if _key(parent(path)) not in self.directories:
                raise FileSystemError(f"Could not find a part of the path '{path}'.")
            if _key(path) in self.directories:
                raise FileSystemError(f"Access to the path '{path}' is denied.")
            self.files[_key(path)] = data

    def read(self, path: str, offset: int, size: int) -> bytes | None:
        """A chunk of a file, or None for a directory; FileSystemError when the path does not exist."""
        with self._lock:
            if _key(path) in self.directories:
                return None
            try:
                data = self.files[_key(path)]
            except KeyError:
                raise FileSystemError(f"{path} does not exist") from None
        return data[offset : offset + size]

    def remove(self, path: str, *, recurse: bool) -> None:
        """Remove-Item -Force [-Recurse]."""
        key = _key(path)
        with self._lock:
            if key in self.files:
                del self.files[key]
                return
            if key not in self.directories:
                raise FileSystemError(f"Cannot find path '{path}' because it does not exist.")
            below = [k for k in (*self.files, *self.directories) if k.startswith(key + "\\")]
            if below and not recurse:
                raise FileSystemError(f"The item at {path} has children and the Recurse parameter was not specified.")
            for child in below:
                self.files.pop(child, None)
                self.directories.pop(child, None)
            del self.directories[key]


_ROOTS = ("C:\\", "C:\\Windows", "C:\\Windows\\Temp", "C:\\Users", "C:\\ProgramData")
