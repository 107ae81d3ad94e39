"""Alembic's offline SQL, traced to file and line. Runs INSIDE the isolated child.

Usage: python -I -B _offline_child.py REQUEST.json RESULT.json

Self-contained (standard library, alembic, sqlalchemy only): it runs as a script with
`python -I`, where migsafe's package is not importable, and it executes the repository's
env.py and migration files, which are untrusted. How Alembic is set up (working directory,
Config, variables) is shared with the sandbox's child: `_alembic_config.py`, inlined into
this script when it is started (the import marked `# migsafe: inline`).

Every chunk Alembic emits in offline mode goes through `DefaultImpl.static_output`; at that
moment the Python stack holds the migration file's frame (the op.* call) and, further out,
Alembic's `MigrationContext.run_migrations` frame whose `step` is the revision being run.

Request: {"project_dir", "alembic": {...} (see _alembic_config.py), "versions_dirs": [...],
          "upgrade": {"start": [...] | null, "end": [...] | null},
          "downgrade": {"start": [...] | null, "end": [...] | null}}
  (null start: from base for upgrade, from the heads for downgrade;
   null end: the heads for upgrade, base for downgrade)
Result: {"phases": {"upgrade"|"downgrade": {"sql", "chunks": [{sql, revision, path, line}],
          "start", "end", "complete", "note"?}}, "error": str | null,
          "version_table"?: the name env.py gave Alembic's version table}
  ("note": what was done where Alembic itself cannot, e.g. a downgrade to several bases)
"""

from __future__ import annotations

import io
import json
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from bot.migrations._alembic_config import alembic_config, enter_project  # migsafe: inline

ERROR_TAIL_LINES = 25


class Tracer:
    """Records every emitted chunk with the revision and migration file:line that made it."""

    def __init__(self, project_dir: str, versions_dirs: list[str]) -> None:
        self.project_dir = os.path.realpath(project_dir)
        self.versions_dirs = tuple(os.path.realpath(d) + os.sep for d in versions_dirs)
        self.chunks: list[dict[str, Any]] = []
        self._in_versions: dict[str, str | None] = {}

    def record(self, text: str) -> None:
        path, line, revision = self._origin(sys._getframe(2))
        self.chunks.append({"sql": text, "revision": revision, "path": path, "line": line})

    def take(self) -> list[dict[str, Any]]:
        chunks, self.chunks = self.chunks, []
        return chunks

    def _origin(self, frame: FrameType | None) -> tuple[str | None, int | None, str | None]:
        path: str | None = None
        line: int | None = None
        revision: str | None = None
        while frame is not None:
            if path is None:
                relative = self.versions_file(frame.f_code.co_filename)
                if relative is not None:
                    path, line = relative, frame.f_lineno
            if _is_step_runner(frame):
                revision = _step_revision(frame.f_locals["step"])
                break
            frame = frame.f_back
        return path, line, revision

    def versions_file(self, filename: str) -> str | None:
        if filename not in self._in_versions:
            real = os.path.realpath(filename)
            inside = real.startswith(self.versions_dirs)
            self._in_versions[filename] = (
                os.path.relpath(real, self.project_dir) if inside else None
            )
        return self._in_versions[filename]


def _is_step_runner(frame: FrameType) -> bool:
    return (
        frame.f_code.co_name == "run_migrations"
        and frame.f_globals.get("__name__") == "alembic.runtime.migration"
        and "step" in frame.f_locals
    )


def _step_revision(step: object) -> str | None:
    script = getattr(step, "revision", None)
    revision = getattr(script, "revision", None)
    return revision if isinstance(revision, str) else None


def install(tracer: Tracer) -> None:
    from alembic.ddl.impl import DefaultImpl

    original = DefaultImpl.static_output

    def static_output(self: DefaultImpl, text: str) -> None:
        tracer.record(text)
        original(self, text)

    DefaultImpl.static_output = static_output  # type: ignore[method-assign]


def build_config(request: dict[str, Any], phase: str, output: io.StringIO) -> Any:
    """As `alembic upgrade --sql` / `downgrade --sql` would build it; the URL is an offline
    one (a dialect, never a connection)."""
    command = [phase, "--sql", "heads" if phase == "upgrade" else "heads:base"]
    return alembic_config(request["alembic"], command, output_buffer=output, stdout=sys.stderr)


