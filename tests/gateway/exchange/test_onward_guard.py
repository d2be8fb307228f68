"""The onward provision guard (再提供の禁止) at the gateway: rows received under
isa-nhi-status-loss and held by nhi-central may go on to nhi-federations (and contractors), and
back to their provider, but a copy to anyone else — reordered, re-encoded or as a workbook — is
refused, naming the agreement and the count and never a row. The key stays in its 0600 file."""

from __future__ import annotations

import datetime as dt
import io
import os
import sqlite3
import stat
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest

from gateway import bootstrap
from gateway.config.settings import load_settings
from gateway.errors import ConfigError, InputError
from gateway.exchange.onward_guard import forget, guard, inspect_onward, key_path, remember
from gateway.runtime import Runtime
from tests.conftest import COLUMNS

AGREEMENT = "isa-nhi-status-loss"
HEADER = COLUMNS
# Obviously synthetic people; real municipality codes with valid check digits.
ROWS = [
    ("TEST TARO", "131041", "東京都新宿区サンプル町1-1", "1", "1990/04/01", "令和8年10月1日"),
    ("SAMPLE HANAKO", "141003", "神奈川県横浜市テスト区2-2", "女", "1985-12-24", "R8.10.15"),
    ("DUMMY JIRO", "011002", "北海道札幌市テスト町3-3", "1", "19751103", "2026/10/20"),
]
UNRELATED = [
    ("EXAMPLE SABURO", "131041", "東京都新宿区サンプル町9-9", "1", "1991/05/02", "令和8年10月2日"),
    ("PLACEHOLDER YUKO", "141003", "神奈川県横浜市テスト区8-8", "2", "1986-01-25", "R8.10.16"),
]
# Every value that must never reach the database, the key file's neighbours or a message.
SECRETS = [v for row in ROWS for v in (row[0], row[2])] + ["test taro", "1990-04-01"]


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]], encoding: str) -> bytes:
    return ("\r\n".join(",".join(r) for r in [header, *rows]) + "\r\n").encode(encoding)


