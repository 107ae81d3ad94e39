"""The sandbox run on a real PostgreSQL: one fixture project per finding, positive and negative.

Each project under tests/fixtures/sandbox has a base revision 0001 (table `accounts`) and a
new revision 0002 doing the thing under test. A project is checked once per module (the
outcome is cached) the way `bot.check` builds the request: project, scan, revision graph,
dry-run parsed for the undeclared-change comparison.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import psycopg
import pytest

from bot.analysis.model import Finding, Severity
from bot.analysis.parse import parse_statements
from bot.analysis.revision_graph import RevisionGraph
from bot.analysis.sandbox_model import Step, TracedStatement
from bot.migrations.project import find_project
from bot.migrations.scan import scan_project
from bot.sandbox.child import ContainedChild, Reply, contained_python
from bot.sandbox.database import PREFIX, SandboxServer, create_sandbox
from bot.sandbox.dryrun import dry_run
from bot.sandbox.isolation import scrubbed_env
from bot.sandbox.rls import RlsSettings
from bot.sandbox.run import (
    DEFAULT_MAX_DATABASE_BYTES,
    SandboxOutcome,
    SandboxRequest,
    admin_connection,
    database_failure,
    format_bytes,
    run_sandbox,
    sandbox_child,
)
from bot.sandbox.snapshot import take_snapshot

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sandbox"
TIMEOUT_S = 60.0
TENANT_TABLES = ["notes_plain", "notes_no_policy", "notes_open", "notes_tenant"]
STEPS = [
    "upgrade to the base",
    "upgrade to head",
    "post-migration checks",
    "rollback to the base",
    "upgrade again",
]
_LEFTOVERS = """
SELECT datname FROM pg_database WHERE starts_with(datname, %(prefix)s)
UNION ALL SELECT rolname FROM pg_roles WHERE starts_with(rolname, %(prefix)s)
"""

RunSandbox = Callable[..., SandboxOutcome]


def sandbox_request(
    work_root: Path,
    *,
    new: Iterable[str] = ("0002",),
    rls: RlsSettings | None = None,
    max_bytes: int = DEFAULT_MAX_DATABASE_BYTES,
) -> SandboxRequest:
    """The request `bot.check._sandbox` builds, for a working copy whose `new` revisions
    are the change."""
    project = find_project(work_root)
    files = scan_project(project)
    graph = RevisionGraph(files)
    base = graph.base_point(set(new))
    dry = dry_run(
        work_root,
        ini_path=project.ini_path,
        script_location=project.script_location,
        versions_dirs=project.versions_dirs,
        base=base,
        heads=tuple(graph.heads()),
        timeout_s=TIMEOUT_S,
    )
    assert dry.error is None, dry.error
    parse_statements([*dry.upgrade, *dry.downgrade])
    return SandboxRequest(
        work_root=work_root,
        ini_path=project.ini_path,
        script_location=project.script_location,
        versions_dirs=project.versions_dirs,
        base=base,
        revision_by_path={f.path: f.revision for f in files},
        files={f.path: f for f in files},
        dry_run_upgrade=dry.upgrade,
        rls=rls or RlsSettings(),
        timeout_s=TIMEOUT_S,
        max_database_bytes=max_bytes,
    )


def leftovers(server: SandboxServer) -> list[str]:
    with psycopg.connect(server.admin_conninfo, autocommit=True) as admin:
        return [row[0] for row in admin.execute(_LEFTOVERS, {"prefix": PREFIX}).fetchall()]


@pytest.fixture(scope="module")
def left_after() -> dict[str, list[str]]:
    """Sandbox databases and roles found on the server right after each run, by project."""
    return {}


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's working copies go: under pytest's own private (0700) folder, as a
    real check's copy sits in a private temporary folder."""
    return tmp_path_factory.mktemp("sandbox-run")


@pytest.fixture(scope="module")
def sandbox(
    sandbox_server: SandboxServer,
    work_dir: Path,
    left_after: dict[str, list[str]],
) -> RunSandbox:
    """Runs a fixture project once (from a private copy, as `migsafe check` does)."""
    outcomes: dict[str, SandboxOutcome] = {}

    def run(
        name: str,
        *,
        new: Iterable[str] = ("0002",),
        rls: RlsSettings | None = None,
        max_bytes: int = DEFAULT_MAX_DATABASE_BYTES,
    ) -> SandboxOutcome:
        key = f"{name} {sorted(new)} {rls} {max_bytes}"
        if key not in outcomes:
            work_root = work_dir / f"{name}-{len(outcomes)}" / "tree"
            shutil.copytree(FIXTURES / name, work_root)
            request = sandbox_request(work_root, new=new, rls=rls, max_bytes=max_bytes)
            outcomes[key] = run_sandbox(request, sandbox_server)
            left_after[name] = leftovers(sandbox_server)
        return outcomes[key]

    return run


