"""Reading a delivered file as rows of text: CSV (cp932 or UTF-8) with the byte span of each
record, so covered rows can be sent byte for byte; the shared Record, limits and errors.

Never rewrites what it reads: cells are decoded for judging only. Every failure is a
`TableError` carrying a rule and a message that never repeat the file's content. Reads only the
stream it is given, a chunk at a time; the XLSX reader is `policies.xlsxfile`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate, repeat
from typing import BinaryIO

from policies.wording import R_

__all__ = [
    "LIMITS",
    "Batch",
    "Limits",
    "Record",
    "TableError",
    "Undecodable",
    "csv_batches",
    "csv_records",
]


@dataclass(frozen=True)
class Limits:
    """Caps on what one file may make us read: rows, bytes per record, and for workbooks the
    uncompressed size, member count and compression ratio (zip bombs)."""

    max_rows: int = 1_048_576  # Excel's own row limit
    max_record_bytes: int = 1 << 20
    max_columns: int = 256
    max_xlsx_members: int = 1_000
    max_xlsx_uncompressed: int = 512 << 20
    max_xlsx_ratio: int = 200  # XML of a real sheet compresses 5–30×; bombs, thousands


LIMITS = Limits()


@dataclass(frozen=True)
class Record:
    """One row as read: its row number (the header is row 1, as a spreadsheet counts), its
    cells as text, and for CSV the byte range [start, end) it occupies, line ending included."""

    row: int
    cells: tuple[str, ...]
    span: tuple[int, int] | None = None

    @property
    def blank(self) -> bool:
        return all(not c.strip() for c in self.cells)


@dataclass(frozen=True)
class Batch:
    """The `size` complete records of one chunk of a CSV file, parsed; the first is row `first`.

    `raw` is their bytes as read, from stream offset `start`; `ends` the offset in `raw` after
    each record, or None when every record is one line (no double quote in the chunk), in which
    case `spans` finds them only when asked: most checks never need a row's bytes.
    The cells are either `parsed` (a list per row, as the csv module reads them) or, when every
    record has `width` fields, `cells`: all of them, row after row, so that a column is a slice.
    """

    first: int
    size: int
    start: int
    raw: bytes
    ends: tuple[int, ...] | None = None
    parsed: list[list[str]] | None = None
    cells: list[str] | None = None
    width: int = 0

    def __post_init__(self) -> None:
        if (self.parsed is None) == (self.cells is None):
            raise ValueError("a batch holds either parsed rows or cells")
        if self.parsed is not None and len(self.parsed) != self.size:
            raise ValueError("a batch needs one parsed row per record")
        if self.cells is not None and (self.width < 1 or len(self.cells) != self.size * self.width):
            raise ValueError("a batch needs `width` cells per record")

    @property
    def end(self) -> int:
        return self.start + len(self.raw)

    def rows(self) -> list[list[str]]:
        """The cells of each record."""
        if self.parsed is not None:
            return self.parsed
        assert self.cells is not None
        cells, width = self.cells, self.width
        return [cells[i : i + width] for i in range(0, len(cells), width)]

    def row(self, index: int) -> list[str]:
        """The cells of record `first + index`."""
        if self.parsed is not None:
            return self.parsed[index]
        assert self.cells is not None
        return self.cells[index * self.width : (index + 1) * self.width]

    def columns(self) -> list[list[str]] | None:
        """The cells column by column when every record has `width` fields, else None."""
        if self.cells is None:
            return None
        return [self.cells[j :: self.width] for j in range(self.width)]

    def spans(self) -> list[tuple[int, int]]:
        """The byte range [start, end) of each record in the stream, line ending included."""
        ends = self.ends
        if ends is None:
            ends = tuple(accumulate(map(len, self.raw.splitlines(keepends=True))))
        starts = (0, *ends[:-1])
        base = self.start
        return [(base + s, base + e) for s, e in zip(starts, ends, strict=True)]


class TableError(Exception):
    """The file cannot be read as a table; `rule` and `message` are safe to record."""

    def __init__(self, rule: str, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.row = row


class Undecodable(Exception):
    """The bytes are not valid text in the encoding tried; the caller may try another."""


def candidate_encodings(head: bytes, allowed: tuple[str, ...]) -> list[str]:
    """The encodings to try, in order, given the file's first bytes and the allowed list."""
    if head.startswith(codecs.BOM_UTF8):
        # A BOM settles the question: UTF-8 with signature, if UTF-8 is allowed at all.
        return ["utf-8-sig"] if {"utf-8-sig", "utf-8"} & set(allowed) else []
    out = []
    if {"utf-8-sig", "utf-8"} & set(allowed):
        out.append("utf-8")
    if "cp932" in allowed:
        out.append("cp932")
    return out


