"""Reading a delivered Excel workbook (.xlsx): the first worksheet's rows as text.

Guards first, parser second: the ZIP's member count, declared sizes and compression ratios are
capped (zip bombs), encrypted or legacy (.xls) workbooks and XML with a DOCTYPE are refused,
every part of the package is classified and scanned (`policies.xlsxparts`: comments, headers,
properties, other sheets, shapes; unknown parts refused), and only then does openpyxl read the
sheet, in read-only mode, row by row, up to the row limit. Anything openpyxl cannot parse
becomes a `TableError`; it never rewrites the workbook.
"""

from __future__ import annotations

import datetime as dt
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import openpyxl

from policies.checkdigits import contains_my_number
from policies.tables import LIMITS, Limits, Record, TableError
from policies.wording import R_
from policies.xlsxparts import PROLOG_BYTES, PackageScan, check_prolog, corrupt, scan_package

__all__ = ["xlsx_cells", "xlsx_records"]


def xlsx_records(stream: BinaryIO, limits: Limits = LIMITS) -> Iterator[Record]:
    """The rows of the workbook's first worksheet; row 1 is the header.

    Trailing empty cells are dropped from each row (Excel keeps formatted empty cells).

    Raises (while iterating):
        TableError: the bytes are not a workbook we may open, or exceed the limits.
    """
    for _title, record, _values in xlsx_cells(stream, limits):
        yield record


def xlsx_cells(
    stream: BinaryIO, limits: Limits = LIMITS
) -> Iterator[tuple[str, Record, tuple[Any, ...]]]:
    """Each row of the first worksheet as `xlsx_records` gives it, with the sheet's title and
    the row's typed values (as many as its cells: text, numbers, dates, booleans), for writing
    a part of the sheet again (`policies.splitting`).

    Raises (while iterating):
        TableError: as `xlsx_records`.
    """
    stream.seek(0)
    scan = _check_container(stream, limits)
    stream.seek(0)
    try:
        with warnings.catch_warnings():
            # openpyxl warns about features it skips (data validation, styles); not our concern.
            warnings.simplefilter("ignore")
            book = openpyxl.load_workbook(stream, read_only=True, data_only=True, keep_links=False)
    except Exception:  # a foreign parser on hostile bytes: any failure is "corrupt"
        raise _corrupt() from None
    try:
        sheets = book.worksheets
        if not sheets:
            raise TableError(
                "content.xlsx.no-sheet",
                R_("the workbook has no worksheet; put the data on the first sheet"),
            )
        if len(book.sheetnames) > 1 or scan.sheets > 1:
            # Only the first sheet is checked; a second one (hidden or not) would travel
            # sealed and unchecked — a way around every content term and the onward guard.
            raise TableError(
                "content.xlsx.sheets",
                R_("the workbook has {sheets} sheets; the agreement's data is one "
                   "sheet: delete the other sheets and drop the file again",
                   sheets=max(len(book.sheetnames), scan.sheets)),
            )
        seen = False
        title = str(sheets[0].title)
        for record, values in _rows(sheets[0], limits):
            if scan.deferred and not seen:
                seen = contains_my_number(",".join(record.cells))
            yield title, record, values
        if scan.deferred and not seen:
            # The package holds a My Number in cell text that no row shows (an unused string,
            # a cell beyond the columns read): it would travel unchecked.
            raise TableError(
                "content.my-number",
                R_("a 12-digit number with a valid 個人番号 (My Number) check digit appears in "
                "the workbook's cell text outside the rows read (an unused string or a far "
                "column); this agreement forbids My Number data — copy the data into a new "
                "workbook"),
            )
    finally:
        book.close()


# --- private helpers -----------------------------------------------------------------------------

# OLE2 compound file: a legacy .xls, or an .xlsx encrypted with a password (ECMA-376 agile
# encryption wraps the package in one).
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _corrupt() -> TableError:
    return corrupt()


def _check_container(stream: BinaryIO, limits: Limits) -> PackageScan:
    head = stream.read(8)
    if head.startswith(_OLE2_MAGIC):
        # seed 003: the password is set by tachiai when it seals, after the content is checked.
        raise TableError(
            "content.xlsx.encrypted",
            R_("the workbook is password-protected or in "
            "the old .xls format; drop the unprotected .xlsx: tachiai sets the "
            "workbook and ZIP passwords itself when it seals the transfer"),
        )
    if not head.startswith(b"PK\x03\x04"):
        raise TableError(
            "content.xlsx.not-xlsx",
            R_("the file is not an Excel workbook (.xlsx); save it as .xlsx (Excel ブック)"),
        )
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
            _check_sizes(infos, limits)
            for info in infos:
                if info.filename.endswith((".xml", ".rels")):
                    with archive.open(info) as member:
                        check_prolog(member.read(PROLOG_BYTES))
            return scan_package(archive)
    except TableError:
        raise
    except Exception:  # zipfile and zlib raise many types on hostile bytes
        raise _corrupt() from None


def _check_sizes(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_xlsx_members:
        raise TableError(
            "content.xlsx.too-large",
            R_("the workbook has more than {parts} parts; it is not a plain data sheet",
               parts=limits.max_xlsx_members),
        )
    # zipfile stops each member at its declared size, so the declared sizes bound what we inflate.
    total = sum(i.file_size for i in infos)
    if total > limits.max_xlsx_uncompressed:
        raise TableError(
            "content.xlsx.too-large",
            R_("the workbook unpacks to more than {mib} MiB; split the data",
               mib=limits.max_xlsx_uncompressed >> 20),
        )
    for info in infos:
        if info.flag_bits & 0x1:
            raise TableError(
                "content.xlsx.encrypted",
                R_("a part of the workbook is encrypted; drop the unprotected .xlsx"),
            )
        if info.file_size > (1 << 20) and info.file_size > limits.max_xlsx_ratio * max(
            info.compress_size, 1
        ):
            raise TableError(
                "content.xlsx.too-large",
                R_("a part of the workbook is compressed "
                "far beyond what a spreadsheet compresses to (a zip bomb?)"),
            )


def _rows(sheet: Any, limits: Limits) -> Iterator[tuple[Record, tuple[Any, ...]]]:
    try:
        rows = sheet.iter_rows(values_only=True, max_col=limits.max_columns)
        for number, values in enumerate(rows, start=1):
            if number > limits.max_rows:
                raise TableError(
                    "content.too-many-rows",
                    R_("the sheet has more than {rows} rows; split it into several files",
                       rows=limits.max_rows),
                    number,
                )
            cells = [_text(v) for v in values]
            while cells and cells[-1] == "":
                cells.pop()
            yield Record(number, tuple(cells)), tuple(values[:len(cells)])
    except TableError:
        raise
    except Exception:  # openpyxl parses the sheet lazily, failing here
        raise _corrupt() from None


def _text(value: Any) -> str:
    """A cell's value as the text a person sees, for judging only."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.datetime):
        # A date typed into Excel arrives as midnight of that day.
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        # 131041 typed as a number is stored as 131041.0. A lost leading zero (011002 → 11002)
        # is not restored: the code then fails its check, and the sender is told to use text.
        return str(int(value))
    return str(value)
