"""Whether a DEFAULT expression is volatile: computed per row, so adding it rewrites the table.

PostgreSQL 11+ stores a stable or immutable default once, without a rewrite; anything else
(random(), nextval(), a user-defined function whose volatility migsafe cannot see) must be
evaluated for every existing row. So a function counts as volatile unless it is a built-in
known to be immutable or stable.
"""

from __future__ import annotations

from sqlglot import exp

# sqlglot's typed function nodes are built-ins; these are the volatile ones among them
# (random() -> Rand, gen_random_uuid() -> Uuid).
_VOLATILE_NODES: tuple[type[exp.Expression], ...] = tuple(
    node
    for node in (getattr(exp, name, None) for name in ("Rand", "Randn", "RandomNormal", "Uuid"))
    if isinstance(node, type)
)

# Built-ins that sqlglot keeps as exp.Anonymous and that are immutable or stable
# (pg_proc.provolatile 'i' or 's'). Anything else called by name counts as volatile.
KNOWN_STABLE_FUNCTIONS = frozenset(
    {
        # time: stable within a transaction (clock_timestamp() and timeofday() are volatile)
        "now",
        "timezone",  # timezone('utc', now()): SQLAlchemy's usual server_default
        "transaction_timestamp",
        "statement_timestamp",
        "localtimestamp",
        "localtime",
        "current_timestamp",
        "current_date",
        "current_time",
        "make_date",
        "make_time",
        "make_timestamp",
        "make_timestamptz",
        "make_interval",
        "to_timestamp",
        "to_date",
        "to_char",
        "to_number",
        "date_part",
        "date_trunc",
        "age",
        "justify_days",
        "justify_hours",
        "justify_interval",
        "isfinite",
        # session and catalog
        "current_setting",
        "current_user",
        "current_role",
        "session_user",
        "current_schema",
        "current_database",
        "current_catalog",
        "inet_client_addr",
        "pg_backend_pid",
        "version",
        # text
        "lower",
        "upper",
        "initcap",
        "length",
        "char_length",
        "octet_length",
        "btrim",
        "ltrim",
        "rtrim",
        "trim",
        "lpad",
        "rpad",
        "left",
        "right",
        "repeat",
        "replace",
        "reverse",
        "split_part",
        "substr",
        "substring",
        "translate",
        "concat",
        "concat_ws",
        "format",
        "quote_ident",
        "quote_literal",
        "md5",
        "sha256",
        "encode",
        "decode",
        "regexp_replace",
        "chr",
        "ascii",
        "strpos",
        "starts_with",
        "overlay",
        # numbers
        "abs",
        "ceil",
        "ceiling",
        "floor",
        "round",
        "trunc",
        "mod",
        "power",
        "sqrt",
        "greatest",
        "least",
        "coalesce",
        "nullif",
        # json and arrays
        "to_json",
        "to_jsonb",
        "json_build_object",
        "jsonb_build_object",
        "json_build_array",
        "jsonb_build_array",
        "array_to_json",
        "row_to_json",
        "jsonb_set",
        "json_object",
        "jsonb_object",
        "array_append",
        "array_prepend",
        "array_cat",
        "array_fill",
        "array_length",
        "cardinality",
        "string_to_array",
        "array_to_string",
        # types and enums
        "enum_first",
        "enum_last",
        "int4range",
        "int8range",
        "numrange",
        "tsrange",
        "tstzrange",
        "daterange",
        "point",
        "to_tsvector",
        "uuid_nil",
    }
)


def is_volatile(node: exp.Expression) -> bool:
    """The expression calls a function not known to be immutable or stable."""
    for sub in node.walk():
        if isinstance(sub, exp.Anonymous):
            if str(sub.this).lower() not in KNOWN_STABLE_FUNCTIONS:
                return True
        elif isinstance(sub, _VOLATILE_NODES):
            return True
    return False