def csv_records(stream: BinaryIO, encoding: str, limits: Limits = LIMITS) -> Iterator[Record]:
    """The records of a CSV stream (RFC 4180, comma, double quotes) from its start.

    Raises (while iterating):
        Undecodable: a record is not valid `encoding` text.
        TableError: a record is malformed, longer than the limit, or there are too many.
    """
    for batch in csv_batches(stream, encoding, limits):
        for number, cells, span in zip(
            range(batch.first, batch.first + batch.size), batch.rows(), batch.spans(), strict=True
        ):
            yield Record(number, tuple(cells), span)


def csv_batches(
    stream: BinaryIO, encoding: str, limits: Limits = LIMITS, width: int | None = None
) -> Iterator[Batch]:
    """The records of a CSV stream from its start, a chunk's worth at a time: the same records,
    numbers, cells and spans as `csv_records`, for callers that judge rows in bulk.

    `width`, the number of fields the caller expects, lets a chunk whose records all have that
    many be returned as `cells` without the csv module's per-row work.

    Raises (while iterating), before yielding any record of the batch at fault:
        Undecodable: a record is not valid `encoding` text.
        TableError: a record is malformed, longer than the limit, or there are too many.
    """
    stream.seek(0)
    number = 0  # records yielded so far
    for start, raw, ends in _regions(stream, limits):
        breaks = _Breaks.of(raw) if ends is None else None
        count = breaks.lines(raw) if breaks is not None else len(ends or ())
        if number + count > limits.max_rows:
            raise TableError(
                "content.too-many-rows",
                R_("the file has more than {rows} rows; split it into several files",
                   rows=limits.max_rows),
                limits.max_rows + 1,
            )
        # Only the file's first record may carry the UTF-8 signature.
        codec = "utf-8" if encoding == "utf-8-sig" and number else encoding
        try:
            if ends is None:
                # One record per line: decode the chunk at once. Line endings are the same
                # characters after decoding: CR and LF never occur inside a character in UTF-8
                # or cp932.
                text = raw.decode(codec, errors="strict")
                assert breaks is not None
                cells = _plain_cells(text, breaks, count, width) if width is not None else None
                if cells is not None:
                    assert width is not None
                    yield Batch(number + 1, count, start, raw, None, cells=cells, width=width)
                    number += count
                    continue
                # StringIO(newline="") ends lines exactly where bytes.splitlines does.
                lines: io.StringIO | list[str] = io.StringIO(text, newline="")
            else:
                lines = [
                    raw[s:e].decode(codec if not i else _rest(codec), errors="strict")
                    for i, (s, e) in enumerate(zip((0, *ends[:-1]), ends, strict=True))
                ]
        except UnicodeDecodeError:
            raise Undecodable(encoding) from None
        # The C parser reads the records the splitter found, one line (or list item) each; it
        # must give exactly one row per record, or the two disagree about where rows end.
        reader = csv.reader(lines, strict=True)
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise TableError(
                "content.csv-syntax",
                R_("the CSV cannot be parsed ({problem}); check quoting and line endings "
                   "(RFC 4180)", problem=_csv_error(exc)),
                number + max(reader.line_num, 1),
            ) from None
        if len(rows) != count or reader.line_num != count:
            raise TableError(
                "content.csv-syntax",
                R_("a row contains a line break outside double "
                "quotes; check quoting and line endings (RFC 4180)"),
                number + 1,
            )
        yield Batch(number + 1, count, start, raw, ends, parsed=rows)
        number += count


# --- private helpers -----------------------------------------------------------------------------

_CHUNK = 1 << 16
# Records are split on bytes before decoding, so spans are exact: in UTF-8 and in cp932 neither
# a double quote, CR nor LF can occur inside a multi-byte character (cp932 trail bytes are
# 0x40–0x7E and 0x80–0xFC; UTF-8's are 0x80–0xBF).

# One record that starts outside double quotes: each quote toggles "inside", so the record ends
# at the first line ending (CRLF, LF or a lone CR, as the csv module reads them) reached after an
# even number of quotes. Written as an unrolled loop so that a failed match (a record still
# open at the end of the chunk) backtracks in linear time.
_RECORD = re.compile(rb'[^"\r\n]*(?:"[^"]*"[^"\r\n]*)*(?:\r\n|\r|\n)')


