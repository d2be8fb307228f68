"""The state database's schema revision this release writes, apart from the migrations that
reach it (gateway.state.migrate), so that reading it loads no database layer."""

from __future__ import annotations

from typing import Final

#: The newest revision under migrations/versions (tests check that it is Alembic's head).
HEAD: Final = "0009"
VERSION_TABLE: Final = "alembic_version"
