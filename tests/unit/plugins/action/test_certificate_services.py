# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of exchange.pki.certificate_services against the in-process lab (tests/lab/model).

The scenario is the shipped ``dag`` one plus a few certificates installed on ex1 (a renewed SAN certificate,
an expired one, one without its key, a wildcard, ...). Every expectation is read from the lab's dump and
mutation log; the thumbprints come from the dump, never from the test.
"""

from __future__ import annotations

import datetime
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from ansible_collections.exchange.pki.plugins.action import certificate_services
from ansible_collections.exchange.pki.plugins.modules import certificate_services as certificate_services_docs
from ansible_collections.exchange.pki.plugins.plugin_utils._ledger import read_records
from ansible_collections.exchange.pki.plugins.plugin_utils._snapshot import ServerSnapshot, server_time
from tests.lab.model import Fleet
from tests.unit.clock import NOW
from tests.unit.plugins.action.action_harness import _documented, argument_spec, failed_result
from tests.unit.plugins.action.lab_host import LabHost

ROOT = pathlib.Path(__file__).resolve().parents[4]
SCENARIO = ROOT / "tests" / "lab" / "scenarios" / "dag.yml"
FRAGMENTS = ROOT / "plugins" / "doc_fragments"
PASSWORD = "Ex-Lab-2026!"  # the dag scenario's Exchange administrator (an explicit credential)

NEW = "mail 2027"
EXPIRED = "mail 2025 expired"
NO_KEY = "mail without key"
WILDCARD = "wildcard only"
WILDCARD_SAN = "wildcard and mail"
CLIENT_ONLY = "client auth only"
OLD_TRANSPORT = "old transport"


def scenario(**ex1_overrides: Any) -> dict[str, Any]:
    """The dag scenario with extra certificates installed on ex1 (found again by friendly name)."""
    data = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    data["certificates"].update({
        "mail2027": {"subject": "CN=mail.contoso.lab", "dns_names": ["mail.contoso.lab", "autodiscover.contoso.lab"],
                     "not_before": "-1d", "not_after": "700d"},
        "expired": {"subject": "CN=mail.contoso.lab", "dns_names": ["mail.contoso.lab"],
                    "not_before": "-400d", "not_after": "-10d"},
        "nokey": {"subject": "CN=owa.contoso.lab", "dns_names": ["owa.contoso.lab"], "not_after": "300d"},
        "wild": {"subject": "CN=*.contoso.lab", "dns_names": ["*.contoso.lab"], "not_after": "300d"},
        "wildsan": {"subject": "CN=mail.contoso.lab", "dns_names": ["mail.contoso.lab", "*.contoso.lab"],
                    "not_after": "300d"},
        "client": {"subject": "CN=client.contoso.lab", "dns_names": ["client.contoso.lab"], "not_after": "300d",
                   "ekus": ["client_auth"]},
    })
    ex1 = data["servers"][0]
    ex1["certificates"] += [
        {"ref": "mail2027", "exportable": True, "friendly_name": NEW},
        {"ref": "expired", "friendly_name": EXPIRED},
        {"ref": "nokey", "friendly_name": NO_KEY, "has_private_key": False},
        {"ref": "wild", "friendly_name": WILDCARD},
        {"ref": "wildsan", "friendly_name": WILDCARD_SAN},
        {"ref": "client", "friendly_name": CLIENT_ONLY},
    ]
    ex1["pending_requests"] = [{"subject": "CN=pending.contoso.lab", "dns_names": ["pending.contoso.lab"],
                                "friendly_name": "pending"}]
    ex1.update(ex1_overrides)
    return data


@pytest.fixture(autouse=True)
def _frozen(frozen_clock: datetime.datetime) -> None:
    """The lab is built at NOW and the plugin reads the clock at NOW."""


@pytest.fixture
def ex1() -> LabHost:
    return LabHost(Fleet.from_scenario(scenario(), now=NOW), "ex1")


def thumbprint_of(host: LabHost, friendly_name: str, store: str = "My") -> str:
    (found,) = [c["thumbprint"] for c in host.dump()["certificates"][store] if c["friendly_name"] == friendly_name]
    return found


def certificate(host: LabHost, thumbprint: str) -> dict[str, Any]:
    (found,) = [c for c in host.dump()["certificates"]["My"] if c["thumbprint"] == thumbprint]
    return found


def front_end(host: LabHost) -> str:
    (binding,) = [b for b in host.dump()["iis_bindings"] if b["site"] == "Default Web Site"]
    return binding["certificate_hash"]


def holders(host: LabHost, service: str) -> list[str]:
    return sorted(c["thumbprint"] for c in host.dump()["certificates"]["My"] if service in c["services"])


def run(host: LabHost, **kwargs: Any) -> dict[str, Any]:
    args = kwargs.pop("args")
    return host.run(certificate_services.ActionModule, args, action="exchange.pki.certificate_services", **kwargs)


def protocol_name(host: LabHost, op: str) -> str | None:
    answer = host.fleet.run_module("ex1", "exchange.pki.exchange_batch", {"operations": [{"id": "x", "op": op}]},
                                   remote_user="CONTOSO\\ansible")
    (value,) = answer["results"][0]["value"]
    return value["X509CertificateName"]


def ops(host: LabHost) -> list[str]:
    return [m["operation"] for m in host.mutations()]


# --- the documentation is the argument spec ------------------------------------------------------------------


def documented_options(module: Any) -> dict[str, Any]:
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = dict(doc["options"])
    for fragment in doc["extends_documentation_fragment"]:
        name = fragment.removeprefix("exchange.pki.")
        if name.startswith("_"):
            continue  # the attribute fragments have no options
        source = (FRAGMENTS / f"{name}.py").read_text(encoding="utf-8")
        text = source.split('DOCUMENTATION = r"""', 1)[1].split('"""', 1)[0]
        options.update(yaml.safe_load(text)["options"])
    return options


def test_the_documentation_mirrors_the_argument_spec():
    documented = argument_spec(_documented(documented_options(certificate_services_docs)))
    assert documented == argument_spec(dict(certificate_services.ARGUMENT_SPEC.argument_spec))


def test_every_result_key_is_documented(ex1):
    new = thumbprint_of(ex1, NEW)
    result = run(ex1, args={"thumbprint": new, "services": ["IIS", "SMTP"]}, diff=True)
    returned = yaml.safe_load(certificate_services_docs.RETURN)
    assert sorted(set(result) - set(returned) - {"diff"}) == []


# --- check mode, apply, apply again ---------------------------------------------------------------------------


def test_check_mode_predicts_the_change_and_sends_nothing(ex1, tmp_path):
    new, old = thumbprint_of(ex1, NEW), front_end(ex1)
    transport = ex1.dump()["internal_transport_thumbprint"]
    ledger = tmp_path / "ledger.jsonl"
    before = ex1.dump()
    result = run(ex1, args={"thumbprint": new, "services": ["IIS", "SMTP", "IMAP", "POP"], "ledger": str(ledger)},
                 check_mode=True, diff=True)

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert ex1.mutations() == []
    assert ex1.dump() == before
    assert len(ex1.calls) == 1  # the read only
    assert not ledger.exists()
    assert [(s["operation"], s["arguments"]["Thumbprint"] if "Thumbprint" in s["arguments"] else None)
            for s in result["plan"]] == [
        ("Enable-ExchangeCertificate", new), ("Enable-ExchangeCertificate", transport),
        ("host.recycle_app_pool", None), ("host.recycle_app_pool", None)]
    diff = result["diff"]
    assert diff["before"]["services"]["IIS"] == [old]
    assert diff["after"]["services"]["IIS"] == [new]
    assert diff["before"]["services"]["SMTP"] == holders(ex1, "SMTP")
    assert diff["after"]["services"]["SMTP"] == sorted([*holders(ex1, "SMTP"), new])
    assert diff["before"]["internal_transport_thumbprint"] == diff["after"]["internal_transport_thumbprint"] \
        == transport
    assert result["moved"]["IIS"] == [old]
    assert result["iis_restart"] == "app_pools"


def test_apply_moves_the_services_keeps_the_internal_transport_and_recycles_owa(ex1, tmp_path):
    new, old = thumbprint_of(ex1, NEW), front_end(ex1)
    transport = ex1.dump()["internal_transport_thumbprint"]
    ledger = tmp_path / "ledger.jsonl"
    args = {"thumbprint": new, "services": ["IIS", "SMTP", "IMAP", "POP"], "ledger": str(ledger)}
    check = run(ex1, args=args, check_mode=True, diff=True)
    result = run(ex1, args=args, diff=True)

    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert len(ex1.calls) == 3  # check mode's read; the read; the change with the confirming re-read
    dump = ex1.dump()
    assert front_end(ex1) == new
    assert set(certificate(ex1, new)["services"]) == {"IIS", "SMTP", "IMAP", "POP"}
    assert dump["internal_transport_thumbprint"] == transport
    assert [r["name"] for r in dump["app_pool_recycles"]] == ["MSExchangeOWAAppPool", "MSExchangeECPAppPool"]
    assert dump["require_ssl"] is True
    assert result["services"] == certificate(ex1, new)["services"]
    assert result["internal_transport_thumbprint"] == dump["internal_transport_thumbprint"]
    assert result["moved"]["IIS"] == [old]
    # The check-mode prediction is what happened.
    assert check["plan"] == result["plan"] and check["diff"] == result["diff"]
    record = result["change_record"]
    assert (record["action"], record["result"], record["module"]) == (
        "enable_services", "changed", "exchange.pki.certificate_services")
    assert record["before"] == result["diff"]["before"] and record["after"] == result["diff"]["after"]
    (written,) = read_records(ledger)
    assert written.as_dict() == record

    again = run(ex1, args=args, diff=True)
    assert again["changed"] is False
    assert again["plan"] == [] and "diff" not in again
    assert again["iis_restart"] == "none"
    assert again["moved"] == {}
    assert len(read_records(ledger)) == 1
    assert ops(ex1) == ["Enable-ExchangeCertificate", "Enable-ExchangeCertificate", "host.recycle_app_pool",
                        "host.recycle_app_pool"]


# --- safety invariant 5: binding SMTP never silently replaces the internal transport certificate ----------------


def test_binding_smtp_to_a_new_certificate_keeps_the_internal_transport_certificate(ex1):
    new = thumbprint_of(ex1, NEW)
    transport = ex1.dump()["internal_transport_thumbprint"]
    assert transport is not None and transport != new

    result = run(ex1, args={"thumbprint": new, "services": ["SMTP"]})

    assert result.get("failed") is not True, result.get("msg")
    assert ex1.dump()["internal_transport_thumbprint"] == transport
    assert new in holders(ex1, "SMTP") and transport in holders(ex1, "SMTP")
    enable, restore = ex1.mutations()
    # -Force did replace it (what Exchange does), and the second step put it back within the same batch.
    assert enable["summary"]["internal_transport_after"] == new
    assert restore["summary"]["thumbprint"] == transport
    assert restore["summary"]["internal_transport_after"] == transport
    assert result["iis_restart"] == "none"
    assert run(ex1, args={"thumbprint": new, "services": ["smtp"]})["changed"] is False


def test_replace_internal_transport_makes_the_certificate_the_internal_transport_one(ex1):
    new = thumbprint_of(ex1, NEW)
    args = {"thumbprint": new, "services": ["SMTP"], "replace_internal_transport": True}
    result = run(ex1, args=args)

    assert result.get("failed") is not True, result.get("msg")
    assert ex1.dump()["internal_transport_thumbprint"] == new == result["internal_transport_thumbprint"]
    assert ops(ex1) == ["Enable-ExchangeCertificate"]
    assert run(ex1, args=args)["changed"] is False


def test_replace_internal_transport_on_a_certificate_that_already_holds_smtp(ex1):
    new = thumbprint_of(ex1, NEW)
    run(ex1, args={"thumbprint": new, "services": ["SMTP"]})
    assert ex1.dump()["internal_transport_thumbprint"] != new
    result = run(ex1, args={"thumbprint": new, "services": ["SMTP"], "replace_internal_transport": True})
    assert result["changed"] is True
    assert ex1.dump()["internal_transport_thumbprint"] == new


def test_an_unusable_previous_internal_transport_certificate_refuses_smtp_before_sending():
    host = LabHost(Fleet.from_scenario(scenario(internal_transport="expired"), now=NOW), "ex1")
    new, expired = thumbprint_of(host, NEW), thumbprint_of(host, EXPIRED)
    assert host.dump()["internal_transport_thumbprint"] == expired

    result = run(host, args={"thumbprint": new, "services": ["SMTP"]})

    assert result["failed"] is True
    assert expired in result["msg"] and "could not be put back" in result["msg"]
    assert "replace_internal_transport" in result["msg"]
    assert host.mutations() == [] and len(host.calls) == 1
    accepted = run(host, args={"thumbprint": new, "services": ["SMTP"], "replace_internal_transport": True})
    assert accepted.get("failed") is not True, accepted.get("msg")
    assert host.dump()["internal_transport_thumbprint"] == new


def test_no_internal_transport_certificate_is_refused_unless_replacing_is_allowed():
    host = LabHost(Fleet.from_scenario(scenario(internal_transport=None), now=NOW), "ex1")
    new = thumbprint_of(host, NEW)
    result = run(host, args={"thumbprint": new, "services": ["SMTP"]})
    assert result["failed"] is True and "no internal transport certificate" in result["msg"]
    assert host.mutations() == []


def test_enabling_iis_only_needs_no_force_and_leaves_transport_alone(ex1):
    new = thumbprint_of(ex1, NEW)
    transport = ex1.dump()["internal_transport_thumbprint"]
    result = run(ex1, args={"thumbprint": new, "services": ["IIS"], "require_ssl": False, "iis_restart": "iisreset"})

    assert result.get("failed") is not True, result.get("msg")
    (enable,) = [s for s in result["plan"] if s["operation"] == "Enable-ExchangeCertificate"]
    assert "Force" not in enable["arguments"] and enable["arguments"]["DoNotRequireSsl"] is True
    dump = ex1.dump()
    assert front_end(ex1) == new and dump["internal_transport_thumbprint"] == transport
    assert dump["require_ssl"] is False
    assert len(dump["iis_resets"]) == 1 and dump["app_pool_recycles"] == []
    assert result["iis_restart"] == "iisreset"


def test_iis_restart_none_restarts_nothing(ex1):
    result = run(ex1, args={"thumbprint": thumbprint_of(ex1, NEW), "services": ["IIS"], "iis_restart": "none"})
    assert result["iis_restart"] == "none"
    assert ops(ex1) == ["Enable-ExchangeCertificate"]


# --- refusals: nothing is sent ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("friendly_name", "expected"), [
    (EXPIRED, "expired on"),
    (NO_KEY, "has no private key"),
    (CLIENT_ONLY, "does not allow TLS server authentication"),
])
def test_an_unusable_certificate_is_refused_with_nothing_sent(ex1, friendly_name, expected):
    thumbprint = thumbprint_of(ex1, friendly_name)
    result = run(ex1, args={"thumbprint": thumbprint, "services": ["IIS"]}, check_mode=False)
    assert result["failed"] is True
    assert expected in result["msg"] and thumbprint in result["msg"]
    assert "Nothing was changed" in result["msg"]
    assert ex1.mutations() == [] and len(ex1.calls) == 1
    assert "exception" not in result  # a refusal, not a bug


def test_a_pending_request_is_refused(ex1):
    pending = thumbprint_of(ex1, "pending", store="REQUEST")
    result = run(ex1, args={"thumbprint": pending, "services": ["IIS"]})
    assert result["failed"] is True and "pending request" in result["msg"]
    assert ex1.mutations() == []


def test_a_certificate_that_is_not_on_the_server_is_refused(ex1):
    result = run(ex1, args={"thumbprint": "AB" * 20, "services": ["IIS"]})
    assert result["failed"] is True and "is not on EX1" in result["msg"]
    assert ex1.mutations() == []


def test_rawdata_only_objects_are_refused_because_the_services_are_unknown(ex1):
    ex1.fleet.set_rawdata_only("ex1", True)
    result = run(ex1, args={"thumbprint": thumbprint_of(ex1, NEW), "services": ["SMTP"]})
    assert result["failed"] is True and "RawData" in result["msg"]
    assert ex1.mutations() == []


# --- validity by the server's clock (host.info UtcNow), not the controller's -----------------------------------


def test_a_certificate_the_servers_clock_sees_expired_is_refused_with_nothing_sent(ex1):
    """The server's clock runs 701 days ahead: Exchange sees the renewed certificate (700 days) expired."""
    new = thumbprint_of(ex1, NEW)
    moved = ex1.fleet.advance_clock(701 * 86400)
    before = len(ex1.mutations())
    result = run(ex1, args={"thumbprint": new, "services": ["IIS"]})
    assert result["failed"] is True and "Nothing was changed" in result["msg"], result
    assert f"{new} on EX1 expired on" in result["msg"]
    assert f"judged at {moved['now'].replace('Z', '+00:00')}" in result["msg"]
    assert len(ex1.mutations()) == before and len(ex1.calls) == 1 and front_end(ex1) != new


