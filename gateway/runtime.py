"""What every command and the daemon share: settings, state, ledger, agreements, registry.

Built once per process from the config file; opening it creates the state folders and tables
but changes no transfer. Event drafts are made here so every event has the same shape.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from audit.events import Draft
from gateway.config.policyfiles import load_agreements, load_registry
from gateway.config.settings import Settings
from gateway.errors import ConfigError, StorageError
from gateway.evidence import recorder
from gateway.evidence.ledgers import open_ledger
from gateway.i18n import N_
from gateway.state import clock, nodes
from gateway.state.lite import LiteStore
from gateway.state.rows import Transfer
from gateway.state.spool import Spool
from policies.agreement import Agreement, Flow
from policies.handlers import Registry
from policies.reasons import Verdict

if TYPE_CHECKING:
    from audit.ledger import Ledger
    from gateway.state.store import Store

_FLUSHING = threading.Lock()


class ContentChecker(Protocol):
    """Checks a spool file's content in other processes (gateway.outbound.check_pool)."""

    def check(self, path: Path, agreement: Agreement, flow: Flow, on: dt.date) -> Verdict: ...


@dataclass
class Runtime:
    settings: Settings
    store: Store
    ledger: Ledger
    agreements: Mapping[str, Agreement]
    registry: Registry
    spool: Spool
    node: nodes.Node  # this process in `tachiai nodes`
    # The daemon's content-check processes (gateway.outbound.check_pool), set by its workers
    # while they run; None checks in the calling thread (every command, check_processes = 0).
    checker: ContentChecker | None = None

    @classmethod
    def open(cls, settings: Settings, *, lite: bool = False) -> Runtime:
        """Raises: ConfigError for invalid agreements or registry; StorageError for the DBs.

        `lite`: a short command's runtime, which on a SQLite gateway reads and writes the
        state and appends to the ledger without the database layer (gateway.state.lite,
        audit.lite): only what `approve`, `reject` and `transfers` use of the Store and the
        Ledger is there.
        """
        agreements = load_agreements(settings.agreements, settings.config_path.parent)
        registry = load_registry(settings.registry_path)
        try:
            settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:  # e.g. a file where the folder should be, or no permission
            raise StorageError(
                N_("cannot create the state directory {state_dir}: {value}").format(
                    state_dir=settings.state_dir, value=exc.strerror or exc.__class__.__name__)
            ) from exc
        return cls(
            settings=settings,
            store=open_store(settings, lite=lite),
            ledger=open_ledger(settings, lite=lite),
            agreements=agreements,
            registry=registry,
            spool=Spool(settings.spool_dir),
            node=nodes.this_node(settings.node_name),
        )

    def heartbeat(self) -> None:
        """Say this node is alive (written every few seconds however often it is called)."""
        nodes.heartbeat(self.store, self.node)

    def agreement_flow(self, agreement_id: str, flow_id: str) -> tuple[Agreement, Flow]:
        """Raises: ConfigError when the agreement or flow is not loaded."""
        try:
            agreement = self.agreements[agreement_id]
            return agreement, agreement.flow(flow_id)
        except KeyError:
            raise ConfigError(N_("agreement {agreement_id} flow {flow_id} is not loaded").format(
                                  agreement_id=repr(agreement_id), flow_id=repr(flow_id)),
                              hint=N_("list it in gateway.agreements of the configuration"),
                              ) from None

    def our_flows(self) -> list[tuple[Agreement, Flow]]:
        """Flows whose provider is the party this gateway acts for (or its party group)."""
        return [(a, f) for a in self.agreements.values() for f in a.flows
                if a.acts_as(self.settings.party, f.provider)]

    def close(self) -> None:
        """Close the state database's and the ledger's connections (a command, at its end)."""
        try:
            self.store.close()
        finally:
            self.ledger.close()

    def flush(self, *, rounds: int | None = None) -> int:
        # One flush at a time per process: the daemon's workers all flush after their steps,
        # and appends from one process in turn are cheaper than waits on the ledger's lock.
        with _FLUSHING:
            return recorder.flush(self.store, self.ledger, rounds=rounds)


def open_store(settings: Settings, *, lite: bool = False) -> Store:
    """The state database: SQLite under state_dir, or [database] url (PostgreSQL).

    `lite` (SQLite only): through `gateway.state.lite` when the database is at this release's
    revision; it offers the Store's methods that the short commands use, with their meaning
    (tests/gateway/state/test_lite.py), and is typed as the Store for them.

    Raises:
        StorageError: it cannot be opened.
    """
    if lite and not settings.database_url:
        found = LiteStore.open(settings.database_path, settings.busy_timeout_seconds)
        if found is not None:
            return cast("Store", found)
    from gateway.state.store import Store

    if settings.database_url:
        return Store(
            url=settings.database_url,
            password_file=settings.database_password_file,
            busy_timeout_seconds=settings.busy_timeout_seconds,
        )
    return Store(settings.database_path, busy_timeout_seconds=settings.busy_timeout_seconds)


def new_transfer_id() -> str:
    return "t-" + secrets.token_hex(6)


def event(
    kind: str,
    transfer: Transfer,
    data: Mapping[str, Any] | None = None,
    *,
    actor: str | None = None,
    key: str | None = None,
    time_ns: int | None = None,
) -> Draft:
    """An event about a transfer; its key makes the append idempotent."""
    return Draft(
        key=key or f"{transfer.id}:{kind}",
        kind=kind,
        time_ns=time_ns or clock.now_ns(),
        subject=transfer.id,
        agreement=transfer.agreement,
        actor=actor,
        # Parties in every transfer event: the handling report's 提供元→提供先 and
        # `audit query --party` read them from the ledger alone.
        data={"flow": transfer.flow, "provider": transfer.provider,
              "recipient": transfer.recipient, **(data or {})},
    )
