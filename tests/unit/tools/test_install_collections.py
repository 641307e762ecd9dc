# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the offline collection installer (tools/install_collections.py); no download involved."""

from __future__ import annotations

import json
import os
import zipfile

import pytest

from tools import install_collections


@pytest.mark.parametrize(("fqcn", "parts"), [("community.crypto", ("community", "crypto")), ("a.b", ("a", "b"))])
def test_split_fqcn(fqcn, parts):
    assert install_collections.split_fqcn(fqcn) == parts


@pytest.mark.parametrize("bad", ["crypto", "community.", ".crypto", "a.b.c", ""])
def test_split_fqcn_rejects(bad):
    with pytest.raises(ValueError, match="not a collection name"):
        install_collections.split_fqcn(bad)


@pytest.fixture
def bundle(tmp_path):
    """A wheel-shaped zip holding two collections and unrelated files."""
    path = tmp_path / "ansible-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for namespace, name, version in [("community", "crypto", "3.0.5"), ("community", "general", "9.0.0")]:
            manifest = {"collection_info": {"namespace": namespace, "name": name, "version": version}}
            wheel.writestr(f"ansible_collections/{namespace}/{name}/MANIFEST.json", json.dumps(manifest))
            wheel.writestr(f"ansible_collections/{namespace}/{name}/plugins/modules/x.py", "")
        wheel.writestr("ansible-1.0.0.dist-info/METADATA", "")
    return path


def test_extract_only_the_named_collection(bundle, tmp_path):
    dest = tmp_path / "collections"
    stale = dest / "ansible_collections" / "community" / "crypto" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an older bundle")

    with zipfile.ZipFile(bundle) as wheel:
        version = install_collections.extract_collection(wheel, "community.crypto", dest)

    assert version == "3.0.5"
    assert (dest / "ansible_collections/community/crypto/plugins/modules/x.py").is_file()
    assert not stale.exists()
    assert not (dest / "ansible_collections/community/general").exists()
    assert not (dest / "ansible-1.0.0.dist-info").exists()


def test_extract_unknown_collection_fails(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as wheel, pytest.raises(RuntimeError, match="ansible.windows is not in the bundle"):
        install_collections.extract_collection(wheel, "ansible.windows", tmp_path)


def test_link_self_is_relative_and_idempotent(tmp_path):
    repository = tmp_path / "repo"
    repository.mkdir()
    dest = repository / ".ansible" / "collections"

    link = install_collections.link_self("exchange.pki", dest, repository)
    again = install_collections.link_self("exchange.pki", dest, repository)

    assert link == again == dest / "ansible_collections" / "exchange" / "pki"
    assert os.readlink(link) == os.path.join("..", "..", "..", "..")
    assert link.resolve() == repository.resolve()


def test_link_self_replaces_a_directory(tmp_path):
    dest = tmp_path / "collections"
    (dest / "ansible_collections" / "exchange" / "pki" / "old").mkdir(parents=True)

    link = install_collections.link_self("exchange.pki", dest, tmp_path)

    assert link.is_symlink() and link.resolve() == tmp_path.resolve()
