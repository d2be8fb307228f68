"""Notices to people (通知): what one says, and telling each person once per channel.

Both halves use it: the sending side tells witnesses what waits for them and senders what
became of their files; the receiving side tells handlers of deadlines. A notice names ids,
the agreement, the flow, the state, rule ids, counts and the command to run next — never a
value from a file, a file's content or a secret. Each notice that reached a person is a
`notice.sent` ledger event keyed by subject, kind, round, person and channel, so a restart
never tells anybody twice (a crash between the send and its record may repeat one notice).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.errors import AuditError
from audit.events import Draft
from audit.query import Query, search
from gateway.errors import StorageError, TachiaiError
from gateway.i18n import N_
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.transports.notify import run_hook, send_mail

log = logging.getLogger(__name__)

#: The document the hook gets on stdin (its "tachiai" member names this version).
FORMAT = "notice/1"
CHANNELS = ("mail", "command")
#: What each kind of notice says, in Japanese and English (subject line, first paragraph).
_WORDS: Mapping[str, tuple[str, str]] = {
    "approval.waiting": ("承認待ちの送信があります", "a transfer awaits your approval"),
    "approval.reminder": ("承認待ちの送信があります（再通知）",
                          "reminder: a transfer still awaits your approval"),
    "approval.again": ("承認をやり直してください（同じ内容が送付済み）",
                       "a transfer awaits your approval again: the same bytes were delivered"),
    "transfer.rejected": ("送信が拒否されました", "your transfer was rejected"),
    "transfer.delivered": ("送信が完了しました", "your transfer was delivered"),
    "transfer.failed": ("送信に失敗しました", "delivery of your transfer failed"),
    "transfer.expired": ("承認期限を過ぎたため送信を取り止めました",
                         "your transfer expired unapproved"),
    "holding.reminder": ("保有データの消去・返却期限が近づいています",
                         "a holding's deadline for deletion or return is near"),
    "holding.overdue": ("保有データの消去・返却期限を過ぎています",
                        "a holding is past its deadline for deletion or return"),
}
#: What the commands of `next` are for, by kind of notice (Japanese, English).
_NEXT: Mapping[str, tuple[str, str]] = {
    "approval.waiting": ("明細を確認し、承認するか拒否してください",
                         "read the statement, then approve or reject"),
    "approval.again": ("新しい明細を確認し、意図した再送なら --duplicate-ok を付けて承認し、"
                       "そうでなければ拒否してください",
                       "read the new statement; approve with --duplicate-ok only if sending the "
                       "same data again is intended, otherwise reject"),
    "transfer.rejected": ("理由 (ルールと行・列) を確認し、ファイルを直して置き直してください",
                          "see the reasons (rule, row, column), correct the file, drop it again"),
    "transfer.expired": ("承認を受けるには、ファイルを改めて置いてください",
                         "to have it approved anew, drop the file again"),
    "transfer.failed": ("原因を取り除いた後、運用担当者が再試行します",
                        "an operator retries once the cause is fixed"),
    "holding.reminder": ("消去または返却の後、その証明に署名してください",
                         "once the data is deleted or returned, sign its certificate"),
}
#: The labels of the lines a person reads (Japanese, English); English keeps the document's key.
_LABELS: Mapping[str, tuple[str, str]] = {
    "id": ("番号", "id"), "agreement": ("確認書", "agreement"), "flow": ("フロー", "flow"),
    "state": ("状態", "state"), "size": ("大きさ (バイト)", "size"), "rows": ("行数", "rows"),
    "sender": ("送信者", "sender"), "approvals": ("承認済みの数", "approvals"),
    "required": ("必要な承認の数", "required"),
    "waiting_since": ("承認待ちの開始", "waiting_since"), "expires": ("承認期限", "expires"),
    "duplicate_of": ("同じ内容の送付済みの提供", "duplicate_of"),
    "set_aside": ("無効になった承認の数", "set_aside"),
    "reasons": ("理由", "reasons"), "reason_count": ("理由の数", "reason_count"),
    "attempts": ("送付の試行回数", "attempts"), "at": ("日時", "at"),
    "deadline": ("期限", "deadline"), "days_left": ("残り日数", "days_left"),
    "transfer": ("提供", "transfer"), "provider": ("提供元", "provider"),
    "rule": ("ルール", "rule"),
    "row": ("行", "row"), "column": ("列", "column"), "next": ("次の操作", "next"),
}
_FOOTER = ("この通知には個人情報もファイルの内容も含まれていません。",
           "This notice carries no personal data and no file content.")


@dataclass(frozen=True)
class Notice:
    """One thing one person is told. `facts` hold ids, counts and rule ids only."""

    kind: str  # a key of _WORDS
    subject: str  # the transfer or holding id
    agreement: str
    flow: str
    state: str
    to: str  # the handler's name in the registry
    next: str  # the commands to run next, "; " between them ("" when nothing is to be done)
    facts: Mapping[str, Any] = field(default_factory=dict)
    round: int = 0  # reminders: which one; part of the key

    def key(self, channel: str) -> str:
        return f"notice:{self.subject}:{self.kind}:{self.round}:{self.to}:{channel}"

    def document(self, language: str = "ja") -> dict[str, Any]:
        """What the hook gets, as JSON (documented in docs/notifications.md): machine keys and
        values, and `title`, the one line a person reads, in `language`."""
        return {
            "tachiai": FORMAT, "kind": self.kind, "subject": self.subject,
            "agreement": self.agreement, "flow": self.flow, "state": self.state, "to": self.to,
            "next": self.next, "round": self.round, "facts": dict(self.facts),
            "title": self.title(language),
        }

    def title(self, language: str = "ja") -> str:
        """What happened, in one line: Japanese, English, or both ("ja / en")."""
        return " / ".join(_WORDS[self.kind][i] for i in _indexes(language))

    def subject_line(self, language: str = "ja") -> str:
        return f"[tachiai] {self.title(language)}: {self.subject} ({self.agreement}/{self.flow})"

    def text(self, language: str = "ja") -> str:
        """The mail's body: the same facts as the document, for a person to read; with both
        languages, the Japanese part first and the English part after it."""
        parts = ["\n".join(self._lines(i)) for i in _indexes(language)]
        return "\n\n----\n\n".join(parts) + "\n"

    def _lines(self, i: int) -> list[str]:
        """The body in one language: 0 Japanese, 1 English."""
        words = _WORDS[self.kind][i]
        lines = [words + ("。" if i == 0 else "."), ""]
        rows = [("id", self.subject), ("agreement", self.agreement), ("flow", self.flow),
                ("state", self.state)]
        rows += [(key, _plain(value, i)) for key, value in sorted(self.facts.items())]
        lines += [f"  {_label(key, i)}: {value}" for key, value in rows]
        if self.next:
            why = _NEXT.get(self.kind.replace("approval.reminder", "approval.waiting")
                            .replace("holding.overdue", "holding.reminder"))
            heading = _label("next", i) + (f" ({why[i]})" if why else "")
            lines += ["", heading + ":"]
            lines += [f"  {command.strip()}" for command in self.next.split("; ")]
        lines += ["", _FOOTER[i]]
        return lines


def deliver(rt: Runtime, notices: Iterable[Notice],
            channels: Sequence[str] = CHANNELS) -> list[tuple[Notice, str]]:
    """Tell each person over every configured channel not yet used for this notice; record each
    success as `notice.sent`; return (notice, channel) for each sent now.

    A channel that fails is logged and tried again at the next sweep; it never stops the others.

    Raises:
        StorageError: the state database or the ledger cannot be written.
    """
    cfg = rt.settings.notify
    sent_before: dict[str, set[str]] = {}
    done: list[tuple[Notice, str]] = []
    for notice in notices:
        person = rt.registry.by_name(notice.to)
        known = sent_before.get(notice.subject)
        if known is None:
            known = sent_before[notice.subject] = _sent_keys(rt, notice.subject)
        for channel in channels:
            key = notice.key(channel)
            if key in known:
                continue
            try:
                if channel == "mail":
                    if cfg.mail is None or person is None or person.email is None:
                        continue
                    send_mail(cfg.mail, person.email, notice.subject_line(cfg.language),
                              notice.text(cfg.language), key.replace(":", ".").replace("@", "."))
                else:
                    if not cfg.command:
                        continue
                    document = notice.document(cfg.language)
                    run_hook(cfg.command, json.dumps(document, ensure_ascii=False,
                                                     sort_keys=True).encode("utf-8"),
                             cfg.command_timeout_seconds)
            except TachiaiError as exc:
                log.warning("notice %s of %s to %s by %s not sent: %s", notice.kind,
                            notice.subject, notice.to, channel, exc)
                continue
            rt.store.record([Draft(
                key=key, kind="notice.sent", time_ns=clock.now_ns(), subject=notice.subject,
                agreement=notice.agreement, actor=None,
                data={"notice": notice.kind, "to": notice.to, "channel": channel,
                      "flow": notice.flow, "state": notice.state, "round": notice.round})])
            known.add(key)
            done.append((notice, channel))
            log.info("told %s (%s) of %s %s", notice.to, channel, notice.kind, notice.subject)
    if done:
        rt.flush()
    return done


def _sent_keys(rt: Runtime, subject: str) -> set[str]:
    """Keys of the notices about `subject` already recorded, in the ledger or still pending."""
    try:
        keys = {ev.key for ev in search(rt.ledger, Query(kind="notice.sent", subject=subject))}
    except AuditError as exc:
        raise StorageError(
            N_("cannot read the ledger for sent notices: {exc}").format(exc=exc)) from exc
    keys.update(d.key for d in rt.store.pending() if d.kind == "notice.sent")
    return keys


def _indexes(language: str) -> tuple[int, ...]:
    return {"ja": (0,), "en": (1,)}.get(language, (0, 1))


def _label(key: str, i: int) -> str:
    return _LABELS[key][i] if key in _LABELS else key


def _plain(value: Any, i: int = 1) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v, i) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join(f"{_label(k, i)}={_plain(v, i)}" for k, v in value.items())
    return "-" if value is None else str(value)
