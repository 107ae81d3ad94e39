"""Whether a DEFAULT expression is volatile: computed per row, so adding it rewrites the table.

PostgreSQL 11+ stores a stable or immutable default once, without a rewrite.
"""

from __future__ import annotations

from sqlglot import exp

# Built-in functions whose volatility makes ADD COLUMN ... DEFAULT rewrite the table.
# sqlglot maps random() to exp.Rand and gen_random_uuid() to exp.Uuid; the rest stay
# exp.Anonymous.
_VOLATILE_FUNCTIONS = frozenset(
    {
        "random",
        "random_normal",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "setval",
    }
)


def is_volatile(node: exp.Expression) -> bool:
    for sub in node.walk():
        if isinstance(sub, exp.Rand | exp.Uuid):
            return True
        if isinstance(sub, exp.Anonymous) and str(sub.this).lower() in _VOLATILE_FUNCTIONS:
            return True
    return False
