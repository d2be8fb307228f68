"""`python -m bench.run`: run the registered benchmarks, print a table, optionally write JSON.

By default a quick run (a few minutes: 10 files, a 50,000-event ledger, a 64 MiB seal);
`--full` runs the scale the figures in issues are quoted at (200 files, 1,000,000 events,
256 MiB and a 2 GiB memory run). Each benchmark runs in a fresh temporary folder (under
--work-dir if given, so a chosen file system can be measured) that is removed afterwards.
`--repeat N` runs each benchmark N times and prints each figure's median, with each ratio's
lowest and highest beside it: on a shared 2-core machine one run of the whole path strays by
a tenth either way. Results are reported, never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import ledger, machine, pipeline, report, startup, transports, wholepath, workers
from bench.results import BenchError, Params, Result, merged

Benchmark = Callable[[Params, Path], Result]
QUICK_FILES = 10
FULL_FILES = 200

#: Benchmarks by name, in the order they run. A new one is a module with `run(params, dir)`.
BENCHMARKS: dict[str, Benchmark] = {
    wholepath.NAME: wholepath.run,
    pipeline.NAME: pipeline.run,
    ledger.NAME: ledger.run,
    transports.NAME: transports.run,
    workers.NAME: workers.run,
    startup.NAME: startup.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        params = Params(
            files=args.files
            if args.files is not None
            else (FULL_FILES if args.full else QUICK_FILES),
            size_bytes=round(args.size_mib * (1 << 20)),
            encoding=args.encoding,
            full=args.full,
            postgres_url=args.postgres_url,
            check_processes=args.check_processes,
        )
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    names = args.only or list(BENCHMARKS)
    base = args.work_dir.absolute() if args.work_dir else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="tachiai-bench-", dir=base) as tmp:
        where = machine.describe(Path(tmp))
        for name in names:
            runs = []
            for k in range(1, args.repeat + 1):
                of = f" ({k} of {args.repeat})" if args.repeat > 1 else ""
                print(f"running {name}{of} …", file=sys.stderr, flush=True)
                try:
                    runs.append(BENCHMARKS[name](params, Path(tmp) / f"{name}-{k}"))
                except BenchError as exc:
                    print(f"bench: {name} did not complete: {exc}", file=sys.stderr)
                    return 1
            results.append(merged(runs))
    where = dataclasses.replace(
        where, load_average=f"{where.load_average}, {machine.load_average()} at the end"
    )
    sys.stdout.write(report.table(where, results))
    if args.json:
        report.write_json(args.json, where, results)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="the full scale (see above), not the "
                        "quick run")
    parser.add_argument("--files", type=int, help=f"number of files (default {QUICK_FILES}, "
                        f"with --full {FULL_FILES})")
    parser.add_argument(
        "--size-mib", type=float, default=1.0, help="size of each file in MiB (default 1)"
    )
    parser.add_argument(
        "--encoding",
        choices=("cp932", "utf-8"),
        default="cp932",
        help="encoding of the synthetic CSV files (default cp932)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="folder for the temporary files (default: the system temp dir)",
    )
    parser.add_argument(
        "--postgres-url",
        default="",
        metavar="URL",
        help="an empty PostgreSQL database (postgresql+psycopg://ROLE@HOST:PORT/DB) on which "
        "the workers benchmark also runs two nodes; without it that part is skipped",
    )
    parser.add_argument(
        "--check-processes",
        type=int,
        metavar="N",
        help="the daemon's [gateway] check_processes in the wholepath benchmark (default: the "
        "configuration's default)",
    )
    parser.add_argument(
        "--repeat",
        type=_positive,
        default=1,
        metavar="N",
        help="run each benchmark N times and print each figure's median, with each ratio's "
        "lowest and highest (default 1: one run)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


if __name__ == "__main__":
    sys.exit(main())
