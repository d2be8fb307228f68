"""A scenario that drops a (synthetic) My Number in file names and in cells, then greps every
artefact the gateway leaves: the ledger's rows, the state database, the daemon's log, the CLI's
outputs, the checkpoints and the sealed ZIP's member names. The number appears in none (issue 11;
番号法 第20条 limits keeping it)."""

from __future__ import annotations

import json
import os
import sqlite3
import zipfile
from pathlib import Path

import pytest
from stdnum.jp import in_

from tests.conftest import AGREEMENT, GOOD_ROWS, Demo, csv_bytes, sealed_files

pytestmark = pytest.mark.slow

BASE = "31415926535"
MY_NUMBER = BASE + in_.calc_check_digit(BASE)  # synthetic: a valid check digit, nobody's number
FORMS = (MY_NUMBER, f"{MY_NUMBER[:4]}-{MY_NUMBER[4:8]}-{MY_NUMBER[8:]}",
         f"{MY_NUMBER[:4]} {MY_NUMBER[4:8]} {MY_NUMBER[8:]}")


def _dump(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return "\n".join(conn.iterdump())


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


def test_a_my_number_in_names_and_cells_is_in_no_artefact(demo: Demo) -> None:
    demo.start()
    demo.drop(f"申請者-{FORMS[0]}.csv", csv_bytes(GOOD_ROWS))
    demo.drop(f"申請者 {FORMS[1]}.csv", csv_bytes(GOOD_ROWS))
    bad_row = GOOD_ROWS[0].replace("東京都新宿区サンプル町1-1", f"番号{FORMS[2]}")
    demo.drop("cells.csv", csv_bytes([bad_row, GOOD_ROWS[1]]))
    demo.wait_state("rejected", count=3)
    demo.drop("good.csv", csv_bytes(GOOD_ROWS))
    (good,) = demo.wait_state("awaiting_approval")
    assert demo.cli("approve", str(good["id"]), "--key", str(demo.key("suzuki"))).returncode == 0
    demo.wait_state("delivered")
    assert demo.stop() == 0
    outputs = [demo.cli(*args) for args in (
        ("transfers", "list"), ("transfers", "list", "--json"), ("audit", "log", "--json"),
        ("audit", "verify"), ("audit", "report", "--agreement", AGREEMENT, "--period",
                              "2026", "--no-verify"),
        *(("transfers", "show", str(t["id"])) for t in demo.transfers()),
        *(("transfers", "statement", str(t["id"])) for t in demo.transfers()),
    )]
    zips = sealed_files(demo.inbox)
    assert zips
    members = [name for z in zips for name in zipfile.ZipFile(z).namelist()]
    assert members == ["good.csv"]
    artefacts = {
        "ledger rows": _dump(demo.ledger),
        "state database": _dump(demo.state_db),
        "daemon log": "".join(p.read_text(errors="replace")
                              for p in demo.root.glob("daemon-*.log")),
        "CLI outputs": "".join(r.stdout + r.stderr for r in outputs),
        "checkpoints": _files_text(demo.root / "state" / "checkpoints"),
        "ZIP member names and inbox names": "\n".join(members + [p.name for p in
                                                                 demo.inbox.iterdir()]),
        "spool names": "\n".join(os.fsdecode(p) for p in os.listdir(demo.spool)),
    }
    for what, text in artefacts.items():
        for form in (*FORMS, "申請者"):
            assert form not in text, f"{form!r} is in the {what}"
    rules = sorted(r["rule"] for t in json.loads(outputs[1].stdout) for r in t["reasons"])
    assert rules.count("intake.name-my-number") == 2 and "content.my-number" in " ".join(rules)
