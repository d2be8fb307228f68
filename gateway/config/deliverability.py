"""Whether each configured flow can be delivered, decided on paper before anything is sent.

For every flow this gateway provides: a route to the recipient, a password channel for a
password profile, a designated receiving handler with an age key for the age profile; and for
every route, pickup and checkpoint place: its key files present, readable by this user and
mode 0600 or 0400. `tachiai agreements check` prints the findings and `tachiai run` refuses to
start on any. This module reads file metadata only, never a key's content, and sends nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.config.routes import UNSAFE_PLAINTEXT, MailRoute, SftpEndpoint
from gateway.config.settings import Settings
from gateway.errors import ConfigError
from gateway.i18n import N_
from policies.agreement import Agreement, Flow
from policies.handlers import Registry

#: Modes a private key or password file may have: readable by its owner only.
PRIVATE_MODES = (0o600, 0o400)


@dataclass(frozen=True)
class Finding:
    """One reason a flow cannot be delivered: the file and key to change, what, and the fix."""

    key: str
    problem: str
    fix: str
    source: Path | None = None  # None: tachiai.toml itself

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source is not None else ""
        return N_("{where}{key}: {problem} (fix: {fix})").format(
                   where=where, key=self.key, problem=self.problem, fix=self.fix)


@dataclass(frozen=True)
class Deliverability:
    """The findings (each stops the daemon) and the warnings (unsafe but allowed)."""

    problems: tuple[Finding, ...]
    warnings: tuple[str, ...]

    def raise_if_any(self, config: Path) -> None:
        """Raises: ConfigError listing every problem, when there is one."""
        if self.problems:
            lines = "\n".join(f"  {p}" for p in self.problems)
            raise ConfigError(
                N_("{config}: {count} route(s) cannot deliver:\n{lines}").format(
                    config=config, count=len(self.problems), lines=lines),
                hint=N_("fix each key named above, then run `tachiai agreements check` again"),
            )


def check(
    settings: Settings, agreements: Mapping[str, Agreement], registry: Registry, on: dt.date
) -> Deliverability:
    """Every reason a configured flow, pickup or checkpoint place cannot work, and warnings."""
    problems = list(_flows(settings, agreements, registry, on))
    problems.extend(_key_files(settings))
    problems.extend(_partitions(settings, agreements))
    warnings = [
        N_('recipients.{party}: starttls = "off" with {unsafe_plaintext} = true: the subject and '
           "the sealed file go to {relay}:{port} in clear").format(
            party=party, unsafe_plaintext=UNSAFE_PLAINTEXT, relay=r.mail.relay, port=r.mail.port)
        for party, r in settings.recipients.items()
        if r.mail is not None and r.mail.starttls == "off" and not r.mail.on_loopback
        and not r.mail.implicit_tls
    ]
    return Deliverability(tuple(problems), tuple(warnings))


def _flows(
    settings: Settings, agreements: Mapping[str, Agreement], registry: Registry, on: dt.date
) -> Iterator[Finding]:
    for agreement in agreements.values():
        for group_flow in agreement.flows:
            if not agreement.acts_as(settings.party, group_flow.provider):
                continue
            group = agreement.groups.get(group_flow.recipient)
            # A flow to a party group goes to each member on its own route (a fan-out's
            # children, gateway.forwarding): each configured member is checked; a member without
            # one fails only its own child, at delivery, with the fix.
            targets = [m.party for m in group.members if m.party in settings.recipients] \
                if group is not None else [group_flow.recipient]
            for target in targets:
                yield from _flow(settings, agreement, group_flow, target, registry, on)


def _flow(settings: Settings, agreement: Agreement, group_flow: Flow, target: str,
          registry: Registry, on: dt.date) -> Iterator[Finding]:
    flow = agreement.flow_for(group_flow, settings.party, target)
    where = f"{agreement.id} flow {flow.id}"
    recipient = settings.recipients.get(flow.recipient)
    if recipient is None:
        yield Finding(
            f"recipients.{flow.recipient}",
            N_("{where} goes to {recipient}, which has no route").format(
                where=where, recipient=flow.recipient),
            N_("add a [recipients.{recipient}] table (see docs/partners.md)").format(
                recipient=flow.recipient),
        )
        return
    # Every profile but age is a ZIP whose password takes a route of its own
    # (gateway.outbound.sealing.PASSWORD_PROFILES; a test holds the two together).
    if flow.encryption != "age" and recipient.password_route is None:
        yield Finding(
            f"recipients.{flow.recipient}.password_channel",
            N_("{where} seals with {encryption}, whose password needs a route of its own, and "
               "none is set").format(where=where, encryption=flow.encryption),
            N_('add password_channel = {{ kind = "retrieval" }} (or a folder, or another SFTP '
               "account) to [recipients.{recipient}]").format(recipient=flow.recipient),
        )
    if flow.encryption == "age" and not any(
        h.party == flow.recipient
        and h.age_recipient is not None
        and h.designated(agreement.id, "receive", on)
        for h in registry.handlers
    ):
        yield Finding(
            f"handlers of {flow.recipient}",
            N_("{where} seals with age, but no receiving handler of {recipient} designated for "
               "{id} today has an age_recipient").format(
                where=where, recipient=flow.recipient, id=agreement.id),
            N_('add age_recipient = "age1…" (from `age-keygen -y KEYFILE`) to a receiving '
               "handler of that party in the registry"),
            settings.registry_path,
        )


def _partitions(settings: Settings, agreements: Mapping[str, Agreement]) -> Iterator[Finding]:
    """Each `[gateway] partitions` entry is a member of a party group a loaded agreement declares:
    a misspelt member would match no delivery, and its data would be refused as not ours."""
    members = {m.party for a in agreements.values() for g in a.groups.values() for m in g.members}
    for member in settings.partitions:
        if member not in members:
            yield Finding(
                "gateway.partitions",
                N_("{member} is a member of no party group declared beside a loaded agreement")
                .format(member=member),
                N_("correct the name (members are named GROUP-CODE, e.g. "
                   "municipalities-131016), or load the agreement whose groups file declares it"),
            )


def _key_files(settings: Settings) -> Iterator[Finding]:
    for party, recipient in settings.recipients.items():
        where = f"recipients.{party}"
        if recipient.sftp is not None:
            yield from _endpoint(recipient.sftp, where)
        if recipient.password_route is not None and recipient.password_route.sftp is not None:
            yield from _endpoint(recipient.password_route.sftp, f"{where}.password_channel")
        if recipient.mail is not None:
            yield from _mail(recipient.mail, where)
    for name, pickup in settings.pickups.items():
        yield from _endpoint(pickup.sftp, f"pickup.{name}")
    for name, source in settings.inbound.pickups.items():
        yield from _endpoint(source.sftp, f"inbound.pickup.{name}")
        if source.password_sftp is not None:
            yield from _endpoint(source.password_sftp, f"inbound.pickup.{name}.password_channel")
    for index, place in enumerate(settings.ledger_sftp):
        yield from _endpoint(place, f"ledger.sftp[{index}]")


def _endpoint(endpoint: SftpEndpoint, where: str) -> Iterator[Finding]:
    found = private_file_problem(endpoint.key_file)
    if found is not None:
        yield Finding(f"{where}.key_file", *found)


def _mail(route: MailRoute, where: str) -> Iterator[Finding]:
    if route.password_file is not None:
        found = private_file_problem(route.password_file)
        if found is not None:
            yield Finding(f"{where}.password_file", *found)
    if route.ca_file is not None and not os.access(route.ca_file, os.R_OK):
        yield Finding(
            f"{where}.ca_file",
            N_("{ca_file} is missing or not readable").format(ca_file=route.ca_file),
            N_("put the relay's CA certificate (PEM) there, or remove ca_file to use the "
               "system's CAs"),
        )


def private_file_problem(path: Path) -> tuple[str, str] | None:
    """(problem, fix) when a key or password file is missing, unreadable by this user, or open
    to others (a mode other than 0600/0400); None when it is usable."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return (
            N_("{path} does not exist").format(path=path),
            N_("create it (`ssh-keygen -t ed25519 -N '' -f {path}` for an SSH key) or correct "
               "the path").format(path=path),
        )
    except OSError as exc:
        return (N_("{path} cannot be read: {strerror}").format(path=path, strerror=exc.strerror),
                N_("check the folders' permissions"))
    if not stat.S_ISREG(info.st_mode):
        return (N_("{path} is not a regular file").format(path=path),
                N_("point the key at the file itself"))
    mode = stat.S_IMODE(info.st_mode)
    if mode not in PRIVATE_MODES:
        return (
            N_("{path} has mode {mode:04o}: a private file must be readable by its owner "
               "only").format(path=path, mode=mode),
            N_("chmod 600 {path}").format(path=path),
        )
    if not os.access(path, os.R_OK):
        return (
            N_("{path} is not readable by this user (uid {uid})").format(
                path=path, uid=os.getuid()),
            N_("chown it to the user the daemon runs as, e.g. chown tachiai {path}").format(
                path=path),
        )
    return None
