"""Canonical row keys and keyed fingerprints for the onward provision guard (再提供の禁止).

Owns how a table row becomes the text that is fingerprinted, so that a copy matches its source
whatever the column order, width forms (全角/半角), surrounding whitespace, date form, encoding or
format (CSV ↔ XLSX), and `fingerprint` (HMAC-SHA256 under the gateway's secret). Pure: it reads
only the stream it is given, never logs, and no error message ever repeats a cell.
"""

from __future__ import annotations

import codecs
import hashlib
import hmac
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import BinaryIO, Literal

from policies.dates import ERAS, parse_date
from policies.tables import (
    LIMITS,
    Limits,
    Record,
    TableError,
    Undecodable,
    candidate_encodings,
    csv_records,
)
from policies.wording import R_
from policies.xlsxfile import xlsx_records

__all__ = [
    "ENCODINGS",
    "FINGERPRINT_BYTES",
    "Fingerprinter",
    "KeyKind",
    "RowKey",
    "RowKeys",
    "Table",
    "canonical_column",
    "canonical_value",
    "fingerprint",
    "key_check",
    "read_table",
]

# Every encoding an agreement may allow: the guard must read a copy in any of them.
ENCODINGS: tuple[str, ...] = ("cp932", "utf-8", "utf-8-sig")
# 128 bits. The key is secret, so nobody can search for a collision; what remains is chance:
# n stored and m outbound fingerprints collide with probability about n·m / 2^128 (10^-26 for
# a million of each). Half of SHA-256 halves the index and keeps lookups in memory.
# Truncating an HMAC is allowed by RFC 2104 §5 and NIST SP 800-107 §5.3.4.
FINGERPRINT_BYTES = 16
MIN_KEY_BYTES = 16

KeyKind = Literal["row", "identity"]


@dataclass(frozen=True)
class RowKey:
    """One canonical text of a row, to be fingerprinted.

    `kind` "row": every non-empty cell, each paired with its column's canonical name.
    `kind` "identity": a name (氏名) with a birth date (生年月日) or a residence card number
    (在留カード番号), paired with those roles rather than the column names, so it also matches
    a sheet that kept only those columns, under other headings.
    """

    kind: KeyKind
    text: str


@dataclass(frozen=True)
class Table:
    """A file opened as a table: its header row and a one-shot iterator over the rows after it.

    The iterator may still raise `TableError` (a malformed record further down the file).
    """

    header: tuple[str, ...]
    rows: Iterator[Record]
    format: str
    encoding: str | None


def fingerprint(key: bytes, canonical_row: str) -> bytes:
    """HMAC-SHA256 of a canonical row under the gateway's key, truncated to 16 bytes.

    Keyed, never a plain hash: a name and birth date are guessable, so a plain hash of them
    could be reversed by anyone holding the database (DESIGN.md, Secrets and personal data).
    For many rows under one key, `Fingerprinter` does the same faster.

    Raises:
        ValueError: the key is shorter than 16 bytes (an empty key would make a plain hash).
    """
    _check_key(key)
    message = _CONTEXT + canonical_row.encode("utf-8", "surrogatepass")
    return hmac.digest(key, message, hashlib.sha256)[:FINGERPRINT_BYTES]


class Fingerprinter:
    """`fingerprint` under one key, for many rows: the HMAC's inner and outer hash states
    (RFC 2104 §2, key padded to SHA-256's 64-byte block) are computed once and copied per
    row, which is 2.5 times faster than `hmac.digest`. The tests hold it to `fingerprint`."""

    def __init__(self, key: bytes) -> None:
        """Raises: ValueError, as `fingerprint`."""
        _check_key(key)
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded) + _CONTEXT)
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def __call__(self, canonical_row: str) -> bytes:
        inner = self._inner.copy()
        inner.update(canonical_row.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:FINGERPRINT_BYTES]


def key_check(key: bytes) -> str:
    """A short public value that identifies a key without revealing it (a key check value).

    Stored beside the fingerprints, so a lost or swapped key file is noticed instead of
    silently matching nothing.

    Raises:
        ValueError: as `fingerprint`.
    """
    return fingerprint(key, "\x00key-check").hex()


