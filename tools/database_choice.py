"""Which database ``make run`` and ``make seed`` use, decided by the service's own settings:
prints ``--embedded`` when the embedded local server is the one, nothing when ``MONGO_URI`` names
one. ``MONGO_URI`` counts from the environment or from ``.env``, as for the service (a Makefile
that looked at the shell's variable alone picked the embedded server while the operator's
``.env`` named their MongoDB); ``MONGO_EMBEDDED`` true picks the embedded server whatever
``MONGO_URI`` says. An invalid configuration prints nothing: the command then says what is
wrong (exit 2)."""

from __future__ import annotations

import sys

from tracos_sync.app import AppSettings
from tracos_sync.config import load_settings
from tracos_sync.domain.errors import ConfigurationError


def embedded(env_file: str) -> bool:
    try:
        settings = load_settings(AppSettings, env_file)
    except ConfigurationError:
        return False
    return settings.mongo_embedded or "mongo_uri" not in settings.model_fields_set


def main() -> None:
    print("--embedded" if embedded(sys.argv[1] if len(sys.argv) > 1 else ".env") else "")


if __name__ == "__main__":
    main()