def rules_of(outcome: SandboxOutcome) -> set[str]:
    return {f.rule for f in outcome.findings}


def only(outcome: SandboxOutcome, rule: str) -> Finding:
    found = [f for f in outcome.findings if f.rule == rule]
    assert len(found) == 1, outcome.findings
    return found[0]


def traced(outcome: SandboxOutcome, fragment: str) -> TracedStatement:
    return next(s for s in outcome.report.trace if fragment in s.sql)


def outcomes_of(outcome: SandboxOutcome) -> list[tuple[str, str]]:
    return [(step.name, step.outcome) for step in outcome.report.steps]


def step_named(outcome: SandboxOutcome, name: str) -> Step:
    return next(step for step in outcome.report.steps if step.name == name)


def tenant_rls(tables: list[str] | Literal["all"]) -> RlsSettings:
    return RlsSettings(tables=tables, setting="app.tenant_id", column="tenant_id")


# -- locks and rewrites -----------------------------------------------------------------------


def test_alter_on_a_base_table_takes_access_exclusive(sandbox: RunSandbox) -> None:
    outcome = sandbox("alter_then_backfill")
    finding = only(outcome, "access-exclusive-lock")
    assert finding.path == "migrations/versions/0002_amount_bigint.py"
    assert (finding.line, finding.revision) == (15, "0002")
    assert "ACCESS EXCLUSIVE lock on accounts" in finding.message
    assert "across 2 statement(s)" in finding.message


def test_a_comment_naming_the_version_table_hides_no_statement(sandbox: RunSandbox) -> None:
    outcome = sandbox("comment_hides_alter")
    alter = traced(outcome, "-- alembic_version")
    assert alter.path == "migrations/versions/0002_alter_with_comment.py"
    assert ("accounts", "AccessExclusiveLock") in alter.locks
    for rule in ("access-exclusive-lock", "lock-timeout-not-set"):
        assert only(outcome, rule).line == 14


def test_locks_on_a_new_table_only_are_no_finding(sandbox: RunSandbox) -> None:
    outcome = sandbox("clean_change")
    assert "access-exclusive-lock" not in rules_of(outcome)
    # The lock was observed, only not reported: nobody else can wait for a new table.
    assert any(
        (span.relation, span.mode) == ("notes", "AccessExclusiveLock")
        for span in outcome.report.lock_spans
    )


def test_lock_span_covers_the_backfill_until_commit(sandbox: RunSandbox) -> None:
    outcome = sandbox("alter_then_backfill")
    trace = outcome.report.trace
    alter, update = traced(outcome, "ALTER TABLE"), traced(outcome, "UPDATE accounts")
    span = next(
        s
        for s in outcome.report.lock_spans
        if (s.relation, s.mode) == ("accounts", "AccessExclusiveLock")
    )
    assert (span.first_statement, span.last_statement) == (trace.index(alter), trace.index(update))
    assert span.start_s == alter.start_s
    assert span.end_s >= update.start_s + update.duration_s


def test_type_change_int_to_bigint_rewrites_the_table(sandbox: RunSandbox) -> None:
    outcome = sandbox("alter_then_backfill")
    finding = only(outcome, "table-rewrite")
    assert (finding.line, finding.message) == (15, "this statement rewrote table accounts")
    assert traced(outcome, "TYPE BIGINT").rewritten == ["accounts"]
    assert traced(outcome, "UPDATE accounts").rewritten == []


def test_a_rewrite_of_a_table_locked_already_is_seen(sandbox: RunSandbox) -> None:
    """The table is held ACCESS EXCLUSIVE from the first statement on; each later rewrite
    is still seen, by the statement that made it, and the lock is new only once."""
    outcome = sandbox("rewrite_after_lock")
    add, bigint, numeric = (traced(outcome, f) for f in ("ADD COLUMN", "BIGINT", "NUMERIC"))
    assert (add.rewritten, bigint.rewritten, numeric.rewritten) == ([], ["accounts"], ["accounts"])
    assert ("accounts", "AccessExclusiveLock") in add.locks
    assert ("accounts", "AccessExclusiveLock") not in bigint.locks + numeric.locks


