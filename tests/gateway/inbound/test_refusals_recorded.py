"""Every refused command about a holding leaves an event (issue 11), through the CLI."""

from __future__ import annotations

import pytest

from gateway.cli import main
from gateway.inbound.holdings import HoldingState
from tests.gateway.inbound.test_holdings import _certify, _held, _terms
from tests.gateway.inbound.test_holdings_pair import Pair, pair

__all__ = ["pair"]


def _refusals(pair: Pair) -> list[tuple[str, str]]:
    return [(str(e.data["action"]), str(e.data["reason"]["rule"]))
            for e in pair.recipient.rt.ledger.events() if e.kind == "holding.request_refused"]


def test_refused_holding_commands_are_recorded(pair: Pair,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    h = _held(pair)
    config = str(pair.recipient.root / "tachiai.toml")
    assert main(["holdings", "retry", h.id, "--config", config]) == 75  # not refused
    assert ("retry", "retry.state") in _refusals(pair)
    _terms(pair, h)
    assert _certify(pair, h).status is HoldingState.DELETED
    key = str(pair.key("takahashi"))
    assert main(["holdings", "open", h.id, "--key", key, "--config", config]) == 75
    assert ("open", "open.state") in _refusals(pair)
    method = "deleted 123456789018 from the server"  # a synthetic My Number in the method
    assert main(["holdings", "certify", h.id, "--deleted", "--method", method, "--key", key,
                 "--config", config]) != 0
    assert ("certify", "certify.method") in _refusals(pair)
    assert main(["holdings", "certify", h.id, "--deleted", "--method", "again", "--key", key,
                 "--config", config]) == 75
    assert ("certify", "certify.state") in _refusals(pair)
    capsys.readouterr()
    for event in pair.recipient.rt.ledger.events():
        assert "123456789018" not in str(event.data)
