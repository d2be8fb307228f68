"""The workers' side of claims: a restarted daemon takes back at once the claims its dead
workers held on this node, and leaves alone those of live processes and of other nodes; a
stopping pool gives back the claims of steps still running."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from gateway import bootstrap
from gateway.config.settings import load_settings
from gateway.runtime import Runtime
from gateway.state.lifecycles import State
from gateway.state.store import Transfer
from gateway.workers import Workers


def _runtime(tmp_path: Path) -> Runtime:
    home = tmp_path / "gw"
    bootstrap.init(home, demo=True)
    return Runtime.open(load_settings(home / "tachiai.toml"))


def _sealed(rt: Runtime, tid: str) -> None:
    rt.store.create(Transfer(id=tid, agreement="a", flow="f", recipient="r",
                             state=State.SEALED.value, file_name="x.csv", source_path="/x",
                             created_ns=1, updated_ns=1), [])


def test_claims_of_dead_workers_here_are_taken_back_and_no_others(tmp_path: Path) -> None:
    rt = _runtime(tmp_path)
    pool = Workers(rt, threading.Event(), threading.Event())
    proc = subprocess.Popen(["true"])
    proc.wait()
    owners = {
        "t-dead": f"{pool.node}:{proc.pid}:seal-0",
        "t-live": f"{pool.node}:1:seal-0",  # pid 1 is alive
        "t-other-node": f"elsewhere:{proc.pid}:seal-0",
    }
    for tid, owner in owners.items():
        _sealed(rt, tid)
        assert rt.store.claim("transfer", tid, "sealed", owner, 60)
    assert pool.release_dead() == 1
    assert rt.store.get("t-dead").claimed_by is None
    assert rt.store.get("t-live").claimed_by == owners["t-live"]
    assert rt.store.get("t-other-node").claimed_by == owners["t-other-node"]
    assert [t.id for t in rt.store.claimable([State.SEALED], pool.owner)] == ["t-dead"]
    rt.store.engine.dispose()
