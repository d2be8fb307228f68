"""Checks a delivered file's content against the agreement: data items (情報項目), encoding,
value types, the My Number ban (個人番号), the delegation scope (委任状) and the catch-up bound.

`check_file` is the one entry point for a quarantined file (CSV or XLSX, by the dataset's
format); `check_csv` remains for a bare dataset. Reasons name the rule, the term, the row
(header = row 1) and the column — never a value. Reads only the seekable stream it is given.
Over 400 lines for one reason: the bulk (column by column) and the row-by-row judgement of a
file must be read side by side to see that they agree.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from policies.agreement import Agreement, Column, Dataset, Flow
from policies.checkdigits import contains_my_number
from policies.dates import parse_date
from policies.formulas import FORMULA_RULE, formula_free, is_formula
from policies.headers import Cite, check_header
from policies.reasons import Reason, Verdict
from policies.scope import ScopeRule, scope_rule
from policies.stay import check_period_for_status
from policies.tables import (
    Batch,
    Record,
    TableError,
    Undecodable,
    candidate_encodings,
    csv_batches,
)
from policies.values import MY_NUMBER_FREE_TYPES, all_valid, check_value
from policies.wording import R_
from policies.xlsxfile import xlsx_records

__all__ = ["MAX_REASONS", "check_csv", "check_file"]

MAX_REASONS = 20


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

# Values found acceptable, remembered per column for one check only: values of at most this many
# characters, up to this many per column (it may pass by one chunk's values; a few MB at worst),
# so memory stays flat however long the file. Never shared: each column has its own terms.
_MEMO_VALUES = 1 << 14
_MEMO_CHARS = 64
# The term a workbook-level refusal cites, when it is not the format's.
_TABLE_TERMS = {"content.my-number": "my_number", "content.formula": "columns"}
# The catch-up bound's verdict on an event date.
_ON_TIME, _CATCH_UP, _BEFORE = 0, 1, 2


@dataclass(frozen=True)
class _Extra:
    """The agreement terms beyond the dataset: scope and the catch-up bound of the schedule."""

    agreement: Agreement
    flow: Flow
    scope: ScopeRule | None
    on: dt.date


def _check(stream: BinaryIO, dataset: Dataset, cite: Cite, extra: _Extra | None) -> Verdict:
    if dataset.format == "xlsx":
        return _Run(dataset, cite, extra, "xlsx", None).over_records(xlsx_records(stream))
    stream.seek(0)
    for encoding in candidate_encodings(stream.read(3), dataset.encodings):
        try:
            run = _Run(dataset, cite, extra, "csv", encoding)
            return run.over_batches(csv_batches(stream, encoding, width=len(dataset.columns)))
        except Undecodable:
            continue
    allowed = ", ".join(dataset.encodings)
    return Verdict(
        (
            cite.reason(
                "content.encoding",
                R_("the file is not valid text in any encoding the agreement allows "
                   "({allowed}); save it again as CSV in one of them", allowed=allowed),
                "encodings",
            ),
        ),
        {"format": "csv"},
    )


class _Judge:
    """One column's terms — type, required, allowed values, categories — and the values of this
    file already found acceptable (a set, so a whole column of a batch is looked up in C)."""

    def __init__(
        self,
        column: Column,
        categories: frozenset[str] | None,
        ids: str,
        today: dt.date | None,
    ) -> None:
        self.column = column
        self.today = today
        self.allowed = (
            None if column.allowed is None else frozenset(_norm(a) for a in column.allowed)
        )
        self.categories = categories
        self.ids = ids
        # all_valid judges non-blank cells by type alone; allowed values and categories are
        # short lists whose cells repeat, for the memo.
        self.whole = self.allowed is None and categories is None
        self.scan = column.type not in MY_NUMBER_FREE_TYPES
        self.good: set[str] = set()

    def problem(self, cell: str) -> tuple[str, str, str] | None:
        """(rule, message, term suffix) when the cell breaks the column's terms, else None."""
        column = self.column
        if not cell.strip():
            if column.required:
                return ("value.empty", R_("a required value is empty; fill it in"), "columns")
            return None
        if is_formula(cell, allow_sign=column.allow_sign):
            return (
                FORMULA_RULE,
                R_("the cell starts with =, +, - or @ (also after spaces or a TAB), which a "
                   "spreadsheet runs as a formula (CSV injection); remove that character — a "
                   "column of signed numbers needs allow_sign = true in the agreement"),
                "columns",
            )
        found = check_value(column.type, cell, max_length=column.max_length, today=self.today)
        if found is not None:
            return (found.rule, found.message, "columns")
        if self.allowed is not None and _norm(cell) not in self.allowed:
            assert column.allowed is not None
            return (
                "value.not-allowed",
                R_("not one of the values the agreement lists: {values}",
                   values=", ".join(column.allowed)),
                "columns",
            )
        if self.categories is not None and _norm(cell) not in self.categories:
            return (
                "value.category",
                R_("not a category (区分) of this dataset; use one of: {ids}", ids=self.ids),
                "categories",
            )
        return None

    def all_acceptable(self, cells: Sequence[str]) -> bool:
        """True when no cell breaks the column's terms or holds a My Number; False when one
        might (the caller then judges the rows one by one, for the exact reasons).

        Each distinct value not yet found acceptable is judged once, and remembered when it is.
        """
        good = self.good
        if good.issuperset(cells):
            return True
        fresh = list(set(cells).difference(good))
        if self.whole:
            # Blank cells of an optional column are acceptable, and hold no digits.
            values = fresh if self.column.required else list(filter(str.strip, fresh))
            # "," is no digit, space or hyphen, so no My Number spans two cells of the join.
            if (
                all_valid(self.column.type, values, max_length=self.column.max_length)
                and formula_free(values, allow_sign=self.column.allow_sign)
                and not (self.scan and contains_my_number(",".join(values)))
            ):
                self.remember(fresh)
                return True
        # A valid value of a My Number-free type holds no My Number (values.MY_NUMBER_FREE_TYPES),
        # and an invalid one is found by problem(): only the other types need the scan.
        scan = self.scan
        for cell in fresh:
            if (scan and contains_my_number(cell)) or self.problem(cell) is not None:
                return False
        self.remember(fresh)
        return True

    def remember(self, values: list[str]) -> None:
        """Remember acceptable values, the short ones, while the memo has room (it may pass its
        bound by one batch's values: one chunk of the file)."""
        good = self.good
        if len(good) < _MEMO_VALUES:
            if max(map(len, values), default=0) <= _MEMO_CHARS:
                good.update(values)
            else:
                good.update(c for c in values if len(c) <= _MEMO_CHARS)


