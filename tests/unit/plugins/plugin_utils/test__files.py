# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of _files: whole files with their mode from the first byte, nothing left behind on failure."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _files


def test_a_private_file_is_0600_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        _files.write_atomically(str(tmp_path / "key.pem"), b"secret")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "key.pem").st_mode) == 0o600
    assert (tmp_path / "key.pem").read_bytes() == b"secret"


def test_replacing_a_file_keeps_no_temporary_file(tmp_path):
    path = tmp_path / "mail.pem"
    path.write_bytes(b"old")
    _files.write_atomically(str(path), b"new", _files.PUBLIC_MODE)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mail.pem"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "mail.pfx"
    path.write_bytes(b"old")

    def refuse(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        _files.write_atomically(str(path), b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mail.pfx"]


def test_read_prefix_reads_one_byte_past_the_limit(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 10)
    assert len(_files.read_prefix(str(path), 4)) == 5
    assert _files.read_prefix(str(path), 100) == b"x" * 10


@pytest.mark.parametrize("length", [1, 200, 241, 242, 250, 255])
def test_any_valid_file_name_is_written(tmp_path, length):
    """The temporary file's name is longer than the file's: a name that fits NAME_MAX must still be writable,
    also with multi-byte characters (the limit is in bytes)."""
    for name in ("n" * length, ("é" * length)[: length // 2] + "n" * (length % 2)):
        _files.write_atomically(str(tmp_path / name), b"data", _files.PUBLIC_MODE)
        assert (tmp_path / name).read_bytes() == b"data"
    assert all(not path.name.startswith(".") for path in tmp_path.iterdir())


@pytest.mark.parametrize(("path", "problem"), [
    ("{tmp}/a\x00b", "U+0000 (NUL)"),
    ("{tmp}/a\ud800b", "lone surrogate"),
    ("{tmp}/" + "n" * 256, "longer than 255 bytes"),
    ("{tmp}/" + "é" * 128, "longer than 255 bytes"),
    ("{tmp}/a\nb", "must not contain CR or LF"),
    ("{tmp}/a\rb", "must not contain CR or LF"),
    ("{tmp}", "is a directory: give the path of the file"),
    ("{tmp}/", "is a directory: give the path of the file"),
    ("{tmp}/missing/a.pem", "the directory '{tmp}/missing' does not exist on the controller"),
    ("/dev/null", "exists and is not a regular file"),
])
def test_a_path_no_file_can_be_written_to_is_named(tmp_path, path, problem):
    path, problem = path.replace("{tmp}", str(tmp_path)), problem.replace("{tmp}", str(tmp_path))
    assert problem in _files.output_file_problem(path, "the file")
    assert list(tmp_path.iterdir()) == []


def test_a_writable_path_has_no_problem(tmp_path):
    assert _files.output_file_problem(str(tmp_path / ("n" * 255)), "the file") is None
    (tmp_path / "old.pem").write_bytes(b"old")
    assert _files.output_file_problem(str(tmp_path / "old.pem"), "the file") is None


def test_a_directory_the_controller_cannot_write_is_named(tmp_path, monkeypatch):
    """root may write anywhere (CI runs as root), so the permission check is shown with os.access answering as
    it does for an ordinary user in a directory of someone else's."""
    monkeypatch.setattr(_files.os, "access", lambda path, mode: False)
    assert "is not writable by the controller's user" in _files.output_file_problem(str(tmp_path / "a"), "the file")
