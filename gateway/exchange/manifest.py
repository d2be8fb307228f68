"""The delivery manifest (送付票): what the provider sends beside each sealed file, and its check.

`NAME.manifest.json`, canonical JSON, names the transfer, terms, parties, plaintext and sealed
hashes, the witnessed statement and its signatures, and any reply or correction link, so the
recipient re-verifies the approval with its own registry. It never holds personal data or a secret.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import InputError, SignatureError
from gateway.exchange.fanout import CHILD_PREFIX, FANOUT_KEYS, child_line
from gateway.exchange.words import APPROVAL_NAMESPACE as APPROVAL_NAMESPACE
from gateway.exchange.words import DUPLICATE_KEY as DUPLICATE_KEY
from gateway.exchange.words import LINK_KEYS as LINK_KEYS
from gateway.exchange.words import STATEMENT_HEAD as STATEMENT_HEAD
from gateway.i18n import N_
from gateway.identity import sshsig
from policies.agreement import Agreement, Flow
from policies.approvals import key_proof_refusal, quorum_reached, witness_refusal
from policies.handlers import Registry
from policies.reasons import Reason

FORMAT = "tachiai-manifest/1"
SUFFIX = ".manifest.json"
MAX_BYTES = 256 * 1024  # far above any real manifest; refuses a planted huge file early
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^t-[0-9a-f]{12}$")
_KEYS = frozenset(
    {
        "format",
        "transfer",
        "agreement",
        "flow",
        "provider",
        "recipient",
        "file_name",
        "delivered_name",
        "size",
        "sha256",
        "sealed_size",
        "sealed_sha256",
        "profile",
        "sender",
        "statement",
        "approvals",
        "replies_to",
        "corrects",
    }
)
_APPROVAL_KEYS = frozenset({"witness", "fingerprint", "namespace", "signature"})


class ManifestError(InputError):
    """A manifest that is not a well-formed v1 manifest; `rule` names what is wrong.

    Bad input from the providing partner (exit 65), not a check that said no: a manifest that
    parses but does not verify is a verdict of `verify`, never this error.
    """

    default_hint = N_("ask the provider to send the file (and its manifest) again")

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class SignedApproval:
    """One witness's signature over the statement (立会者の承認), as the provider recorded it."""

    witness: str
    fingerprint: str
    signature: str
    namespace: str = APPROVAL_NAMESPACE


@dataclass(frozen=True)
class Manifest:
    """A parsed, well-formed manifest. Well-formed is not verified: see `verify`."""

    transfer: str
    agreement: str
    flow: str
    provider: str
    recipient: str
    file_name: str
    delivered_name: str
    size: int
    sha256: str
    sealed_size: int
    sealed_sha256: str
    profile: str
    sender: str | None
    statement: str
    approvals: tuple[SignedApproval, ...] = ()
    replies_to: str | None = None
    corrects: str | None = None

    def to_bytes(self) -> bytes:
        """The canonical bytes: the same manifest always serialises to the same bytes."""
        body: dict[str, Any] = {
            "format": FORMAT,
            "transfer": self.transfer,
            "agreement": self.agreement,
            "flow": self.flow,
            "provider": self.provider,
            "recipient": self.recipient,
            "file_name": self.file_name,
            "delivered_name": self.delivered_name,
            "size": self.size,
            "sha256": self.sha256,
            "sealed_size": self.sealed_size,
            "sealed_sha256": self.sealed_sha256,
            "profile": self.profile,
            "sender": self.sender,
            "statement": self.statement,
            "replies_to": self.replies_to,
            "corrects": self.corrects,
            "approvals": [
                {
                    "witness": a.witness,
                    "fingerprint": a.fingerprint,
                    "namespace": a.namespace,
                    "signature": a.signature,
                }
                for a in self.approvals
            ],
        }
        return _canonical(body)

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse strictly: canonical JSON, exactly the v1 keys, each of its type.

        Raises:
            ManifestError: anything else (rule `manifest.malformed` or `manifest.format`).
        """
        if len(data) > MAX_BYTES:
            raise ManifestError("manifest.malformed", N_(
                "the manifest is over {max_bytes} bytes").format(max_bytes=MAX_BYTES))
        try:
            raw = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ManifestError("manifest.malformed", N_(
                "the manifest is not JSON: {exc}").format(exc=exc)) from None
        if not isinstance(raw, dict) or set(raw) != _KEYS:
            raise ManifestError(
                "manifest.malformed", N_("the manifest does not have exactly the keys of a v1 "
                                         "manifest")
            )
        if raw["format"] != FORMAT:
            raise ManifestError(
                "manifest.format", N_("the manifest format is {found}, not {expected}").format(
                                       found=repr(raw['format']), expected=repr(FORMAT))
            )
        approvals = raw["approvals"]
        if not isinstance(approvals, list) or not all(
            isinstance(a, dict)
            and set(a) == _APPROVAL_KEYS
            and all(isinstance(v, str) for v in a.values())
            for a in approvals
        ):
            raise ManifestError("manifest.malformed", N_("the manifest's approvals are malformed"))
        try:
            manifest = cls(
                transfer=_text(raw, "transfer", _ID),
                agreement=_text(raw, "agreement"),
                flow=_text(raw, "flow"),
                provider=_text(raw, "provider"),
                recipient=_text(raw, "recipient"),
                file_name=_text(raw, "file_name"),
                delivered_name=_text(raw, "delivered_name"),
                size=_count(raw, "size"),
                sha256=_text(raw, "sha256", _HEX64),
                sealed_size=_count(raw, "sealed_size"),
                sealed_sha256=_text(raw, "sealed_sha256", _HEX64),
                profile=_text(raw, "profile"),
                sender=None if raw["sender"] is None else _text(raw, "sender"),
                statement=_text(raw, "statement"),
                approvals=tuple(
                    SignedApproval(a["witness"], a["fingerprint"], a["signature"], a["namespace"])
                    for a in approvals
                ),
                replies_to=None if raw["replies_to"] is None else _text(raw, "replies_to", _ID),
                corrects=None if raw["corrects"] is None else _text(raw, "corrects", _ID),
            )
        except (TypeError, ValueError) as exc:
            raise ManifestError("manifest.malformed", str(exc)) from None
        if manifest.to_bytes() != data:
            # One meaning, one encoding: what we keep and hash is what the witnesses' data says.
            raise ManifestError("manifest.malformed", N_("the manifest is not in canonical form"))
        return manifest


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: the witnesses whose signatures count, or the reasons to refuse."""

    witnesses: tuple[str, ...] = ()
    reasons: tuple[Reason, ...] = ()
    notes: tuple[str, ...] = field(default=())


