# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the ansible-test pip bootstrap stand-in (tools/ansible_test_pip_bootstrap.py); no download."""

from __future__ import annotations

import re

from tools import ansible_test_pip_bootstrap as bootstrap


def test_pip_version_comes_from_ansible_test():
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", bootstrap.expected_pip_version("3.11"))


def test_bootstrap_path_is_where_ansible_test_looks():
    assert bootstrap.bootstrap_path("24.2") == bootstrap.CACHE / "get_pip_24_2.py"


def test_template_is_python_that_drops_get_pip_options():
    script = bootstrap.BOOTSTRAP_TEMPLATE.format(marker=bootstrap.MARKER, wheel="pip-24.2-py3-none-any.whl")

    compile(script, "get_pip_24_2.py", "exec")
    assert bootstrap.MARKER in script
    assert '"--no-setuptools", "--no-wheel"' in script
    assert '"--no-index", "--find-links"' in script
