"""tachiai's benchmark runner: named figures, the machine they were measured on, and ceilings.

Speed is measured here, never asserted in tests. Each benchmark module returns a `Result`;
`bench.run` prints or writes them. Nothing in this package is imported by the gateway.
"""
