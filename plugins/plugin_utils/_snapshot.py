# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# FOR INTERNAL COLLECTION USE ONLY
# Only exchange.pki's own plugins may import this file; its API may change without notice in any release.

"""The one server read: which reading operations, their batch, and what they become (a :class:`ServerSnapshot`).

Any module that needs to know a server's certificates and what points at them sends :func:`build_batch` (alone,
or as the first part of its own batch) and turns the answer into a snapshot with :func:`read_snapshot`. The
certificate merge (:func:`collect_certificates`) keys certificates by the thumbprint computed from their DER
bytes (RawData), never by Exchange's Thumbprint, which is null for RawData-only objects; Exchange metadata and
the store read enrich them when present.

Which failed reads are fatal (everything else degrades to null facts plus a warning):

- the Exchange session is refused (ExchangeAccessDenied, the double hop) or the Exchange endpoint/tools are
  missing (ExchangeToolsMissing): the inventory would silently lose Exchange's half, so the error is raised
  with its remedy;
- ``host.info`` failed: the server cannot be identified;
- neither ``host.certificates`` (My, REQUEST) nor ``Get-ExchangeCertificate`` answered: an empty list would
  read as "no certificates", a wrong answer rather than an unknown one.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.exchange.pki.plugins.plugin_utils._certificate import (
    MY_STORE,
    PENDING_REQUEST_STATUS,
    REQUEST_STORE,
    CertificateFacts,
    CertificateParseError,
    LocatedCertificate,
    is_cluster_certificate,
    parse_certificate,
    sha1_thumbprint,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._errors import (
    ExchangeAccessDenied,
    ExchangePkiError,
    ExchangeToolsMissing,
)
from ansible_collections.exchange.pki.plugins.plugin_utils._remote import LOCAL_SERVER, Batch, BatchResult
from ansible_collections.exchange.pki.plugins.plugin_utils._time import utc_now
from ansible_collections.exchange.pki.plugins.plugin_utils._values import (
    AuthConfig,
    ClusterFacts,
    DagInfo,
    ExchangeCertificateRecord,
    ExchangeServer,
    HostInfo,
    HybridConfiguration,
    IisBinding,
    ReceiveConnector,
    SendConnector,
    StoreCertificate,
    TransportService,
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

# --- the reads ------------------------------------------------------------------------------------

# Cluster certificates (EF "CLIUSR"; docs/findings.md: subject OR issuer CN=CLIUSR / CN=CSUSR) live outside My,
# in a store whose name and location are not documented: every LocalMachine store is searched, selected on the
# host by subject or issuer (a PKU2U certificate issued by CLIUSR may carry another subject).
CLUSTER_SUBJECT_PATTERN = r"^CN=(CLIUSR|CSUSR)(,|$)"
CLUSTER_ISSUER_PATTERN = CLUSTER_SUBJECT_PATTERN


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
    # Per-server objects are read for the local server only (resolved on the host): one server's answer does
    # not grow with the organisation (issue 6).
    Read("exchange_servers", "Get-ExchangeServer", _all(parse_exchange_server, "ExchangeServer[]"),
         {"Identity": LOCAL_SERVER}),
    Read("exchange_certificates", "Get-ExchangeCertificate", parse_exchange_certificates, missing=None),
    Read("store_certificates", "host.certificates", parse_store_certificates, {"stores": ["My", "REQUEST"]}),
    Read("cluster_certificates", "host.certificates", parse_store_certificates,
         {"stores": ["*"], "subject_pattern": CLUSTER_SUBJECT_PATTERN, "issuer_pattern": CLUSTER_ISSUER_PATTERN},
         qualifier="cluster certificates"),
    Read("iis_bindings", "host.iis_bindings", parse_iis_bindings),
    Read("auth_config", "Get-AuthConfig", parse_auth_config, missing=None),
    Read("transport_services", "Get-TransportService", _all(parse_transport_service, "TransportService[]"),
         {"Identity": LOCAL_SERVER}),
    Read("send_connectors", "Get-SendConnector", _all(parse_send_connector, "SendConnector[]")),
    Read("receive_connectors", "Get-ReceiveConnector", _all(parse_receive_connector, "ReceiveConnector[]"),
         {"Server": LOCAL_SERVER}),
    Read("hybrid", "Get-HybridConfiguration", parse_hybrid_configuration, missing=None),
    Read("dags", "Get-DatabaseAvailabilityGroup", _all(parse_dag, "DatabaseAvailabilityGroup[]"),
         {"Server": LOCAL_SERVER}),
    Read("cluster", "host.cluster", parse_cluster, missing=None),
)


def build_batch(batch: Batch | None = None, *, prefix: str = "", extra: tuple[Read, ...] = ()) -> Batch:
    """The server read as a batch: every read, none of them changing anything.

    Given a ``batch``, the reads are appended to it (after a module's changes: the confirming re-read travels
    in the same round trip), their ids prefixed with ``prefix``; :func:`read_snapshot` takes the same prefix.
    ``extra`` are a module's own reads beside the server read (their values land in ``ServerSnapshot.extra``).
    """
    batch = Batch() if batch is None else batch
    for read in (*READS, *extra):
        batch.add(read.op, read.args, id=prefix + read.id)
    return batch


@dataclasses.dataclass(frozen=True)
class Readings:
    """The value of every read (its ``missing`` value when it failed) and why each failed read failed."""

    values: Mapping[str, Any]
    unavailable: Mapping[str, str]

    @classmethod
    def from_result(cls, result: BatchResult, prefix: str = "") -> Readings:
        """Parse every read; a refused or missing Exchange session is fatal and raised as is."""
        values: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        for read in READS:
            answer = result[prefix + read.id]
            error = answer.exception()
            if isinstance(error, (ExchangeAccessDenied, ExchangeToolsMissing)):
                raise error
            if error is None:
                values[read.id] = read.parse(answer.value)
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
        exchange_server=next(iter(values["exchange_servers"]), None),  # the local server, resolved on the host
        exchange_certificates=values["exchange_certificates"],
        store_certificates=(*values["store_certificates"], *values["cluster_certificates"]),
        iis_bindings=values["iis_bindings"],
        auth_config=values["auth_config"],
        transport_services=values["transport_services"],
        send_connectors=values["send_connectors"],
        receive_connectors=values["receive_connectors"],
        hybrid=values["hybrid"],
        dags=values["dags"],
        cluster=values["cluster"],
        unavailable=dict(readings.unavailable),
    )


def read_snapshot(result: BatchResult, *, prefix: str = "", extra: tuple[Read, ...] = ()) -> ServerSnapshot:
    """The snapshot of the answer to :func:`build_batch` (the fatal gaps of this file's docstring raise).

    Each of the ``extra`` reads gives ``snapshot.extra[read.id]``: its parsed value, or None when it failed (then
    ``unavailable`` names it, as for the server read's own reads).
    """
    snapshot = build_snapshot(Readings.from_result(result, prefix))
    if not extra:
        return snapshot
    values: dict[str, Any] = {}
    unavailable = dict(snapshot.unavailable)
    for read in extra:
        error = result[prefix + read.id].exception()
        if error is None:
            values[read.id] = read.parse(result[prefix + read.id].value)
        else:
            values[read.id] = None
            unavailable[read.name] = str(error)
    return dataclasses.replace(snapshot, extra=values, unavailable=unavailable)


def unavailable_warnings(unavailable: Mapping[str, str]) -> list[str]:
    return [f"{label} could not be read; the facts it gives are null: {message}"
            for label, message in unavailable.items()]


# --- the snapshot ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ServerSnapshot:
    """What the server read gathered on one server, as typed values of ``_values``.

    ``unavailable`` maps the name of each read that failed (:attr:`Read.name`) to its error message: the
    facts that depend on it are null and the rules that need it stay silent (never guessed).
    """

    host_info: HostInfo | None = None
    exchange_server: ExchangeServer | None = None
    exchange_certificates: tuple[ExchangeCertificateRecord, ...] | None = None
    store_certificates: tuple[StoreCertificate, ...] = ()
    iis_bindings: tuple[IisBinding, ...] = ()
    auth_config: AuthConfig | None = None
    transport_services: tuple[TransportService, ...] = ()
    send_connectors: tuple[SendConnector, ...] = ()
    receive_connectors: tuple[ReceiveConnector, ...] = ()
    hybrid: HybridConfiguration | None = None
    dags: tuple[DagInfo, ...] = ()
    cluster: ClusterFacts | None = None
    unavailable: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: The values of a module's own reads beside the server read (``read_snapshot(extra=...)``), by read id.
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def has(self, read_id: str) -> bool:
        """Whether the read ``read_id`` (a :data:`READS` id, e.g. ``auth_config``) answered: its facts are known."""
        return _READ_BY_ID[read_id].name not in self.unavailable

    @property
    def server_name(self) -> str | None:
        """Exchange's server name, else the host's computer name."""
        if self.exchange_server is not None:
            return self.exchange_server.name
        return self.host_info.computer_name if self.host_info is not None else None

    @property
    def local_transport_service(self) -> TransportService | None:
        name = (self.server_name or "").casefold()
        return next((service for service in self.transport_services if service.name.casefold() == name), None)

    @property
    def dag(self) -> DagInfo | None:
        name = (self.server_name or "").casefold()
        return next((dag for dag in self.dags if name in {member.casefold() for member in dag.servers}), None)

    @property
    def cluster_name(self) -> str | None:
        return self.cluster.name if self.cluster is not None else None


def server_time(snapshot: ServerSnapshot, server: str, warnings: list[str], judged: str) -> datetime.datetime:
    """The server's time (host.info UtcNow), by which Exchange and Windows on it judge a certificate's validity.

    When the read did not give it, the controller's clock, and a warning saying that ``judged`` (what the caller
    decides with it, e.g. "whether the certificate is valid") was judged by the controller's clock.
    """
    if snapshot.host_info is not None:
        return snapshot.host_info.utc_now
    warnings.append(f"the clock of {server} is unknown (host.info did not answer); {judged} was judged by the "
                    "controller's clock")
    return utc_now()


# --- merging the certificate sources --------------------------------------------------------------


def _store_rank(store: str) -> int:
    """My first, then the request store, then the others (cluster stores)."""
    folded = store.casefold()
    return 0 if folded == MY_STORE.casefold() else 1 if folded == REQUEST_STORE.casefold() else 2


@dataclasses.dataclass(frozen=True)
class UnreadableCertificate:
    """A certificate whose DER bytes cannot be parsed at all: listed by what the host says of it, and why."""

    thumbprint: str  # SHA-1 of the bytes, as Windows computes it
    store: str
    friendly_name: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"thumbprint": self.thumbprint, "store": self.store, "friendly_name": self.friendly_name,
                "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Certificates:
    """The server's certificates: the parsed ones by computed thumbprint, and those that cannot be parsed."""

    parsed: Mapping[str, LocatedCertificate]
    unreadable: Mapping[str, UnreadableCertificate]


def collect_certificates(snapshot: ServerSnapshot) -> Certificates:
    """The server's certificates by computed thumbprint: My, pending requests and cluster certificates.

    Other stores (Root, CA, ...) only hold trust anchors and Exchange's self-signed copies and are left
    out. A certificate seen in several of the kept stores is reported once, in the first by rank. One
    certificate that cannot be parsed never hides the others: it is kept aside as an
    :class:`UnreadableCertificate` (the host's cluster read already selected by name, so one from a store
    other than My/REQUEST is kept too).
    """
    parsed: dict[bytes, CertificateFacts | str] = {}

    def facts_of(der: bytes) -> CertificateFacts | str:
        """The facts, or why the bytes cannot be parsed."""
        if der not in parsed:
            try:
                parsed[der] = parse_certificate(der)
            except CertificateParseError as error:
                parsed[der] = str(error)
        return parsed[der]

    found: dict[str, LocatedCertificate] = {}
    unreadable: dict[str, UnreadableCertificate] = {}

    def keep(candidate: LocatedCertificate) -> None:
        current = found.get(candidate.thumbprint)
        if current is None or _store_rank(candidate.store) < _store_rank(current.store):
            found[candidate.thumbprint] = candidate

    def keep_unreadable(der: bytes, store: str, friendly_name: str | None, reason: str) -> None:
        thumbprint = sha1_thumbprint(der)
        current = unreadable.get(thumbprint)
        if current is None or _store_rank(store) < _store_rank(current.store):
            unreadable[thumbprint] = UnreadableCertificate(thumbprint, store, friendly_name or (
                current.friendly_name if current else None), reason)

    for entry in snapshot.store_certificates:
        facts = facts_of(entry.raw_data)
        if isinstance(facts, str):
            keep_unreadable(entry.raw_data, entry.store, entry.friendly_name, facts)
            continue
        located = LocatedCertificate(facts, entry.store, store_entry=entry)
        if _store_rank(entry.store) < 2 or is_cluster_certificate(located):
            keep(located)
    for record in snapshot.exchange_certificates or ():
        facts = facts_of(record.raw_data)
        store = REQUEST_STORE if record.status == PENDING_REQUEST_STATUS else MY_STORE
        if isinstance(facts, str):
            keep_unreadable(record.raw_data, store, record.friendly_name, facts)
            continue
        located = found.get(facts.thumbprint)
        if located is not None and _store_rank(located.store) < 2:  # enrich the store's My/REQUEST entry
            found[facts.thumbprint] = dataclasses.replace(located, exchange=record)
        else:
            keep(LocatedCertificate(facts, store, exchange=record))
    return Certificates(
        parsed=dict(sorted(found.items(), key=lambda item: _certificate_order(item[1]))),
        unreadable=dict(sorted(unreadable.items(), key=lambda item: (_store_rank(item[1].store), item[0]))),
    )


def _certificate_order(certificate: LocatedCertificate) -> tuple[int, str, datetime.datetime, str]:
    return (_store_rank(certificate.store), certificate.store, certificate.facts.not_after, certificate.thumbprint)
