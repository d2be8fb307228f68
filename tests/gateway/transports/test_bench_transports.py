"""Smoke test of `bench.transports` at tiny sizes: every figure is there and finite.

Speed is never asserted (see bench/); this proves the benchmark still runs its real servers and
tools end to end, and that the memory figure is measured.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from bench import transports
from bench.results import Params
from tests.gateway.conftest import needs_sshd

pytestmark = [
    pytest.mark.slow,
    needs_sshd,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("sftp", "age", "7zz")), reason="needs sftp, age, 7zz"
    ),
]


def test_transports_benchmark_reports_every_figure(tmp_path: Path) -> None:
    result = transports.run(Params(), tmp_path / "t", size_bytes=4 << 20, rss_bytes=8 << 20)
    keys = {f.key for f in result.figures}
    assert {
        "sftp.ratio",
        "seal.ceiling.mb_per_s",
        "seal.age.vs_cli",
        "seal.zip_store.vs_7zz",
        "memory.peak_rss_mib",
    } <= keys
    for fig in result.figures:
        assert math.isfinite(fig.value) and fig.value > 0, fig.key
    assert result.figure("memory.peak_rss_mib").value < 200
