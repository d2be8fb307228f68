"""Splitting a file by 地方公共団体コード (local government code): one part per member of a group.

Seed 000 記1(3) and seed 004: 国保中央会 passes each 国保連合会 only its prefecture's rows, and each
federation passes each municipality only its own residents' rows. `split_csv` cuts a CSV into
parts byte for byte (the header's bytes, then each row's bytes as they were: encoding, quoting and
line endings unchanged), one part per member that has rows. A row whose code names no member,
whose municipality filed no 委任状 (where the agreement has a delegation scope), or whose code
disagrees with the column the group ties it to (住居地 must lie in the code's prefecture) goes to
nobody: it is withheld and counted by reason, or the whole file is refused where the group says
so — never sent to a guessed member. Pure: it reads the bytes it is given and returns values;
reasons carry counts and row numbers, never a cell.

A workbook (.xlsx) cannot be cut byte for byte: `split_xlsx` writes each part again as a new
workbook with the same sheet name, the header and each row's cell values and types (text stays
text, numbers numbers, dates dates), without the original's styles, widths or properties; the
same rows always give the same bytes. `split_file` picks the one the dataset's format needs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import unicodedata
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.agreement import Agreement, Dataset
from policies.groups import Member, PartyGroup, normal_code
from policies.reasons import Reason
from policies.tables import Record, TableError, Undecodable, candidate_encodings, csv_records

__all__ = ["HOW", "WITHHELD_REASONS", "Part", "Split", "split_csv", "split_file", "split_xlsx"]

#: How each format's parts are made (for the fan-out statement and the docs).
HOW = {
    "csv": "byte for byte (the header's and each row's bytes as they were)",
    "xlsx": "written again: the same sheet name, header, cell values and types; not byte for "
            "byte (no styles, widths or properties)",
}

#: Why a row was withheld (the keys of `Split.withheld`).
WITHHELD_REASONS = {
    "no-member": "the code names no member of the group",
    "not-delegated": "the municipality had filed no 委任状 (delegation) on the day",
    "mismatch": "the code disagrees with the column the group ties it to",
}


@dataclass(frozen=True)
class Part:
    """One member's rows: the header and their rows, byte for byte, and the digest of that."""

    member: Member
    rows: int
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Split:
    """The result: the parts by member (in code order), rows withheld by reason, every data row
    counted once; or `reasons` when the file cannot be split at all (then no part is given)."""

    group: str
    column: str
    rows: int = 0
    parts: tuple[Part, ...] = ()
    withheld: Mapping[str, int] = field(default_factory=dict)
    encoding: str | None = None
    reasons: tuple[Reason, ...] = ()

    @property
    def refused(self) -> bool:
        return bool(self.reasons)

    @property
    def withheld_total(self) -> int:
        return sum(self.withheld.values())


def split_file(
    data: bytes,
    agreement: Agreement,
    dataset: Dataset,
    group: str,
    column: str,
    on: dt.date | None = None,
    *,
    prefecture_of: Callable[[str], str | None] | None = None,
) -> Split:
    """Split `data` as its dataset's format allows: a CSV byte for byte, a workbook written
    again part by part (see `split_csv`, `split_xlsx`)."""
    how = split_xlsx if dataset.format == "xlsx" else split_csv
    return how(data, agreement, dataset, group, column, on, prefecture_of=prefecture_of)


def split_xlsx(
    data: bytes,
    agreement: Agreement,
    dataset: Dataset,
    group: str,
    column: str,
    on: dt.date | None = None,
    *,
    prefecture_of: Callable[[str], str | None] | None = None,
) -> Split:
    """Split the workbook `data` of `dataset` (its first sheet) by the code in `column` among
    the members of `group`, as `split_csv` does; each part is a new workbook (see the module)."""
    ready = _ready(agreement, dataset, group, column, prefecture_of, "xlsx")
    if isinstance(ready, Split):
        return ready
    found, code_at, tie_at, refuse = ready
    return _Cutter(agreement, found, column, code_at, tie_at, prefecture_of, on,
                   refuse).run_xlsx(data)


