"""What a check judges, and why: the policy file, the environment, the git base.

`migsafe check` never judges silently: each choice here comes with the one line the
reports print about it (`bot.result.Judged`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from bot.errors import UserError
from bot.migrations.gitref import (
    branch_name,
    default_branch,
    git_toplevel,
    merge_base,
    read_file_at_ref,
    resolve_commit,
)
from bot.policy.config import POLICY_PATH, Policy, load_policy, parse_policy
from bot.policy.environments import branch_mapping, check_environment
from bot.result import EnvironmentChoice, PolicyOrigin

DEFAULTS_TEXT = "none: the checklist's defaults"


@dataclass(frozen=True)
class GitBase:
    """The git commit the change is compared with."""

    ref: str  # as the user gave it (--base), or the default branch
    commit: str
    branch: str | None  # the branch `ref` names, for the policy's `branches:`
    merge_base: bool  # the merge-base of the head and `ref` (the default), not `ref` itself
    toplevel: Path  # top of the git work tree

    @property
    def short(self) -> str:
        return self.commit[:7]

    def describe(self) -> str:
        """`main (merge-base 3f2c1a0)` / `main (3f2c1a0)`."""
        kind = "merge-base " if self.merge_base else ""
        return f"{self.ref} ({kind}{self.short})"


@dataclass(frozen=True)
class NoGitBase:
    """Why there is no git base to compare with (then each head's latest revision is new)."""

    reason: str


def explicit_base(repo_root: Path, ref: str) -> GitBase:
    """`--base REF`: UserError outside git or for an unknown ref."""
    commit = resolve_commit(repo_root, ref)
    top = git_toplevel(repo_root) or repo_root
    return GitBase(ref, commit, branch_name(repo_root, ref) or ref, False, top)


def default_base(repo_root: Path, head_ref: str | None) -> GitBase | NoGitBase:
    """The merge-base of the head (HEAD, or `--head`) with the default branch."""
    top = git_toplevel(repo_root)
    if top is None:
        return NoGitBase("not in a git repository")
    branch = default_branch(repo_root)
    if branch is None:
        return NoGitBase("no default branch to compare with: no origin/HEAD, main or master")
    head = head_ref or "HEAD"
    commit = merge_base(repo_root, head, branch)
    if commit is None:
        return NoGitBase(
            f"{head} and {branch} share no commit (no commit yet, or a shallow clone: "
            "fetch more history or pass --base)"
        )
    return GitBase(branch, commit, branch_name(repo_root, branch) or branch, True, top)


# --- the policy file ---------------------------------------------------------------------


def load_check_policy(
    repo_root: Path,
    config: Path | None,
    base: GitBase | NoGitBase | None,
    known_rule_ids: Collection[str],
) -> tuple[Policy, PolicyOrigin]:
    """`--config`, else the first `.github/migsafe.yml` from `repo_root` up to the repository
    root as it is at the git base (a change cannot loosen its own rules), else in the work
    tree, else the checklist's defaults."""
    if config is not None:
        if not config.is_file():
            raise UserError("policy file not found", path=str(config))
        policy = load_policy(config, known_rule_ids=known_rule_ids)
        return policy, PolicyOrigin(str(config), None, f"{config} (--config)")
    top = base.toplevel if isinstance(base, GitBase) else git_toplevel(repo_root) or repo_root
    directories = list(_upward(repo_root, top))
    if isinstance(base, GitBase):
        for directory in directories:
            rel = (directory / POLICY_PATH).relative_to(top).as_posix()
            text = read_file_at_ref(top, base.commit, rel)
            if text is not None:
                policy = parse_policy(text, f"{base.ref}:{rel}", known_rule_ids=known_rule_ids)
                policy = _rebased(policy, directory, repo_root, f"{base.ref}:{rel}")
                return policy, PolicyOrigin(rel, base.ref, f"{rel} at {base.describe()}")
    for directory in directories:
        path = directory / POLICY_PATH
        if not path.is_file() and not path.is_symlink():
            continue
        shown = (directory / POLICY_PATH).relative_to(top).as_posix()
        if not path.resolve().is_relative_to(top):
            # Read from outside, its first line would be shown in the error about it.
            raise UserError(
                "is a link that leads outside the repository; migsafe reads only files inside it",
                path=shown,
            )
        if not path.is_file():
            continue
        policy = load_policy(path, source=shown, known_rule_ids=known_rule_ids)
        return _rebased(policy, directory, repo_root, shown), PolicyOrigin(shown, None, shown)
    return Policy.default(), PolicyOrigin(None, None, DEFAULTS_TEXT)


def _rebased(policy: Policy, policy_root: Path, repo_root: Path, source: str) -> Policy:
    """The policy's Alembic paths, relative to the directory its `.github/` is in, made
    relative to `repo_root` (PATH, a folder below it) where the project is looked for."""
    alembic = policy.alembic
    if policy_root == repo_root or (alembic.config is None and alembic.script_location is None):
        return policy
    changes: dict[str, str] = {}
    for key in ("config", "script_location"):
        value = getattr(alembic, key)
        if value is None:
            continue
        target = policy_root / value
        if not target.is_relative_to(repo_root):
            raise UserError(
                f"alembic.{key} {value!r} is outside {repo_root}: run migsafe check on "
                f"{policy_root} instead",
                path=source,
            )
        changes[key] = target.relative_to(repo_root).as_posix() or "."
    return policy.model_copy(update={"alembic": alembic.model_copy(update=changes)})


def _upward(start: Path, top: Path) -> Iterator[Path]:
    """`start`, its parent, … up to `top` (only `start` when it is not under `top`)."""
    yield start
    if not start.is_relative_to(top):
        return
    for parent in start.parents:
        if not parent.is_relative_to(top):
            return
        yield parent


# --- the environment ---------------------------------------------------------------------


def choose_environment(
    policy: Policy,
    origin: PolicyOrigin,
    *,
    flag: str | None,
    base: GitBase | NoGitBase | None,
) -> EnvironmentChoice:
    """`--env`; else the policy's `branches:` entry for the base branch; else its
    `environment`; else (with a base branch) its `default_environment`; else ci."""
    if flag is not None:
        return EnvironmentChoice(check_environment(flag), "flag", "--env")
    where = f" in {origin.path}" if origin.path else ""
    branch = base.branch if isinstance(base, GitBase) else None
    if branch is not None:
        mapped = branch_mapping(policy, branch)
        if mapped is not None:
            key, env = mapped
            matches = "" if key == branch else f", which {branch} matches"
            return EnvironmentChoice(
                env, "branches", f"branches: {key} → {env}{where} (the base branch{matches})"
            )
    given = policy.model_fields_set
    if "environment" in given:
        env = policy.environment
        return EnvironmentChoice(env, "policy", f"environment: {env}{where}")
    unmapped = f"the base branch {branch} is not in branches:" if branch else ""
    if branch is not None and "default_environment" in given:
        env = policy.default_environment
        return EnvironmentChoice(env, "policy", f"default_environment: {env}{where} ({unmapped})")
    why = "; ".join(
        part for part in ("no --env", unmapped, "the policy sets no environment:") if part
    )
    return EnvironmentChoice(policy.environment, "default", f"the default ({why})")
