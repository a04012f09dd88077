"""The parts of a declarative HTTP connector: an ERP's API described as configuration, both ways.

Not wired into a connector yet (the mapping's formatted keys and envelopes come first); the
present ``client_erp_http`` connector is unchanged. A package of its own, beside it, because its
parts assume nothing of that connector's keyset API (they borrow only its error classes), and the
present API is to become one description here, after which ``client_erp_http`` keeps only what
the description cannot say.

- ``description``, ``auth_spec``, ``paging_spec``: the ``[api]`` table (pydantic, validated at
  start-up, every error naming its key); ``environment``: ``${NAME}`` at any depth, secrets only
  from the environment;
- ``auth``, ``oauth2``: credentials as ``httpx.Auth`` plugins;
- ``query``: query strings as OData servers accept them (``%20``, never ``+``);
- ``paginators``: ``first()`` / ``next(page)`` per paging style; ``pages``: one pass, with the
  guarantees of every style; ``selector``: values at a path of an answer.
"""
