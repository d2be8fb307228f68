"""The whole workbook package is read: a My Number (個人番号) in a comment, a print header or
footer, the document or custom properties, a defined name, a hidden sheet, a text box or an
unused string is refused; macros, embedded objects, external links, pivot caches and unknown
parts are refused; stored formulas and formula-like text too. Workbooks built with openpyxl,
parts it cannot write added by editing the ZIP. Synthetic values only."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest
from openpyxl.comments import Comment
from openpyxl.packaging.custom import StringProperty
from openpyxl.workbook.defined_name import DefinedName

from policies.content import check_file
from policies.reasons import Verdict
from policies.tables import Record, TableError
from policies.xlsxfile import xlsx_records
from tests.policies.bundled import agreement

VALID = "123456789018"
HYPHENED = "1234\u20105678\u20109018"  # cp932's 全角ハイフン between the groups
SHINJUKU = agreement("shinjuku-immigration-arrears")
ON = dt.date(2026, 11, 20)
HEADER = [c.name for c in SHINJUKU.datasets["arrears"].columns]
ROW: list[Any] = [
    "TEST TARO",
    "試験 太郎",
    "男",
    dt.datetime(1990, 4, 1),
    "ベトナム",
    "AB12345678CD",
    "留学",
    "1年3月",
    "令和9年3月31日",
    "督促・催告を行い、納付相談を重ねたが納付がない(試験データ)",
]


def build(change: Callable[[Any, Any], None] | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(ROW)
    if change is not None:
        change(book, sheet)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def edit(
    data: bytes, add: dict[str, bytes] | None = None, **change: Callable[[bytes], bytes]
) -> bytes:
    """The workbook with parts added, or a part's bytes passed through a function (by name,
    with "/" written as "__" and "." as "_")."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            body = source.read(info)
            key = info.filename.replace("/", "__").replace(".", "_")
            if key in change:
                body = change[key](body)
            target.writestr(info.filename, body)
        for name, body in (add or {}).items():
            target.writestr(name, body)
    return out.getvalue()


def read(data: bytes) -> list[Record]:
    return list(xlsx_records(io.BytesIO(data)))


def refusal(data: bytes) -> TableError:
    with pytest.raises(TableError) as caught:
        read(data)
    return caught.value


def check(data: bytes) -> Verdict:
    return check_file(io.BytesIO(data), SHINJUKU, SHINJUKU.flow("provision"), ON)


def assert_my_number(data: bytes, where: str) -> None:
    error = refusal(data)
    assert error.rule == "content.my-number"
    assert where in error.message
    assert VALID not in error.message and "5678" not in error.message
    verdict = check(data)
    assert [r.rule for r in verdict.reasons] == ["content.my-number"]
    assert verdict.reasons[0].term.endswith(".my_number")


def test_a_plain_workbook_with_harmless_extras_is_read() -> None:
    def extras(book: Any, sheet: Any) -> None:
        sheet["A2"].comment = Comment("確認済み", "TEST")
        sheet.oddHeader.center.text = "滞納者情報 &P"
        book.properties.title = "試験データ"
        book.custom_doc_props.append(StringProperty(name="部署", value="滞納対策課"))

    data = build(extras)
    assert len(read(data)) == 2
    assert check(data).accepted, check(data).reasons


def test_a_comment_memo() -> None:
    def memo(book: Any, sheet: Any) -> None:
        sheet["B2"].comment = Comment(f"個人番号 {HYPHENED}", "TEST")

    assert_my_number(build(memo), "メモ")


@pytest.mark.parametrize("part", ["oddHeader", "oddFooter", "evenHeader", "firstFooter"])
def test_a_print_header_or_footer(part: str) -> None:
    def header(book: Any, sheet: Any) -> None:
        getattr(sheet, part).left.text = f"番号{HYPHENED}"

    assert_my_number(build(header), "ヘッダー")


def test_a_header_split_by_formatting_codes() -> None:
    def header(book: Any, sheet: Any) -> None:
        sheet.oddHeader.center.text = "1234-5678&B-9018"

    assert_my_number(build(header), "ヘッダー")


@pytest.mark.parametrize("field", ["title", "subject", "creator", "keywords", "description"])
def test_core_document_properties(field: str) -> None:
    def props(book: Any, sheet: Any) -> None:
        setattr(book.properties, field, f"x {HYPHENED}")

    assert_my_number(build(props), "プロパティ")


def test_custom_document_properties() -> None:
    def props(book: Any, sheet: Any) -> None:
        book.custom_doc_props.append(StringProperty(name="番号", value=VALID))

    assert_my_number(build(props), "プロパティ")


def test_app_properties() -> None:
    data = edit(
        build(),
        docProps__app_xml=lambda body: body.replace(
            b"</Properties>", f"<Company>{HYPHENED}</Company></Properties>".encode()
        ),
    )
    assert_my_number(data, "プロパティ")


def test_a_defined_name() -> None:
    def name(book: Any, sheet: Any) -> None:
        book.defined_names["番号"] = DefinedName("番号", attr_text=f'"{HYPHENED}"')

    assert_my_number(build(name), "名前の定義")


@pytest.mark.parametrize("state", ["hidden", "veryHidden", "visible"])
def test_another_sheet_hidden_or_not(state: str) -> None:
    def hidden(book: Any, sheet: Any) -> None:
        other = book.create_sheet("控え")
        other.sheet_state = state
        other["C7"] = int(VALID)

    assert_my_number(build(hidden), "another sheet")


