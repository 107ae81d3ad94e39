"""The local page of `migsafe app create`: a one-shot HTTP server on 127.0.0.1.

Every path starts with a secret token, `/<token>/`, which only the address the command
prints and opens carries: any other local user can connect to the port, and must learn
nothing there (the state) nor hand migsafe anything. Any other path is 404. A Host header
other than `127.0.0.1:PORT` or `localhost:PORT` is 400, before the path is looked at: a web
page whose own name resolves to 127.0.0.1 (DNS rebinding) sends its own name there.

- `GET /<token>/`: a page whose form posts the manifest to GitHub's new-App page, the
  `state` in the form's URL; a line of script submits it at once, a button does without
  script.
- `GET /<token>/callback?code=...&state=...`: where GitHub sends the browser back once the
  App is created. The state must be this run's (compared in constant time, as the token):
  another page cannot hand migsafe a code of an App of its own. A wrong or missing one is
  answered 400 and the wait goes on.

The code is a credential for an hour: the request log of `http.server` (which would print the
callback's URL) is silenced, and the pages say `no-store` and `no-referrer`.
"""

from __future__ import annotations

import hmac
import html
import json
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from bot.errors import UserError

CALLBACK = "callback"
# A connection that sends nothing (a browser's preconnect) must not hold a handler forever.
REQUEST_TIMEOUT_S = 10.0

_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>migsafe: create the GitHub App</title></head>
<body>
<p>Sending migsafe's App manifest to GitHub, where you confirm the App <b>{name}</b>.</p>
<form method="post" action="{action}">
<input type="hidden" name="manifest" value="{manifest}">
<button type="submit">Create the GitHub App</button>
</form>
<script>document.forms[0].submit();</script>
</body></html>
"""
_DONE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>migsafe: App created</title></head>
<body><p>The GitHub App is created. Back to the terminal: migsafe saves its credentials.</p>
</body></html>
"""


class ManifestPage:
    """`with ManifestPage() as page:` listens; `page.offer(...)`, then `page.wait(...)`."""

    def __init__(self, port: int = 0) -> None:
        try:
            self._server = _Server(("127.0.0.1", port), _Handler)
        except OSError as error:
            raise UserError(
                f"--port {port}: cannot listen on 127.0.0.1: {error.strerror}"
            ) from error
        self._server.page = self
        self.state = secrets.token_urlsafe(32)
        self._token = secrets.token_urlsafe(24)
        self.form = ""
        self._code: str | None = None
        self._received = threading.Event()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The page's address, token included: for the person running the command only."""
        return f"http://127.0.0.1:{self.port}/{self._token}/"

    @property
    def callback_url(self) -> str:
        return self.url + CALLBACK

    def offer(self, *, action: str, manifest: dict[str, Any]) -> None:
        """Serve the form that posts `manifest` to GitHub's page `action`."""
        separator = "&" if urlsplit(action).query else "?"
        self.form = _FORM.format(
            name=html.escape(str(manifest.get("name", ""))),
            action=html.escape(f"{action}{separator}{urlencode({'state': self.state})}"),
            manifest=html.escape(json.dumps(manifest)),
        )
        if not self._thread.is_alive():
            self._thread.start()

    def wait(self, timeout_s: float) -> str:
        """The code GitHub sent back with this run's state."""
        if not self._received.wait(timeout_s):
            raise UserError(
                f"GitHub sent no browser back to {self.callback_url} within "
                f"{timeout_s / 60:g} minutes: run `migsafe app create` again"
            )
        assert self._code is not None
        return self._code

    def _route(self, host: str | None, path: str) -> str | None:
        """What of the page `path` asks for ("" the form, CALLBACK), None if nothing; a Host
        that is not this page's raises _WrongHost."""
        if host not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            raise _WrongHost
        token, _, rest = path.lstrip("/").partition("/")
        if not hmac.compare_digest(token.encode(), self._token.encode()):
            return None
        return rest if rest in ("", CALLBACK) else None

    def _callback(self, query: str) -> HTTPStatus:
        params = parse_qs(query)
        state, code = params.get("state", [""])[0], params.get("code", [""])[0]
        if not code or not hmac.compare_digest(state.encode(), self.state.encode()):
            return HTTPStatus.BAD_REQUEST
        if not self._received.is_set():
            self._code = code
            self._received.set()
        return HTTPStatus.OK

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ManifestPage:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _WrongHost(Exception):
    pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    page: ManifestPage


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = REQUEST_TIMEOUT_S

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        page = self.server.page
        try:
            route = page._route(self.headers.get("host"), parts.path)
        except _WrongHost:
            self._answer(HTTPStatus.BAD_REQUEST, "Not this page's address.\n")
            return
        if route == "" and page.form:
            self._answer(HTTPStatus.OK, page.form)
        elif route == CALLBACK:
            status = page._callback(parts.query)
            text = _DONE if status is HTTPStatus.OK else "Not this run's request: ignored.\n"
            self._answer(status, text)
        else:
            self._answer(HTTPStatus.NOT_FOUND, "Not found.\n")

    def _answer(self, status: HTTPStatus, text: str) -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        kind = "text/html" if text.startswith("<!doctype") else "text/plain"
        self.send_header("content-type", f"{kind}; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.send_header("cache-control", "no-store")
        self.send_header("referrer-policy", "no-referrer")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the callback's URL carries the code."""
