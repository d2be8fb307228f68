"""The fixed words both gateways put in a statement and a manifest: the SSHSIG namespace of an
approval and the statement lines that name a duplicate or a link.

Apart from `gateway.exchange.manifest` (which reads and checks whole manifests, and re-exports
these) so that approving a transfer loads only the words, not the manifest's checks.
"""

from __future__ import annotations

# The SSHSIG namespace witnesses sign under (`ssh-keygen -Y sign -n tachiai-approval`): both
# halves name it, so it is part of what they exchange.
APPROVAL_NAMESPACE = "tachiai-approval"
#: The namespace of a rejection (`tachiai reject`): only this gateway checks it.
REJECTION_NAMESPACE = "tachiai-rejection"
STATEMENT_HEAD = "tachiai approval statement v1"
#: The provider's duplicate notice (重複送信): the witnesses approved sending bytes already
#: delivered on the flow as that transfer. Signed with the rest; nothing for a recipient to
#: compare it with, so only its form is checked.
DUPLICATE_KEY = "duplicate-of"
#: Statement lines that link a transfer to an earlier one (疑義照会・回答, 訂正).
LINK_KEYS = {"replies_to": "replies-to", "corrects": "corrects"}
