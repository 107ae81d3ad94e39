"""The pre-commit hooks and the GitHub Action: their shape, and that every migsafe command
line they run is one migsafe's own argument parser accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / ".pre-commit-hooks.yaml"
ACTION = ROOT / "action.yml"

# Sample values for what the action's scripts fill in at run time.
SAMPLE_VARIABLES = {
    "MIGSAFE_PATH": "backend",
    "MIGSAFE_BASE": "main",
    "MIGSAFE_ENVIRONMENT": "production",
}
# `"${flags[@]}"`: every combination the script builds.
SAMPLE_FLAGS = [[], ["--env", "production"], ["--no-sandbox"], ["--env", "ci", "--no-sandbox"]]


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def parses(argv: list[str]) -> None:
    """migsafe's parser accepts `argv` (argparse exits on what it does not)."""
    assert argv[0] == "migsafe", argv
    try:
        _parser().parse_args(argv[1:])
    except SystemExit as error:  # pragma: no cover - the failure message
        pytest.fail(f"migsafe's parser rejects {shlex.join(argv)} (exit {error.code})")


def test_pre_commit_hooks_follow_the_hook_schema() -> None:
    hooks = load(HOOKS)
    assert isinstance(hooks, list)
    by_id = {hook["id"]: hook for hook in hooks}
    assert set(by_id) == {"migsafe-check", "migsafe-lint"}
    for hook in hooks:
        assert {"id", "name", "entry", "language"} <= set(hook), hook
        assert all(isinstance(hook[key], str) for key in ("id", "name", "entry", "language"))
        assert hook["language"] == "python"
    assert by_id["migsafe-check"]["pass_filenames"] is False
    assert by_id["migsafe-check"]["entry"] == "migsafe check --no-sandbox"
    assert by_id["migsafe-lint"]["entry"] == "migsafe lint"
    assert re.search(by_id["migsafe-lint"]["files"], "db/0001_init.sql")
    assert not re.search(by_id["migsafe-lint"]["files"], "db/env.py")


def test_pre_commit_entries_parse() -> None:
    for hook in load(HOOKS):
        argv = shlex.split(hook["entry"])
        if hook.get("pass_filenames", True):
            argv += ["db/0001_init.sql", "db/0002_orders.sql"]  # pre-commit appends the files
        parses(argv)


def test_action_is_a_composite_action() -> None:
    action = load(ACTION)
    assert {"name", "description", "runs"} <= set(action)
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert set(inputs) == {"path", "base", "environment", "python-version", "sandbox"}
    assert "trust-repository" not in ACTION.read_text(encoding="utf-8")
    assert inputs["base"]["default"] == "${{ github.base_ref }}"
    assert inputs["sandbox"]["default"] == "true"
    steps = action["runs"]["steps"]
    for step in steps:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step.get("shell") == "bash", step
    uses = [step["uses"].split("@")[0] for step in steps if "uses" in step]
    assert uses == ["actions/setup-python", "github/codeql-action/upload-sarif"]
    scripts = "\n".join(step["run"] for step in steps if "run" in step)
    assert "${{ github.action_path }}" in scripts
    assert "apt-get install -y -q bubblewrap postgresql" in scripts
    assert "$GITHUB_STEP_SUMMARY" in scripts
    # Inputs reach the scripts as environment variables, never spliced into the script.
    assert "${{ inputs." not in scripts


def migsafe_lines(script: str) -> list[str]:
    return [line.strip() for line in script.splitlines() if line.strip().startswith("migsafe ")]


def test_action_runs_migsafe_check_against_the_base_as_sarif_and_every_line_parses() -> None:
    steps = load(ACTION)["runs"]["steps"]
    lines = [line for step in steps if "run" in step for line in migsafe_lines(step["run"])]
    assert any("--format sarif --output migsafe.sarif" in line for line in lines)
    assert all('--base "origin/$MIGSAFE_BASE"' in line for line in lines)
    for line in lines:
        for flags in SAMPLE_FLAGS:
            argv: list[str] = []
            for word in shlex.split(line):
                if word == "${flags[@]}":
                    argv += flags
                    continue
                for name, value in SAMPLE_VARIABLES.items():
                    word = word.replace(f"${name}", value)
                assert "$" not in word, f"unknown variable in {line!r}"
                argv.append(word)
            parses(argv)


def test_the_readme_blocks_run_commands_the_parser_accepts() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = {
        line.strip().removeprefix("- ").removeprefix("run: ").strip()
        for line in readme.splitlines()
        if re.match(r"\s*(- )?(run: )?migsafe (check|lint)\b", line)
    }
    ci = [line for line in lines if "--format sarif" in line or "--format markdown" in line]
    assert ci, "the README shows no CI command line"
    for line in ci:
        command = re.split(r" >>? | \|\| ", line)[0]
        parses([re.sub(r"\$\w+", "main", word) for word in shlex.split(command)])


def test_the_action_runs_the_check_once_for_both_reports() -> None:
    """A second `migsafe check` would run the dry-run and the sandbox twice."""
    steps = load(ACTION)["runs"]["steps"]
    lines = [line for step in steps if "run" in step for line in migsafe_lines(step["run"])]
    assert len(lines) == 1
    assert "--also markdown:migsafe.md" in lines[0]
