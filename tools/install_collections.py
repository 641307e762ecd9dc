# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install the collections exchange.pki is developed against into a local collections path, offline-friendly.

Ansible Galaxy is not reachable from our machines, but PyPI is: the `ansible` community package bundles the
collections we need. This downloads that one wheel (no dependencies; pip's cache makes later runs fast),
extracts only the named collections into DEST/ansible_collections/, and links DEST/ansible_collections/<ns>/<name>
of this collection to the repository root so that ansible-lint, ansible-doc and pytest find it.

Usage: python tools/install_collections.py --bundle ansible==12.3.0 --dest .ansible/collections
                                           --self exchange.pki community.crypto ansible.windows
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence


def split_fqcn(fqcn: str) -> tuple[str, str]:
    """Split 'namespace.name' into its two parts."""
    namespace, sep, name = fqcn.partition(".")
    if not (namespace and sep and name) or "." in name:
        raise ValueError(f"not a collection name (namespace.name): {fqcn!r}")
    return namespace, name


def download_bundle(requirement: str, directory: pathlib.Path) -> pathlib.Path:
    """Download the wheel of `requirement` (without its dependencies) into `directory`; return its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(directory), requirement],
        check=True,
    )
    wheels = sorted(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel for {requirement}, found {[w.name for w in wheels]}")
    return wheels[0]


def extract_collection(wheel: zipfile.ZipFile, fqcn: str, root: pathlib.Path) -> str:
    """Extract one collection from the bundle wheel into root/ansible_collections; return its version."""
    namespace, name = split_fqcn(fqcn)
    prefix = f"ansible_collections/{namespace}/{name}/"
    members = [member for member in wheel.namelist() if member.startswith(prefix)]
    if not members:
        raise RuntimeError(f"{fqcn} is not in the bundle")
    target = root / "ansible_collections" / namespace / name
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    wheel.extractall(root, members)
    manifest = json.loads((target / "MANIFEST.json").read_text(encoding="utf-8"))
    return str(manifest["collection_info"]["version"])


def link_self(fqcn: str, root: pathlib.Path, repository: pathlib.Path) -> pathlib.Path:
    """Make root/ansible_collections/<ns>/<name> a relative symlink to the repository root."""
    namespace, name = split_fqcn(fqcn)
    link = root / "ansible_collections" / namespace / name
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(repository.resolve(), link.parent.resolve())
    if link.is_symlink() and os.readlink(link) == target:
        return link
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)
    return link


def main(argv: Sequence[str] | None = None) -> int:
    """Install the bundle's collections and the self link; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="pip requirement of the bundle, e.g. ansible==12.3.0")
    parser.add_argument("--dest", required=True, type=pathlib.Path, help="collections path to fill")
    parser.add_argument("--self", dest="self_fqcn", required=True, help="FQCN of this collection")
    parser.add_argument("--repository", type=pathlib.Path, default=pathlib.Path("."), help="collection root")
    parser.add_argument("collections", nargs="+", help="FQCNs to extract from the bundle")
    args = parser.parse_args(argv)

    args.dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        with zipfile.ZipFile(download_bundle(args.bundle, pathlib.Path(tmp))) as wheel:
            for fqcn in args.collections:
                version = extract_collection(wheel, fqcn, args.dest)
                print(f"collections: {fqcn} {version} from {args.bundle}")
    link = link_self(args.self_fqcn, args.dest, args.repository)
    print(f"collections: {args.self_fqcn} -> {link} (symlink to the repository)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
