"""The client ERP: decoding its inputs (``codec``) through a record mapping
(``tracos_sync.mapping``; the built-in one is today's format, ``workorder.schema.json``), and
transports.

``files`` is the JSON-folder transport that stands in for the ERP's API.
"""
