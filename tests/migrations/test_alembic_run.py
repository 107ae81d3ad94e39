"""How migsafe runs Alembic, parent side: the working directory and section found in the
project, the database conventions handed to env.py, the children's shared helper."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from bot.migrations import childscript
from bot.migrations.database_env import (
    OFFLINE,
    child_variables,
    redact,
    redacted,
    resolve,
    sandbox_params,
    variable_names,
)
from bot.migrations.project import find_project
from bot.sandbox.run import _CHILD as ONLINE_CHILD

LAYOUTS = Path(__file__).parents[1] / "fixtures" / "layouts"
DRY_RUN_CHILD = Path(__file__).parents[2] / "bot" / "sandbox" / "_offline_child.py"


# -- the project: where Alembic runs ----------------------------------------------------------


def test_a_relative_script_location_runs_from_the_ini_folder() -> None:
    project = find_project(LAYOUTS / "fastapi_settings", alembic_ini="backend/alembic.ini")
    root = (LAYOUTS / "fastapi_settings").resolve()
    assert project.run_dir == root / "backend"
    assert project.script_location == root / "backend" / "app" / "alembic"


def test_a_script_location_found_from_the_root_only_runs_from_the_root(tmp_path: Path) -> None:
    """`alembic -c backend/alembic.ini` run from the root, `script_location = backend/db`."""
    (tmp_path / "backend" / "db" / "versions").mkdir(parents=True)
    (tmp_path / "backend" / "alembic.ini").write_text("[alembic]\nscript_location = backend/db\n")
    project = find_project(tmp_path)
    assert project.run_dir == tmp_path.resolve()


def test_several_version_locations_resolve_from_the_working_directory() -> None:
    project = find_project(LAYOUTS / "database_url")
    base = (LAYOUTS / "database_url" / "services" / "billing").resolve()
    assert project.run_dir == base
    assert project.versions_dirs == [base / "migrations" / "schema", base / "migrations" / "data"]


def test_a_named_section_is_read_instead_of_alembic() -> None:
    root = LAYOUTS / "x_arguments"
    project = find_project(root, alembic_ini="alembic.ini", section="tenants")
    assert project.section == "tenants"
    assert project.script_location == (root / "db" / "tenants").resolve()
    assert project.sqlalchemy_url == "postgresql+psycopg://"


def test_a_missing_section_is_named(tmp_path: Path) -> None:
    shutil.copytree(LAYOUTS / "x_arguments", tmp_path / "p")
    from bot.errors import UserError

    with pytest.raises(UserError, match=r"no \[billing\] section"):
        find_project(tmp_path / "p", alembic_ini="alembic.ini", section="billing")


# -- the database as env.py asks for it -------------------------------------------------------


SOCKET = "host=/run/pg port=5433 dbname=sbx user=sbx password=s3cret connect_timeout=10"


def test_a_socket_server_gets_a_url_without_percent_and_localhost_for_built_urls() -> None:
    params = sandbox_params(SOCKET)
    assert params.url == (
        "postgresql+psycopg://sbx:s3cret@/sbx?host=/run/pg&port=5433&connect_timeout=10"
    )
    assert (params.host, params.port, params.libpq_host, params.socket_dir) == (
        "localhost",
        "5433",
        "/run/pg",
        "/run/pg",
    )


def test_a_tcp_server_keeps_its_host_in_the_url() -> None:
    params = sandbox_params("host=db.internal port=5432 dbname=sbx user=sbx password=p@ss")
    assert params.url == "postgresql+psycopg://sbx:p%40ss@db.internal:5432/sbx"
    assert (params.host, params.libpq_host, params.socket_dir) == (
        "db.internal",
        "db.internal",
        None,
    )


def test_variables_follow_every_convention_and_sandbox_env_wins() -> None:
    params = sandbox_params(SOCKET)
    policy_env = {
        "POSTGRES_SERVER": "{host}",
        "POSTGRES_PORT": "{port}",
        "DSN": "{url}",
        "WEIRD": "{nothing} {user}@{database}",
        "DATABASE_URL": "{url}&application_name=app",
    }
    variables = child_variables(params, policy_env)
    assert variables["PGHOST"] == "/run/pg"
    assert (variables["PGUSER"], variables["PGPASSWORD"], variables["PGDATABASE"]) == (
        "sbx",
        "s3cret",
        "sbx",
    )
    assert (variables["POSTGRES_SERVER"], variables["POSTGRES_PORT"]) == ("localhost", "5433")
    assert variables["DSN"] == params.url
    assert variables["WEIRD"] == "{nothing} sbx@sbx"
    assert variables["DATABASE_URL"] == params.url + "&application_name=app"
    assert set(variable_names(policy_env)) == set(variables)
    assert set(variable_names(policy_env).values()) == {""}


def test_offline_values_are_plausible_and_secret_free() -> None:
    variables = child_variables(OFFLINE, {"POSTGRES_PASSWORD": "{password}"})
    assert variables["DATABASE_URL"].startswith("postgresql+psycopg://migsafe:")
    assert variables["POSTGRES_PASSWORD"] == OFFLINE.password
    assert resolve("{host}:{port}", OFFLINE) == "localhost:5432"


def test_the_password_is_redacted_in_every_form() -> None:
    secret = "a/b c+d"
    text = "a/b c+d | a%2Fb%20c%2Bd | a%2Fb+c%2Bd"
    assert redact(text, secret) == "*** | *** | ***"
    reply = {"error": f"x {secret}", "statements": [{"sql": secret, "line": 3}], "ok": False}
    assert redacted(reply, secret) == {
        "error": "x ***",
        "statements": [{"sql": "***", "line": 3}],
        "ok": False,
    }
    assert redact("nothing", "") == "nothing"


# -- the children share one helper ------------------------------------------------------------


@pytest.mark.parametrize("script", [DRY_RUN_CHILD, ONLINE_CHILD], ids=["dry-run", "sandbox"])
def test_each_child_runs_with_the_helper_inlined(script: Path) -> None:
    source = childscript.inlined_source(script)
    tree = ast.parse(source)  # one valid module: the helper's __future__ import is gone
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not [n for n in imports if isinstance(n, ast.ImportFrom) and n.module == "bot"]
    assert not [n for n in imports if (getattr(n, "module", None) or "").startswith("bot.")], (
        "migsafe is not importable in the child"
    )
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
    ]
    assert "alembic_config" in defined and "enter_project" in defined
    assert len(defined) == len(set(defined)), "the child redefines a helper's name"


def test_sqlalchemy_url_with_percent_reaches_env_py_intact(tmp_path: Path) -> None:
    """configparser reads `%` as interpolation: the URL (a socket directory or password
    needing percent-encoding) is escaped, and env.py's get_main_option gets it back as is."""
    from bot.migrations._alembic_config import alembic_config

    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = migrations\n")
    url = "postgresql+psycopg://u:p%40ss@/db?host=/tmp/pct%25%20dir&port=5432"
    spec = {
        "working_dir": str(tmp_path),
        "ini_path": str(ini),
        "section": "alembic",
        "script_location": str(tmp_path / "migrations%dir"),
        "x_arguments": [],
        "url": url,
        "env": {},
    }
    config = alembic_config(spec, ["upgrade", "heads"])
    assert config.get_main_option("sqlalchemy.url") == url
    assert config.get_main_option("script_location") == str(tmp_path / "migrations%dir")