def test_widening_a_varchar_does_not_rewrite(sandbox: RunSandbox) -> None:
    outcome = sandbox("widen_varchar")
    alter = traced(outcome, "TYPE VARCHAR(40)")
    assert alter.rewritten == []
    assert ("accounts", "AccessExclusiveLock") in alter.locks
    assert "table-rewrite" not in rules_of(outcome)


class RecordingChild:
    """The sandbox child, its replies kept: what the child says of its own tracing."""

    def __init__(self, child: ContainedChild) -> None:
        self.child = child
        self.replies: list[tuple[Mapping[str, object], object]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.child, name)

    def request(self, message: Mapping[str, object], on_note: Any = None) -> Reply:
        reply = self.child.request(message, on_note)
        self.replies.append((message, reply.message))
        return reply


def test_tracing_costs_at_most_one_query_per_statement(
    sandbox_server: SandboxServer, work_dir: Path
) -> None:
    """One round trip after each statement (settings, locks and relfilenodes together), one
    baseline of the tables' relfilenodes per run: never a query before a statement, never a
    scan of every table per statement. The rewrite and the locks are still seen."""
    work_root = work_dir / "count-queries" / "tree"
    shutil.copytree(FIXTURES / "alter_then_backfill", work_root)
    request = sandbox_request(work_root)
    with sandbox_child(request) as child:
        recording = RecordingChild(child)
        outcome = run_sandbox(request, sandbox_server, cast(ContainedChild, recording))
    traced_runs = [reply for message, reply in recording.replies if message.get("trace") is True]
    assert traced_runs
    for reply in traced_runs:
        assert isinstance(reply, dict)
        statements = reply["statements"]
        assert len(statements) >= 4  # the ALTER, the UPDATE, Alembic's own
        assert 0 < reply["tracing_queries"] <= len(statements) + 1
    assert traced(outcome, "TYPE BIGINT").rewritten == ["accounts"]
    assert ("accounts", "AccessExclusiveLock") in traced(outcome, "TYPE BIGINT").locks


# -- timeouts, as observed on the migration's connection ----------------------------------------


def test_no_timeouts_in_effect_are_findings(sandbox: RunSandbox) -> None:
    outcome = sandbox("alter_then_backfill")
    alter = traced(outcome, "TYPE BIGINT")
    assert (alter.lock_timeout, alter.statement_timeout) == ("0", "0")
    for rule, setting in (
        ("lock-timeout-not-set", "lock_timeout"),
        ("statement-timeout-not-set", "statement_timeout"),
    ):
        finding = only(outcome, rule)
        assert (finding.line, finding.revision) == (15, "0002")
        assert f"{setting} was not set" in finding.message


def test_timeouts_set_by_the_migration_are_seen(sandbox: RunSandbox) -> None:
    outcome = sandbox("widen_varchar")
    alter = traced(outcome, "TYPE VARCHAR(40)")
    assert (alter.lock_timeout, alter.statement_timeout) == ("5s", "1min")
    assert not rules_of(outcome) & {"lock-timeout-not-set", "statement-timeout-not-set"}


def test_timeouts_set_by_env_py_on_the_connection_are_seen(sandbox: RunSandbox) -> None:
    outcome = sandbox("env_sets_timeouts")
    alter = traced(outcome, "TYPE BIGINT")
    assert (alter.lock_timeout, alter.statement_timeout) == ("30s", "5min")
    assert not rules_of(outcome) & {"lock-timeout-not-set", "statement-timeout-not-set"}
    # env.py's own statements are in the trace, with no migration file to point at.
    env_set = traced(outcome, "SET lock_timeout")
    assert (env_set.path, env_set.revision) == (None, None)
    assert {"access-exclusive-lock", "table-rewrite"} <= rules_of(outcome)


def test_env_py_that_never_commits_fails_the_upgrade(sandbox: RunSandbox) -> None:
    """SET on the connection before context.configure() without a commit: Alembic leaves the
    transaction to env.py, and closing the connection rolls the whole upgrade back."""
    outcome = sandbox("env_never_commits", new=("0001", "0002"))
    finding = only(outcome, "upgrade-failed")
    assert "alembic_version still holds no revision: nothing was committed" in finding.message
    assert "connection.commit()" in finding.message
    assert outcomes_of(outcome)[:2] == [
        ("upgrade to the base", "passed"),
        ("upgrade to head", "failed"),
    ]


