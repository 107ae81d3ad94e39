"""The operator's view (issue 15, item 4): what the service logs, read with `caplog`.

A rejected delivery is ONE warning line with the reason, the delivery id and the event,
never the body or the signature; a failed job is ONE warning line with its cause and
whether it is retried, its traceback only at DEBUG (also procrastinate's own: the
handler carries `QuietTracebacks` as `migsafe serve` configures it).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.errors import UserError
from bot.jobs import MAX_ATTEMPTS, TASK_CHECK_PULL_REQUEST, JobQueue, PlannedJob, job_subject
from bot.service_logging import QuietTracebacks, configure, failure_logged, one_line_cause
from tests.service.conftest import SECRET, Recorder, deliver, delivery_headers, example

Client = TestClient[Any, Any]
HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
TRACEBACK = "Traceback (most recent call last)"
BODY_MARKER = "body-marker-that-must-never-be-logged"


def _lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    """What the handler printed at `level` and above, line by line (tracebacks included)."""
    formatter = logging.Formatter("%(levelname)s %(name)s: %(message)s")
    text = "\n".join(formatter.format(r) for r in caplog.records if r.levelno >= level)
    return text.splitlines()


def _body() -> bytes:
    payload = example("pull_request.opened")
    payload["pull_request"]["body"] = BODY_MARKER
    return json.dumps(payload).encode()


# -- rejected deliveries ------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (None, "missing X-Hub-Signature-256"),
        ("sha256=" + "0" * 64, "does not match"),
        ("garbage-signature", "not sha256="),
    ],
)
async def test_a_bad_signature_is_one_warning_line_with_the_delivery_id_and_no_body(
    client: Client, caplog: pytest.LogCaptureFixture, signature: str | None, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    body = _body()
    headers = delivery_headers("pull_request", body, delivery_id="delivery-bad-sig-1")
    del headers["X-Hub-Signature-256"]
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 401

    [record] = [r for r in caplog.records if r.name == "migsafe.webhooks"]
    line = record.getMessage()
    assert record.levelno == logging.WARNING and "\n" not in line
    assert "delivery-bad-sig-1" in line and "pull_request" in line and reason in line
    assert BODY_MARKER not in caplog.text and SECRET not in caplog.text
    assert signature is None or signature not in caplog.text
    assert record.exc_info is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ("malformed", 400, "malformed JSON"),
        ("no-delivery-id", 400, "missing X-GitHub-Event or X-GitHub-Delivery"),
        ("form", 415, "content type 'application/x-www-form-urlencoded'"),
    ],
)
async def test_other_rejections_are_one_warning_line_each(
    client: Client, caplog: pytest.LogCaptureFixture, change: str, status: int, reason: str
) -> None:
    caplog.set_level(logging.DEBUG)
    body = b'{"marker": "' + BODY_MARKER.encode() + b'", ' if change == "malformed" else _body()
    headers = delivery_headers("pull_request", body, delivery_id="delivery-rejected-2")
    if change == "no-delivery-id":
        del headers["X-GitHub-Delivery"]
    if change == "form":
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == status

    [record] = [r for r in caplog.records if r.name == "migsafe.webhooks"]
    assert record.levelno == logging.WARNING and reason in record.getMessage()
    expected_id = "none" if change == "no-delivery-id" else "'delivery-rejected-2'"
    assert f"delivery {expected_id} (event 'pull_request')" in record.getMessage()
    assert BODY_MARKER not in caplog.text and headers.get("X-Hub-Signature-256", "-") not in (
        caplog.text
    )


@pytest.mark.asyncio
async def test_an_accepted_delivery_logs_no_warning(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, _ = await deliver(client, "pull_request", example("pull_request.opened"))
    assert status == 202
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


# -- failed jobs ----------------------------------------------------------------------------------


async def _work(queue: JobQueue) -> None:
    await queue.run_worker(wait=False, concurrency=1, install_signal_handlers=False)


@pytest.mark.asyncio
async def test_a_failed_job_is_one_warning_line_without_traceback(
    client: Client, queue: JobQueue, recorder: Recorder, quiet: pytest.LogCaptureFixture
) -> None:
    recorder.failures_left = 1
    await deliver(client, "pull_request", example("pull_request.opened"), delivery_id="d-fail")
    await _work(queue)

    lines = _lines(quiet)
    assert not any(TRACEBACK in line for line in lines), lines
    [failure] = [line for line in lines if "failing on purpose" in line]
    assert failure.startswith("WARNING migsafe.jobs: job ")
    assert TASK_CHECK_PULL_REQUEST in failure
    assert f"Codertocat/Hello-World#2 head {HEAD} (delivery d-fail)" in failure
    assert "RuntimeError: check_pull_request: failing on purpose" in failure
    assert "retried in 3 s as job" in failure and f"(attempt 2 of {MAX_ATTEMPTS})" in failure
    # procrastinate's own line for the failure (with the traceback) is not shown at INFO
    assert not any("ended with status: Error" in line for line in lines)


@pytest.mark.asyncio
async def test_the_traceback_of_a_failed_job_is_logged_at_debug(
    client: Client, queue: JobQueue, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(QuietTracebacks(debug=True))  # as at MIGSAFE_LOG_LEVEL=DEBUG
    recorder.failures_left = 1
    await deliver(client, "pull_request", example("pull_request.opened"))
    await _work(queue)

    [debug] = [r for r in caplog.records if r.name == "migsafe.jobs" and r.levelno == logging.DEBUG]
    assert debug.exc_info is not None and isinstance(debug.exc_info[1], RuntimeError)
    debug_text = "\n".join(_lines(caplog, logging.DEBUG))
    assert TRACEBACK in debug_text and "failing on purpose" in debug_text
    # the warning line itself stays one line even at DEBUG
    [warning] = [r for r in caplog.records if r.name == "migsafe.jobs" and r.levelno >= 30]
    assert warning.exc_info is None and "\n" not in warning.getMessage()


@pytest.mark.asyncio
async def test_the_last_attempt_says_it_is_not_retried(
    queue: JobQueue, recorder: Recorder, quiet: pytest.LogCaptureFixture
) -> None:
    recorder.failures_left = 1
    kwargs = {
        "repo": "o/r",
        "number": 7,
        "head_sha": "a" * 40,
        "delivery_id": "d-last",
        "installation_id": 1,
        "trigger": "test",
        "attempt": MAX_ATTEMPTS - 1,
    }
    async with queue.pool.connection() as connection, connection.transaction():
        await queue.defer(
            connection, PlannedJob(TASK_CHECK_PULL_REQUEST, kwargs, "o/r#7", "check:o/r#7@a")
        )
    await _work(queue)

    lines = _lines(quiet)
    [failure] = [line for line in lines if "failing on purpose" in line]
    assert f"o/r#7 head {'a' * 40}" in failure
    assert f"not retried (attempt {MAX_ATTEMPTS} of {MAX_ATTEMPTS})" in failure
    assert not any(TRACEBACK in line for line in lines), lines


# -- the filter and the configuration ------------------------------------------------------------


def _procrastinate_record(action: str, task: str, job_id: int = 41) -> logging.LogRecord:
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "procrastinate.worker", logging.ERROR, __file__, 1, "Job %s ended", ("x",), exc_info
    )
    record.action = action
    record.job = {"id": job_id, "task_name": task}
    return record


def test_quiet_tracebacks_drops_procrastinates_line_for_a_failure_migsafe_logged() -> None:
    failure_logged(41)
    quiet = QuietTracebacks(debug=False)
    assert not quiet.filter(_procrastinate_record("job_error", TASK_CHECK_PULL_REQUEST))
    assert not quiet.filter(_procrastinate_record("job_error_retry", TASK_CHECK_PULL_REQUEST))
    assert QuietTracebacks(debug=True).filter(_procrastinate_record("job_error", "migsafe.x"))


def test_quiet_tracebacks_keeps_other_failures_as_one_line() -> None:
    """A job that failed before migsafe's code ran (bad arguments, say) is not silent."""
    record = _procrastinate_record("job_error", TASK_CHECK_PULL_REQUEST, job_id=-1)
    assert QuietTracebacks(debug=False).filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert text == "Job x ended (ValueError: first line second line; traceback at DEBUG)"


