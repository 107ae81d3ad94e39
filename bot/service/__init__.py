"""What the GitHub App's jobs do, one module per concern (as python/bedevere keeps one router
per concern): the check of a pull request (`check`), the merge gate (`gate`), the `/migsafe`
commands (`commands`), over the process's GitHub connection (`connection`) and one typed
pull request (`pull`). `handlers()` hands them to the job queue (`bot.jobs`).
"""

from __future__ import annotations

from bot.jobs import Handlers
from bot.service import check, commands, connection, gate


def handlers() -> Handlers:
    """The job queue's handlers: the service's own (tests pass handlers of their own)."""
    return Handlers(
        check_pull_request=check.check_pull_request,
        pull_requests_for_commit=check.pull_requests_for_commit,
        evaluate_gate=gate.evaluate_gate,
        rerun_command=commands.rerun_command,
        forget_membership=gate.forget_membership,
        record_installation=connection.record_installation,
    )
