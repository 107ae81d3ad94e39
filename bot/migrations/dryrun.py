"""The dry-run: Alembic's offline SQL of the new revisions, traced to file and line.

The repository's env.py and migrations run only in an isolated child (`_child.py` under
`run_isolated`); this side writes the request, reads the child's result file and turns it into
`Statement`s. Anything the child does wrong (fails, hangs, dies, writes garbage) becomes
`DryRun.error`, never an exception here.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from bot.analysis.model import Phase, Statement
from bot.analysis.parse import split_sql
from bot.migrations.childscript import alembic_spec, child_script
from bot.migrations.database_env import OFFLINE, child_variables
from bot.migrations.model import DryRun
from bot.sandbox.isolation import (
    MAX_RESULT_BYTES,
    IsolatedResult,
    Limits,
    run_python_script,
    scrubbed_env,
)

CHILD_SCRIPT = Path(__file__).with_name("_child.py")
STDERR_TAIL_LINES = 20
PHASES: tuple[Phase, ...] = ("upgrade", "downgrade")


class _MalformedResult(Exception):
    """The child's result file is not what `_child.py` writes."""


def dry_run(
    project_dir: Path,
    *,
    ini_path: Path | None,
    script_location: Path,
    versions_dirs: list[Path],
    base: tuple[str, ...],
    heads: tuple[str, ...],
    timeout_s: float = 120,
    extra_env: dict[str, str] | None = None,
    limits: Limits | None = None,
    python: str = sys.executable,
    working_dir: Path | None = None,
    ini_section: str = "alembic",
    x_arguments: Sequence[str] = (),
    sandbox_env: Mapping[str, str] | None = None,
) -> DryRun:
    """Upgrade SQL base → heads and downgrade SQL heads → base, in an isolated child.

    `project_dir` is a working copy the child may touch; paths in the result are relative to
    it. Empty `base`: from the start of the history; empty `heads`: every head.
    Alembic runs as the sandbox runs it (`_alembic_config.py`): in `working_dir` (default:
    the ini's folder), with the ini's `ini_section` and the `-x` arguments; env.py finds an
    offline database in the usual places (`bot.migrations.database_env`) and the policy's
    `sandbox_env`; `python` is the policy's setup virtualenv, where it has one.
    """
    project_dir = project_dir.resolve()
    run_dir = working_dir or (ini_path.parent if ini_path else project_dir)
    variables = child_variables(OFFLINE, sandbox_env or {})
    spec = alembic_spec(
        working_dir=run_dir,
        ini_path=ini_path,
        script_location=script_location,
        section=ini_section,
        x_arguments=x_arguments,
        url=OFFLINE.url,
        env=variables,
    )
    with child_script(CHILD_SCRIPT) as script:
        raw, isolated = run_python_script(
            script,
            _request(project_dir, spec, versions_dirs, base, heads),
            cwd=run_dir.resolve(),
            env=scrubbed_env({**variables, **(extra_env or {})}),
            timeout_s=timeout_s,
            limits=limits or Limits(),
            python=python,
        )
    return _dry_run_from(raw, isolated, timeout_s)


def _request(
    project_dir: Path,
    spec: dict[str, Any],
    versions_dirs: list[Path],
    base: tuple[str, ...],
    heads: tuple[str, ...],
) -> dict[str, Any]:
    return {
        "project_dir": str(project_dir),
        "alembic": spec,
        "versions_dirs": [str(d.resolve()) for d in versions_dirs],
        "upgrade": {"start": list(base) or None, "end": list(heads) or None},
        "downgrade": {"start": list(heads) or None, "end": list(base) or None},
    }


def _dry_run_from(raw: bytes | None, isolated: IsolatedResult, timeout_s: float) -> DryRun:
    result = DryRun(protections=list(isolated.protections), duration_s=isolated.duration_s)
    child_error: str | None = None
    try:
        if raw is not None and len(raw) > MAX_RESULT_BYTES:
            raise _MalformedResult(f"larger than {MAX_RESULT_BYTES} bytes")
        if raw is not None:
            child_error = _fill_phases(result, json.loads(raw))
    except (ValueError, _MalformedResult) as exc:  # JSONDecodeError is a ValueError
        result.upgrade, result.downgrade = [], []
        result.error = _with_stderr(f"dry-run result unreadable: {exc}", isolated)
        return result
    result.error = _error_text(raw is not None, child_error, isolated, timeout_s)
    return result


