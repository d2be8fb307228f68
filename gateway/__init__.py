"""The gateway: the daemon, the CLI and every side effect. Its layers are drawn in
docs/architecture.md and held by the import-linter contracts in pyproject.toml.
"""
