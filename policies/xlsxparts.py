"""The parts of a workbook package (.xlsx, a ZIP of XML parts) beyond the cells the reader reads.

Every part is classified by name: the kinds a plain data workbook has are scanned for My Numbers
(個人番号) — every sheet (hidden or not), comments (メモ and threaded コメント), print headers and
footers, document and custom properties, defined names, text boxes and shapes, link targets —
and anything else (macros, embedded or OLE objects, external links, pivot caches, pictures,
charts, unknown parts) is refused: what we cannot read we do not send. XML is parsed only after
its prolog is proven free of a DTD, so no entity can be declared or expanded. Raises
`TableError` only; never names a part, a cell or a value in a message.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO
from xml.etree.ElementTree import Element, ParseError, iterparse

from policies.checkdigits import contains_my_number
from policies.formulas import FORMULA_RULE
from policies.tables import TableError

__all__ = ["PROLOG_BYTES", "PackageScan", "check_prolog", "corrupt", "scan_package"]


@dataclass(frozen=True)
class PackageScan:
    """What the scan leaves to the row reader: `deferred` is True when a My Number was seen in
    cell text that the reader also reads (the only sheet's cells or the shared strings), so
    the reader must find it in a row — or refuse the file, if it was in text no row shows."""

    deferred: bool
    sheets: int  # worksheet parts in the package, listed in the workbook or not


def scan_package(archive: zipfile.ZipFile) -> PackageScan:
    """Classify and scan every part of the workbook package `archive`.

    Raises:
        TableError: a part is of a kind we refuse, its XML is unsafe or broken, a formula is
            stored in a cell, or a My Number appears outside the cells the reader checks.
    """
    infos = [i for i in archive.infolist() if not i.filename.endswith("/")]
    names = {i.filename for i in infos}
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        raise corrupt()
    kinds = [(info, _kind_of(info.filename)) for info in infos]
    for _info, kind in kinds:
        if isinstance(kind, _Refused):
            raise TableError("content.xlsx.part", kind.message)
    sheets = sum(1 for _, kind in kinds if kind == "sheet")
    deferred = False
    for info, kind in kinds:
        assert isinstance(kind, str)
        with archive.open(info) as member:
            if kind == "printer":
                # DEVMODE: the printer's name is UTF-16 text, the rest numbers.
                text = member.read().decode("utf-16-le", errors="ignore")
                _scan_text(text, "the printer settings")
            elif kind == "vml":
                _scan_vml(member.read())
            elif kind == "sheet":
                deferred |= _scan_sheet(archive, info, only=sheets == 1)
            else:
                deferred |= _scan_xml(member, kind, defer=kind == "strings" and sheets == 1)
    return PackageScan(deferred, sheets)


def check_prolog(head: bytes) -> None:
    """Refuse an XML part whose prolog is not plain: it must be UTF-8 and consist only of the
    XML declaration, comments, processing instructions and spaces before the root element —
    so no DOCTYPE, hence no entity declaration, however far down it is hidden.

    Raises:
        TableError: content.xlsx.doctype for a DTD or entity, content.xlsx.corrupt otherwise.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
        raise TableError(
            "content.xlsx.corrupt", "the workbook's XML is not UTF-8; save it again from Excel"
        )
    if _PROLOG.match(head) is None:
        if b"<!DOCTYPE" in head.upper() or b"<!ENTITY" in head.upper():
            raise TableError(
                "content.xlsx.doctype",
                "the workbook's XML declares a DOCTYPE, which "
                "Excel never writes; the file has been tampered with",
            )
        raise corrupt()


def corrupt() -> TableError:
    return TableError(
        "content.xlsx.corrupt",
        "the file cannot be read as an Excel workbook "
        "(.xlsx); open it in Excel, save it again as .xlsx and drop it again",
    )


# --- private helpers -----------------------------------------------------------------------------

PROLOG_BYTES = 1 << 16

# XMLDecl? (S | Comment | PI)* then the root element's start tag (XML 1.0 §2.8, without
# doctypedecl). A prolog longer than PROLOG_BYTES does not match and is refused.
_PROLOG = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:<\?xml(?:[^?]|\?(?!>))*\?>)?"
    rb"(?:\s|<!--(?:[^-]|-(?!-))*-->|<\?(?:[^?]|\?(?!>))*\?>)*<[A-Za-z_]"
)


@dataclass(frozen=True)
class _Refused:
    message: str


def _refused(what: str) -> _Refused:
    return _Refused(
        f"the workbook contains {what}, which tachiai does not check and so does not send; "
        "copy the data cells into a new workbook (値の貼り付け) and save it as a plain .xlsx"
    )


