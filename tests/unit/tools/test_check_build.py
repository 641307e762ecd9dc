# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the collection tarball check (tools/check_build.py)."""

from __future__ import annotations

import io
import json
import pathlib
import tarfile

import pytest
import yaml

from tools import check_build

GOOD = ["MANIFEST.json", "FILES.json", "README.md", "meta", "meta/runtime.yml", "meta/execution-environment.yml",
        "requirements.txt", "bindep.txt", "plugins/modules/x.py", "tests/unit/tools/test_x.py", "docs/output.md"]
ROOT = pathlib.Path(__file__).resolve().parents[3]


def test_good_tarball_has_no_problem():
    assert check_build.problems(GOOD) == []


@pytest.mark.parametrize(
    "leaked",
    [".venv/bin/python", ".ansible/collections", "tests/output/checks/x.log", "dist/old.tar.gz", ".cache/x",
     ".lab/inventory.yml", "plugins/__pycache__/x.cpython-311.pyc", "tools/x.pyc", ".pytest_cache/v",
     ".mypy_cache/3.11/cache.db", ".some_future_cache", ".demo/report/exchange_pki_report.html",
     "demo-report/exchange_pki_report.md", ".benchmarks/x.json"],
)
def test_local_state_is_reported(leaked):
    assert check_build.problems([*GOOD, leaked]) == [f"must not be shipped: {leaked}"]


def test_missing_metadata_is_reported():
    assert check_build.problems(["./MANIFEST.json", "./FILES.json"]) == [
        "missing: README.md", "missing: meta/runtime.yml", "missing: meta/execution-environment.yml",
        "missing: requirements.txt", "missing: bindep.txt"]


@pytest.mark.parametrize("dependency_file", ["requirements.txt", "bindep.txt", "meta/execution-environment.yml"])
def test_dependency_files_must_ship(dependency_file):
    """ansible-builder reads them from the installed collection: build_ignore must not drop them."""
    assert check_build.problems([name for name in GOOD if name != dependency_file]) == [
        f"missing: {dependency_file}"]


@pytest.mark.parametrize("url", ["https://github.com/example/exchange.pki", "https://example.com/x",
                                 "http://docs.example.org", "ftp://github.com/contoso/pki", "not a url",
                                 "https://localhost/issues"])
def test_placeholder_urls_are_reported(url):
    assert check_build.url_problems({"repository": url, "issues": None}) == [
        f"placeholder or invalid URL in repository: {url}"]


def test_real_or_absent_urls_are_fine():
    assert check_build.url_problems({"repository": "https://github.com/contoso/exchange.pki",
                                     "documentation": None, "homepage": ""}) == []


def test_requirement_lines_drop_comments_and_blanks():
    text = "# header\n\ncryptography>=42.0  # why\n  pywinrm>=0.4.3\nkrb5-user [platform:dpkg]\n"
    assert check_build.requirement_lines(text) == ["cryptography>=42.0", "pywinrm>=0.4.3",
                                                   "krb5-user [platform:dpkg]"]


@pytest.mark.parametrize(("line", "expected"), [
    ("cryptography>=42.0", ("cryptography", ">=42.0")),
    ("pyspnego[kerberos] >= 0.10.0", ("pyspnego", ">=0.10.0")),
    ("Requests_CredSSP", ("requests-credssp", "")),
    ("idna>=3.7; python_version >= '3.8'", ("idna", ">=3.7")),
])
def test_split_requirement(line, expected):
    assert check_build.split_requirement(line) == expected


INTROSPECTED = {
    "python": ["cryptography>=42.0  # from collection exchange.pki", "other  # from collection a.b"],
    "system": ["krb5-user [platform:dpkg]  # from collection exchange.pki"],
}


def test_introspect_output_listing_everything_is_fine():
    assert check_build.introspect_problems(INTROSPECTED, ["cryptography>=42.0"], ["krb5-user [platform:dpkg]"]) == []


def test_introspect_output_missing_a_requirement_is_reported():
    assert check_build.introspect_problems({"python": [], "system": INTROSPECTED["system"]},
                                           ["cryptography>=42.0", "other"], ["krb5-user [platform:dpkg]"]) == [
        "ansible-builder introspect does not list the python requirement 'cryptography>=42.0'",
        "ansible-builder introspect does not list the python requirement 'other'"]


