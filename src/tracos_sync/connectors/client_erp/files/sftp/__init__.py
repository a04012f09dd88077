"""Folders on an SFTP server: the folder connector's inbound and outbound folders named by
``sftp://user@host:port/path`` (``location``), reached through one reused connection
(``store``)."""
