# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a built collection tarball: what a user installing it meets.

- The metadata is there, with no placeholder URL, and no local state leaked into it (galaxy.yml's
  build_ignore keeps virtualenvs, caches, test and demo output out; a forgotten entry can ship hundreds of
  megabytes).
- The collection's dependencies ship where ansible-builder looks for them (requirements.txt, bindep.txt,
  meta/execution-environment.yml).
- With --introspect: installed from the tarball into a temporary collections path, `ansible-builder
  introspect` lists every line of those files for exchange.pki.
- With --ee DEFINITION: the execution environment definition installs this tarball, adds no Python package of
  requirements.txt with another version range, and its ansible-core range is meta/runtime.yml's.

Usage: python tools/check_build.py [--introspect] [--ee ee/execution-environment.yml] dist/exchange-pki-<v>.tar.gz
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence

import yaml

PYTHON_REQUIREMENTS = "requirements.txt"
SYSTEM_REQUIREMENTS = "bindep.txt"
EE_METADATA = "meta/execution-environment.yml"
REQUIRED = ("MANIFEST.json", "FILES.json", "README.md", "meta/runtime.yml", EE_METADATA, PYTHON_REQUIREMENTS,
            SYSTEM_REQUIREMENTS)
# Hidden top-level entries are local state (.venv, .ansible, .cache, .lab, .demo, ...), never content; so are
# build, test and demo output.
FORBIDDEN = re.compile(
    r"^\.[^/]+|^(?:dist|tests/output|demo-report)(?:/|$)|(?:^|/)__pycache__(?:/|$)|\.py[co]$")
URL_FIELDS = ("repository", "documentation", "homepage", "issues")
PLACEHOLDER_HOSTS = re.compile(r"(?:^|\.)(?:example\.(?:com|org|net)|localhost|invalid|test)$")
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def problems(names: Iterable[str]) -> list[str]:
    """Return what is wrong with a tarball holding these member names (empty when it is fine)."""
    members = {name.removeprefix("./") for name in names}
    found = [f"missing: {name}" for name in REQUIRED if name not in members]
    found += [f"must not be shipped: {name}" for name in sorted(members) if FORBIDDEN.search(name)]
    return found


def url_problems(collection_info: Mapping[str, object]) -> list[str]:
    """Return the URL fields of MANIFEST.json's collection_info that are placeholders or not http(s)."""
    found = []
    for field in URL_FIELDS:
        value = collection_info.get(field)
        if not value:
            continue
        url = urllib.parse.urlsplit(str(value))
        host = (url.hostname or "").lower()
        path = url.path.lower()
        if url.scheme not in ("http", "https") or not host or PLACEHOLDER_HOSTS.search(host) \
                or (host == "github.com" and path.split("/")[1:2] == ["example"]):
            found.append(f"placeholder or invalid URL in {field}: {value}")
    return found


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a pip or bindep file: comments and blank lines dropped, whitespace trimmed."""
    lines = (re.sub(r"(?:^|\s)#.*$", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def split_requirement(line: str) -> tuple[str, str]:
    """Return (normalised package name, version specifier without spaces) of one pip requirement line."""
    match = NAME.match(line)
    if not match:
        raise ValueError(f"not a requirement: {line!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower(), re.sub(r"\s+", "", match.group(3).split(";")[0])


def introspect_problems(introspected: Mapping[str, object], python: Sequence[str], system: Sequence[str],
                        collection: str = "exchange.pki") -> list[str]:
    """Compare `ansible-builder introspect` output with the collection's requirement lines."""
    found = []
    suffix = f"# from collection {collection}"
    for kind, expected in (("python", python), ("system", system)):
        # ansible-builder 3 lists "<requirement>  # from collection <namespace.name>" lines.
        listed = introspected.get(kind) or []
        listed_lines = {str(line).removesuffix(suffix).strip() for line in listed if str(line).endswith(suffix)}
        found += [f"ansible-builder introspect does not list the {kind} requirement {line!r}"
                  for line in expected if line not in listed_lines]
    return found


