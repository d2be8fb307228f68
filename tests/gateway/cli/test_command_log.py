"""What a command logs: not the domain's account of what it did (the command prints that
itself, in the reader's language), but what it did unasked, as a warning."""

from __future__ import annotations

from gateway.config.settings import load_settings
from gateway.evidence.checkpointing import CheckpointSettings
from tests.conftest import Demo


def test_what_a_command_did_unasked_is_said_as_a_warning(demo: Demo) -> None:
    # The ledger's signing key missing (a new gateway, a key moved away): the command that
    # needs it makes one, and says so, though it logs no INFO lines.
    settings = CheckpointSettings.from_settings(load_settings(demo.config))
    settings.key_path.unlink(missing_ok=True)
    shown = demo.cli("audit", "public-key", check=True)
    assert settings.key_path.exists()
    assert f"made the ledger signing key {settings.key_path}" in shown.stderr, shown.stderr
    again = demo.cli("audit", "public-key", check=True)
    assert again.stderr == "" and again.stdout == shown.stdout
