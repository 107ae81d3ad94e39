"""`migsafe`: the command line.

Exit status of `migsafe check` and `migsafe lint`: 0 nothing at error severity, 1 at least one
error finding, 2 bad input (one line naming the file and what is wrong).

Over 400 lines: the argument parser of every CLI command and the few lines each runs;
the work is in the modules they call.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from bot import __version__
from bot.errors import UserError

if TYPE_CHECKING:
    from bot.analysis.options import PgVersion
    from bot.progress import Progress
    from bot.result import CheckResult

FORMATS = ("text", "markdown", "json", "sarif")
EXIT_BAD_INPUT = 2


class _Interrupted(BaseException):
    """Ctrl-C or SIGTERM during a check: unwinds everything (children killed first)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except UserError as error:
        print(f"migsafe: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _Interrupted as interrupt:
        print(f"migsafe: stopped ({signal.Signals(interrupt.signum).name})", file=sys.stderr)
        return 128 + interrupt.signum
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # The reader went away (`migsafe rules | head`): stop quietly, as a tool killed by
        # SIGPIPE would, and keep the interpreter from complaining when it flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


@contextmanager
def _closing(progress: Progress | None) -> Iterator[None]:
    try:
        yield
    finally:
        if progress is not None:
            progress.close()


@contextmanager
def _stoppable() -> Iterator[None]:
    """Ctrl-C and SIGTERM stop a check at once: every child is killed first (so nothing
    waits for a wall clock), then the unwinding drops the sandbox database and removes the
    temporary folders; exit 130 / 143."""
    from bot.sandbox.launch import Cancelled, cancel_all

    def stop(signum: int, _frame: object) -> None:
        cancel_all()
        raise _Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may take signals (an embedding program's own thread)
        return
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except Cancelled:  # a thread saw the interrupt first; the handler's exception is ours
        raise _Interrupted(signal.SIGINT) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="migsafe",
        description="Makes PostgreSQL/Alembic migrations safe to merge.",
    )
    parser.add_argument("--version", action="version", version=f"migsafe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="analyse the new revisions of an Alembic project",
        description="Dry-run and analyse the Alembic revisions a change adds.",
    )
    check.add_argument(
        "path",
        nargs="?",
        default=".",
        type=Path,
        metavar="PATH",
        help="the repository root, or a folder of it such as backend/ (default: .)",
    )
    start = check.add_mutually_exclusive_group()
    start.add_argument(
        "--base",
        dest="base_ref",
        metavar="GIT_REF",
        help="new = revisions at --head but not at this git ref; its environment is the "
        "policy's branches: entry for it",
    )
    start.add_argument(
        "--from",
        dest="from_revision",
        metavar="REVISION",
        help="new = every revision after this Alembic revision",
    )
    start.add_argument(
        "--all",
        dest="all_revisions",
        action="store_true",
        help="new = every revision (default: the revisions since the merge-base with the "
        "default branch; outside git, the latest revision of each head)",
    )
    check.add_argument(
        "--head",
        dest="head_ref",
        metavar="GIT_REF",
        help="check this git ref instead of the work tree",
    )
    check.add_argument(
        "--env",
        dest="environment",
        choices=("local", "ci", "staging", "production"),
        help="environment of the policy matrix (default: the policy's branches: entry for the "
        "base branch, else its environment, else ci)",
    )
    check.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="policy file (default: the first .github/migsafe.yml from PATH up to the "
        "repository root, as it is at the git base)",
    )
    check.add_argument("--format", default="text", choices=FORMATS)
    check.add_argument("--output", type=Path, metavar="FILE", help="write the report here")
    _also_argument(check)
    check.add_argument("--no-sandbox", action="store_true", help="static analysis and dry-run only")
    check.add_argument(
        "--pg-version",
        type=_pg_version,
        metavar="VERSION",
        help="the PostgreSQL version production runs, e.g. 16 or 14.2, for the "
        "version-dependent rules (default: the policy's postgres_version, else the sandbox "
        "server's)",
    )
    check.add_argument(
        "--database-url",
        metavar="URL",
        help="admin URL of a PostgreSQL server for the sandbox "
        "(default: $MIGSAFE_SANDBOX_URL, else an embedded cluster)",
    )
    check.add_argument(
        "--fresh-cluster",
        action="store_true",
        help="a throw-away embedded cluster for this run (default: the one kept between "
        "runs, see `migsafe cluster`; also $MIGSAFE_FRESH_CLUSTER)",
    )
    check.add_argument(
        "--idle-stop",
        type=_minutes,
        default=15,
        metavar="MINUTES",
        help="stop the kept cluster after this long unused (default: 15; 0: keep it running)",
    )
    check.add_argument(
        "--trust-repository",
        action="store_true",
        help="where containment (bubblewrap) is unavailable, run the repository's code "
        "without it: only for your own code on your own machine; the report says so",
    )
    check.set_defaults(run=_run_check)

    lint = commands.add_parser(
        "lint",
        help="analyse plain SQL files (or standard input) with the same rules",
        description="Judge plain SQL with the SQL rules, the policy and its environments. "
        "The SQL is read, never run. Each file is judged on its own: tables it does not "
        "create count as existing. Suppress a finding with `-- migsafe: ignore[rule-id] "
        "reason` on the statement's first line or the line above.",
    )
    lint.add_argument(
        "files", nargs="+", metavar="FILE.sql", help="SQL files; - reads standard input"
    )
    lint.add_argument(
        "--env",
        dest="environment",
        choices=("local", "ci", "staging", "production"),
        help="environment of the policy matrix (default: the policy's environment, else ci)",
    )
    lint.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="policy file (default: the first .github/migsafe.yml from the current "
        "directory up to the repository root)",
    )
    lint.add_argument(
        "--pg-version",
        type=_pg_version,
        metavar="VERSION",
        help="the PostgreSQL version the SQL will run on, e.g. 16 or 14.2 (default: the "
        "policy's postgres_version; else the rules assume a current server)",
    )
    lint.add_argument("--format", default="text", choices=FORMATS)
    lint.add_argument("--output", type=Path, metavar="FILE", help="write the report here")
    _also_argument(lint)
    lint.set_defaults(run=_run_lint)

    rules = commands.add_parser(
        "rules",
        help="list every rule (id, default severity, what it catches); RULE: its explanation",
    )
    rules.add_argument("rule", nargs="?", help="show one rule")
    rules.set_defaults(run=_run_rules)

    cluster = commands.add_parser(
        "cluster",
        help="the embedded PostgreSQL cluster `migsafe check` keeps between runs",
        description="`migsafe check` keeps its embedded PostgreSQL cluster running between "
        "runs (stopped after --idle-stop minutes unused), in $MIGSAFE_DATA_DIR-cli "
        "(default ~/.local/share/migsafe/pg-cli; as root /var/lib/migsafe/pg-cli).",
    )
    cluster.add_argument("action", choices=("status", "stop"))
    cluster.set_defaults(run=_run_cluster)

    from bot import app_cli, service_cli

    service_cli.add_commands(commands)
    app_cli.add_commands(commands)
    return parser


