"""The onward provision guard (再提供の禁止) at the gateway: remember received rows, refuse copies.

Owns the fingerprint key (`<state_dir>/keys/fingerprint.key`, 32 bytes, mode 0600) and the
tables of keyed row fingerprints in the state database. `remember` fingerprints the rows of
received data; `guard` counts an outbound file's rows that match them and asks the source
agreement whether they may go to the recipient. Never stores, logs or names a row or the key.
Over 400 lines for one reason: remembering and guarding must fingerprint rows identically,
so both halves of that contract are kept side by side.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from gateway.errors import ConfigError, InputError
from gateway.i18n import N_
from gateway.runtime import Runtime
from gateway.state import clock, fingerprint_store, keyfiles
from gateway.state.fingerprint_store import Source as _Source
from policies.fingerprints import Fingerprinter, RowKeys, key_check, read_table
from policies.onward import onward_refusal
from policies.reasons import Reason
from policies.tables import Record, TableError

__all__ = [
    "KEY_BYTES",
    "GuardResult",
    "Remembered",
    "forget",
    "guard",
    "inspect_onward",
    "key_path",
    "remember",
]

log = logging.getLogger(__name__)

KEY_BYTES = 32


@dataclass(frozen=True)
class Remembered:
    """What `remember` recorded: rows fingerprinted and rows too plain to fingerprint. Counts
    only, safe for the ledger."""

    holding: str
    rows: int
    skipped: int


@dataclass(frozen=True)
class GuardResult:
    """What `inspect_onward` found in an outbound file.

    `reasons`: one per source agreement (and holder) that forbids this recipient, largest first.
    `matched`: rows matching data received under each agreement, refused or not — provenance
    the ledger may record. Counts and ids only.
    """

    rows: int
    reasons: tuple[Reason, ...] = ()
    matched: Mapping[str, int] = field(default_factory=dict)


def key_path(rt: Runtime) -> Path:
    return rt.settings.state_dir / "keys" / "fingerprint.key"


def remember(
    rt: Runtime,
    holding_id: str,
    agreement: str,
    flow: str,
    holder_party: str,
    stream: BinaryIO,
    dataset_format: str,
) -> Remembered:
    """Fingerprint every row of received data, so later copies of it can be recognised.

    Idempotent: remembering the same holding again (after a crash) adds what is missing. Rows
    are written in batches of their own transactions, so a large file never holds the database.

    Raises:
        InputError: the file cannot be read as a table (the message names no content).
        ConfigError: the key file is missing or not the key the stored fingerprints used.
        StorageError: the key or the database cannot be read or written.
    """
    fingerprint = Fingerprinter(_key(rt, create=True))
    keys, records = _received(stream, dataset_format)
    source = fingerprint_store.source_id(
        rt.store, _Source(holding_id, agreement, flow, holder_party), clock.now_ns()
    )
    rows = skipped = 0
    batch: set[bytes] = set()
    for record in records:
        fps = {fingerprint(k.text) for k in keys.keys(record.cells)}
        if not fps:
            skipped += 1
            continue
        rows += 1
        batch |= fps
        if len(batch) >= _WRITE_BATCH:
            fingerprint_store.add(rt.store, source, batch)
            batch = set()
    if batch:
        fingerprint_store.add(rt.store, source, batch)
    fingerprint_store.set_counts(rt.store, source, rows, skipped)
    log.info(
        "remembered %d rows of holding %s (%d too plain to fingerprint)", rows, holding_id, skipped
    )
    return Remembered(holding_id, rows, skipped)


def guard(
    rt: Runtime,
    stream: BinaryIO,
    dataset_format: str,
    to_party: str,
    to_contractor: bool = False,
) -> Reason | None:
    """Why an outbound file may not go to `to_party`, or None: the first reason of
    `inspect_onward` (the source agreement with the most matching rows).

    Raises: as `inspect_onward`.
    """
    result = inspect_onward(rt, stream, dataset_format, to_party, to_contractor=to_contractor)
    return result.reasons[0] if result.reasons else None


def inspect_onward(
    rt: Runtime,
    stream: BinaryIO,
    dataset_format: str,
    to_party: str,
    *,
    to_contractor: bool = False,
) -> GuardResult:
    """Count the outbound file's rows that match received data, per source agreement, and
    refuse those the source agreement does not let its holder pass to `to_party` (seed 000
    記1(3): 国保中央会 → 国保連合会 → 市町村, 委託事業者 where allowed; seed 003 (3): nobody).

    Sending rows back to the party that provided them (疑義照会 to the 提供元) is not onward
    provision. An unreadable file, or rows from an agreement no longer loaded, are refused:
    the guard cannot vouch for what it cannot read (fail closed).

    Raises:
        ConfigError: the key file is missing or not the key the stored fingerprints used.
        StorageError: the key or the database cannot be read.
    """
    sources = fingerprint_store.sources(rt.store)
    if not sources:
        return GuardResult(rows=0)  # nothing was ever received here: nothing can be copied
    fingerprint = Fingerprinter(_key(rt, create=False))
    try:
        table = read_table(stream, dataset_format)
    except TableError as exc:
        return GuardResult(0, (_unreadable(exc),))
    tally = _Tally(rt, sources, to_party, to_contractor)
    keys = RowKeys(table.header)
    rows = 0
    pending: list[tuple[list[bytes], list[bytes]]] = []
    try:
        for record in table.rows:
            if record.blank:
                continue
            rows += 1
            row_fps: list[bytes] = []
            id_fps: list[bytes] = []
            for k in keys.keys(record.cells):
                (row_fps if k.kind == "row" else id_fps).append(fingerprint(k.text))
            pending.append((row_fps, id_fps))
            if len(pending) >= _READ_BATCH:
                tally.add(_lookup(rt, pending), pending)
                pending = []
    except TableError as exc:
        return GuardResult(rows, (_unreadable(exc),))
    tally.add(_lookup(rt, pending), pending)
    return tally.result(rows)


def forget(rt: Runtime, holding_id: str) -> int:
    """Drop the fingerprints of one holding; returns how many were dropped.

    For the retention sweep only, once the agreement's retention and audit period is over. A
    certified deletion (消去) is not a reason to forget: a copy surfacing after it is exactly
    what the guard must still catch.

    Raises:
        StorageError: the database cannot be written.
    """
    return fingerprint_store.forget(rt.store, holding_id)


# --- private helpers -----------------------------------------------------------------------------

_WRITE_BATCH = 20_000  # fingerprints per write transaction
_READ_BATCH = 2_000  # outbound rows per lookup round


def _key(rt: Runtime, *, create: bool) -> bytes:
    """The gateway's fingerprint key, checked against the check value stored with the
    fingerprints; created on first use when `create`.

    Raises:
        ConfigError: the file is missing although fingerprints exist, is not 32 bytes, is open
            to other users, or is not the key the stored fingerprints were made with.
        StorageError: it cannot be read or created.
    """
    path = key_path(rt)
    stored = fingerprint_store.key_check(rt.store)
    if not path.exists() and (stored is not None or not create):
        if stored is None:
            # Not reached: the guard looks for a key only when something was remembered.
            raise ConfigError(N_("the fingerprint key {path} does not exist yet").format(path=path))
        raise ConfigError(
            N_("the fingerprint key {path} is missing, but fingerprints made with it are "
               "stored").format(path=path),
            hint=N_("restore the key file from the state directory's backup; a new key would "
                    "match none of the received data, so the onward guard refuses to run without "
                    "it"),
        )
    key = keyfiles.load_or_create(path, KEY_BYTES, "the fingerprint key")
    check = key_check(key)
    if stored is None:
        stored = fingerprint_store.keep_key_check(rt.store, check, clock.now_ns())
    if stored != check:
        raise ConfigError(
            N_("the fingerprint key {path} is not the key the stored fingerprints were made "
               "with").format(path=path),
            hint=N_("restore the original key file from the state directory's backup"),
        )
    return key


def _received(stream: BinaryIO, dataset_format: str) -> tuple[RowKeys, Iterator[Record]]:
    """The keys of a received table and its non-blank rows; a read error is an InputError."""

    def failed(exc: TableError, done: str) -> InputError:
        row = f" (row {exc.row})" if exc.row is not None else ""
        return InputError(
            N_("cannot read the received file to fingerprint its rows: {message}{row}").format(
                message=exc.message, row=row),
            hint=N_("{done}; check the file").format(done=done),
        )

    try:
        table = read_table(stream, dataset_format)
    except TableError as exc:
        raise failed(exc, "no row is remembered") from None

    def rows() -> Iterator[Record]:
        try:
            yield from (r for r in table.rows if not r.blank)
        except TableError as exc:
            raise failed(exc, "the rows before it are remembered") from None

    return RowKeys(table.header), rows()


def _lookup(rt: Runtime, pending: list[tuple[list[bytes], list[bytes]]]) -> dict[bytes, set[int]]:
    """The sources of every fingerprint of a batch of rows that is stored."""
    return fingerprint_store.lookup(
        rt.store, (fp for row_fps, id_fps in pending for fp in (*row_fps, *id_fps))
    )


@dataclass
class _Group:
    """Rows matching data of one agreement held by one party: as whole rows, or only by
    identity (name with birth date or card number), and the holdings they came from."""

    whole: int = 0
    identity: int = 0
    flows: set[str] = field(default_factory=set)
    holdings: set[str] = field(default_factory=set)


class _Tally:
    """Counts each outbound row once per (agreement, holder) it matches, and decides."""

    def __init__(
        self, rt: Runtime, sources: dict[int, _Source], to_party: str, to_contractor: bool
    ) -> None:
        self.rt = rt
        self.to_party = to_party
        self.to_contractor = to_contractor
        self.groups: dict[tuple[str, str], _Group] = defaultdict(_Group)
        self.matched: dict[str, int] = defaultdict(int)
        self._use(sources)

    def _use(self, sources: dict[int, _Source]) -> None:
        self.sources = sources
        # Rows the source agreement lets go to `to_party` are not counted: `policies.onward`
        # decides, e.g. a return to the party that provided them (a 疑義照会 naming the rows it
        # asks about). Per source, as flows (and so providers) differ.
        self.allowed = {sid for sid, s in sources.items() if self._allowed(s)}

    def _allowed(self, source: _Source) -> bool:
        agreement = self.rt.agreements.get(source.agreement)
        if agreement is None:
            return False  # refused in _refusal, naming the agreement no longer loaded
        provider = next((f.provider for f in agreement.flows if f.id == source.flow), None)
        refusal = onward_refusal(
            agreement,
            source.holder,
            self.to_party,
            provider=provider,
            to_contractor=self.to_contractor,
        )
        return refusal is None

    def add(
        self, found: dict[bytes, set[int]], pending: list[tuple[list[bytes], list[bytes]]]
    ) -> None:
        if not found:
            return
        if any(sid not in self.sources for ids in found.values() for sid in ids):
            # A holding remembered since the guard began.
            self._use(fingerprint_store.sources(self.rt.store))
        for row_fps, id_fps in pending:
            by_row = {sid for fp in row_fps for sid in found.get(fp, ())}
            by_id = {sid for fp in id_fps for sid in found.get(fp, ())}
            for agreement in {self.sources[sid].agreement for sid in by_row | by_id}:
                self.matched[agreement] += 1
            whole = self._groups(by_row)
            for key in whole:
                self.groups[key].whole += 1
            for key in self._groups(by_id) - whole:
                self.groups[key].identity += 1

    def _groups(self, hits: set[int]) -> set[tuple[str, str]]:
        """The (agreement, holder) groups of the sources hit, noting their flows and holdings."""
        keys: set[tuple[str, str]] = set()
        for sid in hits - self.allowed:
            source = self.sources[sid]
            key = (source.agreement, source.holder)
            self.groups[key].flows.add(source.flow)
            self.groups[key].holdings.add(source.holding)
            keys.add(key)
        return keys

    def result(self, rows: int) -> GuardResult:
        reasons: list[tuple[int, Reason]] = []
        for (agreement, holder), group in self.groups.items():
            count = group.whole + group.identity
            reason = self._refusal(agreement, holder, group, count, rows)
            if reason is not None:
                reasons.append((count, reason))
                log.warning(
                    "onward provision to %s refused: %d rows received under %s",
                    self.to_party,
                    count,
                    agreement,
                )
        reasons.sort(key=lambda item: (-item[0], item[1].term or ""))
        return GuardResult(rows, tuple(r for _, r in reasons), dict(self.matched))

    def _refusal(
        self, agreement_id: str, holder: str, group: _Group, count: int, rows: int
    ) -> Reason | None:
        holdings = sorted(group.holdings)
        more = f" and {len(holdings) - 3} more" if len(holdings) > 3 else ""
        what = (
            f"{count} of the {rows} rows of this file match data received under agreement "
            f"{agreement_id} (flow {', '.join(sorted(group.flows))}, held by {holder}, "
            f"holding {', '.join(holdings[:3])}{more}; {group.whole} whole rows, "
            f"{group.identity} by name with birth date or residence card number)"
        )
        agreement = self.rt.agreements.get(agreement_id)
        if agreement is None:
            return Reason(
                "onward.forbidden",
                f"{what}, an agreement no longer loaded: whether they may go to "
                f"{self.to_party} cannot be decided; load the agreement or remove the rows",
                f"{agreement_id}/onward",
            )
        refusal = onward_refusal(agreement, holder, self.to_party, to_contractor=self.to_contractor)
        if refusal is None:
            return None
        return Reason(
            "onward.forbidden", f"{what}. {refusal.message}", refusal.term, clause=refusal.clause
        )


def _unreadable(exc: TableError) -> Reason:
    return Reason(
        "onward.unreadable",
        "the file cannot be read as a table, so the onward "
        f"provision guard (再提供の禁止) cannot check it for received data: {exc.message}",
        row=exc.row,
    )
