"""An error or a reason as the person at the terminal reads it: in their language.

Printing only. Domain code words its errors and `policies` its reasons in English (the words the
ledger and the daemon's log keep); here they are translated by `gateway.i18n.wording`, the rule
ids left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.cli.table import width as display_width
from gateway.errors import TachiaiError
from gateway.i18n import N_, _, wording


def diagnostics(error: TachiaiError) -> str:
    """The error's message and, on its own line, what to do next, translated."""
    text = wording(str(error))
    if error.hint:
        text += "\n  " + _("next: {hint}").format(hint=wording(error.hint))
    return text


def reason_text(reason: Mapping[str, Any]) -> str:
    """A reason's message (from its JSON object), translated."""
    return wording(str(reason.get("message", "")))


#: The fields `transfers show` and `holdings show` print, by their JSON key (the key stays the
#: same in --json; only the label a person reads is translated).
FIELDS = {
    "id": N_("id"), "agreement": N_("agreement"), "flow": N_("flow"),
    "provider": N_("provider"), "recipient": N_("recipient"), "state": N_("state"),
    "transfer": N_("transfer"), "file_name": N_("file_name"),
    "delivered_name": N_("delivered_name"), "size": N_("size"), "sha256": N_("sha256"),
    "name_hmac": N_("name_hmac"), "sealed_sha256": N_("sealed_sha256"),
    "profile": N_("profile"), "sender": N_("sender"), "owner": N_("owner"),
    "approvals_set_aside": N_("set aside"),
    "approvals": N_("approvals"), "witnesses": N_("witnesses"), "handlers": N_("handlers"),
    "rows": N_("rows"), "encoding": N_("encoding"), "delivered_path": N_("delivered_path"),
    "password_path": N_("password_path"), "received_on": N_("received_on"),
    "deadline": N_("deadline"), "overdue": N_("overdue"), "days_left": N_("days_left"),
    "openings": N_("openings"), "replies_to": N_("replies_to"), "corrects": N_("corrects"),
    "superseded_by": N_("superseded_by"), "correction_pending": N_("correction_pending"),
    "applied": N_("applied"), "erased": N_("erased"), "created": N_("created"),
    "updated": N_("updated"),
}


def label(key: str, width: int) -> str:
    """The label of a JSON field, translated and right-aligned to `width` terminal columns."""
    text = _(FIELDS.get(key, key))
    return " " * max(0, width - display_width(text)) + text


def place(reason: Mapping[str, Any], joiner: str = ", ") -> str:
    """Where a reason points, translated: "row 3, column 性別" (never the value there)."""
    parts = []
    if "row" in reason:
        parts.append(_("row {row}").format(row=reason["row"]))
    if "column" in reason:
        parts.append(_("column {column}").format(column=reason["column"]))
    return joiner.join(parts)
