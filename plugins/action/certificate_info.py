# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Action plugin of exchange.pki.certificate_info: one batch of reads, facts evaluated on the controller.

Which failed reads are fatal (everything else degrades to null facts plus a warning):

- the Exchange session is refused (ExchangeAccessDenied, the double hop) or the Exchange endpoint/tools are
  missing (ExchangeToolsMissing): the inventory would silently lose Exchange's half, so the task fails with
  the error's remedy;
- ``host.info`` failed: the server cannot be identified;
- neither ``host.certificates`` (My, REQUEST) nor ``Get-ExchangeCertificate`` answered: an empty list would
  read as "no certificates", a wrong answer rather than an unknown one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ansible.errors import AnsibleActionFail

from ansible_collections.exchange.pki.plugins.plugin_utils._action import ArgumentSpec, ExchangePkiAction
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import (
    ExchangeAccessDenied,
    ExchangePkiError,
    ExchangeToolsMissing,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._facts import ServerSnapshot, build_facts
from ansible_collections.exchange.pki.plugins.plugin_utils._policy import Policy, PolicyError, policy_argspec
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import (
    EXCHANGE_SESSION_REQUIRED_TOGETHER,
    Batch,
    BatchResult,
    exchange_session_argspec,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._time import utc_now
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    ExchangeServer,
    HostInfo,
    ReceiveConnector,
    parse_auth_config,
    parse_cluster,
    parse_dag,
    parse_exchange_certificates,
    parse_exchange_server,
    parse_host_info,
    parse_hybrid_configuration,
    parse_iis_bindings,
    parse_list,
    parse_receive_connector,
    parse_send_connector,
    parse_store_certificates,
    parse_transport_service,
)

ARGUMENT_SPEC = ArgumentSpec(
    argument_spec={**exchange_session_argspec(), "policy": policy_argspec()},
    required_together=EXCHANGE_SESSION_REQUIRED_TOGETHER,
)

# Cluster certificates (EF "CLIUSR": Subject CN=CLIUSR / CN=CSUSR) live outside My, in a store whose name and
# location are not documented: every LocalMachine store is searched, filtered by subject on the host.
CLUSTER_SUBJECT_PATTERN = r"^CN=(CLIUSR|CSUSR)(,|$)"


@dataclasses.dataclass(frozen=True)
class Read:
    """One reading operation of the batch and how its value enters the :class:`ServerSnapshot`.

    ``missing`` is the value when the read failed: ``()`` for lists (the engine then checks ``unavailable``),
    None for single objects and for Exchange's certificate list (None there means "Exchange did not say").
    ``name`` is how ``unavailable`` and the warnings name the read: the operation (the keys the facts engine
    checks), qualified for the second ``host.certificates`` read.
    """

    id: str
    op: str
    parse: Callable[[Any], Any]
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    missing: Any = ()
    qualifier: str | None = None

    @property
    def name(self) -> str:
        return f"{self.op} ({self.qualifier})" if self.qualifier else self.op


def _all(parse_item: Callable[[Any], Any], kind: str) -> Callable[[Any], tuple[Any, ...]]:
    return lambda value: parse_list(value, parse_item, kind)


READS: tuple[Read, ...] = (
    Read("host_info", "host.info", parse_host_info, missing=None),
    Read("exchange_servers", "Get-ExchangeServer", _all(parse_exchange_server, "ExchangeServer[]")),
    Read("exchange_certificates", "Get-ExchangeCertificate", parse_exchange_certificates, missing=None),
    Read("store_certificates", "host.certificates", parse_store_certificates, {"stores": ["My", "REQUEST"]}),
    Read("cluster_certificates", "host.certificates", parse_store_certificates,
         {"stores": ["*"], "subject_pattern": CLUSTER_SUBJECT_PATTERN}, qualifier="cluster certificates"),
    Read("iis_bindings", "host.iis_bindings", parse_iis_bindings),
    Read("auth_config", "Get-AuthConfig", parse_auth_config, missing=None),
    Read("transport_services", "Get-TransportService", _all(parse_transport_service, "TransportService[]")),
    Read("send_connectors", "Get-SendConnector", _all(parse_send_connector, "SendConnector[]")),
    Read("receive_connectors", "Get-ReceiveConnector", _all(parse_receive_connector, "ReceiveConnector[]")),
    Read("hybrid", "Get-HybridConfiguration", parse_hybrid_configuration, missing=None),
    Read("dags", "Get-DatabaseAvailabilityGroup", _all(parse_dag, "DatabaseAvailabilityGroup[]")),
    Read("cluster", "host.cluster", parse_cluster, missing=None),
)


def build_batch() -> Batch:
    """The one batch of certificate_info: every read, none of them changing anything."""
    batch = Batch()
    for read in READS:
        batch.add(read.op, read.args, id=read.id)
    return batch


@dataclasses.dataclass(frozen=True)
class Readings:
    """The value of every read (its ``missing`` value when it failed) and why each failed read failed."""

    values: Mapping[str, Any]
    unavailable: Mapping[str, str]

    @classmethod
    def from_result(cls, result: BatchResult) -> Readings:
        """Parse every read; a refused or missing Exchange session is fatal and raised as is."""
        values: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        for read in READS:
            error = result[read.id].exception()
            if isinstance(error, (ExchangeAccessDenied, ExchangeToolsMissing)):
                raise error
            if error is None:
                values[read.id] = read.parse(result[read.id].value)
            else:
                values[read.id] = read.missing
                unavailable[read.name] = str(error)
        return cls(values, unavailable)

    def failed(self, *read_ids: str) -> bool:
        """Whether every one of the reads failed."""
        return all(_READ_BY_ID[read_id].name in self.unavailable for read_id in read_ids)

    def explain(self, *read_ids: str) -> str:
        names = [_READ_BY_ID[read_id].name for read_id in read_ids]
        return "; ".join(f"{name}: {self.unavailable[name]}" for name in names if name in self.unavailable)


_READ_BY_ID = {read.id: read for read in READS}


def _same_server(name: str | None, fqdn: str | None, host: HostInfo) -> bool:
    """Whether an organisation-wide object names the managed host (by name or FQDN, case-insensitively)."""
    if name is not None and name.casefold() == host.computer_name.casefold():
        return True
    return fqdn is not None and host.fqdn is not None and fqdn.casefold() == host.fqdn.casefold()


def _local_exchange_server(servers: tuple[ExchangeServer, ...], host: HostInfo) -> ExchangeServer | None:
    return next((server for server in servers if _same_server(server.name, server.fqdn, host)), None)


def _local_receive_connectors(connectors: tuple[ReceiveConnector, ...], host: HostInfo) -> tuple[ReceiveConnector, ...]:
    return tuple(connector for connector in connectors if _same_server(connector.server, None, host))


def build_snapshot(readings: Readings) -> ServerSnapshot:
    """The engine's view of one server (the fatal gaps listed in this file's docstring raise ExchangePkiError)."""
    if readings.failed("host_info"):
        raise ExchangePkiError(f"the server could not be identified: {readings.explain('host_info')}")
    if readings.failed("store_certificates", "exchange_certificates"):
        raise ExchangePkiError(
            "the certificates could not be listed: " + readings.explain("store_certificates", "exchange_certificates")
        )
    values = readings.values
    host: HostInfo = values["host_info"]
    return ServerSnapshot(
        host_info=host,
        exchange_server=_local_exchange_server(values["exchange_servers"], host),
        exchange_certificates=values["exchange_certificates"],
        store_certificates=(*values["store_certificates"], *values["cluster_certificates"]),
        iis_bindings=values["iis_bindings"],
        auth_config=values["auth_config"],
        transport_services=values["transport_services"],
        send_connectors=values["send_connectors"],
        receive_connectors=_local_receive_connectors(values["receive_connectors"], host),
        hybrid=values["hybrid"],
        dags=values["dags"],
        cluster=values["cluster"],
        unavailable=dict(readings.unavailable),
    )


def unavailable_warnings(unavailable: Mapping[str, str]) -> list[str]:
    return [f"{label} could not be read; the facts it gives are null: {message}"
            for label, message in unavailable.items()]


class ActionModule(ExchangePkiAction):
    """exchange.pki.certificate_info: read everything in one round trip, evaluate on the controller."""

    ARGUMENT_SPEC = ARGUMENT_SPEC

    def execute(self, args: dict[str, Any], task_vars: Mapping[str, Any]) -> dict[str, Any]:
        try:
            policy = Policy.from_options(args.get("policy"))
        except PolicyError as error:
            raise AnsibleActionFail(str(error)) from None  # the message names the policy key
        readings = Readings.from_result(self.run_batch(build_batch(), task_vars, args))
        snapshot = build_snapshot(readings)
        result = build_facts(snapshot, policy=policy, now=utc_now())
        if readings.unavailable:
            result["warnings"] = unavailable_warnings(readings.unavailable)
        return result
