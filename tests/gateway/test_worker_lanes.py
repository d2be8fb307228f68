"""The sizes of the daemon's lanes (gateway.workers): sealing has `[gateway] workers` threads;
intake as many, and with check processes at least one more than there are processes, so one
thread takes in a file while every process checks another."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from gateway.config.settings import load_settings
from gateway.runtime import Runtime
from gateway.workers import Workers
from tests.conftest import Demo


@pytest.mark.parametrize(("workers", "processes", "intake"), [
    (2, 2, 3),  # the defaults: both processes check while the third thread takes in
    (1, 0, 1),  # no check processes: each thread checks in its own thread
    (4, 0, 4),
    (4, 2, 4),  # enough threads already
    (1, 3, 4),
])
def test_intake_has_a_thread_more_than_the_check_processes(
        demo: Demo, workers: int, processes: int, intake: int) -> None:
    settings = dataclasses.replace(load_settings(demo.config), workers=workers,
                                   check_processes=processes)
    rt = Runtime.open(settings)
    try:
        lanes = Workers(rt, threading.Event(), threading.Event())  # not started: no threads
        assert len(lanes.intake.owners) == intake
        assert len(lanes.sealing.owners) == workers
        assert len(set(lanes.intake.owners)) == intake  # each thread claims as itself
        assert (lanes.checks.size if lanes.checks is not None else 0) == processes
    finally:
        rt.store.engine.dispose()