def manifest_name(delivered_name: str) -> str:
    """The manifest's name beside a delivered file (within 255 bytes: intake caps names)."""
    return delivered_name + SUFFIX


def verify(
    manifest: Manifest,
    agreements: Mapping[str, Agreement],
    registry: Registry,
    party: str,
    today: dt.date,
) -> Verdict:
    """Check a manifest against our agreements and registry (not the file: see inbound).

    In order: the agreement and flow are ours and name us as the recipient; the profile is
    the flow's; the delivered name carries the transfer id; the statement says exactly what
    the manifest says; enough designated witnesses of the provider signed that statement.
    """
    agreement = agreements.get(manifest.agreement)
    if agreement is None:
        return _refuse(
            "inbound.agreement-unknown",
            f"agreement {manifest.agreement!r} is not "
            "loaded here; nothing under it can be received. List it in "
            "gateway.agreements if it was concluded",
        )
    try:
        flow = agreement.flow(manifest.flow)
    except KeyError:
        return _refuse(
            "inbound.flow-unknown",
            f"agreement {agreement.id} has no flow "
            f"{manifest.flow!r}; ask the provider which flow they sent on",
        )
    term = agreement.term(f"flows.{flow.id}")
    # A fan-out's child runs between members of the flow's party groups (国保連合会, 市町村).
    flow = agreement.flow_for(flow, manifest.provider, manifest.recipient)
    if (manifest.provider, manifest.recipient) != (flow.provider, flow.recipient):
        return _refuse(
            "inbound.parties",
            f"the manifest names {manifest.provider} → "
            f"{manifest.recipient}, but flow {flow.id} runs {flow.provider} → "
            f"{flow.recipient}",
            term,
        )
    if flow.recipient != party:
        return _refuse(
            "inbound.not-ours",
            f"flow {flow.id} delivers to {flow.recipient}, not "
            f"to {party} (this gateway); the file was misdelivered: tell the "
            "provider",
            term,
        )
    if manifest.profile != flow.encryption:
        return _refuse(
            "inbound.profile",
            f"the file is sealed as {manifest.profile}, but the "
            f"agreement requires {flow.encryption}",
            f"{term}.encryption",
        )
    if not manifest.delivered_name.endswith(f".{manifest.transfer}" + _suffix(flow.encryption)):
        return _refuse(
            "inbound.name",
            "the delivered file's name does not carry its "
            "transfer id; a file may have been swapped",
            term,
        )
    problem = statement_problem(manifest)
    if problem is not None:
        return _refuse("manifest.statement", problem, f"{term}.witnesses")
    return _witnesses(manifest, agreement, flow, registry, today)


