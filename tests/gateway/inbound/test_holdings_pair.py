"""Two gateways in one process — isa (provider) and nhi-central (recipient) — and the manifest
that travels between them. The `pair` fixture here is what the other holdings tests build on:
real pipeline steps, real SSH signatures, real AES ZIPs, real folders; no daemon.

The agreement is the bundled isa-nhi-status-loss with what a reply thread and a deadline need
added (a test copy: the seed names no inquiry flow and no retention days for it): a 30-day
retention, corrections, an inquiry flow back to isa and its answer, and an `age` flow.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway import bootstrap
from gateway.config.routes import MailRoute
from gateway.config.settings import load_settings
from gateway.exchange.manifest import Manifest
from gateway.identity import age, sshsig
from gateway.identity.sshkeys import generate_ed25519, load_private_key
from gateway.inbound import arrivals, holdings
from gateway.inbound.holdings import Holding
from gateway.outbound import approvals, pipeline
from gateway.outbound.intake import Outbox
from gateway.outbound.lifecycle import State
from gateway.runtime import Runtime
from gateway.state.store import Transfer
from gateway.transports import Parcel
from gateway.transports.local import LocalTransport
from gateway.transports.mail import MailTransport

AGREEMENT = "isa-nhi-status-loss"
ROOT = Path(__file__).resolve().parents[3]
HEADER = "氏名(英字),住居地(地方公共団体コード),住居地,性別,生年月日,在留資格変更年月日"
ROWS = [
    "TEST TARO,131041,東京都新宿区サンプル町1-1,1,1990/04/01,令和8年10月1日",
    "SAMPLE HANAKO,141003,神奈川県横浜市テスト区2-2,女,1985-12-24,R8.10.15",
]
OTHER_ROWS = ["DUMMY JIRO,131041,東京都新宿区サンプル町3-3,1,1975/11/03,2026/10/20"]
# The test copy's additions to the bundled agreement (the seed sets none of these days).
EXTRA_TERMS = """
[[flows]]
id = "inquiry"
title = "疑義照会 (test flow)"
kind = "inquiry"
from = "nhi-central"
to = "isa"
reply_to = "monthly"
dataset = "status-change"
witnesses = 1
encryption = "zip-aes256"

[[flows]]
id = "answer"
title = "回答 (test flow)"
kind = "answer"
from = "isa"
to = "nhi-central"
reply_to = "inquiry"
dataset = "status-change"
witnesses = 1
encryption = "zip-aes256"

[[flows]]
id = "monthly-age"
title = "age で封をする月次提供 (test flow)"
from = "isa"
to = "nhi-central"
dataset = "status-change"
witnesses = 1
encryption = "age"
onward = ["nhi-federations"]

[[flows]]
id = "onward"
title = "国保連合会への提供 (test flow: the permitted onward chain)"
from = "nhi-central"
to = "nhi-federations"
dataset = "status-change"
witnesses = 1
encryption = "zip-aes256"

[[flows]]
id = "elsewhere"
title = "再提供の禁止に触れる提供 (test flow: a party outside the onward chain)"
from = "nhi-central"
to = "mhlw-insurance"
dataset = "status-change"
witnesses = 1
encryption = "zip-aes256"

[retention]
then = "delete-or-return"
after = "use"
certificate = true
max_days = 30

[[obligations]]
id = "deletion-or-return"
party = "nhi-central"

[[obligations]]
id = "corrections"
party = "nhi-central"
"""
# Beyond the demo's four: people of the recipient, and people who must be refused.
EXTRA_PEOPLE = (
    ("kobayashi", "nhi-central", ["send"], True),  # drops replies from nhi-central
    ("yamada", "nhi-central", ["witness"], False),  # witnesses them
    ("nakamura", "nhi-central", ["witness"], False),  # of the recipient, but no receive role
    ("watanabe", "nhi-federations", ["receive"], False),  # a receiver of another party
    ("kato", "isa", ["receive"], False),  # receives replies at isa
)


def csv_bytes(rows: list[str]) -> bytes:
    return ("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp932")


@dataclass
class Side:
    """One gateway: its folder, config and runtime."""

    root: Path
    rt: Runtime

    @property
    def inbox(self) -> Path:
        return self.root / "inbound" / "inbox"

    @property
    def passwords(self) -> Path:
        return self.root / "inbound" / "passwords"

    @property
    def handlers(self) -> Path:
        return self.root / "inbound" / "handlers"

    def reopen(self) -> Runtime:
        """A fresh runtime from the config (as a new process would make)."""
        self.rt = Runtime.open(load_settings(self.root / "tachiai.toml"))
        return self.rt


@dataclass
class Pair:
    provider: Side
    recipient: Side
    keys: Path
    age_identity: Path
    secrets: list[str] = field(default_factory=list)

    def key(self, name: str) -> Path:
        return self.keys / name

    def drop(
        self,
        side: Side,
        data: bytes,
        flow: str = "monthly",
        name: str = "status-change-2026-10.csv",
    ) -> Transfer:
        """Drop a file into the side's outbox and take it in: awaiting approval."""
        folder = side.rt.settings.outbox(AGREEMENT, flow)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        t = pipeline.take_in(side.rt, Outbox(AGREEMENT, flow, folder), path)
        assert t is not None and t.state == "awaiting_approval", t and t.reasons
        return t

    def approve(self, side: Side, t: Transfer, witness: str) -> Transfer:
        message = approvals.statement(side.rt, side.rt.store.get(t.id))
        signature = sshsig.sign(
            message, load_private_key(self.key(witness)), approvals.APPROVAL_NAMESPACE
        )
        approvals.approve(side.rt, t.id, signature)
        return pipeline.advance(side.rt, side.rt.store.get(t.id))

    def send(
        self, data: bytes, flow: str = "monthly", name: str = "status-change-2026-10.csv"
    ) -> Transfer:
        """isa → nhi-central: dropped, witnessed by suzuki, sealed and delivered."""
        done = self.approve(self.provider, self.drop(self.provider, data, flow, name), "suzuki")
        assert done.status is State.DELIVERED, done.reasons
        return done

    def receive(self, side: Side | None = None) -> list[Holding]:
        side = side or self.recipient
        arrivals.poll_inbound(side.rt)
        return holdings.find(side.rt)


