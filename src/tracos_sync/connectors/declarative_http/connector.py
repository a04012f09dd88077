"""The ``api`` connector: an ERP's HTTP API read and, with a ``[write]`` table, written as the
integration's settings table describes it (``description.ApiDescription``), records through the
customer's mapping. Its watermark, dead letters and echo guard are kept in the state store the
bootstrap hands over, under a scope of their own."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import final

import httpx
from dotenv import dotenv_values

from tracos_sync.config import connector_settings
from tracos_sync.domain.errors import ConfigurationError, FatalError, RecordRejected
from tracos_sync.domain.model import WorkOrder
from tracos_sync.domain.ports import (
    CertificateExpiry,
    ConnectorConfig,
    ConnectorContext,
    Delivery,
    HealthCheck,
    Owned,
)
from tracos_sync.mapping import RecordMapping

from ..client_erp.resolve import resolve_mapping
from .auth import build_auth
from .description import ApiDescription, load_description
from .echoes import Echoes
from .environment import FromEnvironment
from .oauth2 import ClientCredentials
from .reader import ApiReader
from .refused_again import RefusedRecords
from .requester import Limits, Requester, SettingNames
from .selector import field_at
from .settings import ApiSettings
from .sink import DEFAULT_CONCURRENCY, UNCONDITIONAL, DeclarativeSink
from .source import ApiSource
from .state import ConnectorState
from .transport import ReloadingTransport, TransportUnbuildable, check_transport
from .transport_checks import certificate_expiry, transport_checks
from .transport_failures import environment_proxy_secrets, proxy_for
from .transport_spec import DESCRIBED
from .versions import ErpVersions
from .watermark import EPOCH, Watermark

SCOPE = "declarative_http"
MIN_MASKED = 3  # as the credentials of an address are (``logs.uri_secrets``)
NAMES = SettingNames(
    retry="client_api_retry_seconds",
    max_bytes="client_api_max_response_bytes",
    credentials="auth",
    url="base_url",
    max_pages="read.max_pages",
    records="read.records",
    transport=DESCRIBED,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReadOnlySink:
    """The sink of a description without ``[write]``: the API is read only. Refused at the first
    outbound batch that holds an order, not at start-up: an integration that only reads is
    legitimate, and until TracOS has something to send nothing is wrong. Then the outbound
    direction fails loudly (exit code, log) and the orders stay unsent, offered again each run."""

    async def prepare(self) -> None:
        """Nothing to prepare: nothing is ever sent."""

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        return Delivery(
            fatal=FatalError(
                f"{len(orders)} work orders cannot go out: the API description has no [write] "
                "table (the API is read only); describe how records are written, or run "
                "`inbound` only"
            )
        )

    async def close(self) -> None:
        """Nothing to close."""


class ApiConnector:
    # Whose state it is, and how messages name what the user sets: the described API's own
    # (``present_api.PresentApiConnector`` keeps the ``http`` connector's).
    scope = SCOPE
    names = NAMES

    def __init__(
        self, api: ApiDescription, settings: ApiSettings, mapping: RecordMapping, where: str = ""
    ) -> None:
        self.api = api
        self.settings = settings
        self.mapping = mapping
        self.where = where  # begins a message about its settings (a TLS file that changed)
        self.concurrency = DEFAULT_CONCURRENCY
        # What the reader saw the ERP hold, so that the sink never sends an older version.
        self._seen = ErpVersions(mapping)
        # The echo guard of the run: the source and the sink built for one context share it
        # (the sink's writes are what the reader must know for ours; the reader's versions are
        # what the sink's next write sends).
        self._echoes: tuple[ConnectorContext, Echoes] | None = None

    def source(self, context: ConnectorContext) -> ApiSource:
        # Also for a read-only API: the guard remembers the versions applied, read again.
        echoes = self._echoes_of(context)
        refused = RefusedRecords(context.state, str(self.api.base_url), self.mapping)
        return ApiSource(
            self._reader(context, echoes),
            self._state(context),
            echoes,
            dry_run=context.dry_run,
            refused=refused,
        )

    def sink(self, context: ConnectorContext) -> DeclarativeSink | ReadOnlySink:
        if self.api.write is None:
            return ReadOnlySink()
        return DeclarativeSink(
            self.api,
            self.mapping,
            self._requester(),
            self._echoes_of(context),
            context,
            dead_letters=self._state(context),
            seen=self._seen,
            concurrency=self.concurrency,
        )

    def describe(self) -> dict[str, str]:
        return {"connector": "api", "api": self._endpoint()}

    @final
    def secrets(self) -> list[str]:
        """Every secret a message may quote: the description's, the environment's proxy
        credentials, and the connector's own settings' (``_settings_secrets``). Final: a
        subclass adds to the list, it cannot drop a part of it. One shorter than
        ``MIN_MASKED`` is left out: masking it would mask letters of every word."""
        found = [*self.api.secrets(), *environment_proxy_secrets(), *self._settings_secrets()]
        return [secret for secret in found if len(secret) >= MIN_MASKED]

    def _settings_secrets(self) -> list[str]:
        """Secrets of settings beside the description (none for ``api``)."""
        return []

    def certificate_expiry(self) -> CertificateExpiry | None:
        return certificate_expiry(self.api.tls, utc_now())

    def owned(self) -> Owned:
        # Its watermark is the collection's: two integrations reading it would share it.
        return Owned(endpoints={"base_url": self._endpoint()})

    async def health(self, context: ConnectorContext) -> list[HealthCheck]:
        reader = self._reader(context)
        try:
            records = await reader.probe()
            checks = [
                HealthCheck("client API", True, f"{self._endpoint()} answers"),
                *writes_check(self.api, records),
            ]
        except (RecordRejected, FatalError) as exc:
            checks = [HealthCheck("client API", False, str(exc))]
        finally:
            await reader.close()
        checks += transport_checks(self.api.tls, self._proxy(), utc_now(), self.names.transport)
        state = self._state(context)
        try:
            mark = await state.watermark(reader.bound())
            refused = await state.count_refused()
        except FatalError as exc:
            return [*checks, HealthCheck("client state", False, str(exc))]
        shown = (
            "none: the first pass reads every record"
            if mark == Watermark()
            else (f"{mark.text}, key {mark.after}")
        )
        return [
            *checks,
            HealthCheck("client watermark", True, shown),
            HealthCheck(
                "client dead letters", True, f"{refused} records refused; see {state.where}"
            ),
        ]

    def _reader(self, context: ConnectorContext, echoes: Echoes | None = None) -> ApiReader:
        return ApiReader(
            self.api,
            self.mapping,
            self._requester(),
            clock_skew=timedelta(seconds=context.clock_skew_seconds),
            clock=utc_now,
            echoes=echoes,
            seen=self._seen,
        )

    def _echoes_of(self, context: ConnectorContext) -> Echoes:
        """One ``Echoes`` per context (one run, or one ``watch``), in the context's store."""
        if self._echoes is None or self._echoes[0] is not context:
            self._echoes = (context, Echoes(context.state, str(self.api.base_url)))
        return self._echoes[1]

    def _requester(self) -> Requester:
        """One client per source, sink or check, with the description's auth plugin."""
        settings = self.settings
        try:
            transport = ReloadingTransport(self.api.tls, self._proxy(), self.names.transport)
        except TransportUnbuildable as exc:  # a file changed since start-up (checked then)
            raise FatalError(f"{self.where}: settings: {exc}") from None
        client = httpx.AsyncClient(
            headers={"Accept": "application/json", "User-Agent": "tracos-sync"},
            timeout=settings.client_api_timeout_seconds,
            follow_redirects=False,
            transport=transport,
        )
        auth = build_auth(self.api.auth, client)
        client.auth = self._sent_with(auth)
        fixed = self.secrets()

        def secrets() -> list[str]:
            fetched = auth.secrets() if isinstance(auth, ClientCredentials) else []
            return [*fixed, *fetched]

        limits = Limits(
            timeout=settings.client_api_timeout_seconds,
            retry_budget=settings.client_api_retry_seconds,
            max_bytes=settings.client_api_max_response_bytes,
        )
        superseded = self.api.write.superseded if self.api.write is not None else (409, 412)
        proxy = self._proxy()
        return Requester(
            client,
            limits,
            secrets,
            self.names,
            superseded,
            proxy_of=lambda url: proxy_for(url, proxy),
        )

    def _sent_with(self, auth: httpx.Auth) -> httpx.Auth:
        """What every request carries: the description's credentials."""
        return auth

    def _proxy(self) -> str | None:
        return None if self.api.proxy is None else str(self.api.proxy)

    def _state(self, context: ConnectorContext) -> ConnectorState:
        return ConnectorState(context.state, self._state_key(), scope=self.scope)

    def _state_key(self) -> str:
        return self._endpoint()

    def _endpoint(self) -> str:
        """The collection read, as one string: the service root and ``read.path``."""
        root = str(self.api.base_url).rstrip("/")
        return f"{root}/{self.api.read.path.lstrip('/')}"


