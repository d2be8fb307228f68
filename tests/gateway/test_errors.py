"""The exception tree itself: each class's exit code, which kinds are transient, and the hint."""

from __future__ import annotations

import pytest

from gateway.errors import (
    AlreadyRunning,
    CheckFailed,
    ConfigError,
    InputError,
    InternalError,
    KeyFileError,
    NotFound,
    PartnerRefused,
    PartnerUnavailable,
    SignatureError,
    StateError,
    StorageError,
    TachiaiError,
    UsageError,
)
from gateway.exchange.manifest import ManifestError
from gateway.outbound.sealing import SealRefused
from gateway.transports import DeliveryRefused, HostKeyRefused


def _host_key_refused() -> HostKeyRefused:
    return HostKeyRefused("sftp.example", 22, ("SHA256:pinned",), "SHA256:offered")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (TachiaiError("x"), 70),
        (CheckFailed("x"), 1),
        (SignatureError("x"), 1),
        (PartnerRefused("x"), 1),
        (DeliveryRefused("x"), 1),
        (_host_key_refused(), 1),
        (UsageError("x"), 2),
        (InputError("x"), 65),
        (NotFound("x"), 65),
        (KeyFileError("x"), 65),
        (ManifestError("manifest.malformed", "x"), 65),
        (SealRefused("x"), 65),
        (PartnerUnavailable("x"), 69),
        (InternalError("x"), 70),
        (StorageError("x"), 74),
        (StateError("x"), 75),
        (AlreadyRunning("x"), 75),
        (ConfigError("x"), 78),
    ],
    ids=lambda v: v.__class__.__name__ if isinstance(v, Exception) else str(v),
)
def test_each_class_has_its_exit_code(error: TachiaiError, code: int) -> None:
    assert isinstance(error, TachiaiError)
    assert error.exit_code == code


@pytest.mark.parametrize(
    "refusal",
    [PartnerRefused("x"), DeliveryRefused("x"), _host_key_refused()],
    ids=["partner", "delivery", "host-key"],
)
def test_a_refusal_is_not_transient_and_no_outage_is_a_refusal(refusal: PartnerRefused) -> None:
    # A caller retries PartnerUnavailable; a refusal must never fall into that clause.
    assert isinstance(refusal, PartnerRefused)
    assert not isinstance(refusal, PartnerUnavailable)
    assert not isinstance(PartnerUnavailable("x"), PartnerRefused)
    with pytest.raises(PartnerRefused):
        try:
            raise refusal
        except PartnerUnavailable:  # pragma: no cover - the point: never taken
            pytest.fail("a refusal was handled as a transient outage")


def test_a_refusal_is_no_check_of_ours_and_a_manifest_error_no_value_error() -> None:
    # `except CheckFailed` around our own checks must not swallow a partner's refusal, and a
    # manifest error is ours now (no bare ValueError handler catches it by accident).
    assert not isinstance(PartnerRefused("x"), CheckFailed)
    assert not isinstance(ManifestError("manifest.malformed", "x"), ValueError)
    assert ManifestError("manifest.format", "x").rule == "manifest.format"


def test_diagnostics_carry_the_hint_on_its_own_line() -> None:
    error = StateError("transfer t-1 is sealed", hint="wait until it is delivered")
    assert error.diagnostics() == "transfer t-1 is sealed\n  next: wait until it is delivered"
    assert CheckFailed("no").diagnostics() == "no"  # no hint, no empty "next:" line


@pytest.mark.parametrize(
    "error",
    [
        PartnerRefused("x"),
        DeliveryRefused("x"),
        PartnerUnavailable("x"),
        StorageError("x"),
        ConfigError("x"),
        InternalError("x"),
        AlreadyRunning("x"),
        ManifestError("manifest.malformed", "x"),
    ],
    ids=lambda e: e.__class__.__name__,
)
def test_default_hints_say_what_to_do_next(error: TachiaiError) -> None:
    assert error.hint
    assert error.diagnostics() == f"x\n  next: {error.hint}"


def test_a_changed_host_key_names_both_keys_and_the_way_out() -> None:
    text = _host_key_refused().diagnostics()
    assert "SHA256:pinned" in text and "SHA256:offered" in text
    assert "\n  next: " in text and "known_hosts" in text


def test_an_explicit_hint_replaces_the_default() -> None:
    assert PartnerUnavailable("x", hint="call them").diagnostics() == "x\n  next: call them"
    assert PartnerUnavailable("x", hint="").diagnostics() == "x"
