"""The token reader: statements classified from `tokens` when sqlglot cannot read them.

ALTER TABLE clauses sqlglot rejects (row level security, VALIDATE CONSTRAINT, ... USING
INDEX, partitions, SET LOGGED) are read here clause by clause; every other shape is in
`shapes`.
"""

from __future__ import annotations

from sqlglot import exp

from bot.analysis.model import Action, ActionKind
from bot.analysis.parse.alter import classify_alter
from bot.analysis.parse.nodes import parse
from bot.analysis.parse.shapes import TOKEN_SHAPES, create_index_tokens, create_table_tokens
from bot.analysis.parse.split import head, other
from bot.analysis.parse.tokens import Cursor, Token, tokenize


def classify_tokens(text: str, words: list[str], *, strict: bool) -> list[Action] | None:
    """Classify from tokens. `strict`: return None unless the shape is one we know."""
    tokens = tokenize(text)
    cursor = Cursor(tokens)
    lead = tuple(head(words)[:2])
    if lead == ("ALTER", "TABLE"):
        return _alter_table_tokens(text, cursor, strict=strict)
    handler = TOKEN_SHAPES.get(lead) or TOKEN_SHAPES.get(lead[:1])
    if handler is not None:
        return handler(cursor)
    if lead[:1] == ("CREATE",):
        create = create_index_tokens if "INDEX" in words[1:3] else create_table_tokens
        actions = create(cursor)
        if actions is not None or strict:
            return actions
    if strict:
        return None
    return other(words)


def _alter_table_tokens(text: str, cursor: Cursor, *, strict: bool) -> list[Action] | None:
    cursor.accept("ALTER", "TABLE")
    cursor.skip_if_exists()
    cursor.accept("ONLY")
    table = cursor.name()
    if cursor.position < len(cursor.tokens) and cursor.tokens[cursor.position].raw == "*":
        cursor.position += 1
    if table is None:
        return None if strict else [Action(ActionKind.OTHER, detail="ALTER TABLE")]
    prefix_end = cursor.tokens[cursor.position - 1].end
    actions: list[Action] = []
    understood = False
    clauses = _split_clauses(cursor.tokens[cursor.position :])
    for clause in clauses:
        known = _alter_clause_tokens(clause, table)
        if known is None and len(clauses) > 1:  # one clause alone already failed in sqlglot
            clause_text = text[clause[0].start : clause[-1].end]
            known = _reparse_clause(text[:prefix_end] + " " + clause_text, table, clause)
        elif known is None:
            known = [Action(ActionKind.OTHER, table=table, detail=_clause_detail(clause))]
        else:
            understood = True
        understood = understood or known[0].kind is not ActionKind.OTHER
        actions.extend(known)
    if strict and not understood:
        return None
    return actions or [Action(ActionKind.OTHER, table=table, detail="ALTER TABLE")]


def _split_clauses(tokens: list[Token]) -> list[list[Token]]:
    """Split at commas outside parentheses."""
    clauses: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.raw == "(":
            depth += 1
        elif token.raw == ")":
            depth -= 1
        elif token.raw == "," and depth == 0:
            clauses.append([])
            continue
        clauses[-1].append(token)
    return [clause for clause in clauses if clause]


_RLS_CLAUSES = {
    ("ENABLE",): ActionKind.ENABLE_RLS,
    ("DISABLE",): ActionKind.DISABLE_RLS,
    ("FORCE",): ActionKind.FORCE_RLS,
    ("NO", "FORCE"): ActionKind.NO_FORCE_RLS,
}


_PARTITION_CLAUSES = {
    "ATTACH": ActionKind.ATTACH_PARTITION,
    "DETACH": ActionKind.DETACH_PARTITION,
}


def _alter_clause_tokens(clause: list[Token], table: str) -> list[Action] | None:
    """The clauses sqlglot cannot parse; None for the others."""
    cursor = Cursor(clause)
    for lead, kind in _RLS_CLAUSES.items():
        if cursor.accept(*lead, "ROW", "LEVEL", "SECURITY"):
            return [Action(kind, table=table)]
    for verb, kind in _PARTITION_CLAUSES.items():
        if cursor.accept(verb, "PARTITION"):
            partition = cursor.name()
            concurrently = cursor.accept("CONCURRENTLY")
            # FINALIZE completes an interrupted DETACH ... CONCURRENTLY, under its weaker lock
            detail = "FINALIZE" if cursor.accept("FINALIZE") else None
            return [
                Action(kind, table=table, name=partition, concurrently=concurrently, detail=detail)
            ]
    if cursor.accept("VALIDATE", "CONSTRAINT"):
        return [Action(ActionKind.VALIDATE_CONSTRAINT, table=table, name=cursor.name())]
    if cursor.accept("ADD"):
        name = cursor.name() if cursor.accept("CONSTRAINT") else None
        constraint_type = "unique" if cursor.accept("UNIQUE") else None
        if constraint_type is None and cursor.accept("PRIMARY", "KEY"):
            constraint_type = "primary_key"
        if constraint_type and cursor.accept("USING", "INDEX"):
            index = cursor.name()
            return [
                Action(
                    ActionKind.ADD_CONSTRAINT,
                    table=table,
                    name=name or index,
                    constraint_type=constraint_type,
                    using_index=True,
                )
            ]
    return None


def _clause_detail(clause: list[Token]) -> str:
    """The clause's leading keywords: "ALTER TABLE OWNER TO"; for ALTER COLUMN the words
    after the column's name ("ALTER TABLE ALTER COLUMN ADD GENERATED")."""
    words = [t.text for t in clause[:6] if t.kind in ("word", "qident")]
    if words[:1] == ["ALTER"]:
        rest = words[2:] if words[1:2] == ["COLUMN"] else words[1:]
        return "ALTER TABLE ALTER COLUMN " + " ".join(rest[1:3])
    return "ALTER TABLE " + " ".join(t.text for t in clause[:2] if t.kind == "word")


def _reparse_clause(sql: str, table: str, clause: list[Token]) -> list[Action]:
    """One clause of a multi-clause ALTER TABLE that sqlglot rejected as a whole."""
    detail = _clause_detail(clause)
    try:
        trees = parse(sql)
    except Exception:  # an unknown clause is reported as OTHER, not as an error
        trees = []
    tree = trees[0] if trees else None
    if isinstance(tree, exp.Alter):
        actions = classify_alter(tree, ["ALTER", "TABLE"])
        if actions and actions[0].kind is not ActionKind.OTHER:
            return actions
    return [Action(ActionKind.OTHER, table=table, detail=detail)]


# Other command shapes ------------------------------------------------------------------
