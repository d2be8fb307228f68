"""Errors of the ledger package (監査ログ): storage failures and integrity failures.

An integrity failure names the first bad event (its seq) or the bad checkpoint, so an auditor
knows where to look; it never quotes an event's content beyond its kind.
"""

from __future__ import annotations


class AuditError(Exception):
    """The root of the ledger's errors."""


class LedgerStorageError(AuditError):
    """The ledger's database cannot be opened, read or written."""


class LedgerIntegrityError(AuditError):
    """The ledger is not intact: an event was changed, removed, reordered or cut off."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq
