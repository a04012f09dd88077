"""Logging: one line per event, ``text`` (readable) or ``json`` (one object per line), on stderr.

Tracebacks only at DEBUG. Every value passes a redaction step, so credentials from ``MONGO_URI``
(or any other secret handed to ``configure``) never reach the output: not as they are, not escaped
(``repr``, JSON, ``\\n``), not URL-encoded, not Base64-encoded (an echoed ``Authorization: Basic``
header), and not in part (a message truncated in the middle of a secret still loses what shows of
it, and any ``WINDOW`` characters of it in a row are masked wherever they show).
"""

from __future__ import annotations

import base64 as b64
import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, TextIO
from urllib.parse import quote, quote_plus, unquote, urlsplit

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from tracos_sync.domain.text import printable

_URI_CREDENTIALS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]{0,31}://)[^@/\s]{1,512}@", re.IGNORECASE
)


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
    if userinfo:  # as written, and decoded as an HTTP client sends it (``Basic`` user:password)
        found += [userinfo, unquote(userinfo)]
    return [s for s in found if len(s) >= 3]


# A secret cut short by a truncation is still redacted when at least this much of it shows.
MIN_SHOWN = 6
# Any fragment of a secret form this long is masked, wherever it shows (a secret echoed in part).
WINDOW = 8
MASK = "***"


@functools.lru_cache(maxsize=256)
def secret_forms(secret: str) -> tuple[str, ...]:
    """The ways a message can hold ``secret``, longest first: as is; escaped as ``repr`` of the
    text or of its bytes, JSON and ``unicode_escape`` write it (``\\n``, ``\\xe9``, ``\\u00e9``),
    also escaped twice; URL-encoded (``quote``, ``quote_plus``; upper- and lower-case hex)."""
    escaped = {
        secret,
        repr(secret)[1:-1],
        repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
    }
    escaped |= {repr(form)[1:-1] for form in escaped}
    encoded = {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    encoded |= {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), e) for e in encoded}
    raw = secret.encode("utf-8", "surrogatepass")
    base64 = {base64_form(raw), base64_form(raw, urlsafe=True)}
    encoded |= base64 | {form.rstrip("=") for form in base64}
    forms = {form for form in escaped | encoded if form}
    return tuple(sorted(forms, key=len, reverse=True))


def base64_form(data: bytes, urlsafe: bool = False) -> str:
    return (b64.urlsafe_b64encode if urlsafe else b64.b64encode)(data).decode("ascii")


def _spans(text: str, form: str) -> list[tuple[int, int]]:
    """Where ``form`` shows in ``text``, and where a leading part of it at least ``MIN_SHOWN``
    long does (what is left of it after a cut)."""
    if len(form) <= MIN_SHOWN:  # short: only whole
        return [(m.start(), m.end()) for m in re.finditer(re.escape(form), text)]
    spans = []
    found = text.find(form[:MIN_SHOWN])
    while found >= 0:
        end, matched = found + MIN_SHOWN, MIN_SHOWN
        while end < len(text) and matched < len(form) and text[end] == form[matched]:
            end += 1
            matched += 1
        spans.append((found, end))
        found = text.find(form[:MIN_SHOWN], found + 1)
    return spans


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with URI credentials and every form of each secret masked. Redact before cutting
    a message short: a cut secret is caught only while ``MIN_SHOWN`` characters of it show."""
    text = _URI_CREDENTIALS.sub(rf"\g<scheme>{MASK}@", text)
    key = tuple(secrets)
    spans = [span for form in _all_forms(key) for span in _spans(text, form)]
    windows = _windows(key)
    if windows:
        spans += [
            (i, i + WINDOW)
            for i in range(len(text) - WINDOW + 1)
            if text[i : i + WINDOW] in windows
        ]
    spans.sort()
    if not spans:
        return text
    parts, shown = [], 0
    for start, end in spans:  # overlapping forms are masked as one
        if start >= shown:
            parts += [text[shown:start], MASK]
        shown = max(shown, end)
    parts.append(text[shown:])
    return "".join(parts)


@functools.lru_cache(maxsize=64)
def _all_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    forms = {form for secret in secrets if secret for form in secret_forms(secret)}
    return tuple(sorted(forms, key=len, reverse=True))


@functools.lru_cache(maxsize=64)
def _windows(secrets: tuple[str, ...]) -> frozenset[str]:
    """Every ``WINDOW`` characters in a row of every form of every secret."""
    return frozenset(
        form[i : i + WINDOW] for form in _all_forms(secrets) for i in range(len(form) - WINDOW + 1)
    )


def redact_value(value: Any, secrets: Sequence[str]) -> Any:
    """A log value made printable and with its text redacted, also inside lists and mappings
    and in objects that are shown as text (an exception, a path); other values as they are."""
    if isinstance(value, str):
        return redact_text(printable(value), secrets)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {printable(str(k)): redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, secrets) for v in value]
    shown = str(value)
    redacted = redact_text(printable(shown), secrets)
    return value if redacted == shown else redacted


class _Redactor:
    """Every value made printable and stripped of secrets (lists and mappings included): a log
    call must never fail, nor leak, whatever text it is given. Secrets given as a function are
    asked for at each line: a secret read again from a mounted file (rotated) is known too."""

    def __init__(self, secrets: Iterable[str] | Callable[[], Iterable[str]]) -> None:
        self._current = secrets if callable(secrets) else _fixed(tuple(secrets))

    @property
    def secrets(self) -> tuple[str, ...]:
        return _longest_first(tuple(self._current()))

    def __call__(self, _: WrappedLogger, __: str, event: EventDict) -> EventDict:
        secrets = self.secrets
        for key, value in event.items():
            if key == "exception" and isinstance(value, str):  # a traceback (DEBUG): keep lines
                lines = value.split("\n")
                event[key] = "\n".join(redact_value(line, secrets) for line in lines)
            else:
                event[key] = redact_value(value, secrets)
        return event


def _fixed(secrets: tuple[str, ...]) -> Callable[[], tuple[str, ...]]:
    return lambda: secrets


@functools.lru_cache(maxsize=64)
def _longest_first(secrets: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(secrets), key=len, reverse=True))


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
    secrets: Iterable[str] | Callable[[], Iterable[str]] = (),
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
