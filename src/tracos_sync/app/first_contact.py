"""The process's first contact with MongoDB. A refusal then (nothing listens at the address) is
a wrong address far more often than an outage: said at once, naming the address and
``MONGO_URI``, instead of retrying for the whole budget. Once the server has been reached, a
refusal is an outage again (a restart, a failover), waited out by the retry budget."""

from __future__ import annotations

import asyncio
import enum
import socket

from pymongo.uri_parser import parse_uri

from tracos_sync.app.runtime import Runtime
from tracos_sync.domain.errors import DatabaseUnavailable

# Long enough for a connection across a data centre; a slower answer is the driver's to wait.
KNOCK_SECONDS = 1.0


class Answer(enum.Enum):
    REACHED = "reached"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # a timeout, a name that does not resolve (yet): the driver's to wait out


async def first_contact(runtime: Runtime) -> None:
    """Knock on MongoDB's address(es) once per process, before the driver's retries; raises
    ``DatabaseUnavailable`` when every one refuses. The embedded server, an SRV address (its
    hosts come from DNS) and a Unix socket are left to the driver."""
    settings = runtime.settings
    uri = settings.mongo_uri
    if runtime.reached or settings.mongo_embedded or uri.startswith("mongodb+srv:"):
        return
    nodes = parse_uri(uri)["nodelist"]
    hosts = [(host, port) for host, port in nodes if not host.endswith(".sock")]
    if not hosts:
        return
    answers = await asyncio.gather(*(asyncio.to_thread(knock, h, p) for h, p in hosts))
    if Answer.REACHED in answers:
        runtime.reached = True
        return
    if any(answer is not Answer.REFUSED for answer in answers):
        return
    where = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in hosts)
    if "mongo_uri" not in settings.model_fields_set:
        raise DatabaseUnavailable(
            f"nothing answers on {where} and MONGO_URI is not set: set MONGO_URI, start the "
            "embedded local server with --embedded (or MONGO_EMBEDDED=1), or try `make run`"
        )
    raise DatabaseUnavailable(
        f"MongoDB unavailable: nothing listens on {where} (connection refused at the first "
        "contact): check MONGO_URI (host and port), or start MongoDB first"
    )


def knock(host: str, port: int) -> Answer:
    """Whether something accepts a connection on ``host:port``: on any of its addresses, on
    none (each refused, or not routable from here), or no telling."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return Answer.UNKNOWN
    refused = False
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.settimeout(KNOCK_SECONDS)
            try:
                probe.connect(address)
            except ConnectionRefusedError:
                refused = True
            except TimeoutError:
                return Answer.UNKNOWN
            except OSError:
                continue  # an address family this host cannot use (IPv6 off)
            else:
                return Answer.REACHED
    return Answer.REFUSED if refused else Answer.UNKNOWN
