"""``python tests/shifted_clock.py SECONDS ARGS…``: the CLI with this process's clock shifted
by SECONDS (negative: a host whose clock stepped back). The sync's clocks are injected (the
``clock`` parameters of the pipeline and the HTTP source); their defaults are replaced here, so
the rest of the process (the driver, the server) keeps real time."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from tracos_sync import pipeline
from tracos_sync.cli import main
from tracos_sync.connectors.client_erp_http import source

SHIFT = timedelta(seconds=float(sys.argv[1]))


def shifted_now() -> datetime:
    return datetime.now(UTC) + SHIFT


assert pipeline.sync_inbound.__kwdefaults__ is not None
pipeline.sync_inbound.__kwdefaults__["clock"] = shifted_now
assert source.HttpSource.__init__.__defaults__ == (source.utc_now, None)
source.HttpSource.__init__.__defaults__ = (shifted_now, None)
main(sys.argv[2:])
