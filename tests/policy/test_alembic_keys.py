"""The policy keys for running Alembic as the team does: `alembic.ini_section`,
`alembic.x_arguments`, and the database placeholders of `sandbox.env`."""

from __future__ import annotations

import pytest

from bot.errors import UserError
from bot.policy.config import parse_policy


def test_section_and_x_arguments_are_read() -> None:
    policy = parse_policy(
        "alembic:\n  ini_section: tenants\n  x_arguments: [tenant=acme, 3, data=false]\n", "p"
    )
    assert policy.alembic.ini_section == "tenants"
    assert policy.alembic.x_arguments == ["tenant=acme", "3", "data=false"]


def test_defaults_are_alembic_and_no_x_arguments() -> None:
    policy = parse_policy("version: 1\n", "p")
    assert (policy.alembic.ini_section, policy.alembic.x_arguments) == ("alembic", [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('alembic: {ini_section: "a]"}', "alembic.ini_section: 'a]' is not an ini section name"),
        ('alembic: {ini_section: " "}', "is not an ini section name"),
        ('alembic: {x_arguments: ["a\\nb"]}', "alembic.x_arguments[0]: 'a\\nb' is not one line"),
        (
            'sandbox: {env: {DB: "{hots}"}}',
            "sandbox.env: DB: unknown placeholder {hots} (one of {host}, {port}, {user}, "
            "{password}, {database}, {url})",
        ),
    ],
)
def test_bad_values_are_named(text: str, message: str) -> None:
    with pytest.raises(UserError) as error:
        parse_policy(text, "p")
    assert message in str(error.value)


def test_sandbox_env_placeholders_are_accepted() -> None:
    policy = parse_policy(
        'sandbox:\n  env: {POSTGRES_SERVER: "{host}", DSN: "{url}", JSON: \'{"a": 1}\'}\n', "p"
    )
    assert policy.sandbox.env["POSTGRES_SERVER"] == "{host}"
