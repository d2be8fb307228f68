"""A real daemon (`tachiai run`) with `[database] url` on a real PostgreSQL: files go through
the whole path (drop, checks, approval, seal, delivery), the state and the ledger live on the
server (no SQLite file is made), `audit verify` with the signed checkpoints passes, and
`tachiai nodes` shows the daemon by its node name.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GOOD_ROWS, Demo, csv_bytes, needs_7zz, wait_for
from tests.pg import needs_postgres

pytestmark = [pytest.mark.slow, needs_postgres]


def _on_postgres(demo: Demo, url: str) -> None:
    text = demo.config.read_text(encoding="utf-8")
    text = text.replace("[gateway]\n", '[gateway]\nnode_name = "gw-a"\n', 1)
    demo.config.write_text(text + f'\n[database]\nurl = "{url}"\n', encoding="utf-8")


def _in_state(demo: Demo, state: str, count: int) -> list[dict[str, Any]]:
    return list(
        wait_for(
            lambda: (lambda ts: ts if len(ts) >= count else None)(demo.transfers(state)),
            120,
            f"{count} transfer(s) in state {state}",
        )
    )


@needs_7zz
def test_a_daemon_on_postgres_delivers_verifies_and_is_listed(
    demo: Demo, pg_url: str, tmp_path: Path
) -> None:
    _on_postgres(demo, pg_url)
    # Each file its own bytes: the same bytes twice would meet the duplicate notice.
    files = {f"pg-{n}.csv": csv_bytes(GOOD_ROWS * (n + 1)) for n in range(3)}
    demo.start()
    for name, data in files.items():
        demo.drop(name, data)
    for transfer in _in_state(demo, "awaiting_approval", len(files)):
        statement = demo.cli("transfers", "statement", str(transfer["id"]), check=True).stdout
        signature = demo.sign_with_ssh_keygen(statement.encode(), "suzuki")
        demo.cli("approve", str(transfer["id"]), "--signature", str(signature), check=True)
    delivered = _in_state(demo, "delivered", len(files))

    for done in delivered:
        password = Path(done["password_path"]).read_text().strip()
        out = tmp_path / str(done["id"])
        subprocess.run(
            ["7zz", "x", "-y", f"-o{out}", f"-p{password}", str(done["delivered_path"])],
            check=True,
            capture_output=True,
        )
        name = str(done["file_name"])
        assert hashlib.sha256((out / name).read_bytes()).digest() == hashlib.sha256(
            files[name]
        ).digest()

    listed = wait_for(lambda: demo.json("nodes") or None, 60, "a heartbeat")
    assert [(n["node"], n["stale"]) for n in listed] == [("gw-a", False)]
    assert "gw-a" in demo.cli("nodes", check=True).stdout

    assert demo.stop() == 0  # signs a last checkpoint of everything appended
    kinds = [line.split()[2] for line in demo.cli("audit", "log", check=True).stdout.splitlines()]
    assert kinds.count("transfer.delivered") == len(files)
    verified = demo.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "checkpoint" in verified.stdout
    assert not demo.state_db.exists() and not demo.ledger.exists(), "both live on the server"
