"""A workbook (.xlsx) forwarded to the federations: it cannot be cut byte for byte, so each part
is written again with the same sheet, header, cell values and types (policies.splitting), the one
statement says so, each part is checked like any workbook and reaches its federation with only
its prefecture's rows.

Real pipeline steps over the chain's gateways with the dataset agreed as a workbook.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import openpyxl

from gateway import forwarding
from gateway.inbound import arrivals, holdings
from gateway.inbound.holdings import HoldingState
from gateway.outbound import approvals, pipeline
from gateway.outbound.lifecycle import State
from policies.splitting import HOW
from tests.gateway.forwarding.test_fanout import CODE, FLOW, Chain, _approve_all, chain
from tests.gateway.inbound.test_holdings_pair import AGREEMENT

__all__ = ["chain"]

HEADER = ["氏名(英字)", "住居地(地方公共団体コード)", "住居地", "性別", "生年月日",
          "在留資格変更年月日"]
TOKYO = [["TEST TARO", "131041", "東京都新宿区サンプル町1-1", "1", dt.datetime(1990, 4, 1),
          dt.datetime(2026, 10, 1)],
         ["TEST JIRO", "131016", "東京都千代田区サンプル町2-2", "1", dt.datetime(1991, 5, 2),
          dt.datetime(2026, 10, 2)]]
KANAGAWA = [["SAMPLE HANAKO", "141003", "神奈川県横浜市テスト町3-3", "2", dt.datetime(1985, 12, 24),
             dt.datetime(2026, 10, 3)]]
MISMATCH = ["EXAMPLE SHIRO", "131016", "神奈川県横浜市テスト町6-6", "1", dt.datetime(1980, 2, 3),
            dt.datetime(2026, 10, 6)]


def _workbook(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "資格喪失"
    for values in (HEADER, *rows):
        sheet.append(values)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _values(data: bytes) -> list[list[object]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    (sheet,) = book.worksheets
    assert sheet.title == "資格喪失"
    return [[c.value for c in r] for r in sheet.iter_rows()]


def _as_workbooks(chain: Chain) -> None:
    path = chain.base / "agreements" / f"{AGREEMENT}.toml"
    text = path.read_text(encoding="utf-8")
    old = 'format = "csv"\nencodings = ["cp932", "utf-8", "utf-8-sig"]\n'
    assert text.count(old) == 1
    text = text.replace(old, 'format = "xlsx"\n')
    # A workbook is never cut at the provider's scope check: rows outside it refuse the file.
    assert text.count('outside = "split"') == 1
    path.write_text(text.replace('outside = "split"', 'outside = "reject"'), encoding="utf-8")
    for side in (chain.pair.provider, chain.pair.recipient, chain.federation):
        side.reopen()


def test_a_workbook_is_forwarded_as_workbooks_each_with_only_its_members_rows(
    chain: Chain, tmp_path: Path
) -> None:
    _as_workbooks(chain)
    chain.pair.send(_workbook([TOKYO[0], KANAGAWA[0], MISMATCH, TOKYO[1]]),
                    name="status-change-2026-10.xlsx")
    (h,) = chain.pair.receive()
    assert h.status is HoldingState.RECEIVED, h.reasons
    rt = chain.central
    fanout, children = forwarding.forward(rt, h.id, FLOW, CODE)
    assert dict(fanout.withheld) == {"mismatch": 1}
    assert [(c.member, c.rows) for c in fanout.children] == [("nhi-federations-13", 2),
                                                             ("nhi-federations-14", 1)]
    assert all(t.status is State.AWAITING_APPROVAL for t in children), [t.reasons for t in
                                                                         children]
    assert {t.file_name for t in children} == {"status-change-2026-10-130001.xlsx",
                                               "status-change-2026-10-140007.xlsx"}
    statement = approvals.statement(rt, children[0])
    assert f"fanout-parts: {HOW['xlsx']}".encode() in statement
    _approve_all(chain, fanout.id)
    for child in fanout.children:
        assert pipeline.advance(rt, rt.store.get(child.transfer)).status is State.DELIVERED
    arrivals.poll_inbound(chain.federation.rt)
    (held,) = holdings.find(chain.federation.rt)
    assert held.status is HoldingState.RECEIVED, held.reasons
    with holdings.plaintext(chain.federation.rt, held) as fh:
        assert _values(fh.read()) == [HEADER, *TOKYO]  # values and types as they were