class _Run:
    """One pass over a file's records, collecting reasons, notices and counts.

    CSV comes in batches (a chunk's records). A batch is first judged column by column in bulk;
    only when that finds something wrong — or a row the scope rejects, or one before the
    catch-up bound — are its rows judged one by one, which alone writes reasons, in row order.
    """

    def __init__(
        self, dataset: Dataset, cite: Cite, extra: _Extra | None, fmt: str, encoding: str | None
    ) -> None:
        self.dataset = dataset
        self.cite = cite
        self.extra = extra
        self.fmt = fmt
        self.facts: dict[str, Any] = {"format": fmt}
        if encoding is not None:
            self.facts["encoding"] = encoding
        self.reasons: list[Reason] = []
        self.keep: list[list[int]] = []
        self.rows = 0
        self.withheld = 0
        self.catch_up = 0
        self.invalid = False  # a row broke a content term: later rows skip the scope
        self.stopped = False  # MAX_REASONS reached
        names = dataset.header
        column = dataset.event_date_column
        self.event_index = names.index(column) if column is not None else -1
        self.width = len(dataset.columns)
        ids = ", ".join(c.id for c in dataset.categories)
        category_ids = frozenset(_norm(c.id) for c in dataset.categories)
        today = extra.on if extra is not None else None
        self.judges = [
            _Judge(c, category_ids if c.name == dataset.category_column else None, ids, today)
            for c in dataset.columns
        ]
        # 在留資格 and 在留期間 in one row: the period is judged against the status too.
        self.pair = _status_period_pair(dataset)
        # A blank row fails a required column's check, so with one the bulk check also tells
        # blank rows (not counted) from the others.
        self.bulk = any(c.required for c in dataset.columns)
        scope = extra.scope if extra is not None else None
        self.scope = scope
        # Byte ranges matter only when the scope can withhold rows.
        self.track = scope is not None and scope.split
        # Rows of one month repeat few dates and codes; these live only as long as this check.
        self.event_kinds: dict[str, int] = {}
        self.covered_keys: dict[tuple[str, str], bool] = {}

    def over_records(self, records: Iterator[Record]) -> Verdict:
        """Judge the records of a workbook, one by one."""
        try:
            header = next(records, None)
            if header is None:
                return self.verdict(0, [self.empty()])
            if self.header(header.cells, header.span):
                return self.verdict(0)
            for record in records:
                if record.blank:
                    continue  # a blank line carries no data
                self.rows += 1
                self.row(record.row, record.cells, record.span)
                if self.capped():
                    break
        except TableError as exc:
            suffix = _TABLE_TERMS.get(exc.rule, "format")
            self.reasons.append(self.cite.reason(exc.rule, exc.message, suffix, row=exc.row))
        finally:
            close = getattr(records, "close", None)
            if close is not None:
                close()  # releases the workbook when we stop early
        return self.verdict(self.rows)

    def over_batches(self, batches: Iterator[Batch]) -> Verdict:
        """Judge the records of a CSV file, a batch at a time."""
        try:
            batch = next(batches, None)
            if batch is None:
                return self.verdict(0, [self.empty()])
            spans = batch.spans() if self.track else None
            if self.header(tuple(batch.row(0)), spans[0] if spans else None):
                return self.verdict(0)
            while batch is not None:
                skip = 1 if batch.first == 1 else 0  # the header is row 1
                if not (self.bulk and self.in_bulk(batch, skip)):
                    self.one_by_one(batch, skip)
                if self.stopped:
                    break
                batch = next(batches, None)
        except TableError as exc:
            self.reasons.append(self.cite.reason(exc.rule, exc.message, "format", row=exc.row))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        return self.verdict(self.rows)

    def empty(self) -> Reason:
        return self.cite.reason(
            "content.empty", R_("the file is empty; it needs at least the header row"),
            "columns"
        )

    def header(self, cells: tuple[str, ...], span: tuple[int, int] | None) -> bool:
        """Judge the header row; True when it is wrong (nothing else is then judged)."""
        self.reasons.extend(check_header(cells, self.dataset, self.cite))
        if self.reasons:
            return True
        self.span(span)
        return False

    def capped(self) -> bool:
        if len(self.reasons) < MAX_REASONS:
            return False
        del self.reasons[MAX_REASONS:]
        self.reasons.append(
            Reason(
                "content.more",
                R_("stopped after {count} problems; fix these and drop the file again",
                   count=MAX_REASONS),
            )
        )
        self.stopped = True
        return True

    def one_by_one(self, batch: Batch, skip: int) -> None:
        spans = batch.spans() if self.track else None
        rows = batch.rows()
        for i in range(skip, batch.size):
            cells = tuple(rows[i])
            if all(not c.strip() for c in cells):
                continue  # a blank line carries no data
            self.rows += 1
            self.row(batch.first + i, cells, spans[i] if spans else None)
            if self.capped():
                return

    def in_bulk(self, batch: Batch, skip: int) -> bool:
        """Judge a batch column by column, without writing any reason: True when that settled
        it (counts and byte ranges updated), False when nothing was recorded and its rows must
        be judged one by one."""
        filled: list[int] | None = None  # positions of the non-empty rows, when some are empty
        columns: Sequence[Sequence[str]] | None = batch.columns()
        if columns is not None:
            count = batch.size - skip
            if skip:
                columns = [c[skip:] for c in columns]
        else:
            rows = batch.rows()[skip:]
            lengths = set(map(len, rows))
            if lengths != {self.width}:
                if lengths != {0, self.width}:
                    return not rows  # wrong widths (or blank rows of another width)
                filled = [i for i, r in enumerate(rows) if r]  # an empty line reads as []
                rows = [rows[i] for i in filled]
            columns = list(zip(*rows, strict=True))
            count = len(rows)
        if not count:
            return True
        if not all(j.all_acceptable(c) for j, c in zip(self.judges, columns, strict=True)):
            return False
        if self.pair is not None:
            status, period = self.pair
            pairs = set(zip(columns[status], columns[period], strict=True))
            if any(check_period_for_status(s, p) is not None for s, p in pairs):
                return False
        if self.invalid:
            self.rows += count  # the file is rejected already: scope and counts no longer matter
            return True
        catch_up = 0
        withheld: list[bool] | None = None
        extra = self.extra
        if extra is not None:
            schedule = extra.flow.schedule
            if self.event_index >= 0 and schedule.monthly:
                events = columns[self.event_index]
                kinds = {v: self.event_kind(v) for v in set(events)}
                if _BEFORE in kinds.values():
                    return False  # reasons to write, row by row
                late = {v for v, kind in kinds.items() if kind == _CATCH_UP}
                if late:
                    catch_up = sum(map(late.__contains__, events))
            scope = self.scope
            if scope is not None:
                codes = columns[scope.code_index]
                dates = columns[scope.date_index] if scope.date_index is not None else None
                keys = list(zip(codes, dates or ("",) * count, strict=True))
                outside = {k for k in set(keys) if not self.covered(k)}
                if outside:
                    if not scope.split:
                        return False  # reasons to write, row by row
                    withheld = [k in outside for k in keys]
        self.rows += count
        self.catch_up += catch_up
        if withheld is not None:
            self.withheld += sum(withheld)
        if self.track:
            if withheld is None and filled is None:
                # Every record is kept: the batch's bytes in one range, past the header.
                self.span((batch.spans()[1][0] if skip else batch.start, batch.end))
            else:
                spans = batch.spans()[skip:]
                for n, i in enumerate(filled if filled is not None else range(count)):
                    if withheld is None or not withheld[n]:
                        self.span(spans[i])
        return True

    def event_kind(self, cell: str) -> int:
        kind = self.event_kinds.get(cell)
        if kind is None:
            assert self.extra is not None
            schedule = self.extra.flow.schedule
            try:
                day = parse_date(cell)  # validated by the column's type, unless left blank
            except ValueError:
                # A blank optional event date: nothing places the row before the catch-up
                # bound, and its emptiness is the column's business (value.empty if required).
                return _ON_TIME
            kind = _ON_TIME
            if schedule.catch_up_from is not None and day < schedule.catch_up_from:
                kind = _BEFORE
            elif schedule.first_period is not None and (day.year, day.month) < (
                schedule.first_period.year,
                schedule.first_period.month,
            ):
                kind = _CATCH_UP
            if len(cell) <= _MEMO_CHARS and len(self.event_kinds) < _MEMO_VALUES:
                self.event_kinds[cell] = kind
        return kind

    def covered(self, key: tuple[str, str]) -> bool:
        """Whether the scope covers rows with this (code, date) — the only cells it reads."""
        found = self.covered_keys.get(key)
        if found is None:
            assert self.extra is not None and self.scope is not None
            scope = self.scope
            cells = [""] * self.width
            cells[scope.code_index] = key[0]
            if scope.date_index is not None:
                cells[scope.date_index] = key[1]
            found = scope.covered(tuple(cells), self.extra.on)
            if len(key[0]) + len(key[1]) <= _MEMO_CHARS and len(self.covered_keys) < _MEMO_VALUES:
                self.covered_keys[key] = found
        return found

    def row(self, row: int, cells: tuple[str, ...], span: tuple[int, int] | None) -> None:
        if self.fmt == "xlsx" and len(cells) < self.width:
            cells = cells + ("",) * (self.width - len(cells))  # empty trailing cells
        problems = self.my_number(row, cells)
        if len(cells) != self.width:
            problems.append(
                self.cite.reason(
                    "content.row.width",
                    R_("the row has {fields} fields, the agreement {width}; check "
                       "separators and quoting", fields=len(cells), width=self.width),
                    "columns",
                    row=row,
                )
            )
        else:
            problems.extend(self.values(row, cells))
        self.reasons.extend(problems)
        self.invalid = self.invalid or bool(problems)
        if self.invalid:
            return  # the file is rejected for its content; scope and counts no longer matter
        extra = self.extra
        if extra is not None:
            self.catch_up_bound(row, cells, extra)
            if extra.scope is not None and not self.covered(self.key(cells, extra.scope)):
                if extra.scope.split:
                    self.withheld += 1
                    return
                self.reasons.append(extra.scope.outside_reason(row))
                return
        self.span(span)

    def key(self, cells: tuple[str, ...], scope: ScopeRule) -> tuple[str, str]:
        date = cells[scope.date_index] if scope.date_index is not None else ""
        return (cells[scope.code_index], date)

    def my_number(self, row: int, cells: tuple[str, ...]) -> list[Reason]:
        # "," as in the bulk check: no separator, so no My Number spans two cells of the join.
        if not contains_my_number(",".join(cells)):
            return []
        hits: list[int | None] = [i for i, c in enumerate(cells) if contains_my_number(c)]
        return [
            self.cite.reason(
                "content.my-number",
                R_("a 12-digit number with a valid 個人番号 (My Number) check "
                   "digit appears; this agreement forbids My Number data — remove it"),
                "my_number",
                row=row,
                column=self.dataset.columns[i].name if i is not None and i < self.width else None,
            )
            for i in hits or [None]
        ]

    def values(self, row: int, cells: tuple[str, ...]) -> list[Reason]:
        out: list[Reason] = []
        for judge, cell in zip(self.judges, cells, strict=True):
            if cell in judge.good:
                continue
            found = judge.problem(cell)
            if found is not None:
                rule, message, suffix = found
                out.append(
                    self.cite.reason(rule, message, suffix, row=row, column=judge.column.name)
                )
        if self.pair is not None and not out:
            status, period = self.pair
            problem = check_period_for_status(cells[status], cells[period])
            if problem is not None:
                out.append(
                    self.cite.reason(
                        problem.rule,
                        problem.message,
                        "columns",
                        row=row,
                        column=self.dataset.columns[period].name,
                    )
                )
        return out

    def catch_up_bound(self, row: int, cells: tuple[str, ...], extra: _Extra) -> None:
        column = self.dataset.event_date_column
        if column is None or not extra.flow.schedule.monthly:
            return
        kind = self.event_kind(cells[self.event_index])
        if kind == _BEFORE:
            schedule = extra.flow.schedule
            assert schedule.catch_up_from is not None
            # その他 (seed 000): the first provision reaches back to 令和4年4月1日, no further.
            self.reasons.append(
                extra.agreement.reason(
                    "schedule.before-catch-up",
                    R_("the row reports an event before {day}, the earliest day this "
                       "agreement's provision reaches back to; remove the row",
                       day=schedule.catch_up_from.isoformat()),
                    f"flows.{extra.flow.id}.schedule",
                    row=row,
                    column=column,
                )
            )
        elif kind == _CATCH_UP:
            self.catch_up += 1

    def span(self, span: tuple[int, int] | None) -> None:
        if span is None or not self.track:
            return
        start, end = span
        if self.keep and self.keep[-1][1] == start:
            self.keep[-1][1] = end
        else:
            self.keep.append([start, end])

    def verdict(self, rows: int, more: list[Reason] | None = None) -> Verdict:
        reasons = tuple(self.reasons + (more or []))
        self.facts["rows"] = rows
        notices: list[Reason] = []
        applied = [self.cite.term("columns"), self.cite.term("my_number")]
        applied.append(self.cite.term("encodings" if self.fmt == "csv" else "format"))
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
                    R_("{count} rows report events before the first "
                       "period: a catch-up provision (初回の提供)", count=self.catch_up),
                    f"flows.{extra.flow.id}.schedule",
                )
            )
        return Verdict(reasons, self.facts, tuple(notices), tuple(applied) if not reasons else ())


def _status_period_pair(dataset: Dataset) -> tuple[int, int] | None:
    """The positions of the dataset's 在留資格 and 在留期間 columns, when it has one of each."""
    types = [c.type for c in dataset.columns]
    if types.count("status-of-residence") != 1 or types.count("period-of-stay") != 1:
        return None
    return (types.index("status-of-residence"), types.index("period-of-stay"))


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()
