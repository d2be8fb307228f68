"""A holding forwarded to a party group (seed 000 記1(3)): split by 地方公共団体コード, one child
per federation, one witnessed decision for all, each child delivered to its own member only.

Three gateways in one process (isa → nhi-central → the federation of Tokyo), real pipeline
steps, real SSH signatures, real AES ZIPs and real folders; the other federations' inboxes are
folders. Attacks: a row whose code and address disagree, a child changed after the decision, a
child delivered to the wrong member, a file dropped straight into a group's flow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gateway import forwarding
from gateway.cli import main
from gateway.config.settings import load_settings
from gateway.errors import CheckFailed, StateError
from gateway.exchange.fanout import member_refusal
from gateway.identity import sshsig
from gateway.identity.sshkeys import generate_ed25519, load_private_key
from gateway.inbound import arrivals, holdings
from gateway.inbound.holdings import HoldingState
from gateway.outbound import approvals, pipeline
from gateway.outbound.approval_folder import ApprovalFolder
from gateway.outbound.intake import Outbox
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime, event
from gateway.state import clock, fanouts
from gateway.state.rows import Transfer
from tests.conftest import needs_7zz, shows_value
from tests.gateway.inbound.test_holdings_pair import (
    AGREEMENT,
    ROOT,
    Pair,
    Side,
    _config,
    csv_bytes,
    make_pair,
)
from tests.policies.bundled import agreement

CODE = "住居地(地方公共団体コード)"
FLOW = "to-federations"
TOKYO = [
    "TEST TARO,131041,東京都新宿区サンプル町1-1,1,1990/04/01,2026/10/01",
    "TEST JIRO,131016,東京都千代田区サンプル町2-2,1,1991/05/02,2026/10/02",
]
KANAGAWA = ["SAMPLE HANAKO,141003,神奈川県横浜市テスト町3-3,女,1985-12-24,2026/10/03",
            "SAMPLE KEIKO,141011,神奈川県横浜市鶴見区テスト町4-4,2,1986-01-05,2026/10/04"]
HOKKAIDO = ["DUMMY SABURO,011002,北海道札幌市サンプル町5-5,1,1975/11/03,2026/10/05"]
# A Tokyo code with a Kanagawa address: the row goes to nobody.
MISMATCH = "EXAMPLE SHIRO,131016,神奈川県横浜市テスト町6-6,1,1980/02/03,2026/10/06"
ROWS = [TOKYO[0], KANAGAWA[0], HOKKAIDO[0], MISMATCH, TOKYO[1], KANAGAWA[1]]
MEMBERS = ("nhi-federations-01", "nhi-federations-13", "nhi-federations-14")
TOWNS = ("municipalities-131016", "municipalities-131041")  # 千代田区, 新宿区

@dataclass
class Chain:
    pair: Pair
    federation: Side  # the gateway of nhi-federations-13
    base: Path

    @property
    def central(self) -> Runtime:
        return self.pair.recipient.rt

    def inbox(self, member: str) -> Path:
        if member == "nhi-federations-13":
            return self.federation.inbox
        return self.base / "elsewhere" / member / "inbox"


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    pair = make_pair(tmp_path)
    shutil.copy(ROOT / "policies" / "agreements" / f"{AGREEMENT}.groups.toml",
                tmp_path / "agreements")
    fed = tmp_path / "fed13"
    routes = "".join(
        f'\n[recipients.{m}]\ntransport = "local"\ninbox = "{inbox}"\n'
        f'password_channel = "{passwords}"\n'
        for m, inbox, passwords in (
            ("nhi-federations-13", "../fed13/inbound/inbox", "../fed13/inbound/passwords"),
            *((m, f"../elsewhere/{m}/inbox", f"../elsewhere/{m}/passwords")
              for m in ("nhi-federations-01", "nhi-federations-14")),
        )
    )
    config = pair.recipient.root / "tachiai.toml"
    config.write_text(config.read_text(encoding="utf-8") + routes, encoding="utf-8")
    for m in ("nhi-federations-01", "nhi-federations-14"):
        for sub in ("inbox", "passwords"):
            (tmp_path / "elsewhere" / m / sub).mkdir(parents=True, mode=0o700)
    for sub in ("inbound/inbox", "inbound/passwords"):
        (fed / sub).mkdir(parents=True, mode=0o700)
    registry = (pair.recipient.root / "registry.toml").read_text(encoding="utf-8")
    me = pwd.getpwuid(os.getuid()).pw_name
    # The federation of Tokyo: ito receives, mori (the OS user) forwards, abe witnesses.
    for name, role, os_user in (("ito", "receive", None), ("mori", "send", me),
                                ("abe", "witness", None)):
        public = generate_ed25519(pair.keys / name, f"{name}@tachiai-test")
        registry += (f'\n[[handlers]]\nname = "{name}"\nparty = "nhi-federations-13"\nroles = '
                     f'["{role}"]\npublic_key = "{public}"\nagreements = ["{AGREEMENT}"]\n'
                     "designated_from = 2023-03-29\n"
                     + (f'os_user = "{os_user}"\n' if os_user else ""))
    (fed / "registry.toml").write_text(registry, encoding="utf-8")
    towns = "".join(
        f'\n[recipients.{m}]\ntransport = "local"\ninbox = "../towns/{m}/inbox"\n'
        f'password_channel = "../towns/{m}/passwords"\n' for m in TOWNS)
    for m in TOWNS:
        for sub in ("inbox", "passwords"):
            (tmp_path / "towns" / m / sub).mkdir(parents=True, mode=0o700)
    (fed / "tachiai.toml").write_text(_config("nhi-federations-13", "", towns), encoding="utf-8")
    pair.recipient.reopen()
    federation = Side(fed, Runtime.open(load_settings(fed / "tachiai.toml")))
    return Chain(pair, federation, tmp_path)


def _held(chain: Chain, rows: list[str]) -> holdings.Holding:
    chain.pair.send(csv_bytes(rows))
    (h,) = chain.pair.receive()
    assert h.status is HoldingState.RECEIVED
    return h


def _approve_all(chain: Chain, fanout_id: str, witness: str = "yamada") -> list[str]:
    rt = chain.central
    children = approvals.fanout_children(rt, fanout_id)
    assert children is not None
    statement = approvals.statement(rt, rt.store.get(children[0]))
    signature = sshsig.sign(statement, load_private_key(chain.pair.key(witness)),
                            approvals.APPROVAL_NAMESPACE)
    for child in children:
        approvals.approve(rt, child, signature)
    return children


def test_a_national_file_reaches_each_federation_with_only_its_prefectures_rows(
    chain: Chain,
) -> None:
    h = _held(chain, ROWS)
    rt = chain.central
    fanout, children = forwarding.forward(rt, h.id, FLOW, CODE)
    assert fanout.rows == 6 and dict(fanout.withheld) == {"mismatch": 1}
    assert [c.member for c in fanout.children] == list(MEMBERS)
    assert [c.rows for c in fanout.children] == [1, 2, 2]
    assert all(t.status is State.AWAITING_APPROVAL for t in children), [t.reasons for t in children]
    expected = {"nhi-federations-01": HOKKAIDO, "nhi-federations-13": TOKYO,
                "nhi-federations-14": KANAGAWA}
    for child in fanout.children:
        t = rt.store.get(child.transfer)
        assert t.recipient == child.member and t.provider == "nhi-central"
        assert child.sha256 == hashlib.sha256(csv_bytes(expected[child.member])).hexdigest()
        assert t.sha256 == child.sha256
    # One statement for all: the same bytes whichever child is asked, listing every child.
    statements = {approvals.statement(rt, rt.store.get(c.transfer)) for c in fanout.children}
    (statement,) = statements
    for child in fanout.children:
        assert f"child-{child.member}: transfer={child.transfer} rows={child.rows}".encode() \
            in statement
    assert b"fanout-withheld: mismatch=1" in statement
    for value in ("TEST TARO", "サンプル町", "131041"):
        assert not shows_value(statement.decode(), value), value
    created = [e for e in rt.ledger.events() if e.kind == "fanout.created"]
    (event,) = created
    assert event.data["parent_sha256"] == h.sha256 and event.data["withheld"] == {"mismatch": 1}
    assert [c["sha256"] for c in event.data["children"]] == [c.sha256 for c in fanout.children]
    assert "TEST TARO" not in json.dumps(event.data, ensure_ascii=False)

    _approve_all(chain, fanout.id)
    for child in fanout.children:
        done = pipeline.advance(rt, rt.store.get(child.transfer))
        assert done.status is State.DELIVERED, done.reasons
        names = [p.name for p in chain.inbox(child.member).iterdir()]
        assert len(names) == 2 and all(child.transfer in n for n in names)
        # Sealed and delivered under the fan-out's statement (the one the witness signed),
        # which the manifest carries with the signature that verifies over it.
        (manifest,) = [p for p in chain.inbox(child.member).iterdir()
                       if p.name.endswith(".manifest.json")]
        sent = json.loads(manifest.read_bytes())
        assert sent["statement"].encode("utf-8") == statement
        assert [a["witness"] for a in sent["approvals"]] == ["yamada"]
    # The federation of Tokyo receives its part, checks that every row is its own, and holds it.
    arrivals.poll_inbound(chain.federation.rt)
    (held,) = holdings.find(chain.federation.rt)
    assert held.status is HoldingState.RECEIVED, held.reasons
    assert held.sha256 == fanout.children[1].sha256 and held.provider == "nhi-central"
    with holdings.plaintext(chain.federation.rt, held) as fh:
        assert fh.read() == csv_bytes(TOKYO)
    for side in (chain.pair.provider, chain.pair.recipient, chain.federation):
        assert main(["--config", str(side.root / "tachiai.toml"), "audit", "verify"]) == 0


def _forward_to_tokyo(chain: Chain, rows: list[str]) -> holdings.Holding:
    """isa → nhi-central → the federation of Tokyo: its part, held there."""
    h = _held(chain, rows)
    fanout, _children = forwarding.forward(chain.central, h.id, FLOW, CODE)
    _approve_all(chain, fanout.id)
    for child in fanout.children:
        done = pipeline.advance(chain.central, chain.central.store.get(child.transfer))
        assert done.status is State.DELIVERED, done.reasons
    arrivals.poll_inbound(chain.federation.rt)
    (held,) = holdings.find(chain.federation.rt)
    assert held.status is HoldingState.RECEIVED, held.reasons
    return held


def _opened(tmp: Path, inbox: Path, passwords: Path) -> bytes:
    """The one delivery in `inbox`, opened with 7zz and its password."""
    (sealed,) = [p for p in inbox.iterdir() if p.name.endswith(".zip")]
    (password_file,) = list(passwords.iterdir())
    out = tmp / inbox.parent.name
    subprocess.run(["7zz", "x", "-y", f"-o{out}", f"-p{password_file.read_text().strip()}",
                    str(sealed)], check=True, capture_output=True)
    (plain,) = list(out.iterdir())
    return plain.read_bytes()


@needs_7zz
def test_the_federation_splits_again_and_each_municipality_gets_only_its_residents(
    chain: Chain, tmp_path: Path
) -> None:
    tokyo = [TOKYO[0], TOKYO[1], TOKYO[0].replace("TEST TARO", "TEST SABURO")]
    held = _forward_to_tokyo(chain, [*tokyo, KANAGAWA[0], HOKKAIDO[0], MISMATCH])
    fed = chain.federation.rt
    fanout, children = forwarding.forward(fed, held.id, "to-municipalities", CODE)
    assert [(c.member, c.rows) for c in fanout.children] == [(TOWNS[0], 1), (TOWNS[1], 2)]
    assert fanout.withheld == {} and fanout.parent_sha256 == held.sha256
    assert all(t.status is State.AWAITING_APPROVAL for t in children), [t.reasons for t in children]
    assert {t.provider for t in children} == {"nhi-federations-13"}
    statement = approvals.statement(fed, children[0])
    signature = sshsig.sign(statement, load_private_key(chain.pair.key("abe")),
                            approvals.APPROVAL_NAMESPACE)
    for t in children:
        approvals.approve(fed, t.id, signature)
        assert pipeline.advance(fed, fed.store.get(t.id)).status is State.DELIVERED
    expected = {TOWNS[0]: [TOKYO[1]], TOWNS[1]: [tokyo[0], tokyo[2]]}
    for town in TOWNS:
        folder = chain.base / "towns" / town
        data = _opened(tmp_path / "opened", folder / "inbox", folder / "passwords")
        assert data == csv_bytes(expected[town])  # byte for byte, cp932 and CRLF kept
        codes = {line.split(b",")[1] for line in data.splitlines()[1:]}
        assert codes == {town.rsplit("-", 1)[1].encode()}  # nobody gets another body's row
    for side in (chain.pair.provider, chain.pair.recipient, chain.federation):
        assert main(["--config", str(side.root / "tachiai.toml"), "audit", "verify"]) == 0


def test_a_child_changed_after_the_decision_is_never_sent(chain: Chain) -> None:
    h = _held(chain, ROWS)
    rt = chain.central
    fanout, _children = forwarding.forward(rt, h.id, FLOW, CODE)
    _approve_all(chain, fanout.id)
    tokyo = fanout.children[1]
    payload = rt.spool.payload(tokyo.transfer)
    payload.chmod(0o600)
    payload.write_bytes(csv_bytes([TOKYO[0], KANAGAWA[0]]))  # a Kanagawa row slipped in
    done = pipeline.advance(rt, rt.store.get(tokyo.transfer))
    assert done.status is State.REJECTED
    assert [r["rule"] for r in json.loads(done.reasons)] == ["approval.void"]
    assert list(chain.inbox(tokyo.member).iterdir()) == []


def test_a_child_misrouted_to_another_federation_is_refused_there(chain: Chain) -> None:
    h = _held(chain, ROWS)
    rt = chain.central
    fanout, _children = forwarding.forward(rt, h.id, FLOW, CODE)
    _approve_all(chain, fanout.id)
    kanagawa = fanout.children[2]
    done = pipeline.advance(rt, rt.store.get(kanagawa.transfer))
    assert done.status is State.DELIVERED
    # Carried to Tokyo's inbox by mistake, its password too.
    for p in chain.inbox(kanagawa.member).iterdir():
        shutil.move(p, chain.federation.inbox / p.name)
    for p in (chain.base / "elsewhere" / kanagawa.member / "passwords").iterdir():
        shutil.move(p, chain.federation.passwords / p.name)
    arrivals.poll_inbound(chain.federation.rt)
    (refused,) = holdings.find(chain.federation.rt)
    assert refused.status is HoldingState.REFUSED
    assert [r["rule"] for r in json.loads(refused.reasons)] == ["inbound.not-ours"]


def test_the_receiving_side_refuses_rows_of_another_member() -> None:
    a = agreement(AGREEMENT)
    flow = a.flow(FLOW)
    on = dt.date(2026, 11, 2)
    own = member_refusal(a, flow, "nhi-federations", "nhi-federations-13",
                         io.BytesIO(csv_bytes(TOKYO)), on)
    assert own is None
    foreign = member_refusal(a, flow, "nhi-federations", "nhi-federations-13",
                             io.BytesIO(csv_bytes([TOKYO[0], KANAGAWA[0]])), on)
    assert foreign is not None and foreign.rule == "fanout.foreign-rows"
    assert "1 of 2 rows" in foreign.message and "TEST" not in foreign.message
    mismatched = member_refusal(a, flow, "nhi-federations", "nhi-federations-13",
                                io.BytesIO(csv_bytes([TOKYO[0], MISMATCH])), on)
    assert mismatched is not None and mismatched.rule == "fanout.foreign-rows"


def test_a_file_dropped_straight_into_a_group_flow_is_rejected(chain: Chain) -> None:
    rt = chain.central
    folder = rt.settings.outbox(AGREEMENT, FLOW)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "federations.csv"
    path.write_bytes(csv_bytes(TOKYO))
    t = pipeline.take_in(rt, Outbox(AGREEMENT, FLOW, folder), path)
    assert t is not None and t.status is State.REJECTED
    assert [r["rule"] for r in json.loads(t.reasons)] == ["fanout.member"]


def test_forwarding_twice_or_what_cannot_be_split_is_refused(chain: Chain) -> None:
    h = _held(chain, [MISMATCH])
    rt = chain.central
    with pytest.raises(CheckFailed, match=r"split\.nothing"):
        forwarding.forward(rt, h.id, FLOW, CODE)
    assert [e.kind for e in rt.ledger.events()][-1] == "fanout.refused"
    assert fanouts.by_holding(rt.store, h.id) == []
    assert [t.recipient for t in rt.store.list_transfers()] == []  # nothing was made, or sent


def _forwarded_by_the_cli(chain: Chain, capsys: pytest.CaptureFixture[str]
                          ) -> tuple[holdings.Holding, str, dict[str, Any]]:
    """A holding forwarded with `tachiai holdings forward --json`: it, the receiving gateway's
    configuration, and what the command printed."""
    h = _held(chain, ROWS)
    config = str(chain.pair.recipient.root / "tachiai.toml")
    assert main(["--config", config, "holdings", "forward", h.id, "--flow", FLOW,
                 "--split-by", CODE, "--json"]) == 0
    return h, config, json.loads(capsys.readouterr().out)


def test_the_cli_forwards_and_one_approval_covers_every_child(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    h, config, out = _forwarded_by_the_cli(chain, capsys)
    assert out["withheld"] == {"mismatch": 1}
    assert [(c["member"], c["rows"], c["state"]) for c in out["children"]] == [
        (m, n, "awaiting_approval") for m, n in zip(MEMBERS, (1, 2, 2), strict=True)]
    assert main(["--config", config, "approve", out["fanout"], "--key",
                 str(chain.pair.key("yamada"))]) == 0
    rt = chain.pair.recipient.reopen()
    assert {rt.store.get(c["transfer"]).state for c in out["children"]} == {"approved"}
    with pytest.raises(StateError, match="forwarded on flow"):
        forwarding.forward(rt, h.id, FLOW, CODE)


def test_a_fanout_whose_every_child_was_rejected_may_be_forwarded_anew(chain: Chain) -> None:
    h = _held(chain, ROWS)
    config = str(chain.pair.recipient.root / "tachiai.toml")
    first, _children = forwarding.forward(chain.central, h.id, FLOW, CODE)
    for child in first.children[:2]:
        assert main(["--config", config, "reject", child.transfer, "--key",
                     str(chain.pair.key("yamada")), "--reason", "the wrong month"]) == 0
    rt = chain.pair.recipient.reopen()
    with pytest.raises(StateError, match="forwarded on flow"):  # one child still stands
        forwarding.forward(rt, h.id, FLOW, CODE)
    assert main(["--config", config, "reject", first.children[2].transfer, "--key",
                 str(chain.pair.key("yamada")), "--reason", "the wrong month"]) == 0
    rt = chain.pair.recipient.reopen()
    again, children = forwarding.forward(rt, h.id, FLOW, CODE)
    assert again.id != first.id and [c.member for c in again.children] == list(MEMBERS)
    assert {t.status for t in children} == {State.AWAITING_APPROVAL}


def test_the_approvals_folder_publishes_a_fanout_once_whole_and_one_signature_approves_it(
    chain: Chain,
) -> None:
    """The approvals folder (gateway.outbound.approval_folder) on a flow to a party group: a
    fan-out's one statement, not before every part is checked, then once under the fan-out's
    id; one `ssh-keygen -Y sign` signature dropped beside it approves every child."""
    rt = chain.central
    parts = []
    for n, member in enumerate(("nhi-federations-13", "nhi-federations-14")):
        now = clock.now_ns()
        state = State.AWAITING_APPROVAL if n == 0 else State.QUARANTINED  # not yet checked
        t = Transfer(id=f"t-{now % (1 << 48):012x}", agreement=AGREEMENT, flow=FLOW,
                     provider="nhi-central", recipient=member, state=state.value,
                     file_name=f"part-{n}.csv", source_path=f"/staging/part-{n}.csv",
                     created_ns=now, updated_ns=now, sender="kobayashi", size=100 + n,
                     sha256=f"{n + 1:02x}" * 32, encoding="cp932", rows=1)
        rt.store.create(t, [event("transfer.checked", t)])
        parts.append(t)
    first, second = parts
    fanout_id = f"f-{first.id[2:]}"
    with rt.store.transaction() as conn:
        fanouts.record(conn, fanouts.Fanout(
            id=fanout_id, holding="h-1", agreement=AGREEMENT, flow=FLOW, group="nhi-federations",
            split_by=CODE, parent_sha256="ef" * 32, rows=2, withheld={}, created_by=None,
            created_ns=clock.now_ns(), children=tuple(
                fanouts.Child(t.id, t.recipient, 1, t.sha256 or "", t.size or 0)
                for t in parts)))
    folder = ApprovalFolder(rt, rt.settings.approvals_folder)
    folder.prepare()
    folder.poll()
    assert not (folder.folder / fanout_id).exists()  # no part approved before all are checked
    assert not (folder.folder / first.id).exists()
    rt.store.transition(rt.store.get(second.id), State.AWAITING_APPROVAL,
                        [event("transfer.checked", second)])
    folder.poll()
    assert sorted(p.name for p in folder.folder.iterdir()) == sorted([fanout_id, "refused"])
    published = (folder.folder / fanout_id).read_bytes()
    assert published == approvals.statement(rt, rt.store.get(first.id)) \
        == approvals.statement(rt, rt.store.get(second.id))
    assert f"fanout: {fanout_id}\n".encode() in published
    subprocess.run(["ssh-keygen", "-q", "-Y", "sign", "-n", approvals.APPROVAL_NAMESPACE, "-f",
                    str(chain.pair.key("yamada")), str(folder.folder / fanout_id)],
                   check=True, capture_output=True)
    taken = folder.poll()
    assert taken.accepted == [fanout_id] and taken.refused == []
    assert {rt.store.get(t.id).status for t in parts} == {State.APPROVED}
    assert not (folder.folder / fanout_id).exists()


def test_a_fanout_in_a_batch_is_approved_whole_as_alone(
    chain: Chain, capsys: pytest.CaptureFixture[str]
) -> None:
    _h, config, out = _forwarded_by_the_cli(chain, capsys)
    # With no daemon running, in the command's own process, beside an id that is refused.
    assert main(["--config", config, "approve", out["fanout"], "t-000000000000", "--key",
                 str(chain.pair.key("yamada"))]) == CheckFailed.exit_code
    said = capsys.readouterr()
    assert said.out.startswith(f"{out['fanout']}: approval by yamada recorded")
    assert f"{len(MEMBERS)} of {len(MEMBERS)} child transfer(s) of the fan-out approved" in said.err
    assert "t-000000000000: NOT approved" in said.err and "1 of 2 approval(s)" in said.err
    rt = chain.pair.recipient.reopen()
    assert {rt.store.get(c["transfer"]).state for c in out["children"]} == {"approved"}
