"""Excel-ready exports of audit tables: CSV in UTF-8 with BOM or in cp932 (CRLF), and xlsx.

Japanese Excel opens UTF-8 without a BOM as mojibake and expects CRLF, so those are the
defaults. A cell the chosen encoding cannot hold is refused by its row and column, never shown;
with `replace` it becomes "?" and is counted. In cp932 six JIS characters (〜 − ‖ ¢ £ ¬) are
written as their Windows twins (～ － ∥ ￠ ￡ ￢), as Windows itself does. It never imports
`gateway` or `policies`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, TypeVar

from audit.errors import AuditError

if TYPE_CHECKING:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

#: CSV encodings an export may use: UTF-8 with a BOM (the default) and Shift_JIS as Windows has it.
CSV_ENCODINGS: Final = ("utf-8-sig", "cp932")
_T = TypeVar("_T")
_SPOOL_BYTES = 16 * 1024 * 1024  # larger exports spill to a temporary file
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_SHEET_MAX = 31  # Excel's limit for a sheet name


class UnencodableCell(AuditError):
    """A cell holds a character the export's encoding cannot hold. Names the place only."""

    def __init__(self, row: int, column: str, encoding: str) -> None:
        super().__init__(
            f"row {row}, column {column!r} holds a character that {encoding} cannot encode"
        )
        self.row = row
        self.column = column
        self.encoding = encoding


@dataclass(frozen=True)
class Sheet:
    """One worksheet: optional lines of text above one table (header and rows of strings)."""

    title: str
    header: Sequence[str] = ()
    rows: Iterable[Sequence[str]] = ()
    lines: Sequence[str] = field(default_factory=tuple)


def write_csv(
    out: IO[bytes],
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    encoding: str = "utf-8-sig",
    replace: bool = False,
) -> int:
    """Write `header` and `rows` as CSV (RFC 4180: CRLF line ends, quoted when needed) in
    `encoding`, row by row. Returns how many characters were replaced by "?" (only with
    `replace`; otherwise 0).

    Rows are numbered as a spreadsheet shows them: the header is row 1.

    Raises:
        ValueError: the encoding is not one of CSV_ENCODINGS.
        UnencodableCell: a character cannot be encoded and `replace` is false; bytes already
            written are the rows before it (callers write to a temporary place).
    """
    if encoding not in CSV_ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(CSV_ENCODINGS)}")
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    if encoding == "utf-8-sig":
        out.write(b"\xef\xbb\xbf")
    replaced = 0
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    columns = list(header)
    for number, row in enumerate(_chain(header, rows), start=1):
        cells = list(row)
        for index, cell in enumerate(cells):
            try:
                cell.encode(codec)
            except UnicodeEncodeError:
                if not replace:
                    name = columns[index] if index < len(columns) else f"#{index + 1}"
                    raise UnencodableCell(number, name, encoding) from None
                fixed = cell.encode(codec, "replace").decode(codec)
                replaced += sum(1 for a, b in zip(cell, fixed, strict=True) if a != b)
                cells[index] = fixed
        text.seek(0)
        text.truncate()
        writer.writerow(cells)
        out.write(text.getvalue().encode(codec))
    return replaced


def write_xlsx(out: IO[bytes], sheets: Sequence[Sheet]) -> None:
    """Write `sheets` as one workbook (openpyxl, streamed). Every cell is a string cell, never
    a formula, whatever it starts with (a partner's file name "=…" stays text).

    Raises:
        ValueError: no sheets were given.
    """
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    # Imported here: openpyxl costs `audit verify`, `audit prove` and every other command that
    # never writes a workbook about a tenth of a second of start-up (measured with -X importtime).
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    used: set[str] = set()
    for sheet in sheets:
        ws = book.create_sheet(_sheet_name(sheet.title, used))
        for line in sheet.lines:
            ws.append([_text_cell(ws, line)])
        if sheet.lines:
            ws.append([])
        if sheet.header:
            ws.append([_text_cell(ws, h) for h in sheet.header])
        for row in sheet.rows:
            ws.append([_text_cell(ws, c) for c in row])
    book.save(out)


def emit(write: Callable[[IO[bytes]], _T], output: Path | None, stdout: IO[bytes]) -> _T:
    """Run `write` into a temporary place; only when it succeeds, move the result to `output`
    (a temporary name beside it, then an atomic rename) or copy it to `stdout`. A refused
    export (say, a cell cp932 cannot hold) so leaves neither a partial file nor partial output.

    Raises:
        whatever `write` raises; OSError when `output` cannot be written.
    """
    if output is None:
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            result = write(spool)
            spool.seek(0)
            shutil.copyfileobj(spool, stdout)
            stdout.flush()
            return result
    folder = output.parent if str(output.parent) else Path(".")
    fd, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            result = write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return result


def _chain(header: Sequence[str], rows: Iterable[Sequence[str]]) -> Iterable[Sequence[str]]:
    yield header
    yield from rows


def _text_cell(ws: WriteOnlyWorksheet, value: str) -> WriteOnlyCell:
    from openpyxl.cell import WriteOnlyCell  # loaded already by write_xlsx; see there

    cell = WriteOnlyCell(ws, value=value)
    cell.data_type = "s"  # openpyxl would make "=…" a formula
    return cell


def _sheet_name(title: str, used: set[str]) -> str:
    """A sheet name Excel accepts (≤ 31 characters, none of []:*?/\\), unique in the book."""
    base = _SHEET_FORBIDDEN.sub(" ", title).strip().strip("'")[:_SHEET_MAX] or "Sheet"
    name, n = base, 2
    while name.casefold() in used:
        suffix = f" ({n})"
        name, n = base[: _SHEET_MAX - len(suffix)] + suffix, n + 1
    used.add(name.casefold())
    return name
