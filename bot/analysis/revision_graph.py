"""The revision graph of an Alembic project, built from scanned files (pure, no I/O).

Follows Alembic's rules: heads and bases come from `down_revision` alone; `depends_on`
adds ordering (a dependency runs first) and counts as ancestry, as in Alembic's upgrade.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from bot.analysis.migration_model import MigrationFile
from bot.errors import UserError


class RevisionGraph:
    def __init__(self, files: Iterable[MigrationFile]) -> None:
        self.files: dict[str, MigrationFile] = {}
        for migration in files:
            if migration.revision in self.files:
                other = self.files[migration.revision].path
                raise UserError(
                    f"revision {migration.revision!r} is also declared in {other}",
                    path=migration.path,
                )
            self.files[migration.revision] = migration
        self._labels = self._branch_labels()
        self._parents = {rev: self._down_revisions(rev) for rev in self.files}
        self._dependencies = {rev: self._resolved_dependencies(rev) for rev in self.files}
        self._children = self._invert(self._parents)
        self._order = self._topological_order()

    # --- construction ------------------------------------------------------------------------

    def _branch_labels(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for rev, migration in self.files.items():
            for label in migration.branch_labels:
                if label in labels or label in self.files:
                    raise UserError(f"branch label {label!r} is used twice", path=migration.path)
                labels[label] = rev
        return labels

    def _down_revisions(self, rev: str) -> tuple[str, ...]:
        migration = self.files[rev]
        for down in migration.down_revisions:
            if down not in self.files:
                raise UserError(
                    f"down_revision {down!r} of revision {rev!r} is not a known revision",
                    path=migration.path,
                )
        return migration.down_revisions

    def _resolved_dependencies(self, rev: str) -> tuple[str, ...]:
        migration = self.files[rev]
        resolved: list[str] = []
        for spec in migration.depends_on:
            target = self._labels.get(spec) or self._match_id(spec)
            if target is None:
                raise UserError(
                    f"depends_on {spec!r} of revision {rev!r} is not a known revision or branch",
                    path=migration.path,
                )
            resolved.append(target)
        return tuple(resolved)

    @staticmethod
    def _invert(parents: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
        children: dict[str, list[str]] = {rev: [] for rev in parents}
        for rev, downs in parents.items():
            for down in downs:
                children[down].append(rev)
        return children

    def _topological_order(self) -> list[str]:
        """Parents (and dependencies) first; ties broken by file path, then id."""
        requires = {
            rev: set(self._parents[rev]) | set(self._dependencies[rev]) for rev in self.files
        }
        waiting = {rev: len(reqs) for rev, reqs in requires.items()}
        enables: dict[str, list[str]] = {rev: [] for rev in self.files}
        for rev, reqs in requires.items():
            for req in reqs:
                enables[req].append(rev)
        ready = [self._sort_key(rev) for rev, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            _, rev = heapq.heappop(ready)
            order.append(rev)
            for nxt in enables[rev]:
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    heapq.heappush(ready, self._sort_key(nxt))
        if len(order) < len(self.files):
            stuck = sorted(set(self.files) - set(order), key=self._sort_key)
            raise UserError(
                f"revisions form a cycle: {', '.join(stuck)}", path=self.files[stuck[0]].path
            )
        return order

    def _sort_key(self, rev: str) -> tuple[str, str]:
        return (self.files[rev].path, rev)

    # --- queries -----------------------------------------------------------------------------

    @property
    def by_id(self) -> dict[str, MigrationFile]:
        return self.files

    def __contains__(self, rev: object) -> bool:
        return rev in self.files

    def __getitem__(self, rev: str) -> MigrationFile:
        return self.files[rev]

    def heads(self) -> tuple[str, ...]:
        """Revisions no other revision names as its down_revision, in upgrade order."""
        return tuple(rev for rev in self._order if not self._children[rev])

    def bases(self) -> tuple[str, ...]:
        return tuple(rev for rev in self._order if not self._parents[rev])

    def upgrade_order(self) -> list[str]:
        return list(self._order)

    def ordered_files(self) -> list[MigrationFile]:
        return [self.files[rev] for rev in self._order]

    def ancestors(self, rev: str) -> set[str]:
        """Every revision that runs before `rev` on the way up to it (not `rev` itself)."""
        return self._closure([rev], lambda r: (*self._parents[r], *self._dependencies[r]))

    def descendants(self, rev: str) -> set[str]:
        dependents: dict[str, list[str]] = {r: list(kids) for r, kids in self._children.items()}
        for r, deps in self._dependencies.items():
            for dep in deps:
                dependents[dep].append(r)
        return self._closure([rev], lambda r: tuple(dependents[r]))

    def _closure(self, start: list[str], step: Callable[[str], tuple[str, ...]]) -> set[str]:
        seen: set[str] = set()
        pending = [nxt for rev in start for nxt in step(rev)]
        while pending:
            rev = pending.pop()
            if rev not in seen:
                seen.add(rev)
                pending.extend(step(rev))
        return seen

    def resolve(self, rev_spec: str) -> tuple[str, ...]:
        """Revision ids for a spec as Alembic accepts it: an id, a unique prefix, a branch
        label, `base` (no revision: ()), `heads`, or `head` (only when there is one)."""
        spec = rev_spec.strip()
        if spec == "base":
            return ()
        if spec == "heads":
            return self.heads()
        if spec == "head":
            heads = self.heads()
            if len(heads) > 1:
                raise UserError(
                    f"'head' is ambiguous: there are several heads ({', '.join(heads)});"
                    " name one revision"
                )
            return heads
        if spec in self._labels:
            return (self._labels[spec],)
        if spec.endswith("@head") and spec[: -len("@head")] in self._labels:
            return self._branch_head(spec[: -len("@head")])
        match = self._match_id(spec)
        if match is None:
            raise UserError(f"unknown revision {rev_spec!r} (known heads: {self._heads_text()})")
        return (match,)

    def _branch_head(self, label: str) -> tuple[str, ...]:
        root = self._labels[label]
        members = {root} | self.descendants(root)
        return tuple(rev for rev in self.heads() if rev in members)

    def _match_id(self, spec: str) -> str | None:
        """The full id for `spec` or a unique prefix of it; None when nothing matches.

        As Alembic, prefixes match ids longer than 3 characters."""
        if spec in self.files:
            return spec
        matches = sorted(rev for rev in self.files if len(rev) > 3 and rev.startswith(spec))
        if len(matches) > 1:
            shown = ", ".join(matches[:3])
            raise UserError(f"revision {spec!r} is ambiguous: it starts {shown}")
        return matches[0] if matches else None

    def _heads_text(self) -> str:
        return ", ".join(self.heads()) or "none: no revisions"

    # --- what a change adds ------------------------------------------------------------------

    def new_since(self, from_rev: str | Iterable[str]) -> list[str]:
        """Revisions `alembic upgrade FROM:heads` would run, in upgrade order; marks them new.

        `from_rev` is a revision spec (see `resolve`) or revision ids already resolved. The
        result is every revision that is not one of them or their ancestors: in a linear
        history, the descendants; with branches, also the other branches' revisions, as
        Alembic runs them too.
        """
        done: set[str] = set()
        for rev in self._resolved(from_rev):
            done |= {rev} | self.ancestors(rev)
        return self.mark_new(rev for rev in self._order if rev not in done)

    def _resolved(self, revs: str | Iterable[str]) -> tuple[str, ...]:
        if isinstance(revs, str):
            return self.resolve(revs)
        ids = tuple(revs)
        for rev in ids:
            if rev not in self.files:
                raise UserError(f"unknown revision {rev!r} (known heads: {self._heads_text()})")
        return ids

    def new_compared_to(self, base_ids: set[str]) -> list[str]:
        """Revisions present now but not in `base_ids`, in upgrade order; marks them new."""
        return self.mark_new(rev for rev in self._order if rev not in base_ids)

    def mark_new(self, new_ids: Iterable[str]) -> list[str]:
        """Set `MigrationFile.new` for exactly these revisions; returns them in upgrade order."""
        wanted = set(new_ids)
        for rev, migration in self.files.items():
            migration.new = rev in wanted
        return [rev for rev in self._order if rev in wanted]

    def base_point(self, new_ids: Iterable[str]) -> tuple[str, ...]:
        """The revisions the new ones start from: the heads before the change; () when all
        revisions are new."""
        new = set(new_ids)
        points = {down for rev in new for down in self._parents[rev] if down not in new}
        return tuple(rev for rev in self._order if rev in points)
