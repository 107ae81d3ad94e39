"""The App's credentials, checked once at start-up: `GET /app` with the App's JWT.

`migsafe serve` and `migsafe worker` would otherwise start fine with a key of another App, a
wrong App id or an unreachable GitHub, and fail on the first webhook instead, in a job's
log. Here each of those is one `UserError` line naming the variables to look at.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import aiohttp
from gidgethub import BadRequest, GitHubBroken, GitHubException

from bot.errors import UserError
from bot.github.auth import AppCredentials, InstallationTokens
from bot.github.client import GitHub, RateLimited, RetryPolicy

if TYPE_CHECKING:
    from bot.settings import Settings

# Start-up should fail in seconds, not after the jobs' patient retries.
START_UP_RETRY = RetryPolicy(max_tries=2, request_timeout_s=15.0, max_wait_s=0.0)
KEY_VARIABLES = "MIGSAFE_APP_ID and MIGSAFE_PRIVATE_KEY (or MIGSAFE_PRIVATE_KEY_FILE)"


def check_app_credentials(settings: Settings) -> str:
    """A line for the log saying which App this is, or UserError saying what is wrong."""
    return asyncio.run(verify_app(settings.github_api_url, settings.app_id, settings.private_key))


async def verify_app(api_url: str, app_id: int, private_key: str) -> str:
    where = f"GitHub at {api_url} (MIGSAFE_GITHUB_API_URL)"
    async with aiohttp.ClientSession() as session:
        github = GitHub(
            session,
            api_url=api_url,
            credentials=AppCredentials(str(app_id), private_key),
            tokens=InstallationTokens(),
            retry=START_UP_RETRY,
        )
        try:
            data: Any = await github.app().getitem("/app")
        except BadRequest as error:
            raise UserError(_refused(where, app_id, int(error.status_code), str(error))) from error
        except (GitHubBroken, RateLimited) as error:
            raise UserError(f"{where} cannot answer GET /app now ({error}): try again") from error
        except GitHubException as error:
            raise UserError(f"{where} answered GET /app with {error!r}") from error
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            reason = str(error) or type(error).__name__
            raise UserError(f"cannot reach {where}: {reason}") from error
    if not isinstance(data, dict) or not isinstance(data.get("id"), int) or "slug" not in data:
        raise UserError(f"{where} did not answer GET /app as GitHub's API does")
    if data["id"] != app_id:
        raise UserError(f"MIGSAFE_APP_ID is {app_id} but {where} says this key is App {data['id']}")
    return f"GitHub App {data['slug']!r} (id {app_id}) at {api_url}: credentials accepted"


def _refused(where: str, app_id: int, status: int, message: str) -> str:
    if status == 404:
        return (
            f"{where} has no GET /app (404): is it GitHub's API? GitHub Enterprise Server's "
            "is https://<host>/api/v3"
        )
    hint = ""
    if "'iat'" in message or "'exp'" in message:
        hint = "; is this machine's clock right?"
    return (
        f"{where} refused the App's JWT ({status}: {message}): {KEY_VARIABLES} must be App "
        f"{app_id}'s id and one of its current private keys{hint}"
    )
