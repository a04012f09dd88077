"""The HTTP connector: the client ERP's API, with a watermark and a dead-letter collection in
MongoDB. Translation and validation are the client ERP's own (``client_erp``), shared with the
JSON-folder transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import structlog
from pydantic import Field, HttpUrl, SecretStr
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from tracos_sync.config import EnvSettings, TimeZoneName, load_settings
from tracos_sync.connectors.client_erp.codec import RecordDecoder
from tracos_sync.connectors.client_erp.translate import to_client
from tracos_sync.domain.dates import format_instant, parse_instant
from tracos_sync.domain.errors import DestinationUnwritable, FatalError, RecordRejected
from tracos_sync.domain.model import Problem, WorkOrder
from tracos_sync.domain.ports import Delivery, HealthCheck, InboundUnit

log = structlog.get_logger("tracos_sync.http")
EPOCH = "1970-01-01T00:00:00.000Z"


class HttpSettings(EnvSettings):
    client_api_url: HttpUrl
    client_api_token: SecretStr | None = None
    client_api_page_size: int = Field(100, ge=1, le=10_000)
    client_api_timeout_seconds: float = Field(10.0, gt=0)
    client_api_retry_seconds: float = Field(30.0, ge=0)
    client_api_concurrency: int = Field(8, ge=1, le=64)
    client_timezone: TimeZoneName = "UTC"
    mongo_uri: str = "mongodb://localhost:27017"
    mongo_database: str = "tractian"
    client_state_collection: str = "client_sync_state"
    client_dead_letter_collection: str = "client_dead_letters"


class Transient(Exception):
    """A response worth retrying (429, 5xx, network); carries the server's Retry-After."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    """The API refused this one record (4xx): quarantine it, go on."""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _check(response: httpx.Response) -> httpx.Response:
    """Classify a response once: 2xx passes, 429/5xx/408 are transient, other 4xx refuse."""
    status = response.status_code
    if status < 300:
        return response
    text = response.text[:200]
    if status in (408, 429) or status >= 500:
        raise Transient(f"HTTP {status}: {text}", _retry_after(response))
    raise Refused(f"HTTP {status}: {text}")


class _WaitHonouringRetryAfter:
    """Exponential backoff with jitter, but never sooner than the server's Retry-After."""

    def __init__(self) -> None:
        self._backoff = wait_random_exponential(multiplier=0.2, max=10)

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait


class ErpApi:
    """The client ERP's HTTP API, with transient failures retried inside a time budget."""

    def __init__(self, settings: HttpSettings) -> None:
        headers = {"Accept": "application/json", "User-Agent": "tracos-sync"}
        if settings.client_api_token is not None:
            headers["Authorization"] = f"Bearer {settings.client_api_token.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=str(settings.client_api_url).rstrip("/"),
            headers=headers,
            timeout=settings.client_api_timeout_seconds,
        )
        self._budget = settings.client_api_retry_seconds
        self._page_size = settings.client_api_page_size

    async def _call(self, what: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._budget),
            wait=_WaitHonouringRetryAfter(),
            retry=retry_if_exception(lambda e: isinstance(e, Transient)),
            before_sleep=lambda s: log.warning(
                "http.retrying",
                operation=what,
                attempt=s.attempt_number,
                error=str(s.outcome.exception()) if s.outcome else "",
            ),
            reraise=True,
        )

        async def attempt() -> httpx.Response:
            try:
                return _check(await self._client.request(method, url, **kwargs))
            except httpx.TransportError as exc:
                raise Transient(f"{type(exc).__name__}: {exc}") from exc

        try:
            return await retrying(attempt)
        except Transient as exc:
            raise DestinationUnwritable(
                f"{what}: client API still failing after {self._budget:g}s: {exc}"
            ) from exc

    async def page(self, since: str, page: int) -> tuple[list[Any], bool]:
        params = {"updatedSince": since, "page": page, "pageSize": self._page_size}
        try:
            response = await self._call("list work orders", "GET", "/workorders", params=params)
        except Refused as exc:
            raise FatalError(f"list work orders refused: {exc}") from exc
        body = response.json()
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise FatalError("list work orders: the response has no items array")
        return items, bool(body.get("hasMore"))

    async def put(self, number: int, body: bytes) -> None:
        await self._call(
            "send work order",
            "PUT",
            f"/workorders/{number}",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    async def health(self) -> None:
        await self._call("health", "GET", "/health")

    async def close(self) -> None:
        await self._client.aclose()


class StateStore:
    """Watermark and dead letters, in MongoDB beside TracOS's collection."""

    def __init__(self, settings: HttpSettings) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000
        )
        db = self._client[settings.mongo_database]
        self._state = db[settings.client_state_collection]
        self.dead_letters = db[settings.client_dead_letter_collection]
        self._key = f"client_erp_http:{settings.client_api_url}"

    async def watermark(self) -> tuple[str, set[int]]:
        """The newest ``lastUpdateDate`` applied, and the numbers applied at exactly that time
        (the API's ``updatedSince`` is inclusive, so those come back and are skipped)."""
        doc = await self._guard(self._state.find_one({"_id": self._key}))
        if not doc:
            return EPOCH, set()
        return str(doc["watermark"]), set(doc.get("atWatermark", []))

    async def advance(self, watermark: str, numbers: set[int]) -> None:
        await self._guard(
            self._state.update_one(
                {"_id": self._key},
                {
                    "$set": {
                        "watermark": watermark,
                        "atWatermark": sorted(numbers),
                        "updatedAt": datetime.now(UTC),
                    }
                },
                upsert=True,
            )
        )

    async def dead_letter(
        self, direction: str, ref: str, problems: list[Problem], payload: Any
    ) -> None:
        await self._guard(
            self.dead_letters.insert_one(
                {
                    "direction": direction,
                    "ref": ref,
                    "at": datetime.now(UTC),
                    "problems": [p.as_dict() for p in problems],
                    "payload": orjson.dumps(payload, default=str).decode()[:100_000],
                }
            )
        )

    async def _guard(self, operation: Any) -> Any:
        try:
            return await operation
        except PyMongoError as exc:
            raise FatalError(f"connector state in MongoDB unavailable: {exc}") from exc

    async def close(self) -> None:
        await self._client.close()