# Part name → kind. Names are matched as Excel writes them (openpyxl, LibreOffice alike).
_KINDS: tuple[tuple[re.Pattern[str], str | _Refused], ...] = tuple(
    (re.compile(pattern), kind)
    for pattern, kind in (
        (r"\[Content_Types\]\.xml", "types"),
        (r"(?:[^/]+/)*_rels/[^/]*\.rels", "rels"),
        (r"docProps/(?:core|app|custom)\.xml", "properties"),
        (r"xl/workbook\.xml", "workbook"),
        (r"xl/sharedStrings\.xml", "strings"),
        (r"xl/worksheets/sheet[0-9]+\.xml", "sheet"),
        (r"xl/(?:comments[0-9]*|comments/comment[0-9]+)\.xml", "comments"),
        (r"xl/threadedComments/threadedComment[0-9]+\.xml", "threaded"),
        (r"xl/persons/person[0-9]*\.xml", "persons"),
        (r"xl/drawings/drawing[0-9]+\.xml", "drawing"),
        (r"xl/drawings/(?:vmlDrawing|commentsDrawing)[0-9]+\.vml", "vml"),
        (r"xl/tables/table[0-9]+\.xml", "table"),
        (r"xl/(?:styles|calcChain|metadata)\.xml|xl/theme/theme[0-9]+\.xml", "plain"),
        (r"xl/printerSettings/printerSettings[0-9]+\.bin", "printer"),
        (r"(?i).*vbaProject.*|xl/macrosheets/.*|xl/dialogsheets/.*", _refused("macros (VBA)")),

        (
            r"(?i)xl/(?:embeddings|activeX|ctrlProps)/.*|.*oleObject.*",
            _refused("an embedded object or control (OLE, ActiveX)"),
        ),
        (r"xl/externalLinks/.*", _refused("links to other workbooks (外部参照)")),
        (r"xl/(?:pivotCache|pivotTables)/.*", _refused("a pivot table or its cache")),
        (
            r"xl/(?:connections\.xml|queryTables/.*)|customXml/.*",
            _refused("data connections or custom XML"),
        ),
        (
            r"xl/(?:media|charts|chartsheets|diagrams|slicers|slicerCaches|timelines)/.*"
            r"|docProps/thumbnail\..*",
            _refused("pictures, charts or slicers"),
        ),
    )
)
_UNKNOWN = _refused("a part that a plain data workbook does not have")
_MACROS = _refused("macros (VBA)")
# Content types that make a package a macro-enabled workbook or carry active content, whatever
# its part names say.
_ACTIVE_TYPES = re.compile(r"(?i)macroEnabled|vbaProject|oleObject|activeX")
# Where a My Number was found, by kind: said in the reason, which never quotes the text.
_WHERE = {
    "types": "the package's content types",
    "rels": "a link target of the workbook",
    "properties": "the document properties (プロパティ)",
    "workbook": "the workbook's sheet names or settings",
    "strings": "the workbook's cell text",
    "comments": "a cell comment (メモ)",
    "threaded": "a threaded comment (コメント)",
    "persons": "the names of comment authors",
    "drawing": "a text box or shape (図形・テキストボックス)",
    "table": "a table definition (テーブル)",
    "plain": "the workbook's styles or theme",
}
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
# Elements whose text a person reads as one run, though Excel stores it in pieces (rich text
# runs of a cell, a comment, a shape's paragraph): their pieces are scanned joined as well.
_JOINED = frozenset({"si", "is", "text", "p", "comment", "threadedComment", "definedName"})
_HEADER_FOOTER = frozenset(
    {"oddHeader", "oddFooter", "evenHeader", "evenFooter", "firstHeader", "firstFooter"}
)
# Formatting codes of a header or footer (&L &C &R &P &"Font,Bold" &12 &KFF0000): a number
# split by them still prints whole.
_HF_CODES = re.compile(r'&(?:"[^"]*"|[0-9]+|K[0-9A-Fa-f]{6}|K[0-9]{2}[+-][0-9]{3}|.)', re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_SHEET_DATA = re.compile(rb"<sheetData\b[^>]*?(/?)>")
_SHEET_DATA_END = b"</sheetData>"
_FORMULA_TAG = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?f[\s>/]")
_CHUNK = 1 << 20
_OVERLAP = 64


def _kind_of(name: str) -> str | _Refused:
    for pattern, kind in _KINDS:
        if pattern.fullmatch(name):
            return kind
    return _UNKNOWN


def _my_number(where: str) -> TableError:
    return TableError(
        "content.my-number",
        f"a 12-digit number with a valid 個人番号 (My Number) check digit appears in {where}; "
        "this agreement forbids My Number data — remove it",
    )


def _scan_text(text: str, where: str) -> None:
    if contains_my_number(text):
        raise _my_number(where)


def _scan_vml(body: bytes) -> None:
    # Legacy drawing of comment boxes; Excel's VML is not always well-formed XML, so it is
    # scanned as text, with and without its tags (a number split across tags reads whole).
    text = body.decode("utf-8", errors="replace")
    _scan_text(text, "a cell comment (メモ)")
    _scan_text(_TAG.sub("", text), "a cell comment (メモ)")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _events(source: IO[bytes]) -> Iterator[tuple[str, Element]]:
    try:
        # xml.etree is safe here: check_prolog proved that no DTD precedes the root, so no
        # entity can be declared, and expat resolves nothing external.
        yield from iterparse(source, events=("start", "end"))  # noqa: S314
    except ParseError:
        raise corrupt() from None


def _scan_xml(source: IO[bytes], kind: str, *, defer: bool) -> bool:
    """Scan an XML part's text and attribute values; True when a My Number was found in cell
    text (the shared strings, a sheet's sheetData) and `defer` says the row reader judges it."""
    where = _WHERE.get(kind, "the workbook")
    sheet = kind == "sheet"
    found = False
    header_footer = 0
    cells = 1 if kind == "strings" else 0  # depth inside cell text
    for event, element in _events(source):
        name = _local(element.tag)
        if event == "start":
            if name in _HEADER_FOOTER:
                header_footer += 1
            if sheet and name == "sheetData":
                cells += 1
            if sheet and cells and name == "f":
                raise _formula()  # a cell's formula; x14 extensions outside cells use <xm:f>
            if kind == "types" and _ACTIVE_TYPES.search(element.get("ContentType", "")):
                raise TableError("content.xlsx.part", _MACROS.message)
            continue
        if header_footer:
            here = "a print header or footer (ヘッダー/フッター)"
        elif sheet and cells:
            here = "the sheet's cells" if defer else "another sheet (hidden or not)"
        else:
            here = where
        deferrable = defer and cells > 0
        if name in _HEADER_FOOTER:
            header_footer -= 1
            _scan_text(_HF_CODES.sub("", element.text or ""), here)
        if name == "definedName":
            here = "a defined name (名前の定義)"
        pieces = [element.text or "", element.tail or "", *element.attrib.values()]
        if name in _JOINED:
            pieces.append("".join(element.itertext()))
        for piece in pieces:
            if piece and contains_my_number(piece):
                if not deferrable:
                    raise _my_number(here)
                found = True
        if sheet and name == "sheetData":
            cells -= 1
        if name in _JOINED or (sheet and name == "row"):
            element.clear()  # keeps a large string table or sheet from filling memory
    return found


def _formula() -> TableError:
    return TableError(
        FORMULA_RULE,
        "a cell of the workbook holds a formula, which runs when the recipient opens it; copy "
        "the cells and paste them as values (値の貼り付け), then save and drop the file again",
    )


def _scan_sheet(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, only: bool) -> bool:
    """Scan a worksheet: its cells (sheetData) as text, for formulas and My Numbers, and the
    rest (headers and footers, hyperlinks, validations, …) as XML. The cells of the only sheet
    are the row reader's: a My Number there is deferred (True), not refused here.

    Cells are scanned as bytes in C, not parsed, so a sheet of a million rows costs little; a
    sheet whose sheetData cannot be found that way is parsed whole.
    """
    where_cells = "the sheet's cells" if only else "another sheet (hidden or not)"
    head = b""
    found = False
    with archive.open(info) as member:
        while True:
            chunk = member.read(_CHUNK)
            head += chunk
            start = _SHEET_DATA.search(head)
            if start is not None or not chunk or len(head) > _CHUNK:
                break
        if start is None or start.group(1):
            # No sheetData, an empty one, or one written so we cannot find it: parse it all.
            pass
        else:
            prefix = head[: start.start()]
            middle = head[start.end() :]
            tail = b""
            while True:
                end = middle.find(_SHEET_DATA_END)
                body = middle if end < 0 else middle[:end]
                if _FORMULA_TAG.search(body):
                    raise _formula()
                if contains_my_number(body.decode("utf-8", errors="replace")):
                    if not only:
                        raise _my_number(where_cells)
                    found = True
                if end >= 0:
                    tail = middle[end + len(_SHEET_DATA_END) :] + member.read()
                    break
                chunk = member.read(_CHUNK)
                if not chunk:
                    raise corrupt()  # sheetData never closed
                middle = middle[-_OVERLAP:] + chunk
            rest = prefix + b"<sheetData/>" + tail
            _scan_xml(io.BytesIO(rest), "sheet", defer=False)
            return found
    with archive.open(info) as member:
        return _scan_xml(member, "sheet", defer=only)
