"""The marker of a reason's words (`R_`): English here, translated where a person reads them.

`policies` decides and must not import the gateway, so a reason is worded in English, marked
with `R_` so the message catalogue (gateway/locale) holds its template, and translated by the
command line when it prints it. Named fields let a translation put the values in its own order.
Rule ids are never translated.
"""

from __future__ import annotations


def R_(template: str, /, **fields: object) -> str:
    """`template` with its named fields filled in, in English (the words the ledger keeps)."""
    return template.format(**fields) if fields else template
