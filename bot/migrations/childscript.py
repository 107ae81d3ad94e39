"""The children's scripts as they are started: one file each, with the shared helper inlined.

The children run as single scripts with `python -I` (migsafe is not importable there), yet
the dry-run and the sandbox must run Alembic the same way. Each child imports what it shares
from `bot.migrations._alembic_config` on a line marked `# migsafe: inline`; the script that
is started has that line replaced by the helper's code (`inlined_source`, handed to
`run_python_script` / `contained_python` as the source to run).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

HELPER = Path(__file__).with_name("_alembic_config.py")
MARKER = "# migsafe: inline"
_FUTURE = "from __future__ import annotations"


def inlined_source(script: Path) -> str:
    """`script`'s source with each marked import replaced by the helper's code."""
    helper = "\n".join(
        line for line in HELPER.read_text(encoding="utf-8").splitlines() if line != _FUTURE
    )
    lines = []
    for line in script.read_text(encoding="utf-8").splitlines():
        lines.append(helper if line.rstrip().endswith(MARKER) else line)
    return "\n".join(lines) + "\n"


def alembic_spec(
    *,
    working_dir: Path,
    ini_path: Path | None,
    script_location: Path,
    section: str,
    x_arguments: Sequence[str],
    url: str,
    env: Mapping[str, str],
) -> dict[str, Any]:
    """The request's "alembic" object, read by `_alembic_config.py` in either child."""
    return {
        "working_dir": str(working_dir.resolve()),
        "ini_path": str(ini_path.resolve()) if ini_path else None,
        "section": section,
        "script_location": str(script_location.resolve()),
        "x_arguments": list(x_arguments),
        "url": url,
        "env": dict(env),
    }
