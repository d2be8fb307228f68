"""The one rule every table of tachiai.toml obeys: no key that is not a setting.

A misspelt key (`timeout_secnds = 5`) is never ignored: it is refused, naming the table, the
key and the nearest setting ("did you mean …"). This module only checks names; the values are
parsed by the modules that own each table (settings, sources, routes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from gateway.errors import ConfigError
from gateway.i18n import N_

#: The top-level tables of tachiai.toml.
TOP_LEVEL = frozenset(
    {"gateway", "intake", "sealing", "recipients", "pickup", "inbound", "ledger", "database",
     "notify"}
)


def only(body: Mapping[str, Any], known: Collection[str], where: str) -> None:
    """Refuse the first key of `body` that is not in `known` (the settings of table `where`).

    Raises:
        ConfigError: naming `where.KEY`, the closest setting if one is close, and the others.
    """
    for key in body:
        if key not in known:
            raise ConfigError(N_("{where}.{key} is not a setting").format(where=where, key=key),
                              hint=suggestion(key, known))


def suggestion(key: str, known: Collection[str]) -> str:
    """"did you mean X?" when a setting is close to `key`, then the settings of the table."""
    import difflib  # only for a mistyped key

    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    listed = N_("the settings here are: {known}").format(known=', '.join(sorted(known)))
    if not close:
        return listed
    return N_("did you mean {close}? {listed}").format(close=repr(close[0]), listed=listed)
