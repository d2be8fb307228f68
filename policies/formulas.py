"""Formula injection (CSV injection): a text cell that a spreadsheet would run as a formula.

Owns the rule `content.formula`: a cell whose first character, after NFKC (so ＝＋－＠ count) and
after any leading whitespace or TAB/CR, is `=`, `+`, `-` or `@` is refused. A column whose
agreement says `allow_sign = true` may start with `+` or `-` when the whole cell is a signed
number (-1200, +3.5, -1,200), the sign its first character; anything else after the sign, or a
space or TAB before it, is still a formula (-1+2, -A1, "\t-1").
Pure: judges text, never rewrites or echoes it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

__all__ = ["FORMULA_RULE", "formula_free", "is_formula"]

FORMULA_RULE = "content.formula"


def is_formula(cell: str, *, allow_sign: bool = False) -> bool:
    """True if a spreadsheet opening the file would take `cell` for a formula."""
    text = cell if cell.isascii() else unicodedata.normalize("NFKC", cell)
    stripped = text.lstrip()  # str.lstrip strips TAB, CR, LF and every Unicode space
    if not stripped or stripped[0] not in _LEADS:
        return False
    if allow_sign and text[0] in "+-":
        # Only a sign that starts the cell: after a TAB or CR even a number is suspect.
        return _SIGNED_NUMBER.fullmatch(text) is None
    return True


def formula_free(cells: Sequence[str], *, allow_sign: bool = False) -> bool:
    """True only if no cell is a formula (`is_formula`); False says nothing about which.

    A whole column is judged with one NFKC and one regex over the joined cells; a line break
    inside a cell can make this False without a formula, never True with one.
    """
    joined = "\n".join(cells)
    if not joined.isascii():
        joined = unicodedata.normalize("NFKC", joined)
    pattern = _LEAD_SIGNLESS if allow_sign else _LEAD_ANY
    return pattern.search(joined) is None


# --- private helpers -----------------------------------------------------------------------------

_LEADS = frozenset("=+-@")
# What spreadsheets read as a number: digits with optional thousands separators and decimals.
_SIGNED_NUMBER = re.compile(r"[+-](?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
# A line of the joined column (a cell) that starts, after whitespace other than the line break
# that joins the cells, with a formula lead.
_LEAD_ANY = re.compile(r"^[^\S\n]*[=+\-@]", re.MULTILINE)
# The same with allow_sign: = and @ always; + and - unless a signed number fills the line.
_LEAD_SIGNLESS = re.compile(
    r"^(?:[^\S\n]*[=@]|[^\S\n]+[+-]|[+-](?!(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?$))",
    re.MULTILINE,
)
