"""The HTTP connector: the client ERP reached over its API. Translation and validation are the
client ERP's own (``client_erp``), shared with the JSON-folder transport; the watermark and the
dead letters are kept in the state store the bootstrap hands over."""

from __future__ import annotations

from datetime import timedelta

from tracos_sync.config import connector_settings
from tracos_sync.domain.errors import FatalError, RecordRejected
from tracos_sync.domain.ports import ConnectorConfig, ConnectorContext, HealthCheck, Owned
from tracos_sync.mapping import RecordMapping

from ..client_erp.resolve import resolve_mapping
from .api import ErpApi
from .settings import HttpSettings
from .sink import HttpSink
from .source import HttpSource, utc_now
from .state import ConnectorState
from .versions import ErpVersions


class HttpConnector:
    def __init__(self, settings: HttpSettings, mapping: RecordMapping) -> None:
        self.settings = settings
        self.mapping = mapping
        # What the source saw the ERP hold, so that the sink never sends an older version.
        self._erp = ErpVersions(mapping)

    def source(self, context: ConnectorContext) -> HttpSource:
        return HttpSource(self.settings, self.mapping, context, erp=self._erp)

    def sink(self, context: ConnectorContext) -> HttpSink:
        return HttpSink(self.settings, self.mapping, context, erp=self._erp)

    def describe(self) -> dict[str, str]:
        return {"connector": "http", "api": self.settings.shown_url()}

    def secrets(self) -> list[str]:
        return self.settings.secrets()

    def owned(self) -> Owned:
        # Its watermark and versions are the ERP's: two integrations on one API would each
        # export into the other's records.
        return Owned(endpoints={"CLIENT_API_URL": self.settings.endpoint()})

    async def health(self, context: ConnectorContext) -> list[HealthCheck]:
        url = self.settings.shown_url()
        api = ErpApi(self.settings)
        try:
            await api.health()
            checks = [HealthCheck("client API", True, f"{url} answers")]
        except (RecordRejected, FatalError) as exc:
            checks = [HealthCheck("client API", False, str(exc))]
        finally:
            await api.close()
        state = ConnectorState(context.state, self.settings.state_url())
        skew = context.clock_skew_seconds
        try:
            mark = await state.watermark(utc_now() + timedelta(seconds=skew))
            refused = await state.count_refused()
        except FatalError as exc:
            return [*checks, HealthCheck("client state", False, str(exc))]
        return [
            *checks,
            HealthCheck(
                "client watermark", True, f"updatedSince {mark.text} afterOrderNo {mark.after}"
            ),
            HealthCheck(
                "client dead letters", True, f"{refused} records refused; see {state.where}"
            ),
        ]


def create(config: ConnectorConfig) -> HttpConnector:
    """The ``http`` connector factory (entry point ``tracos_sync.connectors:http``)."""
    settings = connector_settings(HttpSettings, config)
    mapping = resolve_mapping(config)
    return HttpConnector(settings, mapping)
