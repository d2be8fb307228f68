"""Who may send on a flow, and when: the sender (送信担当), period (有効期間, 更新), reply
(疑義照会・回答) and correction (訂正) terms of an agreement.

Pure decisions: the gateway passes the file owner's OS user name, the date and the linked
transfer's flow; the answer is the designated sender or the reason there is none.
"""

from __future__ import annotations

import datetime as dt

from policies.agreement import Agreement, Flow
from policies.handlers import Handler, Registry
from policies.reasons import Reason
from policies.wording import R_


def find_sender(
    registry: Registry, agreement: Agreement, flow: Flow, os_user: str | None, on: dt.date
) -> Handler | Reason:
    """The designated sender who dropped the file, or why nobody qualifies."""
    key = f"flows.{flow.id}.from"
    if os_user is None:
        return agreement.reason(
            "sender.unknown",
            R_("the file's owner has no user name on this "
               "system; drop files as your own designated user"),
            key,
        )
    for handler in registry.by_os_user(os_user):
        if handler.party == flow.provider and handler.designated(agreement.id, "send", on):
            return handler
    return agreement.reason(
        "sender.not-designated",
        R_("the file's owner is not a designated sender (取扱者) of party {party} for this "
           "agreement on this date; ask the administrator to designate them in the handler "
           "registry, or have a designated sender drop the file", party=flow.provider),
        key,
    )


def find_named_sender(
    registry: Registry, agreement: Agreement, flow: Flow, name: str, on: dt.date
) -> Handler | Reason:
    """The designated sender a pulled file is attributed to by configuration (SFTP pickup)."""
    handler = registry.by_name(name)
    if (handler is not None and handler.party == flow.provider
            and handler.designated(agreement.id, "send", on)):
        return handler
    return agreement.reason(
        "sender.not-designated",
        R_("the pickup names {name}, who is not a designated sender (取扱者) of party "
           "{party} for this agreement on this date; correct the pickup's handler or the "
           "designation in the handler registry", name=repr(name), party=flow.provider),
        f"flows.{flow.id}.from",
    )


def check_period(agreement: Agreement, on: dt.date) -> Reason | None:
    """Refuse provision outside the agreement's period of validity, counting recorded renewals
    (更新): a renewal the file does not record does not extend it (fail closed)."""
    if agreement.in_force(on):
        return None
    until = agreement.effective_until
    until_text = until.isoformat() if until else R_("open")
    renewal = ""
    if agreement.renewal is not None and until is not None and on > until:
        renewal = R_(
            "; it is renewed {every}: once the renewal is decided, "
            "record it under [renewal] renewed in the agreement file",
            every=agreement.renewal.every,
        )
    return agreement.reason(
        "agreement.out-of-term",
        R_("the agreement is in force from {start} to {end}; "
           "provide within that period or have the agreement renewed{renewal}",
           start=agreement.valid_from.isoformat(), end=until_text, renewal=renewal),
        "valid_from..valid_until",
    )


def applied_terms(agreement: Agreement, flow: Flow) -> tuple[str, ...]:
    """The terms an accepted transfer on this flow relies on, beyond its content (which
    `policies.content.check_file` lists): purpose, legal basis, period, sender, witnesses,
    encryption and the onward chain of its recipient. For the ledger and the report."""
    keys = [
        "purpose",
        "legal_basis",
        "valid_from..valid_until",
        f"flows.{flow.id}.from",
        f"flows.{flow.id}.witnesses",
        f"flows.{flow.id}.encryption",
        "onward",
    ]
    if agreement.renewal is not None:
        keys.append("renewal")
    if flow.reply_to is not None:
        keys.append(f"flows.{flow.id}.reply_to")
    return tuple(agreement.term(k) for k in keys)


def check_reply(agreement: Agreement, flow: Flow, replying_to: Flow | None) -> Reason | None:
    """Refuse a reply (回答, or an inquiry about a provision) that is not linked to a transfer
    of the flow it answers. The gateway passes the flow of the linked transfer, or None when
    the file is linked to nothing; flows that answer nothing pass."""
    if flow.reply_to is None:
        return None
    if replying_to is None or replying_to.id != flow.reply_to:
        return agreement.reason(
            "reply.unlinked",
            R_("flow {flow} ({kind}) must answer a transfer of flow {reply_to}; "
               "name the transfer it replies to", flow=flow.id, kind=flow.kind,
               reply_to=flow.reply_to),
            f"flows.{flow.id}.reply_to",
        )
    return None


def check_correction(
    agreement: Agreement, flow: Flow, corrected: Flow, ref: str
) -> Reason | None:
    """Refuse a correction (訂正) the agreement does not provide for: only under an agreement
    with `corrections = true`, only of our own delivered transfer (`ref` is a transfer id,
    "t-…", never a holding), on its flow or a correction flow to the same party. The gateway
    passes the flow of the transfer being corrected."""
    if not agreement.corrections:
        return agreement.reason(
            "correction.not-agreed",
            R_("the agreement provides for no corrections (訂正); send the data anew instead"),
            "corrections",
        )
    if not ref.startswith("t-"):
        return agreement.reason(
            "correction.not-ours",
            R_("a correction names the delivered transfer of ours it corrects"),
            "corrections",
        )
    if flow.recipient != corrected.recipient or (
        flow.id != corrected.id and flow.kind != "correction"
    ):
        return agreement.reason(
            "correction.flow",
            R_("a correction of flow {flow} goes "
               "on that flow (or a correction flow) to the same party", flow=corrected.id),
            f"flows.{flow.id}",
        )
    return None
