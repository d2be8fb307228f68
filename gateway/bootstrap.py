"""`tachiai init DIR [--demo | --demo-recipient DEMO]`: a configuration, the state folders and,
for the demo, people.

The demo is the immigration agency (isa) → NHI central association (nhi-central) monthly flow
of agreement isa-nhi-status-loss, with six synthetic designated handlers, each with a fresh SSH
key: sato (sender, the OS user who ran init), suzuki and tanaka (witnesses), takahashi (receiver);
and at nhi-central, kobayashi (who forwards to the federations, the OS user too) and yamada
(who witnesses the forwarding).
`--demo-recipient DEMO` makes the receiving gateway of nhi-central beside such a demo: it takes
in what the demo delivers, from the demo's recipient folders, into holdings (受領).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shlex
import sys
from pathlib import Path

from gateway.errors import UsageError
from gateway.i18n import N_
from gateway.identity.sshkeys import generate_ed25519

DEMO_AGREEMENT = "isa-nhi-status-loss"
DEMO_FLOW = "monthly"
DEMO_PEOPLE = (
    ("sato", "isa", ["send"]),
    ("suzuki", "isa", ["witness"]),
    ("tanaka", "isa", ["witness"]),
    ("takahashi", "nhi-central", ["receive"]),
    ("kobayashi", "nhi-central", ["send"]),  # forwards to the federations (記1(3))
    ("yamada", "nhi-central", ["witness"]),
)
#: The federations the demo's receiving gateway forwards to: each a member of the party group
#: nhi-federations (isa-nhi-status-loss.groups.toml) with a folder of its own.
DEMO_FEDERATIONS = ("nhi-federations-13", "nhi-federations-14")
#: The people whose files the OS user who ran init drops or forwards.
_OS_USER_PEOPLE = ("sato", "kobayashi")
# Obviously synthetic rows: made-up names, real municipality codes, valid check digits.
DEMO_ROWS = [
    ("TEST TARO", "131041", "東京都新宿区サンプル町1-1", "1", "1990/04/01", "令和8年10月1日"),
    ("SAMPLE HANAKO", "141003", "神奈川県横浜市テスト区2-2", "女", "1985-12-24", "R8.10.15"),
]
DEMO_HEADER = ("氏名(英字)", "住居地(地方公共団体コード)", "住居地", "性別", "生年月日",
               "在留資格変更年月日")


def executable() -> str:
    """The command that runs this tachiai, as an absolute path: what the printed next steps
    use, because a virtual environment's `tachiai` is seldom on PATH."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "tachiai" and argv0.exists():
        return shlex.quote(str(argv0.absolute()))
    beside = Path(sys.executable).parent / "tachiai"
    if beside.exists():
        return shlex.quote(str(beside))
    return f"{shlex.quote(sys.executable)} -m gateway.cli"


