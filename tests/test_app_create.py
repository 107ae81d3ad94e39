"""`migsafe app create` end to end against the fake GitHub: the real command in a subprocess,
and the test as the browser (fetch the local page, post its form to GitHub's new-App page,
follow the redirect to the local callback). Then the files it wrote start the App's
credential check as `migsafe serve` reads them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import pytest_asyncio
import yaml

from bot.cli import main
from bot.errors import UserError
from bot.github.app_check import verify_app
from bot.github.manifest import build_manifest, convert, github_host
from bot.settings import load_settings
from tests.fakegithub.server import FakeGitHub

ROOT = Path(__file__).resolve().parents[1]
APP_YML = yaml.safe_load((ROOT / "bot" / "app.yml").read_text())
WEBHOOK = "https://migsafe.example.com/webhook"
FOR_ACME = ("--org", "acme", "--webhook-url", WEBHOOK)


class FormReader(HTMLParser):
    """The local page's form, as a browser reads it: its action and hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input":
            self.fields[values["name"]] = values["value"]


@pytest_asyncio.fixture
async def github(fake_github: FakeGitHub) -> AsyncIterator[FakeGitHub]:
    if not fake_github.description.has_operation("apps/create-from-manifest"):
        pytest.skip(
            "GitHub's description of POST /app-manifests/{code}/conversions is not in "
            "../shared's cut and the pinned npm packages cannot be fetched"
        )
    yield fake_github


async def start_create(*argv: str) -> tuple[asyncio.subprocess.Process, str]:
    """`migsafe app create ARGV --no-browser` and the local page's address it prints."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "app",
        "create",
        *argv,
        "--no-browser",
        cwd=ROOT,
        env={**os.environ, "MIGSAFE_PUBLIC_URL": ""},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    first = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    found = re.search(r"open (http://127\.0\.0\.1:\d+/[\w-]{20,}/) in a browser", first)
    assert found, first
    return process, found.group(1)


async def read_form(browser: aiohttp.ClientSession, page: str) -> FormReader:
    """The local page's form, as the browser opening `page` reads it."""
    async with browser.get(page) as answer:
        assert answer.status == 200
        form = FormReader()
        form.feed(await answer.text())
    return form


def env_file(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.asyncio
@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "forced-over-old-files"])
async def test_create_registers_the_app_and_writes_what_serve_reads(
    github: FakeGitHub, tmp_path: Path, existing: bool
) -> None:
    if existing:
        (tmp_path / "secrets").mkdir(mode=0o700)
        (tmp_path / "secrets" / "migsafe.pem").write_text("old key\n")
        (tmp_path / "migsafe.env").write_text("MIGSAFE_APP_ID=1\n")
    force = ["--force"] if existing else []
    process, page = await start_create(
        "--org", "acme", "--webhook-url", WEBHOOK, "--name", "migsafe-acme",
        "--github-url", github.url, "--dir", str(tmp_path), *force,
    )  # fmt: skip
    async with aiohttp.ClientSession() as browser:
        form = await read_form(browser, page)
        assert form.action.startswith(f"{github.url}/organizations/acme/settings/apps/new?state=")
        state = form.action.partition("state=")[2]
        # A callback without this run's state is refused, and the command waits on.
        async with browser.get(f"{page}callback?code=forged&state=other") as forged:
            assert forged.status == 400
        async with browser.post(form.action, data=form.fields) as answer:
            assert answer.status == 200
            assert str(answer.url).startswith(f"{page}callback?code=")
            assert f"state={state}" in str(answer.url)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()

    [created] = github.created_apps
    manifest = created.manifest
    assert manifest["default_permissions"] == APP_YML["default_permissions"]
    assert manifest["default_events"] == APP_YML["default_events"]
    assert manifest["hook_attributes"] == {"url": WEBHOOK, "active": True}
    assert manifest["name"] == "migsafe-acme" and manifest["public"] is False
    assert manifest["redirect_url"] == f"{page}callback"

    written = env_file(tmp_path / "migsafe.env")
    key_file = tmp_path / "secrets" / "migsafe.pem"
    assert written["MIGSAFE_APP_ID"] == str(created.id)
    assert written["MIGSAFE_PRIVATE_KEY_FILE"] == str(key_file.resolve())
    assert written["MIGSAFE_GITHUB_API_URL"] == f"{github.url}/api/v3"
    assert written["MIGSAFE_PUBLIC_URL"] == "https://migsafe.example.com"
    assert key_file.read_text() == github.private_key_pem
    assert (mode(key_file), mode(tmp_path / "migsafe.env")) == (0o600, 0o600)
    assert existing or mode(key_file.parent) == 0o700  # a folder it creates

    printed = out.decode()
    assert f"{github.url}/apps/migsafe-acme/installations/new" in printed
    for secret in (written["MIGSAFE_WEBHOOK_SECRET"], github.private_key_pem.splitlines()[1]):
        assert secret not in printed and secret not in err.decode()
    assert not list(tmp_path.rglob(".*.tmp"))

    # What `migsafe serve` does with these files: load them, and GitHub accepts the App.
    settings = load_settings(written)
    assert settings.app_id == created.id and settings.private_key == github.private_key_pem
    line = await verify_app(settings.github_api_url, settings.app_id, settings.private_key)
    assert line.endswith("credentials accepted")


