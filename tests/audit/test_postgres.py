"""The ledger on a real PostgreSQL server (tests/pg.py): creation and appends from several
processes at once, the append-only guards, tampering by a superuser, the one checkpoint signer,
and the audit CLI on a PostgreSQL URL."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.engine import make_url

from audit import proofs, schema
from audit.checkpointer import Checkpointer
from audit.checkpoints import read_places
from audit.errors import LedgerIntegrityError, LedgerStorageError
from audit.events import Draft
from audit.ledger import Ledger
from audit.locks import SignerLock
from audit.notes import NoteSigner
from audit.query import Query, search
from tests.audit.ledgers import (
    T0,
    checkpoint,
    digest,
    rechain,
    transfer_events,
    write_checkpoints,
)
from tests.conftest import tachiai_command, wait_for
from tests.pg import PASSWORD_ROLE, ROLE, PostgresServer, needs_postgres

pytestmark = needs_postgres

TABLES = [t.name for t in schema.TABLES]


def _db(url: str) -> str:
    name = make_url(url).database
    assert name is not None
    return name


def run_audit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TACHIAI_CONFIG"}
    return subprocess.run(
        [*tachiai_command(), "audit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- creating the schema from several processes at once ------------------------------------------


def _creator(jobs: Any, barrier: Any, out: Any) -> None:
    while (url := jobs.get()) is not None:
        barrier.wait(timeout=60)  # all four connect at the same moment
        try:
            Ledger.connect(url).close()
            out.put("ok")
        except Exception as exc:
            out.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_four_processes_create_the_schema_at_once_20_of_20(postgres: PostgresServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers = 4
    barrier, out = ctx.Barrier(workers), ctx.Queue()
    jobs = [ctx.Queue() for _ in range(workers)]
    procs = [ctx.Process(target=_creator, args=(jobs[w], barrier, out)) for w in range(workers)]
    for p in procs:
        p.start()
    try:
        for _ in range(20):
            url = postgres.url(postgres.create_database())
            for q in jobs:
                q.put(url)
            results = [out.get(timeout=120) for _ in range(workers)]
            assert results == ["ok"] * workers
            with postgres.admin(_db(url)) as conn:
                assert conn.execute("SELECT count(*) FROM ledger_meta").fetchone() == (1,)
                triggers = conn.execute(
                    "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal"
                ).fetchall()
            assert sorted(triggers) == sorted((t, "A") for _, t, _ in schema.POSTGRES_TRIGGERS)
    finally:
        for q in jobs:
            q.put(None)
        for p in procs:
            p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * workers


# -- appends from several processes: one order, no duplicate -------------------------------------


def _appender(url: str, worker: int, events: int, out: Any) -> None:
    rng = random.Random(worker)
    ledger = Ledger.connect(url)
    given: list[tuple[str, int]] = []
    i = 0
    while i < events:
        batch = [
            Draft(
                key=f"w{worker}-{j}",
                kind="test.append",
                time_ns=T0 + j,
                subject=f"w{worker}",
                data={"worker": worker, "j": j},
            )
            for j in range(i, min(events, i + rng.randint(1, 5)))
        ]
        seqs = ledger.append(batch)
        if rng.random() < 0.2:
            # A retry after a lost answer: the same keys give the same seqs, nothing new.
            assert ledger.append(batch) == seqs
        given += [(d.key, s) for d, s in zip(batch, seqs, strict=True)]
        i += len(batch)
    ledger.close()
    out.put((worker, given))


@pytest.mark.slow
def test_four_processes_append_250_each_in_one_order(pg_url: str, tmp_path: Path) -> None:
    Ledger.connect(pg_url).close()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_appender, args=(pg_url, w, 250, out)) for w in range(4)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ledger = Ledger.connect(pg_url, read_only=True)
    report = ledger.verify()
    assert report.size == 1000
    events = list(ledger.events())
    assert [e.seq for e in events] == list(range(1000))
    by_key = {e.key: e.seq for e in events}
    assert len(by_key) == 1000  # no key twice
    for given in results.values():
        assert all(by_key[k] == s for k, s in given)  # what each writer was told is true
        seqs = [s for _, s in given]
        assert seqs == sorted(seqs) and len(seqs) == 250  # each writer's order kept
    ledger.close()
    # The auditor's command on the server's URL (the plain postgresql:// form).
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    r = run_audit(tmp_path, "verify", "--ledger", plain)
    assert r.returncode == 0, r.stderr
    assert "the ledger is intact: 1000 events" in r.stdout


# -- the append-only guards ---------------------------------------------------------------------


@pytest.fixture
def ledger(pg_url: str) -> Iterator[Ledger]:
    ledger = Ledger.connect(pg_url)
    ledger.append(transfer_events(300))
    yield ledger
    ledger.close()


@pytest.mark.parametrize("superuser", [False, True], ids=["owner", "superuser"])
def test_update_delete_truncate_are_refused_by_the_server(
    postgres: PostgresServer, pg_database: str, ledger: Ledger, superuser: bool
) -> None:
    # A row in every table, so that each row trigger has something to refuse.
    ledger.add_checkpoint(checkpoint(ledger, NoteSigner.generate("t"), 300))
    dsn = postgres.dsn(pg_database, user="postgres" if superuser else ROLE)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if superuser:
            # A replica-mode session skips ordinary triggers; ours fire ALWAYS.
            conn.execute("SET session_replication_role = replica")
        for table in TABLES:
            for sql in (
                f"UPDATE {table} SET {_first_column(table)} = {_first_column(table)}",
                f"DELETE FROM {table}",
                f"TRUNCATE {table}",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                    conn.execute(sql)
    assert ledger.verify().size == 300


def _first_column(table: str) -> str:
    return next(iter(schema.metadata.tables[table].columns)).name


def test_the_daemons_role_after_the_revoke_appends_and_cannot_drop_a_guard(
    postgres: PostgresServer, pg_database: str, ledger: Ledger
) -> None:
    with postgres.admin() as admin:
        admin.execute("CREATE ROLE tachiai_daemon LOGIN")
    try:
        with psycopg.connect(postgres.dsn(pg_database, user=ROLE), autocommit=True) as owner:
            for sql in schema.postgres_daemon_grants("tachiai_daemon"):
                owner.execute(sql)
        daemon = Ledger.connect(postgres.url(pg_database, user="tachiai_daemon"))
        assert daemon.append(transfer_events(8, 300)) == list(range(300, 308))
        daemon.add_checkpoint(checkpoint(daemon, NoteSigner.generate("t"), 308))
        daemon.close()
        with psycopg.connect(postgres.dsn(pg_database, user="tachiai_daemon")) as conn:
            for sql in (
                "UPDATE ledger_events SET kind = 'x'",
                "DROP TRIGGER ledger_events_append_only ON ledger_events",
                "ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_append_only",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)
                conn.rollback()
        assert ledger.verify().size == 308
    finally:
        with postgres.admin(pg_database) as admin:
            admin.execute("DROP OWNED BY tachiai_daemon")
        with postgres.admin() as admin:
            admin.execute("DROP ROLE tachiai_daemon")


def test_a_password_in_the_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(LedgerStorageError) as caught:
        Ledger.connect("postgresql://tachiai:hunter2-secret@127.0.0.1:1/ledger")
    assert "hunter2" not in str(caught.value) and "password file" in str(caught.value)


def test_an_unreachable_server_is_a_storage_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # a port nobody listens on
        url = f"postgresql://tachiai@127.0.0.1:{s.getsockname()[1]}/ledger"
        ledger = Ledger.connect(url, read_only=True)
        with pytest.raises(LedgerStorageError, match="cannot read the ledger"):
            ledger.verify()
        with pytest.raises(LedgerStorageError, match="cannot read the ledger"):
            ledger.size()


def test_the_password_comes_from_a_file(
    postgres: PostgresServer, pg_database: str, tmp_path: Path
) -> None:
    with postgres.admin() as admin:
        admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD 'ledger-test-password'")
    try:
        url = postgres.url(pg_database, user=PASSWORD_ROLE)
        with pytest.raises(LedgerStorageError, match="password"):
            Ledger.connect(url, read_only=True).size()
        (tmp_path / "password").write_text("ledger-test-password\n")
        ledger = Ledger.connect(url, read_only=True, password_file=tmp_path / "password")
        with ledger.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_user").scalar() == PASSWORD_ROLE
        ledger.close()
    finally:
        with postgres.admin() as admin:
            admin.execute(f"DROP ROLE {PASSWORD_ROLE}")


def test_an_empty_password_file_is_refused(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "password").write_text("\n")
    with pytest.raises(LedgerStorageError, match="is empty"):
        Ledger.connect(pg_url, password_file=tmp_path / "password")


def test_queries_and_proofs_read_a_postgres_ledger(ledger: Ledger) -> None:
    checked = list(search(ledger, Query(kind="transfer.checked")))
    assert [e.seq for e in checked] == list(range(2, 300, 8))
    family = list(search(ledger, Query(kind="transfer.*")))
    assert len(family) == sum(1 for e in ledger.events() if e.kind.startswith("transfer."))
    by_person = list(search(ledger, Query(person="handler-1", sha256=digest(1))))
    assert [e.seq for e in by_person] == [10]
    signer = NoteSigner.generate("tachiai-test-ledger")
    proof = proofs.prove(ledger, 123, checkpoint(ledger, signer, 300))
    assert proofs.check(proof, signer.verifier()).event.seq == 123


# -- tampering by a database superuser ----------------------------------------------------------


def test_a_row_changed_by_a_superuser_past_the_guards_is_named(
    postgres: PostgresServer, pg_database: str, ledger: Ledger, pg_url: str
) -> None:
    with postgres.admin(pg_database) as conn:
        conn.execute("ALTER TABLE ledger_events DISABLE TRIGGER ledger_events_append_only")
        conn.execute(
            "UPDATE ledger_events SET body = convert_to(replace(convert_from(body, 'UTF8'), "
            "'handler-1', 'handler-0'), 'UTF8') WHERE seq = 82"
        )
    with pytest.raises(LedgerIntegrityError) as caught:
        Ledger.connect(pg_url, read_only=True).verify()
    assert caught.value.seq == 82
    # The next writer to connect puts the guard back (and says so in its log).
    Ledger.connect(pg_url).close()
    with postgres.admin(pg_database) as conn:
        state = conn.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = 'ledger_events_append_only'"
        ).fetchone()
    assert state == ("A",)


def test_a_superusers_full_rechain_is_caught_by_the_signed_checkpoints(
    postgres: PostgresServer, pg_database: str, ledger: Ledger, pg_url: str, tmp_path: Path
) -> None:
    signer = NoteSigner.generate("tachiai-test-ledger")
    signed = [checkpoint(ledger, signer, 300)]
    ledger.add_checkpoint(signed[0])
    places = write_checkpoints(tmp_path / "checkpoints", signed, signer)
    with postgres.admin(pg_database) as conn, conn.transaction():
        rows = conn.execute("SELECT seq, body FROM ledger_events ORDER BY seq").fetchall()
        events, nodes, head = rechain(rows, 150, {"rows": 0})
        for table in TABLES:
            conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        for table in ("ledger_events", "ledger_nodes", "ledger_heads", "ledger_checkpoints"):
            conn.execute(f"DELETE FROM {table}")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO ledger_events VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", events
            )
            cur.executemany("INSERT INTO ledger_nodes VALUES (%s, %s, %s)", nodes)
            cur.execute("INSERT INTO ledger_heads VALUES (%s, %s, %s)", head)
        for table, trigger, _ in schema.POSTGRES_TRIGGERS:
            conn.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger}")
    reader = Ledger.connect(pg_url, read_only=True)
    assert reader.verify().size == 300  # consistent in itself: only signatures can tell
    notes, _ = read_places([places])
    with pytest.raises(LedgerIntegrityError, match="size 300"):
        reader.verify(checkpoints=notes, key=signer.verifier())
    # Nor does the signer go on from a rewritten ledger.
    with pytest.raises(LedgerIntegrityError, match="rewritten"):
        Checkpointer(reader, signer).resume(notes)
    reader.close()


# -- the one checkpoint signer ------------------------------------------------------------------


def test_one_signer_at_a_time_and_a_lost_connection_frees_it(
    postgres: PostgresServer, ledger: Ledger
) -> None:
    signer = NoteSigner.generate("tachiai-test-ledger")
    first = Checkpointer(ledger, signer, SignerLock(ledger.engine))
    second = Checkpointer(ledger, signer, SignerLock(ledger.engine))
    assert first.next(T0) is not None  # takes the lock, signs 300
    ledger.append(transfer_events(10, 300))
    assert second.next(T0) is None  # the lock is taken: does not sign
    assert first.lock is not None and second.lock is not None
    with postgres.admin() as admin:  # the first signer's connection dies
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND objid = %s",
            (schema.SIGNER_LOCK_KEY & 0xFFFFFFFF,),
        )
    assert not first.lock.held()
    taken = wait_for(lambda: second.next(T0 + 1), what="the second signer to take over")
    assert taken.checkpoint.size == 310
    assert first.next(T0 + 2) is None  # lost the lock; the other holds it now
    second.lock.release()
    ledger.append(transfer_events(5, 310))
    signed = first.next(T0 + 3)  # resumes from the other's checkpoint of 310
    assert signed is not None and signed.checkpoint.size == 315


def _hold_signer_lock(url: str, ready: Any) -> None:
    ledger = Ledger.connect(url, create=False)
    lock = SignerLock(ledger.engine)
    ready.put(lock.acquire())
    signal.pause()  # holds it until killed


@pytest.mark.slow
def test_a_signer_killed_with_sigkill_is_taken_over(pg_url: str, ledger: Ledger) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    holder = ctx.Process(target=_hold_signer_lock, args=(pg_url, ready))
    holder.start()
    try:
        assert ready.get(timeout=60) is True
        signer = NoteSigner.generate("tachiai-test-ledger")
        standby = Checkpointer(ledger, signer, SignerLock(ledger.engine))
        assert standby.next(T0) is None  # another process holds the lock
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=30)
        signed = wait_for(lambda: standby.next(T0), what="the standby to sign")
        assert signed.checkpoint.size == 300
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join()


# -- the auditor's copy -------------------------------------------------------------------------


def test_copy_of_a_postgres_ledger_verifies_against_its_checkpoints(
    pg_url: str, ledger: Ledger, tmp_path: Path
) -> None:
    signer = NoteSigner.generate("tachiai-test-ledger")
    signed = [checkpoint(ledger, signer, 300)]
    ledger.add_checkpoint(signed[0])
    ledger.append(transfer_events(20, 300))
    signed.append(checkpoint(ledger, signer, 320))
    ledger.add_checkpoint(signed[1])
    write_checkpoints(tmp_path / "checkpoints", signed[:1], signer)
    (tmp_path / "ledger.pub").write_text(signer.verifier().to_text() + "\n")
    r = run_audit(tmp_path, "copy", "--ledger", pg_url, "copy.db")
    assert r.returncode == 0 and "320 events" in r.stdout, r.stderr
    r = run_audit(tmp_path, "copy", "--ledger", pg_url, "copy.db")
    assert r.returncode == 2 and "already exists" in r.stderr
    r = run_audit(
        tmp_path,
        "verify",
        "--ledger",
        "copy.db",
        "--checkpoint",
        "checkpoints",
        "--public-key",
        "ledger.pub",
    )
    assert r.returncode == 0, r.stderr
    assert "intact: 320 events" in r.stdout and "signed: 2 checkpoint(s)" in r.stdout
    copy = Ledger.open(tmp_path / "copy.db", snapshot=True)
    assert copy.origin == ledger.origin
    assert [e.body for e in copy.events()] == [e.body for e in ledger.events()]
    copy.close()
    assert not list(tmp_path.glob(".copy.db.*"))  # no partial file left