def init(directory: Path, demo: bool) -> list[str]:
    """Write DIR/tachiai.toml and the folders; return the lines telling what to do next.

    Raises:
        UsageError: when DIR already holds a configuration.
    """
    directory = directory.absolute()
    config = directory / "tachiai.toml"
    if config.exists():
        raise UsageError(N_("{config} already exists").format(config=config),
                         hint=N_("use another directory, or remove it to start over"))
    for sub in ("state", "outbox"):
        (directory / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    if not demo:
        (directory / "registry.toml").write_text(_EMPTY_REGISTRY, encoding="utf-8")
        config.write_text(_config_text(party="my-party", agreements=[], registry="registry.toml",
                                       recipients=""), encoding="utf-8")
        return [N_("wrote {config}").format(config=config),
                N_("next: add agreements, handlers (registry.toml) and recipients, then run "
                   "`tachiai agreements check` and `tachiai run`")]
    keys = directory / "demo" / "keys"
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    me = pwd.getpwuid(os.getuid()).pw_name
    entries = []
    for name, party, roles in DEMO_PEOPLE:
        public = generate_ed25519(keys / name, f"{name}@tachiai-demo")
        os_user = me if name in _OS_USER_PEOPLE else None
        entries.append(_handler_text(name, party, roles, public, os_user))
    (directory / "demo" / "registry.toml").write_text(
        "# Designated handlers (取扱者の指定) of the demo. Synthetic people, fresh keys.\n\n"
        + "\n".join(entries), encoding="utf-8")
    recipient_dir = directory / "demo" / "recipients" / "nhi-central"
    (recipient_dir / "inbox").mkdir(parents=True, exist_ok=True)
    (recipient_dir / "passwords").mkdir(parents=True, exist_ok=True, mode=0o700)
    samples = directory / "demo" / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    _write_samples(samples)
    config.write_text(_config_text(
        party="isa", agreements=[DEMO_AGREEMENT], registry="demo/registry.toml",
        recipients=_DEMO_RECIPIENT), encoding="utf-8")
    outbox = directory / "outbox" / DEMO_AGREEMENT / DEMO_FLOW
    outbox.mkdir(parents=True, exist_ok=True)
    t = executable()
    return [
        N_("wrote {config} with the demo agreement {agreement} and six demo handlers").format(
            config=config, agreement=DEMO_AGREEMENT),
        N_("sato (sender) is your OS user {user}; witnesses' keys: {keys}/suzuki, "
           "{keys}/tanaka").format(user=repr(me), keys=keys),
        N_("next:"),
        N_("  1. start the daemon:      {t} run --config {config}").format(t=t, config=config),
        N_("  2. drop a file (as sato):  cp {samples}/status-change-2026-10.csv {outbox}/").format(
            samples=samples, outbox=outbox),
        N_("  3. see it wait:           {t} transfers list --config {config}").format(
            t=t, config=config),
        N_("  4. approve as a witness:  {t} approve ID --key {keys}/suzuki --config {config}")
        .format(t=t, keys=keys, config=config),
        N_("  5. find the delivery:     ls {recipient}/inbox {recipient}/passwords").format(
            recipient=recipient_dir),
        N_("  6. check the ledger:      {t} audit verify --config {config}").format(
            t=t, config=config),
    ]


def init_demo_recipient(directory: Path, provider: Path) -> list[str]:
    """Write DIR/tachiai.toml for nhi-central, receiving from the demo gateway at `provider`.

    The registry is the demo's own copy: it names takahashi (receiving handler) and the
    provider's witnesses, whose keys verify the approvals named in each manifest (送付票).

    Raises:
        UsageError: when DIR already holds a configuration, or `provider` is not a demo.
    """
    directory, provider = directory.absolute(), provider.absolute()
    config = directory / "tachiai.toml"
    if config.exists():
        raise UsageError(N_("{config} already exists").format(config=config),
                         hint=N_("use another directory, or remove it to start over"))
    registry = provider / "demo" / "registry.toml"
    folders = provider / "demo" / "recipients" / "nhi-central"
    if not registry.is_file() or not (folders / "inbox").is_dir():
        raise UsageError(N_("{provider} is not a demo gateway made by `tachiai init DIR "
                            "--demo`").format(provider=provider),
                         hint=N_("run `tachiai init {provider} --demo` first").format(
                                  provider=provider))
    (directory / "state").mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "handlers").mkdir(exist_ok=True, mode=0o700)
    (directory / "registry.toml").write_bytes(registry.read_bytes())
    (directory / "outbox").mkdir(exist_ok=True, mode=0o700)
    inbox, channel = json.dumps(str(folders / "inbox")), json.dumps(str(folders / "passwords"))
    routes = []
    for member in DEMO_FEDERATIONS:
        for sub in ("inbox", "passwords"):
            (directory / "federations" / member / sub).mkdir(parents=True, exist_ok=True,
                                                              mode=0o700)
        routes.append(f"""
[recipients.{member}]               # a federation (国保連合会): its own folders, its rows only
transport = "local"
inbox = "federations/{member}/inbox"
password_channel = "federations/{member}/passwords"
""")
    config.write_text(f"""# The demo's receiving party (受領側). Paths are relative to this file.
[gateway]
party = "nhi-central"             # the receiving party (提供先) this gateway acts for
state_dir = "state"
outbox_dir = "outbox"
registry = "registry.toml"        # takahashi (receive) and the provider's witnesses
agreements = ["{DEMO_AGREEMENT}"]

[inbound]
inbox = {inbox}
password_channel = {channel}   # a separate route, never the inbox
handlers_folder = "handlers"      # opened data goes only to handlers/NAME/ (0700)
{"".join(routes)}""", encoding="utf-8")
    key = provider / "demo" / "keys" / "takahashi"
    c = f"--config {config}"
    t = executable()
    return [
        N_("wrote {config}: nhi-central receives what the demo at {provider} delivers").format(
            config=config, provider=provider),
        N_("next (the demo's own daemon runs too, and sends a file as its README says):"),
        N_("  1. start this daemon:     {t} run {c}").format(t=t, c=c),
        N_("  2. see the holding:       {t} holdings list {c}").format(t=t, c=c),
        N_("  3. accept the terms:      {t} holdings terms ID --key {key} {c}").format(
            t=t, key=key, c=c),
        N_("  4. open the data:         {t} holdings open ID --key {key} {c}").format(
            t=t, key=key, c=c),
        N_("  5. certify its deletion:  {t} holdings certify ID --deleted --method \"deleted "
           "after processing\" --key {key} {c}").format(t=t, key=key, c=c),
    ]


