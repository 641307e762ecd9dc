# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the execution environment build-context check (tools/check_ee.py) on this repository's ee/."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

from tools import check_ee

ROOT = pathlib.Path(__file__).resolve().parents[3]
COLLECTIONS = ROOT / ".ansible" / "collections"

pytestmark = pytest.mark.skipif(
    not (COLLECTIONS / "ansible_collections" / "community" / "crypto").exists()
    or not pathlib.Path(sys.executable).with_name("ansible-builder").exists(),
    reason="needs ansible-builder and the dependency collections (make setup)")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([str(pathlib.Path(sys.executable).with_name("ansible-galaxy")), "collection", "build",
                    "--output-path", str(dist), str(ROOT)], check=True, capture_output=True)
    (built,) = dist.glob("*.tar.gz")
    return built


def copy_ee(tmp_path: pathlib.Path, tarball: pathlib.Path) -> pathlib.Path:
    """ee/ beside a dist/ holding the tarball, as in the repository (additional_build_files: ../dist/...)."""
    shutil.copytree(ROOT / "ee", tmp_path / "ee")
    (tmp_path / "dist").mkdir()
    shutil.copy(tarball, tmp_path / "dist")
    return tmp_path / "ee" / "execution-environment.yml"


def edit(path: pathlib.Path, change) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def test_the_repository_ee_builds_a_context_with_the_collection_and_every_dependency(tmp_path, tarball):
    problems, done = check_ee.check(copy_ee(tmp_path, tarball), tarball, COLLECTIONS)

    assert problems == []
    text = "\n".join(done)
    assert f"installs exchange.pki {tarball.name.split('-')[-1][:-7]} from _build/collections/{tarball.name}" in text
    assert "community.crypto" in text  # the collection's own dependency, resolved
    assert "lines of exchange.pki requirements.txt" in text and "lines of exchange.pki bindep.txt" in text
    assert "ansible-runner" in text


def test_a_definition_that_does_not_install_the_collection_is_reported(tmp_path, tarball):
    definition = copy_ee(tmp_path, tarball)
    edit(definition.parent / "requirements.yml",
         lambda data: data.update(collections=[c for c in data["collections"] if c.get("type") != "file"]))

    problems = check_ee.check(definition, tarball, COLLECTIONS)[0]

    assert problems[0] == f"_build/requirements.yml does not install {tarball.name} (type: file)"
    # and so the image would lack the collection's dependencies
    assert problems[1].startswith("the image's requirements lack cryptography>=42.0")
    assert problems[2].startswith("the image's requirements lack krb5-workstation")


def test_a_stale_tarball_in_the_context_is_reported(tmp_path, tarball):
    definition = copy_ee(tmp_path, tarball)
    other = tmp_path / "other" / tarball.name
    other.parent.mkdir()
    other.write_bytes(tarball.read_bytes() + b"\0")

    problems = check_ee.check(definition, other, COLLECTIONS)[0]

    assert problems == [f"_build/collections/{tarball.name} is not {other} (a stale tarball in dist/?)"]


def test_an_image_without_ansible_runner_is_reported(tmp_path, tarball):
    definition = copy_ee(tmp_path, tarball)
    edit(definition, lambda data: data["dependencies"].pop("ansible_runner"))

    problems = check_ee.check(definition, tarball, COLLECTIONS)[0]

    assert problems == ["the image does not install ansible-runner (AWX / Automation Controller runs jobs with it)"]


def test_a_dependency_collection_outside_its_range_is_reported(tmp_path, tarball):
    definition = copy_ee(tmp_path, tarball)
    edit(definition.parent / "requirements.yml",
         lambda data: data["collections"].append({"name": "ansible.windows", "version": ">=99.0.0"}))
    edit(definition.parent / "requirements.yml",
         lambda data: data.update(collections=[c for c in data["collections"] if c.get("version") != ">=2.0.0"]))

    problems = check_ee.check(definition, tarball, COLLECTIONS)[0]

    assert len(problems) == 1 and problems[0].startswith("ansible.windows ") and "outside >=99.0.0" in problems[0]
