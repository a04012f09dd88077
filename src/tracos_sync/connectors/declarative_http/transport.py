"""How requests reach the ERP: TLS (``[tls]``: a private CA, a client certificate) and proxies
(``proxy``, or ``HTTPS_PROXY``/``NO_PROXY`` from the environment), as the connector's httpx
transport.

``ReloadingTransport`` holds an ``httpx.AsyncClient`` built for the files of the moment (httpx's
own proxy handling: ``trust_env`` for the environment's proxies, ``proxy`` for one of the
integration's, which then carries every request) and builds another when a file changes, checked
before each request (a ``stat`` of each): a rotated certificate, key, CA bundle or passphrase is
used by a running ``watch`` without a restart. The client it replaces keeps serving the requests
under way and is closed after the last one. A rotation that cannot be loaded (a key that no
longer matches its certificate, half written) keeps the last good one and is said once.

Failures of the handshake and of the proxy are told apart in ``transport_failures``; the
files and the proxy's address are checked at start-up here (``check_transport``), OpenSSL never
asked to prompt for a passphrase.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr

from tracos_sync.domain.errors import ConfigurationError

from .secret_files import SecretFile
from .transport_checks import key_too_open
from .transport_failures import PROXY_VARIABLES, reason
from .transport_spec import DESCRIBED, TlsNames, TlsSpec

log = structlog.get_logger("tracos_sync.http")


class TransportUnbuildable(ValueError):
    """A file of ``[tls]`` cannot be loaded; the message names its key, never a secret."""


class _KeyEncrypted(Exception):
    """Raised by the password callback of a key without a passphrase: OpenSSL asks for one only
    when the key is encrypted (without a callback it would prompt on the terminal and wait)."""


def _no_passphrase() -> str:
    raise _KeyEncrypted


def ssl_context(tls: TlsSpec, names: TlsNames = DESCRIBED) -> ssl.SSLContext:
    """The context for ``tls``: verification always on (hostname and chain), the system's CAs
    (httpx's: certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``) unless ``system_ca`` is
    false, ``ca`` added, our certificate loaded. OpenSSL never prompts for a passphrase."""
    if tls.system_ca:
        context = httpx.create_ssl_context(trust_env=True)
    else:
        # Hostname and chain verified, no CA loaded yet (only ``ca`` will be).
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if tls.ca is not None:
        try:
            if tls.ca.is_dir():
                context.load_verify_locations(capath=tls.ca)
            else:
                context.load_verify_locations(cafile=tls.ca)
        except (OSError, ssl.SSLError) as exc:
            raise TransportUnbuildable(f"{names.ca}: cannot load {tls.ca}: {reason(exc)}") from None
    if tls.cert is not None:
        passphrase = tls.key_passphrase
        keys = f"{names.cert}, {names.key}"
        try:
            context.load_cert_chain(
                tls.cert,
                tls.key,
                password=_no_passphrase if passphrase is None else passphrase.get_secret_value,
            )
        except _KeyEncrypted:
            raise TransportUnbuildable(
                f"{names.key}: the key is encrypted: set {names.key_passphrase}"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            if passphrase is not None and not _decrypts(tls.key or tls.cert, passphrase):
                raise TransportUnbuildable(
                    f"{names.key_passphrase}: does not decrypt the key {tls.key or tls.cert} "
                    "(the passphrase is not shown)"
                ) from None
            if passphrase is not None:
                keys += f", {names.key_passphrase}"
            raise TransportUnbuildable(
                f"{keys}: cannot load the client certificate {tls.cert} with its key: {reason(exc)}"
            ) from None
    return context


def _decrypts(key: Path, passphrase: SecretStr) -> bool:
    """Whether ``passphrase`` decrypts the encrypted private key in ``key`` (True when it cannot
    be told: the key is not encrypted, or not there; OpenSSL's failure then says why)."""
    try:
        data = key.read_bytes()
    except OSError:
        return True
    if b"ENCRYPTED" not in data:  # PKCS#8 "ENCRYPTED PRIVATE KEY", or "Proc-Type: 4,ENCRYPTED"
        return True
    try:
        serialization.load_pem_private_key(
            data, password=passphrase.get_secret_value().encode("utf-8")
        )
    except ValueError:
        return False
    except (TypeError, UnsupportedAlgorithm):
        return True
    return True


def _holds_a_private_key(ca: Path | None) -> bool:
    if ca is None or not ca.is_file():
        return False
    try:
        return b"PRIVATE KEY-----" in ca.read_bytes()
    except OSError:
        return False


def check_transport(
    tls: TlsSpec, proxy: str | None, where: str, names: TlsNames = DESCRIBED
) -> None:
    """At start-up: the files load and the proxy's address (the integration's, or the
    environment's) is one (``ConfigurationError`` beginning with ``where`` and naming the key
    otherwise); a private key others may read is warned about, on every run."""
    try:
        ReloadingTransport(tls, proxy, names)  # a client not opened: nothing to close
    except TransportUnbuildable as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    too_open = key_too_open(tls, names)
    if too_open is not None:
        log.warning("tls.key_readable", problem=too_open)
    if _holds_a_private_key(tls.ca):
        log.warning(
            "tls.ca_holds_a_key",
            problem=f"{names.ca}: {tls.ca} holds a private key: a CA bundle needs only "
            "certificates; remove the key (whoever may read the bundle may read it)",
        )


def _socks_proxy(proxy: str | None, names: TlsNames) -> str | None:
    """The setting that gives a SOCKS proxy (httpx needs a package we do not install), or
    None."""
    given = [(names.proxy, proxy or "")] if proxy is not None else []
    given += [
        (variable, os.environ.get(variable, ""))
        for name in PROXY_VARIABLES
        for variable in (name, name.lower())
    ]
    for setting, value in given:
        if value.strip().lower().startswith("socks"):
            return setting
    return None


@dataclass(slots=True)
class _Pool:
    client: httpx.AsyncClient
    active: int = 0
    retired: bool = False


class _Released(httpx.AsyncByteStream):
    """An answer's bytes as they come; closing it tells the transport the request is over."""

    def __init__(self, response: httpx.Response, done: Callable[[], Awaitable[None]]) -> None:
        self.response = response
        self.done = done
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_raw():
                yield chunk
        except ssl.SSLError as exc:  # as a request's: httpcore lets it by
            raise httpx.ReadError(str(exc), request=self.response.request) from exc

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.response.aclose()
        finally:
            await self.done()


class ReloadingTransport(httpx.AsyncBaseTransport):
    """Requests through a client built for ``tls`` and ``proxy``, built again when the TLS
    files change. Raises ``TransportUnbuildable`` when the files cannot be loaded now. An
    ``ssl.SSLError`` that httpcore lets by (an alert read after the handshake) is raised as the
    ``httpx.ReadError`` it is, its cause kept for ``tls_refusal``."""

    def __init__(self, tls: TlsSpec, proxy: str | None, names: TlsNames = DESCRIBED) -> None:
        self._tls = tls
        self._proxy = proxy
        self._names = names
        self._seen = self._identity()
        socks = _socks_proxy(proxy, names)
        if socks is not None:
            raise TransportUnbuildable(
                f"{socks}: a SOCKS proxy is not supported: give an HTTP proxy (http://), or "
                "unset it"
            )
        try:
            self._pool = _Pool(self._build())
        except (httpx.InvalidURL, ValueError) as exc:
            if isinstance(exc, TransportUnbuildable):
                raise
            # httpx's message quotes the part of the address it could not read: not shown.
            raise TransportUnbuildable(
                f"the proxy's address ({names.proxy}, or HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) "
                "is not a valid URL: percent-encode the special characters of a password (the "
                "value is not shown)"
            ) from None
        self._said: object = None  # the files' state whose reload failure was said
        self.builds = 1  # clients built, for tests and a log line

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = await self._current()
        pool.active += 1
        try:
            response = await pool.client.send(request, stream=True)
        except ssl.SSLError as exc:  # an alert read after the handshake: httpcore lets it by
            await self._release(pool)
            raise httpx.ReadError(str(exc), request=request) from exc
        except BaseException:
            await self._release(pool)
            raise

        async def done() -> None:
            await self._release(pool)

        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Released(response, done),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        self._pool.retired = True
        await self._pool.client.aclose()

    async def _current(self) -> _Pool:
        seen = self._identity()
        if seen == self._seen:
            return self._pool
        try:
            client = self._build()
        except TransportUnbuildable as exc:
            if self._said != seen:
                self._said = seen
                log.warning("tls.reload_failed", error=str(exc), kept="the files loaded before")
            return self._pool
        old, self._pool, self._seen = self._pool, _Pool(client), seen
        self.builds += 1
        log.info("tls.reloaded", files=[str(path) for path in self._tls.files()])
        old.retired = True
        if old.active == 0:  # else closed by the last request under way on it
            await old.client.aclose()
        return self._pool

    async def _release(self, pool: _Pool) -> None:
        pool.active -= 1
        if pool.retired and pool.active == 0:
            await pool.client.aclose()

    def _build(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            verify=ssl_context(self._tls, self._names),
            proxy=self._proxy,
            trust_env=True,
            follow_redirects=False,
        )

    def _identity(self) -> tuple[object, ...]:
        """What the SSL context was built from: each file's identity and time, the passphrase."""
        found: list[object] = []
        for path in self._tls.files():
            try:
                stat = os.stat(path)
                found.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
            except OSError:
                found.append(None)
        passphrase = self._tls.key_passphrase
        if isinstance(passphrase, SecretFile):
            found.append(passphrase.get_secret_value())
        return tuple(found)
