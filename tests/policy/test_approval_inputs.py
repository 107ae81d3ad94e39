"""What an approval is for (issue 11): the fingerprint changes with anything the check runs
(revisions, env.py and what it imports, script.py.mako, alembic.ini, the setup's requirement
files) and stays put when something nothing runs changes.

The fixture repositories are laid out as real ones are: the Alembic project in `backend/`,
`script_location = app/alembic` relative to the ini, env.py importing the application's
settings and models, the models importing other application modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from bot.errors import UserError
from bot.migrations import imports
from bot.migrations.imports import import_closure
from bot.migrations.inputs import approval_fingerprint, run_inputs
from bot.policy.config import Policy, parse_policy

ENV_PY = """\
from logging.config import fileConfig

from alembic import context
from sqlalchemy import engine_from_config, pool

from app.core.config import settings
from app.models import Base

config = context.config
config.set_main_option("sqlalchemy.url", settings.DATABASE_URL)
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}))
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
"""

REVISION = '''\
"""create user

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from app.core import db_types

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("user", sa.Column("id", db_types.GUID(), primary_key=True))


def downgrade() -> None:
    op.drop_table("user")
'''

REPO: dict[str, str] = {
    "README.md": "# the app\n",
    "backend/alembic.ini": (
        "[alembic]\nscript_location = app/alembic\nprepend_sys_path = .\n"
        "sqlalchemy.url = postgresql://localhost/app\n"
    ),
    "backend/requirements.txt": "-r requirements-base.txt\nfastapi==0.110.0\n",
    "backend/requirements-base.txt": "sqlalchemy==2.0.29\nalembic==1.13.1\n",
    "backend/requirements-dev.txt": "pytest==8.1.1\n",  # no setup command names it
    "backend/pyproject.toml": "[tool.ruff]\nline-length = 100\n",  # no [tool.alembic]
    "backend/app/__init__.py": "",
    "backend/app/main.py": "from fastapi import FastAPI\n\napp = FastAPI()\n",
    "backend/app/api/__init__.py": "",
    "backend/app/api/routes.py": "from app.models import User\n",  # nothing imports it
    "backend/app/alembic/env.py": ENV_PY,
    "backend/app/alembic/script.py.mako": '"""${message}"""\nrevision = ${repr(up_revision)}\n',
    "backend/app/alembic/README": "Generic single-database configuration.\n",
    "backend/app/alembic/versions/0001_create_user.py": REVISION,
    "backend/app/core/__init__.py": "",
    "backend/app/core/config.py": (
        "import os\n\n\nclass Settings:\n"
        '    DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://localhost/app")\n\n\n'
        "settings = Settings()\n"
    ),
    "backend/app/core/db_types.py": "import sqlalchemy as sa\n\nGUID = sa.Uuid\n",
    "backend/app/models/__init__.py": (
        'from app.models.base import Base\nfrom .user import User\n\n__all__ = ["Base", "User"]\n'
    ),
    "backend/app/models/base.py": (
        "from sqlalchemy.orm import DeclarativeBase\n\n\nclass Base(DeclarativeBase):\n    pass\n"
    ),
    "backend/app/models/user.py": (
        "from sqlalchemy.orm import Mapped, mapped_column\n\n"
        "from ..utils.text import slugify\nfrom .base import Base\n\n\n"
        "class User(Base):\n"
        '    __tablename__ = "user"\n'
        "    id: Mapped[int] = mapped_column(primary_key=True)\n"
        "    slug = slugify\n"
    ),
    "backend/app/utils/__init__.py": "",
    "backend/app/utils/text.py": "import re\n\n\ndef slugify(s: str) -> str:\n    return s\n",
    "backend/app/utils/unused.py": "X = 1\n",  # in an imported package, but not imported
    "backend/tests/test_models.py": "from app.models import User\n\n\ndef test() -> None: ...\n",
}

POLICY = """\
sandbox:
  setup:
    - pip install -r backend/requirements.txt
"""


def write(root: Path, files: Mapping[str, str | None]) -> None:
    for relative, text in files.items():
        path = root / relative
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, REPO)
    return root


def policy(text: str = POLICY) -> Policy:
    return parse_policy(text, ".github/migsafe.yml")


def covered(root: Path, policy_text: str = POLICY) -> set[str]:
    return set(run_inputs(root, policy(policy_text)).files)


def test_what_is_covered(repo: Path) -> None:
    assert covered(repo) == {
        "backend/alembic.ini",
        "backend/requirements.txt",
        "backend/requirements-base.txt",
        "backend/app/__init__.py",
        "backend/app/alembic/env.py",
        "backend/app/alembic/script.py.mako",
        "backend/app/alembic/versions/0001_create_user.py",
        "backend/app/core/__init__.py",
        "backend/app/core/config.py",
        "backend/app/core/db_types.py",
        "backend/app/models/__init__.py",
        "backend/app/models/base.py",
        "backend/app/models/user.py",
        "backend/app/utils/__init__.py",
        "backend/app/utils/text.py",
    }
    assert not run_inputs(repo, policy()).truncated


@pytest.mark.parametrize(
    "changed",
    [
        "backend/app/alembic/env.py",
        "backend/app/alembic/script.py.mako",
        "backend/alembic.ini",
        "backend/requirements.txt",
        "backend/requirements-base.txt",  # included by requirements.txt
        "backend/app/alembic/versions/0001_create_user.py",
        "backend/app/core/config.py",  # env.py imports it
        "backend/app/core/db_types.py",  # the revision imports it
        "backend/app/models/user.py",  # app.models imports it (relative import)
        "backend/app/utils/text.py",  # user.py imports it (`from ..utils.text`)
        "backend/app/__init__.py",  # runs before any app.* module
    ],
)
def test_a_change_to_what_runs_changes_it(repo: Path, changed: str) -> None:
    before = approval_fingerprint(repo, policy())
    with (repo / changed).open("a", encoding="utf-8") as stream:
        stream.write("\n# changed\n")
    assert approval_fingerprint(repo, policy()) != before


@pytest.mark.parametrize(
    "changed",
    [
        "README.md",
        "backend/app/main.py",
        "backend/app/api/routes.py",  # imports the models, but nothing imports it
        "backend/app/utils/unused.py",
        "backend/app/alembic/README",
        "backend/tests/test_models.py",
        "backend/requirements-dev.txt",  # no setup command installs it
        "backend/pyproject.toml",  # not Alembic's configuration, not a setup input here
    ],
)
def test_a_change_to_what_nothing_runs_keeps_it(repo: Path, changed: str) -> None:
    before = approval_fingerprint(repo, policy())
    with (repo / changed).open("a", encoding="utf-8") as stream:
        stream.write("\n# changed\n")
    write(repo, {"docs/new.md": "# a new file\n", "backend/tests/test_new.py": "import app\n"})
    assert approval_fingerprint(repo, policy()) == before


def test_adding_removing_or_renaming_a_revision_changes_it(repo: Path) -> None:
    before = approval_fingerprint(repo, policy())
    versions = repo / "backend/app/alembic/versions"
    (versions / "0002_more.py").write_text('revision = "0002"\n', encoding="utf-8")
    added = approval_fingerprint(repo, policy())
    (versions / "0002_more.py").rename(versions / "0002_renamed.py")
    renamed = approval_fingerprint(repo, policy())
    (versions / "0002_renamed.py").unlink()
    assert len({before, added, renamed}) == 3
    assert approval_fingerprint(repo, policy()) == before


def test_a_new_import_in_env_py_brings_the_module_in(repo: Path) -> None:
    assert "backend/app/main.py" not in covered(repo)
    env = repo / "backend/app/alembic/env.py"
    env.write_text("import app.main\n" + env.read_text(encoding="utf-8"), encoding="utf-8")
    assert "backend/app/main.py" in covered(repo)
    before = approval_fingerprint(repo, policy())
    with (repo / "backend/app/main.py").open("a", encoding="utf-8") as stream:
        stream.write("app.debug = True\n")
    assert approval_fingerprint(repo, policy()) != before


def test_without_setup_commands_no_requirement_file_is_an_input(repo: Path) -> None:
    files = covered(repo, "")
    assert not {f for f in files if "requirements" in f}
    assert "backend/app/alembic/env.py" in files


def test_setup_naming_a_directory_covers_its_packaging_files(repo: Path) -> None:
    text = "sandbox:\n  setup:\n    - pip install -e ./backend\n"
    assert "backend/pyproject.toml" in covered(repo, text)


def test_deterministic_and_independent_of_creation_order(tmp_path: Path) -> None:
    forward, backward = tmp_path / "a", tmp_path / "b"
    write(forward, REPO)
    write(backward, dict(reversed(list(REPO.items()))))
    assert approval_fingerprint(forward, policy()) == approval_fingerprint(backward, policy())
    assert approval_fingerprint(forward, policy()) == approval_fingerprint(forward, policy())


def test_prepend_sys_path_entries_are_search_roots(tmp_path: Path) -> None:
    """`prepend_sys_path = . ../shared` (legacy space split) relative to the ini's folder:
    a module in the second entry is found; one in a folder not listed is not."""
    root = tmp_path / "repo"
    write(
        root,
        {
            "db/alembic.ini": (
                "[alembic]\nscript_location = migrations\nprepend_sys_path = . ../lib\n"
            ),
            "db/migrations/env.py": "import helpers\nimport orphan\n",
            "db/migrations/versions/0001.py": 'revision = "0001"\n',
            "lib/helpers.py": "from . import sibling\nimport json\n",
            "lib/sibling.py": "",
            "elsewhere/orphan.py": "",
        },
    )
    files = covered(root, "")
    assert {"lib/helpers.py", "lib/sibling.py"} <= files
    assert "elsewhere/orphan.py" not in files


def test_default_prepend_sys_path_is_the_ini_folder(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(
        root,
        {
            "svc/alembic.ini": "[alembic]\nscript_location = %(here)s/alembic\n",
            "svc/alembic/env.py": "from settings import URL\n",
            "svc/alembic/versions/0001.py": 'revision = "0001"\n',
            "svc/settings.py": "URL = 'x'\n",
        },
    )
    assert "svc/settings.py" in covered(root, "")


def test_dynamic_imports_with_a_literal_name_are_followed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(
        root,
        {
            "alembic.ini": "[alembic]\nscript_location = migrations\n",
            "migrations/env.py": (
                "import importlib\n\n"
                'models = importlib.import_module("app.models")\n'
                '__import__("app.extra")\n'
            ),
            "migrations/versions/0001.py": 'revision = "0001"\n',
            "app/models.py": "",
            "app/extra.py": "",
        },
    )
    assert {"app/models.py", "app/extra.py"} <= covered(root, "")


def test_links_out_of_the_repository_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, {"secret.py": "KEY = 'host file'\n"})
    root = tmp_path / "repo"
    write(
        root,
        {
            "alembic.ini": "[alembic]\nscript_location = migrations\n",
            "migrations/env.py": "import secret\nimport app.evil\n",
            "migrations/versions/0001.py": 'revision = "0001"\n',
            "app/__init__.py": "",
        },
    )
    (root / "secret.py").symlink_to(outside / "secret.py")
    (root / "app" / "evil").symlink_to(outside)
    files = covered(root, "")
    assert not any("secret" in f for f in files)
    assert files == {
        "alembic.ini",
        "migrations/env.py",
        "migrations/versions/0001.py",
        "app/__init__.py",
    }


def test_broken_python_is_covered_not_followed(repo: Path) -> None:
    write(repo, {"backend/app/core/config.py": "def broken(:\n    import app.main\n"})
    files = covered(repo)
    assert "backend/app/core/config.py" in files
    assert "backend/app/main.py" not in files


def test_import_cycles_end(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, {"a.py": "import b\n", "b.py": "from a import x\nimport a\n"})
    closure = import_closure(root, [root / "a.py"], [root])
    assert [p.name for p in closure.files] == ["a.py", "b.py"]
    assert not closure.truncated


def test_a_chain_deeper_than_the_bound_is_cut_and_says_so(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    length = imports.MAX_DEPTH + 5
    write(root, {f"m{i}.py": f"import m{i + 1}\n" for i in range(length)} | {f"m{length}.py": ""})
    closure = import_closure(root, [root / "m0.py"], [root])
    assert closure.truncated
    assert len(closure.files) == imports.MAX_DEPTH + 1


def test_a_repository_without_a_project_is_a_user_error(tmp_path: Path) -> None:
    write(tmp_path, {"README.md": "# nothing\n"})
    with pytest.raises(UserError):
        approval_fingerprint(tmp_path, policy(""))


def test_imports_anywhere_in_the_statement_tree_count(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(
        root,
        {
            "env.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    import typed\n"
                "try:\n    import fast\nexcept ImportError:\n    import slow\n"
                "def run():\n    import inner\n"
                "class Config:\n    from . import attribute\n"
                "match 1:\n    case 1:\n        import matched\n"
            ),
            **{f"{name}.py": "" for name in ("typed", "fast", "slow", "inner", "attribute")},
            "matched.py": "",
            "not_imported.py": "",
        },
    )
    closure = import_closure(root, [root / "env.py"], [root])
    assert sorted(p.stem for p in closure.files) == [
        "attribute",
        "env",
        "fast",
        "inner",
        "matched",
        "slow",
        "typed",
    ]


def test_python_resolution_order_in_a_folder(tmp_path: Path) -> None:
    """A package beats a module beside it, a module beats a namespace folder."""
    root = tmp_path / "repo"
    write(
        root,
        {
            "env.py": "import pkg\nimport mod\n",
            "pkg/__init__.py": "",
            "pkg.py": "",
            "mod.py": "",
            "mod/inside.py": "",
        },
    )
    closure = import_closure(root, [root / "env.py"], [root])
    assert [p.relative_to(root).as_posix() for p in closure.files] == [
        "env.py",
        "mod.py",
        "pkg/__init__.py",
    ]
