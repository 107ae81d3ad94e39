"""The service's log: one line per event at INFO and WARNING, tracebacks only at DEBUG.

`configure(level)` is what `migsafe serve` and `migsafe worker` call (MIGSAFE_LOG_LEVEL,
INFO by default). What an operator reads:

- a rejected delivery: one WARNING line (`migsafe.webhooks`) with the reason, the
  X-GitHub-Delivery id and the X-GitHub-Event name; never the body or the signature;
- a failed job: one WARNING line (`migsafe.jobs`) with the exception's type and message,
  the repository#PR and head sha the job was about, and whether it is retried; its
  traceback is logged at DEBUG;
- a completed check: one INFO line (`migsafe.service`) with its conclusion and the report
  page's URL.

procrastinate's worker logs each job's end itself, with the traceback (`exc_info`) of a
failed one: ~40 lines per failure. `QuietTracebacks`, on the handler, keeps that at DEBUG:
below DEBUG level it drops procrastinate's line for a failed job that bot.jobs already
logged (`failure_logged`: migsafe's own line says the same, with the cause) and, for any
other record of procrastinate's that carries a traceback (a job that failed before its
task body ran, say), replaces the traceback by the exception's type and message.

Importing this module stays cheap (bot.service_cli imports it for every command).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from bot.errors import UserError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PROCRASTINATE = "procrastinate"
# procrastinate's `action` (in the record's extra) for the end of a failed job.
JOB_ERROR_ACTIONS = frozenset({"job_error", "job_error_retry"})
_REMEMBERED_FAILURES = 1000
_failures_logged: OrderedDict[int, None] = OrderedDict()


def failure_logged(job_id: int | None) -> None:
    """bot.jobs logged the failure of this job in its own line: procrastinate's line about
    it (with the traceback) is for DEBUG only. The last 1000 ids are remembered."""
    if job_id is None:
        return
    _failures_logged[job_id] = None
    while len(_failures_logged) > _REMEMBERED_FAILURES:
        _failures_logged.popitem(last=False)


def one_line_cause(error: BaseException) -> str:
    """`Type: message` on one line (an exception's message may span several)."""
    message = " ".join(str(error).split())
    name = type(error).__name__
    return f"{name}: {message}" if message else name


class QuietTracebacks(logging.Filter):
    """For a handler of a service not logging at DEBUG: procrastinate's records without
    their tracebacks (see the module's docstring). At DEBUG everything passes unchanged."""

    def __init__(self, *, debug: bool) -> None:
        super().__init__()
        self.debug = debug

    def filter(self, record: logging.LogRecord) -> bool:
        if self.debug or not _from_procrastinate(record):
            return True
        if getattr(record, "action", None) in JOB_ERROR_ACTIONS and _logged_job(record):
            return False  # bot.jobs logged this failure in one line, with its cause
        if record.exc_info and record.exc_info[1] is not None:
            cause = one_line_cause(record.exc_info[1])
            record.msg = f"{record.getMessage()} ({cause}; traceback at DEBUG)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _from_procrastinate(record: logging.LogRecord) -> bool:
    return record.name == PROCRASTINATE or record.name.startswith(PROCRASTINATE + ".")


def _logged_job(record: logging.LogRecord) -> bool:
    job = getattr(record, "job", None)
    job_id = job.get("id") if isinstance(job, dict) else None
    return isinstance(job_id, int) and job_id in _failures_logged


def configure(level_name: str) -> None:
    """The root handler (stderr), its format, and the traceback filter on it."""
    level = logging.getLevelName(level_name.strip().upper())
    if not isinstance(level, int):
        raise UserError(
            f"MIGSAFE_LOG_LEVEL: {level_name!r} is not a level (DEBUG, INFO, WARNING, ERROR)"
        )
    logging.basicConfig(level=level, format=LOG_FORMAT)
    quiet = QuietTracebacks(debug=level <= logging.DEBUG)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QuietTracebacks) for f in handler.filters):
            handler.addFilter(quiet)
