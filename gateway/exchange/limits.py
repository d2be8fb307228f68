"""Limits of what two gateways exchange, which the sending and receiving halves must share.

A file the provider seals must be one the recipient can open, so each limit is defined once
here and read by both `gateway.outbound.sealing` and `gateway.inbound.arrivals`. Values only:
this module never reads, writes or decides anything.
"""

from __future__ import annotations

#: The largest workbook of the `xlsx-password+zip-aes256` profile (seed 003), in bytes.
#: Workbooks are encrypted and decrypted in memory (msoffcrypto-tool has no streaming API), so a
#: larger one is refused by the sender before sealing and by the recipient before opening,
#: rather than allowed to eat either server's memory.
MAX_WORKBOOK = 256 * 1024 * 1024
