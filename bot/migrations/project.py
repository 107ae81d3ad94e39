"""Find an Alembic project in a repository and read its configuration, without running it.

Alembic resolves relative paths against the working directory it runs in, which by
convention is the directory of `alembic.ini`; migsafe tries that directory first and
then the repository root. Every resolved path must stay inside the repository: the
repository is untrusted, and a symlink or `../` must not make migsafe read other files.

Over 400 lines: Alembic's own ways of finding a project (ini, pyproject, script
location, version locations) read without running it.
"""

from __future__ import annotations

import configparser
import os
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.errors import UserError

INI_NAME = "alembic.ini"
SEARCH_DEPTH = 3  # directories below the repository root searched for alembic.ini
_POLICY_FILE = ".github/migsafe.yml"  # how errors name the policy file by default
SECTION = "alembic"
POLICY_HINT = "set alembic.config (or alembic.script_location) in .github/migsafe.yml"
_SKIPPED_DIRS = {
    ".git",
    ".hg",
    "node_modules",
    "__pycache__",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "site-packages",
}
# Alembic's own splitting rules for version_locations (config.py, get_version_locations_list).
_LEGACY_SPLIT = re.compile(r", *|(?: +)")
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}
_PACKAGE_RESOURCE = re.compile(r"^[A-Za-z_][\w.]*:[^\\/]")


@dataclass
class AlembicProject:
    repo_root: Path  # absolute
    ini_path: Path | None  # absolute; None when only script_location was given
    script_location: Path  # absolute
    versions_dirs: list[Path]  # absolute; as Alembic: version_locations if set, else versions/
    sqlalchemy_url: str | None
    recursive_versions: bool = False  # recursive_version_locations = true
    # Where Alembic runs (its working directory): the ini's folder, as `cd backend && alembic`,
    # unless the relative script_location is found from the repository root only.
    working_dir: Path | None = None  # absolute; None: the ini's folder, else the root
    section: str = SECTION  # the ini section Alembic reads (`alembic -n NAME`)

    @property
    def run_dir(self) -> Path:
        """The working directory Alembic runs in (see `working_dir`)."""
        if self.working_dir is not None:
            return self.working_dir
        return self.ini_path.parent if self.ini_path else self.repo_root

    def rel(self, path: Path) -> str:
        """`path` relative to the repository root, '/' separated."""
        return relative_to_repo(self.repo_root, path)


def relative_to_repo(repo_root: Path, path: Path) -> str:
    rel = path.resolve().relative_to(repo_root.resolve())
    return rel.as_posix() if rel.parts else "."


def find_project(
    repo_root: Path,
    *,
    alembic_ini: str | None = None,
    script_location: str | None = None,
    section: str = SECTION,
    policy_source: str = _POLICY_FILE,
) -> AlembicProject:
    """The Alembic project of `repo_root`; explicit settings (from the policy file) win.
    `section`: the ini section to read, as `alembic -n NAME`. `policy_source`: the policy
    file as errors about its settings name it (`--config`'s path, say)."""
    try:
        return _find_project(repo_root, alembic_ini, script_location, section)
    except UserError as error:
        if error.path != _POLICY_FILE or policy_source.startswith("<"):  # <defaults>
            raise
        message = str(error).removeprefix(f"{_POLICY_FILE}: ")
        raise UserError(message, path=policy_source) from None


def _find_project(
    repo_root: Path, alembic_ini: str | None, script_location: str | None, section: str
) -> AlembicProject:
    root = repo_root.resolve()
    if not root.is_dir():
        raise UserError(f"repository root {repo_root} is not a directory")
    if script_location is not None:
        return _from_script_location(root, script_location, alembic_ini, section)
    ini = _explicit_ini(root, alembic_ini) if alembic_ini else _discover_ini(root)
    if ini is None:
        return _from_pyproject(root)
    return _from_ini(root, ini, section)


def _explicit_ini(root: Path, alembic_ini: str) -> Path:
    ini = _inside_repo(root, root / alembic_ini, "alembic.config")
    if not ini.is_file():
        raise UserError(
            f"alembic.config points to {alembic_ini}, which does not exist under {root}",
            path=_POLICY_FILE,
        )
    return ini


def _discover_ini(root: Path) -> Path | None:
    """alembic.ini at the root, else the single one within SEARCH_DEPTH levels."""
    if (root / INI_NAME).is_file():
        return _refuse_outside(root, root / INI_NAME)
    found = sorted(_walk_for_ini(root, 0))
    if len(found) > 1:
        listed = ", ".join(relative_to_repo(root, path) for path in found)
        raise UserError(f"several alembic.ini files found under {root} ({listed}); {POLICY_HINT}")
    if found:
        return found[0]
    if (root / "pyproject.toml").is_file():
        return None  # Alembic >= 1.16 can be configured from pyproject.toml alone
    raise UserError(
        f"no alembic.ini found under {root} (searched {SEARCH_DEPTH} levels deep); {POLICY_HINT}"
    )


