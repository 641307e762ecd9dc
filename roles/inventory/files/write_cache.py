# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the exchange_pki facts of many hosts into a cache directory on the controller, in one process.

Run by the exchange.pki.inventory role (tasks/cache.yml) with the controller's Python. Standard input is
``{"dir": "<absolute directory>", "hosts": {"<inventory_hostname>": {<exchange_pki>}, ...}}``. Each host's facts
go to ``<dir>/<file name>.json`` where the file name is :func:`cache_name` of the host name: letters, digits,
``-``, ``_`` and ``.`` are kept, every other character (and a leading dot) is percent-encoded as UTF-8, so a host
named ``../../x`` writes ``%2E.%2F..%2Fx.json`` inside the directory and never outside it.

The directory is created (and kept) mode 0700, each file mode 0600, replaced atomically. A file whose facts are
unchanged but for ``collected_at`` is left as it is (with the ``collected_at`` of when those facts were first
seen), so re-running over an unchanged fleet changes nothing. Prints ``{"changed": [<file names>]}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile

_KEPT = re.compile(r"[A-Za-z0-9._-]")
#: Longest file name kept as is (bytes, without ".json"); most file systems allow 255.
MAX_NAME = 200


def cache_name(host):
    """The file name (without ``.json``) for ``host``: readable for ordinary names, always one path component."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"a host name must be a non-empty string, got {host!r}")
    encoded = "".join(
        char if _KEPT.fullmatch(char) and not (index == 0 and char == ".")
        else "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        for index, char in enumerate(host)
    )
    if len(encoded) > MAX_NAME:  # still unique: the digest of the whole name
        encoded = f"{encoded[:MAX_NAME - 65]}~{hashlib.sha256(host.encode('utf-8', 'surrogatepass')).hexdigest()}"
    return encoded


def _without_collected_at(facts):
    return {key: value for key, value in facts.items() if key != "collected_at"} if isinstance(facts, dict) else facts


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _render(facts):
    return json.dumps(facts, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def write_host(directory, host, facts):
    """Write one host's file; return its name when it changed, else None."""
    name = cache_name(host) + ".json"
    path = os.path.join(directory, name)
    if os.path.dirname(os.path.abspath(path)) != os.path.abspath(directory):  # cannot happen; never write outside
        raise ValueError(f"the cache file name of host {host!r} leaves the cache directory")
    previous = _read(path)
    if isinstance(previous, dict) and _without_collected_at(previous) == _without_collected_at(facts):
        if os.stat(path).st_mode & 0o777 == 0o600:
            return None
        os.chmod(path, 0o600)
        return name
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(_render(facts))
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return name


def main():
    request = json.load(sys.stdin)
    directory, hosts = request["dir"], request["hosts"]
    if not isinstance(directory, str) or not os.path.isabs(directory):
        raise SystemExit(f"the cache directory must be an absolute path, got {directory!r}")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    changed = []
    if os.stat(directory).st_mode & 0o777 != 0o700:
        os.chmod(directory, 0o700)
        changed.append(".")
    for host in sorted(hosts):
        name = write_host(directory, host, hosts[host])
        if name:
            changed.append(name)
    json.dump({"changed": changed}, sys.stdout)


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.stderr.write(f"the facts could not be cached: {type(error).__name__}: {error}\n")
        sys.exit(1)