def split_csv(
    data: bytes,
    agreement: Agreement,
    dataset: Dataset,
    group: str,
    column: str,
    on: dt.date | None = None,
    *,
    prefecture_of: Callable[[str], str | None] | None = None,
) -> Split:
    """Split the CSV `data` of `dataset` by the code in `column` among the members of `group`.

    `on` (a date) is the day the 委任状 scope is judged on, when the agreement has one and the
    group is keyed by municipality. `prefecture_of(code)` names the prefecture (都道府県名) of a
    code, for the group's tie column; without it a group that has a tie column refuses to split
    (fail closed: a check that cannot be made is not skipped).
    """
    ready = _ready(agreement, dataset, group, column, prefecture_of, "csv")
    if isinstance(ready, Split):
        return ready
    found, code_at, tie_at, refuse = ready
    for encoding in candidate_encodings(data[:3], dataset.encodings):
        try:
            return _Cutter(agreement, found, column, code_at, tie_at, prefecture_of, on,
                           refuse).run(data, encoding)
        except Undecodable:
            continue
    return refuse.one("split.encoding", "the file is not text in any encoding the agreement "
                      "allows; it cannot be split", f"datasets.{dataset.id}.encodings")


# --- private helpers -----------------------------------------------------------------------------


def _ready(
    agreement: Agreement,
    dataset: Dataset,
    group: str,
    column: str,
    prefecture_of: Callable[[str], str | None] | None,
    fmt: str,
) -> Split | tuple[PartyGroup, int, int | None, _Refusals]:
    """The group, the code's and the tie column's places, or the refusal to split at all."""
    refuse = _Refusals(agreement, group, column)
    found = agreement.groups.get(group)
    if found is None:
        return refuse.one("split.group", f"{group} is not a party group of this agreement; "
                          "name a group from the agreement's groups file", "groups")
    if dataset.format != fmt:
        return refuse.one("split.format", f"dataset {dataset.id} is {dataset.format}; only CSV "
                          "and Excel (.xlsx) datasets can be split — send the file whole to "
                          "one member, or agree a CSV dataset", f"datasets.{dataset.id}.format")
    names = [_norm(c) for c in dataset.header]
    if _norm(column) not in names:
        return refuse.one("split.column", f"the dataset has no column {column!r}; name its "
                          "local government code column", f"datasets.{dataset.id}.columns")
    code_at = names.index(_norm(column))
    if dataset.columns[code_at].type != "local-government-code":
        return refuse.one("split.column", f"column {column!r} does not hold local government "
                          "codes; split by the 地方公共団体コード column",
                          f"datasets.{dataset.id}.columns")
    tie_at: int | None = None
    if found.tie_column is not None:
        if _norm(found.tie_column) not in names:
            return refuse.one("split.tie", f"the group ties codes to column "
                              f"{found.tie_column!r}, which the dataset lacks; correct the "
                              "groups file", "groups")
        if prefecture_of is None:
            return refuse.one("split.tie", "the list of local governments is not available, so "
                              "no row's code can be checked against its address; install it",
                              "groups")
        tie_at = names.index(_norm(found.tie_column))
    return found, code_at, tie_at, refuse


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


@dataclass(frozen=True)
class _Refusals:
    agreement: Agreement
    group: str
    column: str

    def one(self, rule: str, message: str, key: str, row: int | None = None) -> Split:
        reason = self.agreement.reason(rule, message, key, row=row,
                                       column=self.column if row is not None else None)
        return Split(self.group, self.column, reasons=(reason,))


