"""Settings of the folder transport when its folders are on an SFTP server."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pydantic import Field, SecretStr, field_validator, model_validator

from tracos_sync.config import EnvSettings, load_settings
from tracos_sync.domain.ports import ConnectorConfig

from ..settings import FileRules
from .location import Location, is_sftp, parse_location

FOLDER_SETTINGS = (
    "DATA_INBOUND_DIR",
    "DATA_PROCESSED_DIR",
    "DATA_REJECTED_DIR",
    "DATA_OUTBOUND_DIR",
)


class SftpFolderSettings(FileRules):
    """The folder connector with its folders on an SFTP server: `DATA_INBOUND_DIR` and
    `DATA_OUTBOUND_DIR` given as `sftp://user@host:port/path`."""

    data_inbound_dir: str
    """`sftp://user@host:port/path`: the client's inbound folder on the SFTP server (an absolute
    path there; port 22 when left out)."""
    data_outbound_dir: str
    """`sftp://user@host:port/path`: where TracOS work orders are written, on the same server."""
    data_processed_dir: str | None = None
    """Archive of applied files, on the same server. Unset: `<inbound>/processed`."""
    data_rejected_dir: str | None = None
    """Quarantine, each file beside its `<name>.error.json`, on the same server. Unset:
    `<inbound>/rejected`."""
    sftp_known_hosts: Path = Path("~/.ssh/known_hosts")
    """The known_hosts file holding the server's host key (OpenSSH format, `[host]:port` for a
    port other than 22). A server whose key is not there, or differs, is refused."""
    sftp_trust_unknown_host_key: bool = False
    """Trust on first use: a server that `SFTP_KNOWN_HOSTS` does not name yet is accepted and its
    key added there, with a warning naming its fingerprint. A key that differs from a known one
    is still refused. Off by default: turn on only to record a key you then check."""
    sftp_key_file: Path | None = None
    """Our private key file (OpenSSH or PEM). Give this or `SFTP_PASSWORD`."""
    sftp_key_passphrase: SecretStr | None = None
    """The key file's passphrase, if it has one (from the environment; never printed)."""
    sftp_password: SecretStr | None = None
    """The account's password, when the server takes one (from the environment; never
    printed)."""
    sftp_retry_seconds: float = Field(30.0, ge=0, le=86_400)
    """Time budget for reconnecting when the server cannot be reached or drops the connection,
    before the direction gives up with exit 1. It counts from an operation's first failure, not
    from its start (that failure may itself have waited `SFTP_REQUEST_SECONDS`), and a failure
    on an open connection always gets one try on a new one, even with 0: an outage costs up to
    this, plus the failed wait, plus the last try's own (connecting is bounded at 15 s)."""
    sftp_request_seconds: float = Field(60.0, gt=0, le=3600)
    """How long one SFTP operation (a listing, a whole file's read or write, a rename) may wait
    for the server's answers before the connection counts as dead: it is closed and opened
    again, within `SFTP_RETRY_SECONDS` counted from then. A server-side sftp process that stops
    answering (while the SSH connection itself stays up) would otherwise stall a run for ever."""
    sftp_parallel_files: int = Field(16, ge=1, le=256)
    """Files in flight at once on the one connection (outbound writes, archive moves): requests
    are pipelined so that the round trip is paid once per wave, not once per file."""

    sftp_lock_stale_seconds: float = Field(60.0, ge=4, le=3600)
    """The outbound folder's lock (the folder `.tracos-outbound.lock` there) not refreshed for
    this long, by the server's clock, belongs to an instance that died or froze, and is taken
    over. Its holder refreshes it every quarter of this and writes nothing once half of it has
    passed since its last refresh (a pause, a slow server): so a crashed instance holds outbound
    up for at most this long (others defer past `LOCK_TIMEOUT_SECONDS`), and the server's clock
    may not jump forward by more than half of it. The holder writes its own value in the lock,
    and a taker waits the larger of its own and the holder's: instances set differently never
    take a live lock over."""

    @field_validator("sftp_key_file", "sftp_key_passphrase", "sftp_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``SFTP_KEY_FILE=`` (a line a template leaves blank) means not given, not the
        current folder."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _same_server(self) -> SftpFolderSettings:
        for setting, value in (
            ("DATA_PROCESSED_DIR", self.data_processed_dir),
            ("DATA_REJECTED_DIR", self.data_rejected_dir),
            ("DATA_OUTBOUND_DIR", self.data_outbound_dir),
        ):
            if value is not None and not is_sftp(value):
                raise ValueError(
                    f"DATA_INBOUND_DIR is on an SFTP server, so {setting} must be too "
                    f"(sftp://…, the same server): got {value!r}"
                )
        locations = self.locations()
        servers = {location.server for location in locations.values()}
        if len(servers) > 1:
            raise ValueError(
                "the SFTP folders must be on one server, reached as one user: got "
                + ", ".join(sorted(str(server) for server in servers))
            )
        if self.sftp_key_file is None and self.sftp_password is None:
            raise ValueError("SFTP folders need SFTP_KEY_FILE or SFTP_PASSWORD")
        overlap = _overlap({name: loc.path for name, loc in locations.items()})
        if overlap is not None:
            raise ValueError(overlap)
        return self

    def locations(self) -> dict[str, Location]:
        """Every folder, by setting name; processed/ and rejected/ under inbound when unset."""
        inbound = parse_location(self.data_inbound_dir)
        return {
            "DATA_INBOUND_DIR": inbound,
            "DATA_PROCESSED_DIR": _or_under(self.data_processed_dir, inbound, "processed"),
            "DATA_REJECTED_DIR": _or_under(self.data_rejected_dir, inbound, "rejected"),
            "DATA_OUTBOUND_DIR": parse_location(self.data_outbound_dir),
        }

    def secrets(self) -> list[str]:
        return [
            secret.get_secret_value()
            for secret in (self.sftp_password, self.sftp_key_passphrase)
            if secret is not None and secret.get_secret_value()
        ]


def _or_under(value: str | None, inbound: Location, name: str) -> Location:
    if value is None:
        return Location(inbound.server, inbound.path / name)
    return parse_location(value)


def _overlap(paths: dict[str, PurePosixPath]) -> str | None:
    """Why these server folders cannot be used together: each its own, none inside another,
    but processed/ and rejected/ directly under inbound (inbound reads no subfolder)."""
    may_nest = {
        ("DATA_PROCESSED_DIR", "DATA_INBOUND_DIR"),
        ("DATA_REJECTED_DIR", "DATA_INBOUND_DIR"),
    }
    names = list(paths)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pa, pb = paths[a], paths[b]
            if pa == pb:
                return f"{a} and {b} are the same folder on the server ({pa})"
            for inner, outer in ((a, b), (b, a)):
                if paths[outer] in paths[inner].parents and not (
                    (inner, outer) in may_nest and paths[inner].parent == paths[outer]
                ):
                    return f"{inner} ({paths[inner]}) lies inside {outer} ({paths[outer]})"
    return None


class _FolderNames(EnvSettings):
    """The folder settings alone, as given (to see which transport they name)."""

    data_inbound_dir: str | None = None
    data_outbound_dir: str | None = None


def folders_on_sftp(config: ConnectorConfig) -> bool:
    """Whether the configuration puts the inbound or outbound folder on an SFTP server."""
    if config.settings is not None:
        values = [value for key, value in config.settings.items() if key.upper() in FOLDER_SETTINGS]
    else:
        given = load_settings(_FolderNames, config.env_file)
        values = [given.data_inbound_dir, given.data_outbound_dir]
    return any(is_sftp(value) for value in values)