# -- failures -------------------------------------------------------------------------------------


def test_upgrade_failure_names_postgres_error_and_statement(sandbox: RunSandbox) -> None:
    outcome = sandbox("upgrade_fails")
    finding = only(outcome, "upgrade-failed")
    assert 'column "email" of relation "accounts" already exists' in finding.message
    assert finding.path == "migrations/versions/0002_duplicate_column.py"
    assert (finding.line, finding.revision) == (16, "0002")
    assert finding.statement == "ALTER TABLE accounts ADD COLUMN email TEXT"
    assert outcomes_of(outcome) == [
        ("upgrade to the base", "passed"),
        ("upgrade to head", "failed"),
        ("post-migration checks", "skipped"),
        ("rollback to the base", "skipped"),
        ("upgrade again", "skipped"),
    ]


def test_a_working_change_passes_every_step(sandbox: RunSandbox) -> None:
    outcome = sandbox("alter_then_backfill")
    assert outcomes_of(outcome) == [(name, "passed") for name in STEPS]
    assert not rules_of(outcome) & {
        "upgrade-failed",
        "downgrade-failed",
        "rollback-schema-mismatch",
        "rollback-data-loss",
        "reupgrade-failed",
        "undeclared-change",
        "sandbox-failed",
    }
    assert outcome.report.rollback_diff == []
    assert outcome.report.schema_diff  # amount int -> bigint
    assert outcome.report.server_version


def test_downgrade_failure_names_postgres_error_and_statement(sandbox: RunSandbox) -> None:
    outcome = sandbox("downgrade_fails")
    finding = only(outcome, "downgrade-failed")
    assert 'column "nick_name" of relation "accounts" does not exist' in finding.message
    assert (finding.path, finding.line) == ("migrations/versions/0002_add_nickname.py", 19)
    assert outcomes_of(outcome)[3:] == [
        ("rollback to the base", "failed"),
        ("upgrade again", "skipped"),
    ]


def test_downgrade_that_forgets_an_index_mismatches_and_cannot_reupgrade(
    sandbox: RunSandbox,
) -> None:
    outcome = sandbox("forgotten_index")
    mismatch = only(outcome, "rollback-schema-mismatch")
    assert "index public.ix_accounts_tenant_id added" in mismatch.message
    assert outcome.report.rollback_diff == [
        "index public.ix_accounts_tenant_id added: "
        "CREATE INDEX ix_accounts_tenant_id ON public.accounts USING btree (tenant_id)"
    ]
    again = only(outcome, "reupgrade-failed")
    assert 'relation "ix_accounts_tenant_id" already exists' in again.message
    assert (again.path, again.line) == ("migrations/versions/0002_tenant_index.py", 14)
    assert "rollback-data-loss" not in rules_of(outcome)


def test_dropped_column_readded_empty_loses_data(sandbox: RunSandbox) -> None:
    outcome = sandbox("drop_column_readded")
    finding = only(outcome, "rollback-data-loss")
    assert finding.message == (
        "table public.accounts: the 3 seeded rows came back changed (a column's data was lost)"
    )
    # The column is back with its type: only the data tells the difference.
    assert "rollback-schema-mismatch" not in rules_of(outcome)
    assert outcome.report.seeded["public.accounts"] == 3


# -- indexes --------------------------------------------------------------------------------------


def test_swallowed_concurrent_unique_index_failure_leaves_an_invalid_index(
    sandbox: RunSandbox,
) -> None:
    """CREATE UNIQUE INDEX CONCURRENTLY over duplicates fails after creating the index; the
    migration catches the error, the upgrade succeeds, and the invalid index stays."""
    outcome = sandbox("invalid_index")
    finding = only(outcome, "invalid-index")
    assert "public.ux_accounts_email is invalid" in finding.message
    assert (finding.path, finding.line) == ("migrations/versions/0002_unique_email.py", 16)
    assert "could not create unique index" in (traced(outcome, "UNIQUE INDEX").error or "")
    assert "upgrade-failed" not in rules_of(outcome)


