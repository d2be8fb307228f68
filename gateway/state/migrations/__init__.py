"""The state database's Alembic migrations (revisions under `versions/`, run by
`gateway.state.migrate`). Nothing here runs on import; no alembic.ini is needed.
"""