def _walk_for_ini(directory: Path, depth: int) -> Iterator[Path]:
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_symlink():
            continue  # never leave the repository through a link
        if depth > 0 and entry.name == INI_NAME and entry.is_file():
            yield entry
        elif entry.is_dir() and depth < SEARCH_DEPTH and not _skipped(entry):
            yield from _walk_for_ini(entry, depth + 1)


def _skipped(directory: Path) -> bool:
    return directory.name in _SKIPPED_DIRS or (directory / "pyvenv.cfg").exists()


def _from_script_location(
    root: Path, location: str, alembic_ini: str | None, section: str
) -> AlembicProject:
    ini = _explicit_ini(root, alembic_ini) if alembic_ini else None
    parser = _read_ini(root, ini, section) if ini else None
    base_dirs = [ini.parent, root] if ini else [root]
    script_dir = _resolve_dir(root, location, base_dirs, "alembic.script_location", None)
    where = _rel(root, ini) if ini else ""
    return AlembicProject(
        repo_root=root,
        ini_path=ini,
        script_location=script_dir,
        versions_dirs=_versions_dirs(root, parser, ini, base_dirs, script_dir, section=section),
        sqlalchemy_url=_get(parser, where, "sqlalchemy.url", section) if parser else None,
        recursive_versions=_recursive(parser, section),
        working_dir=ini.parent if ini else root,
        section=section,
    )


def _from_ini(root: Path, ini: Path, section: str) -> AlembicProject:
    parser = _read_ini(root, ini, section)
    base_dirs = [ini.parent, root]
    toml = _read_pyproject_alembic(root, [ini.parent, root])
    where = _rel(root, ini)
    location = _get(parser, where, "script_location", section) or _toml_str(toml, "script_location")
    if not location:
        raise UserError(f"no script_location in the [{section}] section", path=_rel(root, ini))
    script_dir = _resolve_dir(root, location, base_dirs, "script_location", ini)
    return AlembicProject(
        repo_root=root,
        ini_path=ini,
        script_location=script_dir,
        versions_dirs=_versions_dirs(
            root, parser, ini, base_dirs, script_dir, toml, section=section
        ),
        sqlalchemy_url=_get(parser, where, "sqlalchemy.url", section),
        recursive_versions=_recursive(parser, section),
        working_dir=_working_dir(location, base_dirs),
        section=section,
    )


def _working_dir(location: str, base_dirs: list[Path]) -> Path:
    """Where Alembic runs: the first base directory (the ini's folder, then the repository
    root) from which a relative script_location exists; the ini's folder otherwise."""
    if not _PACKAGE_RESOURCE.match(location) and not Path(location).is_absolute():
        for base in base_dirs:
            if (base / location).is_dir():
                return base.resolve()
    return base_dirs[0].resolve()


def _from_pyproject(root: Path) -> AlembicProject:
    toml = _read_pyproject_alembic(root, [root])
    location = _toml_str(toml, "script_location")
    if not location:
        raise UserError(
            f"no alembic.ini found under {root} and no [tool.alembic] script_location in"
            f" pyproject.toml; {POLICY_HINT}"
        )
    script_dir = _resolve_dir(root, location, [root], "[tool.alembic] script_location", None)
    return AlembicProject(
        repo_root=root,
        ini_path=None,
        script_location=script_dir,
        versions_dirs=_versions_dirs(root, None, None, [root], script_dir, toml),
        sqlalchemy_url=None,
        recursive_versions=bool(toml.get("recursive_version_locations", False)),
    )


def _read_ini(root: Path, ini: Path, section: str = SECTION) -> configparser.ConfigParser:
    _refuse_outside(root, ini)
    # Alembic passes `here` as a default, which makes %(here)s work in every section.
    parser = configparser.ConfigParser(defaults={"here": ini.parent.as_posix()})
    try:
        with ini.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise UserError(f"cannot read: {_one_line(exc)}", path=_rel(root, ini)) from exc
    if not parser.has_section(section):
        raise UserError(f"no [{section}] section", path=_rel(root, ini))
    return parser


def _get(
    parser: configparser.ConfigParser, where: str, key: str, section: str = SECTION
) -> str | None:
    try:
        value = parser.get(section, key, fallback=None)
    except configparser.InterpolationError as exc:
        raise UserError(f"key {key!r} in [{section}]: {_one_line(exc)}", path=where) from exc
    return value.strip() if value and value.strip() else None


def _recursive(parser: configparser.ConfigParser | None, section: str = SECTION) -> bool:
    if parser is None:
        return False
    try:
        return parser.getboolean(section, "recursive_version_locations", fallback=False)
    except ValueError:
        return False


