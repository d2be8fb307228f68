"""Benchmark `ledger`: durable appends, full verification, queries and proofs at scale.

Each figure is printed beside a raw ceiling measured in the same run on the same bytes: plain
sqlite3 inserts with the same indexes and fsync policy, plain reads of the same columns with
hashlib, plain indexed SELECTs and primary-key look-ups. Events are synthetic (no personal data).
Run alone: `python -m bench.ledger [--events N]`.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from audit.checkpoints import Checkpoint, sign
from audit.events import Draft, encode
from audit.ledger import Ledger
from audit.notes import NoteSigner
from audit.proofs import check, prove
from audit.query import Query, search
from bench.results import Figure, Params, Result, rate

NAME = "ledger"
EVENTS = 1_000_000
APPEND_EVENTS = 40_000
QUICK_EVENTS = 50_000  # the scale of a quick run (bench.run without --full)
QUICK_APPEND_EVENTS = 4_000
WRITERS = 64
RECORDER_BATCH = 100
ROUNDS = 4
BULK = 10_000  # the most the recorder flushes in one call (Store.pending's limit)
AGREEMENTS = 200  # so a query by agreement finds ~5,000 of 1,000,000 events
PEOPLE = 1_000  # so a query by person finds ~1,000
_KINDS = (
    "transfer.dropped",
    "transfer.quarantined",
    "transfer.checked",
    "approval.accepted",
    "transfer.approved",
    "transfer.sealed",
    "password.issued",
    "transfer.delivered",
)
_T0 = 1_790_000_000_000_000_000


def run(
    params: Params,
    work_dir: Path,
    *,
    events: int = EVENTS,
    append_events: int = APPEND_EVENTS,
    writers: int = WRITERS,
) -> Result:
    """Build a ledger of `events` events in `work_dir` and measure it (see the module doc)."""
    # The ledger's scale is its own, not the file benchmark's; a quick run takes a small one.
    if not params.full:
        events, append_events = min(events, QUICK_EVENTS), min(append_events, QUICK_APPEND_EVENTS)
    work_dir.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    figures += _appends(work_dir, append_events, writers)
    ledger, build_s, raw_s = _build(work_dir, events)
    figures += [
        Figure(
            "bulk.events_per_s",
            f"durable append, one writer, {BULK:,} events per call ({events:,} in all)",
            rate(events, build_s),
            "events/s",
            "build",
        ),
        Figure(
            "ceiling.bulk.rows_per_s",
            f"  ceiling: raw sqlite3 inserts of the same rows, same indexes, {BULK:,} "
            "rows/commit, synchronous=FULL",
            rate(events, raw_s),
            "rows/s",
            "build",
        ),
    ]
    figures += _verify(ledger, work_dir / "big.db", events)
    figures += _queries(ledger, work_dir / "big.db")
    figures += _proofs(ledger, work_dir / "big.db", events)
    ledger.close()
    notes = (
        f"{events:,} synthetic events ({AGREEMENTS} agreements, {PEOPLE} people, 8 events per "
        "transfer); SQLite WAL, synchronous=FULL; durable = fsynced before append returns.",
        "Ceilings do the same I/O or hashing with nothing else: no canonical encoding, no tree, "
        "no idempotency look-up, no checks.",
        "Other work on the machine slows figures and ceilings alike; compare each figure with "
        "its ceiling.",
    )
    return Result(
        NAME,
        {"events": events, "append_events": append_events, "writers": writers},
        tuple(figures),
        notes,
    )


def _drafts(start: int, count: int, rng: random.Random) -> list[Draft]:
    out = []
    for i in range(start, start + count):
        transfer, step = divmod(i, len(_KINDS))
        out.append(
            Draft(
                key=f"t-{transfer:012x}:{_KINDS[step]}",
                kind=_KINDS[step],
                time_ns=_T0 + i * 1000,
                subject=f"t-{transfer:012x}",
                agreement=f"agreement-{transfer % AGREEMENTS:03d}",
                actor=f"handler-{rng.randrange(PEOPLE):04d}",
                data={
                    "flow": "monthly",
                    "rows": rng.randrange(1, 5000),
                    "encoding": "cp932",
                    "sha256": hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
                    "witnesses_required": 1,
                },
            )
        )
    return out


def _appends(work_dir: Path, count: int, writers: int) -> list[Figure]:
    """Durable appends two ways, each beside raw sqlite3 at the same rows per commit:
    many threads appending one event per call (group commit makes the batches), and one
    writer appending RECORDER_BATCH drafts per call (as the recorder flushes its outbox).
    Ledger and ceiling take turns in ROUNDS rounds, so both see the same disk."""
    drafts = _drafts(0, count, random.Random(1))
    figures: list[Figure] = []
    for name, label, threads, per_call in (
        ("threads", f"{writers} writer threads, one event per call", writers, 1),
        ("batches", f"one writer, {RECORDER_BATCH} events per call", 1, RECORDER_BATCH),
    ):
        path = work_dir / f"append-{name}.db"
        ledger = Ledger.open(path)
        raw = _RawTable(work_dir / f"raw-{name}.db")
        seconds = raw_seconds = 0.0
        step = count // ROUNDS
        for r in range(ROUNDS):
            part = drafts[r * step : (r + 1) * step]
            commits_before = _scalar(path, "SELECT COUNT(*) FROM ledger_heads")
            seconds += _timed_appends(ledger, part, threads, per_call)
            commits = _scalar(path, "SELECT COUNT(*) FROM ledger_heads") - commits_before
            batch = max(1, round(len(part) / max(commits, 1)))
            raw_seconds += raw.insert(r * step, part, batch)
        done = ledger.size()
        commits = _scalar(path, "SELECT COUNT(*) FROM ledger_heads")
        ledger.close()
        raw.close()
        per_commit = done / max(commits, 1)
        figures += [
            Figure(
                f"append.{name}.events_per_s",
                f"durable append, {label}",
                rate(done, seconds),
                "events/s",
                "append",
            ),
            Figure(
                f"append.{name}.per_commit",
                "  events per commit (group commit)",
                per_commit,
                "events",
                "append",
            ),
            Figure(
                f"ceiling.append.{name}.rows_per_s",
                f"  ceiling: raw sqlite3 inserts, same "
                f"indexes, ~{per_commit:.0f} rows/commit, synchronous=FULL",
                rate(raw.rows, raw_seconds),
                "rows/s",
                "append",
            ),
        ]
    hashed = _hash_rate([encode(i, d) for i, d in enumerate(drafts)])
    figures.append(
        Figure(
            "ceiling.append.sha256_per_s",
            "ceiling: hashlib SHA-256 of the event bytes",
            hashed,
            "events/s",
            "append",
        )
    )
    return figures


def _timed_appends(ledger: Ledger, drafts: list[Draft], threads: int, per_call: int) -> float:
    share = len(drafts) // threads

    def writer(k: int) -> None:
        mine = drafts[k * share : (k + 1) * share]
        for i in range(0, len(mine), per_call):
            ledger.append(mine[i : i + per_call])

    workers = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    started = time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return time.perf_counter() - started


class _RawTable:
    """The ceiling: plain sqlite3 inserts of the same rows into a table with the same indexes,
    WAL and synchronous=FULL, one transaction per batch, bytes and hashes made beforehand."""

    def __init__(self, path: Path) -> None:
        self.rows = 0
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute(
            "CREATE TABLE e (seq INTEGER PRIMARY KEY, key TEXT UNIQUE, time_ns INTEGER, "
            "kind TEXT, subject TEXT, agreement TEXT, actor TEXT, body BLOB, leaf_hash BLOB)"
        )
        for cols in (
            "agreement, time_ns",
            "actor, time_ns",
            "kind, time_ns",
            "subject, seq",
            "time_ns",
        ):
            self.db.execute(f"CREATE INDEX ix_{cols.split(',')[0]} ON e ({cols})")

    def insert(self, first: int, drafts: Sequence[Draft], batch: int) -> float:
        bodies = [encode(first + i, d) for i, d in enumerate(drafts)]
        rows = [
            (
                first + i,
                d.key,
                d.time_ns,
                d.kind,
                d.subject,
                d.agreement,
                d.actor,
                b,
                hashlib.sha256(b"\x00" + b).digest(),
            )
            for i, (d, b) in enumerate(zip(drafts, bodies, strict=True))
        ]
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO e VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[i : i + batch]
            )
            self.db.execute("COMMIT")
        self.rows += len(rows)
        return time.perf_counter() - started

    def close(self) -> None:
        self.db.close()


def _hash_rate(bodies: Sequence[bytes]) -> float:
    started = time.perf_counter()
    for b in bodies:
        hashlib.sha256(b"\x00" + b).digest()
    return rate(len(bodies), time.perf_counter() - started)


def _build(work_dir: Path, count: int) -> tuple[Ledger, float, float]:
    """The big ledger, batch by batch, each batch also inserted raw (same disk, same size)."""
    rng = random.Random(2)
    ledger = Ledger.open(work_dir / "big.db")
    raw = _RawTable(work_dir / "raw-big.db")
    seconds = raw_seconds = 0.0
    for start in range(0, count, BULK):
        batch = _drafts(start, min(BULK, count - start), rng)
        started = time.perf_counter()
        ledger.append(batch)
        seconds += time.perf_counter() - started
        raw_seconds += raw.insert(start, batch, BULK)
    raw.close()
    (work_dir / "raw-big.db").unlink()
    return ledger, seconds, raw_seconds


def _verify(ledger: Ledger, path: Path, count: int) -> list[Figure]:
    report = ledger.verify()
    if report.size != count:
        raise RuntimeError(f"verified {report.size} events, built {count}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    started = time.perf_counter()
    cur = db.execute(
        "SELECT seq, body, leaf_hash, time_ns, kind, key, subject, agreement, "
        "actor FROM ledger_events ORDER BY seq"
    )
    # The two hashes a verification must compute per event: its leaf (RFC 9162 §2.1.1), and
    # about one interior node of the tree (n leaves have n - 1 nodes above them).
    node = bytes(32)
    while rows := cur.fetchmany(2048):
        for r in rows:
            leaf = hashlib.sha256(b"\x00" + r[1]).digest()
            node = hashlib.sha256(b"\x01" + node + leaf).digest()
    raw = time.perf_counter() - started
    db.close()
    return [
        Figure(
            "verify.events_per_s",
            f"full verify of {count:,} events",
            rate(count, report.seconds),
            "events/s",
            "verify",
        ),
        Figure(
            "ceiling.verify.read_hash_per_s",
            "ceiling: sqlite3 read of the same columns + two SHA-256 per event (leaf, node)",
            rate(count, raw),
            "events/s",
            "verify",
        ),
        Figure("verify.vs_ceiling", "full verify ÷ ceiling", raw / report.seconds, "×",
               "verify"),
    ]


def _queries(ledger: Ledger, path: Path) -> list[Figure]:
    figures = []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    for name, column, values in (
        ("person", "actor", [f"handler-{i:04d}" for i in range(0, PEOPLE, PEOPLE // 20)]),
        ("agreement", "agreement", [f"agreement-{i:03d}" for i in range(0, AGREEMENTS, 10)]),
    ):
        times, raws, found = [], [], []
        for value in values:
            q = Query(person=value) if name == "person" else Query(agreement=value)
            started = time.perf_counter()
            found.append(sum(1 for _ in search(ledger, q)))
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            db.execute(
                f"SELECT seq, body FROM ledger_events WHERE {column} = ? ORDER BY seq", (value,)
            ).fetchall()
            raws.append(time.perf_counter() - started)
        figures += [
            Figure(
                f"query.{name}.ms",
                f"query by {name} (median of {len(values)}, "
                f"~{statistics.median(found):,.0f} events each, parsed)",
                statistics.median(times) * 1000,
                "ms",
                "query",
            ),
            Figure(
                f"ceiling.query.{name}.ms",
                "ceiling: raw indexed SELECT of the same rows",
                statistics.median(raws) * 1000,
                "ms",
                "query",
            ),
        ]
    db.close()
    return figures


def _proofs(ledger: Ledger, path: Path, count: int) -> list[Figure]:
    signer = NoteSigner.generate("bench-ledger")
    with ledger.reader() as reader:
        root = reader.root_at(count)
    signed = sign(Checkpoint(ledger.origin or "bench", count, root, _T0), signer)
    rng = random.Random(3)
    seqs = [rng.randrange(count) for _ in range(200)]
    times = []
    for seq in seqs:
        started = time.perf_counter()
        proof = prove(ledger, seq, signed)
        times.append(time.perf_counter() - started)
        check(proof, signer.verifier())
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    started = time.perf_counter()
    for seq in seqs:
        db.execute("SELECT body FROM ledger_events WHERE seq = ?", (seq,)).fetchone()
    raw = (time.perf_counter() - started) / len(seqs)
    db.close()
    times.sort()
    return [
        Figure(
            "proof.ms",
            f"inclusion proof in a {count:,}-event ledger (median of 200)",
            statistics.median(times) * 1000,
            "ms",
            "proof",
        ),
        Figure(
            "proof.p99.ms", "inclusion proof, 99th percentile", times[197] * 1000, "ms", "proof"
        ),
        Figure(
            "ceiling.proof.ms",
            "ceiling: one raw primary-key SELECT of the event",
            raw * 1000,
            "ms",
            "proof",
        ),
    ]


def _scalar(path: Path, sql: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(sql).fetchone()[0])
    finally:
        db.close()


def main(argv: Sequence[str] | None = None) -> int:
    from bench import machine, report

    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--append-events", type=int, default=APPEND_EVENTS)
    parser.add_argument("--writers", type=int, default=WRITERS)
    parser.add_argument("--work-dir", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tachiai-bench-", dir=args.work_dir) as tmp:
        where = machine.describe(Path(tmp))
        result = run(
            Params(),
            Path(tmp) / NAME,
            events=args.events,
            append_events=args.append_events,
            writers=args.writers,
        )
    sys.stdout.write(report.table(where, [result]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