@pytest.mark.parametrize("skew", [701, -2], ids=["controller_ahead_expired", "controller_behind_not_yet_valid"])
def test_a_certificate_valid_by_the_servers_clock_is_enabled_whatever_the_controllers_clock_says(
        ex1, controller_clock, skew):
    """By the controller's clock the renewed certificate (valid from a day ago for 700 days) has expired, or is not
    valid yet; by the server's it is valid, and Exchange goes by that."""
    new = thumbprint_of(ex1, NEW)
    controller_clock(datetime.timedelta(days=skew))
    result = run(ex1, args={"thumbprint": new, "services": ["IIS"]})
    assert result.get("failed") is not True, result.get("msg")
    assert not any("clock" in warning for warning in result.get("warnings", []))
    assert front_end(ex1) == new


def test_the_internal_transport_certificate_is_put_back_when_the_servers_clock_finds_it_valid(controller_clock):
    """The controller's clock runs 701 days ahead: by it the internal transport certificate (700 days) could not be
    enabled again; by the server's it can, so SMTP is enabled with -Force and it is put back."""
    host = LabHost(Fleet.from_scenario(scenario(internal_transport="mail2027"), now=NOW), "ex1")
    transport, wild = thumbprint_of(host, NEW), thumbprint_of(host, WILDCARD_SAN)
    controller_clock(datetime.timedelta(days=701))
    result = run(host, args={"thumbprint": wild, "services": ["SMTP"]})
    assert result.get("failed") is not True, result.get("msg")
    assert [s["id"] for s in result["plan"]] == ["enable", "restore_internal_transport"]
    assert host.dump()["internal_transport_thumbprint"] == transport and wild in holders(host, "SMTP")