def _error_text(
    has_result: bool, child_error: str | None, isolated: IsolatedResult, timeout_s: float
) -> str | None:
    if isolated.timed_out:
        return _with_stderr(f"dry-run timed out after {timeout_s:g} s", isolated)
    if child_error:
        return _with_stderr(f"alembic failed: {child_error.rstrip()}", isolated)
    if isolated.returncode != 0 or not has_result:
        return _with_stderr(
            f"dry-run child {_exit_description(isolated.returncode)} without a result", isolated
        )
    return None


def _exit_description(returncode: int | None) -> str:
    if returncode is None or returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    hint = {"SIGXCPU": " (cpu limit)", "SIGXFSZ": " (file size limit)"}.get(name, "")
    return f"was killed by {name}{hint}"


def _with_stderr(message: str, isolated: IsolatedResult) -> str:
    tail = isolated.stderr.strip().splitlines()[-STDERR_TAIL_LINES:]
    if not tail:
        return message
    return message + "\n--- child stderr (last lines) ---\n" + "\n".join(tail)


def _fill_phases(result: DryRun, data: object) -> str | None:
    """Statements and SQL text of each phase the child reached; returns its error, if any."""
    if not isinstance(data, dict) or not isinstance(data.get("phases"), dict):
        raise _MalformedResult("no 'phases' object")
    error = data.get("error")
    if error is not None and not isinstance(error, str):
        raise _MalformedResult("'error' is not a string")
    version_table = data.get("version_table")
    if isinstance(version_table, str) and version_table.strip():
        result.version_table = version_table.strip()
    for phase in PHASES:
        raw_phase = data["phases"].get(phase)
        if raw_phase is None:
            continue
        sql, statements = _phase_statements(phase, raw_phase)
        if phase == "upgrade":
            result.upgrade_sql, result.upgrade = sql, statements
        else:
            result.downgrade_sql, result.downgrade = sql, statements
    return error


def _phase_statements(phase: Phase, raw: object) -> tuple[str, list[Statement]]:
    if not isinstance(raw, dict):
        raise _MalformedResult(f"phase {phase!r} is not an object")
    sql, chunks, note = raw.get("sql"), raw.get("chunks"), raw.get("note")
    if not isinstance(sql, str) or not isinstance(chunks, list):
        raise _MalformedResult(f"phase {phase!r} lacks 'sql' or 'chunks'")
    if isinstance(note, str):  # shown where readers of the SQL will see it
        sql = f"-- migsafe: {note}\n\n{sql}"
    statements: list[Statement] = []
    for chunk in chunks:
        text, revision, path, line = _chunk_fields(chunk)
        # One emit may hold several statements (op.execute("a; b")); comment-only chunks
        # such as Alembic's "-- Running upgrade" markers yield none.
        for piece in split_sql(text):
            statements.append(
                Statement(
                    sql=piece,
                    phase=phase,
                    index=len(statements),
                    revision=revision,
                    path=path,
                    line=line,
                )
            )
    return sql, statements


def _chunk_fields(chunk: object) -> tuple[str, str | None, str | None, int | None]:
    if not isinstance(chunk, dict) or not isinstance(chunk.get("sql"), str):
        raise _MalformedResult("a statement without 'sql' text")
    revision, path, line = chunk.get("revision"), chunk.get("path"), chunk.get("line")
    if not isinstance(revision, str | None) or not isinstance(path, str | None):
        raise _MalformedResult("a statement's 'revision' or 'path' is not a string")
    if not isinstance(line, int | None) or isinstance(line, bool):
        raise _MalformedResult("a statement's 'line' is not an integer")
    return chunk["sql"], revision, PurePath(path).as_posix() if path else None, line
