"""The `tachiai` command line: the only place that prints messages and chooses exit codes.

Each command group is one module beside this one that owns its parser and its handlers and
exposes `register(subparsers, common)`; `COMMANDS` names them, in the order `--help` lists
them. Only the module of the command being run is imported (start-up is most of what a short
command costs: the others would load the database layer, SFTP and archive libraries for
nothing); the rest stand in by name and help line. A witness's plain `approve ID --key KEY` is
read without any parser and handed to the running daemon first (gateway.cli.handed). Every
command takes --config (default ./tachiai.toml, or $TACHIAI_CONFIG). JSON output keys are
stable: scripts and auditors rely on them. Errors from `policies` and `audit` are mapped onto
the gateway's exception tree here (see gateway.errors for the exit codes).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from gateway.cli import handed
from gateway.cli.closing import close_all
from gateway.cli.parsers import USAGE, Subparsers, common_parser
from gateway.errors import (
    EXIT_CODES,
    CheckFailed,
    ConfigError,
    InternalError,
    StorageError,
    TachiaiError,
)
from gateway.i18n import N_, _, argparse_words, wording


class Command(NamedTuple):
    """A command name, the module beside this one that registers it, and its `--help` line
    (the module's own; a test holds the two equal)."""

    name: str
    module: str
    help: str


#: Every command, in the order `tachiai --help` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("init", "init", N_("create a configuration and folders")),
    Command("run", "run", N_("run the daemon in the foreground")),
    Command("agreements", "agreements", N_("agreements (確認書)")),
    Command("calendar", "calendar",
            N_("due dates of a monthly flow (翌月の最終業務日の一業務日前 etc.)")),
    Command("transfers", "transfers", N_("outbound transfers")),
    Command("approve", "approvals", N_("approve transfers as a witness")),
    Command("reject", "approvals", N_("stop a transfer, with a reason")),
    Command("audit", "audit",
            N_("verify, prove, query and report on the ledger (works on a copy: --ledger PATH)")),
    Command("password", "password",
            N_("retrieve a delivered file's password as a receiving handler")),
    Command("holdings", "holdings", N_("received data (保有データ)")),
    Command("partners", "partners", N_("recipients' routes")),
    Command("nodes", "nodes",
            N_("list the daemons (nodes) using this state database and their last heartbeat")),
    Command("status", "status", N_("what waits for whom, on one screen")),
)

_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def main(argv: Sequence[str] | None = None) -> int:
    plain = handed.plain(sys.argv[1:] if argv is None else argv)
    if plain is not None:
        # `approve ID --key KEY`, handed to the running daemon without the parser or the
        # logging module (gateway.cli.handed); it opens nothing that needs closing.
        code = _outcome(lambda: handed.approve(plain))
        if code is not None:
            return code
    argparse_words()  # argparse's own words ("usage:", "error:") in the reader's language
    parser = _parser(argv)
    args = parser.parse_args(argv)
    # Tried and not taken (no daemon, no statement, ssh-keygen could not sign): not again.
    args.handover_tried = plain is not None
    verbose = bool(getattr(args, "verbose", False))
    _log_to_stderr(verbose, bool(getattr(args, "log_info", False)))
    if not hasattr(args, "handler"):
        parser.print_help()
        return USAGE
    try:
        return _outcome(lambda: int(args.handler(args)),
                        trace=verbose or bool(getattr(args, "trace_bugs", False))) or 0
    finally:
        close_all()  # what the command opened: the exit closes nothing (`leave`)


def _log_to_stderr(verbose: bool, info: bool) -> None:
    # A command prints what it did itself, in the reader's language: the domain's INFO log of
    # the same (an approval recorded) would only repeat it, in English. The daemon logs it.
    # What a command did besides, unasked (a key made, the database upgraded), is a warning.
    import logging  # here: a hand-over to the daemon (gateway.cli.handed) logs nothing

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO if info else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not (verbose or info):
        # An error the command reports itself is not logged beside it (the daemon's log, of
        # `run`, keeps the line: there it is what became of a request handed in).
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda record: not getattr(record, "raised_too", False))
    if not verbose:
        # Every paramiko failure is converted (gateway.transports.sftp) and logged by us, once
        # per outage where it repeats; paramiko's own tracebacks would come with every retry.
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)