@dataclass(slots=True)
class _Page:
    since: str
    page: int
    raw: list[Any]
    newest: str | None
    newest_numbers: set[int]


class HttpSource:
    """``ClientSource`` over ``GET /workorders``: a unit is one page."""

    def __init__(self, settings: HttpSettings, dry_run: bool = False) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._decoder = RecordDecoder(ZoneInfo(settings.client_timezone))
        self._api = ErpApi(settings)
        self._store = StateStore(settings)
        self._applied: tuple[str, set[int]] | None = None

    async def prepare(self) -> None:
        await self._store.watermark()

    async def batches(self, max_records: int) -> AsyncGenerator[list[InboundUnit], None]:
        """Keyset paging: each request asks for what changed since the newest record seen so
        far (page 1), so a record updated while we page moves forward and is still read. Page
        numbers advance only past a page that sits entirely at that instant."""
        since, at_since = await self._store.watermark()
        self._applied = (since, set(at_since))
        page, more = 1, True
        while more:
            items, more = await self._api.page(since, page)
            unit = self._decode(since, page, items, at_since)
            if unit.records or unit.problems:
                yield [unit]
            seen = unit.handle
            assert isinstance(seen, _Page)
            if seen.newest is not None and seen.newest > since:
                since, at_since, page = seen.newest, set(seen.newest_numbers), 1
            else:
                if seen.newest == since:
                    at_since |= seen.newest_numbers
                page += 1

    def _decode(self, since: str, page: int, items: list[Any], skip: set[int]) -> InboundUnit:
        unit = InboundUnit(f"page {page} since {since}", [])
        newest, newest_numbers = None, set()
        since_instant = parse_instant(since)
        for index, item in enumerate(items):
            number = item.get("orderNo") if isinstance(item, dict) else None
            try:
                order = self._decoder.decode_record(item)
            except RecordRejected as exc:
                unit.rejected_records += 1
                unit.problems += [Problem(p.path, p.reason, index) for p in exc.problems]
                continue
            if order.updated_at == since_instant and number in skip:
                continue  # applied last time, at the watermark itself
            unit.records.append(order)
            stamp = format_instant(order.updated_at)
            if newest is None or stamp > newest:
                newest, newest_numbers = stamp, {order.number}
            elif stamp == newest:
                newest_numbers.add(order.number)
        unit.handle = _Page(since, page, items, newest, newest_numbers)
        return unit

    async def complete(self, units: Sequence[InboundUnit]) -> None:
        """The pages are applied: quarantine their bad records, then advance the watermark."""
        if self._dry_run:
            return
        assert self._applied is not None
        watermark, at_watermark = self._applied
        for unit in units:
            page = unit.handle
            assert isinstance(page, _Page)
            for index in sorted({p.record for p in unit.problems if p.record is not None}):
                problems = [p for p in unit.problems if p.record == index]
                await self._store.dead_letter(
                    "inbound", f"{unit.name} record {index}", problems, page.raw[index]
                )
                log.warning(
                    "inbound.record_rejected",
                    page=unit.name,
                    record=index,
                    first=f"{problems[0].path}: {problems[0].reason}",
                )
            if page.newest is not None:
                if page.newest > watermark:
                    watermark, at_watermark = page.newest, set(page.newest_numbers)
                elif page.newest == watermark:
                    at_watermark |= page.newest_numbers
        self._applied = (watermark, at_watermark)
        await self._store.advance(watermark, at_watermark)

    async def release(self, units: Sequence[InboundUnit]) -> None:
        """Nothing to give back: the watermark did not move, so the pages come again."""

    async def close(self) -> None:
        await self._api.close()
        await self._store.close()


