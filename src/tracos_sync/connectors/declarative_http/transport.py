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

Failures of the handshake are told apart here (``tls_refusal``): an API certificate we cannot
verify, or our client certificate refused, are not worth retrying; the requester makes them
fatal for the run, naming the setting to change.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import structlog

from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.logs import redact_text, uri_secrets

from .secret_files import SecretFile
from .transport_checks import key_too_open
from .transport_spec import DESCRIBED, TlsNames, TlsSpec

log = structlog.get_logger("tracos_sync.http")

# OpenSSL's reasons for an alert the server sent about our certificate (or the lack of one).
_CLIENT_CERT_REFUSED = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "SSLV3_ALERT_HANDSHAKE_FAILURE",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)


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
            raise TransportUnbuildable(
                f"{names.ca}: cannot load {tls.ca}: {_reason(exc)}"
            ) from None
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
            if passphrase is not None:
                keys += f", {names.key_passphrase}"
            raise TransportUnbuildable(
                f"{keys}: cannot load the client certificate {tls.cert} with its key: "
                f"{_reason(exc)}"
            ) from None
    return context


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


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


# OpenSSL's X509_V_ERR_* codes whose advice is not "give the CA that signs it".
_NAME_MISMATCH = frozenset({62, 64})  # the host name, the IP address
_NO_ISSUER = frozenset({2, 20})  # unable to get the issuer certificate (locally)
_NOT_YET_VALID, _EXPIRED = 9, 10


def _verification_advice(found: ssl.SSLCertVerificationError, names: TlsNames) -> str:
    """What to change, by why the API's certificate could not be verified."""
    code = found.verify_code
    if code in _NAME_MISMATCH:
        return (
            f"the certificate is not issued for the host in {names.url}: use the name it is "
            "issued for (verification cannot be turned off)"
        )
    if code in (_NOT_YET_VALID, _EXPIRED):
        return (
            "the API's certificate is outside its validity period: the API must renew it (or "
            f"our clock is wrong; another {names.ca} would not help)"
        )
    if code in _NO_ISSUER:
        return (
            f"give the CA that signs it as {names.ca}: a bundle that reaches a root (an "
            "intermediate alone is not trusted), or a folder hashed by `openssl rehash` "
            "(verification cannot be turned off)"
        )
    return f"give the CA that signs it as {names.ca} (verification cannot be turned off)"


def tls_refusal(exc: BaseException, names: TlsNames = DESCRIBED) -> str | None:
    """Why a request failed in the TLS handshake, naming the setting to change; None when it
    did not (a network failure, worth retrying)."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        if isinstance(found, ssl.SSLCertVerificationError):
            said = found.verify_message or _reason(found)
            return (
                f"the API's certificate cannot be verified ({said}): "
                f"{_verification_advice(found, names)}"
            )
        if isinstance(found, ssl.SSLError) and found.reason in _CLIENT_CERT_REFUSED:
            return (
                f"the API refuses our client certificate ({_reason(found)}): check "
                f"{names.cert} and {names.key}"
            )
        found = found.__cause__ or found.__context__
    return None


PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


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


def environment_proxy_secrets() -> list[str]:
    """The credentials in the environment's proxy addresses (httpx reads them, in either case):
    never to be shown."""
    found: list[str] = []
    for name in PROXY_VARIABLES:
        for variable in (name, name.lower()):
            found += uri_secrets(os.environ.get(variable, ""))
    return found


def proxy_for(url: httpx.URL, proxy: str | None) -> str | None:
    """The proxy a request to ``url`` goes through: the integration's, or the environment's
    as httpx picks it (the scheme's, else ``ALL_PROXY``; none for a host in ``NO_PROXY``), for
    messages; None when it goes directly."""
    if proxy is not None:
        return proxy
    found = urllib.request.getproxies_environment()
    chosen = found.get(url.scheme) or found.get("all")
    if not chosen or bool(urllib.request.proxy_bypass(url.host)):
        return None
    return chosen


def proxy_hint(proxy: str, names: TlsNames = DESCRIBED) -> str:
    """What to add to a failure to connect, or an answer that never came, through ``proxy``."""
    return (
        f"through the proxy {redact_text(proxy)} ({names.proxy}, or HTTPS_PROXY, HTTP_PROXY or "
        "ALL_PROXY): check that it is up and its address (http:// for a proxy that does not "
        "speak TLS; NO_PROXY for the hosts to reach directly)"
    )


def proxy_refusal(exc: BaseException, names: TlsNames = DESCRIBED) -> str | None:
    """Why the proxy would not carry a request, when it refuses our credentials (407 to the
    ``CONNECT``) or refuses to carry it (403); None otherwise (a proxy that cannot reach the
    API is worth retrying)."""
    if isinstance(exc, httpx.ProxyError) and str(exc).startswith("407"):
        return proxy_credentials_refused(names)
    if isinstance(exc, httpx.ProxyError) and str(exc).startswith("403"):
        return (
            f"the proxy refuses to carry requests to this API (403 to CONNECT): ask for the "
            f"API's host to be allowed, or check {names.proxy}, or HTTPS_PROXY, HTTP_PROXY, "
            "ALL_PROXY and NO_PROXY"
        )
    return None


def proxy_credentials_refused(names: TlsNames = DESCRIBED) -> str:
    return (
        f"the proxy refuses our credentials (407): check the user and password in "
        f"{names.proxy}, or in HTTPS_PROXY, HTTP_PROXY or ALL_PROXY"
    )


def closed_hint(exc: httpx.TransportError, names: TlsNames = DESCRIBED) -> str:
    """What to add when an HTTPS server closed or reset the connection before answering: that
    is also how a server refuses a missing or unknown client certificate when its alert is lost
    (TLS 1.3 sends it after the handshake); still worth retrying, as any reset. Empty otherwise."""
    try:
        if exc.request.url.scheme != "https":
            return ""
    except RuntimeError:  # raised without its request: nothing to tell
        return ""
    found: BaseException | None = exc
    seen: set[int] = set()
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        if isinstance(found, ConnectionResetError | BrokenPipeError) or (
            isinstance(found, httpx.RemoteProtocolError) and "disconnected" in str(found)
        ):
            return (
                "the server closed the connection: an HTTPS API that requires a client "
                f"certificate does so without one it accepts ({names.cert}, {names.key})"
            )
        found = found.__cause__ or found.__context__
    return ""


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
