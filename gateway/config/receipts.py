"""The delivery-receipt settings of a `[recipients.PARTY]` table (受領確認): `receipts_dir`,
`receipt_key` and `receipt_within_hours`.

Parsing only: the folder is where the recipient's signed receipts arrive, the key the
recipient's public checkpoint key that must have signed them. It never reads the folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import ConfigError
from gateway.i18n import N_

RECEIPT_KEYS = frozenset({"receipts_dir", "receipt_key", "receipt_within_hours"})


def parse_receipts(body: Mapping[str, Any], where: str, lexical: Any) -> dict[str, Any]:
    """receipts_dir, receipt_key and receipt_within_hours of a [recipients.PARTY] table.

    Raises:
        ConfigError: one of the folder and the key without the other, or a key that is not a
            signed-note verifier key.
    """
    folder, key = body.get("receipts_dir"), body.get("receipt_key")
    hours = body.get("receipt_within_hours", 24)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 8760:
        raise ConfigError(N_("{where}.receipt_within_hours must be a number of hours in "
                             "(0, 8760]").format(where=where))
    if folder is None and key is None:
        return {"receipt_within_hours": float(hours)}
    hint = (
        N_('set both: receipts_dir = "…" (where the recipient\'s receipts arrive) and '
           'receipt_key = "…" (the recipient\'s `tachiai audit public-key` output)')
    )
    if folder is None or key is None:
        missing = "receipt_key" if key is None else "receipts_dir"
        raise ConfigError(N_("{where}.{missing} is missing: receipts need both").format(
                              where=where, missing=missing), hint=hint)
    if not isinstance(key, str):
        raise ConfigError(N_("{where}.receipt_key must be a string").format(where=where), hint=hint)
    # Imported here: the signed-note code loads `cryptography`, which a configuration without
    # receipts (and every short command reading it) never needs.
    from audit.notes import NoteError, NoteVerifier

    try:
        verifier = NoteVerifier.from_text(key)
    except NoteError as exc:
        raise ConfigError(
            N_("{where}.receipt_key is not a verifier key ({exc})").format(where=where, exc=exc),
            hint=N_("paste the recipient's `tachiai audit public-key` output (NAME+KEYID+KEY)"),
        ) from None
    return {
        "receipts_dir": lexical(folder, f"{where}.receipts_dir"),
        "receipt_key": verifier,
        "receipt_within_hours": float(hours),
    }