def xlsx_bytes(header: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in [header, *rows]:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def reordered(rows: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    order = [5, 3, 0, 4, 2, 1]
    return [HEADER[i] for i in order], [[r[i] for i in order] for r in rows]


def as_excel(row: Sequence[str]) -> list[object]:
    """A row as someone retyping it into Excel would hold it: numbers and dates typed."""
    birth = {
        "1990/04/01": dt.datetime(1990, 4, 1),
        "1985-12-24": dt.datetime(1985, 12, 24),
        "19751103": dt.datetime(1975, 11, 3),
    }[row[4]]
    return [row[2], row[0].title(), int(row[1]), birth, row[5], row[3]]


COPIES = {
    "the same csv": (csv_bytes(HEADER, ROWS, "cp932"), "csv"),
    "reordered, utf-8 with a signature": (csv_bytes(*reordered(ROWS), "utf-8-sig"), "csv"),
    "full-width, lower case and padded, cp932": (
        csv_bytes(HEADER, [[f" {full_width(c.lower())}\u3000" for c in r] for r in ROWS], "cp932"),
        "csv",
    ),
    "a workbook, reordered and retyped": (
        xlsx_bytes(
            [
                "住居地",
                "氏名(英字)",
                "住居地(地方公共団体コード)",
                "生年月日",
                "在留資格変更年月日",
                "性別",
            ],
            [as_excel(r) for r in ROWS],
        ),
        "xlsx",
    ),
    "only name and birth date, in a workbook": (
        xlsx_bytes(["No.", "Name", "生年月日"], [[i, r[0], r[4]] for i, r in enumerate(ROWS, 1)]),
        "xlsx",
    ),
}


@pytest.fixture
def rt(tmp_path: Path) -> Runtime:
    bootstrap.init(tmp_path / "gw", demo=True)
    return Runtime.open(load_settings(tmp_path / "gw" / "tachiai.toml"))


@pytest.fixture
def held(rt: Runtime) -> Runtime:
    """The gateway after it received ROWS under the agreement, held by nhi-central."""
    got = remember(
        rt,
        "h-test-1",
        AGREEMENT,
        "monthly",
        "nhi-central",
        io.BytesIO(csv_bytes(HEADER, ROWS, "cp932")),
        "csv",
    )
    assert (got.rows, got.skipped) == (3, 0)
    return rt


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_a_copy_to_a_party_outside_the_chain_is_refused(held: Runtime, copy: str) -> None:
    data, fmt = COPIES[copy]
    for to in ("mhlw-insurance", "municipalities", "example-corp"):
        reason = guard(held, io.BytesIO(data), fmt, to)
        assert reason is not None, (copy, to)
        assert reason.rule == "onward.forbidden"
        assert reason.term == f"{AGREEMENT}/onward.chain.nhi-central"
        assert reason.clause is not None and "記1(3)" in reason.clause
        assert AGREEMENT in reason.message
        assert "3 of the 3 rows" in reason.message
        assert to in reason.message
        assert not any(s.lower() in str(reason).lower() for s in SECRETS)


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_a_copy_along_the_chain_is_allowed_and_counted(held: Runtime, copy: str) -> None:
    data, fmt = COPIES[copy]
    assert guard(held, io.BytesIO(data), fmt, "nhi-federations") is None
    # 記1(3): 国保中央会が業務を委託する事業者 may have it too.
    assert guard(held, io.BytesIO(data), fmt, "example-contractor", to_contractor=True) is None
    # Back to the provider (e.g. a 疑義照会) passes it to nobody new.
    assert guard(held, io.BytesIO(data), fmt, "isa") is None
    result = inspect_onward(held, io.BytesIO(data), fmt, "nhi-federations")
    assert result.matched == {AGREEMENT: 3} and result.reasons == ()


def test_unrelated_rows_with_the_same_columns_pass(held: Runtime) -> None:
    for data, fmt in [
        (csv_bytes(HEADER, UNRELATED, "cp932"), "csv"),
        (xlsx_bytes(*reordered(UNRELATED)), "xlsx"),
    ]:
        result = inspect_onward(held, io.BytesIO(data), fmt, "mhlw-insurance")
        assert result.reasons == () and result.matched == {} and result.rows == 2


def test_one_copied_row_among_unrelated_ones_is_counted(held: Runtime) -> None:
    data = csv_bytes(HEADER, [*UNRELATED, ROWS[1]], "utf-8")
    reason = guard(held, io.BytesIO(data), "csv", "mhlw-insurance")
    assert reason is not None and "1 of the 3 rows" in reason.message


def test_the_same_name_with_another_birth_date_passes(held: Runtime) -> None:
    data = csv_bytes(["氏名(英字)", "生年月日"], [[ROWS[0][0], "1990-04-02"]], "utf-8")
    assert guard(held, io.BytesIO(data), "csv", "mhlw-insurance") is None


def test_a_contractor_is_refused_where_the_holder_may_not_use_one(rt: Runtime) -> None:
    remember(
        rt,
        "h-isa",
        AGREEMENT,
        "monthly",
        "isa",
        io.BytesIO(csv_bytes(HEADER, ROWS, "cp932")),
        "csv",
    )
    reason = guard(rt, io.BytesIO(csv_bytes(HEADER, ROWS, "cp932")), "csv", "x", to_contractor=True)
    assert reason is not None and reason.term == f"{AGREEMENT}/onward.contractors"


def test_rows_of_an_agreement_no_longer_loaded_are_refused(rt: Runtime) -> None:
    remember(
        rt,
        "h-old",
        "retired-agreement",
        "monthly",
        "nhi-central",
        io.BytesIO(csv_bytes(HEADER, ROWS, "cp932")),
        "csv",
    )
    reason = guard(rt, io.BytesIO(csv_bytes(HEADER, ROWS, "utf-8")), "csv", "nhi-federations")
    assert reason is not None and "no longer loaded" in reason.message
    assert reason.term == "retired-agreement/onward"


def test_an_unreadable_outbound_file_fails_closed(held: Runtime) -> None:
    reason = guard(held, io.BytesIO(b"PK\x03\x04not a workbook"), "xlsx", "nhi-federations")
    assert reason is not None and reason.rule == "onward.unreadable"


def test_an_unreadable_received_file_is_an_input_error(rt: Runtime) -> None:
    with pytest.raises(InputError) as caught:
        remember(
            rt,
            "h-bad",
            AGREEMENT,
            "monthly",
            "nhi-central",
            io.BytesIO(b"TEST TARO\xff\xfe\x81"),
            "csv",
        )
    assert "TEST TARO" not in caught.value.diagnostics()


def test_nothing_received_means_nothing_to_guard_and_no_key(rt: Runtime) -> None:
    data = csv_bytes(HEADER, ROWS, "cp932")
    assert guard(rt, io.BytesIO(data), "csv", "mhlw-insurance") is None
    assert not key_path(rt).exists()


def test_the_database_and_messages_hold_no_row_value_and_not_the_key(held: Runtime) -> None:
    guard(held, io.BytesIO(COPIES["the same csv"][0]), "csv", "mhlw-insurance")
    key = key_path(held).read_bytes()
    state = held.settings.state_dir
    dumped = b""
    for path in state.rglob("*"):
        if path.is_file() and path != key_path(held):
            dumped += path.read_bytes()
    with sqlite3.connect(held.settings.database_path) as db:
        dumped += "\n".join(db.iterdump()).encode()
    for value in SECRETS:
        for encoding in ("utf-8", "cp932"):
            assert value.encode(encoding) not in dumped, value
    assert key not in dumped and key.hex().encode() not in dumped


def test_the_key_file_is_private_and_32_bytes(held: Runtime) -> None:
    path = key_path(held)
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_size == 32
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["fingerprint.key"]  # no temporary left


def test_a_lost_or_swapped_key_is_refused_not_replaced(held: Runtime) -> None:
    path = key_path(held)
    data = COPIES["the same csv"][0]
    original = path.read_bytes()
    path.unlink()
    with pytest.raises(ConfigError, match="missing"):
        guard(held, io.BytesIO(data), "csv", "mhlw-insurance")
    with pytest.raises(ConfigError, match="missing"):
        remember(held, "h-2", AGREEMENT, "monthly", "nhi-central", io.BytesIO(data), "csv")
    assert not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, bytes(32))
    os.close(fd)
    with pytest.raises(ConfigError, match="not the key"):
        guard(held, io.BytesIO(data), "csv", "mhlw-insurance")
    path.write_bytes(original)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="other users"):
        guard(held, io.BytesIO(data), "csv", "mhlw-insurance")
    path.chmod(0o600)
    assert guard(held, io.BytesIO(data), "csv", "mhlw-insurance") is not None


