"""Japanese and English: the catalogue is complete and compiled, the command line speaks the
reader's language, and what machines read (the daemon's log, --json) never changes with it."""

from __future__ import annotations

import gettext
import io
import json
import string
from pathlib import Path

import pytest

from gateway import i18n
from gateway.i18n.catalog import (
    CatalogError,
    Entry,
    compile_mo,
    extract,
    po_path,
    read_po,
    write_po,
)
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, has_japanese

PO = po_path("ja")
MO = PO.with_suffix(".mo")
JAPANESE = {"LANGUAGE": "ja"}
ENGLISH = {"LANGUAGE": "C"}
#: The machine's locale says Japanese and nothing overrides it (LANGUAGE empty counts as unset).
JAPANESE_LOCALE = {"LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "ja_JP.UTF-8"}


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


# -- the catalogue ------------------------------------------------------------------------------


def test_every_marked_message_is_in_the_catalogue_with_a_japanese_translation() -> None:
    marked = extract()
    entries = read_po(PO.read_text(encoding="utf-8"))
    assert len(marked) > 250  # the CLI, its errors and the reasons of policies are all marked
    missing = [m for m in marked if m not in entries]
    assert missing == [], "run scripts/catalog, then translate the new entries"
    untranslated = [m for m in marked if not entries[m].msgstr or entries[m].fuzzy]
    assert untranslated == [], "translate these in the .po, then run scripts/catalog"
    stale = [m for m in entries if m and m not in marked]
    assert stale == [], "run scripts/catalog: these left the source"


def test_each_translation_keeps_the_named_fields_of_its_message() -> None:
    entries = read_po(PO.read_text(encoding="utf-8"))
    wrong = [(e.msgid, e.msgstr) for e in entries.values()
             if e.msgid and _fields(e.msgid) != _fields(e.msgstr)]
    assert wrong == []


def test_translations_are_japanese() -> None:
    entries = [e for e in read_po(PO.read_text(encoding="utf-8")).values() if e.msgid]
    # A few are the same in both languages (an "ID" header, "OK: {line}", "--from: …").
    english = [e.msgid for e in entries if not has_japanese(e.msgstr)]
    assert len(english) < 10, english


def test_the_shipped_mo_is_the_compiled_po() -> None:
    assert MO.read_bytes() == compile_mo(read_po(PO.read_text(encoding="utf-8")))


def test_gettext_reads_every_translation_from_the_compiled_catalogue() -> None:
    entries = read_po(PO.read_text(encoding="utf-8"))
    catalogue = gettext.GNUTranslations(io.BytesIO(compile_mo(entries)))
    for entry in entries.values():
        if entry.msgid:
            assert catalogue.gettext(entry.msgid) == entry.msgstr
    assert catalogue.info()["language"] == "ja"


def test_po_round_trip_keeps_escapes_and_leaves_fuzzy_entries_out_of_the_mo() -> None:
    tricky = 'a "quoted" \\ back\tslash\nand a line break, long enough to be split over lines'
    text = write_po([Entry(tricky, "訳 \"引用\" \\ と\n改行", ["x.py:1"]),
                     Entry("unsure", "たぶん", ["x.py:2"], fuzzy=True),
                     Entry("open", "", ["x.py:3"])])
    back = read_po(text)
    assert back[tricky].msgstr == "訳 \"引用\" \\ と\n改行"
    assert back["unsure"].fuzzy and not back[tricky].fuzzy
    catalogue = gettext.GNUTranslations(io.BytesIO(compile_mo(back)))
    assert catalogue.gettext(tricky) == "訳 \"引用\" \\ と\n改行"
    assert catalogue.gettext("unsure") == "unsure"  # fuzzy: not trusted yet
    assert catalogue.gettext("open") == "open"  # untranslated: English


def test_a_broken_po_line_is_named() -> None:
    with pytest.raises(CatalogError, match="line 2"):
        read_po('msgid "a"\nmsgstr unquoted\n')


def test_a_message_built_on_the_spot_cannot_be_marked(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text('x = 1\nprint(_(f"no {x}"))\n', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"pkg/m.py:2: _\(\) needs a string literal"):
        extract(tmp_path, ["pkg"])
    (tmp_path / "pkg" / "m.py").write_text('print(_("n {x}").format(x=1), _(name))\n',
                                           encoding="utf-8")
    assert extract(tmp_path, ["pkg"]) == {"n {x}": ["pkg/m.py:1"]}


# -- translating where it is printed ------------------------------------------------------------


def test_english_without_a_catalogue_for_the_language(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGUAGE", "C")
    i18n.reload()
    try:
        assert i18n.language() == "en"
        assert i18n._("no transfers") == "no transfers"
        assert i18n.wording("refused: x [y]") == "refused: x [y]"
    finally:
        monkeypatch.undo()
        i18n.reload()


@pytest.mark.usefixtures("japanese")
def test_wording_translates_a_filled_in_reason_and_the_reason_inside_a_refusal() -> None:
    from policies.wording import R_

    assert i18n.language() == "ja"
    reason = R_("the file name is longer than {limit} bytes and could not be delivered; "
                "shorten it", limit=240)
    assert i18n.wording(reason) == ("ファイル名が 240 バイトを超えていて送付できません。"
                                    "短くしてください")
    refusal = i18n.N_("refused: {message} [{rule}]").format(
        message=R_("the sender cannot witness their own transfer; another designated witness "
                   "must approve it"), rule="approval.self")
    assert i18n.wording(refusal) == (
        "拒否: 送信者は自分の提供の立会者になれません。別の指定された立会者が承認してください "
        "[approval.self]")


@pytest.mark.usefixtures("japanese")
def test_wording_leaves_text_no_template_made_unchanged() -> None:
    assert i18n.wording("a message from somewhere else") == "a message from somewhere else"
    assert i18n.wording("") == ""


@pytest.mark.usefixtures("japanese")
def test_the_daemon_speaks_english_whatever_the_environment() -> None:
    assert i18n._("no transfers") == "提供はありません"
    i18n.english()
    assert i18n._("no transfers") == "no transfers"
    assert i18n.language() == "en"


# -- the real command line and daemon -----------------------------------------------------------


def _awaiting(demo: Demo) -> str:
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    (transfer,) = demo.wait_state("awaiting_approval")
    return str(transfer["id"])


@pytest.mark.slow
def test_a_refusal_is_printed_in_japanese_or_english_as_asked(demo: Demo) -> None:
    demo.start()
    transfer = _awaiting(demo)
    ja = demo.cli("approve", transfer, "--key", str(demo.key("sato")), env=JAPANESE)
    assert ja.returncode == 1
    assert "送信者は自分の提供の立会者になれません" in ja.stderr
    assert "approval.self" in ja.stderr  # rule ids stay as they are
    en = demo.cli("approve", transfer, "--key", str(demo.key("sato")), env=ENGLISH)
    assert en.returncode == 1
    assert "the sender cannot witness their own transfer" in en.stderr
    assert not has_japanese(en.stderr)
    # The ledger keeps the English words, whichever language the refusal was printed in.
    refusals = json.loads(demo.cli("audit", "query", "--kind", "approval.refused", "--format",
                                   "json", check=True).stdout)
    assert len(refusals) == 2
    assert all(not has_japanese(str(e["data"]["reason"]["message"])) for e in refusals)


@pytest.mark.slow
def test_a_rejection_reason_is_shown_in_japanese_and_json_never_changes(demo: Demo) -> None:
    demo.start()
    demo.drop("bad.csv", csv_bytes(["TEST TARO,131042,東京都新宿区サンプル町1-1,1,1990/04/01,"
                                    "令和8年10月1日"]))
    (transfer,) = demo.wait_state("rejected")
    tid = str(transfer["id"])
    ja = demo.cli("transfers", "show", tid, env=JAPANESE_LOCALE, check=True).stdout
    assert "value.local-government-code" in ja
    assert "チェックデジット (6 桁目) が一致しません" in ja
    en = demo.cli("transfers", "show", tid, env=ENGLISH, check=True).stdout
    assert "check digit (6th digit) of this local government code" in en
    for args in (["transfers", "show", tid], ["transfers", "list"], ["status"]):
        as_ja = demo.cli(*args, "--json", env=JAPANESE_LOCALE, check=True).stdout
        as_en = demo.cli(*args, "--json", env=ENGLISH, check=True).stdout
        assert as_ja == as_en, args
    listed = demo.cli("transfers", "list", env=JAPANESE_LOCALE, check=True).stdout
    assert listed.splitlines()[0].split()[:3] == ["ID", "状態", "確認書/フロー"]


@pytest.mark.slow
def test_the_daemon_log_stays_english_under_a_japanese_locale(demo: Demo) -> None:
    demo.start(env=JAPANESE_LOCALE)
    demo.drop("bad.csv", csv_bytes(["TEST TARO,131042,東京都新宿区サンプル町1-1,1,1990/04/01,"
                                    "令和8年10月1日"]))
    demo.wait_state("rejected")
    demo.drop("a.csv", csv_bytes(GOOD_ROWS))
    demo.wait_state("awaiting_approval")
    assert demo.stop() == 0
    log = demo.daemon_log()
    assert "tachiai is running" in log
    assert "rejected" in log
    translations = [e.msgstr for e in read_po(PO.read_text(encoding="utf-8")).values()
                    if e.msgid and len(e.msgstr) > 6 and has_japanese(e.msgstr)]
    assert [t for t in translations if t in log] == []
