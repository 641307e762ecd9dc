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
