"""Which database ``make run`` and ``make seed`` use, decided as the service decides it: prints
``--embedded`` when the embedded local server is the one, nothing when ``MONGO_URI`` names one.

``MONGO_URI`` counts from the environment or from ``.env`` (read with python-dotenv, the reader
the service uses; the environment wins, names in any case, as in the service's settings). A
Makefile that looked at the shell's variable alone would pick the embedded server while the
operator's ``.env`` names their MongoDB. ``MONGO_EMBEDDED`` set true (either place) picks the
embedded server whatever ``MONGO_URI`` says, as it does for the service. (An empty ``MONGO_URI``
in the environment is none here; the service refuses it, exit 2, and says so.)"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dotenv import dotenv_values

TRUE = {"1", "true", "t", "yes", "y", "on"}  # pydantic's words for true


def setting(name: str, dotenv: Path) -> str | None:
    """``name``'s value: the environment's, else ``dotenv``'s, else None (names in any case)."""
    for source in (os.environ, dotenv_values(dotenv) if dotenv.is_file() else {}):
        for key, value in source.items():
            if key.upper() == name:
                return value or ""
    return None


def embedded(dotenv: Path) -> bool:
    if (setting("MONGO_EMBEDDED", dotenv) or "").strip().lower() in TRUE:
        return True
    return not setting("MONGO_URI", dotenv)


def main() -> None:
    dotenv = Path(sys.argv[1] if len(sys.argv) > 1 else ".env")
    print("--embedded" if embedded(dotenv) else "")


if __name__ == "__main__":
    main()
