"""`tachiai init`: the demo, and the demo's receiving gateway beside it, through the real CLI."""

from __future__ import annotations

import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Demo, tachiai_command, wait_for


def _init(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tachiai_command(), "init", *args], capture_output=True, text=True)


def test_a_demo_recipient_needs_a_demo_and_never_overwrites(tmp_path: Path) -> None:
    missing = _init(str(tmp_path / "recv"), "--demo-recipient", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "--demo" in missing.stderr
    assert not (tmp_path / "recv" / "tachiai.toml").exists()
    both = _init(str(tmp_path / "x"), "--demo", "--demo-recipient", str(tmp_path))
    assert both.returncode == 2 and "not allowed with" in both.stderr


@pytest.mark.slow
def test_the_demo_recipient_receives_what_the_demo_sends(demo: Demo, tmp_path: Path) -> None:
    made = _init(str(tmp_path / "recv"), "--demo-recipient", str(demo.root))
    assert made.returncode == 0, made.stderr
    assert "holdings terms ID" in made.stdout  # the next steps name the commands to run
    again = _init(str(tmp_path / "recv"), "--demo-recipient", str(demo.root))
    assert again.returncode == 2 and "already exists" in again.stderr
    recv = Demo(tmp_path / "recv")
    takahashi = str(demo.key("takahashi"))
    demo.start()
    recv.start()
    try:
        sample = demo.root / "demo" / "samples" / "status-change-2026-10.csv"
        demo.drop(sample.name, sample.read_bytes())
        (waiting,) = demo.wait_state("awaiting_approval")
        demo.cli("approve", waiting["id"], "--key", str(demo.key("suzuki")), check=True)
        demo.wait_state("delivered")
        (holding,) = wait_for(lambda: recv.json("holdings", "list"), 120, "the holding")
        assert (holding["transfer"], holding["handlers"]) == (waiting["id"], ["takahashi"])
        recv.cli("holdings", "terms", holding["id"], "--key", takahashi, check=True)
        opened = recv.cli("holdings", "open", holding["id"], "--key", takahashi, check=True)
        path = Path(opened.stdout.split(" into ", 1)[1].split(" (", 1)[0])
        assert path.read_bytes() == sample.read_bytes()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.is_relative_to(recv.root / "handlers" / "takahashi")
        # Step 5 as printed, the holding's id in place of ID: it runs as written.
        (step5,) = [line for line in made.stdout.splitlines() if line.lstrip().startswith("5.")]
        command = shlex.split(step5.split(":", 1)[1].replace(" ID ", f" {holding['id']} "))
        certified = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert certified.returncode == 0, certified.stderr
        shown = recv.json("holdings", "show", holding["id"])
        assert shown["state"] == "deleted"
        assert [c["method"] for c in shown["certificates"]] == ["deleted after processing"]
        assert recv.cli("audit", "verify").returncode == 0
    finally:
        recv.stop()
