"""Reading a delivered file as rows of text: CSV (cp932 or UTF-8) with the byte span of each
record, so covered rows can be sent byte for byte; the shared Record, limits and errors.

Never rewrites what it reads: cells are decoded for judging only. Every failure is a
`TableError` carrying a rule and a message that never repeat the file's content. Reads only the
stream it is given; the XLSX reader is `policies.xlsxfile`.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["LIMITS", "Limits", "Record", "TableError", "Undecodable", "csv_records"]


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
    stream.seek(0)
    number = 0  # records yielded so far
    for batch in _batches(stream, limits):
        if number + len(batch) > limits.max_rows:
            raise TableError(
                "content.too-many-rows",
                f"the file has more than {limits.max_rows} rows; split it into several files",
                limits.max_rows + 1,
            )
        try:
            texts = [
                raw.decode(
                    "utf-8" if encoding == "utf-8-sig" and (number or i) else encoding,
                    errors="strict",
                )
                for i, (_, raw) in enumerate(batch)
            ]
        except UnicodeDecodeError:
            raise Undecodable(encoding) from None
        # The C parser reads the records the splitter found, one list item each; it must give
        # exactly one row per item, or the two disagree about where rows end.
        reader = csv.reader(texts, strict=True)
        try:
            rows = list(reader)
        except csv.Error as exc:
            raise TableError(
                "content.csv-syntax",
                f"the CSV cannot be parsed "
                f"({_csv_error(exc)}); check quoting and line endings (RFC 4180)",
                number + max(reader.line_num, 1),
            ) from None
        if len(rows) != len(batch) or reader.line_num != len(batch):
            raise TableError(
                "content.csv-syntax",
                "a row contains a line break outside double "
                "quotes; check quoting and line endings (RFC 4180)",
                number + 1,
            )
        for (start, raw), cells in zip(batch, rows, strict=True):
            number += 1
            yield Record(number, tuple(cells), (start, start + len(raw)))


# --- private helpers -----------------------------------------------------------------------------

_CHUNK = 1 << 16
# Records are split on bytes before decoding, so spans are exact: in UTF-8 and in cp932 neither
# a double quote, CR nor LF can occur inside a multi-byte character (cp932 trail bytes are
# 0x40–0x7E and 0x80–0xFC; UTF-8's are 0x80–0xBF).


def _batches(stream: BinaryIO, limits: Limits) -> Iterator[list[tuple[int, bytes]]]:
    """Yield the complete records of each chunk read, as (offset, bytes) with line endings.

    A line ending outside double quotes ends a record (CRLF, LF or a lone CR, as the csv module
    reads them). Every record starts outside quotes, and each double quote toggles "inside",
    so a line with an odd number of them leaves the record open onto the next line.
    """
    pending = b""  # the start of a record not yet complete, carried to the next chunk
    base = 0  # offset of pending[0] in the stream
    while True:
        chunk = stream.read(_CHUNK)
        eof = not chunk
        data = pending + chunk
        batch: list[tuple[int, bytes]] = []
        start = end = 0
        quoted = False
        for line in data.splitlines(keepends=True):
            end += len(line)
            if line.count(b'"') % 2:
                quoted = not quoted
            if quoted:
                continue
            if not eof and end == len(data) and not line.endswith(b"\n"):
                break  # no ending yet, or a CR whose LF may come in the next chunk
            batch.append((base + start, data[start:end]))
            start = end
        if batch:
            yield batch
        pending, base = data[start:], base + start
        if len(pending) > limits.max_record_bytes:
            raise TableError(
                "content.row.too-long",
                f"a row is longer than "
                f"{limits.max_record_bytes} bytes; look for a double quote that "
                "is never closed",
            )
        if eof:
            if pending:
                yield [(base, pending)]
            return


def _csv_error(exc: csv.Error) -> str:
    # The csv module's messages describe structure ("unexpected end of data"), not content.
    msg = str(exc)
    if "field larger" in msg:
        return "field larger than allowed"
    if "new-line" in msg:
        return "a line break inside an unquoted field"
    return msg
