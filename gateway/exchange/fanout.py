"""A fan-out's child on either side: its rows belong to its member, and the witnesses saw it.

Seed 000 記1(3) and seed 004 (区画ごとのアクセス制御): a file on a flow to a party group
(国保連合会, 市町村) goes to one member only and holds only that member's rows. Both halves ask
`member_refusal` on exactly the bytes concerned — the sender at its check step, the recipient on
arrival — and both read the fan-out lines of the approval statement here. Never names a row.
"""

from __future__ import annotations

import datetime as dt
from typing import BinaryIO

from policies import local_governments
from policies.agreement import Agreement, Flow
from policies.reasons import Reason
from policies.splitting import split_file

__all__ = ["CHILD_PREFIX", "FANOUT_KEYS", "child_line", "member_refusal", "prefecture_of"]

#: The statement lines of a fan-out: its id, its parent's digest and its withheld rows, then one
#: line per child ("child-PARTY: transfer=ID rows=N size=N sha256=HEX file-name=NAME").
FANOUT_KEYS = ("fanout", "fanout-parent-sha256", "fanout-rows", "fanout-withheld")
CHILD_PREFIX = "child-"


def child_line(
    member: str, transfer: str, rows: int, size: int, sha256: str, file_name: str
) -> tuple[str, str]:
    """One child's line of a fan-out statement: its key and value."""
    return (f"{CHILD_PREFIX}{member}",
            f"transfer={transfer} rows={rows} size={size} sha256={sha256} file-name={file_name}")


def prefecture_of(code: str) -> str | None:
    """The prefecture (都道府県名) a local government code lies in, from the 総務省 list (a ward of
    a designated city, 行政区, by its city); None when the list does not know the code."""
    found = local_governments.lookup(code) or local_governments.city_of_ward(code)
    return None if found is None else found.prefecture


def member_refusal(
    agreement: Agreement, flow: Flow, group: str, member: str, stream: BinaryIO, on: dt.date
) -> Reason | None:
    """Why a file of `flow` may not go to (or be held by) `member` of `group`, or None when
    every data row's code names that member and none would be withheld."""
    found = agreement.groups.get(group)
    if found is None or found.member(member) is None:
        return agreement.reason(
            "fanout.member", f"flow {flow.id} goes to the party group {group}; {member} is not "
            f"one of its members. Send it with `tachiai holdings forward HOLDING --flow "
            f"{flow.id} --split-by COLUMN`, which makes one file per member",
            f"flows.{flow.id}.to")
    column = _code_column(agreement, flow)
    if column is None:
        return agreement.reason(
            "fanout.column", f"the dataset of flow {flow.id} has no local government code "
            "column to check the rows against", f"datasets.{flow.dataset}.columns")
    stream.seek(0)
    result = split_file(stream.read(), agreement, agreement.dataset_of(flow), group, column, on,
                       prefecture_of=prefecture_of)
    if result.refused:
        return result.reasons[0]
    strays = result.withheld_total + sum(p.rows for p in result.parts if p.member.party != member)
    if strays:
        return agreement.reason(
            "fanout.foreign-rows", f"{strays} of {result.rows} rows do not belong to {member} "
            "(another member's code, a code of no member, or a code that disagrees with its "
            "address); a member receives only its own rows — split the file again",
            f"flows.{flow.id}.to")
    return None


def _code_column(agreement: Agreement, flow: Flow) -> str | None:
    dataset = agreement.dataset_of(flow)
    codes = [c.name for c in dataset.columns if c.type == "local-government-code"]
    return codes[0] if len(codes) == 1 else None
