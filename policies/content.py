"""Checks a delivered file's content against the agreement: data items (情報項目), encoding,
value types, the My Number ban (個人番号), the delegation scope (委任状) and the catch-up bound.

`check_file` is the one entry point for a quarantined file (CSV or XLSX, by the dataset's
format); `check_csv` remains for a bare dataset. Reasons name the rule, the term, the row
(header = row 1) and the column — never a value. Reads only the seekable stream it is given.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from policies.agreement import Agreement, Dataset, Flow
from policies.checkdigits import contains_my_number
from policies.dates import parse_date
from policies.headers import Cite, check_header
from policies.reasons import Reason, Verdict
from policies.scope import ScopeRule, scope_rule
from policies.tables import Record, TableError, Undecodable, candidate_encodings, csv_records
from policies.values import check_value
from policies.xlsxfile import xlsx_records

__all__ = ["MAX_REASONS", "check_csv", "check_file"]

MAX_REASONS = 20
_EVENT_DAY_CACHE = 1024


def check_file(stream: BinaryIO, agreement: Agreement, flow: Flow, on: dt.date) -> Verdict:
    """Check a quarantined file of `flow` against every content term of the agreement.

    `on` is the day of provision (JST), used for the delegation scope. The verdict:
    - `reasons`: why the file is rejected (empty when accepted), each citing its term;
    - `notices`: decisions that do not reject, e.g. rows withheld under the scope;
    - `applied`: the terms the acceptance relied on;
    - `facts`: "format", "encoding" (CSV), "rows" (data rows, blank rows not counted), and when
      a scope applies "withheld" and "provided"; when rows were withheld (outside = "split"),
      "keep": sorted, merged [start, end) byte ranges of the header and the covered rows — the
      file to send is exactly the concatenation of those ranges of the original bytes.
    """
    dataset = agreement.dataset_of(flow)
    cite = Cite(agreement.id + f"/datasets.{dataset.id}", agreement, f"datasets.{dataset.id}")
    rule = scope_rule(agreement, flow, dataset)
    if isinstance(rule, Reason):
        return Verdict((rule,), {"format": dataset.format})
    extra = _Extra(agreement, flow, rule, on)
    return _check(stream, dataset, cite, extra)


def check_csv(stream: BinaryIO, dataset: Dataset, term_prefix: str) -> Verdict:
    """Check a CSV stream against a dataset alone (no scope, no schedule terms).

    `term_prefix` is the agreement-relative name of the dataset (e.g. "isa-nhi/datasets.x"),
    so each reason cites the term it applies. Facts: "format", "encoding" and "rows".
    """
    cite = Cite(term_prefix, None, "")
    return _check(stream, dataset, cite, None)


# --- private helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Extra:
    """The agreement terms beyond the dataset: scope and the catch-up bound of the schedule."""

    agreement: Agreement
    flow: Flow
    scope: ScopeRule | None
    on: dt.date


def _check(stream: BinaryIO, dataset: Dataset, cite: Cite, extra: _Extra | None) -> Verdict:
    if dataset.format == "xlsx":
        return _Run(dataset, cite, extra, "xlsx", None).over(xlsx_records(stream))
    stream.seek(0)
    for encoding in candidate_encodings(stream.read(3), dataset.encodings):
        try:
            return _Run(dataset, cite, extra, "csv", encoding).over(csv_records(stream, encoding))
        except Undecodable:
            continue
    allowed = ", ".join(dataset.encodings)
    return Verdict(
        (
            cite.reason(
                "content.encoding",
                f"the file is not valid text in any encoding the agreement allows "
                f"({allowed}); save it again as CSV in one of them",
                "encodings",
            ),
        ),
        {"format": "csv"},
    )


class _Run:
    """One pass over a file's records, collecting reasons, notices and counts."""

    def __init__(
        self, dataset: Dataset, cite: Cite, extra: _Extra | None, fmt: str, encoding: str | None
    ) -> None:
        self.dataset = dataset
        self.cite = cite
        self.extra = extra
        self.facts: dict[str, Any] = {"format": fmt}
        if encoding is not None:
            self.facts["encoding"] = encoding
        self.reasons: list[Reason] = []
        self.keep: list[list[int]] = []
        self.withheld = 0
        self.catch_up = 0
        self.invalid = False  # a row broke a content term: later rows skip the scope
        names = dataset.header
        column = dataset.event_date_column
        self.event_index = names.index(column) if column is not None else -1
        # Rows of one month repeat few dates; the cache lives only as long as this check.
        self.event_days: dict[str, dt.date] = {}
        self.width = len(dataset.columns)

    def over(self, records: Iterator[Record]) -> Verdict:
        rows = 0
        try:
            header = next(records, None)
            if header is None:
                return self.verdict(
                    0,
                    [
                        self.cite.reason(
                            "content.empty",
                            "the file is empty; it needs at least the header row",
                            "columns",
                        )
                    ],
                )
            self.reasons.extend(check_header(header.cells, self.dataset, self.cite))
            if self.reasons:
                return self.verdict(0)
            self.span(header)
            for record in records:
                if record.blank:
                    continue  # a blank line carries no data
                rows += 1
                self.row(record)
                if len(self.reasons) >= MAX_REASONS:
                    del self.reasons[MAX_REASONS:]
                    self.reasons.append(
                        Reason(
                            "content.more",
                            f"stopped after {MAX_REASONS} "
                            "problems; fix these and drop the file again",
                        )
                    )
                    break
        except TableError as exc:
            self.reasons.append(self.cite.reason(exc.rule, exc.message, "format", row=exc.row))
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # releases the workbook when we stop early
        return self.verdict(rows)

    def row(self, record: Record) -> None:
        cells = record.cells
        if self.facts["format"] == "xlsx" and len(cells) < self.width:
            cells = cells + ("",) * (self.width - len(cells))  # empty trailing cells
        problems = self.my_number(record.row, cells)
        if len(cells) != self.width:
            problems.append(
                self.cite.reason(
                    "content.row.width",
                    f"the row has {len(cells)} fields, the agreement "
                    f"{self.width}; check separators and quoting",
                    "columns",
                    row=record.row,
                )
            )
        else:
            problems.extend(self.values(record.row, cells))
        self.reasons.extend(problems)
        self.invalid = self.invalid or bool(problems)
        if self.invalid:
            return  # the file is rejected for its content; scope and counts no longer matter
        extra = self.extra
        if extra is not None:
            self.catch_up_bound(record.row, cells, extra)
            if extra.scope is not None and not extra.scope.covered(cells, extra.on):
                if extra.scope.split:
                    self.withheld += 1
                    return
                self.reasons.append(extra.scope.outside_reason(record.row))
                return
        self.span(record)

    def my_number(self, row: int, cells: tuple[str, ...]) -> list[Reason]:
        if not contains_my_number("\t".join(cells)):
            return []
        hits: list[int | None] = [i for i, c in enumerate(cells) if contains_my_number(c)]
        return [
            self.cite.reason(
                "content.my-number",
                "a 12-digit number with a valid 個人番号 (My Number) check "
                "digit appears; this agreement forbids My Number data — remove it",
                "my_number",
                row=row,
                column=self.dataset.columns[i].name if i is not None and i < self.width else None,
            )
            for i in hits or [None]
        ]

    def values(self, row: int, cells: tuple[str, ...]) -> list[Reason]:
        out: list[Reason] = []
        for column, cell in zip(self.dataset.columns, cells, strict=True):
            if not cell.strip():
                if column.required:
                    out.append(
                        self.cite.reason(
                            "value.empty",
                            "a required value is empty; fill it in",
                            "columns",
                            row=row,
                            column=column.name,
                        )
                    )
                continue
            problem = check_value(column.type, cell, max_length=column.max_length)
            if problem is not None:
                out.append(
                    self.cite.reason(
                        problem.rule, problem.message, "columns", row=row, column=column.name
                    )
                )
            elif column.allowed is not None and _norm(cell) not in {
                _norm(a) for a in column.allowed
            }:
                out.append(
                    self.cite.reason(
                        "value.not-allowed",
                        f"not one of the values the agreement lists: {', '.join(column.allowed)}",
                        "columns",
                        row=row,
                        column=column.name,
                    )
                )
            elif column.name == self.dataset.category_column and _norm(cell) not in {
                _norm(c.id) for c in self.dataset.categories
            }:
                ids = ", ".join(c.id for c in self.dataset.categories)
                out.append(
                    self.cite.reason(
                        "value.category",
                        f"not a category (区分) of this dataset; use one of: {ids}",
                        "categories",
                        row=row,
                        column=column.name,
                    )
                )
        return out

    def catch_up_bound(self, row: int, cells: tuple[str, ...], extra: _Extra) -> None:
        schedule = extra.flow.schedule
        column = self.dataset.event_date_column
        if column is None or not schedule.monthly:
            return
        cell = cells[self.event_index]
        day = self.event_days.get(cell)
        if day is None:
            day = parse_date(cell)  # already validated by the column's type
            if len(self.event_days) < _EVENT_DAY_CACHE:
                self.event_days[cell] = day
        if schedule.catch_up_from is not None and day < schedule.catch_up_from:
            # その他 (seed 000): the first provision reaches back to 令和4年4月1日, no further.
            self.reasons.append(
                extra.agreement.reason(
                    "schedule.before-catch-up",
                    f"the row reports an event before "
                    f"{schedule.catch_up_from.isoformat()}, the earliest day this agreement's "
                    "provision reaches back to; remove the row",
                    f"flows.{extra.flow.id}.schedule",
                    row=row,
                    column=column,
                )
            )
        elif schedule.first_period is not None and (day.year, day.month) < (
            schedule.first_period.year,
            schedule.first_period.month,
        ):
            self.catch_up += 1

    def span(self, record: Record) -> None:
        if record.span is None:
            return
        start, end = record.span
        if self.keep and self.keep[-1][1] == start:
            self.keep[-1][1] = end
        else:
            self.keep.append([start, end])

    def verdict(self, rows: int, more: list[Reason] | None = None) -> Verdict:
        reasons = tuple(self.reasons + (more or []))
        self.facts["rows"] = rows
        notices: list[Reason] = []
        applied = [self.cite.term("columns"), self.cite.term("my_number")]
        applied.append(self.cite.term("encodings" if self.facts["format"] == "csv" else "format"))
        if self.dataset.category_column is not None:
            applied.append(self.cite.term("categories"))
        extra = self.extra
        if (
            extra is not None
            and extra.flow.schedule.catch_up_from is not None
            and (self.dataset.event_date_column is not None)
        ):
            applied.append(extra.agreement.term(f"flows.{extra.flow.id}.schedule"))
        if extra is not None and extra.scope is not None:
            applied.append(extra.agreement.term("scope"))
            self.facts["withheld"] = self.withheld
            self.facts["provided"] = rows - self.withheld
            if self.withheld and not reasons:
                self.facts["keep"] = self.keep
                notices.append(extra.scope.withheld_notice(self.withheld, rows))
        if extra is not None and self.catch_up and not reasons:
            notices.append(
                extra.agreement.reason(
                    "schedule.catch-up",
                    f"{self.catch_up} rows report events before the first "
                    "period: a catch-up provision (初回の提供)",
                    f"flows.{extra.flow.id}.schedule",
                )
            )
        return Verdict(reasons, self.facts, tuple(notices), tuple(applied) if not reasons else ())


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()
