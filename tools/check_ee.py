# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check the build context of the exchange.pki execution environment, without a container engine.

`ansible-builder create` writes the build context of ee/execution-environment.yml (a Containerfile and _build/);
this script then checks what `ansible-builder build` would do with it, as far as that is possible offline:

1. The Containerfile's galaxy stage installs _build/requirements.yml, and that file installs the collection
   itself from a tarball in the context (_build/collections/<tarball>), byte for byte the tarball being checked.
2. The galaxy stage is replayed into a scratch collections path: the tarball from the context, and the collections
   the requirements and the collection's own dependencies (MANIFEST.json) name, taken from --collections (the
   bundle `make collections` installs; Galaxy is unreachable here) with their versions checked against the ranges.
3. The builder stage's introspection is replayed with the script ansible-builder put into the context
   (_build/scripts/introspect.py, the same arguments as the Containerfile): the Python and system requirements it
   computes for the image hold every line of the collection's requirements.txt and bindep.txt (read from the
   tarball) and of the definition's own requirements.txt and bindep.txt.
4. The image installs ansible-core (the range of meta/runtime.yml) and ansible-runner (AWX runs jobs with it),
   and its tag carries the collection's version.

Usage: python tools/check_ee.py [--definition ee/execution-environment.yml] [--collections DIR] dist/<tarball>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMENT = re.compile(r"\s*#.*$")


def lines_of(text: str) -> list[str]:
    """Requirement lines without comments and blank lines."""
    return [line for line in (COMMENT.sub("", raw).strip() for raw in text.splitlines()) if line]


def member(tarball: pathlib.Path, name: str) -> str:
    with tarfile.open(tarball) as archive:
        extracted = archive.extractfile(name)
        if extracted is None:
            raise KeyError(name)
        return extracted.read().decode("utf-8")


def _tool(name: str) -> str:
    beside = pathlib.Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def _satisfies(version: str, requirement: str) -> bool:
    if requirement in ("", "*"):
        return True
    try:
        return Version(version) in SpecifierSet(requirement.replace(" ", ""))
    except InvalidSpecifier:
        return version == requirement


def _installed_version(collections: pathlib.Path, fqcn: str) -> str | None:
    manifest = collections / "ansible_collections" / fqcn.replace(".", "/") / "MANIFEST.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]


def build_context(definition: pathlib.Path, context: pathlib.Path) -> pathlib.Path:
    subprocess.run([_tool("ansible-builder"), "create", "--file", str(definition), "--context", str(context),
                    "--output-filename", "Containerfile"], check=True, capture_output=True, text=True)
    return context / "Containerfile"


