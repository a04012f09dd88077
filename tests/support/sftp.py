"""Helpers of the SFTP transport's tests: the CLI's settings for folders on a test's sshd, a
store on it, client files dropped in its inbound folder."""

from __future__ import annotations

from pathlib import Path

from tests.builders import aged, write_json
from tests.support.sshd import Sshd
from tracos_sync.connectors.client_erp.files.sftp.location import Server
from tracos_sync.connectors.client_erp.files.sftp.store import SftpStore
from tracos_sync.connectors.client_erp.files.sftp.trust import Credentials


def sftp_store(sshd: Sshd, retry_seconds: float = 5.0, request_seconds: float = 60.0) -> SftpStore:
    return SftpStore(
        Server(sshd.user, "127.0.0.1", sshd.port),
        Credentials(sshd.known_hosts, key_file=sshd.client_key_file),
        retry_seconds=retry_seconds,
        request_seconds=request_seconds,
    )


def sftp_settings(sshd: Sshd, **more: str) -> dict[str, str]:
    """The CLI's environment for folders in/ and out/ on the server, key auth."""
    return {
        "DATA_INBOUND_DIR": sshd.url("in"),
        "DATA_OUTBOUND_DIR": sshd.url("out"),
        "SFTP_KNOWN_HOSTS": str(sshd.known_hosts),
        "SFTP_KEY_FILE": str(sshd.client_key_file),
        "SFTP_RETRY_SECONDS": "5",
        **more,
    }


def client_file(sshd: Sshd, name: str, record: object) -> Path:
    """A client file in the server's inbound folder, owned by the SFTP account, dated as one
    its writer finished a while ago."""
    inbound = sshd.served / "in"
    if not inbound.exists():
        inbound.mkdir()
        sshd.give_to_server(inbound)
    path = aged(write_json(inbound / name, record))
    sshd.give_to_server(path)
    return path


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
