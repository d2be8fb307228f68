"""Testing a recipient's route on demand (`tachiai partners test`), recorded in the ledger.

The probe itself (connect, authenticate, write and remove a probe file, or a test mail) is in
`gateway.transports.probe`; this module runs it for a configured recipient and records the
outcome as a `partner.tested` event: the route, the outcome and the steps, never a key or a
password. It sends no personal data and changes no transfer.
"""

from __future__ import annotations

import secrets

from audit.events import Draft
from gateway.runtime import Runtime
from gateway.state import clock
from gateway.transports.probe import ProbeResult, probe

TESTED = "partner.tested"


def probe_partner(rt: Runtime, name: str) -> ProbeResult:
    """Probe the route of recipient `name` and record the result.

    Raises:
        ConfigError: no recipient of that name is configured.
        StorageError: the event cannot be recorded.
    """
    result = probe(rt.settings.recipient(name))
    now = clock.now_ns()
    rt.store.record([
        Draft(
            key=f"{TESTED}:{name}:{now}:{secrets.token_hex(4)}",
            kind=TESTED,
            time_ns=now,
            subject=None,
            agreement=None,
            actor=None,
            data=result.ledger_data(),
        )
    ])
    rt.flush()
    return result
