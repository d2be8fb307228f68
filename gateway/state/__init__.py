"""The only code that touches the database engine: one schema, one error converter, the state
machines of transfers and holdings, and the queries of both halves; also the spool, the clock
and the one-daemon lock.
"""
