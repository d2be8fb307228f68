"""Smoke test of the benchmark runner: tiny parameters, every figure present, files delivered.

Speed is never asserted here (see bench/); this only proves the benchmark still runs the whole
pipeline and reports what its table promises.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import pyzipper

from bench import pipeline, run, startup, wholepath, workers
from bench.results import Figure, Params, Result, merged
from tests.pg import needs_postgres

EXPECTED = {
    "e2e.files_per_s",
    "e2e.mb_per_s",
    "e2e.seconds",
    "e2e.ms_per_file",
    "e2e.cpu_pct",
    *(
        f"{stage}.{what}"
        for stage in ("intake", "approve", "seal")
        for what in ("files_per_s", "ms_per_file", "p95_ms", "cpu_ms_per_file", "share_pct")
    ),
    "intake.mb_per_s",
    "seal.mb_per_s",
    "approve.sign_ms",
    "ceiling.raw.mb_per_s",
    "ceiling.raw.files_per_s",
    "ceiling.zip_store.mb_per_s",
    "ceiling.zip_deflate.mb_per_s",
    "component.check.mb_per_s",
    "component.check_distinct.mb_per_s",
    "ceiling.decode_split.mb_per_s",
    "ratio.check",
    "component.ledger.events_per_file",
    *(
        f"durable.{stage}.{what}"
        for stage in ("intake", "approve", "seal")
        for what in ("state_commits", "ledger_commits", "fsyncs")
    ),
    "durable.total",
    "ratio.raw",
    "ratio.zip",
    "ratio.seal_vs_zip",
}


def test_pipeline_benchmark_reports_every_figure(tmp_path: Path) -> None:
    result = pipeline.run(Params(files=3, size_bytes=64 * 1024), tmp_path / "pipeline")

    assert {f.key for f in result.figures} == EXPECTED
    for fig in result.figures:
        assert fig.label and fig.unit, fig.key
        assert math.isfinite(fig.value), fig.key
        # A stage may need no fsync or no ledger commit of its own; every other figure is a
        # measured time, rate or count above zero.
        assert fig.value >= 0 if fig.key.startswith("durable.") else fig.value > 0, fig.key
    # Whatever the stages share out, a delivered transfer made something durable in each.
    for stage in ("intake", "approve", "seal"):
        assert result.figure(f"durable.{stage}.state_commits").value >= 1, stage
    assert result.parameters["files"] == 3
    assert any("settle" in note for note in result.notes)

    assert len(result.artifacts) == 3
    passwords = tmp_path / "pipeline/tachiai/demo/recipients/nhi-central/passwords"
    for delivered in result.artifacts:
        assert delivered.is_file()
        password = (passwords / f"{delivered.name}.password").read_text().strip()
        with pyzipper.AESZipFile(delivered) as zf:
            zf.setpassword(password.encode("ascii"))
            (name,) = zf.namelist()
            assert len(zf.read(name)) == 64 * 1024


def test_runner_prints_the_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = run.main(
        [
            "--files",
            "2",
            "--size-mib",
            "0.0625",
            "--only",
            "pipeline",
            "--work-dir",
            str(tmp_path / "work"),
            "--json",
            str(out),
        ]
    )

    assert code == 0
    table = capsys.readouterr().out
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["machine"]["cpu_model"] and data["machine"]["file_system"]
    (bench,) = data["benchmarks"]
    for fig in bench["figures"]:
        assert fig["label"] in table and fig["unit"] in table
    assert "pipeline ÷ raw ceiling" in table
    assert not any((tmp_path / "work").iterdir())  # the temporary folder was removed


def test_workers_benchmark_reports_each_worker_count(tmp_path: Path) -> None:
    result = workers.run(Params(files=4, size_bytes=64 * 1024), tmp_path / "workers")

    keys = {f.key for f in result.figures}
    for n in workers.WORKERS:
        assert {f"w{n}.files_per_s", f"w{n}.seconds", f"w{n}.vs_single"} <= keys
    assert "ceiling.raw.files_per_s" in keys
    assert all(math.isfinite(f.value) and f.value > 0 for f in result.figures)
    assert next(f.value for f in result.figures if f.key == "w1.vs_single") == 1.0


@needs_postgres
def test_workers_benchmark_also_runs_two_nodes_on_postgres(tmp_path: Path, pg_url: str) -> None:
    result = workers.run(Params(files=6, size_bytes=64 * 1024, postgres_url=pg_url),
                         tmp_path / "workers")
    keys = {f.key for f in result.figures}
    assert {"pg2.files_per_s", "pg2.seconds", "pg2.vs_single"} <= keys
    assert all(math.isfinite(f.value) and f.value > 0 for f in result.figures)
    assert "postgresql (2 nodes)" in result.parameters["database"]


@pytest.mark.slow  # approving through the daemon starts one
def test_startup_benchmark_reports_each_command_beside_the_floor(tmp_path: Path) -> None:
    result = startup.run(Params(), tmp_path / "startup")
    keys = [f.key for f in result.figures]
    assert keys[0] == "startup.python_floor_ms"
    assert keys[1:] == [*(f"startup.{key}_ms" for key, _label, _args in startup.COMMANDS),
                        "startup.approve_waiting_ms", "startup.approve_batch_ms",
                        "startup.approve_daemon_ms"]
    # The last was approved by the daemon: its folder said so for each transfer.
    folder = tmp_path / "startup/tachiai/state/approvals"
    assert len(list(folder.glob("t-*.sig.accepted"))) == startup.RUNS + 1
    assert all(math.isfinite(f.value) and f.value > 0 and f.unit == "ms CPU"
               for f in result.figures)


@pytest.mark.slow
def test_whole_path_benchmark_names_each_figure_beside_the_manual_loop(tmp_path: Path) -> None:
    result = wholepath.run(Params(files=2, size_bytes=64 * 1024, check_processes=2),
                           tmp_path / "wholepath")

    keys = [f.key for f in result.figures]
    assert keys[:2] == ["manual.files_per_s", "manual.cpu_ms_per_file"]
    for mode in ("single", "batched", "folder"):
        assert {f"{mode}.files_per_s", f"{mode}.vs_manual", f"{mode}.daemon_cpu_ms_per_file",
                f"{mode}.approve_cpu_ms_per_file", f"{mode}.daemon_cpu_vs_floor"} <= set(keys)
    # The daemon's CPU beside a transfer's own work on the same files, measured in this run.
    floor = result.figure("floor.cpu_ms_per_file").value
    assert result.figure("batched.daemon_cpu_vs_floor").value == pytest.approx(
        result.figure("batched.daemon_cpu_ms_per_file").value / floor)
    # A check of a small file may take less than a clock tick of its process's CPU.
    assert all(math.isfinite(f.value) and f.label and f.unit
               and (f.value >= 0 if f.key.endswith(".checks_cpu_ms_per_file") else f.value > 0)
               for f in result.figures)
    assert "manual loop" in result.figure("manual.files_per_s").label
    assert "ssh-keygen" in result.figure("folder.approve_cpu_ms_per_file").label
    # The daemon ran with the check processes asked for, and the notes say so.
    assert result.parameters["check_processes"] == 2
    assert any("checks content in 2 process(es)" in note for note in result.notes)
    log = (tmp_path / "wholepath/daemon.log").read_text(encoding="utf-8")
    assert "content checks run in 2 process(es)" in log
    # Six files went through the real daemon, each delivered as a ZIP of its own.
    inbox = tmp_path / "wholepath/tachiai/demo/recipients/nhi-central/inbox"
    assert len([p for p in inbox.iterdir() if p.suffix == ".zip"]) == 6
    # The folder's approvals were the witness's ssh-keygen signatures, taken by the daemon.
    approvals = tmp_path / "wholepath/tachiai/state/approvals"
    # What stays a while is the notes of counted signatures (from ssh-keygen and from approve).
    assert not [p for p in approvals.iterdir()
                if p.name != "refused" and not p.name.endswith(".sig.accepted")]
    assert not list((approvals / "refused").iterdir())


def test_a_quick_run_is_the_default_and_full_is_asked_for() -> None:
    quick = run._parser().parse_args([])
    full = run._parser().parse_args(["--full"])

    assert not quick.full and quick.files is None and full.full
    assert run.QUICK_FILES < run.FULL_FILES


def test_repeated_runs_report_each_figures_median_and_each_ratios_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = [Result("b", {"files": 2}, (Figure("rate", "files", v, "files/s", "g"),
                                        Figure("ratio", "  ÷ the loop", r, "×", "g")))
            for v, r in ((10.0, 1.9), (30.0, 2.2), (20.0, 2.0))]
    one = merged(runs)
    assert [(f.key, f.value) for f in one.figures] == [
        ("rate", 20.0), ("ratio", 2.0), ("ratio.lowest", 1.9), ("ratio.highest", 2.2)]
    assert one.figure("ratio.lowest").label == "    lowest of 3 runs"
    assert one.parameters == {"files": 2, "runs": 3}
    assert merged(runs[:1]) is runs[0]

    code = run.main(["--files", "2", "--size-mib", "0.0625", "--only", "pipeline",
                     "--repeat", "2", "--work-dir", str(tmp_path / "work")])
    assert code == 0
    table = capsys.readouterr().out
    assert "runs=2" in table and "lowest of 2 runs" in table and "highest of 2 runs" in table
