"""`migsafe app create`: register the GitHub App through GitHub's manifest flow and save its
credentials where `migsafe serve` reads them.

1. A local page (bot.manifest_page) posts the manifest (bot/app.yml with the webhook URL and
   the page's callback) to GitHub's new-App form of the organization or the signed-in user.
2. The person confirms on GitHub; GitHub sends the browser back to the callback with a code.
3. The code becomes the App's id, private key and secrets (bot.github.manifest.convert).
   The App must be owned by the organization (or user) asked for: a code sent to the page by
   anyone else is one of an App of theirs, and nothing is written.
4. They are written to `<dir>/migsafe.env` and `<dir>/secrets/migsafe.pem`, both 0600, the
   folder `secrets` 0700 (an existing one open to others is refused), through
   bot.private_files: both are on disk in full before either gets its name, and a failure
   names where they are. Existing files are kept unless `--force`: that is checked before
   GitHub is asked anything, since GitHub gives the key and the secrets once.

Nothing secret is printed. Importing this module stays cheap (bot.cli builds its parser
from it for every command).
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from bot.errors import UserError

if TYPE_CHECKING:
    from bot.github.manifest import CreatedApp, GitHubHost
    from bot.private_files import Staged

ENV_FILE = "migsafe.env"
KEY_FILE = Path("secrets") / "migsafe.pem"
WEBHOOK_PATH = "/webhook"
WAIT_S = 15 * 60
# Values written bare in the env file; others are single-quoted (shells and `docker compose
# --env-file` both read that).
_BARE = re.compile(r"[\w./:@%+=,-]+")


def _port(value: str) -> int:
    port = int(value) if value.isdigit() else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a port from 0 to 65535")
    return port


def add_commands(commands: argparse._SubParsersAction[Any]) -> None:
    app_parser = commands.add_parser("app", help="the GitHub App's registration")
    app_commands = app_parser.add_subparsers(dest="app_command", required=True, metavar="COMMAND")
    create = app_commands.add_parser(
        "create",
        help="register the GitHub App from bot/app.yml and save its credentials",
        description="Register migsafe's GitHub App through GitHub's manifest flow: a local "
        "page sends the manifest to GitHub, you confirm there, and the App's id, private key "
        f"and webhook secret are written to DIR/{ENV_FILE} and DIR/{KEY_FILE}.",
    )
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--org", metavar="ORG", help="the organization that will own the App")
    owner.add_argument(
        "--user", metavar="LOGIN", help="owned by your personal account, LOGIN, instead"
    )
    create.add_argument(
        "--webhook-url",
        metavar="URL",
        help=f"where GitHub delivers events (default: $MIGSAFE_PUBLIC_URL{WEBHOOK_PATH})",
    )
    create.add_argument(
        "--name",
        help="the App's name, unique on GitHub (default: app.yml's; GitHub's page "
        "lets you change it)",
    )
    create.add_argument(
        "--github-url",
        default="https://github.com",
        metavar="URL",
        help="GitHub's web address; GitHub Enterprise Server: https://<host> (the API is then "
        "https://<host>/api/v3)",
    )
    create.add_argument(
        "--dir", type=Path, default=Path("."), help="where to write the files (default: .)"
    )
    create.add_argument("--force", action="store_true", help="overwrite existing files")
    create.add_argument(
        "--port", type=_port, default=0, help="the local page's port on 127.0.0.1 (default: any)"
    )
    create.add_argument(
        "--no-browser", action="store_true", help="print the local page's address only"
    )
    create.set_defaults(run=create_app)


@dataclass(frozen=True)
class Outputs:
    env_file: Path
    key_file: Path

    @classmethod
    def under(cls, folder: Path) -> Outputs:
        return cls(folder / ENV_FILE, folder / KEY_FILE)

    def prepare(self, *, force: bool) -> None:
        """Refuse to overwrite, and make sure the files can be written, before GitHub gives
        credentials it never gives twice."""
        for path in (self.env_file, self.key_file):
            if path.exists() and not force:
                raise UserError(f"{path} exists: keep it, or pass --force to overwrite it")
        _env_value(str(self.key_file.resolve()))  # a path the env file cannot hold fails now
        try:
            self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            folder_mode = stat.S_IMODE(self.key_file.parent.stat().st_mode)
        except OSError as error:
            raise UserError(f"cannot create {self.key_file.parent}: {error.strerror}") from error
        if folder_mode & 0o077:  # others could read the key, or swap it
            raise UserError(
                f"{self.key_file.parent} is mode {folder_mode:04o}, open to others: check what "
                f"is in it, then `chmod 700 {self.key_file.parent}`"
            )
        for folder in (self.env_file.parent, self.key_file.parent):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise UserError(f"{folder}: not writable")

    def write(
        self, app: CreatedApp, host: GitHubHost, webhook_url: str, *, force: bool
    ) -> list[str]:
        """Writes both files; the names of the variables in the env file. A failure is a
        NotWritten saying where what was written is."""
        from bot.private_files import place, stage

        values = _env_values(app, host, webhook_url, self.key_file)
        texts = {
            self.key_file: app.pem if app.pem.endswith("\n") else app.pem + "\n",
            self.env_file: _env_text(app, values),
        }
        staged: list[Staged] = []
        target = self.key_file
        try:
            for target, text in texts.items():
                staged.append(stage(target, text))
            for each in staged:
                target = each.target
                place(each, keep_existing=not force)
        except OSError as error:
            raise NotWritten(target, error.strerror or str(error), staged) from error
        return list(values)


class NotWritten(Exception):
    def __init__(self, target: Path, reason: str, staged: list[Staged]) -> None:
        super().__init__(f"cannot write {target}: {reason}")
        self.staged = staged


def create_app(args: argparse.Namespace) -> int:
    import webbrowser

    from bot.github.manifest import app_yml, build_manifest, convert, github_host
    from bot.manifest_page import ManifestPage

    host = github_host(args.github_url)
    webhook_url = _webhook_url(args.webhook_url)
    outputs = Outputs.under(args.dir)
    outputs.prepare(force=args.force)
    base = app_yml()
    with ManifestPage(args.port) as page:
        manifest = build_manifest(
            base, name=args.name, webhook_url=webhook_url, redirect_url=page.callback_url
        )
        page.offer(action=host.new_app_url(args.org), manifest=manifest)
        who = f"an owner of the organization {args.org}" if args.org else args.user
        print(
            f"migsafe: open {page.url} in a browser signed in to {host.web_url} "
            f"(as {who}) and confirm the App there",
            flush=True,
        )
        if not args.no_browser:
            webbrowser.open(page.url)
        code = page.wait(WAIT_S)
    app = convert(host.api_url, code)
    _check_owner(app, host, args.org, args.user)
    try:
        written = outputs.write(app, host, webhook_url, force=args.force)
    except NotWritten as failure:
        raise UserError(_not_written(failure, app, host, args.org)) from failure
    _print_next_steps(app, outputs, written, webhook_url)
    return 0


def _check_owner(app: CreatedApp, host: GitHubHost, org: str | None, user: str | None) -> None:
    """The App is owned by whom it was asked for. A code of someone else's App reaching the
    callback would have the operator run and install an App whose key its owner has: every
    repository it is installed on would be open to them."""
    asked = org or user or ""
    if app.owner and app.owner.casefold() == asked.casefold():  # logins ignore case
        return
    raise UserError(
        f"GitHub's code is for the App {app.slug!r} owned by {app.owner!r}, not by {asked!r} "
        "as asked: nothing written. If that App is yours, delete it in its settings (its page: "
        f"{host.web_url}/apps/{quote(app.slug, safe='')}); run `migsafe app create` again"
    )


def _not_written(failure: NotWritten, app: CreatedApp, host: GitHubHost, org: str | None) -> str:
    """What failed and where what was written is; never the secrets themselves."""
    if len(failure.staged) == 2:  # all of it is on disk
        moves = [
            f"move {each.where} to {each.target}" for each in failure.staged if not each.placed
        ]
        if not moves:  # both placed; syncing their folder failed
            return f"{failure}. Both files are written; check that they are intact"
        return f"{failure}. Nothing is lost: {'; '.join(moves)} once that is fixed"
    kept = "".join(f" (written: {each.where})" for each in failure.staged)
    return (
        f"{failure}. The App {app.slug} (id {app.id}) exists on GitHub without its saved "
        f"credentials{kept}: delete it at {_settings_url(host, org, app.slug)}/advanced and "
        "run this again"
    )


def _webhook_url(given: str | None) -> str:
    public = os.environ.get("MIGSAFE_PUBLIC_URL", "").strip().rstrip("/")
    url = given or (public + WEBHOOK_PATH if public else "")
    if not url:
        raise UserError(
            "--webhook-url is required (where GitHub delivers events, e.g. "
            f"https://migsafe.example.com{WEBHOOK_PATH}), or set MIGSAFE_PUBLIC_URL"
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"--webhook-url must be an http(s) URL, not {url!r}")
    return url


def _settings_url(host: GitHubHost, org: str | None, slug: str) -> str:
    owner = f"/organizations/{quote(org, safe='')}" if org else ""
    return f"{host.web_url}{owner}/settings/apps/{slug}"


def _env_values(
    app: CreatedApp, host: GitHubHost, webhook_url: str, key_file: Path
) -> dict[str, str]:
    values = {
        "MIGSAFE_APP_ID": str(app.id),
        "MIGSAFE_PRIVATE_KEY_FILE": str(key_file.resolve()),
        "MIGSAFE_WEBHOOK_SECRET": app.webhook_secret,
        "MIGSAFE_GITHUB_API_URL": host.api_url,
    }
    if webhook_url.endswith(WEBHOOK_PATH):  # the App's address, for the report pages' links
        values["MIGSAFE_PUBLIC_URL"] = webhook_url[: -len(WEBHOOK_PATH)]
    return values


def _env_text(app: CreatedApp, values: dict[str, str]) -> str:
    lines = [
        f"# The GitHub App {app.name!r} (id {app.id}, {app.html_url}), written by",
        "# `migsafe app create`. Secrets: keep this file 0600, out of version control.",
        *(f"{name}={_env_value(value)}" for name, value in values.items()),
        "# The App's OAuth client, which migsafe does not use; GitHub shows its secret only",
        "# once. Left as comments so that no process started with this file inherits it.",
        f"# client id: {app.client_id}",
        f"# client secret: {app.client_secret}",
    ]
    return "\n".join(lines) + "\n"


def _env_value(value: str) -> str:
    if _BARE.fullmatch(value):
        return value
    if "'" in value or "\n" in value:
        raise UserError(f"cannot write {value!r} in {ENV_FILE}: use a --dir without quotes")
    return f"'{value}'"


def _print_next_steps(
    app: CreatedApp, outputs: Outputs, written: list[str], webhook_url: str
) -> None:
    env = outputs.env_file
    print(
        f"migsafe: created the GitHub App {app.name!r} (id {app.id}, owned by {app.owner})\n"
        f"  wrote {env} ({', '.join(written)}) and {outputs.key_file} (the private key), "
        "both 0600\n"
        "Next:\n"
        f"  1. run migsafe where {webhook_url} reaches it:\n"
        f"       docker compose --env-file {env} up   (beside docker-compose.yml)\n"
        f"     or: set -a; . {env}; set +a; migsafe serve\n"
        f"  2. install the App on your repositories: {app.html_url}/installations/new\n"
        "  3. add .github/migsafe.yml to their default branch (see the README)",
        file=sys.stdout,
    )
