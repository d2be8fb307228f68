"""The console script's way out (gateway.cli.leave): at once, yet nothing a command wrote is
lost, and the normal exit where something may still need it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import tachiai_command


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


def test_leaving_keeps_what_was_written_to_the_buffered_streams_and_the_exit_code() -> None:
    done = _python("import sys\nfrom gateway.cli import leave\n"
                   "sys.stdout.write('o' * 200_000)\nsys.stderr.write('e' * 100)\nleave(3)")
    assert (done.returncode, len(done.stdout), done.stderr) == (3, 200_000, "e" * 100)


def test_leaving_with_another_thread_alive_waits_for_it(tmp_path: Path) -> None:
    mark = tmp_path / "written by the other thread"
    done = _python("import sys, threading, time\nfrom pathlib import Path\n"
                   "from gateway.cli import leave\n"
                   "def late():\n    time.sleep(0.3)\n    Path(sys.argv[1]).write_text('done')\n"
                   "threading.Thread(target=late).start()\nleave(4)", str(mark))
    assert done.returncode == 4, done.stderr
    assert mark.read_text() == "done"


def test_the_console_script_answers_help_usage_errors_and_failures_with_their_codes(
    tmp_path: Path
) -> None:
    command = tachiai_command()
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "COMMAND" in shown.stdout
    wrong = subprocess.run([*command, "--bogus"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "--bogus" in wrong.stderr
    missing = subprocess.run([*command, "transfers", "list", "--config",
                              str(tmp_path / "absent.toml")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 78 and "absent.toml" in missing.stderr
