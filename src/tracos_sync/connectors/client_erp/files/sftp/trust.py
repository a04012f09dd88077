"""Who the server is, and who we are: the known_hosts check (trust on first use only when a
setting says so, and loudly) and the credentials, which are never printed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncssh
import structlog

from ..store import StoreRefused
from .location import Server

log = structlog.get_logger("tracos_sync.files.sftp")


@dataclass(frozen=True, slots=True)
class Credentials:
    """How we prove who we are, and how the server proves who it is. Never printed."""

    known_hosts: Path
    key_file: Path | None = None
    key_passphrase: str | None = None
    password: str | None = None
    # Trust-on-first-use: an unknown server's key is accepted and added to ``known_hosts``.
    trust_unknown_host: bool = False


def knows(known_hosts: Path, server: Server) -> bool:
    """Whether ``known_hosts`` names this server at all (then its key must match)."""
    try:
        keys = asyncssh.read_known_hosts(str(known_hosts))
    except (OSError, ValueError):
        return False
    trusted, _, _, _, _, _, _ = keys.match(server.host, "", server.port)
    return bool(trusted)


def remember(known_hosts: Path, server: Server, conn: asyncssh.SSHClientConnection) -> None:
    """Trust on first use: the server's key added to ``known_hosts``, said loudly."""
    key = conn.get_server_host_key()
    if key is None:
        raise StoreRefused(f"{server}: the server showed no host key")
    host = server.host if server.port == 22 else f"[{server.host}]:{server.port}"
    line = f"{host} {key.export_public_key('openssh').decode().strip()}\n"
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    with open(known_hosts, "a", encoding="utf-8") as out:
        out.write(line)
    log.warning(
        "sftp.host_key_trusted_on_first_use",
        server=str(server),
        fingerprint=key.get_fingerprint(),
        known_hosts=str(known_hosts),
        reason="SFTP_TRUST_UNKNOWN_HOST_KEY is on: this key was accepted unseen and is now "
        "trusted; check its fingerprint with the server's owner",
    )
