"""What a file costs the state database besides its real work: the statements the pipeline's
steps execute, counted on the engine while one file is checked, sealed and delivered.

Each step reads what it needs once (a reply's link, the statement's rows, the approvals) in one
read transaction, reads fan-outs only on a flow to a party group, commits each durable step once
(the delivered move ends the claim in its own commit) and queues a transaction's events in one
INSERT. The bounds below are what that costs; where the pipeline cost more before, the comment
beside says how much (each of those bounds fails on it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from gateway.identity import sshsig
from gateway.identity.sshkeys import load_private_key
from gateway.outbound import approvals, pipeline
from gateway.outbound.approval_folder import ApprovalFolder
from gateway.outbound.lifecycle import State
from tests.gateway.inbound.test_holdings_pair import OTHER_ROWS, ROWS, Pair, csv_bytes, pair

__all__ = ["pair"]

OWNER = "test-node:1:worker"


class Statements:
    """Every statement the engine executes while counting (each executemany once)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def reads_of(self, table: str) -> int:
        return sum(1 for s in self.seen
                   if s.startswith("SELECT") and re.search(rf"\bFROM {table}\b", s))

    def count(self, prefix: str) -> int:
        """Statements that are `prefix` or start with it and a space (BEGIN counts read
        transactions only: a write transaction begins BEGIN IMMEDIATE)."""
        if prefix == "BEGIN":
            return self.seen.count("BEGIN")
        return sum(1 for s in self.seen if s == prefix or s.startswith(prefix + " "))


@contextmanager
def counting(engine: Engine) -> Iterator[Statements]:
    found = Statements()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        found.seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_checking_a_file_on_a_flow_that_answers_nothing_reads_no_reply_link(pair: Pair) -> None:
    with counting(pair.provider.rt.store.engine) as taken_in:
        t = pair.drop(pair.provider, csv_bytes(ROWS))
    assert t.status is State.AWAITING_APPROVAL
    assert taken_in.reads_of("transfer_links") == 0  # was 1: a link cannot matter there
    assert taken_in.reads_of("fanout_children") == 0


def test_sealing_and_delivering_a_file_reads_each_row_once_per_step(pair: Pair) -> None:
    rt = pair.provider.rt
    t = pair.drop(pair.provider, csv_bytes(ROWS))
    signature = sshsig.sign(approvals.statement(rt, rt.store.get(t.id)),
                            load_private_key(pair.key("suzuki")), approvals.APPROVAL_NAMESPACE)
    approvals.approve(rt, t.id, signature)
    approved = rt.store.get(t.id)
    assert approved.status is State.APPROVED

    # As the daemon's workers take them: claimed, sealed with the claim handed on to the
    # delivery, delivered, the spool's password erased; the ledger is flushed after, by the
    # caller (its commits are the flusher's, not the steps').
    with counting(rt.store.engine) as steps:
        done = pipeline.advance(rt, approved, owner=OWNER, flush=lambda: None,
                                hand_claims={State.SEALED: OWNER})
    rt.flush()
    assert done.status is State.DELIVERED, done.reasons

    # A link read once by the seal's statement and once by the delivery (its check, the
    # manifest and the event), never carried from one step to the next; before: 5.
    assert steps.reads_of("transfer_links") == 2
    # A flow to no party group has no fan-out: never looked up; before: 2.
    assert steps.reads_of("fanout_children") == 0
    # The statement's duplicates and the approvals, once for the seal and once for the
    # manifest.
    assert steps.reads_of("approvals") == 2
    # One read transaction per step (the seal's authorization, the delivery's reads); before:
    # 11, one per read.
    assert steps.count("BEGIN") == 2, steps.seen
    # Durable commits: the seal's claim, sealed, the delivery's intent, delivered (which
    # ends the claim: before, a fifth commit released it after the password was erased).
    assert steps.count("BEGIN IMMEDIATE") == 4
    # Events queued with their state change, one INSERT per transaction however many: sealed
    # (1 event), delivered (password.issued and transfer.delivered).
    assert steps.count("INSERT INTO pending_events") == 2
    kinds = [e.kind for e in rt.ledger.events() if e.subject == t.id]
    assert kinds[-3:] == ["transfer.sealed", "password.issued", "transfer.delivered"]
    assert not (rt.spool.folder(t.id) / "password").exists()
    assert rt.store.get(t.id).claimed_by is None
    # Every statement those steps ran (claims, compare-and-set moves, the statement's reads):
    # 18 now, 34 before.
    assert len(steps.seen) <= 20, steps.seen


def test_the_approvals_folder_reads_a_turns_statements_in_one_transaction(pair: Pair) -> None:
    rt = pair.provider.rt
    waiting = [pair.drop(pair.provider, csv_bytes(rows), name=f"status-{n}.csv")
               for n, rows in enumerate((ROWS, OTHER_ROWS, ROWS[:1]))]
    folder = ApprovalFolder(rt, rt.settings.approvals_folder)
    folder.prepare()
    with counting(rt.store.engine) as turn:
        folder.poll()
    for t in waiting:
        assert (folder.folder / t.id).read_bytes() == approvals.statement(rt, t)
    # The transfers awaiting witnesses, and for each its fan-out, link and duplicates: before,
    # a read transaction each (13 for three transfers), now one for the turn.
    assert turn.count("BEGIN") == 1, turn.seen
