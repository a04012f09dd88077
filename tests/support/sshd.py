"""Debian's OpenSSH server for the tests (`make tools-ssh` unpacks it into .tools/ssh): one
``sshd -D -e -f <own config>`` per server, on a free loopback port, with its own host key, one
authorized client key made here, and a served folder. Never the machine's sshd, its /etc/ssh
config or its host keys.

How it runs as root in a container, and why:
- sshd started as root insists on its privilege-separation user (``sshd``) and chroot folder
  (``/run/sshd``, compiled in); neither exists in a slim image, and creating them would change
  the machine. Started as an unprivileged user it needs neither (OpenSSH runs unprivileged
  without privilege separation's chroot), so as root the server is started as ``nobody``; as
  any other user, as that user. An unprivileged sshd can only log in the user it runs as: that
  is the SFTP account.
- It also makes the permission tests honest: root reads a 0000 file, ``nobody`` does not.
- ``nobody``'s shell is nologin, which would refuse to run the ``sftp-server`` program (sshd
  starts a subsystem through the user's shell), so the subsystem is ``internal-sftp``: the same
  sftp-server code inside sshd, the configuration SFTP-only drop boxes use.
- ``UsePAM yes``: without PAM, sshd reads a ``*`` or ``!`` shadow entry as a locked account;
  with PAM (the distribution's default stack) key logins are allowed, as on a stock server.
- Every file the server reads (config, host key, authorized keys) and the served folder live in
  a folder of its own under the system temp dir, owned by the server's user: pytest's own temp
  folders are 0700 root, which ``nobody`` cannot enter.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from tests.server import ROOT, free_port

__all__ = ["Sshd", "running_sshd", "sshd_binary"]

UNPACKED = ROOT / ".tools/ssh"
UNPRIVILEGED = "nobody"


def sshd_binary() -> Path:
    """sshd as unpacked by ``make tools-ssh`` (``SSHD_BIN`` names another)."""
    binary = Path(os.environ.get("SSHD_BIN", UNPACKED / "usr/sbin/sshd"))
    if not binary.exists():
        raise RuntimeError(f"sshd not found at {binary}: run `make tools-ssh` or set SSHD_BIN")
    return binary


def server_environ() -> dict[str, str]:
    """The unpacked libraries first (libwrap0 is not in a slim image)."""
    libraries = [str(p) for p in sorted(UNPACKED.glob("usr/lib/*-linux-gnu")) if p.is_dir()]
    inherited = os.environ.get("LD_LIBRARY_PATH")
    return {
        "PATH": "/usr/bin:/bin",
        "LD_LIBRARY_PATH": os.pathsep.join([*libraries, *([inherited] if inherited else [])]),
    }


def server_account() -> pwd.struct_passwd:
    """The account sshd runs as and serves: ``nobody`` when we are root, else ourselves."""
    if os.geteuid() == 0:
        return pwd.getpwnam(UNPRIVILEGED)
    return pwd.getpwuid(os.geteuid())


class PortTaken(RuntimeError):
    pass


@dataclass
class Sshd:
    """One OpenSSH server. ``workdir`` holds its config, keys, log and the served folder."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sshd-")))
    account: pwd.struct_passwd = field(default_factory=server_account)
    process: subprocess.Popen[bytes] | None = None
    started_once: bool = False
    # Options of the sftp subsystem (sftp-server(8)); ``-P fsync@openssh.com`` makes a server
    # that refuses that extension.
    sftp_options: str = ""

    def __post_init__(self) -> None:
        self.workdir.chmod(0o755)
        self.served.mkdir(exist_ok=True)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self._write_host_key()
        self.client_key.write_private_key(str(self.client_key_file))
        self.client_key_file.chmod(0o600)
        self.client_key.write_public_key(str(self.workdir / "authorized_keys"))
        self.known_hosts.write_text(self.known_hosts_line(self.host_key))
        self._write_config()
        # The server reads its files and serves its folder as its own user; the client's key
        # and known_hosts stay ours (sshd never reads them).
        for path in (self.workdir, self.served, self.workdir / "host_key"):
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
        for path in (self.config, self.workdir / "authorized_keys"):
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    @property
    def user(self) -> str:
        return self.account.pw_name

    @property
    def served(self) -> Path:
        """The folder SFTP paths are relative to (the session starts there)."""
        return self.workdir / "served"

    @property
    def config(self) -> Path:
        return self.workdir / "sshd_config"

    @property
    def log(self) -> Path:
        return self.workdir / "sshd.log"

    @property
    def client_key_file(self) -> Path:
        return self.workdir / "client_key"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file that trusts this server's host key, and only it."""
        return self.workdir / "known_hosts"

    def url(self, path: str = "") -> str:
        """``sftp://user@127.0.0.1:port/<served>/<path>``: the absolute path on the server."""
        target = self.served / path if path else self.served
        return f"sftp://{self.user}@127.0.0.1:{self.port}{target}"

    def known_hosts_line(self, key: asyncssh.SSHKey) -> str:
        public = key.export_public_key("openssh").decode().strip()
        return f"[127.0.0.1]:{self.port} {public}\n"

    def give_to_server(self, *paths: Path) -> None:
        """Files a test made (as root) that the server must be able to rename or remove."""
        for path in paths:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def change_host_key(self) -> None:
        """A new host key for the server (as after a reinstall, or a machine in the middle);
        known_hosts still names the old one. Takes effect at the next start."""
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self._write_host_key()
        os.chown(self.workdir / "host_key", self.account.pw_uid, self.account.pw_gid)

    def _write_host_key(self) -> None:
        """0600: sshd ignores a private key others can read."""
        path = self.workdir / "host_key"
        self.host_key.write_private_key(str(path))
        path.chmod(0o600)

    def start(self, timeout: float = 15.0) -> Sshd:
        """Start and wait until it greets. A port taken by someone else is traded for another
        on the first start only: a restart keeps its port, the clients know it."""
        while True:
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(
                    [str(sshd_binary()), "-D", "-e", "-f", str(self.config)],
                    cwd=self.workdir,
                    env=server_environ(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # Its own session: a signal to the test's group never reaches it.
                    start_new_session=True,
                    user=self.account.pw_uid if os.geteuid() == 0 else None,
                    group=self.account.pw_gid if os.geteuid() == 0 else None,
                    extra_groups=[] if os.geteuid() == 0 else None,
                )
            try:
                self._wait_until_ready(timeout)
            except PortTaken:
                if self.started_once:
                    raise
                self.port = free_port()
                self._write_config()
                self.known_hosts.write_text(self.known_hosts_line(self.host_key))
                continue
            self.started_once = True
            return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the listener and every session, SIGKILL if slow."""
        if self.process is None or self.process.poll() is not None:
            return
        for pid in [*self.sessions(), self.process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL to the listener and every session: connections drop mid-operation."""
        if self.process is not None:
            for pid in [*self.sessions(), self.process.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.wait()

    def sessions(self) -> list[int]:
        """The processes serving connections: sshd forks one per connection, which calls
        setsid() (so a signal to the listener's group misses it), and that one forks the
        session's own; found by their parents in /proc."""
        if self.process is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                # The command may hold spaces and parentheses: the parent follows the last ')'.
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
        found, todo = [], list(children.get(self.process.pid, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def restart(self) -> Sshd:
        self.stop()
        return self.start()

    def _write_config(self) -> None:
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.workdir / 'host_key'}",
                    "PidFile none",
                    f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
                    # The files are in a temp folder, not the account's home.
                    "StrictModes no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM yes",
                    f"AllowUsers {self.user}",
                    "AllowTcpForwarding no",
                    "X11Forwarding no",
                    f"Subsystem sftp internal-sftp -d {self.served} {self.sftp_options}".rstrip(),
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    def _wait_until_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                said = self.log.read_text(errors="replace")[-2000:]
                if "Address already in use" in said:
                    raise PortTaken(said)
                raise RuntimeError(f"sshd exited at start (code {self.process.returncode}): {said}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as probe,
            ):
                if probe.recv(64).startswith(b"SSH-2.0-"):
                    return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"sshd did not greet within {timeout:g}s: {self.log}")
            time.sleep(0.02)


@contextlib.contextmanager
def running_sshd(sftp_options: str = "") -> Iterator[Sshd]:
    """A server of one's own, stopped and its folder removed at the end."""
    server = Sshd(sftp_options=sftp_options)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


if __name__ == "__main__":
    # A server to look at by hand: `.venv/bin/python -m tests.support.sshd`, Ctrl-C to stop.
    with running_sshd() as by_hand:
        print(
            f"sshd serving {by_hand.url()} (key {by_hand.client_key_file}, "
            f"known_hosts {by_hand.known_hosts}, log {by_hand.log}); Ctrl-C stops it"
        )
        assert by_hand.process is not None
        with contextlib.suppress(KeyboardInterrupt):
            by_hand.process.wait()