def test_an_internal_transport_certificate_the_servers_clock_sees_expired_is_not_put_back(controller_clock):
    """The controller's clock runs 11 days behind: by it the expired internal transport certificate (10 days ago)
    is still valid; by the server's it has expired, and Exchange would refuse to enable it again."""
    host = LabHost(Fleet.from_scenario(scenario(internal_transport="expired"), now=NOW), "ex1")
    new, expired = thumbprint_of(host, NEW), thumbprint_of(host, EXPIRED)
    controller_clock(datetime.timedelta(days=-11))
    result = run(host, args={"thumbprint": new, "services": ["SMTP"]})
    assert result["failed"] is True
    assert f"the current one, {expired}, could not be put back: it is outside its validity" in result["msg"]
    assert host.mutations() == [] and len(host.calls) == 1


def test_without_the_servers_clock_the_controllers_is_used_and_said():
    warnings: list[str] = []
    assert server_time(ServerSnapshot(), "EX1", warnings, certificate_services.CLOCK_JUDGES) == NOW
    assert warnings == ["the clock of EX1 is unknown (host.info did not answer); whether the certificate, and the "
                        "internal transport certificate to put back, are valid was judged by the controller's clock"]


# --- bad input (DESIGN §5.8): a clear error, the host not even contacted --------------------------------------