def test_indexes_built_concurrently_are_valid_and_usable(sandbox: RunSandbox) -> None:
    outcome = sandbox("clean_change")
    assert outcome.findings == []  # a plain btree and a partial index, both usable
    checks = next(s for s in outcome.report.steps if s.name == "post-migration checks")
    assert checks.outcome == "passed"


def test_index_in_another_collation_than_the_column_is_unusable(sandbox: RunSandbox) -> None:
    outcome = sandbox("index_collation")
    finding = only(outcome, "index-unusable")
    assert "public.ix_accounts_name" in finding.message
    assert (finding.path, finding.line) == ("migrations/versions/0002_name_index.py", 17)


def test_indexes_checked_together_are_judged_each_on_its_own(sandbox: RunSandbox) -> None:
    """Five new indexes on two tables, one ANALYZE and one batch of EXPLAINs: only the one in
    another collation is unusable; the expression index is not judged."""
    outcome = sandbox("many_indexes")
    finding = only(outcome, "index-unusable")
    assert "public.ix_accounts_name_posix" in finding.message
    assert "invalid-index" not in rules_of(outcome)
    checks = step_named(outcome, "post-migration checks")
    assert checks.outcome == "failed"
    assert checks.detail is not None and "ix_accounts_name_posix not used" in checks.detail
    assert "ix_notes_account_id" not in checks.detail


# -- row level security ---------------------------------------------------------------------------


def test_tenant_tables_without_rls_policy_or_isolation(sandbox: RunSandbox) -> None:
    outcome = sandbox("rls_tables", rls=tenant_rls(TENANT_TABLES))
    by_rule = {f.rule: f for f in outcome.findings}
    assert sorted(by_rule) == ["rls-disabled", "rls-no-policy", "tenant-isolation-broken"]
    assert "public.notes_plain" in by_rule["rls-disabled"].message
    assert "public.notes_no_policy" in by_rule["rls-no-policy"].message
    broken = by_rule["tenant-isolation-broken"].message
    assert broken.startswith("public.notes_open: with app.tenant_id = ")
    assert "read 1 row(s) of tenant" in broken
    assert by_rule["tenant-isolation-broken"].line == 26  # CREATE POLICY everyone ... (true)


def test_tenant_isolation_without_rows_to_read_is_not_verified(sandbox: RunSandbox) -> None:
    """A policy letting every tenant read every row, on a table nothing can be inserted into:
    reading no other tenant's row proves nothing, so it is reported, not passed."""
    outcome = sandbox("rls_unseedable", rls=tenant_rls(["notes_sealed"]))
    finding = only(outcome, "tenant-isolation-broken")
    assert finding.message.startswith(
        "public.notes_sealed: tenant isolation could not be verified: "
        "no rows could be inserted into public.notes_sealed"
    )
    assert "no_rows" in finding.message  # PostgreSQL's reason: the CHECK constraint


def test_correct_tenant_policy_is_no_finding(sandbox: RunSandbox) -> None:
    for settings in (tenant_rls(TENANT_TABLES), tenant_rls("all")):
        outcome = sandbox("rls_tables", rls=settings)
        assert not any("notes_tenant" in f.message for f in outcome.findings)


def test_all_tables_are_tenant_tables_when_the_policy_says_all(sandbox: RunSandbox) -> None:
    listed = sandbox("rls_tables", rls=tenant_rls(TENANT_TABLES))
    every = sandbox("rls_tables", rls=tenant_rls("all"))
    disabled = {f.message for f in every.findings if f.rule == "rls-disabled"}
    assert disabled == {
        "tenant table public.accounts has row level security disabled",
        "tenant table public.notes_plain has row level security disabled",
    }
    assert not any("accounts" in f.message for f in listed.findings)
    # Rows written by the isolation test do not outlive it: the rollback is clean.
    assert "rollback-data-loss" not in rules_of(every)


def test_no_tenant_tables_no_rls_findings(sandbox: RunSandbox) -> None:
    outcome = sandbox("rls_tables")
    assert outcome.findings == []


# -- undeclared changes ---------------------------------------------------------------------------


def test_column_dropped_only_online_is_an_undeclared_change(sandbox: RunSandbox) -> None:
    outcome = sandbox("hidden_drop")
    finding = only(outcome, "undeclared-change")
    assert finding.message == (
        "column accounts.email disappeared, but the dry-run's SQL never dropped or renamed it"
    )
    assert (finding.path, finding.line) == ("migrations/versions/0002_hidden_drop_email.py", 18)


