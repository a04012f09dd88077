"""Why a request to the ERP failed, told apart and named by what the operator can change: the
API's certificate that cannot be verified (advice by cause), our client certificate refused, a
connection closed where a client certificate was wanted, and the proxy's refusals and failures.
The names are the connector's (``TlsNames``: the description's keys, or ``CLIENT_API_*``)."""

from __future__ import annotations

import os
import ssl
import urllib.request

import httpx

from tracos_sync.logs import redact_text, uri_secrets

from .transport_spec import DESCRIBED, TlsNames

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


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


def reason(exc: BaseException) -> str:
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
            said = found.verify_message or reason(found)
            return (
                f"the API's certificate cannot be verified ({said}): "
                f"{_verification_advice(found, names)}"
            )
        if isinstance(found, ssl.SSLError) and found.reason in _CLIENT_CERT_REFUSED:
            return (
                f"the API refuses our client certificate ({reason(found)}): check "
                f"{names.cert} and {names.key}"
            )
        found = found.__cause__ or found.__context__
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
