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
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from tests.server import ROOT, free_port
from tests.support.process import ServerProcess, greets, start_on_a_port

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


@dataclass
class Sshd:
    """One OpenSSH server. ``workdir`` holds its config, keys, log and the served folder."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sshd-")))
    account: pwd.struct_passwd = field(default_factory=server_account)
    running: ServerProcess | None = None
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
        """Start and wait until it greets; a port taken by someone else is traded for another
        on the first start only (tests/support/process.py)."""
        start_on_a_port(
            lambda: self._start(timeout), self._trade_port, may_trade=not self.started_once
        )
        self.started_once = True
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the listener and every session, SIGKILL if slow."""
        if self.running is not None:
            self.running.stop(timeout, send=self._to_all)

    def kill(self) -> None:
        """SIGKILL to the listener and every session: connections drop mid-operation."""
        if self.running is not None:
            self.running.kill(send=self._to_all)

    def _to_all(self, sig: int) -> None:
        """The listener and every session (each in a session of its own, see ``sessions``)."""
        for pid in [*self.sessions(), *([self.running.pid] if self.running else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def sessions(self) -> list[int]:
        """The processes serving connections: sshd forks one per connection, which calls
        setsid() (so a signal to the listener's group misses it), and that one forks the
        session's own; found by their parents in /proc."""
        if self.running is None:
            return []
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                # The command may hold spaces and parentheses: the parent follows the last ')'.
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
        found, todo = [], list(children.get(self.running.pid, []))
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += children.get(pid, [])
        return found

    def has_unread_requests(self) -> bool:
        """Whether bytes a client sent wait unread on one of the server's connections (its
        receive queue in /proc/net/tcp): with its sessions stopped, a request is waiting."""
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            local, state, queues = line.split()[1], line.split()[3], line.split()[4]
            unread = int(queues.partition(":")[2], 16)
            if int(local.partition(":")[2], 16) == self.port and state == "01" and unread:
                return True
        return False

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

    def _start(self, timeout: float) -> None:
        root = os.geteuid() == 0
        self.running = ServerProcess.launch(
            "sshd",
            [str(sshd_binary()), "-D", "-e", "-f", str(self.config)],
            self.log,
            cwd=self.workdir,
            env=server_environ(),
            user=self.account.pw_uid if root else None,
            group=self.account.pw_gid if root else None,
            extra_groups=[] if root else None,
        )
        running, greeted = self.running, greets(self.port, b"SSH-2.0-")
        running.wait_until_ready(
            lambda: running.listens_on(self.port) and greeted(),
            timeout,
            port_taken="Address already in use",
        )

    def _trade_port(self) -> None:
        self.port = free_port()
        self._write_config()
        self.known_hosts.write_text(self.known_hosts_line(self.host_key))


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
        assert by_hand.running is not None
        with contextlib.suppress(KeyboardInterrupt):
            by_hand.running.process.wait()