def check(definition: pathlib.Path, tarball: pathlib.Path, collections: pathlib.Path) -> tuple[list[str], list[str]]:
    """Return (problems, what was verified)."""
    problems: list[str] = []
    done: list[str] = []
    manifest = json.loads(member(tarball, "MANIFEST.json"))["collection_info"]
    fqcn = f"{manifest['namespace']}.{manifest['name']}"
    collection_pip = lines_of(member(tarball, "requirements.txt"))
    collection_bindep = lines_of(member(tarball, "bindep.txt"))
    ee_meta = yaml.safe_load(member(tarball, "meta/execution-environment.yml"))
    if (ee_meta.get("dependencies") or {}) != {"python": "requirements.txt", "system": "bindep.txt"}:
        problems.append(f"{tarball.name}: meta/execution-environment.yml does not name requirements.txt and "
                        "bindep.txt (ansible-builder would not add the collection's dependencies to the image)")
    spec = yaml.safe_load(definition.read_text(encoding="utf-8"))
    dependencies = spec.get("dependencies") or {}

    with tempfile.TemporaryDirectory(prefix="check-ee-") as scratch:
        work = pathlib.Path(scratch)
        containerfile = build_context(definition, work / "context").read_text(encoding="utf-8")
        build = work / "context" / "_build"
        done.append(f"ansible-builder create wrote the build context of {definition}")

        # 1. The galaxy stage installs the collection itself, from the tarball in the context.
        if "COPY _build /build" not in containerfile or not re.search(
                r"ansible-galaxy collection install .*-r requirements\.yml", containerfile):
            problems.append("the Containerfile's galaxy stage does not install _build/requirements.yml")
        requirements = yaml.safe_load((build / "requirements.yml").read_text(encoding="utf-8")) or {}
        entries = [e if isinstance(e, dict) else {"name": e} for e in requirements.get("collections") or []]
        files = [e for e in entries if e.get("type") == "file"]
        ours = [e for e in files if pathlib.PurePosixPath(str(e["name"])).name == tarball.name]
        if not ours:
            problems.append(f"_build/requirements.yml does not install {tarball.name} (type: file)")
        else:
            in_context = build / str(ours[0]["name"])
            if not in_context.is_file():
                problems.append(f"the build context has no {ours[0]['name']} (additional_build_files)")
            elif hashlib.sha256(in_context.read_bytes()).digest() != hashlib.sha256(tarball.read_bytes()).digest():
                problems.append(f"_build/{ours[0]['name']} is not {tarball} (a stale tarball in dist/?)")
            else:
                done.append(f"the galaxy stage installs {fqcn} {manifest['version']} from _build/{ours[0]['name']}, "
                            f"identical to {tarball}")

        # 2. Replay the galaxy stage offline.
        installed = work / "collections"
        for entry in files:
            source = build / str(entry["name"])
            if source.is_file():  # --force: an exchange.pki in ANSIBLE_COLLECTIONS_PATH must not count
                subprocess.run([_tool("ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "--force",
                                "-p", str(installed), str(source)], check=True, capture_output=True, text=True,
                               env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(installed)})
        if ours and _installed_version(installed, fqcn) != manifest["version"]:
            problems.append(f"installing _build/{ours[0]['name']} did not install {fqcn} {manifest['version']}")
        wanted = {str(e["name"]): str(e.get("version", "*")) for e in entries if e.get("type") != "file"}
        wanted.update({name: str(rng) for name, rng in (manifest.get("dependencies") or {}).items()})
        for name, version_range in sorted(wanted.items()):
            version = _installed_version(collections, name)
            if version is None:
                problems.append(f"{name} ({version_range}) is not in {collections} to replay the galaxy stage")
                continue
            if not _satisfies(version, version_range):
                problems.append(f"{name} {version} in {collections} is outside {version_range}")
                continue
            target = installed / "ansible_collections" / name.replace(".", "/")
            shutil.copytree(collections / "ansible_collections" / name.replace(".", "/"), target,
                            dirs_exist_ok=True)
            done.append(f"{name} {version} satisfies {version_range}")

        # 3. Replay the builder stage's introspection with the context's own script.
        if "introspect --user-pip=requirements.txt --user-bindep=bindep.txt" not in containerfile:
            problems.append("the Containerfile's builder stage does not introspect with the definition's "
                            "requirements.txt and bindep.txt")
        pip_out, bindep_out = work / "out" / "requirements.txt", work / "out" / "bindep.txt"
        args = [sys.executable, str(build / "scripts" / "introspect.py"), "introspect", str(installed),
                f"--write-pip={pip_out}", f"--write-bindep={bindep_out}"]
        user_pip, user_bindep = build / "requirements.txt", build / "bindep.txt"
        if user_pip.exists():
            args.append(f"--user-pip={user_pip}")
        if user_bindep.exists():
            args.append(f"--user-bindep={user_bindep}")
        subprocess.run(args, check=True, capture_output=True, text=True)
        image_pip = set(lines_of(pip_out.read_text(encoding="utf-8"))) if pip_out.exists() else set()
        image_bindep = set(lines_of(bindep_out.read_text(encoding="utf-8"))) if bindep_out.exists() else set()
        ee_pip = lines_of(user_pip.read_text(encoding="utf-8")) if user_pip.exists() else []
        ee_bindep = lines_of(user_bindep.read_text(encoding="utf-8")) if user_bindep.exists() else []
        for source, listed, image in ((f"{fqcn} requirements.txt", collection_pip, image_pip),
                                      (f"{fqcn} bindep.txt", collection_bindep, image_bindep),
                                      (f"{definition.parent.name}/{dependencies.get('python')}", ee_pip, image_pip),
                                      (f"{definition.parent.name}/{dependencies.get('system')}", ee_bindep,
                                       image_bindep)):
            missing = [line for line in listed if line not in image]
            if missing:
                problems.append(f"the image's requirements lack {', '.join(missing)} of {source}")
            elif listed:
                done.append(f"the image's requirements hold all {len(listed)} lines of {source}")

        # 4. ansible-core, ansible-runner, the tag.
        refs = re.search(r'ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile)
        refs_text = refs.group(1) if refs else ""
        runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
        core = f"ansible-core{str(runtime.get('requires_ansible', '')).replace(' ', '')}"
        if core not in refs_text.split():
            problems.append(f"the image does not install {core} (meta/runtime.yml requires_ansible): {refs_text!r}")
        if not any(ref.startswith("ansible-runner") for ref in refs_text.split()):
            problems.append("the image does not install ansible-runner (AWX / Automation Controller runs jobs with it)")
        if not problems:
            done.append(f"the image installs {refs_text}")
        tags = (spec.get("options") or {}).get("tags") or []
        if tags and not all(str(tag).endswith(f":{manifest['version']}") for tag in tags):
            problems.append(f"the image tags {tags} do not carry the collection's version {manifest['version']}")
    return problems, done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--definition", type=pathlib.Path, default=REPO_ROOT / "ee" / "execution-environment.yml")
    parser.add_argument("--collections", type=pathlib.Path, default=REPO_ROOT / ".ansible" / "collections",
                        help="where the dependency collections are installed (make collections)")
    parser.add_argument("tarball", type=pathlib.Path)
    args = parser.parse_args(argv)
    try:
        problems, done = check(args.definition, args.tarball, args.collections)
    except subprocess.CalledProcessError as error:
        print(f"check_ee: {' '.join(map(str, error.cmd))} failed:\n{error.stdout}{error.stderr}", file=sys.stderr)
        return 1
    for line in problems:
        print(f"check_ee: {line}", file=sys.stderr)
    if problems:
        return 1
    for line in done:
        print(f"ee: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
