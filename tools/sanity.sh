#!/usr/bin/env bash
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Run `ansible-test sanity` on a copy of the collection.
#
# ansible-test needs the collection in a real directory .../ansible_collections/<namespace>/<name> (it resolves
# symlinks) with the dependency collections in the same tree (it ignores ANSIBLE_COLLECTIONS_PATH). So this
# copies the working tree, minus local state, to a temporary .../ansible_collections/exchange/pki with the
# installed dependency collections beside it, then runs the sanity tests in ansible-test managed virtual
# environments. The copy lives outside the repository: inside a git work tree ansible-test would list files
# with git and skip everything git ignores or does not track yet.
#
# Usage: tools/sanity.sh COLLECTIONS_PATH [ansible-test sanity options...]
set -euo pipefail

collections_path=$1
shift

readonly namespace=exchange name=pki python_version=3.11
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/exchange.pki-sanity.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
tree="$work_dir/ansible_collections"
copy="$tree/$namespace/$name"

mkdir -p "$copy"
tar -C "$repo_root" -cf - \
    --exclude=./.git --exclude=./.venv --exclude=./.ansible --exclude=./.cache --exclude=./.lab --exclude=./.demo \
    --exclude=./dist --exclude=./tests/output --exclude=.pytest_cache --exclude=.ruff_cache --exclude=.mypy_cache \
    --exclude=__pycache__ . | tar -C "$copy" -xf -

for dependency in "$collections_path"/ansible_collections/*/*; do
    relative=${dependency#"$collections_path/ansible_collections/"}
    [[ $relative == "$namespace/$name" ]] && continue
    mkdir -p "$tree/${relative%/*}"
    cp -R "$dependency" "$tree/$relative"
done

# ansible-test would download its pip bootstrap script from a host our machines cannot reach.
python "$repo_root/tools/ansible_test_pip_bootstrap.py"

# PowerShell modules: validate-modules runs pwsh to read a .ps1 module's argument spec and crashes when no
# pwsh is installed (none on our machines), so it runs separately with every .ps1 excluded; their .py
# documentation files are still validated. pslint skips itself without pwsh.
mapfile -t powershell_modules < <(cd "$copy" && find plugins -name '*.ps1' | sort)
exclude_powershell=()
for module in "${powershell_modules[@]}"; do
    exclude_powershell+=(--exclude "$module")
done

cd "$copy"
status=0
ansible-test sanity --venv --python "$python_version" --color no --skip-test validate-modules "$@" || status=1
ansible-test sanity --venv --python "$python_version" --color no --test validate-modules \
    "${exclude_powershell[@]}" "$@" || status=1
exit "$status"