def test_a_pasted_thumbprint_with_spaces_and_a_left_to_right_mark_works(ex1):
    new = thumbprint_of(ex1, NEW)
    pasted = "\u200e" + " ".join(new[i:i + 2] for i in range(0, 40, 2)).lower() + "\u200e"
    result = run(ex1, args={"thumbprint": pasted, "services": ["IIS"]})
    assert result.get("failed") is not True, result.get("msg")
    assert result["thumbprint"] == new and front_end(ex1) == new


@pytest.mark.parametrize(("args", "expected"), [
    ({"thumbprint": "Z" * 40}, "character 'Z'"),
    ({"thumbprint": "AB" * 19}, "expected 40 hexadecimal digits"),
    ({"thumbprint": "AB" * 20 + "\r\nCD"}, "expected 40 hexadecimal digits"),
    ({"thumbprint": "AB" * 19 + "A\x00"}, "character '\\x00'"),
    ({"thumbprint": "AB" * 19 + "A/"}, "character '/'"),
    ({"thumbprint": "1" * 400}, "got 400"),
    ({"services": ["IIS", "Smtp", "OWA", "UM"]}, "unknown service name(s) 'OWA', 'UM'"),
    ({"services": []}, "name at least one"),
    ({"iis_restart": "reboot"}, "iis_restart"),
    ({"x509_certificate_name": "imap.contoso.lab\r\nX-Injected: 1"}, "x509_certificate_name"),
    ({"x509_certificate_name": "..\\..\\imap"}, "x509_certificate_name"),
    ({"x509_certificate_name": "*.contoso.lab"}, "is a wildcard"),
])
def test_bad_input_is_refused_before_the_host_is_contacted(ex1, args, expected):
    full = {"thumbprint": thumbprint_of(ex1, NEW), "services": ["IIS", "IMAP"], **args}
    message = failed_result(run(ex1, args=full))["msg"]
    assert expected in message, message
    assert ex1.calls == [] and ex1.mutations() == []