def _run_check(args: argparse.Namespace) -> int:
    _start_kept_cluster(args)  # first: it starts while the check's modules load
    from bot.check import CheckOptions, run_check
    from bot.hardening import make_non_dumpable
    from bot.progress import Progress
    from bot.sandbox.database import SANDBOX_URL_VARIABLE

    if args.trust_repository:
        from bot.sandbox.isolation import trust_repository

        trust_repository("--trust-repository")
    # The check holds the sandbox server's admin password (the embedded cluster's, or the
    # URL's) while it runs the repository's code: keep it out of /proc/<pid>/environ and
    # memory for processes of the same user, and out of every child's environment.
    make_non_dumpable()
    from_environment = os.environ.pop(SANDBOX_URL_VARIABLE, None) or None
    database_url = args.database_url or from_environment
    origin = "--database-url" if args.database_url else f"${SANDBOX_URL_VARIABLE}"
    progress = Progress.for_stderr()
    with _stoppable(), _closing(progress):
        result = run_check(
            CheckOptions(
                progress=progress,
                path=args.path,
                base_ref=args.base_ref,
                from_revision=args.from_revision,
                all_revisions=args.all_revisions,
                head_ref=args.head_ref,
                environment=args.environment,
                config=args.config,
                sandbox=not args.no_sandbox,
                database_url=database_url,
                database_url_origin=origin,
                pg_version=args.pg_version,
            )
        )
    return _write_report(result, args.format, args.output, args.also)


