"""Everything migsafe says to GitHub's REST API.

`client` is the only module doing HTTP itself (gidgethub over aiohttp, with auth, retries,
logging and metrics); the others are pure helpers plus thin calls that accept any
`gidgethub.abc.GitHubAPI`.
"""
