"""Notifications against a real SMTP server (aiosmtpd on 127.0.0.1) and a real hook command,
driven through the real daemon: witnesses told on arrival, reminded, the transfer expiring after
its approval window (the daemon's test clock offset moves time on), the sender told of
rejection, expiry and delivery, the duplicate notice — and no personal data in any of it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from gateway.config.settings import load_settings
from gateway.errors import ConfigError
from gateway.exchange.notices import Notice, deliver
from gateway.runtime import Runtime
from gateway.state.clock import OFFSET_ENV
from policies.errors import PolicyFileError
from policies.handlers import Registry
from tests.conftest import GOOD_ROWS, Demo, csv_bytes, has_japanese, shows_value, wait_for
from tests.gateway.transports.servers import SmtpServer

EMAILS = {"sato": "sato@isa.example.lg.jp", "suzuki": "suzuki@isa.example.lg.jp",
          "tanaka": "tanaka@isa.example.lg.jp"}
HOOK = """\
import sys, pathlib
with open(sys.argv[1], "ab") as out:
    out.write(sys.stdin.buffer.read() + b"\\n")
"""


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path / "smtp", starttls=False)
    server.folder.mkdir()
    server.start()
    yield server
    server.stop()


def with_notify(demo: Demo, smtp: SmtpServer, hook_out: Path, language: str = "ja+en") -> None:
    registry = demo.root / "demo" / "registry.toml"
    text = registry.read_text(encoding="utf-8")
    for name, address in EMAILS.items():
        text = text.replace(f'name = "{name}"\n', f'name = "{name}"\nemail = "{address}"\n')
    registry.write_text(text, encoding="utf-8")
    hook = demo.root / "hook.py"
    hook.write_text(HOOK, encoding="utf-8")
    with demo.config.open("a", encoding="utf-8") as f:
        f.write(f"""
[notify]
command = [{json.dumps(sys.executable)}, {json.dumps(str(hook))}, {json.dumps(str(hook_out))}]
remind_after_hours = 1
approval_window_hours = 2
sweep_seconds = 0.2
language = "{language}"

