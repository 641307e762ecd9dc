# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.certificate_remove against the in-process lab (tests/lab/model).

Safety invariant 1 (DESIGN.md §5): a certificate anything references is never removed unless forced, and a
cluster certificate never. Each refusal test also checks that nothing was sent (one call: the read). Every
expectation is read from the lab's dump and mutation log.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.action import certificate_remove, certificate_services
from ansible_collections.exchange.pki.plugins.modules import certificate_remove as certificate_remove_docs
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot, server_time
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import _documented, argument_spec, failed_result
from tests.unit.plugins.action.lab_host import LabHost
from tests.unit.plugins.action.test_certificate_services import documented_options

ROOT = pathlib.Path(__file__).resolve().parents[4]
SCENARIO = ROOT / "tests" / "lab" / "scenarios" / "dag.yml"

RENEWED = "mail renewed"
EXPIRED = "expired leftover"
TAGGED = "partner tagged"
RECEIVE = "receive tagged"
RECEIVE_RENEWED = "receive renewed"
TRANSPORT = "transport only"


def scenario() -> dict[str, Any]:
    data = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    data["certificates"].update({
        "renewed": {"subject": "CN=mail.contoso.lab", "dns_names": ["mail.contoso.lab", "autodiscover.contoso.lab"],
                    "not_before": "-1d", "not_after": "700d"},
        "expired": {"subject": "CN=old.contoso.lab", "dns_names": ["old.contoso.lab"],
                    "not_before": "-800d", "not_after": "-30d"},
        "partner": {"subject": "CN=partner-tls.contoso.lab", "dns_names": ["partner-tls.contoso.lab"]},
        "receive": {"subject": "CN=smtp.contoso.lab", "dns_names": ["smtp.contoso.lab"], "not_after": "30d"},
        "receive2": {"subject": "CN=smtp.contoso.lab", "dns_names": ["smtp.contoso.lab"], "not_after": "400d"},
        "transport": {"subject": "CN=ex1.contoso.lab", "dns_names": ["ex1.contoso.lab"], "not_after": "400d"},
    })
    ex1 = data["servers"][0]
    ex1["certificates"] += [
        {"ref": "renewed", "exportable": True, "friendly_name": RENEWED},
        {"ref": "expired", "friendly_name": EXPIRED},
        {"ref": "partner", "friendly_name": TAGGED},
        {"ref": "receive", "friendly_name": RECEIVE},
        {"ref": "transport", "friendly_name": TRANSPORT},
    ]
    ex1["receive_connectors"] = {"Default Frontend": {"tls_certificate": "receive"}}
    ex1["internal_transport"] = "transport"
    ex1["pending_requests"] = [{"subject": "CN=pending.contoso.lab", "dns_names": ["pending.contoso.lab"],
                                "friendly_name": "pending"}]
    ex2 = data["servers"][1]
    ex2["certificates"] += [{"ref": "receive", "friendly_name": RECEIVE},
                            {"ref": "receive2", "friendly_name": RECEIVE_RENEWED}]
    ex2["receive_connectors"] = {"Default Frontend": {"tls_certificate": "receive"}}
    data["send_connectors"].append({"name": "Partner", "address_spaces": ["SMTP:partner.example;1"],
                                    "source_servers": ["ex1"], "tls_certificate": "partner"})
    return data


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugin reads the clock at NOW."""


@pytest.fixture
def fleet() -> Fleet:
    return Fleet.from_scenario(scenario(), now=NOW)


@pytest.fixture
def ex1(fleet: Fleet) -> LabHost:
    return LabHost(fleet, "ex1")


def thumbprint_of(host: LabHost, friendly_name: str, store: str = "My") -> str:
    (found,) = [c["thumbprint"] for c in host.dump()["certificates"][store] if c["friendly_name"] == friendly_name]
    return found


def present(host: LabHost, thumbprint: str) -> bool:
    return any(c["thumbprint"] == thumbprint for store in host.dump()["certificates"].values() for c in store)


def front_end(host: LabHost) -> str:
    (binding,) = [b for b in host.dump()["iis_bindings"] if b["site"] == "Default Web Site"]
    return binding["certificate_hash"]


def remove(host: LabHost, thumbprint: str, **kwargs: Any) -> dict[str, Any]:
    args = {"thumbprint": thumbprint, **kwargs.pop("args", {})}
    return host.run(certificate_remove.ActionModule, args, action="exchange.pki.certificate_remove", **kwargs)


def kinds(result: dict[str, Any], *, blocking: bool | None = None) -> set[tuple[str, str]]:
    return {(r["kind"], r["name"]) for r in result["references"] if blocking is None or r["blocking"] is blocking}


def refused(host: LabHost, result: dict[str, Any]) -> str:
    """The refusal's message, after checking that nothing was sent: the read was the only call."""
    assert result["failed"] is True, result
    assert "exception" not in result, result.get("exception")
    assert host.mutations() == [] and len(host.calls) == 1
    assert "Nothing was changed" in result["msg"]
    return result["msg"]


