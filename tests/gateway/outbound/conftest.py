"""Fixtures of the outbound tests: a runtime on the demo gateway and the daemon's approvals
folder code run in this process (a test module's own `rt` takes precedence); `awaiting` makes
a transfer wait for witnesses without a daemon, `published` also publishes its statement."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.config.settings import load_settings
from gateway.outbound.approval_folder import ApprovalFolder
from gateway.runtime import Runtime, event
from gateway.state import clock
from gateway.state.lifecycles import State
from gateway.state.rows import Transfer
from tests.conftest import AGREEMENT, FLOW, Demo


@pytest.fixture
def rt(demo: Demo) -> Iterator[Runtime]:
    runtime = Runtime.open(load_settings(demo.config))
    yield runtime
    runtime.flush()


@pytest.fixture
def folder(rt: Runtime) -> ApprovalFolder:
    found = ApprovalFolder(rt, rt.settings.approvals_folder)
    found.prepare()
    return found


def awaiting(rt: Runtime, n: int, *, state: State = State.AWAITING_APPROVAL,
             sha256: str | None = None) -> Transfer:
    """A checked transfer of file `n` in `state` (awaiting approval unless told)."""
    now = clock.now_ns()
    t = Transfer(id=f"t-{(now + n) % (1 << 48):012x}", agreement=AGREEMENT, flow=FLOW,
                 recipient="nhi-central", state=state.value, file_name=f"status-{n}.csv",
                 source_path=f"/outbox/status-{n}.csv", created_ns=now, updated_ns=now,
                 provider="isa", sender="sato", size=100 + n,
                 sha256=sha256 or f"{n:02x}" * 32, encoding="cp932", rows=2)
    rt.store.create(t, [event("transfer.checked", t)])
    return t


def published(rt: Runtime, folder: ApprovalFolder, n: int) -> Transfer:
    """A transfer of file `n` awaiting witnesses, its statement published by a folder's turn."""
    t = awaiting(rt, n)
    folder.poll()
    return t