def test_the_exchange_password_never_appears_in_the_result_or_the_ledger(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = {"thumbprint": thumbprint_of(ex1, NEW), "services": ["IIS", "SMTP"], "ledger": str(ledger),
            "exchange_username": "CONTOSO\\ansible", "exchange_password": PASSWORD}
    result = run(ex1, args=args, diff=True)
    assert result.get("failed") is not True, result.get("msg")
    assert PASSWORD not in json.dumps(result)
    assert PASSWORD not in ledger.read_text(encoding="utf-8")
    assert PASSWORD not in json.dumps(ex1.mutations())


def test_a_failed_enable_is_reported_and_recorded(ex1, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    ex1.fleet.set_fault("ex1", "Enable-ExchangeCertificate", error="The Active Directory write failed.")
    result = run(ex1, args={"thumbprint": thumbprint_of(ex1, NEW), "services": ["IIS"], "ledger": str(ledger)})
    assert result["failed"] is True and "The Active Directory write failed." in result["msg"]
    assert [s["status"] for s in result["steps"]] == ["failed", "skipped", "skipped"]
    (written,) = read_records(ledger)
    assert written.result == "failed"
    assert ex1.dump()["app_pool_recycles"] == []


# --- IMAP / POP with a wildcard certificate -------------------------------------------------------------------


def test_a_wildcard_certificate_without_a_host_name_fails_with_the_reason(ex1):
    wild = thumbprint_of(ex1, WILDCARD)
    result = run(ex1, args={"thumbprint": wild, "services": ["IMAP"]})
    assert result["failed"] is True
    assert "X509CertificateName" in result["msg"] and "x509_certificate_name" in result["msg"]
    assert ex1.mutations() == []


def test_a_wildcard_certificate_gets_the_named_host_for_imap_and_pop(ex1):
    wild = thumbprint_of(ex1, WILDCARD)
    args = {"thumbprint": wild, "services": ["IMAP", "POP"], "x509_certificate_name": "IMAP.contoso.lab"}
    check = run(ex1, args=args, check_mode=True, diff=True)
    assert check["diff"]["after"]["x509_certificate_name"] == {"IMAP": "imap.contoso.lab", "POP": "imap.contoso.lab"}
    assert ex1.mutations() == []

    result = run(ex1, args=args)
    assert result.get("failed") is not True, result.get("msg")
    assert protocol_name(ex1, "Get-ImapSettings") == protocol_name(ex1, "Get-PopSettings") == "imap.contoso.lab"
    assert wild in holders(ex1, "IMAP") and wild in holders(ex1, "POP")
    assert run(ex1, args=args)["changed"] is False


def test_a_wildcard_certificate_with_a_plain_name_uses_it(ex1):
    wildsan = thumbprint_of(ex1, WILDCARD_SAN)
    result = run(ex1, args={"thumbprint": wildsan, "services": ["POP"]})
    assert result.get("failed") is not True, result.get("msg")
    assert protocol_name(ex1, "Get-PopSettings") == "mail.contoso.lab"
    assert ops(ex1) == ["Enable-ExchangeCertificate", "Set-PopSettings"]


def test_a_host_name_without_imap_or_pop_is_ignored_with_a_warning(ex1):
    result = run(ex1, args={"thumbprint": thumbprint_of(ex1, NEW), "services": ["IIS"],
                            "x509_certificate_name": "imap.contoso.lab"}, check_mode=True)
    assert any("x509_certificate_name is used only with IMAP or POP" in w for w in result["warnings"])
    assert not [s for s in result["plan"] if s["operation"] in ("Set-ImapSettings", "Set-PopSettings")]


def test_a_host_name_the_certificate_does_not_cover_is_refused(ex1):
    result = run(ex1, args={"thumbprint": thumbprint_of(ex1, WILDCARD), "services": ["IMAP"],
                            "x509_certificate_name": "imap.fabrikam.lab"})
    assert result["failed"] is True and "is not covered by" in result["msg"]
    assert ex1.mutations() == []


@pytest.fixture
def every_server() -> Iterator[Fleet]:
    yield Fleet.from_scenario("dag", now=NOW)


@pytest.mark.parametrize("server", ["ex2", "ex3", "ex4"])
def test_the_shared_certificate_already_holds_its_services_everywhere(every_server, server):
    host = LabHost(every_server, server)
    shared = front_end(host)
    result = run(host, args={"thumbprint": shared, "services": ["IIS", "SMTP", "IMAP", "POP"]}, check_mode=True)
    assert result["changed"] is False and result["plan"] == []
