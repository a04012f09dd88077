"""The folder connector with its folders on an SFTP server: one ``SftpStore`` (one connection)
shared by the integration's source and sink, closed when both are."""

from __future__ import annotations

import contextlib
from pathlib import PurePosixPath

from pydantic import SecretStr

from tracos_sync.config import connector_settings
from tracos_sync.domain.ports import ConnectorConfig, ConnectorContext, HealthCheck, Owned
from tracos_sync.mapping import RecordMapping

from ...resolve import resolve_mapping
from ..store import StoreRefused
from .settings import SftpFolderSettings
from .sink import SftpSink
from .source import SftpSource
from .store import SftpStore
from .trust import Credentials, knows


class SftpConnector:
    """The client ERP reached through folders of JSON files on an SFTP server."""

    def __init__(self, settings: SftpFolderSettings, mapping: RecordMapping) -> None:
        self.settings = settings
        self.mapping = mapping
        self._locations = settings.locations()
        self._server = self._locations["DATA_INBOUND_DIR"].server
        self._credentials = Credentials(
            known_hosts=settings.sftp_known_hosts.expanduser(),
            key_file=settings.sftp_key_file,
            key_passphrase=_revealed(settings.sftp_key_passphrase),
            password=_revealed(settings.sftp_password),
            trust_unknown_host=settings.sftp_trust_unknown_host_key,
        )
        self._store = SftpStore(
            self._server,
            self._credentials,
            retry_seconds=settings.sftp_retry_seconds,
            request_seconds=settings.sftp_request_seconds,
        )
        self._users = 0

    def source(self, context: ConnectorContext) -> SftpSource:
        self._users += 1
        return SftpSource(self._store, self.settings, self.mapping, self._closed, context.dry_run)

    def sink(self, context: ConnectorContext) -> SftpSink:
        self._users += 1
        return SftpSink(
            self._store,
            self.settings,
            self.mapping,
            self._closed,
            dry_run=context.dry_run,
            lock_timeout=context.lock_timeout_seconds,
        )

    async def _closed(self) -> None:
        self._users -= 1
        if self._users <= 0:
            await self._store.close()

    def describe(self) -> dict[str, str]:
        return {
            "connector": "files",
            "inbound": str(self._locations["DATA_INBOUND_DIR"]),
            "outbound": str(self._locations["DATA_OUTBOUND_DIR"]),
        }

    def secrets(self) -> list[str]:
        return self.settings.secrets()

    def owned(self) -> Owned:
        return Owned(endpoints={name: str(loc) for name, loc in self._locations.items()})

    async def health(self, context: ConnectorContext) -> list[HealthCheck]:
        """The connection (the host key verified), each folder's permissions (listed, a probe
        file created and removed), and the extensions the guarantees rest on."""
        # Its own connection, tried once: a check answers at once, it does not wait out an
        # outage as a run does.
        store = SftpStore(
            self._server,
            self._credentials,
            retry_seconds=0,
            request_seconds=self.settings.sftp_request_seconds,
        )
        server = store.describe()
        known_hosts = self.settings.sftp_known_hosts
        known = knows(self._credentials.known_hosts, self._server)
        try:
            await store.connect()
        except (StoreRefused, OSError) as exc:
            return [HealthCheck("sftp server", False, str(exc))]
        checks = [
            HealthCheck(
                "sftp server",
                True,
                f"{server}: connected, host key matches {known_hosts}"
                if known
                # Nothing was matched: the key was taken as shown (the warning names it).
                else f"{server}: connected, host key was not in {known_hosts}: trusted on "
                "first use and added there (SFTP_TRUST_UNKNOWN_HOST_KEY); check its "
                "fingerprint with the server's owner",
            )
        ]
        try:
            usable = []
            for name, location in self._locations.items():
                check = await _folder_check(store, name, location.path)
                checks.append(check)
                if check.ok and "readable and writable" in check.detail:
                    usable.append(location.path)
            if usable:  # the extensions tried where a probe file may be made
                missing = await store.missing_extensions(usable[-1])
                checks.append(
                    HealthCheck(
                        "sftp extensions",
                        "posix-rename@openssh.com" not in missing,
                        f"missing: {', '.join(missing)}"
                        + (
                            " (outbound files could not be replaced in one step: outbound is "
                            "refused; inbound needs no posix-rename)"
                            if "posix-rename@openssh.com" in missing
                            else ""
                        )
                        if missing
                        else "posix-rename@openssh.com and fsync@openssh.com offered",
                    )
                )
        except OSError as exc:
            checks.append(HealthCheck("sftp folders", False, str(exc)))
        finally:
            await store.close()
        return checks


async def _folder_check(store: SftpStore, name: str, path: PurePosixPath) -> HealthCheck:
    label = name.removeprefix("DATA_").removesuffix("_DIR").lower() + " folder"
    try:
        entries = await store.scan(path)
    except FileNotFoundError:
        return await _creatable_check(store, label, path)
    except OSError as exc:
        return HealthCheck(label, False, f"{path} cannot be listed: {exc}")
    try:
        await _probe(store, path)
    except OSError as exc:
        return HealthCheck(label, False, f"{path} cannot be written: {exc}")
    return HealthCheck(label, True, f"{path} is readable and writable ({len(entries)} entries)")


async def _creatable_check(store: SftpStore, label: str, path: PurePosixPath) -> HealthCheck:
    """A missing folder is made by the run (with its missing parents): so the nearest folder
    that exists must take a new entry, as a probe file made and removed there shows."""
    for parent in path.parents:
        try:
            found = await store.stat(parent)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return HealthCheck(label, False, f"{path} does not exist, and {parent}: {exc}")
        break
    else:  # pragma: no cover - the root always exists
        return HealthCheck(label, False, f"{path} does not exist, nor does any parent")
    cannot = f"{path} does not exist and cannot be created"
    if found.kind == "file":  # a link may lead to a folder: the probe tells
        return HealthCheck(label, False, f"{cannot}: {parent} is not a folder")
    try:
        await _probe(store, parent)
    except OSError as exc:
        return HealthCheck(label, False, f"{cannot}: {parent} cannot be written ({exc})")
    return HealthCheck(label, True, f"{path} does not exist yet; it will be created in {parent}")


async def _probe(store: SftpStore, folder: PurePosixPath) -> None:
    """A probe file created in ``folder`` and removed: ``OSError`` when it cannot be."""
    probe = folder / ".tracos-check.probe"
    await store.create_exclusive(probe, b"")
    with contextlib.suppress(OSError):
        await store.unlink(probe)


def _revealed(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def create(config: ConnectorConfig) -> SftpConnector:
    settings = connector_settings(SftpFolderSettings, config)
    return SftpConnector(settings, resolve_mapping(config))
