"""The declarative HTTP connector's API description: validated at start-up, every error naming its
key, secrets only from the environment and never shown, ``${NAME}`` at any depth."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import BaseModel
from tools import docs_reference

from tracos_sync.connectors.declarative_http import auth_spec, description, paging_spec
from tracos_sync.connectors.declarative_http.description import ApiDescription, load_description
from tracos_sync.domain.errors import ConfigurationError

WHERE = "integrations.toml: integration 'acme': api"
SECRET = "s3cr3t-value-from-env"
ENV = {"ACME_TOKEN": SECRET, "ACME_USER": "svc-user", "ERP_URL": "http://erp.test:4004/odata/v4"}

CAP: dict[str, Any] = {
    "base_url": "http://erp.test:4004/odata/v4/maintenance",
    "auth": {"type": "bearer", "token": "${ACME_TOKEN}"},
    "read": {
        "path": "MaintenanceOrder",
        "records": "value",
        "query": {"$orderby": "LastChangeDateTime,MaintenanceOrder"},
        "since": {"$filter": "LastChangeDateTime gt {since}"},
        "after": {
            "$filter": "LastChangeDateTime gt {since} or (LastChangeDateTime eq {since} and "
            "MaintenanceOrder gt '{number}')"
        },
        "paging": {"style": "keyset", "size_param": "$top"},
    },
    "write": {
        "path": "MaintenanceOrder('{number}')",
        "method": "PATCH",
        "create": "MaintenanceOrder",
        "version": {"source": "record", "field": "@odata.etag"},
    },
}


def changed(path: str, value: Any) -> dict[str, Any]:
    """``CAP`` with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    table = copy.deepcopy(CAP)
    *parents, last = path.split(".")
    node = table
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return table


def problem(table: dict[str, Any], env: dict[str, str] = ENV) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_description(table, WHERE, env)
    message = str(caught.value)
    assert message.startswith(WHERE + ": ")
    assert "\n" not in message
    return message.removeprefix(WHERE + ": ")


def test_an_odata_description_loads_with_its_secret_from_the_environment() -> None:
    found = load_description(CAP, WHERE, ENV)
    assert found.secrets() == [SECRET]
    assert SECRET not in repr(found)  # a SecretStr: not in a repr, a log line, a traceback
    assert found.read.paging.style == "keyset"
    assert found.write is not None and found.write.superseded == [409, 412]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("read.since", {"$filter": "T gt {sinse}"}, "read.since.$filter: unknown placeholder"),
        ("read.after", {"$filter": "T gt {since}"}, "read: read.after must hold {number} too"),
        ("read.query", {"$top": "{since}"}, "read.query.$top: unknown placeholder {since}"),
        ("read.path", "Orders({", "read.path: a lone { or }"),
        ("read.path", "Orders('{number}')", "read.path: unknown placeholder {number}"),
        ("read.after", {}, "read.after is required with paging style keyset"),
        ("read.paging", {"style": "cursor"}, "read.paging.cursor_path: Field required"),
        ("read.paging", {"style": "scroll"}, "read.paging: Input tag 'scroll'"),
        ("read.page_size", 0, "read.page_size: Input should be greater than or equal to 1"),
        ("read.records", "d..results", "read.records"),
        ("read.query", {"$filter": "x"}, "read.since and read.query both set $filter"),
        ("write.path", "MaintenanceOrder", "write.path: must hold {number}"),
        ("write.method", "DELETE", "write.method: Input should be 'PUT' or 'PATCH'"),
        ("write.version", {"source": "response", "field": "x"}, "write.version: write.version"),
        ("write.superseded", [200], "write.superseded.0: Input should be greater than or equal"),
        ("auth.type", "kerberos", "auth: Input tag 'kerberos'"),
        ("auth.token", ..., "auth.token: Field required"),
        ("auth.scheme", "x", "auth.scheme: unknown key"),
        ("base_url", "erp.test/odata", "base_url: Input should be a valid URL"),
        ("colour", "blue", "colour: unknown key"),
    ],
)
def test_every_error_names_its_key(path: str, value: Any, expected: str) -> None:
    assert expected in problem(changed(path, value))


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer", "token": SECRET},
        {"type": "basic", "username": "u", "password": SECRET},
        {"type": "api_key", "name": "APIKey", "key": SECRET},
        {
            "type": "oauth2_client_credentials",
            "token_url": "https://login.test/oauth/token",
            "client_id": "c",
            "client_secret": SECRET,
        },
    ],
)
def test_a_secret_written_in_the_file_is_refused_without_being_shown(auth: dict[str, Any]) -> None:
    message = problem(changed("auth", auth))
    assert "must be given as ${NAME}" in message
    assert SECRET not in message and SECRET[:8] not in message


def test_a_whole_auth_table_is_not_shown_in_an_error() -> None:
    message = problem(changed("auth", {"type": "bearer ", "token": SECRET}))
    assert "auth: Input tag" in message and SECRET not in message


def test_variables_are_replaced_at_any_depth_and_never_shown() -> None:
    table = changed("base_url", "${ERP_URL}/maintenance")
    table["auth"] = {"type": "basic", "username": "${ACME_USER}", "password": "${ACME_TOKEN}"}
    found = load_description(table, WHERE, ENV)
    assert str(found.base_url) == "http://erp.test:4004/odata/v4/maintenance"
    assert found.auth.type == "basic" and found.auth.username == "svc-user"
    # A value that came from the environment is not shown, even where it is wrong.
    message = problem(changed("base_url", "${ACME_TOKEN}"))
    assert message.startswith("base_url: ") and SECRET not in message


def test_an_unset_variable_is_an_error_naming_its_key() -> None:
    message = problem(changed("auth.token", "${NOT_SET_ANYWHERE}"), env={})
    assert message == "auth.token: ${NOT_SET_ANYWHERE} is not set in the environment"


def test_a_literal_dollar_brace_is_written_dollar_dollar_brace() -> None:
    table = changed("auth", {"type": "basic", "username": "$${x}", "password": "${ACME_TOKEN}"})
    found = load_description(table, WHERE, ENV).auth
    assert found.type == "basic" and found.username == "${x}"


def test_credentials_or_a_query_in_the_base_url_are_refused_without_being_shown() -> None:
    message = problem(changed("base_url", f"http://u:{SECRET}@erp.test/x?apikey={SECRET}"))
    assert "base_url holds credentials, a query or a fragment" in message
    assert SECRET not in message


MODELS = [
    ApiDescription,
    description.ReadSpec,
    description.WriteSpec,
    description.VersionSpec,
    *(
        value
        for module in (auth_spec, paging_spec)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
    ),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_key_of_the_description_is_documented(model: type[BaseModel]) -> None:
    table = docs_reference.fields_table(model, variables=False)  # raises for a field without one
    assert table.count("\n") == len(model.model_fields) + 1


@pytest.mark.parametrize(
    "auth",
    [
        {"type": "bearer", "token": "${BAD}"},
        {"type": "api_key", "name": "APIKey", "send_in": "query", "key": "${BAD}"},
    ],
)
def test_a_secret_sent_in_a_header_must_fit_in_one_and_is_not_shown(auth: dict[str, Any]) -> None:
    bad = "abc def\r\nX-Injected: 1"
    message = problem(changed("auth", auth), env={**ENV, "BAD": bad})
    assert "must be printable ASCII without spaces" in message
    assert "X-Injected" not in message and "abc def" not in message
