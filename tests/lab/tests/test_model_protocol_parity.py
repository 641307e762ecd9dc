# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's executor emulation accepts exactly what the real executor accepts.

The controller's table (plugins/plugin_utils/_remote.py) is tested against exchange_batch.ps1 in the
unit tests; this ties the lab to the same table, so the three allow-lists cannot drift apart.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils import _remote
from tests.lab.model import hostops
from tests.lab.model.batch import OPERATIONS, REQUIRED

PS1 = pathlib.Path(__file__).resolve().parents[3] / "plugins" / "modules" / "exchange_batch.ps1"

# Wire types of the controller's table -> the lab's kinds (switches are booleans on the wire).
_KIND_OF = {"string": "str", "server": "server", "list": "list", "int": "int", "bool": "bool", "switch": "bool",
            "bytes": "bytes", "secret": "secret", "datetime": "datetime"}


def test_the_same_operations_are_allowed():
    assert set(OPERATIONS) == set(_remote.OPERATIONS)


@pytest.mark.parametrize("name", sorted(_remote.OPERATIONS))
def test_each_operation_has_the_same_parameters_kind_and_effect(name):
    spec, lab = _remote.OPERATIONS[name], OPERATIONS[name]
    assert {param: _KIND_OF[kind.value] for param, kind in spec.parameters.items()} == lab.params
    assert spec.changes is lab.changes
    assert (spec.kind == "exchange") is lab.exchange
    assert set(spec.required) == set(REQUIRED.get(name, ()))


def test_acme_challenge_refuses_what_the_executor_refuses():
    """The lab's token and content rules are the executor's regexes (-cnotmatch '^...$' is a full match)."""
    function = PS1.read_text(encoding="utf-8").split("Function Set-AcmeChallenge {", 1)[1].split("\nFunction ", 1)[0]
    token, content = re.findall(r"-cnotmatch '\^(.+?)\$'", function)
    assert hostops._ACME_TOKEN.pattern == token
    assert hostops._ACME_CONTENT.pattern == content
