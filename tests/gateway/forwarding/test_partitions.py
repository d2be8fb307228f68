"""Partitions at the receiving end (seed 004: 市町村ごとに論理的に区分された区画, 区画ごとにアクセス
制御): one gateway holds the data of two municipalities, each holding belongs to the member it was
delivered for, and only that member's designated receiving handlers open or certify it.

The chain of seed 000 runs for real (isa → nhi-central → the federation of Tokyo → a shared
municipal gateway with partitions for 千代田区 and 新宿区): real pipeline steps, SSH signatures,
AES ZIPs and folders. Attacks: a handler of one member opens, certifies and signs terms about the
other member's holding; the gateway's own operator tries too; a handler of another body tries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit.report import Period, build
from audit.report_render import markdown
from gateway import forwarding
from gateway.cli import main
from gateway.config import deliverability
from gateway.config.settings import load_settings
from gateway.errors import CheckFailed, ConfigError
from gateway.identity import sshsig
from gateway.identity.sshkeys import generate_ed25519, load_private_key
from gateway.inbound import arrivals, holdings
from gateway.inbound.certificates import CERTIFICATE_NAMESPACE, certificate_statement, certify
from gateway.inbound.holdings import Holding, HoldingState
from gateway.inbound.opening import OPEN_NAMESPACE, open_holding, open_request
from gateway.inbound.terms import TERMS_NAMESPACE, sign_terms, terms_statement
from gateway.outbound import approvals, pipeline
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state import clock
from tests.gateway.forwarding.test_fanout import (
    CODE,
    HOKKAIDO,
    KANAGAWA,
    TOKYO,
    TOWNS,
    Chain,
    _forward_to_tokyo,
    chain,
)
from tests.gateway.inbound.test_holdings_pair import AGREEMENT, Side, _config, csv_bytes

__all__ = ["chain"]

CHIYODA, SHINJUKU = TOWNS  # 131016 (TOKYO[1]), 131041 (TOKYO[0])


@dataclass
class Shared:
    """The shared gateway of the two municipalities, and who may sign there."""

    side: Side
    keys: Path

    @property
    def rt(self) -> Runtime:
        return self.side.rt

    def sign(self, who: str, message: bytes, namespace: str) -> str:
        return sshsig.sign(message, load_private_key(self.keys / who), namespace)


@pytest.fixture
def shared(chain: Chain, tmp_path: Path) -> Shared:
    """A gateway of party `municipalities` holding for 千代田区 and 新宿区, each with its own
    receiving handler (kudo, sano); ono is the shared gateway's own operator."""
    root = tmp_path / "shared"
    for sub in ("inbound/inbox", "inbound/passwords"):
        (root / sub).mkdir(parents=True, mode=0o700)
    registry = (chain.federation.root / "registry.toml").read_text(encoding="utf-8")
    keys = chain.pair.keys  # beside everyone else's: ito of the federation signs here too
    for name, party in (("kudo", CHIYODA), ("sano", SHINJUKU), ("ono", "municipalities")):
        public = generate_ed25519(keys / name, f"{name}@tachiai-test")
        registry += (f'\n[[handlers]]\nname = "{name}"\nparty = "{party}"\nroles = ["receive"]\n'
                     f'public_key = "{public}"\nagreements = ["{AGREEMENT}"]\n'
                     "designated_from = 2023-03-29\n")
    (root / "registry.toml").write_text(registry, encoding="utf-8")
    config = _config("municipalities", "", "").replace(
        'agreements = [', f'partitions = ["{CHIYODA}", "{SHINJUKU}"]\nagreements = [', 1)
    (root / "tachiai.toml").write_text(config, encoding="utf-8")
    # The federation delivers both municipalities' parts into the shared gateway's inbox.
    fed = chain.federation.root / "tachiai.toml"
    text = fed.read_text(encoding="utf-8")
    for town in TOWNS:
        text = text.replace(f"../towns/{town}/inbox", "../shared/inbound/inbox")
        text = text.replace(f"../towns/{town}/passwords", "../shared/inbound/passwords")
    fed.write_text(text, encoding="utf-8")
    chain.federation.reopen()
    return Shared(Side(root, Runtime.open(load_settings(root / "tachiai.toml"))), keys)


