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


@dataclass(frozen=True)
class Notice:
    """One thing one person is told. `facts` hold ids, counts and rule ids only."""

    kind: str  # a key of _WORDS
    subject: str  # the transfer or holding id
    agreement: str
    flow: str
    state: str
    to: str  # the handler's name in the registry
    next: str  # the command to run next ("" when nothing is to be done)
    facts: Mapping[str, Any] = field(default_factory=dict)
    round: int = 0  # reminders: which one; part of the key

    def key(self, channel: str) -> str:
        return f"notice:{self.subject}:{self.kind}:{self.round}:{self.to}:{channel}"

    def document(self) -> dict[str, Any]:
        """What the hook gets, as JSON (documented in docs/notifications.md)."""
        return {
            "tachiai": FORMAT, "kind": self.kind, "subject": self.subject,
            "agreement": self.agreement, "flow": self.flow, "state": self.state, "to": self.to,
            "next": self.next, "round": self.round, "facts": dict(self.facts),
        }

    def subject_line(self) -> str:
        ja, en = _WORDS[self.kind]
        return f"[tachiai] {ja} / {en}: {self.subject} ({self.agreement}/{self.flow})"

    def text(self) -> str:
        """The mail's body: the same facts as the document, for a person to read."""
        ja, en = _WORDS[self.kind]
        lines = [f"{ja}。", f"{en}.", "", f"  id / 番号:           {self.subject}",
                 f"  agreement / 確認書:  {self.agreement}", f"  flow / 提供:        {self.flow}",
                 f"  state / 状態:        {self.state}"]
        for key, value in sorted(self.facts.items()):
            lines.append(f"  {key}: {_plain(value)}")
        if self.next:
            lines += ["", "next / 次の操作:", f"  {self.next}"]
        lines += ["", "This notice carries no personal data and no file content.",
                  "この通知には個人情報もファイルの内容も含まれていません。"]
        return "\n".join(lines) + "\n"


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
                    send_mail(cfg.mail, person.email, notice.subject_line(), notice.text(),
                              key.replace(":", ".").replace("@", "."))
                else:
                    if not cfg.command:
                        continue
                    run_hook(cfg.command, json.dumps(notice.document(), ensure_ascii=False,
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
        raise StorageError(f"cannot read the ledger for sent notices: {exc}") from exc
    keys.update(d.key for d in rt.store.pending() if d.kind == "notice.sent")
    return keys


def _plain(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join(f"{k}={_plain(v)}" for k, v in value.items())
    return "-" if value is None else str(value)
