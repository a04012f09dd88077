"""A TracOS date in the client record, both ways: one field in a date format
(``InstantField``), or a date and a time in two fields, each with its own pattern, read
together in the mapping's zone (``DateTimePair``: ``"20250310"`` + ``"142205"``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from tracos_sync.domain.dates import InvalidDate

from .dates import DateFormat, PatternDates
from .paths import MISSING, json_path, reader, split
from .said import json_text

# Joins a date and its time into one value read by the joined pattern; never in a pattern.
JOIN = "\x1f"


class Instant(ABC):
    """Where and how one TracOS date is written; ``none``: the client's value for no date
    (None: JSON null; SAP writes ``"00000000"``), read as null and written for no date."""

    path: str  # the client path problems are reported at (the date's)

    @property
    @abstractmethod
    def none(self) -> Any:
        """The raw value (as ``read`` gives it) that means no date."""

    def is_none(self, raw: Any) -> bool:
        """Whether ``raw`` (as ``read`` gives it) says there is no date: null, or ``none``."""
        none = self.none
        return raw is None or (none is not None and type(raw) is type(none) and raw == none)

    def as_date(self, raw: Any) -> datetime | None:
        """The instant ``raw`` reads as in this format, whatever ``none`` is; None if it is
        not a date (to check that the value for no date is none)."""
        try:
            return self._parse(raw)
        except (InvalidDate, ValueError, TypeError, OverflowError):
            return None

    def _parse(self, raw: Any) -> datetime:
        return self.parse(raw)

    def _no_date(self, raw: Any) -> InvalidDate:
        return InvalidDate(f"{json_text(raw)} means no date (no_date), and this date is required")

    @property
    def json_path(self) -> str:
        return json_path(split(self.path))

    @abstractmethod
    def paths(self) -> list[str]:
        """The client paths it is written to."""

    @abstractmethod
    def read(self, item: dict[str, Any]) -> Any:
        """The raw value (``MISSING`` when absent, None when null)."""

    @abstractmethod
    def parse(self, raw: Any) -> datetime:
        """The instant of a raw value; ``InvalidDate`` with a readable reason."""

    @abstractmethod
    def format(self, value: datetime | None) -> list[Any]:
        """The client's value at each of ``paths()`` (None: null); ``InvalidDate`` for an
        instant the format cannot write."""

    @abstractmethod
    def schemas(self, field: str, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Each path's JSON Schema; ``base``: a date of the mapping's own format."""

    def lenient(self, raw: Any) -> datetime | None:
        try:
            return self.parse(raw)
        except (InvalidDate, ValueError, TypeError, OverflowError):
            return None


class InstantField(Instant):
    """One client field, in a date format (the mapping's own, or the field's)."""

    def __init__(self, path: str, dates: DateFormat, own: bool) -> None:
        self.path = path
        self.dates = dates
        self.no_date: Any = None  # the client's value for no date (None: null)
        self._own = own  # a format of its own: its schema says which
        self._read = reader(path)

    def paths(self) -> list[str]:
        return [self.path]

    def read(self, item: dict[str, Any]) -> Any:
        return self._read(item)

    @property
    def none(self) -> Any:
        return self.no_date

    def parse(self, raw: Any) -> datetime:
        try:
            return self.dates.parse(raw)
        except InvalidDate:
            if self.no_date is not None and self.is_none(raw):
                raise self._no_date(raw) from None
            raise

    def _parse(self, raw: Any) -> datetime:
        return self.dates.parse(raw)

    def format(self, value: datetime | None) -> list[Any]:
        return [self.no_date if value is None else self.dates.format(value)]

    def schemas(self, field: str, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if not self._own:
            schema = base
        else:
            schema = self.dates.schema()
            if "$ref" in schema:  # the mapping's definition is of another format
                schema = {"type": "string", "maxLength": 64}
            schema = {**schema, "description": f"{field} as {self.dates.name!r}."}
        if self.no_date is not None:
            schema = {
                "description": f"{field}; no date: {json_text(self.no_date)}.",
                "anyOf": [schema, {"const": self.no_date}],
            }
        return [(self.path, schema)]


class DateTimePair(Instant):
    """A date field and a time field, read as one local time by their joined pattern (checked
    like any pattern: it must read back what it writes)."""

    def __init__(
        self, path: str, time_path: str, joined: PatternDates, date: str, time: str
    ) -> None:
        self.path = path
        self.time_path = time_path
        self._joined = joined
        self._date = date
        self._time = time
        self._read_date = reader(path)
        self._read_time = reader(time_path)
        # The two values that say no date ("00000000", "000000"); None: null.
        self.no_date: str | None = None
        self.no_time: str | None = None
        # The last instant written and its two parts: the date's writer and the time's each
        # ask for the same instant in turn. One tuple, swapped whole: safe across threads.
        self._last: tuple[datetime | None, list[Any]] = (None, [None, None])

    def paths(self) -> list[str]:
        return [self.path, self.time_path]

    def read(self, item: dict[str, Any]) -> Any:
        date = self._read_date(item)
        if date is MISSING or date is None:
            return date
        return (date, self._read_time(item))

    @property
    def none(self) -> Any:
        return None if self.no_date is None else (self.no_date, self.no_time)

    def parse(self, raw: Any) -> datetime:
        date, time = raw
        if self.no_date is not None and date == self.no_date:
            if time == self.no_time:
                raise self._no_date(date)
            raise InvalidDate(
                f"{json_text(date)} means no date (no_date) only with the time "
                f"{json_text(self.no_time)} at {json_path(split(self.time_path))}, not "
                f"{'absent' if time is MISSING else json_text(time)}"
            )
        return self._parse(raw)

    def _parse(self, raw: Any) -> datetime:
        date, time = raw
        if not isinstance(date, str) or not isinstance(time, str):
            shown = "absent" if time is MISSING else repr(time)[:40]
            raise InvalidDate(
                f"a date in {self._date!r} with its time in {self._time!r} at "
                f"{json_path(split(self.time_path))}: got {date!r:.40} and {shown}"
            )
        try:
            return self._joined.parse(date + JOIN + time)
        except InvalidDate as exc:
            raise InvalidDate(
                str(exc)
                .replace(repr(self._joined.name), f"{self._date!r} + {self._time!r}")
                .replace(repr(date + JOIN + time), f"{date!r:.30} + {time!r:.30}")
            ) from None

    def format(self, value: datetime | None) -> list[Any]:
        if value is None:
            return [self.no_date, self.no_time]
        last = self._last
        if last[0] is value:
            return last[1]
        try:
            parts = self._joined.format(value).split(JOIN)
            self._last = (value, parts)
            return parts
        except InvalidDate as exc:
            raise InvalidDate(
                str(exc).replace(self._joined.name, f"{self._date} + {self._time}")
            ) from None

    def schemas(self, field: str, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        text = {"type": "string", "maxLength": 64}
        none_date = none_time = ""
        if self.no_date is not None:
            none_date = f" (no date: {json_text(self.no_date)})"
            none_time = f" (no date: {json_text(self.no_time)})"
        return [
            (
                self.path,
                {**text, "description": f"{field}: its date, as {self._date!r}{none_date}."},
            ),
            (
                self.time_path,
                {**text, "description": f"{field}: its time, as {self._time!r}{none_time}."},
            ),
        ]
