# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of _plan: steps, phases, the batch a plan becomes, and what it shows (never a secret)."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest

from ansible_collections.exchange.pki.plugins.plugin_utils._errors import BatchDefinitionError, ExchangePkiError
from ansible_collections.exchange.pki.plugins.plugin_utils._plan import (
    MASK,
    Plan,
    ResultOf,
    Secret,
    Step,
    describe_value,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import LOCAL_SERVER
from tests.unit.clock import NOW

PASSWORD = 'pfx-"pass"\\wörd'
PFX = b"\x30\x82\x01\x00 not really a pfx"


def import_step(step_id: str = "import") -> Step:
    return Step(step_id, "Import-ExchangeCertificate",
                {"Server": LOCAL_SERVER, "FileData": PFX, "Password": Secret(PASSWORD), "FriendlyName": "mail"},
                "the certificate is not on this server")


def test_a_plan_without_changing_steps_is_no_change():
    assert not Plan("nothing").changed
    reading = Plan("export", (Step("export", "Export-ExchangeCertificate", {"Thumbprint": "AB" * 20}, "export it"),))
    assert not reading.changed
    assert Plan("import", (import_step(),)).changed


def test_the_batch_carries_secrets_only_in_the_secrets_option():
    plan = Plan("import", (import_step(),))
    (phase,) = plan.phases()
    module_args = plan.batch(phase).module_args()
    (operation,) = module_args["operations"]
    assert operation["args"]["Password"] == {"$secret": "secret1"}
    assert module_args["secrets"] == {"secret1": PASSWORD}
    assert operation["args"]["Server"] == {"$local": "server"}
    assert operation["args"]["FileData"]["$bytes"]  # base64 on the wire
    assert PASSWORD not in json.dumps(module_args["operations"])


def test_what_the_plan_shows_never_holds_a_secret_or_the_bytes():
    plan = Plan("import", (import_step(),), before={"thumbprints": []},
                after={"thumbprints": ["AB" * 20], "password": Secret(PASSWORD)})
    shown = json.dumps([plan.describe(), plan.diff()], ensure_ascii=False)
    assert PASSWORD not in shown
    assert MASK in shown
    assert f"<{len(PFX)} bytes, SHA-256 {hashlib.sha256(PFX).hexdigest()}>" in shown
    assert plan.describe()[0]["reason"] == "the certificate is not on this server"
    assert plan.secrets() == (PASSWORD,)
    assert PASSWORD not in repr(plan)


def test_describe_value_renders_dates_in_utc_and_results_by_name():
    later = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert describe_value(later) == NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert describe_value(ResultOf("new", "Thumbprint")) == "<Thumbprint returned by step new>"
    assert describe_value(("a", {"b": Secret("x")})) == ["a", {"b": MASK}]


def test_a_step_needing_an_earlier_result_starts_a_new_phase():
    plan = Plan("auth", (
        Step("new", "New-ExchangeCertificate", {"SubjectName": "CN=Microsoft Exchange Server Auth Certificate"},
             "no next Auth certificate"),
        Step("restart", "host.restart_service", {"name": "MSExchangeServiceHost"}, "pick up the change"),
        Step("stage", "Set-AuthConfig", {"NewCertificateThumbprint": ResultOf("new", "Thumbprint")}, "stage it"),
        Step("recycle", "host.recycle_app_pool", {"name": "MSExchangeOWAAppPool"}, "OWA"),
    ))
    assert [[step.id for step in phase] for phase in plan.phases()] == [["new", "restart"], ["stage", "recycle"]]
    second = plan.batch(plan.phases()[1], {"new": [{"Thumbprint": "CD" * 20}]})  # a cmdlet's one-object list
    assert second.operations[0].args == {"NewCertificateThumbprint": "CD" * 20}


def test_a_missing_result_field_is_a_clear_error():
    plan = Plan("auth", (
        Step("new", "New-ExchangeCertificate", {}, "make one"),
        Step("stage", "Set-AuthConfig", {"NewCertificateThumbprint": ResultOf("new", "Thumbprint")}, "stage it"),
    ))
    with pytest.raises(ExchangePkiError, match="step new returned no Thumbprint"):
        plan.batch(plan.phases()[1], {"new": None})


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((Step("a", "host.iis_reset", {}, "x"), Step("a", "host.iis_reset", {}, "y")), "used twice"),
        ((Step("b", "Set-AuthConfig", {"NewCertificateThumbprint": ResultOf("later")}, "x"),),
         "not an earlier step"),
    ],
    ids=["duplicate-id", "forward-reference"],
)
def test_malformed_plans_are_refused(steps, message):
    with pytest.raises(BatchDefinitionError, match=message):
        Plan("bad", steps)


def test_unknown_operations_and_parameters_are_refused():
    with pytest.raises(BatchDefinitionError, match="unknown operation"):
        Step("x", "Invoke-Expression", {}, "never")
    plan = Plan("bad", (Step("x", "host.iis_reset", {"force": True}, "x"),))
    with pytest.raises(BatchDefinitionError, match="unknown parameter 'force'"):
        plan.batch(plan.phases()[0])


def test_steps_need_a_reason():
    with pytest.raises(BatchDefinitionError, match="reason"):
        Step("x", "host.iis_reset", {}, "")


def test_a_secret_hides_itself():
    secret = Secret(PASSWORD)
    assert PASSWORD not in repr(secret)
    assert PASSWORD not in str(secret)
    assert PASSWORD not in f"{secret}"
    assert secret.reveal() == PASSWORD
    with pytest.raises(TypeError):
        Secret(b"bytes")  # type: ignore[arg-type]
