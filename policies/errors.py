"""Errors of the policies package: only for broken agreement and registry files.

Decisions about transfers are never exceptions here; they are verdicts carrying reasons
(see `policies.reasons`). An error means the law itself (the 確認書 file) cannot be read.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FileProblem:
    """One thing wrong in an agreement or registry file, and how to fix it."""

    source: str
    key: str
    message: str
    fix: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.key}: {self.message} (fix: {self.fix})"


class PolicyFileError(Exception):
    """An agreement (確認書) or handler registry file is invalid; carries every problem found."""

    def __init__(self, problems: list[FileProblem]) -> None:
        self.problems = tuple(problems)
        first = str(problems[0]) if problems else "invalid policy file"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)
