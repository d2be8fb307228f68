"""Exit codes through the real `tachiai` program, for the failures not covered elsewhere:
69 (a partner unreachable), 70 (a bug inside a handler), 74 (storage).

No command reaches a partner directly today (deliveries and pickups are the daemon's), so 69
and 70 run the real `main()` in a real process whose handler's domain call is replaced: by a
real SFTP connection to a port that refuses it (69), and by a bug (70).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import bootstrap
from tests.conftest import ROOT, tachiai_command

# `tachiai transfers list` whose first step (loading the runtime) runs BODY instead.
RUNNER = """\
import sys
from pathlib import Path
from gateway import cli
from gateway.cli import transfers
from gateway.config.routes import SftpEndpoint
from gateway.transports.sftp import put_small

def replaced(args, **_options):
{body}

transfers.runtime_of = replaced
sys.exit(cli.main(sys.argv[1:]))
"""


def run_with(body: str, *argv: str) -> subprocess.CompletedProcess[str]:
    code = RUNNER.format(body="\n".join("    " + line for line in body.splitlines()))
    return subprocess.run([sys.executable, "-c", code, "transfers", "list", *argv],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def tachiai(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tachiai_command(), *argv], capture_output=True, text=True,
                          timeout=60)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config(tmp_path: Path) -> Path:
    bootstrap.init(tmp_path / "gw", demo=True)
    return tmp_path / "gw" / "tachiai.toml"


# -- 69 -----------------------------------------------------------------------------------------


def test_a_partner_refusing_the_connection_exits_69(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = closed_port()
    result = run_with(
        f"endpoint = SftpEndpoint(host='127.0.0.1', port={port}, user='partner', "
        f"key_file=Path({str(key)!r}), host_keys=(), remote_dir='/inbox', timeout_seconds=5)\n"
        "put_small(endpoint, 'probe', b'')"
    )
    assert result.returncode == 69, result.stderr
    assert f"tachiai: SFTP to 127.0.0.1:{port} failed" in result.stderr
    assert "next: the transfer stays queued and is retried" in result.stderr
    assert "Traceback" not in result.stderr


# -- 70 -----------------------------------------------------------------------------------------


def test_a_bug_in_a_handler_exits_70_with_a_message_and_no_traceback() -> None:
    result = run_with("raise ZeroDivisionError('an unexpected fault')")
    assert result.returncode == 70, result.stderr
    assert "tachiai: internal error: ZeroDivisionError" in result.stderr
    assert "please report this" in result.stderr
    assert "--verbose" in result.stderr  # how to see where it happened
    assert "Traceback" not in result.stderr


def test_a_bug_in_a_handler_shows_its_traceback_with_verbose() -> None:
    result = run_with("raise ZeroDivisionError('an unexpected fault')", "--verbose")
    assert result.returncode == 70, result.stderr
    assert "tachiai: internal error: ZeroDivisionError" in result.stderr
    assert "Traceback" in result.stderr and "an unexpected fault" in result.stderr


# -- 74 -----------------------------------------------------------------------------------------


def test_a_state_database_that_is_a_directory_exits_74(config: Path) -> None:
    state = config.parent / "state" / "tachiai.db"
    state.mkdir(parents=True)
    result = tachiai("transfers", "list", "--config", str(config))
    assert result.returncode == 74, result.stderr
    assert "next: check free space and permissions of the state directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_ledger_that_is_a_directory_exits_74(config: Path) -> None:
    (config.parent / "state" / "ledger.db").mkdir(parents=True)
    result = tachiai("audit", "log", "--config", str(config))
    assert result.returncode == 74, result.stderr
    assert "Traceback" not in result.stderr


def test_a_state_directory_that_cannot_be_made_exits_74(config: Path) -> None:
    # A file where the state folder should be: unwritable as a folder, even for root.
    state = config.parent / "state"
    shutil.rmtree(state, ignore_errors=True)  # made by init
    state.write_bytes(b"")
    result = tachiai("transfers", "list", "--config", str(config))
    assert result.returncode == 74, result.stderr
    assert f"cannot create the state directory {state}" in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_an_unwritable_state_directory_exits_74(config: Path) -> None:
    state = config.parent / "state"
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o500)
    try:
        result = tachiai("transfers", "list", "--config", str(config))
    finally:
        state.chmod(0o700)
    assert result.returncode == 74, result.stderr


def test_a_ledger_copy_that_cannot_be_written_exits_74(config: Path, tmp_path: Path) -> None:
    # A real ledger to copy: the one `transfers list` creates on first use.
    assert tachiai("transfers", "list", "--config", str(config)).returncode == 0
    ledger = config.parent / "state" / "ledger.db"
    assert ledger.is_file()
    dest = tmp_path / "no-such-folder" / "copy.db"
    result = tachiai("audit", "copy", str(dest), "--ledger", str(ledger))
    assert result.returncode == 74, result.stderr
    assert f"cannot copy the ledger to {dest}" in result.stderr
    assert "Traceback" not in result.stderr
