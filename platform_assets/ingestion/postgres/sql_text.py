"""Checks of a user's custom query before it is wrapped in ``SELECT ... FROM (<query>)``.

Queries reach PostgreSQL through the simple query protocol, where ``;`` separates
statements: a query that closed the wrapper could ``COMMIT`` the read-only
transaction and run statements of its own. No lexer of ours can follow every
corner of PostgreSQL's (``$`` inside identifiers, non-ASCII dollar-quote tags...),
so a custom query may not contain ``;`` at all, even inside a string (write
``chr(59)`` there), once trailing semicolons are stripped. Parentheses must also
balance outside strings, identifiers, dollar quotes and comments, so the query
stays inside its wrapper.
"""

from __future__ import annotations

import re

from platform_assets.ingestion.errors import IngestionError

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def check_single_statement(query: str, source_name: str) -> None:
    """Raise IngestionError unless ``query`` is a single statement with balanced parentheses."""
    problem = "it contains ';' (not allowed anywhere in a custom query; use chr(59) in a string)" if ";" in query else _scan(query)
    if problem:
        raise IngestionError(
            f"{source_name}: the custom query is refused: {problem}. A custom query must be a "
            "single SELECT statement (no ';' between statements)"
        )


def _scan(text: str) -> str | None:  # noqa: C901 - one small lexer, kept in one place
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and nxt == "*":
            i = _skip_block_comment(text, i)
            if i < 0:
                return "a /* comment is not closed"
        elif ch == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_"))
            i = _skip_quoted(text, i, "'", escapes)
            if i < 0:
                return "a string literal is not closed"
        elif ch == '"':
            i = _skip_quoted(text, i, '"', False)
            if i < 0:
                return "a quoted identifier is not closed"
        elif ch == "$" and (match := _DOLLAR_TAG.match(text, i)) and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find(match.group(0), match.end())
            if end < 0:
                return f"a dollar-quoted string {match.group(0)} is not closed"
            i = end + len(match.group(0))
        else:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    return "a ')' closes more than the query opened"
            elif ch == ";":
                return "it contains ';', i.e. more than one statement"
            i += 1
    if depth:
        return "a '(' is not closed"
    return None


def _skip_quoted(text: str, start: int, quote: str, backslash_escapes: bool) -> int:
    i = start + 1
    while i < len(text):
        ch = text[i]
        if backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(text) and text[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return -1


def _skip_block_comment(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text) - 1:
        pair = text[i : i + 2]
        if pair == "/*":
            depth += 1
            i += 2
        elif pair == "*/":
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return -1