def writes_check(api: ApiDescription, records: Sequence[object]) -> list[HealthCheck]:
    """Whether updates are conditional as the description says (``records``: the first page
    read): a ``[write]`` without ``version`` overwrites the ERP's changes unless it says that is
    meant (``write.unconditional``), and a version field the records do not hold is never sent."""
    write = api.write
    if write is None:
        return []
    spec = write.version
    if spec is None:
        if write.unconditional:
            return [HealthCheck("client writes", True, "unconditional (write.unconditional)")]
        return [HealthCheck("client writes", False, UNCONDITIONAL)]
    if spec.source == "record" and spec.field is not None and records:
        holding = sum(field_at(record, spec.field) is not None for record in records)
        if not holding:
            return [
                HealthCheck(
                    "client writes",
                    False,
                    f"write.version.field {spec.field!r} is in none of the {len(records)} "
                    "records of the first page: updates would go without If-Match (the "
                    "ERP's changes overwritten, or every update refused); name the field "
                    "the records hold their version in",
                )
            ]
    return [HealthCheck("client writes", True, f"conditional ({spec.header})")]


def create(config: ConnectorConfig) -> ApiConnector:
    """The ``api`` connector factory (entry point ``tracos_sync.connectors:api``)."""
    if config.settings is None:
        raise ConfigurationError(
            "the api connector is described in an integrations file: its [integration.settings] "
            "table holds the API description (base_url, auth, read, write)"
        )
    # A top-level value the integrations file filled from ``${NAME}`` is marked as such (a
    # proxy's password must come from the environment).
    described = {
        k: FromEnvironment(v) if isinstance(v, str) and k.lower() in config.hidden else v
        for k, v in config.settings.items()
        if k in ApiDescription.model_fields
    }
    others = {k: v for k, v in config.settings.items() if k not in described}
    where = f"{config.where}: settings" if config.where else "settings"
    api = load_description(described, where, _variables(config.env_file))
    settings = connector_settings(ApiSettings, replace(config, settings=others))
    mapping = resolve_mapping(config)
    check_mapping(api, mapping, config.where)
    check_transport(api.tls, None if api.proxy is None else str(api.proxy), where)
    return ApiConnector(api, settings, mapping, config.where)


