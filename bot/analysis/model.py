"""The data the analysis passes around: statements, what they do, and findings.

Everything here is plain data. Parsing fills `Statement.actions`; rules read
them and return findings; reports render findings. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Phase = Literal["upgrade", "downgrade"]


class Severity(StrEnum):
    """How much a finding matters; `error` fails `migsafe check` (exit 1)."""

    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "notice": 1}[self.value]


class Family(StrEnum):
    """Rule families whose severity the environment matrix decides."""

    DESTRUCTIVE = "destructive"  # needs approval where the environment asks for it
    TIMEOUT = "timeout"  # notice / warning / error by environment
    LOCKING = "locking"  # blocking locks and rewrites on existing tables
    COMPATIBILITY = "compatibility"  # breaks code still running during the deploy
    SECURITY = "security"  # row level security
    REVISION = "revision"  # the Alembic history itself
    META = "meta"  # about migsafe's own inputs (suppressions, dry-run failures)


class ActionKind(StrEnum):
    """What one statement (or one clause of an ALTER TABLE) does."""

    CREATE_TABLE = "create_table"
    DROP_TABLE = "drop_table"
    RENAME_TABLE = "rename_table"  # table -> name
    ADD_COLUMN = "add_column"
    DROP_COLUMN = "drop_column"
    RENAME_COLUMN = "rename_column"  # table.column -> name
    ALTER_COLUMN_TYPE = "alter_column_type"
    SET_NOT_NULL = "set_not_null"
    DROP_NOT_NULL = "drop_not_null"
    SET_DEFAULT = "set_default"
    DROP_DEFAULT = "drop_default"
    CREATE_INDEX = "create_index"
    DROP_INDEX = "drop_index"
    ADD_CONSTRAINT = "add_constraint"
    DROP_CONSTRAINT = "drop_constraint"
    VALIDATE_CONSTRAINT = "validate_constraint"
    TRUNCATE = "truncate"
    UPDATE = "update"
    DELETE = "delete"
    INSERT = "insert"
    SET = "set"  # SET [LOCAL] name = value / RESET name
    BEGIN = "begin"
    COMMIT = "commit"
    ENABLE_RLS = "enable_rls"
    DISABLE_RLS = "disable_rls"
    FORCE_RLS = "force_rls"
    NO_FORCE_RLS = "no_force_rls"
    CREATE_POLICY = "create_policy"
    DROP_POLICY = "drop_policy"
    ALTER_POLICY = "alter_policy"
    ALTER_TYPE_ADD_VALUE = "alter_type_add_value"
    CREATE_TYPE = "create_type"
    DROP_TYPE = "drop_type"
    CREATE_VIEW = "create_view"
    DROP_VIEW = "drop_view"
    CREATE_SEQUENCE = "create_sequence"
    DROP_SEQUENCE = "drop_sequence"
    CREATE_EXTENSION = "create_extension"
    DROP_SCHEMA = "drop_schema"
    VACUUM_FULL = "vacuum_full"
    CLUSTER = "cluster"
    REINDEX = "reindex"
    LOCK_TABLE = "lock_table"
    SELECT = "select"
    COMMENT = "comment"
    OTHER = "other"  # parsed or not, nothing the rules know about
    ALTER_DOMAIN = "alter_domain"  # name: the domain; detail: the subcommand, e.g. ADD CONSTRAINT
    DROP_TRIGGER = "drop_trigger"  # name: the trigger; table: its table
    ATTACH_PARTITION = "attach_partition"  # table: the parent; name: the partition
    DETACH_PARTITION = "detach_partition"  # table: the parent; name: the partition
    SET_LOGGED = "set_logged"  # ALTER TABLE ... SET LOGGED (rewrites the table)
    SET_UNLOGGED = "set_unlogged"  # ALTER TABLE ... SET UNLOGGED (rewrites the table)
    REFRESH_MATERIALIZED_VIEW = "refresh_materialized_view"  # name: the view
    RENAME_ENUM_VALUE = "rename_enum_value"  # name: the type; value: old label; detail: new one
    VACUUM = "vacuum"  # VACUUM without FULL; tables as for TRUNCATE
    DROP_FUNCTION = "drop_function"  # name: the function; detail: FUNCTION | PROCEDURE | ROUTINE
    DROP_EXTENSION = "drop_extension"  # name: the extension


@dataclass
class Action:
    """One effect of a statement. Names are lower-cased unless they were quoted.

    Only the fields that make sense for `kind` are set; see ActionKind's comments.
    `table` is the table acted on, as written (schema-qualified if it was).
    """

    kind: ActionKind
    table: str | None = None
    column: str | None = None
    name: str | None = None  # index / constraint / policy / type name, or the new name of a rename
    tables: tuple[str, ...] = ()  # TRUNCATE a, b
    columns: tuple[str, ...] = ()  # index or constraint columns
    data_type: str | None = None  # ADD COLUMN / ALTER COLUMN TYPE target type, SQL text
    using: str | None = None  # ALTER COLUMN TYPE ... USING expression
    not_null: bool = False  # ADD COLUMN ... NOT NULL (or PRIMARY KEY)
    default: str | None = None  # DEFAULT expression, SQL text
    default_volatile: bool = False  # the default is a volatile function call (now() is stable)
    generated_stored: bool = False  # GENERATED ALWAYS AS (...) STORED: rewrites the table
    identity: bool = False  # GENERATED ... AS IDENTITY: every existing row gets a sequence value
    concurrently: bool = False
    unique: bool = False
    if_exists: bool = False
    cascade: bool = False
    constraint_type: str | None = None  # foreign_key | check | unique | primary_key | exclude
    not_valid: bool = False
    using_index: bool = False  # ADD CONSTRAINT ... USING INDEX
    references: str | None = None  # FK target table
    has_where: bool = False  # UPDATE / DELETE with a WHERE clause
    setting: str | None = None  # SET: lower-cased setting name
    value: str | None = None  # SET: value as written, without quotes; None for RESET / DEFAULT
    local: bool = False  # SET LOCAL
    # free text for OTHER (e.g. the leading keywords); DROP_VIEW: "MATERIALIZED" for a
    # materialized view; the other kinds that use it say so in ActionKind
    detail: str | None = None


@dataclass
class Statement:
    """One SQL statement of the dry-run, with where it came from."""

    sql: str
    phase: Phase
    index: int  # position in its phase's stream, from 0
    revision: str | None = None
    path: str | None = None  # repository-relative path of the migration file
    line: int | None = None  # line of the op.* call that emitted it
    actions: list[Action] = field(default_factory=list)
    parse_error: str | None = None  # set when neither sqlglot nor the token fallback understood it


@dataclass(frozen=True)
class RuleInfo:
    """A rule's public description. `id` is a stable public interface."""

    id: str
    family: Family
    default_severity: Severity
    summary: str  # one line: what it catches
    explanation: str  # one paragraph: why it matters and the safe alternative


@dataclass(frozen=True)
class Evidence:
    """Another stage's word on the same operation, folded into its finding
    (`bot.analysis.evidence`): e.g. the sandbox saw the rewrite the SQL rule predicted."""

    rule: str  # the rule that would have reported it on its own
    source: Literal["sql", "static", "sandbox", "project"]
    message: str


@dataclass
class Finding:
    rule: str
    severity: Severity
    message: str
    path: str | None = None
    line: int | None = None
    revision: str | None = None
    statement: str | None = None  # the SQL, when the finding is about one statement
    phase: Phase | None = None
    advice: str | None = None  # the safe alternative, written out for this case
    suppressed: bool = False
    suppression_reason: str | None = None
    approval_roles: list[str] = field(default_factory=list)
    source: Literal["sql", "static", "sandbox", "project"] = "sql"
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def rules(self) -> tuple[str, ...]:
        """Its rule and the rules of the observations folded into it: what the gate asks
        approvals, ADRs and windows for."""
        return (self.rule, *(e.rule for e in self.evidence if e.rule != self.rule))

    @property
    def blocking(self) -> bool:
        """Counts towards exit status 1 / a failing check."""
        return self.severity is Severity.ERROR and not self.suppressed
