"""Shared pytest configuration."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Iterator

import pytest

from bot import hardening
from bot.service_logging import QuietTracebacks

pytest_plugins = ["tests.fakegithub.conftest_plugin", "tests.statedb"]

# `migsafe check` prints a line per stage on stderr in CI logs (where `CI` is set, as in this
# suite's own CI run). Tests assert stderr exactly, so they run as outside CI, their
# subprocesses included; a test of those lines sets CI itself.
os.environ.pop("CI", None)
# `migsafe check` keeps its embedded cluster between runs, by default in one directory per
# user: tests get a throw-away one per run (tests/sandbox/test_kept_cluster.py unsets this).
os.environ["MIGSAFE_FRESH_CLUSTER"] = "1"


@pytest.fixture(autouse=True)
def _dumpable_again() -> Iterator[None]:
    """Tests that call `migsafe check` in-process leave the test process non-dumpable (as the
    CLI means to be): make it ordinary again, so that what a later test observes (a hostile
    child failing to read its parent's /proc entries) does not depend on test order."""
    yield
    if sys.platform.startswith("linux") and not hardening.is_dumpable():
        ctypes.CDLL(None).prctl(hardening.PR_SET_DUMPABLE, 1, 0, 0, 0)


@pytest.fixture
def quiet(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog's handler filtered as the service's handler is at INFO."""
    caplog.set_level(logging.INFO)
    quiet_filter = QuietTracebacks(debug=False)
    caplog.handler.addFilter(quiet_filter)
    yield caplog
    caplog.handler.removeFilter(quiet_filter)
