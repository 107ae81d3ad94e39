"""Planning review comments: create the missing, update the changed, delete the stale."""

from __future__ import annotations

import pytest

from bot.analysis.model import Family, Finding, RuleInfo, Severity
from bot.github.comments import (
    MARKER,
    CommentPlan,
    ExistingComment,
    ReviewComment,
    comment_fingerprints,
    is_migsafe_comment,
    plan_comment_sync,
    review_comments_for,
)

BOT = "migsafe[bot]"
PATH = "migrations/versions/0003.py"


def wanted(print_: str, line: int = 14, text: str = "Drop is destructive.") -> ReviewComment:
    return ReviewComment(fingerprint=print_, path=PATH, line=line, text=text)


def existing(
    comment_id: int,
    body: str,
    *,
    line: int | None = 14,
    login: str = BOT,
    user_type: str = "Bot",
) -> ExistingComment:
    return ExistingComment(
        id=comment_id, body=body, path=PATH, line=line, user_login=login, user_type=user_type
    )


def test_body_carries_the_marker_and_a_suggestion_block() -> None:
    comment = ReviewComment("abc123", PATH, 3, "Use CONCURRENTLY.", suggestion="x = 1\n")
    assert comment.body == (
        MARKER.format("abc123") + "\nUse CONCURRENTLY.\n\n```suggestion\nx = 1\n```"
    )
    assert existing(1, comment.body).fingerprint == "abc123"


def test_suggestion_containing_a_fence_gets_a_longer_one() -> None:
    body = ReviewComment("ab", PATH, 3, "t", suggestion='doc = """```"""').body
    assert "````suggestion\n" in body and body.endswith("\n````")


A, B, C = "aaaa", "bbbb", "cccc"


@pytest.mark.parametrize(
    ("existing_comments", "wanted_comments", "expected"),
    [
        pytest.param([], [wanted(A)], CommentPlan(create=[wanted(A)]), id="first run creates"),
        pytest.param(
            [existing(1, wanted(A).body)], [wanted(A)], CommentPlan(), id="unchanged: nothing"
        ),
        pytest.param(
            [existing(1, wanted(A, text="old").body)],
            [wanted(A)],
            CommentPlan(update=[(1, wanted(A))]),
            id="changed body: update in place",
        ),
        pytest.param(
            [existing(1, wanted(A).body), existing(2, wanted(B).body)],
            [wanted(A)],
            CommentPlan(delete=[2]),
            id="finding gone: delete",
        ),
        pytest.param(
            [existing(1, wanted(A).body), existing(2, wanted(A).body)],
            [wanted(A)],
            CommentPlan(delete=[2]),
            id="duplicates from earlier runs: keep one",
        ),
        pytest.param(
            [existing(1, wanted(A).body, line=None)],
            [wanted(A)],
            CommentPlan(create=[wanted(A)], delete=[1]),
            id="outdated comment: recreate",
        ),
        pytest.param(
            [existing(1, wanted(A).body, line=10)],
            [wanted(A, line=20)],
            CommentPlan(create=[wanted(A, line=20)], delete=[1]),
            id="other line: recreate",
        ),
        pytest.param(
            [existing(1, "I agree " + wanted(B).body, login="alice", user_type="User")],
            [wanted(C)],
            CommentPlan(create=[wanted(C)]),
            id="a human quoting the marker is left alone",
        ),
        pytest.param(
            [existing(1, wanted(B).body, login="other-app[bot]")],
            [],
            CommentPlan(),
            id="another app's comment is left alone",
        ),
        pytest.param(
            [existing(1, "LGTM", login=BOT)], [], CommentPlan(), id="unmarked bot comment kept"
        ),
    ],
)
def test_plan_comment_sync(
    existing_comments: list[ExistingComment],
    wanted_comments: list[ReviewComment],
    expected: CommentPlan,
) -> None:
    assert plan_comment_sync(existing_comments, wanted_comments, bot_login=BOT) == expected


def test_without_a_known_login_any_bot_with_a_marker_counts() -> None:
    assert is_migsafe_comment(existing(1, wanted(A).body, login="x[bot]"))
    assert not is_migsafe_comment(existing(1, wanted(A).body, user_type="User"))


def test_crlf_from_github_is_not_a_change() -> None:
    body = wanted(A, text="line one\nline two").body.replace("\n", "\r\n")
    assert plan_comment_sync([existing(1, body)], [wanted(A, text="line one\nline two")]).empty


RULES = {
    "drop-column": RuleInfo("drop-column", Family.DESTRUCTIVE, Severity.WARNING, "s", "e"),
    "missing-lock-timeout": RuleInfo(
        "missing-lock-timeout", Family.TIMEOUT, Severity.WARNING, "s", "e"
    ),
}


def finding(rule: str, severity: Severity, line: int | None = 14, **more: object) -> Finding:
    return Finding(
        rule=rule,
        severity=severity,
        message=f"{rule} here",
        path=PATH,
        line=line,
        statement="ALTER TABLE orders DROP COLUMN legacy_ref",
        advice="Do it in two releases.",
        **more,  # type: ignore[arg-type]
    )


def test_comments_only_for_errors_and_destructive_changes() -> None:
    findings = [
        finding("drop-column", Severity.WARNING),  # destructive: yes, even as a warning
        finding("missing-lock-timeout", Severity.WARNING),  # no
        finding("missing-lock-timeout", Severity.ERROR, line=15),  # error: yes
        finding("drop-column", Severity.ERROR, suppressed=True),  # suppressed: no
        finding("drop-column", Severity.ERROR, line=None),  # no line: no
    ]
    comments = review_comments_for(findings, RULES)
    assert [(c.path, c.line) for c in comments] == [(PATH, 14), (PATH, 15)]
    assert "**Safe alternative:** Do it in two releases." in comments[0].text


def test_fingerprints_ignore_lines_and_count_repeats() -> None:
    moved = [finding("drop-column", Severity.ERROR, line=14)]
    later = [finding("drop-column", Severity.ERROR, line=40)]
    assert comment_fingerprints(moved) == comment_fingerprints(later)
    twice = comment_fingerprints(moved + later)
    assert twice[1] == twice[0] + ":2"


def test_suggestions_are_attached_by_fingerprint() -> None:
    findings = [finding("drop-column", Severity.ERROR)]
    print_ = comment_fingerprints(findings)[0]
    [comment] = review_comments_for(findings, RULES, {print_: "op.drop_column('x')"})
    assert comment.suggestion == "op.drop_column('x')"
    assert "```suggestion" in comment.body