def ee_problems(definition_path: pathlib.Path, tarball_name: str, python: Sequence[str],
                requires_ansible: str) -> list[str]:
    """Compare the execution environment definition with the collection it is meant to install."""
    definition = yaml.safe_load(definition_path.read_text(encoding="utf-8")) or {}
    base = definition_path.parent
    dependencies = definition.get("dependencies") or {}
    found = []

    galaxy = yaml.safe_load((base / dependencies.get("galaxy", "")).read_text(encoding="utf-8")) \
        if dependencies.get("galaxy") else {}
    # The galaxy requirements install <dest>/<tarball> from the build context, where additional_build_files
    # copies the tarball (its src is a glob relative to the definition).
    installed = {pathlib.PurePosixPath(str(entry.get("name")))
                 for entry in (galaxy or {}).get("collections") or []
                 if isinstance(entry, dict) and entry.get("type") == "file"}
    copied = {pathlib.PurePosixPath(str(entry.get("dest", ""))) / match.name
              for entry in definition.get("additional_build_files") or [] if entry.get("src")
              for match in base.glob(str(entry["src"]))}
    if not any(path.name == tarball_name for path in installed):
        found.append(f"{definition_path}: its galaxy requirements do not install {tarball_name}")
    elif not installed & copied:
        found.append(f"{definition_path}: additional_build_files does not copy {tarball_name} to where its "
                     f"galaxy requirements install it from ({', '.join(sorted(map(str, installed)))})")

    collection_pins = dict(split_requirement(line) for line in python)
    if dependencies.get("python"):
        for line in requirement_lines((base / dependencies["python"]).read_text(encoding="utf-8")):
            name, specifier = split_requirement(line)
            if name in collection_pins and specifier and specifier != collection_pins[name]:
                found.append(f"{definition_path}: {name}{specifier} disagrees with the collection's "
                             f"{PYTHON_REQUIREMENTS} ({name}{collection_pins[name]})")

    core = str((dependencies.get("ansible_core") or {}).get("package_pip", ""))
    core_specifier = split_requirement(core)[1] if core else ""
    if core_specifier != requires_ansible.replace(" ", ""):
        found.append(f"{definition_path}: ansible_core {core!r} is not meta/runtime.yml's requires_ansible "
                     f"{requires_ansible!r}")
    return found


def _tool(name: str) -> str:
    """The path of a console script of the running Python's environment, else from PATH."""
    beside = pathlib.Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def introspect(tarball: str) -> dict:
    """Install the tarball into a temporary collections path and return `ansible-builder introspect`'s data."""
    with tempfile.TemporaryDirectory(prefix="check-build-") as tmp:
        env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": tmp, "ANSIBLE_LOCAL_TEMP": tmp}
        subprocess.run([_tool("ansible-galaxy"), "collection", "install", "--no-deps", "--offline", "--force",
                        "-p", tmp, tarball], check=True, env=env, stdout=subprocess.DEVNULL)
        output = subprocess.run([_tool("ansible-builder"), "introspect", tmp], check=True, env=env,
                                capture_output=True, text=True).stdout
    return yaml.safe_load(output[output.index("---"):]) or {}


def _read_member(tarball: tarfile.TarFile, name: str) -> str:
    for candidate in (name, f"./{name}"):
        try:
            member = tarball.extractfile(candidate)
        except KeyError:
            continue
        if member is not None:
            return member.read().decode("utf-8")
    return ""


def check(path: str, *, run_introspect: bool = False, ee: pathlib.Path | None = None) -> list[str]:
    """Return every problem of one tarball."""
    with tarfile.open(path) as tarball:
        names = tarball.getnames()
        found = problems(names)
        manifest = json.loads(_read_member(tarball, "MANIFEST.json") or "{}")
        python = requirement_lines(_read_member(tarball, PYTHON_REQUIREMENTS))
        system = requirement_lines(_read_member(tarball, SYSTEM_REQUIREMENTS))
        runtime = yaml.safe_load(_read_member(tarball, "meta/runtime.yml") or "{}") or {}
    found += url_problems(manifest.get("collection_info") or {})
    if run_introspect and not found:
        found += introspect_problems(introspect(path), python, system)
    if ee is not None:
        found += ee_problems(ee, pathlib.Path(path).name, python, str(runtime.get("requires_ansible", "")))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Check each tarball given; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--introspect", action="store_true",
                        help="install each tarball and check what `ansible-builder introspect` lists")
    parser.add_argument("--ee", type=pathlib.Path, help="execution environment definition to compare")
    parser.add_argument("tarballs", nargs="+", metavar="TARBALL")
    args = parser.parse_args(argv)
    status = 0
    for path in args.tarballs:
        found = check(path, run_introspect=args.introspect, ee=args.ee)
        for problem in found:
            print(f"{path}: {problem}")
        if found:
            status = 1
        else:
            extra = "; ansible-builder introspect lists its requirements" if args.introspect else ""
            extra += f"; {args.ee} installs it and agrees with it" if args.ee else ""
            print(f"{path}: metadata and dependency files present, no local state{extra}")
    return status


if __name__ == "__main__":
    sys.exit(main())
