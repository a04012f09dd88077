"""``sftp://user@host:port/path``: a folder on an SFTP server, as a folder setting names it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

SCHEME = "sftp://"
DEFAULT_PORT = 22


def is_sftp(value: object) -> bool:
    """Whether a folder setting's value names a folder on an SFTP server."""
    return isinstance(value, str) and value.lower().startswith(SCHEME)


@dataclass(frozen=True, slots=True)
class Server:
    """Whom to connect to, and as whom."""

    user: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self.user}@{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Location:
    server: Server
    path: PurePosixPath

    def __str__(self) -> str:
        return f"{self.server}{self.path}"


def parse_location(value: str) -> Location:
    """The server and absolute folder path of ``sftp://user@host[:port]/path``. Raises
    ``ValueError`` saying what is wrong (a password in the URL is refused: it would be shown
    wherever the folder is; it comes from the environment)."""
    parts = urlsplit(value)
    if parts.password is not None or ":" in _decoded(parts.username or ""):
        # Before anything that names the URL: ``user%3Apassword@`` is a password too (the user
        # name, decoded, would carry it into every line that names the server).
        raise ValueError(
            "an sftp:// URL must not hold a password (it would be shown wherever the folder is "
            "named): give it in SFTP_PASSWORD, from the environment"
        )
    if parts.scheme.lower() != "sftp":
        raise ValueError(f"{value!r} is not an sftp:// URL")
    if not parts.username:
        raise ValueError(f"{value!r} names no user (sftp://user@host:port/path)")
    if not parts.hostname:
        raise ValueError(f"{value!r} names no host (sftp://user@host:port/path)")
    try:
        port = DEFAULT_PORT if parts.port is None else parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} has an invalid port") from exc
    if port == 0:  # no server listens there; not a stand-in for the default
        raise ValueError(f"{value!r} has an invalid port (0)")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: a folder URL takes no query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/") or path == "/":
        raise ValueError(f"{value!r} names no folder: give its absolute path on the server")
    if any(part in {".", ".."} for part in path.split("/")):
        raise ValueError(f"{value!r}: a folder path must not hold '.' or '..'")
    return Location(
        Server(unquote(parts.username), parts.hostname, port), PurePosixPath(path.rstrip("/"))
    )


def _decoded(text: str) -> str:
    """``text`` with its percent-escapes undone until none is left (``%253A`` is ``:`` too)."""
    for _ in range(len(text)):
        plain = unquote(text)
        if plain == text:
            break
        text = plain
    return text
