"""The client ERP: its work-order wire format, translation to and from TracOS, and transports.

``files`` is the JSON-folder transport that stands in for the ERP's API.
"""