def test_remember_is_idempotent_and_forget_drops_a_holding(held: Runtime) -> None:
    def stored() -> int:
        with sqlite3.connect(held.settings.database_path) as db:
            return int(db.execute("SELECT count(*) FROM onward_fingerprints").fetchone()[0])

    before = stored()
    assert before == 6  # three whole rows and three names with birth dates
    remember(
        held,
        "h-test-1",
        AGREEMENT,
        "monthly",
        "nhi-central",
        io.BytesIO(csv_bytes(HEADER, ROWS, "cp932")),
        "csv",
    )
    assert stored() == before
    assert forget(held, "h-test-1") == before
    assert stored() == 0
    assert guard(held, io.BytesIO(COPIES["the same csv"][0]), "csv", "mhlw-insurance") is None


def test_a_copy_on_a_second_worksheet_is_refused(held: Runtime) -> None:
    """A workbook with more than one sheet is refused (content.xlsx.sheets), fail closed."""
    book = openpyxl.Workbook()
    book.active.append(list(HEADER))
    for row in UNRELATED:
        book.active.append(list(row))
    hidden = book.create_sheet("Sheet2")
    for row in [HEADER, *ROWS]:
        hidden.append(list(row))
    out = io.BytesIO()
    book.save(out)
    assert guard(held, io.BytesIO(out.getvalue()), "xlsx", "mhlw-insurance") is not None
