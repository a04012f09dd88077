"""The JSON-folder transport: the client ERP's "API" is a folder of work-order files.

Inbound files are claimed before they are read, by an atomic rename into a folder of this
instance's own (``claims``), so that several instances can share one inbound folder and each file
is taken by exactly one. Files are archived only after their records are durable in TracOS, and
nothing is ever overwritten or deleted (``durable``, ``moves``).
"""

from .connector import FolderConnector, create
from .settings import FolderSettings
from .sink import FolderSink
from .source import FolderSource, waiting_files

__all__ = [
    "FolderConnector",
    "FolderSettings",
    "FolderSink",
    "FolderSource",
    "create",
    "waiting_files",
]
