"""The term tables of an agreement file: schedule (提供時期), renewal (更新), onward chain
(再提供), delegation scope (委任状), retention (消去・返却), report (取扱状況の報告), corrections,
and what witnesses' keys must prove (witness_keys).

Parses each into the values of `policies.terms`, cross-checking them against the parties,
flows and datasets (a scope's column must hold local government codes). Problems go into the
caller's `Problems`. Pure: no file access. Obligations and clauses: `policies.obligation_file`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from policies.agreement import Dataset, Flow, Party
from policies.calendar import Period
from policies.errors import Problems, known
from policies.terms import (
    DUE_RULES,
    EVENT_DUE_RULES,
    RENEWAL_KINDS,
    REPORT_EVERY,
    RETENTION_AFTER,
    RETENTION_THEN,
    SCHEDULE_KINDS,
    SCOPE_AS_OF,
    SCOPE_OUTSIDE,
    WITNESS_KEY_TERMS,
    Renewal,
    RenewalRecord,
    Report,
    Retention,
    Schedule,
    Scope,
    WitnessKeys,
)
from policies.wording import R_

__all__ = ["TermsReader", "parse_schedule"]

# A registry file sits beside its agreement: a bare name, never a path (no "/", no "..").
_REGISTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.toml")


def parse_schedule(raw: Any, where: str, p: Problems) -> Schedule:
    """A flow's `schedule` table; absent means as needed (随時)."""
    if raw is None:
        return Schedule()
    if not isinstance(raw, dict):
        p.fail(where, R_("not a table"), R_('write schedule = { every = "month", due = "…" }'))
        return Schedule()
    _known(raw, {"every", "due", "first_period", "catch_up_from"}, where, p)
    every = raw.get("every", "as-needed")
    if not known(every, SCHEDULE_KINDS):
        p.fail(f"{where}.every", R_("unknown schedule"), R_("use one of: {choices}",
                                                        choices=', '.join(SCHEDULE_KINDS)))
        return Schedule()
    due = raw.get("due")
    rules = DUE_RULES if every == "month" else EVENT_DUE_RULES if every == "event" else {}
    if every == "month" and not known(due, rules):
        p.fail(
            f"{where}.due",
            R_("a monthly schedule needs a due-date rule"),
            R_("use one of: {choices}", choices=', '.join(DUE_RULES)),
        )
        due = None
    elif every != "month" and due is not None and not known(due, rules):
        p.fail(
            f"{where}.due",
            R_("not a due rule for an {every} schedule", every=every),
            R_("use one of: {choices}", choices=', '.join(rules)) if rules else R_("remove due"),
        )
        due = None
    first: Period | None = None
    if "first_period" in raw:
        try:
            first = Period.parse(str(raw["first_period"]))
        except ValueError:
            p.fail(f"{where}.first_period", R_("not a month"), R_('write first_period = "2023-04"'))
    catch_up = raw.get("catch_up_from")
    if catch_up is not None and not _is_date(catch_up):
        p.fail(f"{where}.catch_up_from", R_("not a date"), R_("write catch_up_from = 2022-04-01"))
        catch_up = None
    if every != "month" and (first is not None or catch_up is not None):
        p.fail(
            where,
            R_("first_period and catch_up_from apply to monthly schedules only"),
            R_('remove them or set every = "month"'),
        )
    if (
        first is not None
        and catch_up is not None
        and catch_up > dt.date(first.year, first.month, 1)
    ):
        p.fail(
            f"{where}.catch_up_from",
            R_("after the first period begins"),
            R_("the first provision reaches back, so catch_up_from comes before first_period"),
        )
    return Schedule(str(every), due, first, catch_up)


