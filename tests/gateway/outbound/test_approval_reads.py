"""An approval reads what its statement is made of in one read transaction; a refusal of a
transfer that does not await witnesses, with events still pending (a daemon's folder turn
leaves them for its next regular turn), is recorded and raised at once, its events moved into
the ledger once: never appended again and again through the read transaction."""

from __future__ import annotations

import threading

import pytest

from gateway.config.settings import load_settings
from gateway.errors import StateError
from gateway.outbound import approvals
from gateway.runtime import Runtime, event
from gateway.state.lifecycles import State
from tests.conftest import Demo
from tests.gateway.outbound.conftest import awaiting

_GARBAGE = "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"


@pytest.mark.parametrize("lite", [False, True])
def test_a_refused_approval_with_events_pending_is_raised_and_flushed_once(
        demo: Demo, lite: bool) -> None:
    rt = Runtime.open(load_settings(demo.config), lite=lite)
    try:
        delivered = awaiting(rt, 1, state=State.DELIVERED)
        rt.store.record([event("transfer.note", delivered, {"n": 1})])  # left pending
        outcome: list[BaseException] = []

        def approve() -> None:
            try:
                approvals.approve(rt, delivered.id, _GARBAGE, flush=True)
            except BaseException as exc:  # handed to the test's thread
                outcome.append(exc)

        worker = threading.Thread(target=approve, daemon=True)
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), "the refusal never returned"
        assert len(outcome) == 1 and isinstance(outcome[0], StateError), outcome
        assert rt.store.pending() == []
        kinds = [e.kind for e in rt.ledger.events() if e.subject == delivered.id]
        assert kinds.count("transfer.note") == 1
        assert kinds.count("approval.refused") == 1
    finally:
        rt.close()