def check_mapping(
    api: ApiDescription, mapping: RecordMapping, where: str, *, envelope_read: bool = True
) -> None:
    """What the description needs of the mapping, refused at start-up naming both.
    ``envelope_read``: whether the user wrote ``read.records`` (for ``http`` the present API
    fixes it, and the mapping's envelope is a file's only, as it always was)."""
    envelope = mapping.records_path
    if envelope_read and envelope is not None and ".".join(envelope) != api.read.records:
        raise ConfigurationError(
            f"{where}: the mapping's records ({'.'.join(envelope)!r}) and the description's "
            f"read.records ({api.read.records!r}) differ: with the api connector, read.records "
            "says where a page's records are; leave the mapping's records unset or equal"
        )
    by_mapping = api.read.watermark_format == "mapping"
    if (
        by_mapping
        and (api.read.since or api.read.after)
        and len(mapping.client_updated(EPOCH)) != 1
    ):
        raise ConfigurationError(
            f"{where}: read.since and read.after fill {{since}} with the record's last update, "
            "which the mapping reads from a date and a time apart: describe updated_at as one "
            "field to filter by it"
        )


def _variables(env_file: str | None) -> Mapping[str, str]:
    """The environment over the ``.env`` file, as for the integrations file's own variables."""
    found: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        found.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    found.update(os.environ)
    return found
