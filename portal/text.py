"""Text a database cannot store: one rule for every input (API bodies, imported files).

A NUL character (PostgreSQL refuses it in text) or a lone surrogate (not valid UTF-8; JSON may
spell one as "\\ud800"), and documents nested deeper than any record of the portal needs.
`unstorable_reason` walks a decoded value without recursion and says what is wrong, or None.
"""

from __future__ import annotations

import re
from typing import Any

# Deeper than this, a value is refused (Defender's records nest two or three levels).
MAX_DEPTH = 32

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _describe(char: str) -> str:
    return "a NUL character" if char == "\x00" else f"an unpaired surrogate (U+{ord(char):04X})"


def unstorable_char(text: str) -> str | None:
    """What in `text` no database can store ("a NUL character", "an unpaired surrogate (U+D800)"), or None."""
    found = _UNSTORABLE.search(text)
    return _describe(found.group()) if found else None


def unstorable_reason(data: Any, *, max_depth: int = MAX_DEPTH, allow_nul: bool = False) -> str | None:
    """Why `data` (decoded JSON, a record's fields, a tuple of values) cannot be stored, or None.

    `allow_nul`: leave NUL characters to the caller (the API's fields refuse them, each with its
    own message).
    """
    pattern = _SURROGATE if allow_nul else _UNSTORABLE
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > max_depth:
            return f"{where or 'the value'} is nested more than {max_depth} levels deep"
        if isinstance(value, str):
            found = pattern.search(value)
            if found:
                return f"{where or 'a value'} contains {_describe(found.group())}, which cannot be stored"
        elif isinstance(value, dict):
            for key, item in value.items():
                found = pattern.search(key) if isinstance(key, str) else None
                if found:
                    return f"a field name contains {_describe(found.group())}, which cannot be stored"
                stack.append((item, where or f"field {key!r}", depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((item, where, depth + 1) for item in value)
    return None


def _escape(match: re.Match) -> str:
    char = match.group()
    return "\\x00" if char == "\x00" else f"\\u{ord(char):04x}"


def shown(value: Any) -> Any:
    """`value` safe to show on a page: NUL and lone surrogates spelled as escapes (\\x00, \\ud800)."""
    return _UNSTORABLE.sub(_escape, value) if isinstance(value, str) else value
