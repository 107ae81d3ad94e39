"""A fake GitHub for the service's tests, faked only at the HTTP boundary.

- `server.FakeGitHub`: an aiohttp server on 127.0.0.1 keeping GitHub's state in memory and
  validating every request against GitHub's own OpenAPI description.
- `payloads`: signed webhook deliveries built from GitHub's real payload examples.
- `conftest_plugin`: the pytest fixtures (`fake_github`, ...).

The OpenAPI description and the payload examples are read at test time from the shared data
folder (`../shared/github` beside the repository, or `$MIGSAFE_SHARED_DIR/github`); they are
never copied into the project. Where the folder is absent (a fresh clone), the same data is
built from the pinned npm packages it came from (`published`: fetched once, verified by
SHA-256, cached); only where those cannot be fetched either do the tests that need it skip,
with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DIR_ENV = "MIGSAFE_SHARED_DIR"
SKIP_REASON = (
    "../shared/github not found and the pinned npm packages cannot be fetched: GitHub fakes "
    "need the OpenAPI description and payload examples"
)
OPENAPI_RELATIVE = Path("openapi") / "api.github.com.trimmed.json"
# Operations beyond that cut (written only where the data is built from the packages).
SUPPLEMENT_RELATIVE = Path("openapi") / "api.github.com.supplement.json"
WEBHOOKS_RELATIVE = Path("webhooks")


def default_shared_dir() -> Path:
    """`shared/` beside the repository root (this file is <root>/tests/fakegithub/__init__.py)."""
    return Path(__file__).resolve().parents[2].parent / "shared"


def shared_github_dir() -> Path | None:
    """The `github` data folder, or None where it (or its OpenAPI description) is missing.

    `$MIGSAFE_SHARED_DIR` wins over the default location when set, even if it points at an
    empty folder: that is how a fresh clone is simulated.
    """
    configured = os.environ.get(SHARED_DIR_ENV)
    base = Path(configured) if configured else default_shared_dir()
    github = base / "github"
    if not (github / OPENAPI_RELATIVE).is_file() or not (github / WEBHOOKS_RELATIVE).is_dir():
        return None
    return github


def require_shared_github_dir() -> Path:
    """The `github` data folder: the shared one, else the one built from the pinned npm
    packages; or skip the calling test with a clear reason where neither can be had."""
    import pytest

    from tests.fakegithub.published import Unavailable, published_github_dir

    found = shared_github_dir()
    if found is not None:
        return found
    try:
        return published_github_dir()
    except Unavailable as error:
        pytest.skip(f"{SKIP_REASON} ({error})")
