"""One progress line for long work at a terminal (`audit verify`, `holdings open`): written on
the stream only when it is a terminal, redrawn in place with a carriage return at most
`PER_SECOND` times a second (and at the end), and erased when the work ends, so the output that
follows, and any output that is piped, is exactly what it would be without it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from gateway.cli.table import size
from gateway.i18n import _

#: Redraws a second at most.
PER_SECOND = 4


@contextmanager
def progress_line(
    stream: TextIO, label: str, total: Callable[[], int], *, in_bytes: bool = False
) -> Iterator[Callable[[int], None] | None]:
    """Yield a callable that takes the amount done so far (events, or bytes when `in_bytes`)
    of `total()` (asked only at a terminal), or None when `stream` is not a terminal."""
    if not stream.isatty():
        yield None
        return
    whole = total()
    shown = False
    last = float("-inf")

    def show(done: int) -> None:
        nonlocal shown, last
        now = time.monotonic()
        if now - last < 1 / PER_SECOND and done < whole:
            return
        last = now
        shown = True
        percent = done * 100 // max(whole, 1)
        if in_bytes:
            amount = _("{done} of {total}").format(done=size(done), total=size(whole))
        else:
            amount = _("{done:,} of {total:,} events").format(done=done, total=whole)
        stream.write(f"\r\033[K{label}: {amount} ({percent}%)")
        stream.flush()

    try:
        yield show
    finally:
        if shown:
            stream.write("\r\033[K")
            stream.flush()