class _Cutter:
    """One pass over the records: each row's member decided, its bytes appended to its part."""

    def __init__(
        self,
        agreement: Agreement,
        group: PartyGroup,
        column: str,
        code_at: int,
        tie_at: int | None,
        prefecture_of: Callable[[str], str | None] | None,
        on: dt.date | None,
        refuse: _Refusals,
    ) -> None:
        self.agreement = agreement
        self.group = group
        self.column = column
        self.code_at = code_at
        self.tie_at = tie_at
        self.prefecture_of = prefecture_of
        self.on = on
        self.refuse = refuse
        # 記1(3): where the agreement has a 委任状 scope, a municipality's rows go only if it
        # filed one; a federation is no municipality, so only a municipality group asks.
        self.registry = agreement.delegations if group.key == "municipality" else None

    def run(self, data: bytes, encoding: str) -> Split:
        """A CSV: each part is the header's bytes and its rows' bytes, as they were."""

        def rows() -> Iterator[tuple[Record, bytes]]:
            for record in csv_records(io.BytesIO(data), encoding):
                assert record.span is not None
                yield record, data[record.span[0]:record.span[1]]

        return self._cut(rows(), lambda header, chunks: header + b"".join(chunks), encoding)

    def run_xlsx(self, data: bytes) -> Split:
        """A workbook: each part a new workbook of the header and its rows' typed values."""
        # Imported here: openpyxl costs every command that never splits a workbook its start-up.
        from policies.xlsxfile import xlsx_cells

        title = ""

        def rows() -> Iterator[tuple[Record, tuple[Any, ...]]]:
            nonlocal title
            for sheet, record, values in xlsx_cells(io.BytesIO(data)):
                title = sheet
                yield record, values

        return self._cut(rows(), lambda header, chunks: _workbook(title, header, chunks), None)

    def _cut(self, records: Iterator[tuple[Record, Any]],
             join: Callable[[Any, list[Any]], bytes], encoding: str | None) -> Split:
        header: Any = None
        chunks: dict[str, list[Any]] = {}
        counts: Counter[str] = Counter()
        withheld: Counter[str] = Counter()
        rows = 0
        width = 0
        try:
            for record, raw in records:
                if header is None:
                    header, width = raw, len(record.cells)
                    continue
                if record.blank:
                    continue
                rows += 1
                if len(record.cells) > width or (encoding is not None
                                                 and len(record.cells) != width):
                    return self.refuse.one("split.row.width", f"the row has "
                                           f"{len(record.cells)} fields, the header {width}",
                                           "datasets", row=record.row)
                member, why = self.member_of(record.cells)
                if member is None:
                    if why == "mismatch" and self.group.mismatch == "refuse":
                        return self.refuse.one(
                            "split.mismatch", "the row's code and its "
                            f"{self.group.tie_column} disagree; the agreement refuses such a "
                            "file — correct the row and send the file again", "groups",
                            row=record.row)
                    withheld[why] += 1
                    continue
                chunks.setdefault(member.party, []).append(raw)
                counts[member.party] += 1
        except TableError as exc:
            return self.refuse.one(exc.rule, exc.message, "datasets", row=exc.row)
        if header is None:
            return self.refuse.one("split.empty", "the file is empty; nothing to split",
                                   "datasets")
        order = {m.party: i for i, m in enumerate(self.group.members)}
        parts = tuple(
            Part(self.group.member(p) or _never(p), counts[p], join(header, chunks[p]))
            for p in sorted(chunks, key=order.__getitem__)
        )
        return Split(self.group.party, self.column, rows, parts, dict(withheld), encoding)

    def member_of(self, cells: tuple[str, ...]) -> tuple[Member | None, str]:
        # A workbook's row drops its trailing empty cells: a missing cell is an empty one.
        cells = cells + ("",) * (max(self.code_at, self.tie_at or 0) + 1 - len(cells))
        code = normal_code(cells[self.code_at])
        member = self.group.party_of(code)
        if member is None:
            return None, "no-member"
        if self.tie_at is not None:
            assert self.prefecture_of is not None
            prefecture = self.prefecture_of(code)
            if prefecture is None or not _norm(cells[self.tie_at]).startswith(prefecture):
                return None, "mismatch"
        if self.registry is not None and self.on is not None \
                and not self.registry.covers(code, self.on):
            return None, "not-delegated"
        return member, ""


#: Every part of a written workbook carries this time, so the same rows give the same bytes.
_FIXED_TIME = dt.datetime(2000, 1, 1)


def _workbook(title: str, header: Sequence[Any], rows: list[Sequence[Any]]) -> bytes:
    """A new workbook of one sheet `title`: the header, then the rows, each value with its
    type (text that looks like a formula stays text)."""
    import openpyxl  # here: see run_xlsx
    from openpyxl.cell import WriteOnlyCell

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet(title or "Sheet1")
    for values in (header, *rows):
        cells = []
        for value in values:
            cell = WriteOnlyCell(sheet, value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # never a formula: the value as the sender wrote it
            cells.append(cell)
        sheet.append(cells)
    book.properties.creator = "tachiai"
    book.properties.created = _FIXED_TIME
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book.save(out)
    return _fixed(out.getvalue())


def _fixed(package: bytes) -> bytes:
    """The package again with every entry's time and the document's modified time fixed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/core.xml":
                start = body.find(b"<dcterms:modified")
                end = body.find(b"</dcterms:modified>")
                if start >= 0 and end > start:
                    body = (body[:start] + b'<dcterms:modified xsi:type="dcterms:W3CDTF">'
                            + _FIXED_TIME.isoformat().encode() + b"Z" + body[end:])
            dst.writestr(zipfile.ZipInfo(info.filename, (1980, 1, 1, 0, 0, 0)), body,
                         compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _never(party: str) -> Member:
    raise AssertionError(f"no member {party}")
