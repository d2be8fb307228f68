"""tachiai.toml as frozen, strictly checked settings; routes, SFTP sources, whether each flow can
be delivered, and loading the agreement and registry files.
"""
