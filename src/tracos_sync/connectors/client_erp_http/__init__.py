"""The client ERP reached over its HTTP API (same work-order format as the JSON folder).

Inbound: ``GET /workorders?updatedSince=…&page=…`` from a watermark kept in MongoDB, advanced only
after a page is applied. Outbound: ``PUT /workorders/{orderNo}``. Records the API refuses (4xx)
and records that fail validation go to a dead-letter collection, visible in ``tracos-sync check``.
``fake_server`` is a small real HTTP server with the same API, for tests and for trying it.
"""
