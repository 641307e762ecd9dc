#!/usr/bin/env bash
# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Install the named Debian packages when they are missing (the Makefile's DEBIAN_PACKAGES says why each is
# needed). Needs root; otherwise it says what is missing and succeeds: the tests that need a package skip.
#
# Usage: tools/debian_packages.sh PACKAGE...
set -euo pipefail

missing=()
for package in "$@"; do
    if ! dpkg-query --show --showformat='${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi
if ((EUID != 0)); then
    echo "system-packages: not root, skipping apt-get install of: ${missing[*]}"
    exit 0
fi
echo "system-packages: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