def test_the_documentation_mirrors_the_argument_spec():
    documented = argument_spec(_documented(documented_options(certificate_remove_docs)))
    assert documented == argument_spec(dict(certificate_remove.ARGUMENT_SPEC.argument_spec))


# --- check, apply, apply again ----------------------------------------------------------------------------------


def test_an_unreferenced_certificate_is_removed_once(ex1, tmp_path):
    expired = thumbprint_of(ex1, EXPIRED)
    ledger = tmp_path / "ledger.jsonl"
    args = {"ledger": str(ledger)}
    check = remove(ex1, expired, args=args, check_mode=True, diff=True)
    assert check["changed"] is True and check["removed"] is True
    assert ex1.mutations() == [] and present(ex1, expired) and not ledger.exists()
    assert check["diff"] == {
        "before": {"thumbprint": expired, "present": True, "store": "My", "subject": "CN=old.contoso.lab",
                   "references": []},
        "after": {"thumbprint": expired, "present": False},
    }

    result = remove(ex1, expired, args=args, diff=True)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["removed"] is True and result["references"] == []
    assert not present(ex1, expired)
    assert [m["operation"] for m in ex1.mutations()] == ["Remove-ExchangeCertificate"]
    (written,) = read_records(ledger)
    assert written.as_dict() == result["change_record"]
    assert (written.action, written.result) == ("remove", "changed")
    assert result["change_record"]["before"] == check["diff"]["before"]

    again = remove(ex1, expired, args=args, diff=True)
    assert again["changed"] is False and again["removed"] is False and again["plan"] == []
    assert len(ex1.mutations()) == 1 and len(read_records(ledger)) == 1


def test_a_pending_request_is_removed(ex1):
    pending = thumbprint_of(ex1, "pending", store="REQUEST")
    result = remove(ex1, pending)
    assert result.get("failed") is not True, result.get("msg")
    assert ex1.dump()["certificates"]["REQUEST"] == []
    assert ex1.mutations()[0]["summary"]["store"] == "REQUEST"


def test_a_pasted_thumbprint_is_normalised(ex1):
    expired = thumbprint_of(ex1, EXPIRED)
    pasted = "\u200e" + ":".join(expired[i:i + 2] for i in range(0, 40, 2)).lower()
    result = remove(ex1, pasted)
    assert result["thumbprint"] == expired and not present(ex1, expired)


# --- safety invariant 1 -----------------------------------------------------------------------------------------


def test_the_certificate_bound_to_iis_is_refused(ex1):
    mail = front_end(ex1)
    msg = refused(ex1, remove(ex1, mail))
    assert "iis_binding 'Default Web Site *:443:'" in msg
    assert present(ex1, mail)


def test_force_removes_an_iis_bound_certificate_and_says_what_it_overrode(ex1):
    mail = front_end(ex1)
    result = remove(ex1, mail, args={"force": True})
    assert result.get("failed") is not True, result.get("msg")
    assert ("iis_binding", "Default Web Site *:443:") in kinds(result, blocking=True)
    assert any("Default Web Site *:443:" in warning for warning in result["warnings"])
    assert not present(ex1, mail)
    assert ex1.mutations()[0]["summary"]["dangling_iis_bindings"] == ["Default Web Site"]


