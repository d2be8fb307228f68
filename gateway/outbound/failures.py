"""Why a delivery attempt failed, as the transfer keeps it: a rule id, the words, the next step.

`describe` turns a partner's error into the `last_error` a transfer carries (shown by
`tachiai transfers show` and `list --json`), with a next step that matches the state the
transfer is left in: still queued and retried, or `failed` until an operator retries it. It
never changes a transfer and never sends anything.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import PartnerRefused, PartnerUnavailable
from gateway.i18n import N_
from gateway.state.rows import Transfer

RULE_HOST_KEY = "delivery.host-key"
RULE_REFUSED = "delivery.refused"
RULE_UNAVAILABLE = "delivery.unavailable"


def describe(
    t: Transfer,
    exc: PartnerRefused | PartnerUnavailable,
    *,
    attempts: int,
    limit: int,
    final: bool,
    at: str,
) -> dict[str, Any]:
    """The failed attempt as stored on the transfer: rule, message, hint and where it stands."""
    # Imported here: `transfers show` reads failures too, and keeps the transports out of its
    # start-up (tests/gateway/cli/test_startup.py holds that).
    from gateway.transports import HostKeyRefused

    if isinstance(exc, HostKeyRefused):
        rule = RULE_HOST_KEY
    elif isinstance(exc, PartnerRefused):
        rule = RULE_REFUSED
    else:
        rule = RULE_UNAVAILABLE
    retry = f"`tachiai transfers retry {t.id}`"
    hint = exc.hint.replace("`tachiai transfers retry ID`", retry)
    if not final:
        hint = N_("{hint} (attempt {attempts} of {limit})").format(hint=hint, attempts=attempts,
                                                                  limit=limit)
    elif isinstance(exc, PartnerUnavailable):
        hint = N_("the transfer is failed after {attempts} attempt(s) and is not retried by "
                  "itself; check the partner's address and network (or ask the partner), then "
                  "run {retry}").format(attempts=attempts, retry=retry)
    elif retry in hint:
        hint = N_("the transfer is failed and is not retried by itself; {hint}").format(
            hint=hint)
    else:
        hint = N_("the transfer is failed and is not retried by itself; {hint}; then run "
                  "{retry}").format(hint=hint, retry=retry)
    return {
        "rule": rule,
        "message": str(exc),
        "hint": hint,
        "attempts": attempts,
        "final": final,
        "at": at,
    }


def as_reason(error: dict[str, Any]) -> dict[str, Any]:
    """The last error in the shape of a transfer's reasons (rule, message, hint)."""
    return {"rule": error["rule"], "message": error["message"], "hint": error["hint"]}
