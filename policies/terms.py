"""The terms of an agreement (確認書の条件) beyond parties and datasets, as frozen values.

Owns the vocabularies an agreement file may use — schedules (提供時期), renewal (更新), the
delegation scope (委任状による提供範囲), retention and deletion or return (消去・返却), the
handling report (取扱状況の報告) and the recipient's obligations (提供先に求める措置) — and
their value types. Only values: parsing is in `policies.agreement_file`, decisions elsewhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from policies.calendar import Period

# 立会者の鍵: what an approval signature must prove beyond the key (FIDO2 flags, PROTOCOL.u2f).
WITNESS_KEY_TERMS = {
    "require_user_presence": "the security key was touched (always required; only true is allowed)",
    "require_user_verification": "the witness proved who they are to a security key (PIN or "
    "biometric); signatures from key files, which cannot prove it, do not count",
}
# 提供時期: how often a flow runs. Only "month" has due dates the daemon can track.
SCHEDULE_KINDS = {
    "month": "monthly (月次)",
    "event": "each time the event occurs (事由発生の都度)",
    "request": "in answer to a request (照会に応じて)",
    "as-needed": "as needed within the period (随時)",
}
# Due-date rules of monthly flows, by id; the words are the agreements' own.
DUE_RULES = {
    # seeds 000 記1(2), 001 記1(2)ア: 月次で翌月の最終業務日の遅くとも一業務日前まで
    "next-month-last-business-day-minus-1": "翌月の最終業務日の遅くとも一業務日前まで",
    "next-month-last-business-day": "翌月の最終業務日まで",
}
# seed 001 記1(2)イ: 届出情報を把握した場合に遅滞なく — no fixed date; recorded, not tracked.
EVENT_DUE_RULES = {"without-delay": "遅滞なく"}

RENEWAL_KINDS = {
    # seed 003: 令和8年6月1日から令和9年3月31日まで (次年度以降も、同様の外部提供を行う。)
    "fiscal-year": "renewed for each fiscal year (年度), April to March",
}
SCOPE_OUTSIDE = {
    "reject": "a file holding any row outside the scope is rejected",
    "split": "rows outside the scope are withheld and only covered rows are provided",
}
SCOPE_AS_OF = {
    "provision": "a municipality is covered from the date it filed (on the day of provision)",
    "row": "a municipality is covered for rows dated on or after the day it filed",
}
RETENTION_THEN = {
    "delete": "消去",
    "return": "返却",
    "delete-or-return": "消去又は返却",
}
RETENTION_AFTER = {
    "use": "after use for the purpose (利用後)",
    "validity-end": "when the agreement's period of validity ends",
}
REPORT_EVERY = {
    "on-request": "when the provider requests it (所要の報告の要求)",
    "monthly": "monthly",
    "quarterly": "quarterly",
    "yearly": "yearly",
}
# 提供先に対し講ずるよう求める措置 (seed 003 checklist (1)–(7)) and the conditions of seeds 000
# and 001 記1(3). Each id that tachiai can check is tied to a term by `policies.agreement_file`.
OBLIGATIONS = {
    "purpose-limit": "(1) 利用目的又は方法の制限",
    "handlers-limited": "(2) 取扱者の範囲の限定",
    "no-onward": "(3) 第三者への再提供の制限又は禁止",
    "deletion-or-return": "(4) 消去、返却等利用後の取扱いの指定",
    "report": "(5) 取扱状況に関する所要の報告の要求",
    "corrections": "(6) 訂正の決定を行った場合において、当該訂正に応じる",
    "security": "(7) 適切な情報保護対策、情報セキュリティ対策の実施",
    "confidentiality": "提供を受けた情報の機密性を保持すること",
    "inspection": "必要に応じ実地の調査等により措置の状況を確認すること",
}


@dataclass(frozen=True)
class Schedule:
    """When a flow's provision is due (提供時期).

    For monthly flows, `first_period` is the first month a provision is owed for, and
    `catch_up_from` the earliest day the first provision may reach back to (seed 000 その他:
    令和4年4月1日から提供する月次までの情報をとりまとめて).
    """

    every: str = "as-needed"
    due: str | None = None
    first_period: Period | None = None
    catch_up_from: dt.date | None = None

    @property
    def monthly(self) -> bool:
        return self.every == "month"

    @property
    def words(self) -> str:
        """The schedule in the agreement's words, for summaries."""
        if self.due in DUE_RULES:
            return f"{SCHEDULE_KINDS[self.every]}, {DUE_RULES[self.due]}"
        if self.due in EVENT_DUE_RULES:
            return f"{SCHEDULE_KINDS[self.every]}, {EVENT_DUE_RULES[self.due]}"
        return SCHEDULE_KINDS.get(self.every, self.every)


@dataclass(frozen=True)
class RenewalRecord:
    """One recorded renewal (更新): the agreement now runs until `until`."""

    until: dt.date
    decided: dt.date | None = None
    reference: str = ""


@dataclass(frozen=True)
class Renewal:
    """How the agreement is renewed, and the renewals recorded so far (fail closed: a renewal
    the file does not record does not extend the period)."""

    every: str
    renewed: tuple[RenewalRecord, ...] = ()


@dataclass(frozen=True)
class Scope:
    """The delegation scope (委任状): only rows of municipalities in the registry go.

    `column` holds each row's local government code; `registry` is the delegation registry's
    file name, beside the agreement file; `outside` says whether uncovered rows reject the file
    or are withheld; `as_of` whether coverage is judged on the day of provision or on each row's
    `date_column`.
    """

    flows: tuple[str, ...]
    column: str
    registry: str
    outside: str = "reject"
    as_of: str = "provision"
    date_column: str | None = None


@dataclass(frozen=True)
class Retention:
    """What the recipient does with the data after use (消去・返却), and whether a designated
    handler certifies it by signature (証明)."""

    then: str
    after: str = "use"
    certificate: bool = True
    max_days: int | None = None


@dataclass(frozen=True)
class Report:
    """The handling report (取扱状況の報告): how often, and to which party."""

    every: str
    to: str


@dataclass(frozen=True)
class WitnessKeys:
    """What a witness's approval signature must prove (立会者の鍵). User presence (a touch) is
    always required of a security key; `require_user_verification` also demands the PIN or
    biometric flag, which only a security key can show."""

    require_user_verification: bool = False


@dataclass(frozen=True)
class Obligation:
    """A measure a party must take (措置), by id from OBLIGATIONS, with the agreement's text."""

    id: str
    party: str
    text: str