def _outcome(run: Callable[[], int | None], *, trace: bool = False) -> int | None:
    """What `run` returns, or the exit code of what it raised, reported on stderr; `trace`
    logs the trace of a bug (an exception that is none of ours)."""
    try:
        return run()
    except TachiaiError as exc:
        return _report(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        return _foreign(exc, trace)


def _foreign(exc: Exception, trace: bool) -> int:
    """The exit code of an exception that is not the gateway's: a policy file's problems, the
    ledger's, or a bug (said so, exit 70)."""
    # Imported here: only a failure needs them, and a hand-over to the daemon never loads them.
    from audit.errors import AuditError, LedgerIntegrityError, LedgerStorageError
    from policies.errors import PolicyFileError

    if isinstance(exc, PolicyFileError):
        return _report(ConfigError("\n  ".join(str(p) for p in exc.problems)))
    if isinstance(exc, LedgerIntegrityError):
        print(_("tachiai: the ledger is NOT intact: {problem}").format(problem=wording(str(exc))),
              file=sys.stderr)
        return CheckFailed.exit_code
    if isinstance(exc, (LedgerStorageError, AuditError)):
        return _report(StorageError(str(exc)))
    # A bug. The trace helps whoever fixes it, but a person at a terminal wants the message;
    # the daemon (`run`) always logs it, since nobody is there to run it again with --verbose.
    if trace:
        import logging

        logging.getLogger("tachiai").error("internal error", exc_info=exc)
        hint = None
    else:
        hint = _("{hint}; run it again with --verbose for the trace").format(
            hint=wording(InternalError.default_hint))
    return _report(InternalError(
        _("internal error: {kind}").format(kind=exc.__class__.__name__), hint=hint))


def console() -> NoReturn:
    """The `tachiai` console script (and `python -m gateway.cli`): `main`, then `leave`."""
    try:
        code = main()
    except SystemExit as exc:  # --help, --version and argparse's usage errors end this way
        if exc.code is not None and not isinstance(exc.code, int):
            raise
        code = exc.code or 0
    leave(code)


#: Libraries whose exit hooks (atexit) do work that must not be skipped: multiprocessing
#: ends its children, openpyxl removes the temporary files of a workbook it writes.
_EXIT_HOOKS = ("multiprocessing", "openpyxl")


def leave(code: int) -> NoReturn:
    """End the process with `code` without tearing the interpreter down: freeing every module
    and object one by one costs a short command about a tenth of its CPU, and nothing of ours
    waits for it. The standard streams and the log are flushed first; every file, database
    transaction and ledger append of a command is already closed and in the kernel's hands.
    Where something still may need the normal exit (another thread alive, a library of
    `_EXIT_HOOKS` loaded, a stream that cannot be flushed), it takes place. A reader that
    closed the pipe early (`| head`) ends it as `main` does, with 141."""
    threading = sys.modules.get("threading")
    alone = threading is None or threading.active_count() == 1
    if alone and not any(name in sys.modules for name in _EXIT_HOOKS):
        logging = sys.modules.get("logging")
        if logging is not None:
            logging.shutdown()
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:  # None: the descriptor was closed when we started
                    stream.flush()
        except BrokenPipeError:
            os._exit(141)  # nothing flushes again: the exit is at once
        except Exception:  # the normal exit reports it, as it always did
            sys.exit(code)
        os._exit(code)
    sys.exit(code)


def version() -> str:
    """The installed package's version, or the source tree's (pyproject.toml) when running
    from a checkout that was never installed."""
    # Imported here: together they cost every command about a fifth of `tachiai --help`'s
    # start-up CPU, and only `--version` needs them.
    import tomllib
    from importlib import metadata

    try:
        return metadata.version("tachiai")
    except metadata.PackageNotFoundError:
        try:
            with _PYPROJECT.open("rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


class _Version(argparse.Action):
    """`--version`: computed only when asked (reading package metadata costs start-up time)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"tachiai {version()}")
        parser.exit()


def _report(error: TachiaiError) -> int:
    # Imported here: `tachiai --help` loads no module of the CLI but its parsers.
    from gateway.cli.messages import diagnostics

    print(f"tachiai: {diagnostics(error)}", file=sys.stderr)
    return error.exit_code


def _parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for this command line: the chosen command's module registers it in full."""
    chosen = _named(sys.argv[1:] if argv is None else argv)
    if chosen is None:
        stubs = _stubs()
        known, _rest = stubs.parse_known_args(argv)
        chosen = getattr(known, "chosen_module", None)
        if chosen is None:
            return stubs
    return full_parser(str(chosen))


#: The options every command takes (parsers.common_parser) that stand alone; --config takes a
#: value.
_ALONE = frozenset({"-v", "--verbose"})
_MODULE_OF = {command.name: command.module for command in COMMANDS}


def _named(argv: Sequence[str]) -> str | None:
    """The module of the command `argv` names, when that is plain without building the stubs'
    parser (a few milliseconds of every command): only the options every command takes, spelled
    in full, stand before its name. Anything else (--help, --version, an abbreviated option, a
    mistyped command) is None, and left to the stubs, which answer it as the full parser would."""
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            if next(args, None) is None:
                return None
        elif arg not in _ALONE and not arg.startswith("--config="):
            return _MODULE_OF.get(arg)
    return None


def full_parser(modules: str | None = None) -> argparse.ArgumentParser:
    """The parser with the commands of `modules` (one module name, or every module when None)
    registered in full and the others by name and help line only."""
    registered: set[str] = set()

    def add(sub: Subparsers, common: argparse.ArgumentParser) -> None:
        for command in COMMANDS:
            if modules is None or command.module == modules:
                if command.module not in registered:
                    registered.add(command.module)
                    import_module(f"gateway.cli.{command.module}").register(sub, common)
            else:
                sub.add_parser(command.name, help=_(command.help), add_help=False)

    return _top(add)


def _stubs() -> argparse.ArgumentParser:
    """Every command standing in by name and help line, to find which one is named: so
    `tachiai --help` and a mistyped command are answered exactly as by the full parser, without
    importing any command module."""
    def add(sub: Subparsers, _common: argparse.ArgumentParser) -> None:
        for command in COMMANDS:
            p = sub.add_parser(command.name, help=_(command.help), add_help=False)
            p.set_defaults(chosen_module=command.module)

    return _top(add)


def _top(add: Callable[[Subparsers, argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    common = common_parser()
    parser = argparse.ArgumentParser(
        prog="tachiai", parents=[common], epilog=_(EXIT_CODES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=_("tachiai: witnessed, encrypted, audited file exchange under a data-sharing "
                      "agreement (確認書)."))
    parser.add_argument("--version", action=_Version, help=_("print the version and exit"))
    sub = parser.add_subparsers(metavar="COMMAND")
    add(sub, common)
    return parser


if __name__ == "__main__":
    sys.exit(main())