def _write_samples(folder: Path) -> None:
    good = [",".join(DEMO_HEADER), *(",".join(r) for r in DEMO_ROWS)]
    (folder / "status-change-2026-10.csv").write_bytes(("\r\n".join(good) + "\r\n")
                                                        .encode("cp932"))
    extra = [",".join((*DEMO_HEADER, "備考")), *(",".join((*r, "-")) for r in DEMO_ROWS)]
    (folder / "bad-extra-column.csv").write_bytes(("\r\n".join(extra) + "\r\n").encode("utf-8"))


def _handler_text(name: str, party: str, roles: list[str], public: str,
                  os_user: str | None) -> str:
    lines = [
        "[[handlers]]",
        f'name = "{name}"',
        f'party = "{party}"',
        f"roles = [{', '.join(repr(r).replace(chr(39), chr(34)) for r in roles)}]",
        f'public_key = "{public}"',
        f'agreements = ["{DEMO_AGREEMENT}"]',
        f"designated_from = {dt.date(2023, 3, 29).isoformat()}",
    ]
    if os_user:
        lines.append(f'os_user = "{os_user}"')
    return "\n".join(lines) + "\n"


def _config_text(*, party: str, agreements: list[str], registry: str, recipients: str) -> str:
    listed = ", ".join(f'"{a}"' for a in agreements)
    return f"""# tachiai configuration. Paths are relative to this file.
[gateway]
party = "{party}"                 # the party (提供元) this gateway acts for
state_dir = "state"               # database, ledger and spool (one file system with the outbox)
outbox_dir = "outbox"             # drop folders: outbox/AGREEMENT/FLOW
registry = "{registry}"           # designated handlers (取扱者) and their SSH keys
agreements = [{listed}]           # bundled agreement ids or paths to agreement files

[intake]
max_file_size = 1073741824        # bytes; larger files are refused and kept in quarantine
settle_seconds = 2.0              # a file must stay unchanged this long before it is taken in
scan_interval_seconds = 5.0       # full scan of the outboxes besides inotify events

[sealing]
compression = "deflate"           # or "store"
compression_level = 6             # 1 seals ~3x faster, files ~30% larger; 9 smallest, slowest
{recipients}"""


_DEMO_RECIPIENT = """
[recipients.nhi-central]
transport = "local"
inbox = "demo/recipients/nhi-central/inbox"
password_channel = "demo/recipients/nhi-central/passwords"   # a separate route, never the inbox
"""

_EMPTY_REGISTRY = """# Designated handlers (取扱者の指定). One [[handlers]] table per person, e.g.:
# [[handlers]]
# name = "sato"
# party = "my-party"
# roles = ["send"]
# public_key = "ssh-ed25519 AAAA…"
# agreements = ["isa-nhi-status-loss"]
# designated_from = 2026-04-01
# os_user = "sato"
handlers = []
"""