def _start_kept_cluster(args: argparse.Namespace) -> None:
    """Attach to (or start) the embedded cluster kept between runs, in the background,
    unless the sandbox is off, has a server URL, or is asked to be a throw-away one."""
    wanted = not (args.no_sandbox or args.database_url or args.fresh_cluster)
    if not wanted or os.environ.get("MIGSAFE_SANDBOX_URL"):
        return
    from bot.sandbox import kept_cluster

    if not kept_cluster.fresh_requested():
        kept_cluster.start_in_background(kept_cluster.cluster_home(), args.idle_stop * 60)


def _run_lint(args: argparse.Namespace) -> int:
    from bot.lint import LintOptions, run_lint

    result = run_lint(
        LintOptions(
            files=args.files,
            environment=args.environment,
            config=args.config,
            pg_version=args.pg_version,
        )
    )
    return _write_report(result, args.format, args.output, args.also)


def _also_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--also",
        type=_also_report,
        action="append",
        default=[],
        metavar="FORMAT:FILE",
        help="also write the report in FORMAT to FILE, from the same run (repeatable), "
        "e.g. --format sarif --output migsafe.sarif --also markdown:migsafe.md",
    )


class _Parser(argparse.ArgumentParser):
    """Bad flags get one line, as every bad input does: what is wrong, and exit 2 (the
    usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _pg_version(value: str) -> PgVersion:
    from bot.analysis.options import parse_pg_version

    version = parse_pg_version(value) if re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) else None
    if version is None or not 9 <= version.major <= 99:
        raise argparse.ArgumentTypeError(f"{value!r}: expected a version such as 16 or 14.2")
    return version


def _also_report(value: str) -> tuple[str, Path]:
    fmt, colon, file = value.partition(":")
    if not colon or not file or fmt not in FORMATS:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected FORMAT:FILE with FORMAT one of {', '.join(FORMATS)}"
        )
    return fmt, Path(file)


def _write_report(
    result: CheckResult, fmt: str, output: Path | None, also: list[tuple[str, Path]]
) -> int:
    """The report on standard output or in `output`, and in each `--also` file; the exit
    status of the result."""
    from bot.report import render

    to_terminal = output is None and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    report = render(result, fmt, color=to_terminal)
    if output is None:
        sys.stdout.write(report if report.endswith("\n") else report + "\n")
    else:
        _write_file(output, report)
    for also_fmt, also_output in also:
        _write_file(also_output, render(result, also_fmt, color=False))
    return result.exit_code


def _write_file(output: Path, report: str) -> None:
    try:
        output.write_text(report, encoding="utf-8")
    except OSError as error:
        raise UserError(f"cannot write the report: {error.strerror}", path=str(output)) from error


def _minutes(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number of minutes: {text!r}")
    return int(text)


def _run_cluster(args: argparse.Namespace) -> int:
    from bot.sandbox import kept_cluster

    home = kept_cluster.cluster_home()
    if args.action == "stop":
        stopped = kept_cluster.stop_kept_cluster(home)
        print(f"{'stopped' if stopped else 'not running'}: {home}")
    else:
        print(kept_cluster.status_line(home))
    return 0


def _run_rules(args: argparse.Namespace) -> int:
    from bot.analysis.catalog import RULES

    if args.rule:
        rule = RULES.get(args.rule)
        if rule is None:
            raise UserError(f"unknown rule '{args.rule}' (see `migsafe rules`)")
        print(f"{rule.id} ({rule.family.value}, default {rule.default_severity.value})")
        print(f"  {rule.summary}\n\n{rule.explanation}")
        return 0
    width = max(len(rule_id) for rule_id in RULES)
    for rule in RULES.values():
        print(f"{rule.id:<{width}}  {rule.default_severity.value:<7}  {rule.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
