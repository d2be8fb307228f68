"""Names that uploaders use while a file is still being written (`.*`, `*.part`, `*.tmp`, …).

Both halves leave such names alone until they are renamed: the outboxes (intake, SFTP pickup)
and the receiving side's SFTP pickup. One rule, so a sender's and a recipient's gateway agree on
what counts as finished.
"""

from __future__ import annotations

UPLOAD_SUFFIXES = (".part", ".tmp", ".filepart", ".partial", ".crdownload", "~")


def is_upload_name(name: str) -> bool:
    """Names a writer uses before it renames the finished file into place."""
    return name.startswith(".") or name.endswith(UPLOAD_SUFFIXES)
