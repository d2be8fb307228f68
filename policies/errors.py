"""Errors of the policies package: only for broken agreement and registry files.

Decisions about transfers are never exceptions here; they are verdicts carrying reasons
(see `policies.reasons`). An error means the law itself (the 確認書 file) cannot be read.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from policies.wording import R_


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
        return R_("{where}: {key}: {message} (fix: {fix})",
                  where=where, key=self.key, message=self.message, fix=self.fix)


class PolicyFileError(Exception):
    """An agreement (確認書) or handler registry file is invalid; carries every problem found."""

    def __init__(self, problems: list[FileProblem]) -> None:
        self.problems = tuple(problems)
        first = str(problems[0]) if problems else R_("invalid policy file")
        more = R_(" (and {count} more)", count=len(problems) - 1) if len(problems) > 1 else ""
        super().__init__(first + more)


class Problems:
    """Collects problems instead of stopping at the first, so one run lists them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[FileProblem] = []

    def fail(self, key: str, message: str, fix: str) -> None:
        self.items.append(FileProblem(self.source, key, message, fix))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raises: PolicyFileError when any problem was collected."""
        if self.items:
            raise PolicyFileError(self.items)


def known(value: object, vocabulary: Collection[str]) -> bool:
    """Whether a value read from a file is one of a vocabulary's words. A list or table where a
    word belongs is simply unknown (membership of an unhashable value would raise)."""
    return isinstance(value, str) and value in vocabulary
