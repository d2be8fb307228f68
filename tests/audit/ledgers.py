"""Synthetic ledgers for the audit tests: events shaped like the gateway's, no personal data.

Names are obviously made up (handler-NN, t-…); hashes are of counters. Helpers tamper with a
ledger file the way an attacker with file access would: sqlite3, after dropping the triggers.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from audit.checkpoints import Checkpoint, SignedCheckpoint, sign
from audit.events import Draft, encode, parse
from audit.ledger import Ledger
from audit.notes import NoteSigner
from audit.tiles import Frontier

T0 = 1_790_000_000_000_000_000  # 2026-09-21T23:13:20 JST; fixed so tests reproduce
KINDS = (
    "transfer.dropped",
    "transfer.quarantined",
    "transfer.checked",
    "approval.accepted",
    "transfer.approved",
    "transfer.sealed",
    "password.issued",
    "transfer.delivered",
)


def transfer_events(n: int, start: int = 0, agreement: str = "agreement-a") -> list[Draft]:
    """`n` events, eight per synthetic transfer, in the gateway's order and shapes."""
    out = []
    for i in range(start, start + n):
        t, step = divmod(i, len(KINDS))
        kind = KINDS[step]
        data: dict[str, Any] = {"flow": "monthly"}
        actor = None
        if kind == "transfer.checked":
            actor = f"handler-{t % 3}"
            data.update(
                sender=actor, rows=10 + t, encoding="cp932", witnesses_required=1, sha256=digest(t)
            )
        elif kind == "approval.accepted":
            actor = f"witness-{t % 2}"
            data.update(witness=actor, sha256=digest(t))
        elif kind == "transfer.quarantined":
            data.update(size=100 + t, sha256=digest(t))
        elif kind == "transfer.dropped":
            data.update(file_name=f"file-{t}.csv", owner="sender-os-user")
        out.append(
            Draft(
                key=f"t-{t:04d}:{kind}",
                kind=kind,
                time_ns=T0 + i * 1_000_000,
                subject=f"t-{t:04d}",
                agreement=agreement,
                actor=actor,
                data=data,
            )
        )
    return out


def digest(n: int) -> str:
    return hashlib.sha256(f"synthetic-file-{n}".encode()).hexdigest()


def signed_ledger(
    path: Path, sizes: list[int], signer: NoteSigner
) -> tuple[Ledger, list[SignedCheckpoint]]:
    """A ledger grown to each of `sizes` in turn, with a checkpoint signed at each size
    (kept in the ledger too, as the daemon does)."""
    ledger = Ledger.open(path)
    signed = []
    done = 0
    for size in sizes:
        ledger.append(transfer_events(size - done, done))
        done = size
        signed.append(checkpoint(ledger, signer, size))
        ledger.add_checkpoint(signed[-1])
    return ledger, signed


def checkpoint(ledger: Ledger, signer: NoteSigner, size: int) -> SignedCheckpoint:
    with ledger.reader() as reader:
        root = reader.root_at(size)
    assert ledger.origin is not None
    return sign(Checkpoint(ledger.origin, size, root, T0 + size), signer, "test")


def write_checkpoints(folder: Path, signed: list[SignedCheckpoint], signer: NoteSigner) -> Path:
    """A checkpoint folder as the daemon leaves it: latest, history, ledger.pub."""
    (folder / "history").mkdir(parents=True, exist_ok=True)
    (folder / "ledger.pub").write_text(signer.verifier().to_text() + "\n")
    (folder / "history" / "2026-09-22.checkpoints").write_text(
        "".join(s.note + "\n" for s in signed)
    )
    (folder / "checkpoint").write_text(signed[-1].note)
    return folder


def attack(path: Path, *sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run SQL on the ledger file as its owner could: drop the guards first."""
    db = sqlite3.connect(path)
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    for statement in sql:
        db.execute(statement, params) if params else db.execute(statement)
    db.commit()
    db.close()


def rewrite_from(path: Path, first: int, change: dict[str, Any]) -> None:
    """The full re-chain: change events from `first` on, then recompute every leaf hash, node
    and tree head with the project's own code, as an attacker without the signing key would,
    and delete the checkpoints kept in the ledger. Only checkpoints kept elsewhere remain."""
    db = sqlite3.connect(path)
    rows = db.execute("SELECT seq, body FROM ledger_events ORDER BY seq").fetchall()
    db.close()
    events, nodes, head = rechain(rows, first, change)
    attack(
        path,
        "DELETE FROM ledger_events",
        "DELETE FROM ledger_nodes",
        "DELETE FROM ledger_heads",
        "DELETE FROM ledger_checkpoints",
    )
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO ledger_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
    db.executemany("INSERT INTO ledger_nodes VALUES (?, ?, ?)", nodes)
    db.execute("INSERT INTO ledger_heads VALUES (?, ?, ?)", head)
    db.commit()
    db.close()


Row = tuple[Any, ...]


def rechain(
    rows: list[tuple[int, bytes]], first: int, change: dict[str, Any]
) -> tuple[list[Row], list[Row], Row]:
    """The rows of a re-chained ledger (events, nodes, the one tree head), from (seq, body)
    rows: events from `first` on get `change` in their data, every hash is recomputed."""
    events = []
    for seq, body in rows:
        e = parse(bytes(body))
        if seq >= first:
            e = parse(
                encode(
                    seq,
                    Draft(
                        key=e.key,
                        kind=e.kind,
                        time_ns=e.time_ns,
                        subject=e.subject,
                        agreement=e.agreement,
                        actor=e.actor,
                        data={**e.data, **change},
                    ),
                )
            )
        events.append(e)
    leaves = [hashlib.sha256(b"\x00" + e.body).digest() for e in events]
    frontier = Frontier()
    nodes = frontier.extend(leaves)
    event_rows: list[Row] = [
        (
            e.seq,
            e.key,
            e.time_ns,
            e.kind,
            e.subject or "",
            e.agreement or "",
            e.actor or "",
            e.body,
            leaf,
        )
        for e, leaf in zip(events, leaves, strict=True)
    ]
    return event_rows, list(nodes), (frontier.size, b"".join(frontier.hashes), T0)
