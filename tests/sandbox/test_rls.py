"""The tenant values the isolation test writes, by the tenant column's type (pure)."""

from __future__ import annotations

import pytest

from bot.sandbox.rls import tenant_values


@pytest.mark.parametrize("type_name", ["integer", "bigint", "smallint", "int4", "serial"])
def test_integer_columns_get_numbers(type_name: str) -> None:
    assert tenant_values(type_name) == ("1001", "1002")


@pytest.mark.parametrize("type_name", ["interval", "point", "character varying(20)", "text"])
def test_other_types_with_int_in_their_name_are_not_integers(type_name: str) -> None:
    assert tenant_values(type_name) == ("tenant-a", "tenant-b")


def test_uuid_columns_get_uuids() -> None:
    assert tenant_values("uuid")[0].startswith("00000000-")
