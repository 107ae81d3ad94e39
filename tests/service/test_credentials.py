"""`migsafe serve` and `migsafe worker` check the App's credentials at start-up (`GET /app`
with the App's JWT, against the fake GitHub) and say in one line what is wrong: a key of
another App, a wrong App id, a URL that is not GitHub's API, an unreachable GitHub."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bot.errors import UserError
from bot.github.app_check import verify_app
from tests.fakegithub.server import FakeGitHub
from tests.github.test_auth import private_key_pem as other_key  # not the fake App's key

REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.asyncio
async def test_the_apps_own_credentials_are_accepted(fake_github: FakeGitHub) -> None:
    line = await verify_app(fake_github.url, fake_github.app_id, fake_github.private_key_pem)
    assert line == (
        f"GitHub App 'migsafe' (id {fake_github.app_id}) at {fake_github.url}: credentials accepted"
    )
    [call] = fake_github.requests_to("GET", "apps/get-authenticated")
    assert call.status == 200


@pytest.mark.asyncio
async def test_a_key_of_another_app_is_refused_naming_the_variables(
    fake_github: FakeGitHub,
) -> None:
    with pytest.raises(UserError) as refused:
        await verify_app(fake_github.url, fake_github.app_id, other_key())
    message = str(refused.value)
    assert (
        f"GitHub at {fake_github.url} (MIGSAFE_GITHUB_API_URL) refused the App's JWT (401"
        in message
    )
    assert "MIGSAFE_APP_ID and MIGSAFE_PRIVATE_KEY (or MIGSAFE_PRIVATE_KEY_FILE)" in message
    assert "\n" not in message and "PRIVATE KEY-----" not in message
    fake_github.pop_violations()  # a refused JWT is recorded as the fake's authentication error


@pytest.mark.asyncio
async def test_a_wrong_app_id_is_refused(fake_github: FakeGitHub) -> None:
    with pytest.raises(UserError, match=r"refused the App's JWT \(401: .*App 999's id"):
        await verify_app(fake_github.url, 999, fake_github.private_key_pem)
    fake_github.pop_violations()


@pytest.mark.asyncio
async def test_a_url_that_is_not_githubs_api_says_so(fake_github: FakeGitHub) -> None:
    with pytest.raises(UserError, match=r"has no GET /app \(404\): is it GitHub's API\?"):
        await verify_app(f"{fake_github.url}/not-the-api", fake_github.app_id, other_key())
    fake_github.pop_violations()  # the fake knows no such path


@pytest.mark.asyncio
async def test_an_unreachable_github_says_so() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(
        UserError, match=rf"^cannot reach GitHub at {url} \(MIGSAFE_GITHUB_API_URL\): "
    ):
        await verify_app(url, 1, other_key())


def _serve(
    command: str, fake: FakeGitHub, state_conninfo: str, **overrides: str
) -> subprocess.CompletedProcess[str]:
    params = conninfo_to_dict(state_conninfo)
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "MIGSAFE_APP_ID": str(fake.app_id),
        "MIGSAFE_PRIVATE_KEY": fake.private_key_pem,
        "MIGSAFE_WEBHOOK_SECRET": "webhook-secret",
        "MIGSAFE_GITHUB_API_URL": fake.url,
        "DATABASE_URL": make_conninfo(**params),
        "PORT": str(closed_port()),
        **overrides,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *command.split()],
        env=environ,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("command", ["serve --no-worker", "worker"])
def test_start_up_with_a_wrong_key_exits_2_with_one_line(
    fake_github_in_thread: FakeGitHub, state_conninfo: str, command: str
) -> None:
    fake = fake_github_in_thread
    key = other_key()
    done = _serve(command, fake, state_conninfo, MIGSAFE_PRIVATE_KEY=key)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("migsafe: error:")]
    assert len(errors) == 1 and errors == done.stderr.splitlines()[-1:]
    assert "refused the App's JWT (401" in errors[0]
    assert "Traceback" not in done.stderr
    assert key.splitlines()[1] not in done.stderr
    fake.pop_violations()


def test_start_up_with_an_unreachable_github_exits_2_with_one_line(
    fake_github_in_thread: FakeGitHub, state_conninfo: str
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    done = _serve("serve", fake_github_in_thread, state_conninfo, MIGSAFE_GITHUB_API_URL=url)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"migsafe: error: cannot reach GitHub at {url} (MIGSAFE_GITHUB_API_URL): "
    )
    assert "Traceback" not in done.stderr