def _test_agreement(folder: Path) -> Path:
    source = ROOT / "policies" / "agreements"
    folder.mkdir(parents=True, exist_ok=True)
    text = (source / f"{AGREEMENT}.toml").read_text(encoding="utf-8")
    text = text.replace("corrections = false", "corrections = true")
    path = folder / f"{AGREEMENT}.toml"
    path.write_text(text + EXTRA_TERMS, encoding="utf-8")
    shutil.copy(source / f"{AGREEMENT}.delegations.toml", folder)
    return path


def _registry(demo_registry: Path, keys: Path, age_recipient: str) -> str:
    me = pwd.getpwuid(os.getuid()).pw_name
    text = demo_registry.read_text(encoding="utf-8")
    # takahashi (receive, nhi-central) also gets an age key, for the age profile.
    text = text.replace(
        'name = "takahashi"', f'name = "takahashi"\nage_recipient = "{age_recipient}"'
    )
    for name, party, roles, is_me in EXTRA_PEOPLE:
        if f'name = "{name}"' in text:
            continue  # the demo names them already (kobayashi forwards, yamada witnesses)
        public = generate_ed25519(keys / name, f"{name}@tachiai-test")
        text += (
            f'\n[[handlers]]\nname = "{name}"\nparty = "{party}"\nroles = '
            f'{json.dumps(roles)}\npublic_key = "{public}"\nagreements = ["{AGREEMENT}"]\n'
            "designated_from = 2023-03-29\n" + (f'os_user = "{me}"\n' if is_me else "")
        )
    return text


def _config(party: str, inbound_lines: str, recipients: str) -> str:
    return f"""[gateway]
party = "{party}"
state_dir = "state"
outbox_dir = "outbox"
registry = "registry.toml"
agreements = ["../agreements/{AGREEMENT}.toml"]

[intake]
settle_seconds = 0.4
scan_interval_seconds = 0.5
poll_seconds = 0.05

[inbound]
inbox = "inbound/inbox"
password_channel = "inbound/passwords"
handlers_folder = "inbound/handlers"
{inbound_lines}
{recipients}"""


