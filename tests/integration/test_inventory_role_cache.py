# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory role's cache: one file per host whose name no host name can turn into another path.

The file name is built from ``inventory_hostname`` by ``roles/inventory/files/write_cache.py``. Its naming is
checked directly, then end to end: the lab's servers are given hostile inventory names (``../../x``, a name with
a slash, a unicode name) and the playbook must write every file inside the cache directory, readable and
distinct, and nothing anywhere else.
"""

from __future__ import annotations

import importlib.util
import json
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from .conftest import ANSIBLE_PLAYBOOK, REPO_ROOT, Lab, ansible_env

SCRIPT = REPO_ROOT / "roles" / "inventory" / "files" / "write_cache.py"
#: Lab server -> the hostile inventory name it gets.
HOSTILE = {"ex1": "../../x", "ex2": "site-a/ex2", "ex3": "exchange-ü.contoso.lab", "ex4": ".hidden"}


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("exchange_pki_write_cache", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_cache = _load_script()


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("ex1", "ex1"),
        ("ex1.contoso.lab", "ex1.contoso.lab"),
        ("EX_1-a", "EX_1-a"),
        ("../../x", "%2E.%2F..%2Fx"),
        ("..", "%2E."),
        (".", "%2E"),
        ("a/b", "a%2Fb"),
        ("a\\b", "a%5Cb"),
        ("a\x00b", "a%00b"),
        ("a\r\nb", "a%0D%0Ab"),
        ("100%", "100%25"),
        ("exchange-ü", "exchange-%C3%BC"),
        ("服务器", "%E6%9C%8D%E5%8A%A1%E5%99%A8"),
    ],
)
def test_cache_name_keeps_ordinary_names_and_encodes_the_rest(host: str, name: str) -> None:
    assert write_cache.cache_name(host) == name
    assert "/" not in name and "\\" not in name and "\x00" not in name and not name.startswith(".")


def test_cache_names_are_distinct_and_bounded() -> None:
    hosts = ["a/b", "a%2Fb", "a_b", "a.b", "../a", "%2E./a", "x" * 300, "x" * 299 + "y"]
    names = [write_cache.cache_name(host) for host in hosts]
    assert len(set(names)) == len(names)
    assert all(len(name.encode()) + len(".json") <= 255 for name in names)


@pytest.mark.parametrize("host", ["", None, 3])
def test_cache_name_refuses_what_is_not_a_host_name(host: object) -> None:
    with pytest.raises(ValueError, match="host name must be a non-empty string"):
        write_cache.cache_name(host)


def test_script_writes_inside_the_directory_only(tmp_path: Path) -> None:
    cache = tmp_path / "deep" / "cache"
    request = {"dir": str(cache), "hosts": {"../../x": {"collected_at": "a", "v": 1}, "ok": {"v": 2}}}
    proc = subprocess.run([sys.executable, str(SCRIPT)], input=json.dumps(request), capture_output=True, text=True,
                          check=True)
    assert json.loads(proc.stdout) == {"changed": ["%2E.%2F..%2Fx.json", "ok.json"]}
    assert sorted(path.name for path in cache.iterdir()) == ["%2E.%2F..%2Fx.json", "ok.json"]
    assert sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*") if path.is_file()) == [
        "deep/cache/%2E.%2F..%2Fx.json", "deep/cache/ok.json"]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    # unchanged but for collected_at: the file keeps its content and nothing is reported changed
    request["hosts"]["../../x"]["collected_at"] = "b"
    again = subprocess.run([sys.executable, str(SCRIPT)], input=json.dumps(request), capture_output=True, text=True,
                           check=True)
    assert json.loads(again.stdout) == {"changed": []}
    assert json.loads((cache / "%2E.%2F..%2Fx.json").read_text(encoding="utf-8"))["collected_at"] == "a"


def test_script_refuses_a_relative_directory(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], input=json.dumps({"dir": "facts", "hosts": {}}),
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert proc.returncode != 0 and "absolute path" in proc.stderr
    assert not (tmp_path / "facts").exists()


def hostile_inventory(lab: Lab, path: Path) -> Path:
    """The lab's inventory with its servers renamed as in HOSTILE (their connection settings unchanged)."""
    inventory = yaml.safe_load(lab.inventory.read_text(encoding="utf-8"))
    servers = inventory["all"]["children"]["exchange"]["hosts"]
    inventory["all"]["children"] = {"exchange": {"hosts": {HOSTILE.get(name, name): settings
                                                           for name, settings in servers.items()}}}
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True), encoding="utf-8")
    return path


def test_hostile_host_names_stay_inside_the_cache_directory(dag_lab: Lab, tmp_path: Path) -> None:
    inventory = hostile_inventory(dag_lab, tmp_path / "hostile.yml")
    cwd = tmp_path / "run"
    (cwd / "a" / "b").mkdir(parents=True)
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "exchange.pki.inventory", "-i", str(inventory),
         "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", json.dumps({"inventory_cache_dir": "facts"})],
        cwd=cwd / "a" / "b", env=ansible_env(), capture_output=True, text=True, check=False, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cache = cwd / "a" / "b" / "facts"
    written = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in cache.iterdir()}
    assert sorted(written) == sorted(f"{write_cache.cache_name(host)}.json" for host in HOSTILE.values())
    assert "exchange-%C3%BC.contoso.lab.json" in written and "site-a%2Fex2.json" in written
    assert written["%2E.%2F..%2Fx.json"]["server"]["name"] == "EX1"
    assert written["%2Ehidden.json"]["server"]["name"] == "EX4"
    outside = [path for path in cwd.rglob("*") if path.is_file() and cache not in path.parents
               and "exchange_pki_report" not in path.parts]
    assert outside == []
    assert not (cwd / "a" / "x.json").exists() and not (cwd / "x.json").exists()
    report = json.loads((cwd / "a" / "b" / "exchange_pki_report" / "exchange_pki_report.json").read_text("utf-8"))
    assert sorted(host["host"] for host in report["hosts"]) == sorted(HOSTILE.values())
