"""Everything migsafe says to GitHub's REST API.

`client` is the only module of the service doing HTTP itself (gidgethub over aiohttp, with
auth, retries, logging and metrics); the others are pure helpers plus thin calls that accept
any `gidgethub.abc.GitHubAPI`. `manifest` (the one-shot `migsafe app create`) makes its one
call with urllib, to keep the service stack out of that command.
"""
