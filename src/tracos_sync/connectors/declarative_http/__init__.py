"""The parts of a declarative HTTP connector: an ERP's API described as configuration, both ways.

Not wired into a connector yet (the mapping's formatted keys and envelopes come first); the
present ``client_erp_http`` connector behaves as before, its requests now made by the requester
here. A package of its own, beside that connector, because its parts assume nothing of that
connector's keyset API; when the present API becomes one description here, ``client_erp_http``
keeps only what a description cannot say.

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
  ``echoes``: our own writes told from the ERP's changes when a read brings them back.
"""
