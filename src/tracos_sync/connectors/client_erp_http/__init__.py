"""The present HTTP API's test server (``fake_server``): behind ``tracos-sync fake-erp``, ``make
demo-http`` and the tests, with a switch for each way an ERP was seen to misbehave.

The ``http`` connector that speaks this API is no longer here: it is one description of the
``api`` connector (``declarative_http.present_api``).
"""
