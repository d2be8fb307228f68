"""Reply threads: what an outbound transfer answers (疑義照会・回答) or corrects (訂正), fixed as
a link before any witness approves it, and the thread both sides read back.

The agreement decides which links are allowed (`policies.admission`); this module looks up what
they name, records them, and tells checking, approval and delivery when a reply has none. It
never moves a link once fixed and never links a transfer a witness has approved.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Literal

from gateway.errors import CheckFailed, InputError, StateError
from gateway.i18n import N_
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.runtime import event as transfer_event
from gateway.state import clock, links
from gateway.state.lifecycles import DISPOSED, HELD
from gateway.state.rows import Transfer, TransferLink
from policies.admission import check_correction, check_reply
from policies.agreement import Agreement, Flow
from policies.reasons import Reason

if TYPE_CHECKING:
    from gateway.state.schema import Holding


class _Unread(enum.Enum):
    UNREAD = "unread"


#: A link not read yet in this step (the functions below read it then). A step that needs the
#: link several times reads it once and passes it on (`link=`): never a link read in an earlier
#: step or another process, as a command may fix one between steps.
UNREAD: Final = _Unread.UNREAD
#: A link as one step read it (None: the transfer has none), or UNREAD.
Link = TransferLink | None | Literal[_Unread.UNREAD]


def link_transfer(
    rt: Runtime, transfer_id: str, relation: str, ref: str, operator: str
) -> TransferLink:
    """Fix what an outbound transfer answers or corrects, before any witness approves it.

    Raises:
        StateError: the transfer is not awaiting approval, already has approvals or a link.
        NotFound: no such holding or transfer.
        CheckFailed: the agreement does not allow this link (the rule is in the message).
    """
    t = rt.store.get(transfer_id)
    if t.status is not State.AWAITING_APPROVAL or rt.store.approvals(t.id):
        _refused(rt, t, operator, Reason(
            "link.state", N_("transfer {id} is {state}; a link is fixed before any witness "
                             "approves it").format(id=t.id, state=t.state)))
        raise StateError(
            N_("transfer {id} is {state}; a link is fixed before any witness approves it").format(
                id=t.id, state=t.state),
            hint=N_("drop the file again to link it"),
        )
    if link_of(rt, t.id) is not None:
        _refused(rt, t, operator, Reason("link.state", N_("transfer {id} is already linked")
                                         .format(id=t.id)))
        raise StateError(N_("transfer {id} is already linked").format(id=t.id))
    agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    remote, ref_flow, party = _resolve(rt, ref, agreement)
    if relation == "replies_to":
        refusal = check_reply(agreement, flow, ref_flow)
        if refusal is None and flow.recipient != party:
            refusal = agreement.reason(
                "reply.party",
                f"{ref} came from or went to {party}, but flow {flow.id} goes to {flow.recipient}",
                f"flows.{flow.id}.to",
            )
    else:
        refusal = check_correction(agreement, flow, ref_flow, ref)
    if refusal is not None:
        _refused(rt, t, operator, refusal)
        raise CheckFailed(N_("refused: {message} [{rule}] (recorded)").format(
                              message=refusal.message, rule=refusal.rule))
    link = TransferLink(
        transfer=t.id,
        relation=relation,
        ref=ref,
        remote=remote,
        ref_flow=ref_flow.id,
        operator=operator,
        created_ns=clock.now_ns(),
    )
    with rt.store.transaction() as conn:
        # Checked again under the write lock: a witness approving meanwhile signed a statement
        # without the link (it would not count at sealing, but the link must not move under it).
        if not rt.store.unapproved_in(conn, t.id, State.AWAITING_APPROVAL):
            raise StateError(N_("transfer {id} was approved or moved on meanwhile; not "
                                "linked").format(id=t.id))
        links.add(conn, link)
        rt.store.record(
            [
                transfer_event(
                    "transfer.linked",
                    t,
                    {
                        "relation": relation,
                        "ref": ref,
                        "remote_transfer": remote,
                        "ref_flow": ref_flow.id,
                        "operator": operator,
                    },
                    key=f"{t.id}:transfer.linked",
                )
            ],
            conn,
        )
    rt.flush()
    return link


def unlinked_reply(rt: Runtime, t: Transfer, *, link: Link = UNREAD) -> Reason | None:
    """Why a transfer on a reply flow may not go: it is linked to no transfer of the flow it
    answers (`policies.admission.check_reply`). None for a linked reply and for a transfer on
    a flow that answers nothing (its link is not read: there, linked or not, it passes).

    `link`: the transfer's link as the calling step read it, if it did.

    Raises:
        ConfigError: the transfer's agreement or flow is not loaded.
        StorageError: the state database cannot be read.
    """
    agreement, flow = rt.agreement_flow(t.agreement, t.flow)
    if check_reply(agreement, flow, None) is None:
        return None  # passes unlinked, so passes whatever its link: nothing to read
    if link is UNREAD:
        link = link_of(rt, t.id)
    answered = None
    if link is not None and link.relation == "replies_to":
        answered = next((f for f in agreement.flows if f.id == link.ref_flow), None)
    return check_reply(agreement, flow, answered)


def link_of(rt: Runtime, transfer_id: str) -> TransferLink | None:
    """The link fixed for an outbound transfer, or None. A read of its own, so
    `approvals.statement` may call it while another connection holds the write lock.

    Raises:
        StorageError: the state database cannot be read.
    """
    return links.link_of(rt.store, transfer_id)


def links_to(rt: Runtime, refs: Iterable[str]) -> list[TransferLink]:
    """Outbound links that name any of `refs` (a holding id or a transfer id).

    Raises:
        StorageError: the state database cannot be read.
    """
    return links.links_to(rt.store, refs)


def statement_lines(rt: Runtime, transfer_id: str, *, link: Link = UNREAD) -> list[str]:
    """The lines a transfer's link adds to the statement its witnesses sign (`link`: as the
    calling step read it, if it did).

    Raises:
        StorageError: the state database cannot be read.
    """
    if link is UNREAD:
        link = link_of(rt, transfer_id)
    if link is None:
        return []
    return [f"{'replies-to' if link.relation == 'replies_to' else 'corrects'}: {link.remote}"]


def link_first(reason: Reason, transfer_id: str) -> Reason:
    """`reason` (an unlinked reply) with the command that links it, for a person to run before
    any witness approves."""
    return dataclasses.replace(
        reason,
        message=N_("{message}: run `tachiai transfers link {id} --replies-to "
                   "HOLDING_OR_TRANSFER` first, then approve").format(message=reason.message,
                                                                      id=transfer_id),
    )


def thread(rt: Runtime, h: Holding) -> list[dict[str, str]]:
    """What this holding answers or corrects, and what answers or corrects it, both sides.

    Raises:
        StorageError: the state database cannot be read.
    """
    from gateway.state import holdings_store  # loads the database layer: not for `approve`

    items: list[dict[str, str]] = []
    for relation, remote in (("replies to", h.replies_to), ("corrects", h.corrects)):
        if remote is None:
            continue
        try:
            t = rt.store.get(remote)
            items.append({"relation": relation, "id": t.id, "what": f"our transfer, {t.state}"})
            continue
        except InputError:
            pass
        for x in holdings_store.find(rt.store, transfer=remote):
            items.append({"relation": relation, "id": x.id, "what": f"holding, {x.state}"})
    for link in links_to(rt, [h.id, *([h.transfer] if h.transfer else [])]):
        t = rt.store.get(link.transfer)
        items.append(
            {
                "relation": "answered by" if link.relation == "replies_to" else "corrected by",
                "id": t.id,
                "what": f"our transfer, {t.state}",
            }
        )
    for x in holdings_store.find(rt.store):
        if x.id != h.id and h.transfer and h.transfer in (x.replies_to, x.corrects):
            items.append(
                {
                    "relation": "answered by" if x.replies_to == h.transfer else "corrected by",
                    "id": x.id,
                    "what": f"holding, {x.state}",
                }
            )
    if h.superseded_by:
        items.append({"relation": "superseded by", "id": h.superseded_by, "what": "holding"})
    return items


def _resolve(rt: Runtime, ref: str, agreement: Agreement) -> tuple[str, Flow, str]:
    """(the transfer id both sides know, its flow, the other party) of a holding or transfer.

    Raises:
        NotFound / CheckFailed: no such holding or transfer, or not one under this agreement.
    """
    if ref.startswith("h-"):
        from gateway.state import holdings_store  # loads the database layer: not for `approve`

        h = holdings_store.get(rt.store, ref)
        if h.status not in (*HELD, *DISPOSED) or h.transfer is None:
            raise CheckFailed(N_("holding {ref} is {state}; only received data is answered").format(
                                  ref=ref, state=h.state))
        if h.agreement != agreement.id or h.flow is None:
            raise CheckFailed(N_("holding {ref} is under {agreement}, not {id}").format(
                                  ref=ref, agreement=h.agreement, id=agreement.id))
        return h.transfer, agreement.flow(h.flow), h.provider or ""
    t = rt.store.get(ref)
    if t.agreement != agreement.id:
        raise CheckFailed(N_("transfer {ref} is under {agreement}, not {id}").format(
                              ref=ref, agreement=t.agreement, id=agreement.id))
    if t.status not in (State.DELIVERED, State.ACKNOWLEDGED):
        raise CheckFailed(N_("transfer {ref} is {state}; only a delivered transfer is "
                             "linked").format(ref=ref, state=t.state))
    return t.id, agreement.flow(t.flow), t.recipient


def _refused(rt: Runtime, t: Transfer, operator: str, reason: Reason) -> None:
    """Record a refused `transfers link` (every refused request about a transfer leaves an
    event), before it is raised.

    Raises:
        StorageError: the state database or the ledger cannot be written.
    """
    now = clock.now_ns()
    rt.store.record([transfer_event("transfer.request_refused", t, {
        "action": "link", "reason": reason.as_dict(), "operator": operator,
    }, key=f"{t.id}:request-refused:{now}", time_ns=now)])
    rt.flush()