def test_declared_drop_is_no_undeclared_change(sandbox: RunSandbox) -> None:
    outcome = sandbox("drop_column_readded")
    assert "undeclared-change" not in rules_of(outcome)
    assert "column public.accounts.email removed" in outcome.report.schema_diff[0]


def test_a_type_change_made_only_online_is_an_undeclared_change(sandbox: RunSandbox) -> None:
    outcome = sandbox("grows")
    finding = only(outcome, "undeclared-change")
    assert finding.message == (
        "column accounts.amount: type integer → bigint, but the dry-run's SQL never declared it"
    )
    assert finding.statement == "ALTER TABLE accounts ALTER COLUMN amount TYPE bigint"


# -- database limits ------------------------------------------------------------------------------

SIZE_LIMIT = 16 * 1024**2


def test_a_database_over_the_size_limit_stops_the_run(sandbox: RunSandbox) -> None:
    outcome = sandbox("grows", max_bytes=SIZE_LIMIT)
    finding = only(outcome, "sandbox-size-limit")
    assert finding.severity is Severity.ERROR
    prefix = "the sandbox database measured "
    suffix = (
        " after the step 'upgrade to head', over the limit of 16 MiB (sandbox.max_database_size)"
    )
    assert finding.message.startswith(prefix) and finding.message.endswith(suffix), finding.message
    measured = finding.message.removeprefix(prefix).removesuffix(suffix)
    number, unit = measured.split()
    assert unit == "MiB" and 30 < float(number) < 64  # the ~30 MB the migration loaded
    assert outcomes_of(outcome) == [
        ("upgrade to the base", "passed"),
        ("upgrade to head", "failed"),
        ("post-migration checks", "skipped"),
        ("rollback to the base", "skipped"),
        ("upgrade again", "skipped"),
    ]
    assert step_named(outcome, "rollback to the base").detail == (
        "the database outgrew the size limit"
    )
    # What the head changed is judged all the same.
    assert "undeclared-change" in rules_of(outcome)


def test_the_default_size_limit_is_one_gib(sandbox: RunSandbox) -> None:
    outcome = sandbox("grows")
    assert DEFAULT_MAX_DATABASE_BYTES == 1024**3 and format_bytes(1024**3) == "1 GiB"
    assert "sandbox-size-limit" not in rules_of(outcome)
    assert outcomes_of(outcome) == [(name, "passed") for name in STEPS]


def test_bytes_are_named_in_binary_units() -> None:
    assert [format_bytes(n) for n in (0, 1023, 1536, 16 * 1024**2, 3 * 1024**4)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "16 MiB",
        "3072 GiB",
    ]


def test_a_sandbox_database_error_names_a_refused_connection_as_a_side_connection() -> None:
    refused = database_failure('connection failed: FATAL:  too many connections for role "r"')
    assert refused.rule == "sandbox-side-connection"
    assert refused.message.startswith("a process of the migration connected to the sandbox")
    other = database_failure("connection failed: server closed the connection")
    assert other.rule == "sandbox-failed"


# -- cleanup --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["alter_then_backfill", "upgrade_fails", "downgrade_fails", "forgotten_index", "rls_tables"],
)
def test_sandbox_database_and_role_are_gone_after_the_run(
    sandbox: RunSandbox, left_after: dict[str, list[str]], name: str
) -> None:
    sandbox(name)
    assert left_after[name] == []


# -- the migrations' code never runs in an admin session ------------------------------------------


def test_checks_never_run_migration_code_as_superuser(sandbox: RunSandbox) -> None:
    """A trigger (seeding), a policy (the tenant test) and an IMMUTABLE function the planner
    folds (EXPLAIN of a partial index) all raise in a superuser's session; every check runs
    them as the sandbox's own role, and forced RLS still lets the checks see every row."""
    outcome = sandbox("superuser_probe", rls=tenant_rls(["accounts"]))
    assert outcome.report.seeded == {"public.accounts": 3}
    assert outcome.report.seed_failures == {}
    assert outcomes_of(outcome) == [(name, "passed") for name in STEPS]
    assert rules_of(outcome) == {"access-exclusive-lock"}


