"""The client ERP reached over its HTTP API (same work-order format as the JSON folder).

Inbound: ``GET /workorders?updatedSince=…&afterOrderNo=…`` (keyset) from a watermark, stored only
after a page is applied and never past the moment the page was asked for. Outbound: ``PUT
/workorders/{orderNo}``, conditional (409: the ERP holds a newer version). Records refused
either way become dead letters (one per refusal, counted), visible in ``tracos-sync check``.
The watermark and the dead letters live in the connector state store the bootstrap hands over
(beside TracOS, same MongoDB client).

- ``settings``: ``CLIENT_API_*``;
- ``api``: requests with a deadline, every answer classified; ``retrying``: ``Retry-After``;
- ``versions``: what the ERP was seen to hold, so that outbound never sends an older version;
- ``paging``: the watermark and its advance rule, keyset paging, what a page may not say;
- ``state``: the watermark and dead letters through the state store;
- ``source``, ``sink``, ``connector``: the ports;
- ``fake_server``: a small real HTTP server with the same API and switches for each way an ERP
  misbehaves, for tests, the demo and ``tracos-sync fake-erp``.
"""
