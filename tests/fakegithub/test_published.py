"""Where the fake GitHub's data comes from: `../shared/github`, else the pinned npm packages
(tests/fakegithub/published.py), else a skip that says why."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.fakegithub import (
    OPENAPI_RELATIVE,
    SHARED_DIR_ENV,
    SKIP_REASON,
    published,
    require_shared_github_dir,
    shared_github_dir,
)
from tests.fakegithub.published import (
    CACHE_DIR_ENV,
    SCHEMAS_PACKAGE,
    NpmPackage,
    Unavailable,
    npm_pack,
    published_github_dir,
    trim_description,
)

ROOT = Path(__file__).resolve().parents[2]
FAKE_TESTS = ["tests/fakegithub/test_fake.py", "-k", "valid_flow or builders_validate"]


def _published_or_skip() -> Path:
    try:
        return published_github_dir()
    except Unavailable as error:
        pytest.skip(f"the pinned npm packages cannot be fetched: {error}")


def _pytest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


# ----- locating ---------------------------------------------------------------------------


def test_an_empty_shared_dir_is_no_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    assert shared_github_dir() is None


def test_a_fresh_clone_runs_the_fakes_tests_from_the_packages(tmp_path: Path) -> None:
    _published_or_skip()  # fetched (or found in the cache) here, read from the cache below
    (tmp_path / "empty").mkdir()
    result = _pytest({**os.environ, SHARED_DIR_ENV: str(tmp_path / "empty")}, *FAKE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    assert "passed" in last and "skipped" not in last, result.stdout


def test_without_shared_data_or_registry_the_tests_skip_saying_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    env = {
        **os.environ,
        SHARED_DIR_ENV: str(tmp_path / "empty"),
        CACHE_DIR_ENV: str(tmp_path / "cache"),
        # A registry that refuses connections, on this machine; npm's own cache kept apart.
        "npm_config_registry": "http://127.0.0.1:9/",
        "npm_config_fetch_retries": "0",
        "npm_config_cache": str(tmp_path / "npm-cache"),
    }
    result = _pytest(env, *FAKE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.splitlines()[-1]
    assert "skipped" in last and "passed" not in last, result.stdout
    assert SKIP_REASON in result.stdout
    reason = "npm is not on PATH" if shutil.which("npm") is None else "ECONNREFUSED"
    assert reason in result.stdout


def test_the_shared_folder_wins_over_the_packages() -> None:
    shared = shared_github_dir()
    if shared is None:
        pytest.skip("no ../shared/github here")
    assert require_shared_github_dir() == shared


# ----- the packages give the shared data ----------------------------------------------------


def test_the_packages_give_what_shared_holds() -> None:
    shared = shared_github_dir()
    if shared is None:
        pytest.skip("no ../shared/github to compare with")
    built = _published_or_skip()
    # The description: cut from the same file the same way, to the byte.
    assert (built / OPENAPI_RELATIVE).read_bytes() == (shared / OPENAPI_RELATIVE).read_bytes()
    # Examples and schemas: the same JSON (shared keeps the repository's formatting).
    compared = 0
    for path in sorted(shared.rglob("*.json")):
        relative = path.relative_to(shared)
        assert (built / relative).is_file(), relative
        assert json.loads((built / relative).read_text(encoding="utf-8")) == json.loads(
            path.read_text(encoding="utf-8")
        ), relative
        compared += 1
    assert compared >= 89  # 1 description, 41 examples, 47 schemas


def test_a_filled_cache_is_read_without_npm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _published_or_skip()
    cached = built.parent
    shutil.copytree(cached, tmp_path / cached.name)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    monkeypatch.setattr(published, "_outcome", None)
    assert published_github_dir() == tmp_path / cached.name / "github"


def test_a_changed_cache_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = _published_or_skip()
    cached = built.parent
    shutil.copytree(cached, tmp_path / cached.name)
    example = tmp_path / cached.name / "github" / "webhooks" / "ping.json"
    example.write_text('{"zen": "changed"}\n', encoding="utf-8")
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(published, "_outcome", None)
    with pytest.raises(RuntimeError, match=r"differs from its MANIFEST\.json"):
        published_github_dir()


def test_a_tarball_that_is_not_the_pinned_one_is_an_error(tmp_path: Path) -> None:
    _published_or_skip()  # the registry is reachable
    wrong = NpmPackage(SCHEMAS_PACKAGE.name, SCHEMAS_PACKAGE.version, "0" * 64)
    with pytest.raises(RuntimeError, match="not the pinned"):
        npm_pack(wrong, tmp_path)


# ----- cutting and reading ------------------------------------------------------------------


def test_trim_keeps_the_operations_what_they_reference_and_their_tags() -> None:
    ref = "#/components/{}/{}".format
    full: dict[str, Any] = {
        "openapi": "3.0.3",
        "tags": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "paths": {
            "/x": {
                "get": {"tags": ["b"], "responses": {"200": {"$ref": ref("responses", "ok")}}},
                "post": {"tags": ["c"], "responses": {}},
            },
            "/y": {"get": {"tags": ["a"], "responses": {}}},
        },
        "x-webhooks": {"ping": {}},
        "components": {
            "schemas": {
                "unused": {"type": "string"},
                "thing": {"properties": {"part": {"$ref": ref("schemas", "part")}}},
                "part": {"type": "integer"},
            },
            "responses": {"ok": {"schema": {"$ref": ref("schemas", "thing")}}},
            "headers": {"unused": {}},
        },
    }
    trimmed = trim_description(full, (("get", "/x"),))
    assert list(trimmed) == ["openapi", "tags", "paths", "components"]
    assert trimmed["paths"] == {"/x": {"get": full["paths"]["/x"]["get"]}}
    assert trimmed["tags"] == [{"name": "b"}]
    assert trimmed["components"] == {
        "schemas": {"thing": full["components"]["schemas"]["thing"], "part": {"type": "integer"}},
        "responses": full["components"]["responses"],
    }
    with pytest.raises(RuntimeError, match="no DELETE /x"):
        trim_description(full, (("delete", "/x"),))


def _tarball(path: Path, members: list[tarfile.TarInfo], data: bytes = b"{}") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            if member.isfile():
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
            else:
                archive.addfile(member)
    return path


def test_a_member_is_read_only_as_a_regular_file(tmp_path: Path) -> None:
    regular = tarfile.TarInfo("package/schema.json")
    assert published._member(_tarball(tmp_path / "ok.tgz", [regular]), regular.name) == b"{}"

    link = tarfile.TarInfo("package/schema.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(RuntimeError, match="not a regular file"):
        published._member(_tarball(tmp_path / "link.tgz", [link]), "package/schema.json")
    escaping = tarfile.TarInfo("../../package/schema.json")
    with pytest.raises(RuntimeError, match=r"has no package/schema\.json"):
        published._member(_tarball(tmp_path / "dots.tgz", [escaping]), "package/schema.json")