def test_operators_the_migration_defines_never_run_as_superuser(sandbox: RunSandbox) -> None:
    """The role owns schema public: an operator `public.|| (name, name)` raising in a
    superuser's session would be what the admin's catalog reads call, were public on their
    search_path; every snapshot (base, head, rollback) runs without it."""
    outcome = sandbox("operator_probe")
    assert not [f for f in outcome.findings if "superuser" in f.message], outcome.findings
    assert outcomes_of(outcome) == [(name, "passed") for name in STEPS]


RECORDING_OPERATOR = """
CREATE TABLE operator_calls (who text, superuser text);
GRANT INSERT ON operator_calls TO PUBLIC;
CREATE FUNCTION public.concat_probe(a name, b name) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.operator_calls
        VALUES (current_user, pg_catalog.current_setting('is_superuser'));
    RETURN pg_catalog.textcat(a::text, b::text);
END $$;
CREATE OPERATOR public.|| (LEFTARG = name, RIGHTARG = name, FUNCTION = concat_probe);
ALTER DATABASE {database} SET search_path = public, pg_catalog;
"""


def test_admin_catalog_reads_never_call_the_roles_operators(
    sandbox_server: SandboxServer,
) -> None:
    """The same snapshot through a default admin session calls the role's operator (the probe
    works); through the run's admin session, with the owner's ALTER DATABASE SET search_path
    too, it is never called."""
    with create_sandbox(sandbox_server) as box:
        with psycopg.connect(box.conninfo, autocommit=True) as role:
            role.execute(RECORDING_OPERATOR.format(database=box.database))
        with admin_connection(box) as admin:
            take_snapshot(admin)
        with psycopg.connect(box.conninfo, autocommit=True) as role:
            assert role.execute("SELECT * FROM operator_calls").fetchall() == []
        with psycopg.connect(box.admin_conninfo, autocommit=True) as unguarded:
            take_snapshot(unguarded)
            calls = unguarded.execute("SELECT DISTINCT superuser FROM operator_calls").fetchall()
        assert calls == [("on",)]


# -- models: schema-drift ------------------------------------------------------------------------


def test_models_that_differ_from_the_upgraded_database_are_schema_drift(
    sandbox: RunSandbox,
) -> None:
    outcome = sandbox("models_drift")
    finding = only(outcome, "schema-drift")
    assert finding.severity is Severity.WARNING
    assert "differs from the models (env.py's target_metadata) in 2 place(s)" in finding.message
    assert "add_table audit_log" in finding.message
    assert "modify_nullable accounts.nickname: True -> False" in finding.message
    # env.py's include_object leaves legacy_* out, as `alembic check` would.
    assert "legacy_imports" not in finding.message
    assert "only part of the models" not in finding.message
    checks = step_named(outcome, "post-migration checks")
    assert checks.outcome == "failed"
    assert (checks.detail or "").startswith("2 difference(s) from the models: add_table audit_log")
    assert step_named(outcome, "rollback to the base").outcome == "passed"


def test_models_that_load_only_part_of_the_tables_are_one_summarised_finding(
    sandbox: RunSandbox,
) -> None:
    """env.py's target_metadata has accounts only: the 7 billing tables are one summary,
    not 7 findings, and the one real difference is still named."""
    outcome = sandbox("models_partial")
    finding = only(outcome, "schema-drift")
    assert "in 8 place(s)" in finding.message
    assert "7 of the 8 difference(s) are tables the database has and the models do not" in (
        finding.message
    )
    assert "remove_table customers; remove_table invoices" not in finding.message
    named = finding.message.split("the models do not (", 1)[1].split(")", 1)[0]
    assert named.endswith("; and 2 more") and named.count(";") == 5
    assert set(named.split("; ")[:5]) < {"customers", "invoices", "invoice_lines", "payments"} | {
        "refunds",
        "credit_notes",
        "tax_rates",
    }
    assert "load only part of the models" in finding.message
    assert finding.message.endswith("the other 1: modify_nullable accounts.nickname: True -> False")
    detail = step_named(outcome, "post-migration checks").detail or ""
    assert "8 difference(s) from the models: 7 of the 8" in detail


def test_models_matching_the_upgraded_database_are_no_drift(sandbox: RunSandbox) -> None:
    outcome = sandbox("models_match")
    assert "schema-drift" not in rules_of(outcome)
    checks = step_named(outcome, "post-migration checks")
    assert checks.outcome == "passed"
    assert (checks.detail or "").endswith("; schema matches the models (target_metadata)")


