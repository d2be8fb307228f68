"""Synthetic CSV files for the demo agreement's dataset (status-change), valid row by row.

Every value is made up: test names, real municipality codes with valid check digits, fixed
dates. Each file is exactly the requested size (the last row's address is padded) and starts
at a different row of the pool, so no two files are byte-identical.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from gateway.bootstrap import DEMO_HEADER

NEWLINE = "\r\n"
# Municipality codes whose check digits LIBRARIES.md records as verified, all in the demo
# delegation registry (policies/agreements/isa-nhi-status-loss.delegations.toml).
_PLACES = (
    ("131041", "東京都新宿区サンプル町"),
    ("141003", "神奈川県横浜市テスト区"),
    ("131016", "東京都千代田区サンプル町"),
    ("011002", "北海道札幌市テスト区"),
)
# Only municipalities of the demo's (sample) delegation registry: a row for any other would be
# withheld under the 委任状 scope, and the benchmark measures full files going through.
_NAMES = ("TEST TARO", "SAMPLE HANAKO", "EXAMPLE JIRO", "DUMMY YOKO", "TEST-CASE O'NEIL")
_SEXES = ("1", "2", "9", "0")
_BIRTHS = ("1990/04/01", "1985/12/24", "2001/07/15", "1978/02/28")
_CHANGES = ("2026/10/01", "2026/10/15", "2026/09/30")
POOL_SIZE = 997  # prime, so files starting at different offsets differ


def row_pool() -> list[str]:
    """Distinct valid rows (without line ends)."""
    combos = itertools.product(_NAMES, _PLACES, _SEXES, _BIRTHS, _CHANGES)
    rows = []
    for i, (name, (code, place), sex, birth, change) in enumerate(combos):
        rows.append(f"{name},{code},{place}{i % 9 + 1}-{i % 7 + 1},{sex},{birth},{change}")
        if len(rows) == POOL_SIZE:
            break
    return rows


def distinct_rows(count: int) -> list[str]:
    """`count` valid rows whose names, addresses and birth dates differ from row to row, as in a
    real register (the pool's rows repeat every POOL_SIZE rows, its values far more often)."""
    rows = []
    first_birth = dt.date(1950, 1, 1)
    for i in range(count):
        code, place = _PLACES[i % len(_PLACES)]
        name = f"{_letters(i)} {_letters(i * 7 + 3)}"
        birth = (first_birth + dt.timedelta(days=i * 7919 % 20000)).strftime("%Y/%m/%d")
        change = _CHANGES[i % len(_CHANGES)]
        address = f"{place}{i % 9 + 1}丁目{i + 1}番"
        rows.append(f"{name},{code},{address},{_SEXES[i % 4]},{birth},{change}")
    return rows


def csv_bytes(size: int, encoding: str, start: int, pool: list[str]) -> bytes:
    """A valid CSV of exactly `size` bytes in `encoding`, starting at pool row `start`.

    Raises:
        ValueError: when `size` is too small for the header and one row.
    """
    header = (",".join(DEMO_HEADER) + NEWLINE).encode(encoding)
    encoded = [(r + NEWLINE).encode(encoding) for r in pool]
    longest = max(len(r) for r in encoded)
    parts = [header]
    used = len(header)
    i = start
    while True:
        row = encoded[i % len(encoded)]
        if used + len(row) + longest > size:
            break
        parts.append(row)
        used += len(row)
        i += 1
    parts.append(_padded_row(pool[i % len(pool)], size - used, encoding))
    data = b"".join(parts)
    if len(data) != size:
        raise ValueError(f"cannot make a CSV of exactly {size} bytes")
    return data


def write_files(
    folder: Path, count: int, size: int, encoding: str, pool: list[str] | None = None
) -> list[Path]:
    """Write `count` CSV files named status-change-NNNN.csv into `folder` (made if absent), of
    the rows of `pool` (default `row_pool()`)."""
    pool = pool if pool is not None else row_pool()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"status-change-{n:04d}.csv"
        path.write_bytes(csv_bytes(size, encoding, n * 31, pool))
        paths.append(path)
    return paths


def _letters(n: int) -> str:
    """A made-up surname of capital letters, different for every `n` (bijective base 26)."""
    out = ""
    n += 703  # from AAA on: at least three letters
    while n:
        n, digit = divmod(n - 1, 26)
        out = chr(ord("A") + digit) + out
    return out


def _padded_row(row: str, room: int, encoding: str) -> bytes:
    """`row` with its address lengthened by ASCII letters so it fills `room` bytes."""
    name, code, place, rest = row.split(",", 3)
    base = f"{name},{code},{place},{rest}{NEWLINE}".encode(encoding)
    extra = room - len(base)
    if extra < 0:
        raise ValueError("no room for the last row")
    # 住居地 is free text (max 200 characters). Letters, not digits: a padded run of exactly 12
    # digits could pass the 個人番号 check digit and be refused as My Number.
    return f"{name},{code},{place}{'X' * extra},{rest}{NEWLINE}".encode(encoding)
