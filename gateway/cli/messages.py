"""An error or a reason as the person at the terminal reads it: in their language.

Printing only. Domain code words its errors and `policies` its reasons in English (the words the
ledger and the daemon's log keep); here they are translated by `gateway.i18n.wording`, the rule
ids left as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import TachiaiError
from gateway.i18n import _, wording


def diagnostics(error: TachiaiError) -> str:
    """The error's message and, on its own line, what to do next, translated."""
    text = wording(str(error))
    if error.hint:
        text += "\n  " + _("next: {hint}").format(hint=wording(error.hint))
    return text


def reason_text(reason: Mapping[str, Any]) -> str:
    """A reason's message (from its JSON object), translated."""
    return wording(str(reason.get("message", "")))