def statement_problem(manifest: Manifest) -> str | None:
    """Why the signed statement does not say exactly what the manifest says, or None."""
    expected = {
        "transfer": manifest.transfer,
        "agreement": manifest.agreement,
        "flow": manifest.flow,
        "provider": manifest.provider,
        "recipient": manifest.recipient,
        "sender": manifest.sender or "-",
        "file-name": manifest.file_name,
        "size": str(manifest.size),
        "sha256": manifest.sha256,
    }
    for attr, key in LINK_KEYS.items():
        value = getattr(manifest, attr)
        if value is not None:
            expected[key] = value
    lines = manifest.statement.split("\n")
    if lines[0] != STATEMENT_HEAD or lines[-1] != "":
        return "the signed statement is not an approval statement v1"
    found: dict[str, str] = {}
    for line in lines[1:-1]:
        key, sep, value = line.partition(": ")
        if not sep or key in found:
            return "the signed statement has a malformed or repeated line"
        found[key] = value
    if "fanout" in found:
        return _fanout_problem(manifest, found)
    duplicate = found.pop(DUPLICATE_KEY, None)
    if duplicate is not None and not re.fullmatch(r"t-[0-9a-f]{12}", duplicate):
        return "the signed statement's duplicate-of line does not name a transfer"
    if found != expected:
        differ = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
        return (
            f"the signed statement and the manifest disagree on {', '.join(differ)}: the "
            "manifest or the file was changed after the witnesses signed"
        )
    return None


def _fanout_problem(manifest: Manifest, found: dict[str, str]) -> str | None:
    """Why a fan-out's statement (one for every child, gateway.forwarding) does not list this
    file as the child for this recipient, or None."""
    common = {
        "agreement": manifest.agreement,
        "flow": manifest.flow,
        "provider": manifest.provider,
        "sender": manifest.sender or "-",
    }
    if any(found.get(k) != v for k, v in common.items()):
        differ = sorted(k for k, v in common.items() if found.get(k) != v)
        return (f"the signed fan-out statement and the manifest disagree on {', '.join(differ)}")
    missing = [k for k in (*FANOUT_KEYS, "recipient") if k not in found]
    if missing or manifest.replies_to is not None or manifest.corrects is not None:
        return "the signed statement's fan-out lines are incomplete"
    _key, mine = child_line(manifest.recipient, manifest.transfer, 0, manifest.size,
                            manifest.sha256, manifest.file_name)
    listed = found.get(f"{CHILD_PREFIX}{manifest.recipient}", "")
    drop_rows = re.compile(r" rows=\d+ ")
    if drop_rows.sub(" ", listed) != drop_rows.sub(" ", mine):
        return (
            "the signed fan-out statement does not list this file (its transfer, size and "
            "SHA-256) as the child for this recipient: it was changed or swapped after the "
            "witnesses signed"
        )
    return None


def _witnesses(
    manifest: Manifest, agreement: Agreement, flow: Flow, registry: Registry, today: dt.date
) -> Verdict:
    message = manifest.statement.encode("utf-8")
    counted: list[str] = []
    notes: list[str] = []
    for approval in manifest.approvals:
        try:
            signed = sshsig.verify(message, approval.signature, APPROVAL_NAMESPACE)
        except SignatureError as exc:
            notes.append(f"{approval.witness}: {exc}")
            continue
        witness = registry.by_key(signed.public_key)
        refusal = witness_refusal(
            agreement, flow, witness, manifest.sender, counted, today
        ) or key_proof_refusal(agreement, signed.sk_flags)
        if refusal is not None:
            notes.append(f"{signed.fingerprint}: {refusal.rule}")
            continue
        assert witness is not None
        counted.append(witness.name)
    if not quorum_reached(flow, counted, manifest.sender):
        detail = f" ({'; '.join(notes)})" if notes else ""
        return Verdict(
            tuple(counted),
            (
                agreement.reason(
                    "inbound.witnesses",
                    f"only {len(counted)} of {flow.witnesses} required witness signature(s) "
                    "verify against this gateway's registry of designated witnesses of "
                    f"{flow.provider}{detail}; ask the provider to check the approval, or the "
                    "administrator to register the provider's witnesses",
                    f"flows.{flow.id}.witnesses",
                ),
            ),
            tuple(notes),
        )
    return Verdict(tuple(counted), (), tuple(notes))


def _refuse(rule: str, message: str, term: str | None = None) -> Verdict:
    return Verdict(reasons=(Reason(rule, message, term),))


def _suffix(profile: str) -> str:
    return ".age" if profile == "age" else ".zip"  # gateway.outbound.sealing.suffix


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(
        body, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    ).encode("utf-8")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice")
        out[key] = value
    return out


def _text(raw: Mapping[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value or (pattern and not pattern.match(value)):
        raise ValueError(f"the manifest's {key} is missing or malformed")
    if any(ord(c) < 0x20 and c != "\n" for c in value) or ("\n" in value and key != "statement"):
        raise ValueError(f"the manifest's {key} has control characters")
    return value


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"the manifest's {key} is not a size")
    return value
