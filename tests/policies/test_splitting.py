"""Party groups keyed by 地方公共団体コード and the split of a file among their members.

What must hold whatever the file: every data row goes to exactly one member or is withheld with
a reason; a part holds only rows whose code names its member; a part is the header's bytes and
its rows' bytes exactly as they were (encoding, quoting, line endings); a row whose code and
address disagree, or whose code names nobody, goes to nobody.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import local_governments
from policies.errors import PolicyFileError
from policies.groups import GroupRegistry
from policies.splitting import split_csv, split_file
from policies.xlsxfile import xlsx_records
from tests.policies.bundled import agreement, table

AGREEMENT = agreement("isa-nhi-status-loss")
DATASET = AGREEMENT.datasets["status-change"]
CODE = "住居地(地方公共団体コード)"
HEADER = "氏名(英字),住居地(地方公共団体コード),住居地,性別,生年月日,在留資格変更年月日"
ON = dt.date(2026, 11, 2)
# Synthetic addresses for the codes the tests use; the prefecture comes first, as on a 住民票.
PLACES = {
    "131016": "東京都千代田区サンプル町1-1",
    "131041": "東京都新宿区サンプル町2-2",
    "141003": "神奈川県横浜市テスト町3-3",
    "141011": "神奈川県横浜市鶴見区テスト町4-4",
    "011002": "北海道札幌市サンプル町5-5",
    "271004": "大阪府大阪市テスト町6-6",
    "012025": "北海道函館市サンプル町7-7",  # a municipality with no 委任状 in the sample
}


def prefecture_of(code: str) -> str | None:
    found = local_governments.lookup(code) or local_governments.city_of_ward(code)
    return found.prefecture if found is not None else None


def row(i: int, code: str, place: str | None = None) -> str:
    return f"TEST PERSON{i},{code},{place or PLACES[code]},1,1990/04/01,2026/10/{1 + i % 28:02d}"


def csv(rows: list[str], *, eol: str = "\r\n", encoding: str = "cp932") -> bytes:
    return (eol.join([HEADER, *rows]) + eol).encode(encoding)


def split(data: bytes, group: str = "nhi-federations") -> Any:
    return split_csv(data, AGREEMENT, DATASET, group, CODE, ON, prefecture_of=prefecture_of)


# -- groups ---------------------------------------------------------------------------------------


def test_every_prefecture_has_its_federation_and_codes_name_members() -> None:
    federations = AGREEMENT.groups["nhi-federations"]
    assert len(federations.members) == 47
    assert {m.code[:2] for m in federations.members} == {f"{n:02d}" for n in range(1, 48)}
    tokyo = AGREEMENT.party_of("nhi-federations", "131016")
    assert tokyo is not None and tokyo.party == "nhi-federations-13"
    assert AGREEMENT.party_of("nhi-federations", "１３１０１６") == tokyo  # full-width digits
    assert AGREEMENT.party_of("nhi-federations", "131017") is None  # wrong check digit
    ward = AGREEMENT.party_of("municipalities", "141011")  # 鶴見区 counts as 横浜市
    assert ward is not None and ward.party == "municipalities-141003"
    assert AGREEMENT.party_of("municipalities", "012025") is None  # 函館市 is no member


def test_members_are_parties_and_inherit_the_onward_chain() -> None:
    member = AGREEMENT.parties["nhi-federations-13"]
    assert member.kind == "federation"
    assert AGREEMENT.role_of("nhi-federations-13") == "nhi-federations"
    assert AGREEMENT.acts_as("municipalities-131016", "municipalities")
    assert not AGREEMENT.acts_as("nhi-central", "nhi-federations")
    assert "nhi-federations-13" in AGREEMENT.onward_chain["nhi-central"]
    assert "municipalities-131016" in AGREEMENT.onward_chain["nhi-federations-14"]
    assert AGREEMENT.onward_chain["municipalities-131016"] == ()


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda t: t["groups"]["nhi-federations"].update(key="city"), "groups.nhi-federations.key"),
        (lambda t: t["groups"]["nhi-federations"]["members"][0].update(code="131016"),
         "groups.nhi-federations.members[0].code"),
        (lambda t: t["groups"]["municipalities"]["members"][0].update(code="131017"),
         "groups.municipalities.members[0].code"),
        (lambda t: t["groups"]["municipalities"]["members"].append(
            {"code": "131016", "name": "千代田区"}), "groups.municipalities.members[8].code"),
        (lambda t: t["groups"]["nhi-federations"].update(mismatch="guess"),
         "groups.nhi-federations.mismatch"),
        (lambda t: t.update(colour="red"), "colour"),
        (lambda t: t["groups"]["municipalities"]["members"][0].update(code="133001"),
         "groups.municipalities.members[0].code"),  # a fitting check digit, but no such body
        (lambda t: t["groups"]["municipalities"]["members"][4].update(area_codes=["271021"]),
         "groups.municipalities.members[4].area_codes"),  # 大阪市's ward listed for 横浜市
    ],
)
def test_broken_groups_files_name_the_key(mutate: Any, key: str) -> None:
    data = table("isa-nhi-status-loss.groups.toml")
    mutate(data)
    with pytest.raises(PolicyFileError) as caught:
        GroupRegistry.from_mapping(data, "groups.toml")
    assert key in [p.key for p in caught.value.problems]


def test_a_group_that_is_no_party_is_refused() -> None:
    data = table("isa-nhi-status-loss.groups.toml")
    data["groups"]["nhi-prefectures"] = data["groups"].pop("nhi-federations")
    plain = agreement("isa-nhi-status-loss", groups=False)
    with pytest.raises(ValueError, match="not a party"):
        plain.with_groups(GroupRegistry.from_mapping(data, "groups.toml"))


# -- splitting ------------------------------------------------------------------------------------


def test_a_national_file_splits_into_one_part_per_prefecture_byte_for_byte() -> None:
    rows = [row(0, "131016"), row(1, "141003"), row(2, "131041"), row(3, "011002")]
    data = csv(rows)
    result = split(data)
    assert not result.refused and result.rows == 4 and result.withheld == {}
    by = {p.member.party: p for p in result.parts}
    assert list(by) == ["nhi-federations-01", "nhi-federations-13", "nhi-federations-14"]
    assert by["nhi-federations-13"].data == csv([rows[0], rows[2]])
    assert by["nhi-federations-13"].rows == 2
    assert by["nhi-federations-14"].data == csv([rows[1]])
    assert by["nhi-federations-01"].data == csv([rows[3]])
    assert result.encoding == "cp932"


def test_original_encoding_line_endings_and_quoting_are_kept() -> None:
    quoted = 'TEST "Q" PERSON,131016,"東京都千代田区サンプル町1-1, 2階",1,1990/04/01,2026/10/01'
    quoted = quoted.replace('TEST "Q" PERSON', '"TEST ""Q"" PERSON"')
    data = ("\ufeff" + HEADER + "\n" + quoted + "\n" + row(1, "141003")).encode("utf-8")
    result = split(data)
    assert not result.refused, result.reasons
    tokyo, kanagawa = result.parts
    header = ("\ufeff" + HEADER + "\n").encode("utf-8")
    assert tokyo.data == header + (quoted + "\n").encode("utf-8")
    assert kanagawa.data == header + row(1, "141003").encode("utf-8")  # no final line ending


def test_a_code_of_no_member_and_a_code_address_mismatch_are_withheld_never_guessed() -> None:
    rows = [
        row(0, "131016"),
        row(1, "131016", PLACES["141003"]),  # a Tokyo code, a Kanagawa address
        row(2, "131017", PLACES["131016"]),  # a code with a wrong check digit
        row(3, "141003"),
    ]
    result = split(csv(rows))
    assert result.withheld == {"mismatch": 1, "no-member": 1}
    assert [(p.member.party, p.rows) for p in result.parts] == [
        ("nhi-federations-13", 1), ("nhi-federations-14", 1)]
    assert all(b"131017" not in p.data for p in result.parts)
    assert sum(p.data.count(PLACES["141003"].encode("cp932")) for p in result.parts) == 1


def test_a_group_that_refuses_mismatches_refuses_the_whole_file() -> None:
    data = table("isa-nhi-status-loss.groups.toml")
    data["groups"]["nhi-federations"]["mismatch"] = "refuse"
    strict = agreement("isa-nhi-status-loss", groups=False).with_groups(
        GroupRegistry.from_mapping(data, "groups.toml"))
    rows = [row(0, "131016"), row(1, "131016", PLACES["141003"])]
    result = split_csv(csv(rows), strict, DATASET, "nhi-federations", CODE, ON,
                       prefecture_of=prefecture_of)
    assert result.refused and result.parts == ()
    (reason,) = result.reasons
    assert reason.rule == "split.mismatch" and reason.row == 3
    assert "東京都" not in reason.message and "TEST" not in reason.message


def test_municipalities_without_a_delegation_are_withheld() -> None:
    rows = [row(0, "131016"), row(1, "012025"), row(2, "141011"), row(3, "141003")]
    result = split(csv(rows), "municipalities")
    assert result.withheld == {"no-member": 1}
    assert [(p.member.party, p.rows) for p in result.parts] == [
        ("municipalities-131016", 1), ("municipalities-141003", 2)]
    # 渋谷区 is a member of the group but filed no 委任状 in the sample registry.
    result = split(csv([row(0, "131016"), f"X,131130,{PLACES['131016']},1,1990/04/01,"
                        "2026/10/01"]), "municipalities")
    assert result.withheld == {"not-delegated": 1}


def test_what_cannot_be_split_is_refused_with_its_rule() -> None:
    assert split(csv([row(0, "131016")]), "nhi-central").reasons[0].rule == "split.group"
    result = split_csv(csv([row(0, "131016")]), AGREEMENT, DATASET, "nhi-federations", "住居地",
                       ON, prefecture_of=prefecture_of)
    assert result.reasons[0].rule == "split.column"
    result = split_csv(csv([row(0, "131016")]), AGREEMENT, DATASET, "nhi-federations", CODE, ON)
    assert result.reasons[0].rule == "split.tie"  # no list of local governments: fail closed
    workbook = AGREEMENT.datasets["status-change"].__class__(
        "book", "xlsx", (), DATASET.columns, "forbidden")
    assert split_csv(b"PK", AGREEMENT, workbook, "nhi-federations", CODE, ON,
                     prefecture_of=prefecture_of).reasons[0].rule == "split.format"
    assert split(b"").reasons[0].rule == "split.empty"
    assert split("\x82".encode("latin-1") * 3).reasons[0].rule == "split.encoding"


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.sampled_from(sorted(PLACES)), max_size=25),
    mismatched=st.sets(st.integers(0, 24)),
    eol=st.sampled_from(["\r\n", "\n"]),
    encoding=st.sampled_from(["cp932", "utf-8"]),
    group=st.sampled_from(["nhi-federations", "municipalities"]),
)
def test_every_row_goes_to_its_own_member_exactly_once_or_is_withheld(
    codes: list[str], mismatched: set[int], eol: str, encoding: str, group: str
) -> None:
    other = {"13": "141003", "14": "011002", "01": "271004", "27": "131016"}
    rows = [row(i, c, PLACES[other[c[:2]]] if i in mismatched else None)
            for i, c in enumerate(codes)]
    data = csv(rows, eol=eol, encoding=encoding)
    head = (HEADER + eol).encode(encoding)
    result = split(data, group)
    assert not result.refused
    assert result.rows == len(rows)
    assert sum(p.rows for p in result.parts) + result.withheld_total == len(rows)
    sent: list[bytes] = []
    for part in result.parts:
        assert part.data.startswith(head)
        lines = part.data[len(head):].split(eol.encode(encoding))[:-1]
        assert len(lines) == part.rows
        for line in lines:
            code = line.decode(encoding).split(",")[1]
            assert AGREEMENT.party_of(group, code) == part.member  # only its own rows
        sent.extend(lines)
    originals = [r.encode(encoding) for r in rows]
    assert all(s in originals for s in sent) and len(set(sent)) == len(sent)
    assert result.withheld.get("mismatch", 0) == len(
        [i for i in mismatched if i < len(rows)
         and AGREEMENT.party_of(group, codes[i]) is not None
         and (group == "nhi-federations" or codes[i] != "131130")])


# -- workbooks (.xlsx): each part written again, values and types kept ----------------------------

WORKBOOK = dataclasses.replace(DATASET, format="xlsx", encodings=())


def xlsx(rows: list[list[Any]], title: str = "資格喪失") -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = title
    sheet.append(list(DATASET.header))
    for values in rows:
        sheet.append(values)
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str) and cell.value.startswith("="):
                cell.data_type = "s"  # text the sender typed, not a formula
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xrow(i: int, code: str, place: str | None = None) -> list[Any]:
    return [f"TEST PERSON{i}", code, place or PLACES[code], "1", dt.datetime(1990, 4, 1),
            dt.datetime(2026, 10, 1 + i % 28)]


def cells(data: bytes) -> tuple[str, list[list[Any]]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    (sheet,) = book.worksheets
    return sheet.title, [[c.value for c in r] for r in sheet.iter_rows()]


def test_a_workbook_is_split_into_workbooks_with_the_same_sheet_values_and_types() -> None:
    rows = [xrow(0, "131016"), xrow(1, "141003"), xrow(2, "131041", PLACES["141003"]),
            xrow(3, "131041"), [*xrow(4, "271004"), None, None]]
    rows[3][3] = 2  # a number stays a number, text stays text
    rows[1][0] = "=HYPERLINK(\"x\")"  # text that looks like a formula stays text
    data = xlsx(rows)
    result = split_file(data, AGREEMENT, WORKBOOK, "nhi-federations", CODE, ON,
                        prefecture_of=prefecture_of)
    assert not result.refused and result.rows == 5 and result.withheld == {"mismatch": 1}
    expected = {"nhi-federations-13": [rows[0], rows[3]], "nhi-federations-14": [rows[1]],
                "nhi-federations-27": [rows[4][:6]]}
    assert [(p.member.party, p.rows) for p in result.parts] == [
        (m, len(r)) for m, r in expected.items()]
    for part in result.parts:
        title, got = cells(part.data)
        assert title == "資格喪失"
        assert got == [list(DATASET.header), *expected[part.member.party]]
        assert [type(v) for r in got[1:] for v in r] == [
            type(v) for r in expected[part.member.party] for v in r]
    book = openpyxl.load_workbook(io.BytesIO(result.parts[1].data))
    assert book.worksheets[0]["A2"].data_type == "s"  # never a formula
    # The same rows give the same bytes: a part's digest can be listed, and derived again.
    again = split_file(data, AGREEMENT, WORKBOOK, "nhi-federations", CODE, ON,
                       prefecture_of=prefecture_of)
    assert [p.sha256 for p in again.parts] == [p.sha256 for p in result.parts]
    # A part's rows are checked like any workbook's: they read back as the original's records.
    original = list(xlsx_records(io.BytesIO(data)))
    tokyo = list(xlsx_records(io.BytesIO(result.parts[0].data)))
    assert [r.cells for r in tokyo] == [original[0].cells, original[1].cells,
                                        original[4].cells]


def test_what_is_not_a_workbook_or_names_nobody_is_refused_or_withheld() -> None:
    assert split_file(b"PK", AGREEMENT, WORKBOOK, "nhi-federations", CODE, ON,
                      prefecture_of=prefecture_of).reasons[0].rule.startswith("content.xlsx")
    assert split_file(csv([row(0, "131016")]), AGREEMENT, WORKBOOK, "nhi-federations", CODE,
                      ON, prefecture_of=prefecture_of).refused
    result = split_file(xlsx([xrow(0, "131016"), xrow(1, "999999", "東京都")]), AGREEMENT,
                        WORKBOOK, "nhi-federations", CODE, ON, prefecture_of=prefecture_of)
    assert result.withheld == {"no-member": 1} and [p.rows for p in result.parts] == [1]
    two = openpyxl.Workbook()
    two.create_sheet("hidden")
    out = io.BytesIO()
    two.save(out)
    assert split_file(out.getvalue(), AGREEMENT, WORKBOOK, "nhi-federations", CODE, ON,
                      prefecture_of=prefecture_of).reasons[0].rule == "content.xlsx.sheets"


@settings(max_examples=15, deadline=None)
@given(
    codes=st.lists(st.sampled_from(sorted(PLACES)), max_size=12),
    mismatched=st.sets(st.integers(0, 11)),
    group=st.sampled_from(["nhi-federations", "municipalities"]),
)
def test_every_workbook_row_goes_to_its_own_member_exactly_once_or_is_withheld(
    codes: list[str], mismatched: set[int], group: str
) -> None:
    other = {"13": "141003", "14": "011002", "01": "271004", "27": "131016"}
    rows = [xrow(i, c, PLACES[other[c[:2]]] if i in mismatched else None)
            for i, c in enumerate(codes)]
    result = split_file(xlsx(rows), AGREEMENT, WORKBOOK, group, CODE, ON,
                        prefecture_of=prefecture_of)
    assert not result.refused and result.rows == len(rows)
    assert sum(p.rows for p in result.parts) + result.withheld_total == len(rows)
    sent: list[list[Any]] = []
    for part in result.parts:
        _title, got = cells(part.data)
        assert got[0] == list(DATASET.header) and len(got) == part.rows + 1
        for values in got[1:]:
            assert AGREEMENT.party_of(group, values[1]) == part.member  # only its own rows
        sent.extend(got[1:])
    # Each row sent at most once, its values and types unchanged (each row's name is its own).
    assert all(s in rows for s in sent) and len({s[0] for s in sent}) == len(sent)
