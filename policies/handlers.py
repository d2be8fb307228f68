"""The registry of designated handlers (取扱者の指定): who may send, witness, receive, audit.

A person is an SSH public key plus a designation: party, roles, the agreements it covers and the
period it runs. This module answers "who is this?" and "may they do that, on that day?"; it holds
no private key and never touches the file system.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from policies.errors import FileProblem, PolicyFileError
from policies.wording import R_

ROLES = frozenset({"send", "witness", "receive", "audit", "administer"})
# OpenSSH public key types start so; "sk-" are FIDO2 security keys (sk-ssh-ed25519@openssh.com,
# sk-ecdsa-sha2-nistp256@openssh.com). The key itself is parsed where it is used (gateway).
_KEY_PREFIXES = ("ssh-", "ecdsa-", "sk-ssh-ed25519@", "sk-ecdsa-sha2-nistp256@")
# An age X25519 recipient: "age1" + 52 Bech32 data characters + 6 of checksum (BIP 173). The
# checksum itself is verified where the key is used (gateway.identity.age); this only catches
# typos early.
_AGE_RECIPIENT = re.compile(r"^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$")
# A work mail address for notifications: one @, a dotted domain, no space or line break (a line
# break would let a registry entry add mail headers).
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


@dataclass(frozen=True)
class Handler:
    """One designated person (取扱者) and the terms of their designation."""

    name: str
    party: str
    roles: frozenset[str]
    public_key: str  # OpenSSH line without comment: "ssh-ed25519 AAAA…"
    agreements: frozenset[str]
    designated_from: dt.date
    designated_until: dt.date | None = None
    os_user: str | None = None
    # The person's age X25519 recipient ("age1…"), for flows sealed with the `age` profile.
    age_recipient: str | None = None
    # Where notifications for this person go (what waits for their approval, their rejected
    # or delivered files); optional: without it they are told by the command hook only.
    email: str | None = None

    def designated(self, agreement_id: str, role: str, on: dt.date) -> bool:
        """Whether this person holds `role` under the agreement on that day."""
        if role not in self.roles or agreement_id not in self.agreements:
            return False
        if on < self.designated_from:
            return False
        return self.designated_until is None or on <= self.designated_until


@dataclass(frozen=True)
class Registry:
    """All designated handlers known to this gateway."""

    handlers: tuple[Handler, ...]

    def by_name(self, name: str) -> Handler | None:
        return next((h for h in self.handlers if h.name == name), None)

    def by_key(self, public_key: str) -> Handler | None:
        """The handler whose key this is; comparison ignores any trailing comment."""
        wanted = _key_identity(public_key)
        return next((h for h in self.handlers if _key_identity(h.public_key) == wanted), None)

    def by_os_user(self, os_user: str) -> tuple[Handler, ...]:
        return tuple(h for h in self.handlers if h.os_user == os_user)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str) -> Registry:
        """Parse a registry file's table: a list of [[handlers]].

        Raises:
            PolicyFileError: listing every problem found, each with its key and fix.
        """
        problems: list[FileProblem] = []

        def fail(key: str, message: str, fix: str) -> None:
            problems.append(FileProblem(source, key, message, fix))

        raw = data.get("handlers")
        if not isinstance(raw, list):
            fail("handlers", R_("missing"), R_("add one [[handlers]] table per designated person"))
            raise PolicyFileError(problems)
        out: list[Handler] = []
        for i, body in enumerate(raw):
            where = f"handlers[{i}]"
            if not isinstance(body, dict):
                fail(where, R_("not a table"), R_("write [[handlers]]"))
                continue
            handler = _parse_handler(body, where, fail)
            if handler is not None:
                out.append(handler)
        _check_unique(out, fail)
        if problems:
            raise PolicyFileError(problems)
        return cls(tuple(out))


def _key_identity(line: str) -> tuple[str, ...]:
    return tuple(line.split()[:2])


def _parse_handler(body: Mapping[str, Any], where: str, fail: Any) -> Handler | None:
    ok = True
    name = body.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        fail(f"{where}.name", R_("missing or not a simple name"),
             R_('use letters, digits and _ only, e.g. name = "sato"'))
        ok = False
    party = body.get("party")
    if not isinstance(party, str) or not party:
        fail(f"{where}.party", R_("missing"), R_('name the party id, e.g. party = "isa"'))
        ok = False
    roles = body.get("roles")
    if not isinstance(roles, list) or not roles or any(r not in ROLES for r in roles):
        fail(f"{where}.roles", R_("missing or unknown role"),
             R_("use some of: {choices}", choices=', '.join(sorted(ROLES))))
        ok = False
    key = body.get("public_key")
    if not isinstance(key, str) or len(key.split()) < 2 or not key.startswith(_KEY_PREFIXES):
        fail(f"{where}.public_key", R_("missing or not an OpenSSH public key"),
             R_("paste the line of the person's KEY.pub"))
        ok = False
    agreements = body.get("agreements")
    if not isinstance(agreements, list) or not agreements:
        fail(f"{where}.agreements", R_("missing"),
             R_("list the agreement ids the designation covers"))
        ok = False
    start = body.get("designated_from")
    end = body.get("designated_until")
    if not isinstance(start, dt.date):
        fail(f"{where}.designated_from", R_("missing or not a date"),
             R_("write designated_from = 2026-06-01"))
        ok = False
    if end is not None and not isinstance(end, dt.date):
        fail(
            f"{where}.designated_until",
            R_("not a date"),
            R_("write designated_until = 2027-03-31"),
        )
        ok = False
    os_user = body.get("os_user")
    if os_user is not None and not isinstance(os_user, str):
        fail(f"{where}.os_user", R_("not a string"), R_('write os_user = "username"'))
        ok = False
    age_recipient = body.get("age_recipient")
    if age_recipient is not None and (not isinstance(age_recipient, str)
                                      or not _AGE_RECIPIENT.match(age_recipient)):
        fail(f"{where}.age_recipient", R_("not an age X25519 recipient"),
             R_('paste the line `age-keygen -y KEYFILE` prints, e.g. age_recipient = "age1…"'))
        ok = False
    email = body.get("email")
    if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
        fail(f"{where}.email", R_("not a mail address"),
             R_('write the person\'s work address, e.g. email = "suzuki@example.lg.jp"'))
        ok = False
    if not ok:
        return None
    assert isinstance(name, str) and isinstance(party, str) and isinstance(key, str)
    assert isinstance(roles, list) and isinstance(agreements, list) and isinstance(start, dt.date)
    return Handler(
        name=name,
        party=party,
        roles=frozenset(str(r) for r in roles),
        public_key=" ".join(key.split()[:2]),
        agreements=frozenset(str(a) for a in agreements),
        designated_from=start,
        designated_until=end,
        os_user=os_user,
        age_recipient=age_recipient,
        email=email,
    )


def _check_unique(handlers: Iterable[Handler], fail: Any) -> None:
    names: set[str] = set()
    keys: set[tuple[str, ...]] = set()
    for h in handlers:
        if h.name in names:
            fail(f"handlers.{h.name}", R_("duplicate name"), R_("give each person one entry"))
        if _key_identity(h.public_key) in keys:
            # One key, one person: otherwise a single person could count as two witnesses.
            fail(f"handlers.{h.name}.public_key", R_("key already used by another handler"),
                 R_("each person needs their own key"))
        names.add(h.name)
        keys.add(_key_identity(h.public_key))
