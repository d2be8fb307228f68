"""SIGTERM and SIGINT reach the daemon through gateway.daemon.SignalRelay: a signal that comes
while the main thread holds the lock of the event the stop sets (inside `Event.wait`) still
stops it, where a handler that set the event itself would wait for that lock for ever.

Each case runs in a child interpreter of its own with a deadline, so a handler that hangs
fails the test instead of holding up the suite."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

_DEADLINE = 120.0  # a busy 2-core machine


def _child(body: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent("""
        import os, signal, threading
        from gateway.daemon import SignalRelay

        wake = threading.Event()
        got = []

        def stop(signum):
            got.append(signum)
            wake.set()

        relay = SignalRelay(stop)
        """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=_DEADLINE)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_main_thread_holds_the_events_lock_stops_it(signum: int) -> None:
    done = _child(f"""
        relay.install(signal.SIGTERM, signal.SIGINT)
        with wake._cond:  # where the main thread is while it waits for its wake
            os.kill(os.getpid(), {int(signum)})
            for _ in range(1000):  # the handler runs between two of these bytecodes
                pass
        assert wake.wait(60), "not stopped"
        relay.close()
        print(got)
        """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"[{int(signum)}]"


def test_closing_gives_back_the_handlers_there_were() -> None:
    done = _child("""
        before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        relay.install(signal.SIGTERM, signal.SIGINT)
        assert signal.getsignal(signal.SIGTERM) == relay.handler
        relay.close()
        assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
        os.kill(os.getpid(), signal.SIGINT)  # Python's own handler again
        """)
    assert done.returncode == -signal.SIGINT, done.stderr
    assert "KeyboardInterrupt" in done.stderr


def test_many_signals_at_once_each_reach_the_thread() -> None:
    done = _child("""
        relay.install(signal.SIGTERM)
        for _ in range(50):
            relay.handler(signal.SIGTERM)
        relay.close()  # the thread reads every one before the pipe's end
        print(len(got))
        """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "50"
