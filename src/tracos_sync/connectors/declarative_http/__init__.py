"""The ``api`` connector: an ERP's HTTP API described as configuration, both ways. The present
API (``GET /workorders``, ``PUT /workorders/{orderNo}``) is one description of it, built from
the ``CLIENT_API_*`` settings by the ``http`` entry point (``present_api``).

- ``description``, ``auth_spec``, ``paging_spec``: the ``[api]`` table (pydantic, validated at
  start-up, every error naming its key); ``environment``: ``${NAME}`` at any depth, secrets only
  from the environment;
- ``requester``: one request retried, bounded and classified, and the error classes;
- ``auth``, ``oauth2``: credentials as ``httpx.Auth`` plugins;
- ``query``: query strings as OData servers accept them (``%20``, never ``+``); ``incremental``:
  a pass's first request from the watermark;
- ``paginators``: ``first()`` / ``next(page)`` per paging style; ``pages``: one pass, with the
  guarantees of every style; ``selector``: values at a path of an answer;
- ``sink``: work orders written back (create, conditional update, superseded, refused);
  ``echoes``: our own writes told from the ERP's changes when a read brings them back;
  ``versions``: what the ERP was seen to hold, never written over with an older copy;
- ``reader``, ``source``, ``connector``, ``settings``: the ports; ``state``, ``watermark``,
  ``applied_pages``: the watermark and dead letters in the state store; ``retrying``:
  ``Retry-After``;
- ``present_api``, ``present_settings``: the ``http`` connector, the present API's description.
"""
