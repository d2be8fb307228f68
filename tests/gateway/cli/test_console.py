"""The console script's way out (gateway.cli.leave): at once, yet nothing a command wrote is
lost, and the normal exit where something may still need it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from gateway.config.settings import load_settings
from gateway.runtime import Runtime
from tests.conftest import Demo, tachiai_command
from tests.gateway.outbound.conftest import awaiting


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


def test_leaving_with_a_standard_stream_closed_keeps_the_exit_code() -> None:
    for fd in (1, 2):
        done = subprocess.run([sys.executable, "-c", "from gateway.cli import leave\n"
                               "print('lost')\nleave(5)"],
                              capture_output=True, timeout=120, preexec_fn=_closing(fd))
        assert done.returncode == 5, (fd, done.stderr)


def _closing(fd: int) -> Callable[[], None]:
    return lambda: os.close(fd)


def test_a_reader_that_closed_the_pipe_ends_the_command_with_141() -> None:
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen([sys.executable, "-c", "import sys\nfrom gateway.cli import leave\n"
                             "sys.stdin.read(1)\nsys.stdout.write('some lines')\nleave(0)"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=buffered)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head` does once it has what it wants
    proc.stdin.write(b"x")
    proc.stdin.close()
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""


def test_a_library_whose_exit_hooks_do_work_gets_the_normal_exit(tmp_path: Path) -> None:
    ran = tmp_path / "hook ran"
    hook = ("import atexit, sys\nfrom pathlib import Path\nfrom gateway.cli import leave\n"
            "{load}atexit.register(lambda: Path(sys.argv[1]).write_text('yes'))\nleave(0)")
    done = _python(hook.format(load="import openpyxl\n"), str(ran))
    assert done.returncode == 0 and ran.read_text() == "yes"  # openpyxl cleans up at exit
    ran.unlink()
    done = _python(hook.format(load=""), str(ran))
    assert done.returncode == 0 and not ran.exists()  # nothing else waits for the exit


def test_a_command_closes_the_databases_it_opened(demo: Demo) -> None:
    # The exit closes nothing (leave): the command's runtime is closed by `main`, so a
    # gateway without a running daemon keeps no -wal file beside its databases after a write.
    rt = Runtime.open(load_settings(demo.config))
    t = awaiting(rt, 1)
    rt.flush()
    rt.close()
    state = rt.settings.state_dir
    assert sorted(p.name for p in state.glob("*-wal")) == []
    approved = demo.cli("approve", t.id, "--key", str(demo.key("suzuki")), check=True)
    assert "approval by suzuki recorded" in approved.stdout
    assert sorted(p.name for p in state.glob("*-wal")) == []
    demo.cli("audit", "checkpoint", check=True)  # a ledger and a store of its own
    assert sorted(p.name for p in state.glob("*-wal")) == []
