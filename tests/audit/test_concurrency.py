"""Several processes appending at once: one total order, no fork, no gap, no duplicate."""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path
from typing import Any

import pytest

from audit.events import Draft
from audit.ledger import Ledger
from tests.audit.ledgers import T0


def _writer(path: str, worker: int, appends: int, out: Any) -> None:
    rng = random.Random(worker)
    ledger = Ledger.open(Path(path))
    given: list[tuple[str, int]] = []
    for i in range(appends):
        batch = [
            Draft(
                key=f"w{worker}-{i}-{j}",
                kind="test.append",
                time_ns=T0 + i,
                subject=f"w{worker}",
                data={"worker": worker, "i": i, "j": j},
            )
            for j in range(rng.randint(1, 4))
        ]
        # Every worker also appends the same shared key: exactly one event must result.
        batch.append(Draft(key=f"shared-{i}", kind="test.shared", time_ns=T0 + i))
        seqs = ledger.append(batch)
        given += [(d.key, s) for d, s in zip(batch, seqs, strict=True)]
    out.put((worker, given))


def _run(tmp_path: Path, workers: int, appends: int) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(path).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), w, appends, out)) for w in range(workers)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ledger = Ledger.open(path, read_only=True)
    report = ledger.verify()  # no fork, no gap: the tree and every head recompute
    events = list(ledger.events())
    assert [e.seq for e in events] == list(range(report.size))
    by_key = {e.key: e.seq for e in events}
    assert len(by_key) == len(events)  # no key twice
    for given in results.values():
        assert all(by_key[k] == s for k, s in given)  # what each writer was told is true
        own = [s for k, s in given if not k.startswith("shared-")]
        assert own == sorted(own)  # each writer's appends keep their order
    assert sum(1 for k in by_key if k.startswith("shared-")) == appends


def test_processes_appending_at_once_never_fork_or_gap(tmp_path: Path) -> None:
    _run(tmp_path, workers=3, appends=40)


@pytest.mark.slow
def test_many_processes_many_appends(tmp_path: Path) -> None:
    _run(tmp_path, workers=6, appends=400)