class TermsReader:
    """Reads the term tables of one agreement file into values, reporting problems."""

    def __init__(self, data: Mapping[str, Any], parties: Mapping[str, Party], p: Problems) -> None:
        self.data = data
        self.parties = parties
        self.p = p

    def table(self, key: str, keys: set[str]) -> Mapping[str, Any] | None:
        raw = self.data.get(key)
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.p.fail(key, R_("not a table"), R_("write [{key}]", key=key))
            return None
        _known(raw, keys, key, self.p)
        return raw

    def party(self, value: Any, key: str) -> bool:
        if isinstance(value, str) and value in self.parties:
            return True
        self.p.fail(
            key,
            R_("names no party of this agreement"),
            R_("use one of: {choices}", choices=', '.join(sorted(self.parties))),
        )
        return False

    def onward(self) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
        """[onward]: who may pass the data on to whom (再提供), and who may use contractors."""
        raw = self.table("onward", {"chain", "contractors"})
        if raw is None:
            return self._chain_from_flows(), frozenset()
        chain: dict[str, tuple[str, ...]] = {}
        body = raw.get("chain", {})
        if not isinstance(body, dict):
            self.p.fail("onward.chain", R_("not a table"), R_("write [onward.chain]"))
            body = {}
        for holder, targets in body.items():
            key = f"onward.chain.{holder}"
            if not self.party(holder, key):
                continue
            if not isinstance(targets, list) or not all(self.party(t, key) for t in targets):
                continue
            if holder in targets:
                self.p.fail(key, R_("lists the holder itself"), R_("list only other parties"))
            chain[holder] = tuple(targets)
        contractors = raw.get("contractors", [])
        if not isinstance(contractors, list) or not all(
            self.party(c, "onward.contractors") for c in contractors
        ):
            contractors = []
        return chain, frozenset(contractors)

    def _chain_from_flows(self) -> dict[str, tuple[str, ...]]:
        # Without [onward], each flow's own `onward` list is the chain for its recipient.
        chain: dict[str, tuple[str, ...]] = {}
        flows = self.data.get("flows")
        for body in flows if isinstance(flows, list) else []:
            if not isinstance(body, dict) or not isinstance(body.get("onward"), list):
                continue
            recipient, onward = body.get("to"), tuple(body["onward"])
            if isinstance(recipient, str) and chain.setdefault(recipient, onward) != onward:
                self.p.fail(
                    "flows",
                    R_("flows to {recipient} disagree on onward", recipient=recipient),
                    R_("state the chain once in [onward.chain]"),
                )
        return chain

    def renewal(self, valid_until: dt.date | None) -> Renewal | None:
        """[renewal]: how the agreement is renewed and the renewals recorded (更新)."""
        raw = self.table("renewal", {"every", "renewed"})
        if raw is None:
            return None
        every = raw.get("every")
        if not known(every, RENEWAL_KINDS):
            self.p.fail(
                "renewal.every", R_("unknown renewal"), R_("use one of: {choices}",
                                                       choices=', '.join(RENEWAL_KINDS))
            )
            return None
        if valid_until is None:
            self.p.fail(
                "renewal",
                R_("an agreement without an end is never renewed"),
                R_("set valid_until, or remove [renewal]"),
            )
            return None
        records: list[RenewalRecord] = []
        previous = valid_until
        renewed = raw.get("renewed", [])
        if not isinstance(renewed, list):
            self.p.fail("renewal.renewed", R_("not a list"), R_("write renewed = [{ until = … }]"))
            renewed = []
        for i, body in enumerate(renewed):
            key = f"renewal.renewed[{i}]"
            if not isinstance(body, dict) or not _is_date(body.get("until")):
                self.p.fail(
                    f"{key}.until",
                    R_("missing or not a date"),
                    R_("write until = 2028-03-31"),
                )
                continue
            _known(body, {"until", "decided", "reference"}, key, self.p)
            until = body["until"]
            expected = dt.date(previous.year + 1, 3, 31)
            if until != expected:
                # 次年度以降も同様: each renewal adds the next fiscal year (April–March), no gap.
                self.p.fail(
                    f"{key}.until",
                    R_("a fiscal-year renewal after {previous} runs to {expected}",
                       previous=previous, expected=expected),
                    R_("write until = {expected}", expected=expected),
                )
            decided = body.get("decided")
            if decided is not None and not _is_date(decided):
                self.p.fail(f"{key}.decided", R_("not a date"), R_("write decided = 2027-03-15"))
                decided = None
            records.append(RenewalRecord(until, decided, str(body.get("reference", ""))))
            previous = until
        return Renewal(str(every), tuple(records))

    def scope(self, flows: tuple[Flow, ...], datasets: Mapping[str, Dataset]) -> Scope | None:
        """[scope]: the delegation scope (委任状), seed 000 記1(3)."""
        raw = self.table(
            "scope", {"flows", "column", "registry", "outside", "as_of", "date_column"}
        )
        if raw is None:
            return None
        flow_ids = raw.get("flows")
        by_id = {f.id: f for f in flows}
        if (
            not isinstance(flow_ids, list)
            or not flow_ids
            or any(not known(f, by_id) for f in flow_ids)
        ):
            self.p.fail(
                "scope.flows",
                R_("not a list of this agreement's flow ids"),
                R_("use some of: {choices}", choices=', '.join(by_id)),
            )
            flow_ids = []
        column = raw.get("column")
        outside = raw.get("outside", "reject")
        if not known(outside, SCOPE_OUTSIDE):
            self.p.fail("scope.outside", R_("unknown"), R_("use one of: {choices}",
                                                       choices=', '.join(SCOPE_OUTSIDE)))
        as_of = raw.get("as_of", "provision")
        if not known(as_of, SCOPE_AS_OF):
            self.p.fail("scope.as_of", R_("unknown"), R_("use one of: {choices}",
                                                     choices=', '.join(SCOPE_AS_OF)))
        date_column = raw.get("date_column")
        if (as_of == "row") != (date_column is not None):
            self.p.fail(
                "scope.date_column",
                R_('needed exactly when as_of = "row"'),
                R_("name the date column each row is judged on, or remove it"),
            )
        for fid in flow_ids:
            dataset = datasets.get(by_id[fid].dataset)
            if dataset is None:
                continue
            self._scope_columns(dataset, column, date_column)
            if outside == "split" and dataset.format != "csv":
                # Splitting must send covered rows byte for byte; a workbook cannot be cut so.
                self.p.fail(
                    "scope.outside",
                    R_("split needs a CSV dataset; {id} is {format}",
                       id=dataset.id, format=dataset.format),
                    R_('use outside = "reject" for workbooks'),
                )
        registry = raw.get("registry")
        if not isinstance(registry, str) or not _REGISTRY_NAME.fullmatch(registry):
            self.p.fail(
                "scope.registry",
                R_("not a file name beside the agreement"),
                R_('write registry = "AGREEMENT-ID.delegations.toml" (no folders)'),
            )
            registry = ""
        return Scope(
            tuple(flow_ids),
            str(column),
            registry,
            str(outside),
            str(as_of),
            date_column if isinstance(date_column, str) else None,
        )

    def _scope_columns(self, dataset: Dataset, column: Any, date_column: Any) -> None:
        found = dataset.column(column) if isinstance(column, str) else None
        if found is None or found.type != "local-government-code":
            self.p.fail(
                "scope.column",
                R_("not a local-government-code column of {id}", id=dataset.id),
                R_("name the column holding each row's 地方公共団体コード"),
            )
        if date_column is not None:
            found = dataset.column(date_column) if isinstance(date_column, str) else None
            if found is None or found.type != "date":
                self.p.fail(
                    "scope.date_column",
                    R_("not a date column of {id}", id=dataset.id),
                    R_("name a column of type date"),
                )

    def retention(self) -> Retention | None:
        """[retention]: 消去、返却等利用後の取扱い."""
        raw = self.table("retention", {"then", "after", "certificate", "max_days"})
        if raw is None:
            return None
        then, after = raw.get("then"), raw.get("after", "use")
        if not known(then, RETENTION_THEN):
            self.p.fail("retention.then", R_("unknown"), R_("use one of: {choices}",
                                                        choices=', '.join(RETENTION_THEN)))
        if not known(after, RETENTION_AFTER):
            self.p.fail("retention.after", R_("unknown"), R_("use one of: {choices}",
                                                         choices=', '.join(RETENTION_AFTER)))
        certificate = raw.get("certificate", True)
        if not isinstance(certificate, bool):
            self.p.fail(
                "retention.certificate",
                R_("not true or false"),
                R_("write certificate = true"),
            )
            certificate = True
        max_days = raw.get("max_days")
        if max_days is not None and (
            not isinstance(max_days, int) or isinstance(max_days, bool) or max_days < 1
        ):
            self.p.fail("retention.max_days", R_("not a positive number of days"), R_("e.g. 90"))
            max_days = None
        return Retention(str(then), str(after), certificate, max_days)

    def report(self) -> Report | None:
        """[report]: 取扱状況の報告."""
        raw = self.table("report", {"every", "to"})
        if raw is None:
            return None
        every = raw.get("every")
        if not known(every, REPORT_EVERY):
            self.p.fail("report.every", R_("unknown"), R_("use one of: {choices}",
                                                      choices=', '.join(REPORT_EVERY)))
        to = raw.get("to")
        self.party(to, "report.to")
        return Report(str(every), str(to))

    def witness_keys(self) -> WitnessKeys:
        """[witness_keys]: what an approval signature must prove (FIDO2 flags, PROTOCOL.u2f)."""
        raw = self.table("witness_keys", set(WITNESS_KEY_TERMS))
        if raw is None:
            return WitnessKeys()
        presence = raw.get("require_user_presence", True)
        if presence is not True:
            self.p.fail(
                "witness_keys.require_user_presence",
                R_("user presence (a touch of the security key) is always required"),
                R_("write require_user_presence = true, or leave it out"),
            )
        verification = raw.get("require_user_verification", False)
        if not isinstance(verification, bool):
            self.p.fail(
                "witness_keys.require_user_verification",
                R_("not true or false"),
                R_("write require_user_verification = true"),
            )
            verification = False
        return WitnessKeys(require_user_verification=verification)

    def corrections(self) -> bool:
        """corrections = true: the recipient applies corrections (訂正に応じる)."""
        value = self.data.get("corrections", False)
        if not isinstance(value, bool):
            self.p.fail("corrections", R_("not true or false"), R_("write corrections = true"))
            return False
        return value


# --- private helpers -----------------------------------------------------------------------------


def _known(body: Mapping[str, Any], keys: set[str], where: str, p: Problems) -> None:
    for key in body:
        if key not in keys:
            p.fail(f"{where}.{key}", R_("unknown key"), R_("use some of: {choices}",
                                                       choices=', '.join(sorted(keys))))


def _is_date(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