def test_without_target_metadata_there_are_no_models_to_compare(sandbox: RunSandbox) -> None:
    outcome = sandbox("clean_change")
    assert "schema-drift" not in rules_of(outcome)
    detail = step_named(outcome, "post-migration checks").detail or ""
    assert detail.endswith("; no models to compare (env.py sets no target_metadata)")


def test_models_that_take_the_child_down_skip_no_later_step(sandbox: RunSandbox) -> None:
    """env.py's include_object (run only by the comparison) ends the process: the comparison
    is reported as not done, and the rollback steps still run, in a new child."""
    outcome = sandbox("models_crash")
    assert "schema-drift" not in rules_of(outcome)
    detail = step_named(outcome, "post-migration checks").detail or ""
    assert "; models not compared: the child ended without a result" in detail
    assert outcomes_of(outcome) == [(name, "passed") for name in STEPS]


# -- the child that runs every step: one process, a private channel ---------------------------

# A stand-in for _online_child.py: echoes each request; may print, start a thread that keeps
# appending to a file in the folder it may write (TICKS), sleep, or die.
_ECHO_CHILD = """
import json, os, sys, threading, time
home = os.environ.get("TICKS", os.environ["HOME"])

def tick():
    while True:
        with open(os.path.join(home, "ticks"), "a") as handle:
            handle.write("x")
        time.sleep(0.002)

with open(int(sys.argv[1]), "rb") as requests, open(int(sys.argv[2]), "wb") as replies:
    for line in requests:
        request = json.loads(line)
        if request.get("print"):
            print(json.dumps({"forged": True}), flush=True)
        if request.get("tick"):
            threading.Thread(target=tick, daemon=True).start()
        time.sleep(request.get("sleep", 0))
        if request.get("die"):
            sys.stderr.write(request["die"] + "\\n")
            sys.stderr.flush()
            os._exit(3)
        replies.write(json.dumps({"echo": request, "home": home}).encode() + b"\\n")
        replies.flush()
"""


@pytest.fixture
def echo_script(tmp_path: Path) -> Path:
    script = tmp_path / "echo_child.py"
    script.write_text(_ECHO_CHILD)
    return script


def test_what_the_child_prints_cannot_forge_its_answers(echo_script: Path) -> None:
    with contained_python(echo_script, cwd=Path("/"), env=scrubbed_env(), timeout_s=30) as child:
        reply = child.request({"print": True, "n": 1})
        assert reply.message is not None
        assert reply.message["echo"] == {"print": True, "n": 1}
        assert "forged" not in reply.message


def test_the_child_is_stopped_between_requests(echo_script: Path, tmp_path: Path) -> None:
    """A thread the child left running does nothing while the parent checks the database."""
    ticks_dir = tmp_path / "ticks"
    ticks_dir.mkdir()
    with contained_python(
        echo_script,
        cwd=Path("/"),
        env=scrubbed_env({"TICKS": str(ticks_dir)}),
        timeout_s=30,
        writable_paths=[ticks_dir],
    ) as child:
        first = child.request({"tick": True, "sleep": 0.1})
        assert first.message is not None
        ticks = Path(first.message["home"]) / "ticks"
        time.sleep(0.05)  # SIGSTOP is sent when the answer arrives; let it land everywhere
        stopped_at = ticks.stat().st_size
        time.sleep(0.3)
        assert ticks.stat().st_size == stopped_at
        assert child.request({"sleep": 0.1}).message is not None
        assert ticks.stat().st_size > stopped_at


def test_a_request_without_answer_kills_the_child_at_the_wall_clock(echo_script: Path) -> None:
    with contained_python(echo_script, cwd=Path("/"), env=scrubbed_env(), timeout_s=1) as child:
        assert child.request({"n": 1}).message is not None  # started, imports done
        began = time.monotonic()
        reply = child.request({"sleep": 60})
        assert reply.timed_out and reply.message is None
        assert time.monotonic() - began < 1 + 3
        after = child.request({"n": 2})
        assert after.ended == "killed after 1 s (wall clock limit)"


def test_a_child_that_dies_is_reported_with_its_stderr(echo_script: Path) -> None:
    with contained_python(
        echo_script, cwd=Path("/"), env=scrubbed_env(), timeout_s=30, python=sys.executable
    ) as child:
        reply = child.request({"die": "migration crashed hard"})
        assert reply.message is None and not reply.timed_out
        assert reply.ended == "the child ended without a result: migration crashed hard"
