"""What a command imports on its way to work: the modules it needs, not the whole gateway.

Start-up is most of what a short command costs (an operator approving fifty files pays it fifty
times), so these tests pin the import set, not a time: the receiving side, the archive and SFTP
libraries and the spreadsheet writer stay out of `approve` and `transfers list`, and `--help`
loads no database layer at all. On SQLite the outbound commands read and write the state and
the ledger through the sqlite3 module (gateway.state.lite, audit.lite): SQLAlchemy alone costs
more start-up than the whole command may.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from gateway import cli
from gateway.cli import parsers
from tests.conftest import AGREEMENT, FLOW, GOOD_ROWS, Demo, csv_bytes, wait_for

# Run a command in-process in a fresh interpreter, then name every module it loaded.
_PROBE = """
import json, sys
from gateway.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

#: Never needed to approve a transfer or list transfers: no receiving side, no archive, SFTP
#: or spreadsheet library, nor the fan-out's splitting of files.
NOT_FOR_OUTBOUND_COMMANDS = ("pyzipper", "paramiko", "watchdog", "openpyxl", "msoffcrypto",
                             "Cryptodome", "gateway.inbound", "gateway.transports",
                             "gateway.outbound.sealing", "gateway.outbound.pipeline",
                             "gateway.daemon", "gateway.state.holdings_store",
                             "sqlalchemy.orm", "sqlmodel", "pydantic", "alembic", "pycountry",
                             "policies.splitting", "policies.tables")
#: Nor, on SQLite, the database layer: the sqlite3 module does.
DATABASE_LAYER = ("sqlalchemy", "gateway.state.store", "gateway.state.schema", "audit.ledger",
                  "audit.database")


def loaded(*args: str) -> tuple[int, set[str]]:
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                            text=True, timeout=120)
    assert result.stdout, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    return int(out["code"] or 0), set(out["modules"])


def under(modules: set[str], prefix: str) -> list[str]:
    return sorted(m for m in modules if m == prefix or m.startswith(prefix + "."))


def test_help_loads_no_command_module_nor_any_library() -> None:
    code, modules = loaded("--help")
    assert code == 0
    for prefix in ("sqlalchemy", "sqlmodel", "pydantic", "cryptography", "gateway.runtime",
                   "pyzipper", "gateway.inbound", "gateway.outbound",
                   "gateway.state", "gateway.config", "audit.ledger", "policies.agreement"):
        assert under(modules, prefix) == [], prefix
    assert under(modules, "gateway.cli") == ["gateway.cli", "gateway.cli.closing",
                                             "gateway.cli.handed", "gateway.cli.parsers"]


@pytest.mark.parametrize("command", [
    ("approve", "t-000000000000", "--key", "KEY"),
    ("approve", "t-000000000000", "t-000000000001", "--key", "KEY"),
    ("transfers", "list"),
    ("transfers", "show", "t-000000000000"),
])
def test_outbound_commands_load_neither_the_receiving_side_nor_archive_and_sftp_libraries(
    demo: Demo, command: tuple[str, ...]
) -> None:
    args = [a.replace("KEY", str(demo.key("suzuki"))) for a in command]
    # The first command on a new gateway creates the state database (Alembic, once); the
    # start-up that matters is every command after it.
    demo.cli("transfers", "list", check=True)
    code, modules = loaded(*args, "--config", str(demo.config))
    assert code in (0, 1, 65), code  # listed, or "no transfer t-…": either way the path ran
    assert "gateway.runtime" in modules  # the command really reached its work
    for prefix in (*NOT_FOR_OUTBOUND_COMMANDS, *DATABASE_LAYER):
        assert under(modules, prefix) == [], prefix


def test_approving_a_waiting_transfer_loads_no_database_layer(demo: Demo) -> None:
    # The whole way: statement, signature, the approval and its events, the ledger append.
    demo.cli("transfers", "list", check=True)
    transfer_id = _waiting_transfer(demo)
    code, modules = loaded("approve", transfer_id, "--key", str(demo.key("suzuki")),
                           "--config", str(demo.config))
    assert code == 0
    assert demo.show(transfer_id)["state"] == "approved"
    assert demo.show(transfer_id)["approvals"] == ["suzuki"]
    assert "gateway.state.lite" in modules and "audit.lite" in modules
    for prefix in (*NOT_FOR_OUTBOUND_COMMANDS, *DATABASE_LAYER):
        assert under(modules, prefix) == [], prefix
    found = demo.cli("audit", "query", "--subject", transfer_id, "--format", "json", check=True)
    kinds = [e["kind"] for e in json.loads(found.stdout)]
    assert kinds[-2:] == ["approval.accepted", "transfer.approved"]


def _waiting_transfer(demo: Demo) -> str:
    """A transfer awaiting approval, written as the daemon's check writes one."""
    from gateway.config.settings import load_settings
    from gateway.runtime import Runtime, event
    from gateway.state import clock
    from gateway.state.rows import Transfer

    rt = Runtime.open(load_settings(demo.config))
    now = clock.now_ns()
    t = Transfer(id="t-0000000000aa", agreement=AGREEMENT, flow=FLOW, recipient="nhi-central",
                 state="awaiting_approval", file_name="a.csv", source_path="/outbox/a.csv",
                 created_ns=now, updated_ns=now, provider="isa", sender="sato", size=10,
                 sha256="ab" * 32, encoding="cp932", rows=2)
    rt.store.create(t, [event("transfer.checked", t)])
    rt.flush()
    return t.id


