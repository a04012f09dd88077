"""What ``check`` and the metrics say of how the ERP is reached: the trust, our client certificate
(its subject and expiry: a warning within ``tls.cert_warning_days``, a failure once expired), a
private key others may read, and the proxy (its address without credentials)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from tracos_sync.domain.ports import CertificateExpiry, HealthCheck
from tracos_sync.logs import redact_text

from .transport_spec import DESCRIBED, TlsNames, TlsSpec

DAY = 86_400.0
# Permission bits of a key file that let others read it or anyone else change it (group read is
# allowed: Kubernetes' fsGroup shares a mounted secret with the pod's group).
_KEY_TOO_OPEN = 0o026


@dataclass(frozen=True, slots=True)
class Certificate:
    """Our client certificate, as ``check`` and the metrics tell of it."""

    subject: str
    not_after: datetime
    not_before: datetime

    def seconds_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds()


def client_certificate(tls: TlsSpec) -> Certificate | None:
    """The first certificate of ``tls.cert`` (ours; its chain follows), or None when unset or
    unreadable (loading it says why)."""
    if tls.cert is None:
        return None
    try:
        found = x509.load_pem_x509_certificates(Path(tls.cert).read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return None
    return Certificate(
        found.subject.rfc4514_string(),
        found.not_valid_after_utc.astimezone(UTC),
        found.not_valid_before_utc.astimezone(UTC),
    )


def key_too_open(tls: TlsSpec, names: TlsNames = DESCRIBED) -> str | None:
    """A warning when the private key's file may be read by others or changed by anyone but
    its owner; None when it is private enough (or there is no key)."""
    path = tls.key or tls.cert
    if path is None:
        return None
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None
    if not mode & _KEY_TOO_OPEN:
        return None
    setting = names.key if tls.key is not None else f"{names.cert} (which holds the key)"
    return (
        f"{setting}: {path} may be read or changed by others (mode {mode:04o}): make it "
        "readable by its owner (and group) only, such as chmod 600 (Kubernetes: defaultMode "
        "0400 or 0440)"
    )


def certificate_expiry(tls: TlsSpec, now: datetime) -> CertificateExpiry | None:
    certificate = client_certificate(tls)
    if certificate is None:
        return None
    left = certificate.seconds_left(now)
    return CertificateExpiry(left, left < tls.cert_warning_days * DAY)


def transport_checks(
    tls: TlsSpec, proxy: str | None, now: datetime, names: TlsNames = DESCRIBED
) -> list[HealthCheck]:
    trusted = "the system's CAs" if tls.system_ca else f"only {names.ca}"
    if tls.ca is not None and tls.system_ca:
        trusted += f" and {tls.ca}"
    elif tls.ca is not None:
        trusted += f" ({tls.ca})"
    checks = [HealthCheck("client TLS", True, f"trusts {trusted}; verification always on")]
    checks += _certificate_checks(tls, now, names)
    routed = (
        f"through {redact_text(proxy)} ({names.proxy})"
        if proxy is not None
        else "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY from the environment, if set"
    )
    return [*checks, HealthCheck("client proxy", True, routed)]


def _certificate_checks(tls: TlsSpec, now: datetime, names: TlsNames) -> list[HealthCheck]:
    if tls.cert is None:
        return []
    certificate = client_certificate(tls)
    if certificate is None:
        return [HealthCheck("client certificate", False, f"{names.cert}: {tls.cert} is not PEM")]
    left = certificate.seconds_left(now)
    until = f"{certificate.subject}, valid until {certificate.not_after:%Y-%m-%d %H:%M} UTC"
    if certificate.not_before > now:
        found = HealthCheck(
            "client certificate",
            False,
            f"{names.cert}: {certificate.subject}, not valid before "
            f"{certificate.not_before:%Y-%m-%d %H:%M} UTC: the API refuses it until then (or "
            "our clock is wrong)",
        )
    elif left <= 0:
        found = HealthCheck(
            "client certificate", False, f"{names.cert}: {until}: expired, replace it"
        )
    elif left < tls.cert_warning_days * DAY:
        found = HealthCheck(
            "client certificate",
            True,
            f"{names.cert}: {until}: expires in {left / DAY:.1f} days (within "
            f"{names.cert_warning_days}, {tls.cert_warning_days}): renew it",
            warning=True,
        )
    else:
        found = HealthCheck("client certificate", True, f"{until} ({left / DAY:.0f} days left)")
    checks = [found]
    too_open = key_too_open(tls, names)
    if too_open is not None:
        checks.append(HealthCheck("client key", True, too_open, warning=True))
    return checks