def _ee(tmp_path, *, python="requests-credssp>=2.0.0\n", core="ansible-core>=2.16.0",
        galaxy_name="collections/exchange-pki-0.1.0.tar.gz", dest="collections"):
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "exchange-pki-0.1.0.tar.gz").write_bytes(b"")
    (tmp_path / "ee").mkdir()
    (tmp_path / "ee" / "requirements.txt").write_text(python)
    (tmp_path / "ee" / "requirements.yml").write_text(yaml.safe_dump(
        {"collections": [{"name": galaxy_name, "type": "file"}, {"name": "ansible.windows"}]}))
    definition = tmp_path / "ee" / "execution-environment.yml"
    definition.write_text(yaml.safe_dump({
        "version": 3,
        "dependencies": {"ansible_core": {"package_pip": core}, "galaxy": "requirements.yml",
                         "python": "requirements.txt"},
        "additional_build_files": [{"src": "../dist/exchange-pki-*.tar.gz", "dest": dest}],
    }))
    return definition


def _ee_problems(definition):
    return check_build.ee_problems(definition, "exchange-pki-0.1.0.tar.gz",
                                   ["cryptography>=42.0", "pywinrm>=0.4.3"], ">=2.16.0")


def test_ee_definition_that_installs_the_tarball_and_agrees_is_fine(tmp_path):
    assert _ee_problems(_ee(tmp_path)) == []


def test_ee_pin_that_disagrees_with_the_collection_is_reported(tmp_path):
    definition = _ee(tmp_path, python="cryptography>=41.0.0\npywinrm\n")
    assert _ee_problems(definition) == [
        f"{definition}: cryptography>=41.0.0 disagrees with the collection's requirements.txt (cryptography>=42.0)"]


def test_ee_ansible_core_range_must_be_requires_ansible(tmp_path):
    definition = _ee(tmp_path, core="ansible-core>=2.15,<2.20")
    assert _ee_problems(definition) == [
        f"{definition}: ansible_core 'ansible-core>=2.15,<2.20' is not meta/runtime.yml's requires_ansible '>=2.16.0'"]


def test_ee_that_does_not_install_this_tarball_is_reported(tmp_path):
    definition = _ee(tmp_path, galaxy_name="collections/exchange-pki-0.0.9.tar.gz")
    assert _ee_problems(definition) == [
        f"{definition}: its galaxy requirements do not install exchange-pki-0.1.0.tar.gz"]


def test_ee_that_copies_the_tarball_elsewhere_is_reported(tmp_path):
    definition = _ee(tmp_path, dest="files")
    assert [problem.split(" (")[0] for problem in _ee_problems(definition)] == [
        f"{definition}: additional_build_files does not copy exchange-pki-0.1.0.tar.gz to where its galaxy "
        "requirements install it from"]


def test_repository_ee_python_requirements_agree_with_the_collection():
    python = check_build.requirement_lines((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    problems = check_build.ee_problems(ROOT / "ee" / "execution-environment.yml", "exchange-pki-0.1.0.tar.gz",
                                       python, ">=2.16.0")
    assert not [problem for problem in problems if "disagrees" in problem or "ansible_core" in problem]


def test_repository_collection_metadata_points_at_the_shipped_files():
    metadata = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text(encoding="utf-8"))
    assert metadata["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    for name in metadata["dependencies"].values():
        assert check_build.requirement_lines((ROOT / name).read_text(encoding="utf-8"))


def test_galaxy_yml_has_no_placeholder_url():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    assert check_build.url_problems(galaxy) == []


def _tarball(tmp_path, names, manifest=None):
    path = tmp_path / "exchange-pki-0.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tarball:
        for name in names:
            data = json.dumps(manifest).encode() if name == "MANIFEST.json" and manifest else b""
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tarball.addfile(info, io.BytesIO(data))
    return path


def test_main_reads_tarball(tmp_path, capsys):
    path = _tarball(tmp_path, [*GOOD, ".venv/pyvenv.cfg"])

    assert check_build.main([str(path)]) == 1
    assert f"{path}: must not be shipped: .venv/pyvenv.cfg" in capsys.readouterr().out


def test_main_reports_placeholder_urls_of_the_manifest(tmp_path, capsys):
    path = _tarball(tmp_path, GOOD, {"collection_info": {"issues": "https://github.com/example/exchange.pki/issues"}})

    assert check_build.main([str(path)]) == 1
    assert "placeholder or invalid URL in issues" in capsys.readouterr().out


def test_main_accepts_a_good_tarball(tmp_path, capsys):
    path = _tarball(tmp_path, GOOD, {"collection_info": {"repository": None}})

    assert check_build.main([str(path)]) == 0
    assert "no local state" in capsys.readouterr().out