def _read_pyproject_alembic(root: Path, dirs: list[Path]) -> dict[str, object]:
    """The [tool.alembic] table of the first pyproject.toml found, with %(here)s expanded."""
    for directory in dirs:
        pyproject = directory / "pyproject.toml"
        if not pyproject.is_file():
            continue
        _refuse_outside(root, pyproject)
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"cannot read: {_one_line(exc)}", path=_rel(root, pyproject)) from exc
        tool = data.get("tool", {})
        table = tool.get("alembic") if isinstance(tool, dict) else None
        if isinstance(table, dict):
            here = directory.as_posix()
            return {key: _expand_here(value, here) for key, value in table.items()}
    return {}


def _expand_here(value: object, here: str) -> object:
    if isinstance(value, str):
        return value.replace("%(here)s", here)
    if isinstance(value, list):
        return [_expand_here(item, here) for item in value]
    return value


def _toml_str(toml: dict[str, object], key: str) -> str | None:
    value = toml.get(key)
    return value if isinstance(value, str) and value else None


def _versions_dirs(
    root: Path,
    parser: configparser.ConfigParser | None,
    ini: Path | None,
    base_dirs: list[Path],
    script_dir: Path,
    toml: dict[str, object] | None = None,
    *,
    section: str = SECTION,
) -> list[Path]:
    """As Alembic: version_locations replaces versions/ when set (list it there to keep it)."""
    where = _rel(root, ini) if ini else _POLICY_FILE
    raw = _get(parser, where, "version_locations", section) if parser else None
    if raw is not None and parser is not None:
        locations = _split_locations(raw, parser, where, section)
    else:
        toml_value = (toml or {}).get("version_locations")
        locations = [str(item) for item in toml_value] if isinstance(toml_value, list) else []
    if not locations:
        return [script_dir / "versions"]
    dirs: list[Path] = []
    for location in locations:
        resolved = _resolve_dir(
            root, location, base_dirs, "version_locations", ini, must_exist=False
        )
        if resolved not in dirs:
            dirs.append(resolved)
    return dirs


def _split_locations(
    raw: str, parser: configparser.ConfigParser, where: str, section: str
) -> list[str]:
    separator_name = _get(parser, where, "path_separator", section) or _get(
        parser, where, "version_path_separator", section
    )
    if separator_name is None:
        return [part for part in _LEGACY_SPLIT.split(raw.strip()) if part]
    separator = _SEPARATORS.get(separator_name)
    if separator is None:
        raise UserError(
            f"path_separator {separator_name!r} is not one of {', '.join(_SEPARATORS)}",
            path=where,
        )
    return [part.strip() for part in raw.split(separator) if part.strip()]


def _resolve_dir(
    root: Path,
    location: str,
    base_dirs: list[Path],
    key: str,
    ini: Path | None,
    *,
    must_exist: bool = True,
) -> Path:
    """An absolute directory inside the repository for a configured location."""
    where = _rel(root, ini) if ini else _POLICY_FILE
    candidates = _candidates(root, location, base_dirs)
    existing = [path for path in candidates if path.is_dir()]
    chosen = existing[0] if existing else candidates[0]
    if must_exist and not existing:
        tried = ", ".join(_display(root, path) for path in candidates)
        raise UserError(f"{key} {location!r} does not exist (looked for {tried})", path=where)
    return _inside_repo(root, chosen, key, where)


def _candidates(root: Path, location: str, base_dirs: list[Path]) -> list[Path]:
    if _PACKAGE_RESOURCE.match(location) and not Path(location).is_absolute():
        # "package.module:resource" names a directory inside an importable package; look
        # for the package in the repository instead of importing it.
        package, _, resource = location.partition(":")
        package_dir = Path(*package.split("."))
        return [root / prefix / package_dir / resource for prefix in ("", "src")]
    path = Path(location)
    if path.is_absolute():
        return [path]
    unique: list[Path] = []
    for base in base_dirs:
        if base / path not in unique:
            unique.append(base / path)
    return unique


def _inside_repo(root: Path, path: Path, key: str, where: str | None = None) -> Path:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise UserError(
            f"{key} points outside the repository ({path}); migsafe reads only files inside it",
            path=where,
        )
    return resolved


def _refuse_outside(root: Path, path: Path) -> Path:
    """`path` itself when it stays in the repository; a link out of it is refused before
    anything is read (its content would end up in messages)."""
    if not path.resolve().is_relative_to(root):
        raise UserError(
            "is a link that leads outside the repository; migsafe reads only files inside it",
            path=_unresolved_rel(root, path),
        )
    return path


def _unresolved_rel(root: Path, path: Path) -> str:
    try:
        return path.absolute().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _display(root: Path, path: Path) -> str:
    resolved = path.resolve()
    return relative_to_repo(root, resolved) if resolved.is_relative_to(root) else str(path)


def _rel(root: Path, path: Path) -> str:
    return _display(root, path)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