def test_another_sheet_without_a_number_is_still_refused() -> None:
    def hidden(book: Any, sheet: Any) -> None:
        book.create_sheet("控え").sheet_state = "hidden"

    assert refusal(build(hidden)).rule == "content.xlsx.sheets"


DRAWING = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<xdr:wsDr xmlns:xdr="http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><xdr:twoCellAnchor>'
    "<xdr:sp><xdr:txBody><a:bodyPr/><a:p><a:r><a:t>1234\u20105678</a:t></a:r>"
    "<a:r><a:t>\u20109018</a:t></a:r></a:p></xdr:txBody></xdr:sp>"
    "</xdr:twoCellAnchor></xdr:wsDr>"
).encode()

THREADED = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<ThreadedComments xmlns="http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments">'
    '<threadedComment ref="A2" id="{00000000-0000-0000-0000-000000000001}">'
    f"<text>確認: {HYPHENED}</text></threadedComment></ThreadedComments>"
).encode()


def test_a_text_box_or_shape() -> None:
    assert_my_number(edit(build(), {"xl/drawings/drawing1.xml": DRAWING}), "図形")


def test_a_threaded_comment() -> None:
    data = edit(build(), {"xl/threadedComments/threadedComment1.xml": THREADED})
    assert_my_number(data, "コメント")


def test_an_unused_shared_string() -> None:
    strings = (
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" '
        f'uniqueCount="1"><si><t>{HYPHENED}</t></si></sst>'
    ).encode()
    data = edit(build(), {"xl/sharedStrings.xml": strings})
    error = refusal(data)
    assert error.rule == "content.my-number" and "outside the rows read" in error.message


def test_a_number_in_a_cell_split_into_rich_text_runs_is_found_in_its_row() -> None:
    data = edit(
        build(),
        xl__worksheets__sheet1_xml=lambda body: body.replace(
            "<is><t>試験 太郎</t></is>".encode(),
            "<is><r><t>試験 1234-5678</t></r><r><t>-9018</t></r></is>".encode(),
        ),
    )
    reason = check(data).reasons[0]  # then value.kanji-name: a name has no digits
    assert (reason.rule, reason.row, reason.column) == ("content.my-number", 2, "氏名(漢字)")


@pytest.mark.parametrize(
    ("part", "what"),
    [
        ("xl/vbaProject.bin", "macros"),
        ("xl/macrosheets/sheet1.xml", "macros"),
        ("xl/embeddings/oleObject1.bin", "embedded"),
        ("xl/activeX/activeX1.xml", "embedded"),
        ("xl/externalLinks/externalLink1.xml", "other workbooks"),
        ("xl/pivotCache/pivotCacheDefinition1.xml", "pivot"),
        ("xl/pivotTables/pivotTable1.xml", "pivot"),
        ("xl/connections.xml", "connections"),
        ("customXml/item1.xml", "custom XML"),
        ("xl/media/image1.png", "pictures"),
        ("xl/charts/chart1.xml", "charts"),
        ("xl/something/else.xml", "does not have"),
        ("extra.txt", "does not have"),
    ],
)
def test_parts_the_reader_does_not_understand_are_refused(part: str, what: str) -> None:
    error = refusal(edit(build(), {part: b"<x/>"}))
    assert error.rule == "content.xlsx.part"
    assert what in error.message and part not in error.message
    assert "値の貼り付け" in error.message  # the fix


def test_a_stored_formula_is_refused() -> None:
    def formula(book: Any, sheet: Any) -> None:
        sheet["J2"] = '=HYPERLINK("http://example.invalid","x")'

    error = refusal(build(formula))
    assert error.rule == "content.formula"
    verdict = check(build(formula))
    assert [r.rule for r in verdict.reasons] == ["content.formula"]


def test_formula_like_text_in_a_cell_is_refused_by_row_and_column() -> None:
    def text(book: Any, sheet: Any) -> None:
        sheet["J2"] = "@SUM(1+1)"
        sheet["J2"].data_type = "s"

    verdict = check(build(text))
    (reason,) = verdict.reasons
    assert (reason.rule, reason.row, reason.column) == ("content.formula", 2, HEADER[9])


def test_a_doctype_hidden_behind_a_long_comment_is_refused() -> None:
    def hide(body: bytes) -> bytes:
        # Past the first 4 KiB that were the only ones looked at before.
        return b"<!--" + b"x" * 8000 + b'--><!DOCTYPE x [<!ENTITY a "aaaa">]>' + body

    assert refusal(edit(build(), xl__workbook_xml=hide)).rule == "content.xlsx.doctype"


def test_a_macro_enabled_content_type_is_refused_whatever_the_part_names() -> None:
    data = edit(
        build(),
        **{
            "[Content_Types]_xml": lambda body: body.replace(
                b"spreadsheetml.sheet.main+xml", b"sheet.macroEnabled.main+xml"
            )
        },
    )
    error = refusal(data)
    assert error.rule == "content.xlsx.part" and "macros" in error.message


@pytest.mark.filterwarnings("ignore:Data Validation extension")
def test_a_validation_list_formula_outside_the_cells_is_no_stored_formula() -> None:
    ext = (
        b'<extLst><ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
        b'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
        b'<x14:dataValidations xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main" '
        b'count="1"><x14:dataValidation type="list"><x14:formula1><xm:f>list!$A$1:$A$3</xm:f>'
        b"</x14:formula1><xm:sqref>C2</xm:sqref></x14:dataValidation></x14:dataValidations>"
        b"</ext></extLst></worksheet>"
    )
    data = edit(
        build(), xl__worksheets__sheet1_xml=lambda body: body.replace(b"</worksheet>", ext)
    )
    assert len(read(data)) == 2
