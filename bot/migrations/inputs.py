"""What a check runs from the repository: the files an approval is for.

An approval stays fresh only while none of these change (`bot.policy.fingerprint` hashes
them):

- the revisions: every `.py` file in the version locations (and, when the policy sets
  `migration_paths`, the files matching them);
- the script directory's `env.py` and `script.py.mako`;
- the Alembic configuration: `alembic.ini`, and `pyproject.toml` when it has a
  `[tool.alembic]` table;
- the setup inputs: the files the policy's `sandbox.setup` commands name (requirement
  files followed through `-r`/`-c`, a named directory's packaging metadata, or the root's
  `requirements*.txt` / `pyproject.toml` / `setup.cfg` / `setup.py` when they name none),
  exactly the files that key the setup's virtualenv;
- the repository modules `env.py`, the revisions and the setup's Python scripts import,
  transitively, resolved statically (`bot.migrations.imports`) against the directories the
  migration child searches: `prepend_sys_path` (default `.`) relative to the directory
  Alembic runs in (the ini's), that directory itself, the repository root, its `src/`, and
  the script directory.

Nothing here runs repository code: files are read, hashed and parsed with `ast`. It works
on any tree on disk: the App's downloaded head commit and `migsafe check`'s working tree.
"""

from __future__ import annotations

import configparser
import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from bot.migrations.imports import import_closure
from bot.migrations.project import AlembicProject, find_project
from bot.migrations.setup_inputs import setup_input_files
from bot.policy.config import Policy
from bot.policy.fingerprint import fingerprint, matches_any

SCRIPT_FILES = ("env.py", "script.py.mako")
SECTION = "alembic"
# Alembic's split of prepend_sys_path without `path_separator`: commas, spaces, colons.
_LEGACY_SPLIT = re.compile(r", *|(?: +)|:")
_SEPARATORS = {"space": " ", "newline": "\n", "os": ":", ":": ":", ";": ";"}
_SKIPPED_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".nox"}


@dataclass(frozen=True)
class RunInputs:
    files: dict[str, str]  # repository-relative path -> sha256 of the content
    truncated: bool = False  # the import walk hit a bound (see bot.migrations.imports)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.files, truncated=self.truncated)


def approval_fingerprint(repo_root: Path, policy: Policy) -> str:
    """The fingerprint of what a check of `repo_root` runs (see the module's docstring)."""
    return run_inputs(repo_root, policy).fingerprint


def run_inputs(repo_root: Path, policy: Policy) -> RunInputs:
    """Every file a check of `repo_root` runs or configures the run with, hashed.

    Raises UserError, as `migsafe check` does, when the Alembic project cannot be found.
    """
    root = repo_root.resolve()
    project = find_project(
        root, alembic_ini=policy.alembic.config, script_location=policy.alembic.script_location
    )
    revisions = _revision_files(root, project, policy)
    script = [project.script_location / name for name in SCRIPT_FILES]
    config = [project.ini_path] if project.ini_path else []
    config += _alembic_pyprojects(root, project)
    # Without setup commands nothing is installed: the root's packaging files are then not
    # an input (setup_input_files would fall back to them).
    commands = list(policy.sandbox.setup)
    setup = [root / path for path in setup_input_files(root, commands)] if commands else []
    seeds = [project.script_location / "env.py", *revisions]
    seeds += [path for path in setup if path.suffix == ".py"]  # `python scripts/prepare.py`
    closure = import_closure(root, seeds, _search_roots(root, project))
    files: dict[str, str] = {}
    for path in [*revisions, *script, *config, *setup, *closure.files]:
        _add(root, path, files)
    return RunInputs(files=files, truncated=closure.truncated)


def _revision_files(root: Path, project: AlembicProject, policy: Policy) -> list[Path]:
    found: set[Path] = set()
    for directory in project.versions_dirs:
        if directory.is_dir():
            walk = directory.rglob if project.recursive_versions else directory.glob
            found.update(p for p in walk("*.py") if "__pycache__" not in p.parts)
    if policy.migration_paths is not None:
        globs = list(policy.migration_paths)
        found.update(
            path
            for path in _python_files(root)
            if matches_any(path.relative_to(root).as_posix(), globs)
        )
    return sorted(found)


def _python_files(directory: Path) -> list[Path]:
    """Every `.py` file below `directory`, without following links or entering tool dirs."""
    found: list[Path] = []
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.is_symlink() or entry.name in _SKIPPED_DIRS:
            continue
        if entry.is_dir():
            found += _python_files(entry)
        elif entry.suffix == ".py" and entry.is_file():
            found.append(entry)
    return found


def _alembic_pyprojects(root: Path, project: AlembicProject) -> list[Path]:
    """The `pyproject.toml` Alembic reads its `[tool.alembic]` table from, if any."""
    directories = [project.ini_path.parent, root] if project.ini_path else [root]
    for directory in directories:
        path = directory / "pyproject.toml"
        if path.is_file() and "alembic" in _toml_tool(path):
            return [path]
    return []


def _toml_tool(path: Path) -> dict[str, object]:
    try:
        tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    return tool if isinstance(tool, dict) else {}


# -- where imports are looked up ---------------------------------------------------------------


def _search_roots(root: Path, project: AlembicProject) -> list[Path]:
    """sys.path as the migration child sees it, restricted to the repository: the
    `prepend_sys_path` entries, the directory Alembic runs in, the repository root (the
    sandbox child adds it), `src/` (an editable install of the project puts it there),
    and the script directory (for `env.py`'s neighbours)."""
    cwd = project.ini_path.parent if project.ini_path else root
    roots = [cwd / entry for entry in _prepend_sys_path(project)]
    roots += [cwd, root, root / "src", project.script_location]
    return list(dict.fromkeys(roots))


def _prepend_sys_path(project: AlembicProject) -> list[str]:
    """The configured `prepend_sys_path` entries; `.` when there is none to read (the
    default of Alembic's templates, and where a module-level import is found anyway)."""
    raw: str | list[str] | None = None
    if project.ini_path is not None:
        parser = configparser.ConfigParser(defaults={"here": project.ini_path.parent.as_posix()})
        try:
            parser.read(project.ini_path, encoding="utf-8")
            raw = parser.get(SECTION, "prepend_sys_path", fallback=None)
            separator = parser.get(SECTION, "path_separator", fallback=None)
        except (configparser.Error, UnicodeDecodeError):
            raw, separator = None, None
        if isinstance(raw, str):
            entries = _split(raw, separator)
            return entries or ["."]
    for pyproject in _alembic_pyprojects(project.repo_root, project):
        table = _toml_tool(pyproject).get("alembic")
        value = table.get("prepend_sys_path") if isinstance(table, dict) else None
        here = pyproject.parent.as_posix()
        if isinstance(value, list):
            return [str(v).replace("%(here)s", here) for v in value] or ["."]
    return ["."]


def _split(raw: str, separator_name: str | None) -> list[str]:
    if separator_name is None:
        return [part for part in _LEGACY_SPLIT.split(raw.strip()) if part]
    separator = _SEPARATORS.get(separator_name.strip(), " ")
    return [part.strip() for part in raw.split(separator) if part.strip()]


def _add(root: Path, path: Path, files: dict[str, str]) -> None:
    """Hash `path` into `files` if it is a regular file inside the repository."""
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(root) or not resolved.is_file():
            return  # a link out of the repository is not the repository's to approve
        relative = resolved.relative_to(root).as_posix()
        if relative not in files:
            with resolved.open("rb") as stream:
                files[relative] = hashlib.file_digest(stream, "sha256").hexdigest()
    except (OSError, RuntimeError):
        return
