"""`tachiai holdings forward` killed mid-way (kill -9 at each point of gateway.faults
FANOUT_POINTS) is finished or undone, never repeated: the next `holdings forward` (or the daemon
at start) leaves exactly one fan-out whose every child is checked, rejects the children of an
unrecorded one (`fanout.interrupted`), leaves no plaintext part behind, and one approval then
covers the whole fan-out. Before that, no part of an unfinished fan-out can be approved.

Real processes of the real CLI and daemon over the chain's gateways; every ledger verifies.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from gateway.faults import ENV, FANOUT_POINTS
from gateway.forwarding import INTENT
from gateway.runtime import Runtime
from gateway.state import fanouts
from tests.conftest import tachiai_command, wait_for
from tests.gateway.forwarding.test_fanout import CODE, FLOW, MEMBERS, ROWS, Chain, _held, chain
from tests.gateway.test_two_gateways import Gateway

__all__ = ["chain"]

pytestmark = pytest.mark.slow


def _forward(chain: Chain, holding: str, crash_at: str | None = None
             ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if crash_at:
        env[ENV] = crash_at
    return subprocess.run(
        [*tachiai_command(), "holdings", "forward", holding, "--flow", FLOW, "--split-by", CODE,
         "--json", "--config", str(chain.pair.recipient.root / "tachiai.toml")],
        capture_output=True, text=True, env=env, timeout=180)


def _cli(chain: Chain, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tachiai_command(), *args, "--config", str(chain.pair.recipient.root / "tachiai.toml")],
        capture_output=True, text=True, timeout=180)


def _on_flow(rt: Runtime) -> list[tuple[str, str]]:
    return [(t.id, t.state) for t in rt.store.list_transfers() if t.flow == FLOW]


def _staged_files(rt: Runtime) -> list[Path]:
    return [p for p in (rt.settings.state_dir / "fanouts").rglob("*") if p.is_file()]


def _finished_once(chain: Chain, holding: str, point: str, rolled_back: bool) -> None:
    """After recovery: one fan-out, every child awaiting the one decision, the rest rejected."""
    rt = chain.pair.recipient.reopen()
    (fanout,) = fanouts.by_holding(rt.store, holding)
    assert [c.member for c in fanout.children] == list(MEMBERS)
    children = {c.transfer for c in fanout.children}
    states = dict(_on_flow(rt))
    assert {states[c] for c in children} == {"awaiting_approval"}, (point, states)
    others = [t for t in states if t not in children]
    assert {states[t] for t in others} <= {"rejected"}
    for t in others:
        assert [r["rule"] for r in json.loads(rt.store.get(t).reasons)] == ["fanout.interrupted"]
    assert _staged_files(rt) == []  # no plaintext part is left behind
    kinds = [e.kind for e in rt.ledger.events()]
    assert kinds.count("fanout.created") == 1
    assert ("fanout.rolled_back" in kinds) == rolled_back
    assert ("fanout.resumed" in kinds) == (not rolled_back)
    if not rolled_back:
        assert others == []
    done = _cli(chain, "approve", fanout.id, "--key", str(chain.pair.key("yamada")))
    assert done.returncode == 0, done.stdout + done.stderr
    rt = chain.pair.recipient.reopen()
    assert {rt.store.get(c).state for c in children} == {"approved"}
    verified = _cli(chain, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


@pytest.mark.parametrize("point", FANOUT_POINTS)
def test_forward_killed_at_each_point_is_finished_or_undone_by_running_it_again(
    chain: Chain, point: str
) -> None:
    h = _held(chain, ROWS)
    crashed = _forward(chain, h.id, point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    rt = chain.pair.recipient.reopen()
    recorded = fanouts.by_holding(rt.store, h.id)
    assert len(recorded) == (1 if point in ("fanout-after-record", "fanout-after-check") else 0)
    assert len(list((rt.settings.state_dir / "fanouts").glob(f"*/{INTENT}"))) == 1
    if recorded:
        # Left unfinished, the fan-out cannot be approved in part.
        refused = _cli(chain, "approve", recorded[0].id, "--key", str(chain.pair.key("yamada")))
        assert refused.returncode != 0
        assert "approved" not in {s for _t, s in _on_flow(chain.pair.recipient.reopen())}
    again = _forward(chain, h.id)
    assert again.returncode == 0, again.stdout + again.stderr
    out = json.loads(again.stdout)
    assert [c["member"] for c in out["children"]] == list(MEMBERS)
    if recorded:
        assert out["fanout"] == recorded[0].id  # completed, not made again
    _finished_once(chain, h.id, point, rolled_back=not recorded)
    # A third run finds it done: forwarded already, nothing new made.
    before = _on_flow(chain.pair.recipient.reopen())
    third = _forward(chain, h.id)
    assert third.returncode != 0 and "forwarded on flow" in third.stderr
    assert _on_flow(chain.pair.recipient.reopen()) == before


def test_the_daemon_rolls_back_a_forward_killed_before_its_fan_out_was_recorded(
    chain: Chain,
) -> None:
    h = _held(chain, ROWS)
    crashed = _forward(chain, h.id, "fanout-after-child")
    assert crashed.returncode == -signal.SIGKILL
    (orphan,) = [t for t, _s in _on_flow(chain.pair.recipient.reopen())]
    central = Gateway(chain.pair.recipient.root)
    try:
        central.start()
        wait_for(lambda: chain.pair.recipient.reopen().store.get(orphan).state == "rejected",
                 60, "the daemon to roll the interrupted fan-out back")
        assert central.stop() == 0
    finally:
        central.stop()
    rt = chain.pair.recipient.reopen()
    assert [r["rule"] for r in json.loads(rt.store.get(orphan).reasons)] == [
        "fanout.interrupted"]
    assert fanouts.by_holding(rt.store, h.id) == [] and _staged_files(rt) == []
    assert "fanout.rolled_back" in [e.kind for e in rt.ledger.events()]
    again = _forward(chain, h.id)
    assert again.returncode == 0, again.stdout + again.stderr
    _finished_once(chain, h.id, "daemon", rolled_back=True)
