"""What ``check`` and the metrics say of how the ERP is reached: the trust, our client certificate
(its subject and expiry: a warning within ``tls.cert_warning_days``, a failure once expired), a
private key others may read, and the proxy (its address without credentials)."""

from __future__ import annotations

from datetime import datetime

from tracos_sync.domain.ports import CertificateExpiry, HealthCheck
from tracos_sync.logs import redact_text

from .transport import client_certificate, key_too_open
from .transport_spec import TlsSpec

DAY = 86_400.0


def certificate_expiry(tls: TlsSpec, now: datetime) -> CertificateExpiry | None:
    certificate = client_certificate(tls)
    if certificate is None:
        return None
    left = certificate.seconds_left(now)
    return CertificateExpiry(left, left < tls.cert_warning_days * DAY)


def transport_checks(tls: TlsSpec, proxy: str | None, now: datetime) -> list[HealthCheck]:
    trusted = "the system's CAs" if tls.system_ca else "only tls.ca"
    if tls.ca is not None and tls.system_ca:
        trusted += f" and {tls.ca}"
    elif tls.ca is not None:
        trusted += f" ({tls.ca})"
    checks = [HealthCheck("client TLS", True, f"trusts {trusted}; verification always on")]
    checks += _certificate_checks(tls, now)
    routed = (
        f"through {redact_text(proxy)} (proxy)"
        if proxy is not None
        else "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY from the environment, if set"
    )
    return [*checks, HealthCheck("client proxy", True, routed)]


def _certificate_checks(tls: TlsSpec, now: datetime) -> list[HealthCheck]:
    if tls.cert is None:
        return []
    certificate = client_certificate(tls)
    if certificate is None:
        return [HealthCheck("client certificate", False, f"tls.cert: {tls.cert} is not PEM")]
    left = certificate.seconds_left(now)
    until = f"{certificate.subject}, valid until {certificate.not_after:%Y-%m-%d %H:%M} UTC"
    if left <= 0:
        found = HealthCheck("client certificate", False, f"tls.cert: {until}: expired, replace it")
    elif left < tls.cert_warning_days * DAY:
        found = HealthCheck(
            "client certificate",
            True,
            f"tls.cert: {until}: expires in {left / DAY:.1f} days (within "
            f"tls.cert_warning_days, {tls.cert_warning_days}): renew it",
            warning=True,
        )
    else:
        found = HealthCheck("client certificate", True, f"{until} ({left / DAY:.0f} days left)")
    checks = [found]
    too_open = key_too_open(tls)
    if too_open is not None:
        checks.append(HealthCheck("client key", True, too_open, warning=True))
    return checks
