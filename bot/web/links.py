"""Links from the report page to the repository on GitHub (or GHES) at the analysed commit."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Link:
    label: str
    url: str | None


class Links:
    """Links to the repository on GitHub (or GHES) at the analysed commit."""

    def __init__(self, web: str, repo: str, sha: str) -> None:
        self.base = f"{web.rstrip('/')}/{quote(repo, safe='/')}"
        self.sha = quote(sha, safe="")

    def commit(self) -> str:
        return f"{self.base}/commit/{self.sha}"

    def pull(self, number: int) -> str:
        return f"{self.base}/pull/{number}"

    def place(self, path: object, line: object) -> Link | None:
        if not isinstance(path, str) or not path:
            return None
        number = line if isinstance(line, int) and line > 0 else None
        label = f"{path}:{number}" if number else path
        anchor = f"#L{number}" if number else ""
        return Link(label, f"{self.base}/blob/{self.sha}/{quote(path, safe='/')}{anchor}")
