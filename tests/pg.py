"""A real PostgreSQL server on 127.0.0.1 for the tests, started with initdb + pg_ctl, and stopped.

One server per test session (session fixture `postgres`), a fresh database per test (`pg_url`).
The server listens on a free private port and on a unix socket under its own temporary folder,
with trust authentication (one role, PASSWORD_ROLE, must give a password): nothing here is
reachable from outside.
As root, PostgreSQL refuses to run; the server then runs as the `postgres` system user that the
Debian package creates (or, when missing, a system user `tachiai-pg` made here). Tests skip
only when the binaries are missing (scripts/test installs them).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

SUPERUSER = "postgres"  # the bootstrap superuser of the test cluster
ROLE = "tachiai"  # the role the tests' ledgers use: owns its databases, not a superuser
PASSWORD_ROLE = "tachiai_pw"  # the one role that must give a password (SCRAM) over TCP
_counter = itertools.count()


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: `pg_config --bindir`, or the newest Debian install."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], check=True, capture_output=True, text=True
        ).stdout.strip()
        if (Path(out) / "initdb").is_file():
            return Path(out)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    return Path(found[-1]).parent if found else None


needs_postgres = pytest.mark.skipif(
    bin_dir() is None,
    reason="PostgreSQL is not installed (scripts/test installs the Debian package postgresql)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _system_user() -> str:
    """A non-root user to run the server as: Debian's `postgres`, else one made for the tests."""
    for name in ("postgres", "tachiai-pg"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "tachiai-pg"],
        check=True,
        capture_output=True,
    )
    return "tachiai-pg"


class PostgresServer:
    """One private PostgreSQL cluster: its folder, port and socket; `url` for each database."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="tachiai-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.user: str | None = None  # the system user the server runs as (None: ourselves)
        if os.geteuid() == 0:
            self.user = _system_user()
            pw = pwd.getpwnam(self.user)
            self.sockets.mkdir()
            for path in (self.root, self.sockets):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            os.chmod(self.root, 0o755)
        else:
            self.sockets.mkdir()

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        result = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({result.returncode}): {result.stderr}{log}"
            )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",  # a test cluster: durability of the catalog files is not tested here
        )
        # Trust, except for PASSWORD_ROLE: the first matching line wins.
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.sockets} -c fsync=off "
            "-c max_connections=100 -c shared_buffers=32MB"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",  # wait until it accepts connections
            "-t",
            "60",
            "start",
        )
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {ROLE} LOGIN")

    def stop(self) -> None:
        if self.data.exists():
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={database} user={user}"

    def admin(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection (autocommit), as a database administrator has."""
        return psycopg.connect(self.dsn(database), autocommit=True)

    def create_database(self, owner: str = ROLE) -> str:
        """A fresh, empty database owned by `owner`; returns its name."""
        name = f"t{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {owner} STRATEGY FILE_COPY")
        return name

    def url(self, database: str, user: str = ROLE) -> str:
        """The SQLAlchemy URL of `database` as `user` over TCP (no password: trust)."""
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server; skips when PostgreSQL is not installed."""
    bindir = bin_dir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/test installs the package postgresql)")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(postgres: PostgresServer) -> str:
    """The name of a fresh database for one test, owned by the test role."""
    return postgres.create_database()


@pytest.fixture
def pg_url(postgres: PostgresServer, pg_database: str) -> str:
    """The URL of a fresh database for one test (`postgresql+psycopg://tachiai@…`)."""
    return postgres.url(pg_database)