def _received(chain: Chain, shared: Shared) -> dict[str, Holding]:
    """Tokyo's rows down the chain, split per municipality, both parts held at the shared
    gateway: each holding by the member it belongs to."""
    extra = TOKYO[0].replace("TEST TARO", "TEST SABURO")
    held = _forward_to_tokyo(chain, [TOKYO[0], TOKYO[1], extra, KANAGAWA[0], HOKKAIDO[0]])
    fed = chain.federation.rt
    _fanout, children = forwarding.forward(fed, held.id, "to-municipalities", CODE)
    statement = approvals.statement(fed, children[0])
    signature = sshsig.sign(statement, load_private_key(chain.pair.key("abe")),
                            approvals.APPROVAL_NAMESPACE)
    for t in children:
        approvals.approve(fed, t.id, signature)
        assert pipeline.advance(fed, fed.store.get(t.id)).status is State.DELIVERED
    arrivals.poll_inbound(shared.rt)
    found = {h.recipient or "": h for h in holdings.find(shared.rt)}
    assert set(found) == set(TOWNS), [(h.recipient, h.reasons) for h in found.values()]
    assert all(h.status is HoldingState.RECEIVED for h in found.values())
    return found


def _terms(shared: Shared, h: Holding, who: str, party: str) -> str:
    statement = terms_statement(shared.rt.agreements[AGREEMENT], party)
    return sign_terms(shared.rt, h.id, shared.sign(who, statement, TERMS_NAMESPACE))


def _open(shared: Shared, h: Holding, who: str) -> Path:
    when = dt.datetime.now(clock.JST).replace(microsecond=0).isoformat()
    statement = open_request(holdings.get(shared.rt, h.id), when)
    return open_holding(shared.rt, h.id, statement, shared.sign(who, statement, OPEN_NAMESPACE))


def _certify(shared: Shared, h: Holding, who: str) -> Holding:
    method = "deleted the file from the processing server"
    on = clock.today()
    statement = certificate_statement(holdings.get(shared.rt, h.id), "deleted", method, on)
    return certify(shared.rt, h.id, "deleted", method, on,
                   shared.sign(who, statement, CERTIFICATE_NAMESPACE))


def _refusals(rt: Runtime, holding_id: str) -> list[tuple[str, str | None]]:
    return [(e.data["reason"]["rule"], e.data["signer"]) for e in rt.ledger.events()
            if e.kind == "holding.request_refused" and e.subject == holding_id]


def test_each_municipality_opens_only_its_own_partition(chain: Chain, shared: Shared) -> None:
    held = _received(chain, shared)
    mine, theirs = held[CHIYODA], held[SHINJUKU]
    rt = shared.rt
    # The terms a member's handler signs are the member's, with its group's obligations.
    statement = terms_statement(rt.agreements[AGREEMENT], CHIYODA).decode()
    assert f"party: {CHIYODA}" in statement and "obligation: purpose-limit" in statement
    assert _terms(shared, mine, "kudo", CHIYODA) == "kudo"
    path = _open(shared, mine, "kudo")
    assert path.parent.name == "kudo" and path.read_bytes() == csv_bytes([TOKYO[1]])

    # kudo (千代田区) asks for 新宿区's data: refused by rule, recorded, nothing written.
    with pytest.raises(CheckFailed, match=r"open\.partition"):
        _open(shared, theirs, "kudo")
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(CheckFailed, match=r"terms\.partition"):
        _terms(shared, theirs, "kudo", SHINJUKU)
    # The shared gateway's own operator holds no member's partition either.
    with pytest.raises(CheckFailed, match=r"open\.partition"):
        _open(shared, theirs, "ono")
    # A handler of another body altogether (the federation's) is simply not designated here.
    with pytest.raises(CheckFailed, match=r"open\.not-designated"):
        _open(shared, theirs, "ito")
    assert _refusals(rt, theirs.id) == [("open.partition", "kudo"), ("terms.partition", "kudo"),
                                        ("open.partition", "ono"),
                                        ("open.not-designated", "ito")]
    after = holdings.get(rt, theirs.id)
    assert after.status is HoldingState.RECEIVED and after.openings == 0

    # sano opens 新宿区's own part: exactly its two residents' rows.
    _terms(shared, theirs, "sano", SHINJUKU)
    opened = _open(shared, theirs, "sano")
    extra = TOKYO[0].replace("TEST TARO", "TEST SABURO")
    assert opened.read_bytes() == csv_bytes([TOKYO[0], extra])


