"""What an import is made of: records with their position, and the problems found in them.

Nothing here touches the database. `ImportRejected` is the one error an import raises when
any record is bad: it lists every problem, and nothing was stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal.errors import ValidationError

MAX_LISTED_PROBLEMS = 1000
# Deeper than this, a record's value is refused (Defender's records nest two or three levels).


@dataclass(frozen=True)
class Record:
    """One record of an input file. `position` counts records from 1; `line` is the file line."""

    position: int
    line: int | None
    data: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    source: str
    position: int | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.source
        if self.position is not None:
            where += f" record {self.position}"
            if self.line is not None and self.line != self.position:
                where += f" (line {self.line})"
        elif self.line is not None:
            where += f" line {self.line}"
        return f"{where}: {self.message}"


@dataclass
class Problems:
    """Collects every problem of an import (the first MAX_LISTED_PROBLEMS are kept verbatim)."""

    items: list[Problem] = field(default_factory=list)
    count: int = 0

    def add(self, source: str, position: int | None, message: str, line: int | None = None) -> None:
        self.count += 1
        if len(self.items) < MAX_LISTED_PROBLEMS:
            self.items.append(Problem(source, position, message, line))

    def __bool__(self) -> bool:
        return self.count > 0

    def raise_if_any(self) -> None:
        if self.count:
            raise ImportRejected(self)


class ImportRejected(ValidationError):
    """The input has bad records: nothing was imported. `problems` lists each one."""

    def __init__(self, problems: Problems, *, shown: int = 50):
        self.problems = problems
        listed = [str(p) for p in problems.items]
        more = problems.count - min(shown, len(listed))
        text = "; ".join(listed[:shown]) + (f"; and {more} more" if more > 0 else "")
        noun = "problem" if problems.count == 1 else "problems"
        super().__init__(
            f"Nothing was imported: {problems.count} {noun}: {text}",
            errors={
                "import": listed
                + ([f"... and {problems.count - len(listed)} more"] if problems.count > len(listed) else [])
            },
        )
