"""`python -m gateway.cli`: the same as the `tachiai` console script."""

from gateway.cli import console

console()