def test_a_certificate_of_one_member_cannot_erase_anothers_holding(
    chain: Chain, shared: Shared
) -> None:
    held = _received(chain, shared)
    mine, theirs = held[CHIYODA], held[SHINJUKU]
    rt = shared.rt
    with pytest.raises(CheckFailed, match=r"certify\.partition"):
        _certify(shared, theirs, "kudo")
    with pytest.raises(CheckFailed, match=r"certify\.partition"):
        _certify(shared, theirs, "ono")
    after = holdings.get(rt, theirs.id)
    assert after.status is HoldingState.RECEIVED and after.erased_ns is None
    with holdings.plaintext(rt, after) as fh:  # its key and copy are still there
        assert fh.read() == csv_bytes([TOKYO[0], TOKYO[0].replace("TEST TARO", "TEST SABURO")])
    done = _certify(shared, mine, "kudo")
    assert done.status is HoldingState.DELETED and done.erased_ns is not None
    assert holdings.get(rt, theirs.id).status is HoldingState.RECEIVED
    assert [e.data["handler"] for e in rt.ledger.events() if e.kind == "holding.certified"] \
        == ["kudo"]

    # The handling report shows each member's part (区画ごとの取扱状況).
    period = Period.parse(clock.today().strftime("%Y-%m"))
    text = markdown(build(rt.ledger, AGREEMENT, period, now_ns=clock.now_ns(),
                          verification=None))
    section = text.split("6-2.", 1)[1].split("\n## ", 1)[0]
    assert f"| {CHIYODA} | 1 | 1 | 0 | 0 | 1 | 1 | 0 |" in section
    assert f"| {SHINJUKU} | 1 | 2 | 1 | 0 | 0 | 0 | 2 |" in section
    assert "TEST" not in text


def test_holdings_list_filters_by_member(
    chain: Chain, shared: Shared, capsys: pytest.CaptureFixture[str]
) -> None:
    held = _received(chain, shared)
    config = str(shared.side.root / "tachiai.toml")
    capsys.readouterr()
    assert main(["--config", config, "holdings", "list", "--member", SHINJUKU, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["recipient"]) for r in rows] == [(held[SHINJUKU].id, SHINJUKU)]
    assert main(["--config", config, "holdings", "list"]) == 0
    table = capsys.readouterr().out
    for town in TOWNS:  # the member each holding belongs to is a column of its own
        assert f"{held[town].id}  {town}  received" in table
    assert main(["--config", config, "holdings", "list", "--member", "nhi-federations-01"]) != 0
    err = capsys.readouterr().err
    assert "nhi-federations-01" in err and "partitions" in err


def test_partitions_are_distinct_members_other_than_the_gateway(tmp_path: Path) -> None:
    for bad in ('["municipalities"]', f'["{CHIYODA}", "{CHIYODA}"]', '"municipalities-131016"'):
        path = tmp_path / "tachiai.toml"
        path.write_text(_config("municipalities", "", "").replace(
            "agreements = [", f"partitions = {bad}\nagreements = [", 1), encoding="utf-8")
        with pytest.raises(ConfigError, match=r"gateway\.partitions"):
            load_settings(path)


def test_a_gateway_of_partitions_can_start(chain: Chain, shared: Shared) -> None:
    """What the daemon checks before it starts finds nothing wrong with partitions."""
    rt = shared.rt
    found = deliverability.check(rt.settings, rt.agreements, rt.registry, clock.today())
    assert list(found.problems) == [], found.problems
    assert rt.settings.holder_of(CHIYODA) == CHIYODA
    assert rt.settings.holder_of("municipalities-132012") == "municipalities"  # not ours


def test_a_misspelt_partition_is_found_before_the_daemon_starts(
    chain: Chain, shared: Shared
) -> None:
    """A partition that names no member of a loaded group would match no delivery: the check
    the daemon and `agreements check` run names it, beside the correct ones."""
    rt = shared.rt
    settings = dataclasses.replace(
        rt.settings, partitions=(CHIYODA, "municipalities-13101", "nhi-federations-13"))
    found = deliverability.check(settings, rt.agreements, rt.registry, clock.today())
    flagged = [f for f in found.problems if f.key == "gateway.partitions"]
    assert [f.problem.split()[0] for f in flagged] == ["municipalities-13101"]
    assert "GROUP-CODE" in flagged[0].fix


def test_the_cli_refuses_another_members_handler_naming_the_rule(
    chain: Chain, shared: Shared, capsys: pytest.CaptureFixture[str]
) -> None:
    held = _received(chain, shared)
    config = str(shared.side.root / "tachiai.toml")
    key = str(shared.keys / "kudo")
    capsys.readouterr()
    assert main(["--config", config, "holdings", "open", held[SHINJUKU].id, "--key", key]) != 0
    err = capsys.readouterr().err
    assert "open.partition" in err and SHINJUKU in err and "recorded" in err
    assert main(["--config", config, "holdings", "certify", held[SHINJUKU].id, "--deleted",
                 "--method", "deleted the file", "--key", key]) != 0
    assert "certify.partition" in capsys.readouterr().err
    rt = shared.side.reopen()
    assert holdings.get(rt, held[SHINJUKU].id).status is HoldingState.RECEIVED
    assert not (shared.side.handlers / "kudo").exists() or not any(
        (shared.side.handlers / "kudo").iterdir())
