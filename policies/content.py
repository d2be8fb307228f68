"""Checks a delimited file's content against the agreement's dataset (情報項目).

The header must equal the columns, the encoding must be one the dataset allows, every value must
fit its column, and no 個人番号 (My Number) may appear anywhere. Reasons name the rule, the row
(spreadsheet numbering: the header is row 1) and the column — never the value. The caller passes
an open, seekable byte stream; this module reads only what it is given.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Iterator
from typing import BinaryIO

from policies.agreement import Dataset
from policies.checkdigits import contains_my_number
from policies.reasons import Reason, Verdict
from policies.values import check_value

MAX_REASONS = 20


def check_csv(stream: BinaryIO, dataset: Dataset, term_prefix: str) -> Verdict:
    """Check a CSV stream; the verdict's facts hold the encoding and the row count.

    `term_prefix` is the agreement-relative name of the dataset (e.g. "isa-nhi/datasets.x"),
    so each reason cites the term it applies.
    """
    for encoding in _candidate_encodings(stream, dataset.encodings):
        stream.seek(0)
        try:
            return _check_decoded(stream, encoding, dataset, term_prefix)
        except UnicodeDecodeError:
            continue
    allowed = ", ".join(dataset.encodings)
    return Verdict((Reason(
        "content.encoding",
        f"the file is not valid text in any encoding the agreement allows ({allowed}); "
        "save it again as CSV in one of them",
        f"{term_prefix}.encodings",
    ),))


def _candidate_encodings(stream: BinaryIO, allowed: tuple[str, ...]) -> Iterator[str]:
    stream.seek(0)
    has_bom = stream.read(3) == codecs.BOM_UTF8
    if has_bom:
        # A BOM settles the question: UTF-8 with signature, if UTF-8 is allowed at all.
        if "utf-8-sig" in allowed or "utf-8" in allowed:
            yield "utf-8-sig"
        return
    if "utf-8" in allowed or "utf-8-sig" in allowed:
        yield "utf-8"
    if "cp932" in allowed:
        yield "cp932"


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _check_decoded(stream: BinaryIO, encoding: str, dataset: Dataset, term: str) -> Verdict:
    text = io.TextIOWrapper(stream, encoding=encoding, errors="strict", newline="")
    reasons: list[Reason] = []
    rows = 0
    try:
        reader = csv.reader(text, strict=True)
        header = next(reader, None)
        if header is None:
            return Verdict((Reason("content.empty", "the file is empty; it needs at least the "
                                   "header row", f"{term}.columns"),))
        reasons.extend(_check_header(header, dataset, term))
        if reasons:
            return Verdict(tuple(reasons), {"encoding": encoding, "rows": 0})
        for line_no, cells in enumerate(reader, start=2):
            rows += 1
            reasons.extend(_check_row(line_no, cells, dataset, term))
            if len(reasons) >= MAX_REASONS:
                reasons = reasons[:MAX_REASONS]
                reasons.append(Reason("content.more", f"stopped after {MAX_REASONS} problems; "
                                      "fix these and drop the file again"))
                break
    except csv.Error as exc:
        reasons.append(Reason("content.csv-syntax", f"the CSV cannot be parsed ({_csv_error(exc)});"
                              " check quoting and line endings", row=rows + 2))
    finally:
        text.detach()
    return Verdict(tuple(reasons), {"encoding": encoding, "rows": rows})


def _csv_error(exc: csv.Error) -> str:
    # The csv module's messages describe structure ("unexpected end of data"), not content.
    msg = str(exc)
    return "field larger than allowed" if "field larger" in msg else msg


def _check_header(header: list[str], dataset: Dataset, term: str) -> list[Reason]:
    got = [_norm(h) for h in header]
    want = [_norm(c) for c in dataset.header]
    if got == want:
        return []
    reasons: list[Reason] = []
    for name in got:
        if name not in want:
            reasons.append(Reason("content.header.extra", f"column not in the agreement: remove "
                                  f"it; the agreement lists {len(want)} columns",
                                  f"{term}.columns", row=1, column=name))
    for name in want:
        if name not in got:
            reasons.append(Reason("content.header.missing", "column required by the agreement is "
                                  "missing; add it", f"{term}.columns", row=1, column=name))
    if not reasons:
        reasons.append(Reason("content.header.order", "the columns are not in the agreement's "
                              f"order; use: {', '.join(want)}", f"{term}.columns", row=1))
    if any(contains_my_number(h) for h in header):
        reasons.append(Reason("content.my-number", "a 12-digit number with a valid 個人番号 check "
                              "digit appears in the header", f"{term}.my_number", row=1))
    return reasons


def _check_row(line_no: int, cells: list[str], dataset: Dataset, term: str) -> list[Reason]:
    if dataset.my_number == "forbidden" and contains_my_number("\t".join(cells)):
        hits: list[int | None] = [i for i, c in enumerate(cells) if contains_my_number(c)]
        hits = hits or [None]
        my_number = [
            Reason("content.my-number", "a 12-digit number with a valid 個人番号 (My Number) "
                   "check digit appears; this agreement forbids My Number data — remove it",
                   f"{term}.my_number", row=line_no,
                   column=dataset.columns[i].name if i is not None and i < len(dataset.columns)
                   else None)
            for i in hits
        ]
    else:
        my_number = []
    if len(cells) != len(dataset.columns):
        if len(cells) == 1 and not cells[0].strip():
            return my_number  # a blank line carries no data
        return [*my_number, Reason(
            "content.row.width", f"the row has {len(cells)} fields, the agreement "
            f"{len(dataset.columns)}; check separators and quoting", f"{term}.columns",
            row=line_no)]
    out = my_number
    for column, cell in zip(dataset.columns, cells, strict=True):
        if not cell.strip():
            if column.required:
                out.append(Reason("value.empty", "a required value is empty; fill it in",
                                  f"{term}.columns", row=line_no, column=column.name))
            continue
        problem = check_value(column.type, cell, max_length=column.max_length)
        if problem is not None:
            out.append(Reason(problem.rule, problem.message, f"{term}.columns",
                              row=line_no, column=column.name))
    return out