def canonical_column(name: str) -> str:
    """A column name as compared: NFKC, case folded, without any whitespace."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


def canonical_value(cell: str, role: str | None = None) -> str:
    """A cell as compared: the same text for every way a person or program writes one value.

    NFKC (全角 ASCII, 半角カナ, the ideographic space); whitespace trimmed and inner runs made
    one space; the dash family made "-"; a value that parses as a date (ISO, slashed,
    YYYYMMDD, 和暦) made ISO; an all-digit value without leading zeros (Excel drops them from
    a code typed as a number); Latin letters case folded; in a sex (性別) column 男/女 made the
    JIS X 0303 codes 1/2. Each step merges what in these files are spellings of one value
    (a code that differs only in letter case or a leading zero is not a different person), and
    a false positive would need every other cell of the key to agree as well.
    """
    text = cell if cell.isascii() else unicodedata.normalize("NFKC", cell)
    text = " ".join(text.split()).translate(_DASHES)
    if not text:
        return ""
    if len(text) <= _MAX_DATE_CHARS and _date_like(text):
        try:
            return parse_date(text).isoformat()
        except ValueError:
            pass  # not a date after all: compared as text
    if text.isdigit() and text.isascii():
        return text.lstrip("0") or "0"
    text = text.casefold()
    if role == "sex":
        return _SEX_CODES.get(text, text)
    return text


class RowKeys:
    """The canonical keys of the rows of one table, given its header (見出し行).

    Columns are recognised by their canonical names: a name (氏名, 名前, フリガナ, name), a
    birth date (生年月日, birth), a residence card number (在留カード番号) and a sex (性別).
    Cells beyond the header have no name and are left out; missing trailing cells (XLSX drops
    them) count as empty, and empty cells are left out of every key, so both read alike.
    """

    def __init__(self, header: Sequence[str]) -> None:
        self.names = tuple(canonical_column(h) for h in header)
        self.roles = tuple(_role(n) for n in self.names)
        names = [i for i, r in enumerate(self.roles) if r == "name"]
        births = [i for i, r in enumerate(self.roles) if r == "birth"]
        cards = [i for i, r in enumerate(self.roles) if r == "card"]
        # (name column, other column, the other's role as a JSON string) per identity key.
        self.identities = tuple(
            [(n, b, '"birth"') for n in names for b in births]
            + [(n, c, '"card"') for n in names for c in cards]
        )
        self._quoted = tuple(_quote(n) for n in self.names)
        # The pairs sort by column name, so the order is fixed per table; only a table with two
        # columns of one name needs the values to break the tie, row by row.
        self._order = sorted(range(len(self.names)), key=self.names.__getitem__)
        self._ties = len(set(self.names)) < len(self.names)
        # Dates, codes and sexes repeat from row to row: each column remembers a few values.
        self._cache: list[dict[str, tuple[str, str]]] = [{} for _ in self.names]

    def keys(self, cells: Sequence[str]) -> tuple[RowKey, ...]:
        """The row's keys; empty when the row is too plain to fingerprint.

        A whole-row key needs at least two non-empty cells and eight characters in all: a blank
        row or a lone flag would match every other such row. An identity key needs a name of
        at least two characters and a non-empty birth date or card number.
        """
        width = len(self.names)
        values = [self._value(i, c) for i, c in enumerate(cells[:width])]
        values += [_EMPTY] * (width - len(values))
        order = self._order
        if self._ties:
            order = sorted(range(width), key=lambda i: (self.names[i], values[i][0]))
        # The JSON text of ["row", [[name, value], …]], built from quoted parts: the same as
        # json.dumps(…, ensure_ascii=False, separators=(",", ":")), five times faster.
        parts = [f"[{self._quoted[i]},{values[i][1]}]" for i in order if values[i][0]]
        out: list[RowKey] = []
        if len(parts) >= _MIN_CELLS and sum(len(v) for v, _ in values) >= _MIN_CHARS:
            out.append(RowKey("row", '["row",[' + ",".join(parts) + "]]"))
        seen: set[str] = set()
        for n, other, role in self.identities:
            (name, quoted_name), (value, quoted_value) = values[n], values[other]
            if len(name) >= _MIN_NAME_CHARS and value:
                text = f'["identity",[["name",{quoted_name}],[{role},{quoted_value}]]]'
                if text not in seen:
                    seen.add(text)
                    out.append(RowKey("identity", text))
        return tuple(out)

    def _value(self, index: int, cell: str) -> tuple[str, str]:
        """The canonical value and its JSON string form."""
        cache = self._cache[index]
        value = cache.get(cell)
        if value is None:
            canonical = canonical_value(cell, self.roles[index])
            value = (canonical, _quote(canonical))
            if len(cache) < _CACHE_PER_COLUMN:
                cache[cell] = value
        return value


def read_table(
    stream: BinaryIO,
    dataset_format: str,
    *,
    encodings: Sequence[str] = ENCODINGS,
    limits: Limits = LIMITS,
) -> Table:
    """Open a CSV or XLSX stream as a table with the shared readers (`policies.tables`,
    `policies.xlsxfile`); a CSV's encoding is the first of `encodings` the whole file decodes in.

    Raises:
        TableError: the file cannot be read (not text in an allowed encoding, not a workbook,
            too large, no header row). Its message never repeats the content.
        ValueError: `dataset_format` is neither "csv" nor "xlsx" (a programming error).
    """
    encoding: str | None = None
    if dataset_format == "xlsx":
        records = xlsx_records(stream, limits)
    elif dataset_format == "csv":
        stream.seek(0)
        encoding = _encoding_of(stream, candidate_encodings(stream.read(3), tuple(encodings)))
        if encoding is None:
            raise TableError(
                "content.encoding",
                R_("the file is not valid text in any of {encodings}",
                   encodings=", ".join(encodings)),
            )
        records = _decoded(csv_records(stream, encoding, limits))
    else:
        raise ValueError(f"unknown dataset format {dataset_format!r}")
    header = next(records, None)
    if header is None:
        raise TableError("content.empty", "the file is empty; it has no header row")
    return Table(header.cells, records, dataset_format, encoding)


# --- private helpers -----------------------------------------------------------------------------

# Versioned: a change to the canonical form must use a new context, or old fingerprints would
# silently stop matching.
_CONTEXT = b"tachiai/onward-row/v1\x00"
_BLOCK = 64  # SHA-256's block size, B in RFC 2104
_MIN_CELLS = 2
_MIN_CHARS = 8
_MIN_NAME_CHARS = 2
_CACHE_PER_COLUMN = 4096
_EMPTY = ("", '""')
_MAX_DATE_CHARS = 40  # parse_date refuses longer text anyway
_DECODE_CHUNK = 1 << 20

# Hyphen, dashes, minus and their compatibility forms that NFKC leaves apart (番地 1−1, 1‐1).
# Not ー (長音符): in katakana it is a letter.
_DASHES = str.maketrans(
    dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-")
)
# JIS X 0303 (人間の性別の表記): 1 male, 2 female. The seed files use both forms in one column.
_SEX_CODES = {"男": "1", "男性": "1", "女": "2", "女性": "2"}
_ERA_NAMES = tuple(era.name for era in ERAS)
_ERA_INITIALS = frozenset(era.initial for era in ERAS)

# Role markers, matched inside canonical column names. Checked in this order: 生年月日 before 氏名
# would not matter, but a "カード番号" column is never taken for a name.
_ROLE_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("birth", ("生年月日", "誕生日", "birth")),
    ("card", ("在留カード番号", "residencecard")),
    ("sex", ("性別", "sex", "gender")),
    ("name", ("氏名", "名前", "フリガナ", "name")),
)


def _check_key(key: bytes) -> None:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a fingerprint key must have at least {MIN_KEY_BYTES} bytes")


def _role(column: str) -> str | None:
    for role, markers in _ROLE_MARKERS:
        if any(m in column for m in markers):
            return role
    return None


def _date_like(text: str) -> bool:
    # parse_date raises on most cells; a cheap look at the first characters spares the regexes
    # and the exception for names, addresses and codes.
    first = text[0]
    if first.isdigit():
        return len(text) == 8 or "-" in text or "/" in text
    if first in _ERA_INITIALS:
        return len(text) > 1 and text[1].isdigit()
    return text.startswith(_ERA_NAMES)


def _quote(text: str) -> str:
    # A JSON string: unambiguous whatever a cell holds (commas, quotes, brackets, controls).
    return encode_basestring(text)


def _encoding_of(stream: BinaryIO, candidates: list[str]) -> str | None:
    """The first candidate the whole stream decodes in, so rows are never half read in one
    encoding and then in another."""
    for name in candidates:
        decoder = codecs.getincrementaldecoder(name)(errors="strict")
        stream.seek(0)
        try:
            while chunk := stream.read(_DECODE_CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return name
    return None


def _decoded(records: Iterator[Record]) -> Iterator[Record]:
    try:
        yield from records
    except Undecodable:
        # The whole stream decoded before; only a stream changed under us gets here.
        raise TableError("content.encoding", "the file changed while it was read") from None
