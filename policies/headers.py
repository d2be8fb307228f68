"""The header row (見出し行) of a delivered file against the agreement's data items (情報項目),
and the citation of a dataset's terms that every content reason carries.

A header cell must equal its column's name exactly. The only normalisation, stated here and in
policies/agreements/README.md: a BOM (U+FEFF) at the start of the first cell is dropped, and
both sides are compared after NFKC (full-width and half-width forms fold). Spaces are never
trimmed: "性別 " is refused by `content.header.space`, naming the column and the fix.
A header cell the agreement does not list may be a person's data (a file without its header row,
a My Number): reasons name such cells by position only, never by their text. Pure.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from policies.agreement import Agreement, Dataset
from policies.checkdigits import contains_my_number
from policies.reasons import Reason
from policies.wording import R_

__all__ = ["Cite", "check_header"]


@dataclass(frozen=True)
class Cite:
    """Builds reasons citing a dataset's terms, with clauses when an agreement is known."""

    prefix: str
    agreement: Agreement | None
    key: str

    def term(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    def reason(
        self,
        rule: str,
        message: str,
        suffix: str,
        row: int | None = None,
        column: str | None = None,
    ) -> Reason:
        if self.agreement is not None:
            return self.agreement.reason(
                rule, message, f"{self.key}.{suffix}", row=row, column=column
            )
        return Reason(rule, message, self.term(suffix), row, column)


def check_header(cells: tuple[str, ...], dataset: Dataset, cite: Cite) -> list[Reason]:
    """Why a file's first row is not the dataset's header (compared after NFKC), or [].

    An unexpected header cell is named by its position, never by its text.
    """
    if cells and cells[0].startswith(_BOM):
        cells = (cells[0][len(_BOM) :], *cells[1:])
    want = [_norm(c) for c in dataset.header]
    got = [_norm(h) for h in cells]
    out: list[Reason] = []
    if any(contains_my_number(h) for h in cells):
        out.append(
            cite.reason(
                "content.my-number",
                R_("a 12-digit number with a valid 個人番号 check digit appears in the header"),
                "my_number",
                row=1,
            )
        )
    if got == want:
        return out
    for name, cell in zip(want, got, strict=False):
        if cell != name and cell.strip() == name:
            # Leading or trailing spaces: the right column, written wrong. Its name is the
            # agreement's text, so it may be said.
            out.append(
                cite.reason(
                    "content.header.space",
                    R_("the header cell of this column has a leading or trailing space; the "
                       "header must equal the column name exactly — delete the space"),
                    "columns",
                    row=1,
                    column=name,
                )
            )
    if any(r.rule == "content.header.space" for r in out):
        return out
    if got and not set(got) & set(want):
        # Most likely a file without its header row: its first row is data. Say so, and
        # never name its cells — they are a person's data and reasons reach the ledger.
        out.append(
            cite.reason(
                "content.header.absent",
                R_("the first row names none of the agreement's columns; if it is data, the "
                   "header row is missing — add it first: {columns}", columns=", ".join(want)),
                "columns",
                row=1,
            )
        )
        return out
    for position, name in enumerate(got, start=1):
        if name not in want:
            # By position only: an unexpected header cell may be data (a My Number, a name).
            out.append(
                cite.reason(
                    "content.header.extra",
                    R_("header cell {position} is not a column of the agreement: remove that "
                       "column or correct its name; the agreement lists {count} columns",
                       position=position, count=len(want)),
                    "columns",
                    row=1,
                )
            )
    for name in want:
        if name not in got:
            out.append(
                cite.reason(
                    "content.header.missing",
                    R_("column required by the agreement is missing; add it"),
                    "columns",
                    row=1,
                    column=name,
                )
            )
    if not any(r.rule.startswith("content.header") for r in out):
        out.append(
            cite.reason(
                "content.header.order",
                R_("the columns are not in the agreement's order (or repeat); use: {columns}",
                   columns=", ".join(want)),
                "columns",
                row=1,
            )
        )
    return out


_BOM = "\ufeff"


def _norm(text: str) -> str:
    # NFKC only: it folds width (ＡＢＣ, ｶﾅ), and the full-width space to U+0020, which is then
    # refused like any other space around a name.
    return unicodedata.normalize("NFKC", text)
