"""Opening the connection: the server proves its host key against known_hosts (or, only when a
setting says so, is trusted on first use, loudly), then we prove who we are with what the
settings give, and nothing else (no agent, no ~/.ssh/config)."""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass

import asyncssh

from ..store import StoreRefused
from .batched_session import start_batched_sftp
from .coalescing import CoalescingTunnel
from .location import Server
from .lost import Lost
from .trust import Credentials, knows, remember

CONNECT_TIMEOUT_SECONDS = 15.0
# A server that stops answering is noticed within about a minute, not at the kernel's TCP
# timeout.
KEEPALIVE_SECONDS = 15.0
# Ciphers asked for, best first: AES-GCM before chacha20-poly1305 (OpenSSH's own first choice).
# Both are authenticated and current; asyncssh encrypts every packet in Python, and its
# chacha20-poly1305 builds five cipher contexts a packet where AES-GCM makes one call (a third
# of the CPU of a run of small files). The CTR ciphers are there for older servers.
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


@dataclass(frozen=True, slots=True)
class Session:
    """One connection, its SFTP session, and an event set once the connection is gone."""

    conn: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient
    lost: Lost


class _Watched(asyncssh.SSHClient):
    """Tells when the connection closes: asyncssh leaves a request sent on a session that was
    already cleaned up waiting for ever, so every operation also waits on this."""

    def __init__(self) -> None:
        self.lost = Lost()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set(exc)


def _private_key(c: Credentials) -> asyncssh.SSHKey:
    """The key file read (and decrypted) before anything connects: a key that cannot be used
    is a refusal in one line, not a crash."""
    try:
        return asyncssh.read_private_key(str(c.key_file), c.key_passphrase)
    except asyncssh.KeyEncryptionError as exc:
        raise StoreRefused(
            f"SFTP_KEY_FILE={c.key_file}: SFTP_KEY_PASSPHRASE does not decrypt the key ({exc})"
        ) from exc
    except asyncssh.KeyImportError as exc:
        hint = "" if c.key_passphrase else " (an encrypted key needs SFTP_KEY_PASSPHRASE)"
        raise StoreRefused(
            f"SFTP_KEY_FILE={c.key_file} cannot be used as a private key{hint}: {exc}"
        ) from exc
    except OSError as exc:
        raise StoreRefused(
            f"SFTP_KEY_FILE={c.key_file} cannot be read: {exc.strerror or exc}"
        ) from exc


async def connect(server: Server, c: Credentials) -> Session:
    """One SSH connection and its SFTP session, the host key checked first."""
    trusting = c.trust_unknown_host and not knows(c.known_hosts, server)
    if not trusting and not c.known_hosts.is_file():
        raise StoreRefused(
            f"{server}: SFTP_KNOWN_HOSTS={c.known_hosts} is not a file: the server's "
            "host key cannot be checked, so no connection is made"
        )
    options = asyncssh.SSHClientConnectionOptions(
        username=server.user,
        known_hosts=None if trusting else str(c.known_hosts),
        client_keys=[_private_key(c)] if c.key_file is not None else None,
        password=c.password,
        # Nothing from ~/.ssh or an agent: what the settings say, and only that.
        agent_path=None,
        config=[],
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        keepalive_interval=KEEPALIVE_SECONDS,
        encryption_algs=list(ENCRYPTION_ALGS),
    )
    try:
        watched = _Watched()
        conn, _ = await asyncssh.create_connection(
            lambda: watched,
            server.host,
            server.port,
            # Given here: create_connection's own default would replace one in the options.
            tunnel=CoalescingTunnel(),
            options=options,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        if knows(c.known_hosts, server):
            raise StoreRefused(
                f"{server}: the server's host key is not the one {c.known_hosts} "
                "holds for it (a reinstalled server, or someone in the middle): not "
                "connecting; check the key with the server's owner, then update the "
                "known_hosts file"
            ) from exc
        raise StoreRefused(
            f"{server}: the server's host key is not in {c.known_hosts}: not "
            "connecting; add it (ssh-keyscan, its fingerprint checked with the server's "
            "owner), or set SFTP_TRUST_UNKNOWN_HOST_KEY=true once to record it"
        ) from exc
    except asyncssh.PermissionDenied as exc:
        raise StoreRefused(
            f"{server}: the server refused our credentials (SFTP_KEY_FILE or SFTP_PASSWORD)"
        ) from exc
    except TimeoutError as exc:  # asyncssh's connect_timeout (its text is empty)
        raise TimeoutError(
            errno.ETIMEDOUT, f"connecting timed out after {CONNECT_TIMEOUT_SECONDS:g}s"
        ) from exc
    except (asyncssh.DisconnectError, OSError) as exc:
        # The store names the server: the reason only.
        raise ConnectionError(f"connecting failed: {str(exc) or type(exc).__name__}") from exc
    if trusting:
        remember(c.known_hosts, server, conn)
    try:
        # Bounded as the connection is: a server that dies while the session starts must not
        # leave it waiting.
        sftp = await asyncio.wait_for(
            start_batched_sftp(conn, path_errors="surrogateescape"), CONNECT_TIMEOUT_SECONDS
        )
    except TimeoutError as exc:
        conn.close()
        raise TimeoutError(
            errno.ETIMEDOUT, f"the SFTP session did not start within {CONNECT_TIMEOUT_SECONDS:g}s"
        ) from exc
    except BaseException:
        conn.close()
        raise
    return Session(conn, sftp, watched.lost)
