"""Finding the Alembic project of a repository and reading its alembic.ini."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import UserError
from bot.migrations.project import find_project

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "projects"

MINIMAL_INI = "[alembic]\nscript_location = {location}\n"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_project(root: Path, ini_dir: str = ".", location: str = "migrations") -> Path:
    ini = write(root / ini_dir / "alembic.ini", MINIMAL_INI.format(location=location))
    (ini.parent / location / "versions").mkdir(parents=True, exist_ok=True)
    return ini


def test_root_alembic_ini_gives_script_location_versions_and_url() -> None:
    project = find_project(FIXTURES / "linear")
    root = FIXTURES / "linear"
    assert project.repo_root == root
    assert project.ini_path == root / "alembic.ini"
    assert project.script_location == root / "migrations"
    assert project.versions_dirs == [root / "migrations" / "versions"]
    assert project.sqlalchemy_url == "postgresql://localhost/linear"
    assert project.rel(project.script_location) == "migrations"


def test_ini_in_a_subdirectory_with_here_and_version_locations() -> None:
    root = FIXTURES / "custom_location"
    project = find_project(root)
    assert project.ini_path == root / "config" / "alembic.ini"
    assert project.script_location == root / "db" / "migrations"
    assert [project.rel(d) for d in project.versions_dirs] == [
        "db/migrations/versions",
        "db/extra_versions",
    ]


def test_explicit_alembic_ini_wins_over_discovery(tmp_path: Path) -> None:
    make_project(tmp_path, "a")
    make_project(tmp_path, "b", location="other")
    project = find_project(tmp_path, alembic_ini="b/alembic.ini")
    assert project.script_location == tmp_path.resolve() / "b" / "other"


def test_explicit_script_location_needs_no_ini(tmp_path: Path) -> None:
    (tmp_path / "db" / "alembic" / "versions").mkdir(parents=True)
    project = find_project(tmp_path, script_location="db/alembic")
    assert project.ini_path is None
    assert project.versions_dirs == [tmp_path.resolve() / "db" / "alembic" / "versions"]


def test_relative_script_location_falls_back_to_the_repo_root(tmp_path: Path) -> None:
    write(tmp_path / "deploy" / "alembic.ini", MINIMAL_INI.format(location="db/migrations"))
    (tmp_path / "db" / "migrations" / "versions").mkdir(parents=True)
    project = find_project(tmp_path)
    assert project.rel(project.script_location) == "db/migrations"


def test_no_alembic_ini_is_a_user_error_with_the_policy_hint(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        find_project(tmp_path)
    assert "no alembic.ini found under" in str(error.value)
    assert "alembic.config" in str(error.value)


def test_several_alembic_ini_files_are_listed(tmp_path: Path) -> None:
    make_project(tmp_path, "service_a")
    make_project(tmp_path, "service_b")
    with pytest.raises(UserError) as error:
        find_project(tmp_path)
    message = str(error.value)
    assert "service_a/alembic.ini" in message and "service_b/alembic.ini" in message
    assert "alembic.config" in message


def test_search_stops_three_levels_down(tmp_path: Path) -> None:
    make_project(tmp_path, "a/b/c/d")
    with pytest.raises(UserError, match=r"no alembic\.ini"):
        find_project(tmp_path)
    make_project(tmp_path, "a/b/c")
    assert find_project(tmp_path).ini_path == tmp_path.resolve() / "a/b/c/alembic.ini"


def test_search_skips_virtualenvs_and_node_modules(tmp_path: Path) -> None:
    make_project(tmp_path, "node_modules/pkg")
    make_project(tmp_path, ".venv")
    write(tmp_path / "env" / "pyvenv.cfg")
    make_project(tmp_path, "env/lib")
    make_project(tmp_path, "app")
    assert find_project(tmp_path).ini_path == tmp_path.resolve() / "app" / "alembic.ini"


def test_missing_script_location_names_the_ini_and_key(tmp_path: Path) -> None:
    write(tmp_path / "alembic.ini", "[alembic]\nsqlalchemy.url = sqlite://\n")
    with pytest.raises(UserError) as error:
        find_project(tmp_path)
    assert str(error.value).startswith("alembic.ini: ")
    assert "script_location" in str(error.value)


def test_nonexistent_script_location_names_the_ini_and_key(tmp_path: Path) -> None:
    write(tmp_path / "alembic.ini", MINIMAL_INI.format(location="nowhere"))
    with pytest.raises(UserError) as error:
        find_project(tmp_path)
    assert str(error.value).startswith("alembic.ini: ")
    assert "script_location 'nowhere' does not exist" in str(error.value)


def test_ini_without_alembic_section_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "alembic.ini", "[other]\nkey = 1\n")
    with pytest.raises(UserError, match=r"alembic.ini: no \[alembic\] section"):
        find_project(tmp_path)


def test_unparsable_ini_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "alembic.ini", "script_location = x\n")
    with pytest.raises(UserError, match=r"alembic\.ini: cannot read"):
        find_project(tmp_path)


def test_bad_interpolation_names_the_key(tmp_path: Path) -> None:
    write(tmp_path / "alembic.ini", "[alembic]\nscript_location = %(nothere)s/m\n")
    with pytest.raises(UserError, match=r"alembic\.ini: key 'script_location'"):
        find_project(tmp_path)


def test_explicit_alembic_ini_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"alembic\.config points to db/alembic\.ini"):
        find_project(tmp_path, alembic_ini="db/alembic.ini")


def test_explicit_script_location_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"alembic\.script_location 'db' does not exist"):
        find_project(tmp_path, script_location="db")


def test_script_location_outside_the_repository_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "versions").mkdir(parents=True)
    repo = tmp_path / "repo"
    write(repo / "alembic.ini", MINIMAL_INI.format(location="../outside"))
    with pytest.raises(UserError, match=r"outside the repository"):
        find_project(repo)


def test_version_locations_legacy_split_on_commas_and_spaces(tmp_path: Path) -> None:
    ini = make_project(tmp_path)
    ini.write_text(ini.read_text() + "version_locations = a/versions, b/versions c\n")
    project = find_project(tmp_path)
    assert [project.rel(d) for d in project.versions_dirs] == ["a/versions", "b/versions", "c"]


def test_version_locations_with_os_separator(tmp_path: Path) -> None:
    ini = make_project(tmp_path)
    ini.write_text(ini.read_text() + "path_separator = os\nversion_locations = a:b c\n")
    project = find_project(tmp_path)
    assert [project.rel(d) for d in project.versions_dirs] == ["a", "b c"]


def test_unknown_path_separator_is_reported(tmp_path: Path) -> None:
    ini = make_project(tmp_path)
    ini.write_text(ini.read_text() + "path_separator = tab\nversion_locations = a\n")
    with pytest.raises(UserError, match=r"alembic\.ini: path_separator 'tab'"):
        find_project(tmp_path)


def test_recursive_version_locations_is_read(tmp_path: Path) -> None:
    ini = make_project(tmp_path)
    ini.write_text(ini.read_text() + "recursive_version_locations = true\n")
    assert find_project(tmp_path).recursive_versions


def test_package_resource_script_location_is_found_without_importing(tmp_path: Path) -> None:
    write(tmp_path / "alembic.ini", MINIMAL_INI.format(location="myapp.db:migrations"))
    (tmp_path / "src" / "myapp" / "db" / "migrations" / "versions").mkdir(parents=True)
    project = find_project(tmp_path)
    assert project.rel(project.script_location) == "src/myapp/db/migrations"


def test_pyproject_tool_alembic_without_ini(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.alembic]\nscript_location = "%(here)s/alembic"\n')
    (tmp_path / "alembic" / "versions").mkdir(parents=True)
    project = find_project(tmp_path)
    assert project.ini_path is None
    assert project.rel(project.script_location) == "alembic"


def test_pyproject_without_tool_alembic_is_a_user_error(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    with pytest.raises(UserError, match=r"no alembic\.ini found"):
        find_project(tmp_path)
