"""The OpenSSH server the SFTP tests run against (tests/support/sshd.py) is a real one: it
starts, it proves its host key (a client holding another key refuses it), and it serves files
with the OpenSSH extensions the SFTP transport relies on."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest

from tests.support.sshd import Sshd


async def _connect(sshd: Sshd, known_hosts: str) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1",
        sshd.port,
        username=sshd.user,
        client_keys=[str(sshd.client_key_file)],
        known_hosts=known_hosts,
    )


def test_the_server_serves_files_and_offers_the_openssh_extensions(sshd: Sshd) -> None:
    (sshd.served / "from-server.json").write_text('{"a": 1}')

    async def exchange() -> bytes:
        async with (
            await _connect(sshd, str(sshd.known_hosts)) as conn,
            conn.start_sftp_client() as sftp,
        ):
            async with sftp.open("from-server.json", "rb") as remote:
                read = await remote.read()
            async with sftp.open("to-server.json", "wb") as remote:
                await remote.write(b'{"b": 2}')
                await remote.fsync()
            await sftp.posix_rename("to-server.json", "renamed.json")
            return read

    read = asyncio.run(exchange())
    assert read == b'{"a": 1}'
    assert (sshd.served / "renamed.json").read_bytes() == b'{"b": 2}'


def test_a_client_that_knows_another_host_key_is_refused(sshd: Sshd) -> None:
    other = sshd.workdir / "other_known_hosts"
    other.write_text(sshd.known_hosts_line(asyncssh.generate_private_key("ssh-ed25519")))

    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_connect(sshd, str(other)))
