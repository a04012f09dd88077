"""``python tests/shifted_clock.py SECONDS ARGS…``: the CLI with this process's clock shifted
by SECONDS (negative: a host whose clock stepped back). The sync's clocks are injected (the
``clock`` of the pipeline and of the ``api`` connector's reader); their defaults are replaced
here, so the rest of the process (the driver, the server) keeps real time."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from tracos_sync import pipeline
from tracos_sync.cli import main
from tracos_sync.connectors.declarative_http import connector

SHIFT = timedelta(seconds=float(sys.argv[1]))


def shifted_now() -> datetime:
    return datetime.now(UTC) + SHIFT


assert pipeline.sync_inbound.__kwdefaults__ is not None
pipeline.sync_inbound.__kwdefaults__["clock"] = shifted_now
connector.utc_now = shifted_now  # the api connector's clock (``http`` is one of its APIs)
main(sys.argv[2:])
