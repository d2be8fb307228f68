"""`--help` and usage errors in the reader's language: argparse's own words ("usage:",
"options", "error:") come from the `argparse` catalogue beside ours, the commands' help lines
and the exit codes from ours; the exit codes of a usage error do not change."""

from __future__ import annotations

import os
import re
import subprocess

from gateway.i18n import ARGPARSE_DOMAIN
from gateway.i18n.catalog import compile_mo, extract_argparse, po_path, read_po
from tests.conftest import tachiai_command

JAPANESE_LOCALE = {"LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "ja_JP.UTF-8"}
ENGLISH = {"LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C"}
ARGPARSE_PO = po_path("ja", ARGPARSE_DOMAIN)


def _tachiai(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tachiai_command(), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_help_is_japanese_under_a_japanese_locale_and_english_under_c() -> None:
    ja = _tachiai("--help", env=JAPANESE_LOCALE)
    en = _tachiai("--help", env=ENGLISH)
    assert ja.returncode == en.returncode == 0
    for words in ("使い方: tachiai [-h]", "位置引数:", "オプション:",
                  "-h, --help       このヘルプを表示して終了します",
                  "approve        立会者として提供を承認します",
                  "--config CONFIG  設定ファイル (既定: ./tachiai.toml または $TACHIAI_CONFIG)",
                  "終了コード:", "78  設定ファイルまたは確認書のファイルが正しくない"):
        assert words in ja.stdout, words
    for words in ("usage: tachiai [-h]", "options:", "show this help message and exit",
                  "approve        approve transfers as a witness", "exit codes:",
                  "78  configuration or agreement files are invalid"):
        assert words in en.stdout, words
        assert words not in ja.stdout, words
    assert "使い方" not in en.stdout and "終了コード" not in en.stdout
    # Command names, options and metavars are never translated.
    for name in ("init", "transfers", "status", "--config CONFIG", "--version", "COMMAND"):
        assert name in ja.stdout and name in en.stdout


def test_a_commands_help_and_a_usage_error_are_in_the_readers_language() -> None:
    ja = _tachiai("approve", "--help", env=JAPANESE_LOCALE)
    assert ja.returncode == 0
    assert "使い方: tachiai approve" in ja.stdout
    assert "`ssh-keygen -Y sign -n tachiai-approval -f KEY" in ja.stdout  # filled in
    assert "--duplicate-ok        このフローで同じ内容が既に送付されていても承認します" in ja.stdout
    missing_ja = _tachiai("approve", env=JAPANESE_LOCALE)
    missing_en = _tachiai("approve", env=ENGLISH)
    assert missing_ja.returncode == missing_en.returncode == 2
    assert ("tachiai approve: エラー: 引数 --key --signature --signatures のいずれかが必要です"
            in missing_ja.stderr)
    assert ("tachiai approve: error: one of the arguments --key --signature --signatures is "
            "required") in missing_en.stderr
    wrong_ja = _tachiai("aprove", env=JAPANESE_LOCALE)
    assert wrong_ja.returncode == 2
    assert "引数 COMMAND: 選べない値です: 'aprove' (次から選んでください: 'init'" in wrong_ja.stderr


def _percent_fields(text: str) -> list[str]:
    return sorted(re.findall(r"%(?:\([a-z_]+\))?[sdr]", text))


def test_every_word_of_argparse_has_a_japanese_translation_with_its_fields() -> None:
    marked = extract_argparse()
    entries = read_po(ARGPARSE_PO.read_text(encoding="utf-8"))
    assert {"usage: ", "options", "positional arguments", "%(prog)s: error: %(message)s\n",
            "show this help message and exit"} <= set(marked)
    assert [m for m in marked if m not in entries or not entries[m].msgstr] == [], \
        "run scripts/catalog, then translate argparse.po's new entries"
    for msgid in marked:
        assert _percent_fields(entries[msgid].msgstr) == _percent_fields(msgid), msgid
    assert entries["%(prog)s: error: %(message)s\n"].msgstr.endswith("\n")


def test_the_shipped_argparse_mo_is_the_compiled_po() -> None:
    mo = ARGPARSE_PO.with_suffix(".mo")
    assert mo.read_bytes() == compile_mo(read_po(ARGPARSE_PO.read_text(encoding="utf-8")))


def test_no_help_line_has_a_percent_sign_argparse_would_expand() -> None:
    """argparse formats each help line with %; a stray % in a translation breaks --help."""
    entries = read_po(po_path("ja").read_text(encoding="utf-8"))
    assert [e.msgid for e in entries.values() if "%" in e.msgstr and "%" not in e.msgid] == []