def make_pair(base: Path) -> Pair:
    """Both gateways' folders and configs, each with its own state and ledger."""
    p_root, r_root = base / "isa", base / "nhi-central"
    bootstrap.init(p_root, demo=True)
    keys = p_root / "demo" / "keys"
    identity = X25519PrivateKey.generate()
    age_identity = base / "age-identity.txt"
    age_identity.write_text(age.identity_string(identity) + "\n", encoding="ascii")
    age_identity.chmod(0o600)
    registry = _registry(p_root / "demo" / "registry.toml", keys, age.recipient_string(identity))
    _test_agreement(base / "agreements")
    for root in (p_root, r_root):
        root.mkdir(parents=True, exist_ok=True)
        (root / "registry.toml").write_text(registry, encoding="utf-8")
        for sub in ("inbound/inbox", "inbound/passwords"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    (p_root / "tachiai.toml").write_text(
        _config(
            "isa",
            "",
            """
[recipients.nhi-central]
transport = "local"
inbox = "../nhi-central/inbound/inbox"
password_channel = "../nhi-central/inbound/passwords"
""",
        ),
        encoding="utf-8",
    )
    (r_root / "tachiai.toml").write_text(
        _config(
            "nhi-central",
            f'age_identity = "{age_identity}"\nremind_days = [14, 3, 0]',
            """
[recipients.isa]
transport = "local"
inbox = "../isa/inbound/inbox"
password_channel = "../isa/inbound/passwords"

[recipients.nhi-federations]
transport = "local"
inbox = "onward/federations/inbox"
password_channel = "onward/federations/passwords"

[recipients.mhlw-insurance]
transport = "local"
inbox = "onward/mhlw/inbox"
password_channel = "onward/mhlw/passwords"
""",
        ),
        encoding="utf-8",
    )
    provider = Side(p_root, Runtime.open(load_settings(p_root / "tachiai.toml")))
    recipient = Side(r_root, Runtime.open(load_settings(r_root / "tachiai.toml")))
    return Pair(provider, recipient, keys, age_identity)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    yield make_pair(tmp_path)


# -- the manifest on the way --------------------------------------------------------------------


def test_the_provider_delivers_a_manifest_beside_the_file(pair: Pair) -> None:
    data = csv_bytes(ROWS)
    t = pair.send(data)
    sealed = Path(t.delivered_path or "")
    manifest_path = sealed.with_name(sealed.name + ".manifest.json")
    assert sorted(p.name for p in pair.recipient.inbox.iterdir()) == [
        sealed.name,
        manifest_path.name,
    ]
    raw = manifest_path.read_bytes()
    m = Manifest.from_bytes(raw)
    assert (m.transfer, m.agreement, m.flow, m.provider, m.recipient) == (
        t.id,
        AGREEMENT,
        "monthly",
        "isa",
        "nhi-central",
    )
    assert (m.size, m.sha256) == (len(data), t.sha256)
    assert (m.sealed_size, m.sealed_sha256) == (sealed.stat().st_size, t.sealed_sha256)
    assert m.sender == "sato" and [a.witness for a in m.approvals] == ["suzuki"]
    assert m.statement.encode() == approvals.statement(pair.provider.rt, t)
    for value in ("TEST TARO", "サンプル町"):
        assert value.encode() not in raw, "no personal data in a manifest"
    assert b"password" not in raw.lower()
    log = [e for e in pair.provider.rt.ledger.events() if e.kind == "transfer.delivered"]
    assert log[0].data["manifest_sha256"] == __import__("hashlib").sha256(raw).hexdigest()


def test_a_recipient_may_be_configured_without_manifests(pair: Pair) -> None:
    config = pair.provider.root / "tachiai.toml"
    config.write_text(
        config.read_text().replace(
            'transport = "local"\ninbox = "../nhi-central',
            'transport = "local"\nmanifest = false\ninbox = "../nhi-central',
        ),
        encoding="utf-8",
    )
    pair.provider.reopen()
    t = pair.send(csv_bytes(ROWS))
    assert [p.name for p in pair.recipient.inbox.iterdir()] == [Path(t.delivered_path or "").name]


def test_local_delivery_repeated_leaves_one_file_and_one_manifest(tmp_path: Path) -> None:
    source = tmp_path / "sealed.zip"
    source.write_bytes(b"sealed bytes")
    inbox = tmp_path / "inbox"
    parcel = Parcel(
        "t-000000000001", source, "a.csv.t-000000000001.zip", 12, "00", "a.csv", manifest=b'{"m":1}'
    )
    transport = LocalTransport("nhi-central", inbox)
    transport.send(parcel)
    transport.send(parcel, renamed_before=True)
    assert sorted(os.listdir(inbox)) == [parcel.name, parcel.manifest_name]
    assert (inbox / parcel.manifest_name).read_bytes() == b'{"m":1}'
    # The recipient took both: a retry after a crash must not leave an orphan manifest.
    for name in os.listdir(inbox):
        (inbox / name).unlink()
    receipt = transport.send(parcel, renamed_before=True)
    assert receipt.details.get("taken_by_partner") is True
    assert os.listdir(inbox) == []


def test_a_planted_link_at_the_manifest_temporary_name_is_never_followed(tmp_path: Path) -> None:
    source = tmp_path / "sealed.zip"
    source.write_bytes(b"sealed bytes")
    inbox, victim = tmp_path / "inbox", tmp_path / "victim"
    inbox.mkdir()
    victim.write_bytes(b"keep me")
    parcel = Parcel("t-000000000001", source, "a.zip", 12, "00", "a.csv", manifest=b"{}")
    os.symlink(victim, inbox / f".{parcel.manifest_name}.part")
    LocalTransport("nhi-central", inbox).send(parcel)
    assert victim.read_bytes() == b"keep me"
    assert (inbox / parcel.manifest_name).read_bytes() == b"{}"


def test_mail_carries_the_manifest_in_the_same_message(tmp_path: Path) -> None:
    source = tmp_path / "sealed.zip"
    source.write_bytes(b"PK sealed")
    route = MailRoute(
        relay="127.0.0.1", port=25, sender="gw@example.lg.jp", to=("inbox@example.lg.jp",)
    )
    parcel = Parcel(
        "t-000000000001",
        source,
        "a.csv.t-000000000001.zip",
        9,
        "ab" * 32,
        "a.csv",
        manifest=b'{"format":"x"}',
    )
    message = MailTransport("nhi-central", route)._message(parcel)
    names = [part.get_filename() for part in message.iter_attachments()]
    assert names == [parcel.name, parcel.manifest_name]