@pytest.mark.asyncio
async def test_a_personal_account_posts_to_the_users_page(
    github: FakeGitHub, tmp_path: Path
) -> None:
    process, page = await start_create(
        "--user", github.web_login, "--webhook-url", WEBHOOK, "--github-url", github.url,
        "--dir", str(tmp_path),
    )  # fmt: skip
    async with aiohttp.ClientSession() as browser:
        form = await read_form(browser, page)
        assert form.action.startswith(f"{github.url}/settings/apps/new?state=")
        async with browser.post(form.action, data=form.fields) as answer:
            assert answer.status == 200
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert github.created_apps[0].owner == github.web_login
    assert json.loads(form.fields["manifest"])["name"] == APP_YML["name"]


@pytest.mark.asyncio
async def test_the_page_answers_only_its_token_at_its_own_address(
    github: FakeGitHub, tmp_path: Path
) -> None:
    process, page = await start_create(
        *FOR_ACME, "--github-url", github.url, "--dir", str(tmp_path)
    )
    address = urlsplit(page)
    root = f"http://127.0.0.1:{address.port}"
    async with aiohttp.ClientSession() as browser:
        form = await read_form(browser, page)
        state = form.action.partition("state=")[2]
        # Another local user knows the port, not the token: nothing there, not even a
        # callback with this run's state (which would end the wait with a code of theirs).
        for path in ("/", f"/callback?code=theirs&state={state}", "/not-the-token/"):
            async with browser.get(root + path) as answer:
                assert answer.status == 404, path
                assert state not in await answer.text()
        # DNS rebinding: a web page whose own name resolves to 127.0.0.1 sends that name.
        for path in ("", f"callback?code=theirs&state={state}"):
            rebound = {"host": f"rebound.example:{address.port}"}
            async with browser.get(page + path, headers=rebound) as answer:
                assert answer.status == 400, path
                assert state not in await answer.text()
        async with browser.get(page, headers={"host": f"localhost:{address.port}"}) as answer:
            assert answer.status == 200
        async with browser.post(form.action, data=form.fields) as answer:
            assert answer.status == 200
    # None of those ended the wait: the command converts GitHub's code, and succeeds.
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert (tmp_path / "migsafe.env").is_file()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("asked", "owner", "new_app_page"),
    [
        (["--org", "acme"], "evil", "/organizations/evil/settings/apps/new"),
        (["--user", "hubot"], "octocat", "/settings/apps/new"),
    ],
    ids=["org", "user"],
)
async def test_an_app_of_another_owner_is_refused_and_nothing_written(
    github: FakeGitHub, tmp_path: Path, asked: list[str], owner: str, new_app_page: str
) -> None:
    process, page = await start_create(
        *asked, "--webhook-url", WEBHOOK, "--github-url", github.url, "--dir", str(tmp_path)
    )
    async with aiohttp.ClientSession() as browser:
        form = await read_form(browser, page)
        state = form.action.partition("state=")[2]
        # An App created on another owner's page, its code sent to the callback with the state.
        url = f"{github.url}{new_app_page}?state={state}"
        async with browser.post(url, data=form.fields) as answer:
            assert answer.status == 200
            assert str(answer.url).startswith(f"{page}callback?code=")
    out, err = await asyncio.wait_for(process.communicate(), 60)
    [created] = github.created_apps
    assert created.owner == owner
    assert process.returncode == 2 and out == b""  # after the page's address: nothing
    assert err.decode().startswith(
        f"migsafe: error: GitHub's code is for the App {created.slug!r} owned by {owner!r}, "
        f"not by {asked[1]!r} as asked: nothing written."
    )
    assert err.decode().count("\n") == 1
    assert [path for path in tmp_path.rglob("*") if not path.is_dir()] == []


@pytest.mark.asyncio
async def test_a_failed_write_says_where_the_credentials_are(
    github: FakeGitHub, tmp_path: Path
) -> None:
    process, page = await start_create(
        *FOR_ACME, "--github-url", github.url, "--dir", str(tmp_path)
    )
    env = tmp_path / "migsafe.env"
    async with aiohttp.ClientSession() as browser:
        form = await read_form(browser, page)
        # The env file appears after the command checked for it, before it writes it.
        env.write_text("MIGSAFE_APP_ID=1\n")
        async with browser.post(form.action, data=form.fields) as answer:
            assert answer.status == 200
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert env.read_text() == "MIGSAFE_APP_ID=1\n"  # kept: no --force
    key_file = tmp_path / "secrets" / "migsafe.pem"
    assert key_file.read_text() == github.private_key_pem and mode(key_file) == 0o600
    [staged] = tmp_path.glob(".migsafe.env.*.tmp")
    assert err.decode() == (
        f"migsafe: error: cannot write {env}: File exists. Nothing is lost: move {staged} to "
        f"{env} once that is fixed\n"
    )
    assert mode(staged) == 0o600
    written = env_file(staged)
    assert written["MIGSAFE_APP_ID"] == str(github.created_apps[0].id)
    assert written["MIGSAFE_PRIVATE_KEY_FILE"] == str(key_file.resolve())
    for secret in (written["MIGSAFE_WEBHOOK_SECRET"], github.private_key_pem.splitlines()[1]):
        assert secret not in out.decode() and secret not in err.decode()