@pytest.mark.parametrize("command", [("audit", "verify"), ("audit", "prove", "0")])
# On a gateway whose ledger exists: the first command creates it (the database layer, once).
def test_audit_commands_load_no_state_database_nor_spreadsheet_writer(
    demo: Demo, command: tuple[str, ...]
) -> None:
    _waiting_transfer(demo)  # its events are in the ledger
    demo.cli("audit", "checkpoint", check=True)  # signed: event 0 can be proven
    code, modules = loaded(*command, "--config", str(demo.config))
    assert code == 0
    assert "audit.lite" in modules  # read with the sqlite3 module alone
    for prefix in ("sqlmodel", "pydantic", "gateway.runtime", "gateway.state.store",
                   "audit.query", "audit.report", *NOT_FOR_OUTBOUND_COMMANDS, *DATABASE_LAYER):
        assert under(modules, prefix) == [], prefix


@pytest.mark.parametrize("argv", [
    ["approve", "t-000000000000", "--key", "KEY"],
    ["--config", "approve", "transfers", "list"],
    ["--config=x.toml", "-v", "audit", "verify"],
    ["--verbose", "--config", "x.toml", "holdings", "list"],
    ["--conf", "x.toml", "status"],  # abbreviated: the parser's to tell
    ["-vv", "status"],
    ["-h", "approve"],
    ["--version"],
    ["aprove", "t-000000000000"],
    ["--config"],
    [],
    ["--", "status"],
])
def test_the_command_told_before_any_parser_is_the_one_the_parser_would_tell(
    argv: list[str]
) -> None:
    fast = cli._named(argv)
    try:
        known, _rest = cli._stubs().parse_known_args(argv)
        parsed = getattr(known, "chosen_module", None)
    except SystemExit:
        parsed = None
    assert fast is None or fast == parsed
    if argv[:1] == ["approve"] or argv[:2] == ["--config", "approve"]:
        assert fast is not None  # the common spellings skip the stubs


def test_the_help_line_of_every_command_is_its_modules_own() -> None:
    # `tachiai --help` lists the commands from cli.COMMANDS without importing their modules.
    full = cli.full_parser()
    actions = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    listed = {c.dest: c.help for c in actions[0]._choices_actions}
    assert listed == {c.name: c.help for c in cli.COMMANDS}
    assert list(listed) == [c.name for c in cli.COMMANDS]
    assert parsers.USAGE == 2


#: What handing a signature to the running daemon needs none of: it checks, records and
#: counts (gateway.outbound.handover); where it is comes from the places alone
#: (gateway.config.places).
NOT_FOR_THE_HAND_OVER = ("sqlalchemy", "sqlmodel", "pydantic", "cryptography", "pyzipper",
                         "gateway.runtime", "gateway.outbound.approvals", "gateway.state.lite",
                         "gateway.identity", "policies.agreement", "audit.lite", "socket",
                         "gateway.config.routes", "gateway.config.sources",
                         "gateway.config.settings", "gateway.config.notify")

#: Nor what the full command line needs besides (gateway.cli.handed).
NOT_FOR_ONE_PLAIN_HAND_OVER = ("gateway.cli.approvals", "gateway.cli.common", "logging",
                               "dataclasses", "inspect", "policies", "audit")


@pytest.mark.slow
@pytest.mark.parametrize("count", [1, 3])
def test_approving_through_the_running_daemon_loads_neither_the_database_nor_keys(
    demo: Demo, count: int
) -> None:
    folder = demo.root / "state" / "approvals"
    demo.start()
    rows = list(GOOD_ROWS)
    for i in range(count):
        demo.drop(f"file-{i}.csv", csv_bytes(rows[i:] + rows[:i]))
    found = demo.wait_state("awaiting_approval", count=count, timeout=120)
    ids = [str(t["id"]) for t in found]
    for transfer_id in ids:
        wait_for(lambda t=transfer_id: (folder / t).exists(), 120, "the statement published")
    code, modules = loaded("approve", *ids, "--key", str(demo.key("suzuki")),
                           "--config", str(demo.config))
    assert code == 0
    assert "gateway.outbound.handover" in modules  # the hand-over ran
    for transfer_id in ids:
        # Counted by the daemon: the command loaded no approval code (below).
        assert f"transfer {transfer_id} approved by suzuki" in demo.daemon_log()
    for prefix in (*NOT_FOR_OUTBOUND_COMMANDS, *DATABASE_LAYER, *NOT_FOR_THE_HAND_OVER):
        assert under(modules, prefix) == [], prefix
    if count == 1:
        # The plain `approve ID --key KEY` (gateway.cli.handed): not even the command's parser,
        # the whole settings or the logging module.
        for prefix in NOT_FOR_ONE_PLAIN_HAND_OVER:
            assert under(modules, prefix) == [], prefix
