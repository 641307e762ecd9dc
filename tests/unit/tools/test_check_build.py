# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the collection tarball check (tools/check_build.py)."""

from __future__ import annotations

import io
import tarfile

import pytest

from tools import check_build

GOOD = ["MANIFEST.json", "FILES.json", "README.md", "meta", "meta/runtime.yml", "plugins/modules/x.py",
        "tests/unit/tools/test_x.py", "docs/output.md"]


def test_good_tarball_has_no_problem():
    assert check_build.problems(GOOD) == []


@pytest.mark.parametrize(
    "leaked",
    [".venv/bin/python", ".ansible/collections", "tests/output/checks/x.log", "dist/old.tar.gz", ".cache/x",
     ".lab/inventory.yml", "plugins/__pycache__/x.cpython-311.pyc", "tools/x.pyc", ".pytest_cache/v",
     ".mypy_cache/3.11/cache.db", ".some_future_cache"],
)
def test_local_state_is_reported(leaked):
    assert check_build.problems([*GOOD, leaked]) == [f"must not be shipped: {leaked}"]


def test_missing_metadata_is_reported():
    assert check_build.problems(["./MANIFEST.json", "./FILES.json"]) == [
        "missing: README.md", "missing: meta/runtime.yml"]


def test_main_reads_tarball(tmp_path, capsys):
    path = tmp_path / "exchange-pki-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tarball:
        for name in [*GOOD, ".venv/pyvenv.cfg"]:
            info = tarfile.TarInfo(name)
            tarball.addfile(info, io.BytesIO(b""))

    assert check_build.main([str(path)]) == 1
    assert f"{path}: must not be shipped: .venv/pyvenv.cfg" in capsys.readouterr().out
