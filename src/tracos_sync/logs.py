"""Logging: one line per event, ``text`` (readable) or ``json`` (one object per line), on stderr.

Tracebacks only at DEBUG. Every value passes a redaction step, so credentials from ``MONGO_URI``
(or any other secret handed to ``configure``) never reach the output.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tracos_sync.domain.text import printable

_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^@/\s]+@", re.IGNORECASE)


def uri_secrets(uri: str) -> list[str]:
    """The parts of a connection URI that must never be shown (user info, password)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return []
    found = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        found.append(userinfo)
    return [s for s in found if len(s) >= 3]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    text = _URI_CREDENTIALS.sub(r"\g<scheme>***@", text)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _clean(value: Any, secrets: Sequence[str]) -> Any:
    if isinstance(value, str):
        return redact_text(printable(value), secrets)
    if isinstance(value, list | tuple):
        return [_clean(item, secrets) for item in value]
    if isinstance(value, dict):
        return {printable(str(k)): _clean(v, secrets) for k, v in value.items()}
    return value


class _Redactor:
    """Every value made printable and stripped of secrets (lists and mappings included): a log
    call must never fail, nor leak, whatever text it is given."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        for key, value in event.items():
            event[key] = _clean(value, self.secrets)
        return event


def _drop_traceback(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    event.pop("exc_info", None)
    event.pop("stack_info", None)
    return event


def _json_dumps(event: MutableMapping[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time, so that a progress display that
    redirects it can print log lines above itself."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(
    level: str = "INFO",
    fmt: str = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    debug = level == "DEBUG"
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors.append(structlog.processors.format_exc_info if debug else _drop_traceback)
    processors.append(_Redactor(secrets))
    if fmt == "json":
        processors.append(structlog.processors.JSONRenderer(serializer=_json_dumps))
    else:
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=False,
                pad_event_to=0,
                sort_keys=False,
                exception_formatter=structlog.dev.plain_traceback,
            )
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or _CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
