# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""With fact caching on (AWX's "use fact storage": the jsonfile cache plugin), the inventory's facts reach the cache.

One ``ansible-playbook exchange.pki.inventory`` run against the dag lab with ``ANSIBLE_CACHE_PLUGIN=jsonfile`` and
ex2 refusing connections: every inventoried host's ``exchange_pki`` (the same fact the role's own cache file holds)
and ``exchange_pki_failure: null`` are in its fact cache entry, and ex2's entry holds its ``exchange_pki_failure``
(reason ``unreachable``) and no ``exchange_pki``. The cache is read back with ansible-core's own jsonfile plugin,
the way a later job (or AWX) reads it.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ANSIBLE_PLAYBOOK, Lab, ansible_env


@functools.cache
def _cache_loader() -> Any:
    from ansible.plugins.loader import cache_loader, init_plugin_loader  # noqa: PLC0415 - only this test needs it

    init_plugin_loader([])
    return cache_loader


def read_fact_cache(directory: Path) -> dict[str, dict[str, Any]]:
    """Every host's cached facts, read with ansible-core's jsonfile cache plugin, as plain JSON values."""
    cache = _cache_loader().get("ansible.builtin.jsonfile", _uri=str(directory), _prefix="")
    return {host: json.loads(json.dumps(cache.get(host))) for host in cache.keys()}


@pytest.fixture(scope="module")
def cached_run(dag_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path, Path]:
    tmp = tmp_path_factory.mktemp("fact-cache")
    cwd, fact_cache = tmp / "run", tmp / "fact_cache"
    cwd.mkdir()
    env = dict(ansible_env(), ANSIBLE_CACHE_PLUGIN="jsonfile", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(fact_cache))
    dag_lab.control("fault", "--server", "ex2", "--unreachable")
    try:
        proc = subprocess.run(
            [ANSIBLE_PLAYBOOK, "exchange.pki.inventory", "-i", str(dag_lab.inventory),
             "-e", f"ansible_python_interpreter={sys.executable}", "-e", json.dumps({"inventory_cache_dir": "facts"})],
            cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600,
        )
    finally:
        dag_lab.control("fault", "--server", "ex2", "--reachable")
    return proc.returncode, proc.stdout + proc.stderr, cwd, fact_cache


def test_inventoried_hosts_have_exchange_pki_in_the_fact_cache(cached_run) -> None:
    code, output, cwd, fact_cache = cached_run
    assert code == 2, output
    cached = read_fact_cache(fact_cache)
    assert sorted(cached) == ["ex1", "ex2", "ex3", "ex4"], output[-4000:]
    for host in ("ex1", "ex3", "ex4"):
        facts = cached[host]
        assert facts["exchange_pki_failure"] is None, host
        role_cache = json.loads((cwd / "facts" / f"{host}.json").read_text(encoding="utf-8"))
        assert facts["exchange_pki"] == role_cache, host
        assert facts["exchange_pki"]["server"]["name"] == host.upper()


def test_a_host_that_was_not_read_has_its_failure_in_the_fact_cache(cached_run) -> None:
    code, output, _cwd, fact_cache = cached_run
    facts = read_fact_cache(fact_cache)["ex2"]
    assert "exchange_pki" not in facts
    assert facts["exchange_pki_failure"]["reason"] == "unreachable", facts
    assert facts["exchange_pki_failure"]["message"]
    assert "ex2 was not inventoried (unreachable): " in output
    # ex2 failed alone: the other hosts ended the play without a failure
    for host in ("ex1", "ex3", "ex4"):
        assert re.search(rf"^{host}\s+: ok=\d+ .*\bfailed=0\b", output, re.MULTILINE), (host, output[-3000:])
    assert re.search(r"^ex2\s+: .*\bfailed=1\b", output, re.MULTILINE), output[-3000:]
