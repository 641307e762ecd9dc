# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provide the pip bootstrap script that `ansible-test sanity --venv` would download from an unreachable host.

ansible-test creates each sanity virtual environment without pip, then runs the cached file
~/.ansible/test/cache/get_pip_<X_Y>.py (a get-pip.py) through its quiet_pip wrapper, with the arguments
`--disable-pip-version-check pip==<X.Y> --no-setuptools --no-wheel`. Only when the file is missing does it
try to download it from ci-files.testing.ansible.com, which our machines cannot reach. This writes a small
stand-in next to the pip wheel (fetched from PyPI): it runs pip from the wheel to install pip from the wheel.

The pip version comes from the installed ansible-test, so an ansible-core upgrade cannot make this stale.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages

CACHE = pathlib.Path.home() / ".ansible" / "test" / "cache"

MARKER = "written by exchange.pki tools/ansible_test_pip_bootstrap.py"
BOOTSTRAP_TEMPLATE = '''\
"""get-pip.py stand-in {marker}; installs {wheel}."""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
WHEEL = HERE / "{wheel}"
GET_PIP_ONLY_OPTIONS = {{"--no-setuptools", "--no-wheel"}}

sys.path.insert(0, str(WHEEL))
from pip._internal.cli.main import main  # noqa: E402  (importable only once the wheel is on sys.path)

pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
sys.exit(main(["install", "--no-index", "--find-links", str(HERE), *pip_args]))
'''


def expected_pip_version(python_version: str) -> str:
    """Return the pip version ansible-test installs into its virtual environments for a Python version."""
    return get_venv_packages(types.SimpleNamespace(version=python_version))["pip"]


def bootstrap_path(pip_version: str) -> pathlib.Path:
    """Return where ansible-test looks for its cached pip bootstrap script."""
    return CACHE / f"get_pip_{pip_version.replace('.', '_')}.py"


def fetch_pip_wheel(pip_version: str) -> pathlib.Path:
    """Download the pip wheel of that version into the cache (a no-op when present); return its path."""
    wheel = CACHE / f"pip-{pip_version}-py3-none-any.whl"
    if not wheel.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", str(CACHE), f"pip=={pip_version}"],
            check=True,
        )
    return wheel


def main() -> int:
    """Write the bootstrap script and its wheel for the running Python version."""
    pip_version = expected_pip_version(f"{sys.version_info.major}.{sys.version_info.minor}")
    CACHE.mkdir(parents=True, exist_ok=True)
    wheel = fetch_pip_wheel(pip_version)
    script = bootstrap_path(pip_version)
    content = BOOTSTRAP_TEMPLATE.format(marker=MARKER, wheel=wheel.name)
    existing = script.read_text(encoding="utf-8") if script.is_file() else None
    if existing is not None and MARKER not in existing:
        print(f"ansible-test pip bootstrap: keeping the real get-pip script {script}")
    elif existing != content:
        script.write_text(content, encoding="utf-8")
    print(f"ansible-test pip bootstrap: {script} (pip {pip_version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