def test_quiet_tracebacks_leaves_migsafe_records_alone() -> None:
    record = _procrastinate_record("job_error", TASK_CHECK_PULL_REQUEST)
    record.name = "migsafe.jobs"
    assert QuietTracebacks(debug=False).filter(record) and record.exc_info is not None


def test_configure_puts_the_filter_on_the_root_handler_and_checks_the_level() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = []
    try:
        configure("info")
        [handler] = root.handlers
        [quiet] = [f for f in handler.filters if isinstance(f, QuietTracebacks)]
        assert not quiet.debug and root.level == logging.INFO
        root.handlers = []
        configure("DEBUG")
        [quiet] = [f for f in root.handlers[0].filters if isinstance(f, QuietTracebacks)]
        assert quiet.debug
        with pytest.raises(UserError, match="MIGSAFE_LOG_LEVEL"):
            configure("chatty")
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def test_one_line_cause_and_subject() -> None:
    assert one_line_cause(RuntimeError("a\n  b")) == "RuntimeError: a b"
    assert one_line_cause(TimeoutError()) == "TimeoutError"
    subject = job_subject({"org": "acme", "team_slug": "dba", "delivery_id": "d"})
    assert subject == " acme/dba (delivery d)"
    assert job_subject({"installation_id": 5}) == " installation 5"
