# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared helpers for the tests of tests/lab/model: a frozen clock and batch helpers.

Tests drive ``Fleet.run_module`` with batches exactly as the controller sends them.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

import yaml

from tests.lab.model import Fleet
from tests.lab.model.scenario import SCENARIO_DIR

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
MODULE = "exchange.pki.exchange_batch"
PASSWORD = "Pfx-Pass-1!"


def op(op_id: str, operation: str, /, **args: Any) -> dict[str, Any]:
    """One operation of a batch."""
    return {"id": op_id, "op": operation, "args": args} if args else {"id": op_id, "op": operation}


def batch(
    fleet: Fleet, server: str, *operations: dict[str, Any], check_mode: bool = False, **options: Any
) -> dict[str, Any]:
    return fleet.run_module(
        server,
        MODULE,
        {"operations": list(operations), **options},
        check_mode=check_mode,
        remote_user="CONTOSO\\ansible",
    )


def value(fleet: Fleet, server: str, operation: str, /, **args: Any) -> Any:
    """Run one operation that must succeed and return its value."""
    result = batch(fleet, server, op("x", operation, **args))["results"][0]
    assert result["status"] == "ok", result
    return result["value"]


def error(fleet: Fleet, server: str, operation: str, /, **args: Any) -> dict[str, Any]:
    """Run one operation that must fail and return its error record."""
    result = batch(fleet, server, op("x", operation, **args))["results"][0]
    assert result["status"] == "failed", result
    return result["error"]


def as_bytes(data: bytes) -> dict[str, str]:
    return {"$bytes": base64.b64encode(data).decode("ascii")}


def certificates(fleet: Fleet, server: str) -> dict[str, dict[str, Any]]:
    """Get-ExchangeCertificate on ``server`` by thumbprint."""
    return {cert["Thumbprint"]: cert for cert in value(fleet, server, "Get-ExchangeCertificate")}


def by_subject(fleet: Fleet, server: str, subject: str) -> dict[str, Any]:
    (match,) = [cert for cert in certificates(fleet, server).values() if cert["Subject"] == subject]
    return match


def scenario(name: str) -> dict[str, Any]:
    """A shipped scenario as a plain mapping, for tests that tweak it before building a fleet."""
    return yaml.safe_load((SCENARIO_DIR / f"{name}.yml").read_text(encoding="utf-8"))


def fleet_with(name: str, server: str, **settings: Any) -> Fleet:
    """A shipped scenario with extra settings on one server (e.g. exchange_session="double_hop")."""
    data = scenario(name)
    next(spec for spec in data["servers"] if spec["name"] == server).update(settings)
    return Fleet.from_scenario(data, now=NOW)
