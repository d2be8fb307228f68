"""The agreement (確認書) as values: parties, flows, datasets and every term they carry.

`policies.agreement_file.parse_agreement` builds one from the TOML table of an agreement file
and refuses anything it does not understand, naming the key and the fix. The result is frozen:
nothing downstream can loosen a term. Reading the file from disk is the caller's job; this
module never touches the file system.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

from policies.delegations import DelegationRegistry
from policies.groups import GroupRegistry, Member, PartyGroup
from policies.reasons import Reason
from policies.terms import (
    Obligation,
    Renewal,
    Report,
    Retention,
    Schedule,
    Scope,
    WitnessKeys,
)

ENCODINGS = frozenset({"cp932", "utf-8", "utf-8-sig"})
FORMATS = frozenset({"csv", "xlsx"})
ENCRYPTION_PROFILES = {
    "zip-aes256": "AES-256 ZIP, password sent by a separate route",
    "age": "age encryption to the recipient's key",
    # seed 003: Excelシート・ZIPファイルの双方にパスワードを設定して送信する
    "xlsx-password+zip-aes256": "password-protected workbook inside an AES-256 ZIP",
}
PARTY_KINDS = frozenset(
    {
        "national-agency",
        "ministry",
        "association",
        "federation",
        "municipality",
        "contractor",
        "regional-bureau",
        "public-corporation",
        "other",
    }
)
FLOW_KINDS = {
    "provision": "提供",
    "inquiry": "疑義照会",
    "answer": "回答",
    "notice": "通知",
    "correction": "訂正",
}
MEDIA = {
    "exchange-server": "this exchange server (tachiai)",
    "electronic-media": "電磁的記録媒体",
    "hand-delivered-media": "電磁的記録媒体の手交",
    "post": "郵送",
    "lgwan-mail": "LGWAN及び政府共通ネットワーク経由の電子メール",
}
LEGAL_BASES = {
    # APPI art. 61 (specified purpose, regular provision) and art. 69(2)(iii) (provision for a
    # considerable reason): the report cites which one a transfer relied on.
    "appi-61": "specified purpose (APPI art. 61)",
    "appi-69-2-iii": "considerable reason (APPI art. 69(2)(iii))",
}
MY_NUMBER_POLICIES = {"forbidden": "no 個人番号 may appear anywhere in the file"}


@dataclass(frozen=True)
class Party:
    """A party to the agreement: 提供元 (provider), 提供先 (recipient) or a further recipient.

    `designates` are the roles the agreement requires the party to designate handlers for
    (取扱者の指定, seed 003); the people themselves are in the handler registry.
    """

    id: str
    name: str
    kind: str
    signatory: str | None = None
    designates: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Column:
    """A data item (情報項目) of a dataset, with the type its values must fit."""

    name: str
    type: str
    required: bool = True
    max_length: int | None = None
    allowed: tuple[str, ...] | None = None  # the only values (after NFKC) the cell may hold
    # A leading + or - is a signed number here, not a formula (policies.formulas).
    allow_sign: bool = False


@dataclass(frozen=True)
class Category:
    """One category (別紙) of records a dataset carries, e.g. 特定活動(告示25号)."""

    id: str
    name: str


@dataclass(frozen=True)
class Dataset:
    """The columns, format and encodings of one kind of file a flow carries."""

    id: str
    format: str
    encodings: tuple[str, ...]
    columns: tuple[Column, ...]
    my_number: str  # "forbidden": no 個人番号 may appear anywhere in the file
    title: str = ""
    categories: tuple[Category, ...] = ()
    category_column: str | None = None  # holds each row's category id
    event_date_column: str | None = None  # the date each row reports (e.g. 在留資格変更年月日)

    @property
    def header(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Flow:
    """One direction of provision: from provider to recipient, with its own terms."""

    id: str
    provider: str
    recipient: str
    dataset: str
    witnesses: int
    encryption: str
    onward: tuple[str, ...]
    kind: str = "provision"
    reply_to: str | None = None  # the flow this one answers (疑義照会 → 回答)
    schedule: Schedule = field(default_factory=Schedule)
    legal_basis: str | None = None  # overrides the agreement's for this flow
    medium: str = "exchange-server"
    title: str = ""


@dataclass(frozen=True)
class Agreement:
    """One 確認書: its parties, flows, datasets, validity period and terms."""

    id: str
    title: str
    purpose: str
    legal_basis: str
    references: tuple[str, ...]
    concluded: dt.date | None
    valid_from: dt.date
    valid_until: dt.date | None
    parties: Mapping[str, Party]
    flows: tuple[Flow, ...]
    datasets: Mapping[str, Dataset]
    legal_basis_text: str = ""
    renewal: Renewal | None = None
    onward_chain: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    contractors: frozenset[str] = frozenset()  # parties that may entrust work to 委託事業者
    scope: Scope | None = None
    delegations: DelegationRegistry | None = None  # attached by the loader (see with_delegations)
    retention: Retention | None = None
    report: Report | None = None
    corrections: bool = False
    witness_keys: WitnessKeys = field(default_factory=WitnessKeys)
    obligations: tuple[Obligation, ...] = ()
    clauses: Mapping[str, str] = field(default_factory=dict)
    notes: str = ""
    # Parties made of members keyed by 地方公共団体コード (attached by the loader, with_groups).
    groups: Mapping[str, PartyGroup] = field(default_factory=dict)

    def flow(self, flow_id: str) -> Flow:
        """Raises: KeyError when the agreement has no such flow."""
        for flow in self.flows:
            if flow.id == flow_id:
                return flow
        raise KeyError(flow_id)

    def dataset_of(self, flow: Flow) -> Dataset:
        return self.datasets[flow.dataset]

    @property
    def effective_until(self) -> dt.date | None:
        """The last day in force, counting the renewals (更新) the file records."""
        if self.valid_until is None:
            return None
        renewed = [r.until for r in self.renewal.renewed] if self.renewal else []
        return max([self.valid_until, *renewed])

    def in_force(self, on: dt.date) -> bool:
        """Whether the agreement applies on this date (適用の開始日 to its end, inclusive)."""
        if on < self.valid_from:
            return False
        until = self.effective_until
        return until is None or on <= until

    def basis_of(self, flow: Flow) -> str:
        """The legal basis (APPI art. 61 or 69(2)(iii)) a transfer on this flow relies on."""
        return flow.legal_basis or self.legal_basis

    def term(self, key: str) -> str:
        """The stable citation of a term: "AGREEMENT-ID/KEY"."""
        return f"{self.id}/{key}"

    def clause(self, key: str) -> str | None:
        """Where the signed text states the term: the longest [clauses] key that prefixes it."""
        best: str | None = None
        for prefix in self.clauses:
            if (key == prefix or key.startswith(prefix + ".")) and (
                best is None or len(prefix) > len(best)
            ):
                best = prefix
        return self.clauses[best] if best is not None else None

    def reason(
        self,
        rule: str,
        message: str,
        key: str,
        *,
        row: int | None = None,
        column: str | None = None,
    ) -> Reason:
        """A reason citing the term `key` of this agreement and its clause."""
        return Reason(rule, message, self.term(key), row, column, self.clause(key))

    def group_of(self, party: str) -> PartyGroup | None:
        """The group a member party belongs to, or None when `party` is no group's member."""
        return next((g for g in self.groups.values() if g.member(party) is not None), None)

    def role_of(self, party: str) -> str:
        """The party a member acts as (its group), or the party itself."""
        group = self.group_of(party)
        return group.party if group is not None else party

    def acts_as(self, party: str, role: str) -> bool:
        """Whether `party` is `role` or one of the members of the group `role`."""
        return party == role or self.role_of(party) == role

    def party_of(self, group: str, code: str) -> Member | None:
        """The member of `group` a local government code names, or None (never a guess)."""
        found = self.groups.get(group)
        return found.party_of(code) if found is not None else None

    def flow_for(self, flow: Flow, provider: str | None, recipient: str | None) -> Flow:
        """The flow as one member of a group runs it: a flow from or to a party group, with the
        member in the group's place. Anything else (the flow's own parties, a party that is no
        member of the flow's group) leaves the flow as it is, so the checks that compare parties
        still refuse it."""
        out = flow
        if provider and provider != flow.provider and self.acts_as(provider, flow.provider):
            out = dataclasses.replace(out, provider=provider)
        if recipient and recipient != flow.recipient and self.acts_as(recipient, flow.recipient):
            out = dataclasses.replace(out, recipient=recipient)
        return out

    def with_groups(self, registry: GroupRegistry) -> Agreement:
        """This agreement with its party groups attached: every member becomes a party of its
        own, with the group's kind and designated roles, its place in the onward chain and its
        use of contractors.

        Raises:
            ValueError: the registry is for another agreement, or names a group that is not a
                party of it.
        """
        if registry.agreement != self.id:
            raise ValueError(f"the groups file is for {registry.agreement!r}, not {self.id!r}")
        parties = dict(self.parties)
        chain = {k: list(v) for k, v in self.onward_chain.items()}
        contractors = set(self.contractors)
        for gid, group in registry.groups.items():
            base = parties.get(gid)
            if base is None:
                raise ValueError(f"group {gid!r} is not a party of agreement {self.id}")
            for m in group.members:
                if m.party in parties:
                    raise ValueError(f"member {m.party!r} of {gid} is already a party")
                parties[m.party] = Party(m.party, m.name, base.kind, None, base.designates)
                if gid in chain:
                    chain[m.party] = list(chain[gid])
                if gid in contractors:
                    contractors.add(m.party)
            for nxt in chain.values():
                if gid in nxt:
                    nxt.extend(m.party for m in group.members if m.party not in nxt)
        return dataclasses.replace(
            self,
            parties=parties,
            onward_chain={k: tuple(v) for k, v in chain.items()},
            contractors=frozenset(contractors),
            groups=dict(registry.groups),
        )

    def with_delegations(self, registry: DelegationRegistry) -> Agreement:
        """This agreement with its delegation registry attached.

        Raises:
            ValueError: the registry is for another agreement, or the agreement has no scope.
        """
        if self.scope is None:
            raise ValueError(f"agreement {self.id} has no [scope] that uses a registry")
        if registry.agreement != self.id:
            raise ValueError(
                f"the delegation registry is for {registry.agreement!r}, not {self.id!r}"
            )
        return dataclasses.replace(self, delegations=registry)