def test_the_internal_transport_certificate_is_refused(ex1):
    transport = ex1.dump()["internal_transport_thumbprint"]
    assert transport == thumbprint_of(ex1, TRANSPORT)
    result = remove(ex1, transport)
    msg = refused(ex1, result)
    assert "internal_transport 'EX1'" in msg
    assert present(ex1, transport)


@pytest.mark.parametrize("force", [False, True])
def test_a_cluster_certificate_is_refused_even_with_force(ex1, force):
    (cliusr,) = [c["thumbprint"] for c in ex1.dump()["certificates"]["PKU2U"]]
    msg = refused(ex1, remove(ex1, cliusr, args={"force": force}))
    assert "failover-cluster certificate" in msg and "never removed" in msg
    assert present(ex1, cliusr)


@pytest.mark.parametrize("force", [False, True])
def test_a_send_connector_tag_is_refused_by_us_before_exchange_would(ex1, force):
    tagged = thumbprint_of(ex1, TAGGED)
    msg = refused(ex1, remove(ex1, tagged, args={"force": force}))
    assert "Partner" in msg
    assert present(ex1, tagged)


def test_the_lab_itself_would_refuse_the_send_connector_tag(ex1):
    """What the refusal above spares: Remove-ExchangeCertificate's own error, after a round trip."""
    tagged = thumbprint_of(ex1, TAGGED)
    answer = ex1.fleet.run_module("ex1", "exchange.pki.exchange_batch", {"operations": [
        {"id": "rm", "op": "Remove-ExchangeCertificate", "args": {"Thumbprint": tagged}}]},
        remote_user="CONTOSO\\ansible")
    assert "tagged with following Send Connectors" in answer["results"][0]["error"]["message"]


def test_the_auth_certificate_is_refused(ex1):
    auth = ex1.fleet.dump()["organization"]["auth_config"]["CurrentCertificateThumbprint"]
    msg = refused(ex1, remove(ex1, auth))
    assert "auth_current 'AuthConfig'" in msg


def test_the_refusal_lists_every_reference(ex1):
    exchange = ex1.dump()["iis_bindings"][1]["certificate_hash"]  # Exchange Back End: the self-signed certificate
    msg = refused(ex1, remove(ex1, exchange))
    for expected in ("iis_binding 'Exchange Back End *:444:'", "exchange_service 'SMTP'", "exchange_service 'IMAP'",
                     "exchange_service 'POP'", "exchange_service 'IIS'"):
        assert expected in msg


def test_a_receive_connector_tag_blocks_without_a_stand_in(ex1):
    receive = thumbprint_of(ex1, RECEIVE)
    msg = refused(ex1, remove(ex1, receive))
    assert "receive_connector 'EX1\\Default Frontend EX1'" in msg


def test_a_receive_connector_tag_another_certificate_matches_does_not_block(fleet):
    ex2 = LabHost(fleet, "ex2")
    receive, renewed = thumbprint_of(ex2, RECEIVE), thumbprint_of(ex2, RECEIVE_RENEWED)
    result = remove(ex2, receive)
    assert result.get("failed") is not True, result.get("msg")
    (reference,) = [r for r in result["references"] if r["kind"] == "receive_connector"]
    assert reference["blocking"] is False and reference["stand_in"] == renewed
    assert not present(ex2, receive) and present(ex2, renewed)


def test_after_a_renewal_the_previous_certificate_can_be_removed(ex1):
    """Bind the renewed certificate, then remove the old one: SMTP stays on it, but the new one stands in."""
    old, new = front_end(ex1), thumbprint_of(ex1, RENEWED)
    bound = ex1.run(certificate_services.ActionModule, {"thumbprint": new, "services": ["IIS", "SMTP", "IMAP", "POP"]})
    assert bound.get("failed") is not True, bound.get("msg")

    result = remove(ex1, old)
    assert result.get("failed") is not True, result.get("msg")
    smtp = [r for r in result["references"] if (r["kind"], r["name"]) == ("exchange_service", "SMTP")]
    assert smtp == [{"kind": "exchange_service", "name": "SMTP", "blocking": False, "stand_in": new,
                     "note": f"{new} also holds SMTP and covers its names"}]
    assert not present(ex1, old) and front_end(ex1) == new


