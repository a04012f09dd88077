"""How an API description says how the ERP is reached: the ``[tls]`` table (whom we trust, who we
are) and ``proxy``. Paths are checked at start-up (a missing file is an error naming its key);
the files are read by ``transport``, again whenever they change.

Verification of the server's certificate cannot be turned off: a private CA is trusted by giving
its certificate (``tls.ca``), which is what turning verification off is usually asked for, and an
API whose certificate cannot be verified is one whose answers we cannot tell from an attacker's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .environment import EnvSecret
from .secret_files import secret_values

_MODEL = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _exists(path: Path) -> Path:
    if not path.exists():
        raise ValueError(f"{path} does not exist (relative paths are from the working directory)")
    return path


def _a_file(path: Path) -> Path:
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    return path


ExistingPath = Annotated[Path, AfterValidator(_exists)]
ExistingFile = Annotated[Path, AfterValidator(_exists), AfterValidator(_a_file)]


class TlsSpec(BaseModel):
    """``[tls]``: the certificates of an HTTPS API (all unset: the system's CAs, no client
    certificate)."""

    model_config = _MODEL

    ca: ExistingPath | None = None
    """A CA bundle (a PEM file) or a folder of CA certificates (hashed, as `c_rehash` makes it)
    that signs the API's certificate: a company's private CA. Read again when it changes."""
    system_ca: bool = True
    """Whether the system's CAs are trusted too (`false`: only `ca`, which must then be set)."""
    cert: ExistingFile | None = None
    """Our client certificate (PEM; its chain after it), for an API that authenticates
    integrations by X.509. Read again when it changes."""
    key: ExistingFile | None = None
    """The client certificate's private key (PEM); unset: it is in the `cert` file. Warned
    about when others than its owner may read it."""
    key_passphrase: EnvSecret | None = None
    """The key's passphrase, as `${NAME}` or `file:/path`; unset: the key is not encrypted."""
    cert_warning_days: int = Field(default=30, ge=0, le=3_650)
    """`check` warns, and the metric `tracos_sync_client_certificate_expiring` is 1, when the
    client certificate expires within this many days."""

    @model_validator(mode="after")
    def _consistent(self) -> TlsSpec:
        if not self.system_ca and self.ca is None:
            raise ValueError("system_ca = false trusts nothing unless ca is set")
        if self.cert is None and (self.key is not None or self.key_passphrase is not None):
            raise ValueError("key and key_passphrase go with cert, which is unset")
        return self

    def files(self) -> list[Path]:
        """The files read into the SSL context: a change to any rebuilds it."""
        return [path for path in (self.ca, self.cert, self.key) if path is not None]

    def secrets(self) -> list[str]:
        return [] if self.key_passphrase is None else secret_values(self.key_passphrase)


@dataclass(frozen=True, slots=True)
class TlsNames:
    """How messages name the settings of the transport: the description's keys (``api``), or
    the ``CLIENT_API_*`` settings that fill them (``http``)."""

    ca: str = "tls.ca"
    cert: str = "tls.cert"
    key: str = "tls.key"
    key_passphrase: str = "tls.key_passphrase"
    cert_warning_days: str = "tls.cert_warning_days"
    proxy: str = "proxy"
    url: str = "base_url"


DESCRIBED = TlsNames()
PRESENT = TlsNames(
    ca="CLIENT_API_CA",
    cert="CLIENT_API_CERT",
    key="CLIENT_API_KEY",
    key_passphrase="CLIENT_API_KEY_PASSPHRASE",
    cert_warning_days="CLIENT_API_CERT_WARNING_DAYS",
    proxy="CLIENT_API_PROXY",
    url="CLIENT_API_URL",
)
