"""Fixtures shared by the state tests: a fresh database on each backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresServer, bin_dir


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgres",
            marks=pytest.mark.skipif(bin_dir() is None, reason="PostgreSQL is not installed"),
        ),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """("sqlite", path) or ("postgres", url) of a fresh state database."""
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "state.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    yield "postgres", server.url(server.create_database())