@pytest.mark.asyncio
async def test_credentials_that_cannot_be_written_say_which_app_to_delete(
    github: FakeGitHub, tmp_path: Path
) -> None:
    process, page = await start_create(
        *FOR_ACME, "--github-url", github.url, "--dir", str(tmp_path)
    )
    async with aiohttp.ClientSession() as browser:
        form = await read_form(browser, page)
        (tmp_path / "secrets").rmdir()  # gone after the command made it: the key has no place
        async with browser.post(form.action, data=form.fields) as answer:
            assert answer.status == 200
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    [created] = github.created_apps
    assert err.decode() == (
        f"migsafe: error: cannot write {tmp_path / 'secrets' / 'migsafe.pem'}: No such file or "
        f"directory. The App {created.slug} (id {created.id}) exists on GitHub without its saved "
        f"credentials: delete it at {github.url}/organizations/acme/settings/apps/"
        f"{created.slug}/advanced and run this again\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_secrets_folder_open_to_others_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    folder.mkdir()
    folder.chmod(0o750)
    # A subprocess with a timeout: a command that went on would wait for a browser.
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "app", "create", "--org", "acme", "--no-browser",
         "--webhook-url", WEBHOOK, "--dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"migsafe: error: {folder} is mode 0750, open to others: check what is in it, then "
        f"`chmod 700 {folder}`\n"
    )
    assert mode(folder) == 0o750 and list(tmp_path.rglob("*")) == [folder]


def test_existing_files_are_kept_before_github_is_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "migsafe.env").write_text("MIGSAFE_APP_ID=1\n")
    argv = ["app", "create", "--org", "acme", "--webhook-url", WEBHOOK, "--dir", str(tmp_path)]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"migsafe: error: {tmp_path / 'migsafe.env'} exists: keep it, or pass --force to "
        "overwrite it\n"
    )
    assert (tmp_path / "migsafe.env").read_text() == "MIGSAFE_APP_ID=1\n"


def test_a_webhook_url_is_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGSAFE_PUBLIC_URL", raising=False)
    assert main(["app", "create", "--org", "acme", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("migsafe: error: --webhook-url is required")
    assert list(tmp_path.iterdir()) == []


def test_the_webhook_url_defaults_to_the_public_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.app_cli import _webhook_url

    monkeypatch.setenv("MIGSAFE_PUBLIC_URL", "https://migsafe.example.com/")
    assert _webhook_url(None) == WEBHOOK
    with pytest.raises(UserError, match="must be an http"):
        _webhook_url("migsafe.example.com/webhook")


@pytest.mark.parametrize(
    ("web", "api"),
    [
        ("https://github.com", "https://api.github.com"),
        ("https://github.com/", "https://api.github.com"),
        ("https://octo.ghe.com", "https://api.octo.ghe.com"),
        ("https://git.example.com", "https://git.example.com/api/v3"),
    ],
)
def test_the_api_of_each_kind_of_github(web: str, api: str) -> None:
    host = github_host(web)
    assert host.api_url == api
    assert host.new_app_url("acme") == f"{web.rstrip('/')}/organizations/acme/settings/apps/new"
    assert host.new_app_url(None) == f"{web.rstrip('/')}/settings/apps/new"


def test_the_manifest_is_app_yml_with_the_hook_and_redirect() -> None:
    manifest = build_manifest(
        APP_YML, name=None, webhook_url=WEBHOOK, redirect_url="http://127.0.0.1:1/callback"
    )
    assert set(manifest) == {
        "name", "url", "description", "public", "default_permissions", "default_events",
        "hook_attributes", "redirect_url",
    }  # fmt: skip
    assert manifest["hook_attributes"] == {"url": WEBHOOK, "active": True}


@pytest.mark.asyncio
async def test_a_used_or_unknown_code_says_to_start_again(github: FakeGitHub) -> None:
    with pytest.raises(UserError, match="run `migsafe app create` again"):
        await asyncio.to_thread(convert, f"{github.url}/api/v3", "expired-code")


def test_the_command_never_imports_the_service_stack() -> None:
    code = (
        "import sys\nfrom bot.cli import main\n"
        "main(['app', 'create', '--org', 'a', '--webhook-url', 'not-a-url'])\n"
        "print(sorted(m for m in ('aiohttp', 'gidgethub', 'procrastinate') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stderr.startswith("migsafe: error: --webhook-url must be an http(s) URL")
    assert done.stdout.strip() == "[]", done.stderr


def test_a_port_out_of_range_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["app", "create", "--org", "acme", "--port", "99999"])
    assert exit_.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--port: '99999': expected a port from 0 to 65535" in line