def run_phase(config: Any, phase: str, start: Any, end: Any) -> str | None:
    """What `alembic upgrade --sql START:END` / `downgrade --sql START:END` does, but
    accepting several start or end revisions (merges, multiple heads); the name of the
    version table env.py configured."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(config)

    def steps(rev: Any, context: Any) -> Any:
        if phase == "upgrade":
            return script._upgrade_revs(end, rev)
        if isinstance(end, tuple):
            return reversed_upgrade(script, start, end)
        return script._downgrade_revs(end, rev)

    with EnvironmentContext(
        config, script, fn=steps, as_sql=True, starting_rev=start, destination_rev=end
    ) as environment:
        script.run_env()
        context = getattr(environment, "_migration_context", None)
    name = getattr(context, "version_table", None)
    return name if isinstance(name, str) else None


def reversed_upgrade(script: Any, heads: Any, bases: tuple[str, ...]) -> list[Any]:
    """Alembic downgrades to one target only; for several, undo the upgrade's steps."""
    from alembic.runtime.migration import MigrationStep

    upgrade_steps = script._upgrade_revs(heads, bases)
    return [
        MigrationStep.downgrade_from_script(script.revision_map, step.revision)
        for step in reversed(upgrade_steps)
    ]


def resolve_range(config: Any, phase: str, spec: dict[str, Any]) -> tuple[Any, Any]:
    from alembic.script import ScriptDirectory

    start, end = spec.get("start"), spec.get("end")
    if phase == "upgrade":
        return _one_or_many(start, None), _one_or_many(end, "heads")
    if not start:  # downgrade from every head: the heads must be named for offline mode
        start = list(ScriptDirectory.from_config(config).get_heads())
    return _one_or_many(start, None), _one_or_many(end, "base")


def _one_or_many(revisions: list[str] | None, default: str | None) -> Any:
    if not revisions:
        return default
    return revisions[0] if len(revisions) == 1 else tuple(revisions)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Whatever migrations print lands in stderr, never in the SQL or the result."""
    saved = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = saved


def describe_failure(exc: BaseException, tracer: Tracer | None, phase: str | None) -> str:
    """The exception first, with the migration file:line it came from, then the traceback."""
    summary = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    where = [f"during {phase}"] if phase else []
    if tracer is not None:
        for frame, line in reversed(list(traceback.walk_tb(exc.__traceback__))):
            relative = tracer.versions_file(frame.f_code.co_filename)
            if relative is not None:
                where.insert(0, f"at {relative}:{line}")
                break
    if where:
        summary += f" ({', '.join(where)})"
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
    tail = "".join(lines).splitlines()[-ERROR_TAIL_LINES:]
    return summary + "\n" + "\n".join(tail)


def main(request_path: str, result_path: str) -> int:
    sys.stdin = io.StringIO()  # input() ends at once (fd 0 is /dev/null from the parent too)
    sys.dont_write_bytecode = True
    result: dict[str, Any] = {"phases": {}, "error": None}
    tracer: Tracer | None = None
    phase: str | None = None
    try:
        with open(request_path, encoding="utf-8") as stream:
            request = json.load(stream)
        enter_project(request["alembic"])
        tracer = Tracer(request["project_dir"], request["versions_dirs"])
        install(tracer)
        with stdout_to_stderr():
            for phase in ("upgrade", "downgrade"):
                run_traced_phase(request, phase, tracer, result)
    except BaseException as exc:  # SystemExit from a migration is a failure too
        result["error"] = describe_failure(exc, tracer, phase)
    with open(result_path, "w", encoding="utf-8") as stream:
        json.dump(result, stream)
    return 1 if result["error"] else 0


def run_traced_phase(
    request: dict[str, Any], phase: str, tracer: Tracer, result: dict[str, Any]
) -> None:
    config = build_config(request, phase, io.StringIO())
    start, end = resolve_range(config, phase, request.get(phase) or {})
    try:
        version_table = run_phase(config, phase, start, end)
        if version_table:
            result["version_table"] = version_table
    finally:
        chunks = tracer.take()
        result["phases"][phase] = {
            "sql": "".join(chunk["sql"] + "\n\n" for chunk in chunks),
            "chunks": chunks,
            "start": start,
            "end": end,
            "complete": False,
        }
    result["phases"][phase]["complete"] = True
    if phase == "downgrade" and isinstance(end, tuple):
        result["phases"][phase]["note"] = (
            "Alembic downgrades to a single revision only; this undoes the upgrade's steps "
            f"one by one back to {', '.join(end)}"
        )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.stderr.write("usage: _offline_child.py REQUEST.json RESULT.json\n")
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
