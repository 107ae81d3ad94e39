"""The dry-run: Alembic's offline SQL of the new revisions, traced to file and line.

The repository's env.py and migrations run only in an isolated child (`_offline_child.py` under
`run_isolated`); this side writes the request, reads the child's result file and turns it into
`Statement`s. Anything the child does wrong (fails, hangs, dies, writes garbage) becomes
`DryRun.error`, never an exception here.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from bot.analysis.migration_model import DryRun
from bot.analysis.model import Phase, Statement
from bot.analysis.parse import split_sql
from bot.migrations.childscript import alembic_spec, inlined_source
from bot.migrations.database_env import OFFLINE, child_variables
from bot.sandbox.isolation import (
    MAX_RESULT_BYTES,
    IsolatedResult,
    Limits,
    describe_exit,
    run_python_script,
    scrubbed_env,
)

CHILD_SCRIPT = Path(__file__).with_name("_offline_child.py")
STDERR_TAIL_LINES = 20
PHASES: tuple[Phase, ...] = ("upgrade", "downgrade")
_TRACEBACK_HEADER = "Traceback (most recent call last):"
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


class _MalformedResult(Exception):
    """The child's result file is not what `_offline_child.py` writes."""


@dataclass(frozen=True)
class FailureSummary:
    """The last traceback of a failure text: its exception line and its deepest frame in
    the repository."""

    exception: str
    path: str | None  # relative to the project directory, '/' separated
    line: int | None

    def text(self, phase: str | None = None) -> str:
        where = [f"at {self.path}:{self.line}"] if self.path else []
        where += [f"during {phase}"] if phase else []
        return f"{self.exception} ({', '.join(where)})" if where else self.exception


def summarize_traceback(text: str, project_dir: Path) -> FailureSummary | None:
    """The exception line of the last Python traceback in `text` and the deepest of its frames
    inside `project_dir` (outside site-packages); None when `text` holds no traceback.

    Tolerates a traceback whose beginning was cut (a tail of the text)."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK_HEADER]
    block = lines[headers[-1] + 1 :] if headers else lines
    frames = [(i, match) for i, line in enumerate(block) if (match := _FRAME.match(line))]
    if not frames:
        return None
    after = block[frames[-1][0] + 1 :]
    exception = next((line.strip() for line in after if line[:1].strip()), None)
    if exception is None:
        return None
    root = os.path.realpath(project_dir)
    for _, frame in reversed(frames):
        relative = _inside(frame["file"], root)
        if relative is not None:
            return FailureSummary(exception, relative, int(frame["line"]))
    return FailureSummary(exception, None, None)


def _inside(filename: str, root: str) -> str | None:
    real = os.path.realpath(filename)
    if not real.startswith(root + os.sep) or "site-packages" in Path(real).parts:
        return None
    return Path(os.path.relpath(real, root)).as_posix()


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
    raw, isolated = run_python_script(
        CHILD_SCRIPT,
        _request(project_dir, spec, versions_dirs, base, heads),
        source=inlined_source(CHILD_SCRIPT),
        cwd=run_dir.resolve(),
        env=scrubbed_env({**variables, **(extra_env or {})}),
        timeout_s=timeout_s,
        limits=limits or Limits(),
        python=python,
        readable_paths=[project_dir],
    )
    result = _dry_run_from(raw, isolated, timeout_s, limits or Limits())
    _summarize(result, raw, isolated, project_dir)
    return result


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


def _dry_run_from(
    raw: bytes | None, isolated: IsolatedResult, timeout_s: float, limits: Limits
) -> DryRun:
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
    result.error = _error_text(raw is not None, child_error, isolated, timeout_s, limits)
    return result


def _summarize(
    result: DryRun, raw: bytes | None, isolated: IsolatedResult, project_dir: Path
) -> None:
    """`error_summary` (and the place) of a failed dry-run: the exception Alembic or the
    migration raised, not the last line the child logged."""
    if result.error is None:
        return
    headline = result.error.splitlines()[0] if result.error.strip() else "dry-run failed"
    child_error, phase = _child_failure(raw)
    if child_error is not None:
        summary = summarize_traceback(child_error, project_dir)
        if summary is not None:
            result.error_summary = summary.text(phase)
            result.error_path, result.error_line = summary.path, summary.line
            return
    summary = summarize_traceback(isolated.stderr, project_dir)
    if summary is None:
        result.error_summary = headline
        return
    result.error_summary = f"{headline}: {summary.text()}"
    result.error_path, result.error_line = summary.path, summary.line


def _child_failure(raw: bytes | None) -> tuple[str | None, str | None]:
    """The child's own error text and the phase that failed, when its result says so."""
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None, None
    if not isinstance(data, dict) or not isinstance(data.get("error"), str):
        return None, None
    phases = data.get("phases")
    phases = phases if isinstance(phases, dict) else {}
    failed = next(
        (p for p in PHASES if not isinstance(phases.get(p), dict) or not phases[p].get("complete")),
        None,
    )
    return data["error"], failed


def _error_text(
    has_result: bool,
    child_error: str | None,
    isolated: IsolatedResult,
    timeout_s: float,
    limits: Limits,
) -> str | None:
    if isolated.timed_out:
        return _with_stderr(f"dry-run timed out after {timeout_s:g} s", isolated)
    if child_error:
        return _with_stderr(f"alembic failed: {child_error.rstrip()}", isolated)
    if isolated.returncode != 0 or not has_result:
        return _with_stderr(
            f"dry-run child "
            f"{describe_exit(isolated.returncode, limits, isolated.killed_for)} without a result",
            isolated,
        )
    return None


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