def _regions(
    stream: BinaryIO, limits: Limits
) -> Iterator[tuple[int, bytes, tuple[int, ...] | None]]:
    """Yield the complete records of each chunk read, as (offset, bytes, record ends or None).

    A line ending outside double quotes ends a record. Every record starts outside quotes, so a
    chunk without a double quote is a run of one-line records; the common case is cut with a
    few searches in C. A record still open at the end of the chunk is carried to the next.
    """
    pending = b""  # the start of a record not yet complete, carried to the next chunk
    base = 0  # offset of pending[0] in the stream
    while True:
        chunk = stream.read(_CHUNK)
        eof = not chunk
        data = pending + chunk
        ends: tuple[int, ...] | None = None
        if b'"' not in data:
            # The last line is complete if it ends with LF, or with a CR that is not the chunk's
            # last byte (its LF may come in the next chunk); at the end of the file, always.
            cut = len(data) if eof else max(data.rfind(b"\n"), data.rfind(b"\r", 0, -1)) + 1
        else:
            ends = _record_ends(data, eof)
            cut = ends[-1] if ends else 0
        if cut:
            yield base, data[:cut], ends
        pending, base = data[cut:], base + cut
        if len(pending) > limits.max_record_bytes:
            raise TableError(
                "content.row.too-long",
                R_("a row is longer than {limit} bytes; look for a double quote that "
                   "is never closed", limit=limits.max_record_bytes),
            )
        if eof:
            if pending:
                yield base, pending, (len(pending),)
            return


def _record_ends(data: bytes, eof: bool) -> tuple[int, ...]:
    """The offset after each complete record of `data`, which starts at a record's start."""
    ends: list[int] = []
    pos = 0
    size = len(data)
    match = _RECORD.match
    while pos < size:
        found = match(data, pos)
        if found is None:
            if eof and data.count(b'"', pos) % 2 == 0:
                ends.append(size)  # the file's last record, without a line ending
            break
        end = found.end()
        if not eof and end == size and data[-1:] == b"\r":
            break  # a CR whose LF may come in the next chunk
        ends.append(end)
        pos = end
    return tuple(ends)


def _plain_cells(text: str, breaks: _Breaks, count: int, width: int) -> list[str] | None:
    """The cells of `count` one-line records without a double quote, row after row, when every
    record has `width` fields, one kind of line ending and no field over the csv module's size
    limit; else None (the csv module reads them, and says what is wrong).

    Without quotes, the csv module (RFC 4180, strict) splits a line at each comma, and reads an
    empty line as no field at all — which two or more fields cannot be, so they need a comma.
    """
    crlf, lf, cr = breaks.crlf, breaks.lf, breaks.cr
    if width < 2 or (lf and cr and not lf == cr == crlf):
        return None  # a line of one field may be an empty line; or line endings are mixed
    lines = text.split("\r\n" if crlf else "\n" if lf else "\r")
    if lines[-1] == "":
        lines.pop()  # after the last line ending (always there, except at the end of the file)
    if len(lines) != count:
        return None
    limit = csv.field_size_limit()
    if len(text) > limit and max(map(len, lines)) > limit:
        return None
    if set(map(str.count, lines, repeat(","))) != {width - 1}:
        return None
    return ",".join(lines).split(",")


@dataclass(frozen=True)
class _Breaks:
    """How many CRLF, LF and CR bytes a run of one-line records holds (a CRLF counts in all)."""

    crlf: int
    lf: int
    cr: int

    @classmethod
    def of(cls, raw: bytes) -> _Breaks:
        return cls(raw.count(b"\r\n"), raw.count(b"\n"), raw.count(b"\r"))

    def lines(self, raw: bytes) -> int:
        """The number of lines, as bytes.splitlines counts them."""
        return self.lf + self.cr - self.crlf + (not raw.endswith((b"\n", b"\r")))


def _rest(codec: str) -> str:
    """The codec for records after the first in a batch: the signature is only at the start."""
    return "utf-8" if codec == "utf-8-sig" else codec


def _csv_error(exc: csv.Error) -> str:
    # The csv module's messages describe structure ("unexpected end of data"), not content.
    msg = str(exc)
    if "field larger" in msg:
        return R_("field larger than allowed")
    if "new-line" in msg:
        return R_("a line break inside an unquoted field")
    return msg
