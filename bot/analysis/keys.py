"""Names as lookup keys: what the stream state and the pre-scans of the stream compare."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=8192)
def name_key(name: str) -> str:
    """A table / index name as a lookup key: no quotes, no default `public.` schema."""
    key = name.replace('"', "")
    return key[7:] if key.startswith("public.") else key


def index_key(name: str, table: str | None = None) -> str:
    """An index name as a lookup key. An index lives in its table's schema: CREATE INDEX ix
    ON app.t and DROP INDEX app.ix name the same index."""
    if "." not in name.replace('"', "") and table is not None and "." in table:
        schema = table.replace('"', "").rsplit(".", 1)[0]
        name = f"{schema}.{name}"
    return name_key(name)


def constraint_key(table: str, name: str) -> str:
    """A table's constraint as a `created_objects` name."""
    return f"{name_key(table)}:{name}"
