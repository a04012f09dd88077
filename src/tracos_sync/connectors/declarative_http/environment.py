"""``${NAME}`` references in an API description, at any depth, and the secrets they fill.

The integrations file replaces ``${NAME}`` in the top level of a connector's settings only; an API
description is a nested table (auth, read, write), so its references are replaced here, in every
string at every depth, with the same rules (``integrations.substitute``: ``$${`` is a literal
``${``, an unset or malformed name is an error naming the key). A value that came from the
environment is marked (``FromEnvironment``) so that a secret field can refuse any other (a
secret written in the file itself) and an error never shows it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, HttpUrl, SecretStr

from tracos_sync.domain.errors import ConfigurationError
from tracos_sync.integrations import substitute

from .secret_files import PREFIX, SecretFile, file_reference

# ``${`` not preceded by another ``$`` (``$${`` is the escape of a literal ``${``).
_REFERENCE = re.compile(r"(?<!\$)\$\{")
_WHOLE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FromEnvironment(str):
    """Text that came (at least in part) from a ``${NAME}`` reference."""

    __slots__ = ()


def resolve(
    value: Any,
    where: str,
    variables: Mapping[str, str],
    path: str = "",
    secrets: frozenset[str] = frozenset(),
) -> Any:
    """``value`` with every ``${NAME}`` replaced, in tables and lists at any depth; each string
    that held one becomes a ``FromEnvironment``. A key (dotted) in ``secrets`` that is exactly
    ``${NAME}``, with ``NAME`` unset and ``NAME_FILE`` set, is ``file:`` that file (the
    ``_FILE`` convention of container images: a mounted secret, read again when it changes);
    both set is refused. Raises ``ConfigurationError`` beginning with ``where`` and naming the
    key (``path``, dotted)."""
    if isinstance(value, dict):
        return {
            key: resolve(item, where, variables, f"{path}.{key}" if path else str(key), secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            resolve(item, where, variables, f"{path}[{at}]", secrets)
            for at, item in enumerate(value)
        ]
    if isinstance(value, str) and path in secrets:
        whole = _WHOLE_REFERENCE.fullmatch(value)
        name = whole.group(1) if whole else ""
        if whole and f"{name}_FILE" in variables:
            if name in variables:  # which one is meant would be a guess (one may be stale)
                raise ConfigurationError(
                    f"{where}: {path}: {name} and {name}_FILE are both set: give one (neither "
                    "value is shown)"
                )
            return FromEnvironment(f"{PREFIX}{variables[name + '_FILE']}")
    if isinstance(value, str):
        replaced = substitute(value, f"{where}: {path}", variables)
        from_environment = isinstance(value, FromEnvironment) or _REFERENCE.search(value)
        return FromEnvironment(replaced) if from_environment else replaced
    return value


def hidden_keys(value: Any) -> frozenset[str]:
    """The names of the keys whose values came from the environment, at any depth: their
    values are never shown in an error."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, FromEnvironment):
                found.add(str(key))
            found |= hidden_keys(item)
    elif isinstance(value, list):
        for item in value:
            found |= hidden_keys(item)
    return frozenset(found)


def _only_from_environment(value: object) -> object:
    """A secret is taken from the environment or a mounted file (``file:/path``, read again
    when it changes), never written in the file (which is copied, committed and shown);
    whitespace around it is dropped (the newline of a mounted file)."""
    if not isinstance(value, str):
        return value
    path = file_reference(value)
    if path is not None:
        return SecretFile(path)  # a ValueError naming the file when it cannot be read
    if not isinstance(value, FromEnvironment):
        raise ValueError(
            "a secret must be given as ${NAME}, taken from the environment, or as file:/path, "
            "a mounted file, never written in the file (the value is not shown)"
        )
    secret = value.strip()
    if not secret:
        raise ValueError("the variable it names is empty")
    return secret


EnvSecret = Annotated[SecretStr, BeforeValidator(_only_from_environment)]
"""A secret: ``${NAME}`` in the file, the variable's value (stripped, not empty) here; or
``file:/path``, a ``SecretFile`` (its content, read again when it changes)."""

# RFC 6750's token characters are a subset of these; anything else cannot go in a header.
_VISIBLE_ASCII = frozenset(chr(c) for c in range(0x21, 0x7F))


def _header_text(value: str) -> str:
    if not set(value) <= _VISIBLE_ASCII:
        raise ValueError(
            "must be printable ASCII without spaces or control characters inside, to go in a "
            "header (the value is not shown)"
        )
    return value


def _fit_for_a_header(value: SecretStr) -> SecretStr:
    if isinstance(value, SecretFile):  # every value the file will hold, not only this one
        return value.with_check(_header_text)
    _header_text(value.get_secret_value())
    return value


def _proxy_password_from_environment(value: object) -> object:
    """A proxy's password is a secret like any other: ``${NAME}`` in the address, never
    written in the file."""
    if not isinstance(value, str) or isinstance(value, FromEnvironment):
        return value
    try:
        password = urlsplit(value).password
    except ValueError:  # not a URL: the URL type says so
        return value
    if password:
        raise ValueError(
            "a proxy's password must be given as ${NAME} (http://user:${PROXY_PASSWORD}@proxy:"
            "3128), taken from the environment, never written in the file (the value is not "
            "shown)"
        )
    return value


ProxyUrl = Annotated[HttpUrl, BeforeValidator(_proxy_password_from_environment)]
"""A proxy's address, its password (if any) from the environment."""

HeaderSecret = Annotated[EnvSecret, AfterValidator(_fit_for_a_header)]
"""A secret sent as it is in a header (a bearer token, an API key): printable ASCII, no spaces."""