class HttpSink:
    """``ClientSink`` over ``PUT /workorders/{orderNo}``, a few requests at a time."""

    def __init__(self, settings: HttpSettings, dry_run: bool = False) -> None:
        self._settings = settings
        self._dry_run = dry_run
        self._api = ErpApi(settings)
        self._store = StateStore(settings)

    async def prepare(self) -> None:
        """Nothing to create: the API is there or the first request says so."""

    async def deliver(self, orders: Sequence[WorkOrder]) -> Delivery:
        bodies = [(order.number, orjson.dumps(to_client(order))) for order in orders]
        delivery = Delivery()
        if self._dry_run:
            delivery.delivered = [number for number, _ in bodies]
            return delivery
        gate = asyncio.Semaphore(self._settings.client_api_concurrency)

        async def send(number: int, body: bytes) -> BaseException | None:
            async with gate:
                try:
                    await self._api.put(number, body)
                except (Refused, FatalError) as exc:
                    return exc
                return None

        outcomes = await asyncio.gather(*(send(n, b) for n, b in bodies))
        for (number, body), outcome in zip(bodies, outcomes, strict=True):
            if outcome is None:
                delivery.delivered.append(number)
            elif isinstance(outcome, Refused):
                problem = Problem("$", str(outcome), number)
                delivery.refused.append(problem)
                await self._store.dead_letter(
                    "outbound", f"orderNo {number}", [problem], orjson.loads(body)
                )
            elif delivery.fatal is None and isinstance(outcome, FatalError):
                delivery.fatal = outcome
        return delivery

    async def close(self) -> None:
        await self._api.close()
        await self._store.close()


class HttpConnector:
    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings

    def source(self, dry_run: bool = False) -> HttpSource:
        return HttpSource(self.settings, dry_run)

    def sink(self, dry_run: bool = False) -> HttpSink:
        return HttpSink(self.settings, dry_run)

    def describe(self) -> dict[str, str]:
        return {"connector": "http", "api": str(self.settings.client_api_url)}

    def secrets(self) -> list[str]:
        token = self.settings.client_api_token
        return [token.get_secret_value()] if token is not None else []

    async def health(self) -> list[HealthCheck]:
        api, store = ErpApi(self.settings), StateStore(self.settings)
        checks = []
        try:
            await api.health()
            checks.append(
                HealthCheck("client API", True, f"{self.settings.client_api_url} answers")
            )
        except (Refused, FatalError) as exc:
            checks.append(HealthCheck("client API", False, str(exc)))
        try:
            since, _ = await store.watermark()
            waiting = await store.dead_letters.count_documents({})
            checks.append(HealthCheck("client watermark", True, f"updatedSince {since}"))
            collection = self.settings.client_dead_letter_collection
            detail = f"{waiting} records refused (in {collection})"
            checks.append(HealthCheck("client dead letters", True, detail))
        except (FatalError, PyMongoError) as exc:
            checks.append(HealthCheck("client state", False, str(exc)))
        finally:
            await api.close()
            await store.close()
        return checks


def create(env_file: str | None = ".env") -> HttpConnector:
    """The ``http`` connector factory (entry point ``tracos_sync.connectors:http``)."""
    return HttpConnector(load_settings(HttpSettings, env_file))