def bind_renewed(ex1: LabHost) -> tuple[str, str]:
    """Move every service of the front-end certificate to the renewed one (valid for 700 days); SMTP stays on both."""
    old, new = front_end(ex1), thumbprint_of(ex1, RENEWED)
    bound = ex1.run(certificate_services.ActionModule, {"thumbprint": new, "services": ["IIS", "SMTP", "IMAP", "POP"]})
    assert bound.get("failed") is not True, bound.get("msg")
    return old, new


def test_a_stand_in_expired_by_the_servers_clock_does_not_take_over(ex1):
    """The server's clock runs 701 days ahead of the controller's: Exchange sees the renewed certificate expired,
    so it cannot take SMTP over, although the controller's clock still finds it valid."""
    old, new = bind_renewed(ex1)
    ex1.fleet.advance_clock(701 * 86400)
    before = len(ex1.mutations())
    result = remove(ex1, old)
    assert result["failed"] is True and "Nothing was changed" in result["msg"], result
    assert "exchange_service 'SMTP' (no other valid certificate with this service covers its names)" in result["msg"]
    assert len(ex1.mutations()) == before and present(ex1, old) and present(ex1, new)


def test_a_stand_in_valid_by_the_servers_clock_takes_over_whatever_the_controllers_clock_says(ex1, controller_clock):
    """The controller's clock runs 701 days ahead: by it the renewed certificate has expired, by the server's not."""
    old, new = bind_renewed(ex1)
    controller_clock(datetime.timedelta(days=701))
    result = remove(ex1, old)
    assert result.get("failed") is not True, result.get("msg")
    (smtp,) = [r for r in result["references"] if (r["kind"], r["name"]) == ("exchange_service", "SMTP")]
    assert smtp["blocking"] is False and smtp["stand_in"] == new
    assert not any("clock" in warning for warning in result.get("warnings", []))
    assert not present(ex1, old)


def test_without_the_servers_clock_the_controllers_is_used_and_said():
    warnings: list[str] = []
    assert server_time(ServerSnapshot(), "EX1", warnings, certificate_remove.CLOCK_JUDGES) == NOW
    assert warnings == ["the clock of EX1 is unknown (host.info did not answer); whether another certificate is "
                        "valid to take over a service was judged by the controller's clock"]


def test_a_failed_read_makes_the_references_unknown_and_refuses(ex1):
    expired = thumbprint_of(ex1, EXPIRED)
    ex1.fleet.set_fault("ex1", "host.iis_bindings", error="Access to the IIS configuration was denied.")
    msg = refused(ex1, remove(ex1, expired))
    assert "unknown: IIS bindings" in msg and "Access to the IIS configuration was denied." in msg
    forced = remove(ex1, expired, args={"force": True})
    assert forced.get("failed") is not True, forced.get("msg")
    assert any("IIS bindings" in warning for warning in forced["warnings"])
    assert not present(ex1, expired)


def test_rawdata_only_objects_make_the_services_unknown(ex1):
    ex1.fleet.set_rawdata_only("ex1", True)
    msg = refused(ex1, remove(ex1, thumbprint_of(ex1, EXPIRED)))
    assert "RawData" in msg


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    ({"thumbprint": "Z" * 40}, "character 'Z'"),
    ({"thumbprint": "AB" * 20 + "\nAB"}, "expected 40 hexadecimal digits"),
    ({"thumbprint": "AB" * 19 + "A\x00"}, "character '\\x00'"),
    ({"thumbprint": "C:\\certs\\" + "AB" * 20}, "character '\\\\'"),
    ({"thumbprint": "9" * 4096}, "got 4096"),
    ({"thumbprint": "AB" * 20, "force": "perhaps"}, "force"),
])
def test_bad_input_is_refused_before_the_host_is_contacted(ex1, args, expected):
    raised = failed_result(ex1.run(certificate_remove.ActionModule, args))
    assert expected in raised["msg"], raised["msg"]
    assert ex1.calls == [] and ex1.mutations() == []