[notify.mail]
relay = "127.0.0.1:{smtp.port}"
from = "tachiai@isa.example.lg.jp"
""")


def mails(smtp: SmtpServer, to: str | None = None, kind: str = "") -> list[EmailMessage]:
    found = [r.message() for r in smtp.received]
    return [m for m in found if (to is None or m["To"] == EMAILS[to]) and kind in m["Subject"]]


def hook_documents(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def events(demo: Demo, kind: str) -> list[dict[str, Any]]:
    out = demo.cli("audit", "query", "--kind", kind, "--format", "json", check=True).stdout
    return list(json.loads(out))


def restart(demo: Demo, offset_seconds: int) -> None:
    demo.stop()
    demo.start(env={OFFSET_ENV: str(offset_seconds)})


@pytest.mark.slow
def test_witnesses_senders_reminders_expiry_and_duplicates(
    demo: Demo, smtp: SmtpServer, tmp_path: Path
) -> None:
    hook_out = tmp_path / "hook.jsonl"
    with_notify(demo, smtp, hook_out)
    demo.start()
    good = csv_bytes(GOOD_ROWS)
    demo.drop("status-change-2026-10.csv", good)
    [waiting] = demo.wait_state("awaiting_approval")
    tid = waiting["id"]

    # On arrival: each designated witness (not the sender) gets a mail and a hook document.
    wait_for(lambda: mails(smtp, "suzuki", tid) and mails(smtp, "tanaka", tid), 60,
             "the witnesses' mails")
    first = mails(smtp, "suzuki", tid)[0]
    assert "承認待ち" in first["Subject"] and "awaits your approval" in first["Subject"]
    assert f"tachiai approve {tid} --key KEY" in first.get_content()
    assert not mails(smtp, "sato")
    docs = wait_for(lambda: [d for d in hook_documents(hook_out) if d["subject"] == tid
                             and d["to"] == "suzuki"], 10, "the hook's document")
    assert docs[0] == {
        "tachiai": "notice/1", "kind": "approval.waiting", "subject": tid,
        "agreement": "isa-nhi-status-loss", "flow": "monthly", "state": "awaiting_approval",
        "to": "suzuki", "round": 0, "next": docs[0]["next"], "facts": docs[0]["facts"],
        "title": "承認待ちの送信があります / a transfer awaits your approval",
    }
    assert docs[0]["next"] == (f"tachiai transfers statement {tid}; tachiai approve {tid} --key "
                               f"KEY; tachiai reject {tid} --key KEY --reason TEXT")
    assert docs[0]["facts"]["required"] == 1 and docs[0]["facts"]["rows"] == 2
    assert "expires" in docs[0]["facts"]
    demo.wait_ledger()
    sent = events(demo, "notice.sent")
    assert {(e["data"]["to"], e["data"]["channel"]) for e in sent} == {
        ("suzuki", "mail"), ("tanaka", "mail"), ("suzuki", "command"), ("tanaka", "command")}

    # A restart sends nothing twice; an hour later (remind_after_hours = 1), a reminder.
    restart(demo, 3700)
    wait_for(lambda: mails(smtp, "tanaka", "再通知"), 60, "the reminder")
    # the first mail, not repeated by the restart
    assert len(mails(smtp, "suzuki", "/ a transfer awaits your approval")) == 1

    # Past the two-hour window: expired, the file kept, the sender told.
    restart(demo, 7300)
    try:
        demo.wait_state("expired")
    except AssertionError:
        raise AssertionError(demo.daemon_log()) from None
    shown = demo.show(tid)
    assert shown["reasons"][0]["rule"] == "approval.window"
    assert (demo.spool / tid).is_dir()
    expired = wait_for(lambda: mails(smtp, "sato", "expired"), 60, "the sender's expiry mail")
    assert tid in expired[0]["Subject"]
    expiries = events(demo, "transfer.expired")
    assert [e["subject"] for e in expiries] == [tid]

    # Delivered: approved by a witness, the sender told.
    demo.drop("status-change-2026-10-b.csv", good)
    second = wait_for(lambda: demo.transfers("awaiting_approval"), 60, "the second file")[0]
    demo.cli("approve", second["id"], "--key", str(demo.key("suzuki")), check=True)
    demo.wait_state("delivered")
    wait_for(lambda: mails(smtp, "sato", "delivered"), 60, "the sender's delivery mail")

    # The same bytes again: flagged in the statement and the witnesses' mail, refused without
    # --duplicate-ok, counted with it (and the approval event says so).
    demo.drop("status-change-2026-10-c.csv", good)
    third = wait_for(lambda: demo.transfers("awaiting_approval"), 60, "the duplicate")[0]
    statement = demo.cli("transfers", "statement", third["id"], check=True).stdout
    assert statement.endswith(f"duplicate-of: {second['id']}\n")
    notice = wait_for(lambda: mails(smtp, "tanaka", third["id"]), 60, "the duplicate's mail")
    assert f"duplicate_of: {second['id']}" in notice[0].get_content()
    assert "--duplicate-ok" in notice[0].get_content()
    refused = demo.cli("approve", third["id"], "--key", str(demo.key("tanaka")))
    assert refused.returncode == 1 and "approval.duplicate-file" in refused.stderr
    demo.cli("approve", third["id"], "--key", str(demo.key("tanaka")), "--duplicate-ok",
             check=True)
    demo.wait_state("delivered", count=2)
    accepted = events(demo, "approval.accepted")
    assert accepted[-1]["data"]["duplicate_ok"] is True
    assert accepted[-1]["data"]["duplicate_of"] == second["id"]
    assert "duplicate_of" not in accepted[0]["data"]  # an ordinary approval is unchanged

    # Rejected: the sender learns rule, row and column, never the value.
    bad = csv_bytes([GOOD_ROWS[0].replace("131041", "131040")])  # a wrong check digit
    demo.drop("status-change-bad.csv", bad)
    rejected = demo.wait_state("rejected")[0]
    mail = wait_for(lambda: mails(smtp, "sato", rejected["id"]), 60, "the rejection mail")[0]
    body = mail.get_content()
    assert "rejected" in mail["Subject"] and "rule=" in body and "row=" in body
    assert not shows_value(body, "131040")

    # Nothing personal anywhere: no value of the synthetic rows in any mail or hook document
    # ("1", the 性別 code, is a single digit every count contains, so it is left out).
    values = {v for row in GOOD_ROWS for v in row.split(",") if len(v) > 1} | {"131040", "女"}
    texts = [m.as_string() + m.get_content() + str(m["Subject"])
             for m in (r.message() for r in smtp.received)]
    texts.append(hook_out.read_text(encoding="utf-8"))
    for value in values:
        for text in texts:
            assert not shows_value(text, value), value
    assert len(smtp.received) >= 7


def test_notify_settings_are_strict(demo: Demo) -> None:
    text = demo.config.read_text(encoding="utf-8")
    demo.config.write_text(text + '\n[notify]\nremind_after_hour = 1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notify\.remind_after_hour is not") as caught:
        load_settings(demo.config)
    assert "did you mean 'remind_after_hours'" in str(caught.value.hint)
    demo.config.write_text(text + '\n[notify]\napproval_window_hours = -1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="approval_window_hours"):
        load_settings(demo.config)
    demo.config.write_text(text + '\n[notify.mail]\nrelay = "127.0.0.1:25"\nto = "a@b.jp"\n',
                           encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notify\.mail\.to"):
        load_settings(demo.config)
    demo.config.write_text(text + '\n[notify]\napproval_window_hours = 24\n[notify.flow_windows]'
                           '\n"isa-nhi-status-loss/monthly" = 0.5\n', encoding="utf-8")
    notify = load_settings(demo.config).notify
    assert notify.window_hours("isa-nhi-status-loss", "monthly") == 0.5
    assert notify.window_hours("other", "flow") == 24
    assert not notify.channels


def test_a_handlers_email_is_validated() -> None:
    body = {"name": "suzuki", "party": "isa", "roles": ["witness"], "agreements": ["a"],
            "public_key": "ssh-ed25519 AAAA", "designated_from": dt.date(2026, 1, 1)}
    assert Registry.from_mapping({"handlers": [body]}, "r").handlers[0].email is None
    ok = {**body, "email": "suzuki@example.lg.jp"}
    assert Registry.from_mapping({"handlers": [ok]}, "r").handlers[0].email == ok["email"]
    for bad in ("suzuki", "a@b", "a@b.jp\nBcc: x@y.jp", 5):
        with pytest.raises(PolicyFileError, match="email"):
            Registry.from_mapping({"handlers": [{**body, "email": bad}]}, "r")


def test_each_notice_is_sent_once_per_channel_across_restarts(
    demo: Demo, smtp: SmtpServer, tmp_path: Path
) -> None:
    hook_out = tmp_path / "hook.jsonl"
    with_notify(demo, smtp, hook_out)
    notice = Notice("holding.reminder", "h-0123456789ab", "isa-nhi-status-loss", "monthly",
                    "held", "suzuki", "tachiai holdings certify h-0123456789ab …",
                    {"deadline": "2026-12-31", "days_left": 3}, round=3)
    rt = Runtime.open(load_settings(demo.config))
    sent = deliver(rt, [notice])
    assert [channel for _n, channel in sent] == ["mail", "command"]
    assert deliver(rt, [notice]) == []
    assert deliver(Runtime.open(load_settings(demo.config)), [notice]) == []  # a restart
    assert len(smtp.received) == 1 and len(hook_documents(hook_out)) == 1
    mail = smtp.received[0].message()
    assert mail["To"] == EMAILS["suzuki"] and "消去・返却期限" in mail["Subject"]
    # Another round is another notice; a person without an address gets the hook only.
    later = dataclasses.replace(notice, round=0, kind="holding.overdue", to="takahashi")
    assert [c for _n, c in deliver(rt, [later])] == ["command"]


def _holding_notice() -> Notice:
    return Notice("holding.reminder", "h-0123456789ab", "isa-nhi-status-loss", "monthly", "held",
                  "suzuki", "tachiai holdings certify h-0123456789ab --deleted --method TEXT "
                  "--key KEY; tachiai holdings certify h-0123456789ab --returned --method TEXT "
                  "--key KEY", {"deadline": "2026-12-31", "days_left": 3, "rule": "retention"})


@pytest.mark.parametrize("language", ["ja", "en", "ja+en"])
def test_a_mail_is_written_in_the_configured_language(
    demo: Demo, smtp: SmtpServer, tmp_path: Path, language: str
) -> None:
    hook_out = tmp_path / "hook.jsonl"
    with_notify(demo, smtp, hook_out, language)
    rt = Runtime.open(load_settings(demo.config))
    assert rt.settings.notify.language == language
    assert [c for _n, c in deliver(rt, [_holding_notice()])] == ["mail", "command"]
    [received] = smtp.received
    mail = received.message()
    body = mail.get_content().replace("\r\n", "\n")  # an ASCII body travels with CRLF
    japanese = ["保有データの消去・返却期限が近づいています。", "確認書: isa-nhi-status-loss",
                "残り日数: 3", "ルール: retention",
                "次の操作 (消去または返却の後、その証明に署名してください):",
                "この通知には個人情報もファイルの内容も含まれていません。"]
    english = ["a holding's deadline for deletion or return is near.",
               "agreement: isa-nhi-status-loss", "days_left: 3", "rule: retention",
               "next (once the data is deleted or returned, sign its certificate):",
               "This notice carries no personal data and no file content."]
    for line in japanese:
        assert (line in body) == (language != "en"), line
    for line in english:
        assert (line in body) == (language != "ja"), line
    if language == "en":
        assert not has_japanese(body + str(mail["Subject"]))
    if language == "ja":
        assert "deadline for deletion" not in str(mail["Subject"])
    if language == "ja+en":
        assert body.index("保有データ") < body.index("a holding's deadline")
    # Every command stands on its own line, whatever the language, exactly as it is run.
    assert ("\n  tachiai holdings certify h-0123456789ab --deleted --method TEXT --key KEY\n"
            "  tachiai holdings certify h-0123456789ab --returned --method TEXT --key KEY\n"
            ) in body
    # The hook's keys never change with the language; only its title is words for a person.
    [document] = hook_documents(hook_out)
    assert document["kind"] == "holding.reminder" and document["facts"]["days_left"] == 3
    assert document["title"] == _holding_notice().title(language)
    assert has_japanese(document["title"]) == (language != "en")


def test_an_unknown_notice_language_is_refused(demo: Demo) -> None:
    text = demo.config.read_text(encoding="utf-8")
    demo.config.write_text(text + '\n[notify]\nlanguage = "jp"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"notify\.language 'jp' is not one of ja, en, ja\+en"):
        load_settings(demo.config)
    demo.config.write_text(text, encoding="utf-8")
    assert load_settings(demo.config).notify.language == "ja"  # the default


def test_every_fact_a_notice_carries_has_a_label_in_both_languages() -> None:
    """A fact added to a notice without a label would reach a Japanese mail as its English key."""
    import ast

    from gateway.exchange import notices as people

    root = Path(people.__file__).resolve().parents[1]
    keys: set[str] = set()
    for source in (root / "outbound" / "notices.py", root / "inbound" / "sweep.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                    and node.value.id == "facts" and isinstance(node.slice, ast.Constant):
                keys.add(str(node.slice.value))
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
                if isinstance(target, ast.Name) and target.id == "facts":
                    keys.update(str(k.value) for k in node.value.keys
                                if isinstance(k, ast.Constant))
    keys |= {"rule", "row", "column"}  # a rejection's reasons
    assert {"size", "rows", "sender", "expires", "deadline", "days_left"} <= keys
    labels = people._LABELS
    assert sorted(keys - set(labels)) == []
    assert [k for k in keys if not has_japanese(labels[k][0])] == []
