"""The inbound inbox (受信フォルダ): which deliveries are complete and may be taken in.

A delivery is complete when its manifest (送付票), the sealed file and, for a ZIP, its password
(from the separate password folder) are all there. This module only lists and names them; it
opens nothing, trusts nothing in them, and never follows a link.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import StorageError
from gateway.exchange.manifest import SUFFIX
from gateway.i18n import N_
from gateway.runtime import Runtime
from gateway.state.spool import refuse_linked

log = logging.getLogger(__name__)

_waiting: set[str] = set()  # names already logged as waiting for their password


@dataclass(frozen=True)
class Arrival:
    """A complete delivery in the inbox: the parts' paths, not yet opened or trusted."""

    name: str
    manifest: Path
    sealed: Path
    password: Path | None


def arrivals(rt: Runtime) -> list[Arrival]:
    """Complete deliveries in the inbox, by name. A ZIP waits for its password.

    Raises:
        StorageError: the inbox cannot be listed, or passes through a symbolic link.
    """
    inbound = rt.settings.inbound
    assert inbound.inbox is not None
    inbox = inbound.inbox
    refuse_linked(inbox, "the inbound inbox")
    try:
        names = sorted(os.listdir(inbox))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StorageError(N_("cannot list the inbox {inbox}: {strerror}").format(
                               inbox=inbox, strerror=exc.strerror)) from exc
    found = []
    for name in names:
        sealed_name = name[: -len(SUFFIX)]
        if name.startswith(".") or not name.endswith(SUFFIX) or not sealed_name:
            continue  # temporary names of uploads in progress, and everything else
        if not storable(name):
            if name not in _waiting:
                _waiting.add(name)
                log.warning(
                    "a manifest in the inbox has a name that is not printable UTF-8; "
                    "it is left where it is: ask the provider what it is"
                )
            continue
        if not os.path.lexists(inbox / sealed_name):
            continue  # the file itself is not there (yet)
        password = None
        if sealed_name.endswith(".zip") and inbound.password_channel is not None:
            refuse_linked(inbound.password_channel, "the inbound password folder")
            password = inbound.password_channel / f"{sealed_name}.password"
            if not os.path.lexists(password):
                if sealed_name not in _waiting:
                    _waiting.add(sealed_name)
                    log.info(
                        "%s waits for its password in %s", sealed_name, inbound.password_channel
                    )
                continue
        _waiting.discard(sealed_name)
        found.append(Arrival(sealed_name, inbox / name, inbox / sealed_name, password))
    return found


def storable(name: str) -> bool:
    """A name we can record and show: printable, and UTF-8 (not undecodable bytes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return name.isprintable()
