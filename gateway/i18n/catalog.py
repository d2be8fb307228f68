"""The message catalogue: extract marked messages from the source, keep a `.po` file of their
translations, compile it into the `.mo` file gettext reads.

Pure Python, without GNU gettext's tools. `scripts/catalog` runs `main()`: it rewrites the
`.po` from the source (a translation already made is kept; one whose message left the source
is dropped) and compiles the `.mo` beside it. Both are shipped in the package; a test holds the
`.mo` equal to the compiled `.po`. Only what this project writes is handled: no plural forms
and no contexts (Japanese has no plural; messages say "witness(es)").

A second catalogue, `argparse`, holds the words of Python's own argparse ("usage:", "options",
"error:" …), extracted from the running interpreter's argparse module; `i18n.argparse_words()`
makes argparse read it. Its few plural messages (ngettext) stay English.
"""

from __future__ import annotations

import ast
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.i18n import ARGPARSE_DOMAIN, DOMAIN, LOCALE_DIR

#: The functions that mark a message: `_` and `N_` (gateway), `R_` (policies' reasons).
MARKERS = ("_", "N_", "R_")
#: Where marked messages are looked for, relative to the source tree's root.
SOURCES = ("gateway", "policies")
ROOT = Path(__file__).resolve().parents[2]
MO_MAGIC = 0x950412DE
HEADER = (
    "Project-Id-Version: tachiai\n"
    "Language: {language}\n"
    "MIME-Version: 1.0\n"
    "Content-Type: text/plain; charset=UTF-8\n"
    "Content-Transfer-Encoding: 8bit\n"
)


@dataclass
class Entry:
    """One message: its id (the English text), its translation and where the source uses it."""

    msgid: str
    msgstr: str = ""
    places: list[str] = field(default_factory=list)
    fuzzy: bool = False


class CatalogError(ValueError):
    """A `.po` file that cannot be read: the line and what is wrong with it."""


def po_path(language: str = "ja", domain: str = DOMAIN) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"


def argparse_source() -> Path:
    """The running interpreter's argparse module, whose `_()` messages the second catalogue
    translates."""
    import argparse  # here: only the catalogue's maintenance reads it as a file

    return Path(argparse.__file__)


def extract(root: Path = ROOT, sources: Iterable[str] = SOURCES) -> dict[str, list[str]]:
    """Every marked message of the source, with the places that use it, in source order.

    A marker's first argument is a string literal (adjacent literals join), or a value marked
    where it was made (a name, an item, a call: skipped here); a message built on the spot (an
    f-string, a concatenation) cannot be translated, so it is an error.

    Raises:
        CatalogError: a marker called with something other than a literal.
    """
    found: dict[str, list[str]] = {}
    for source in sources:
        for path in sorted((root / source).rglob("*.py")):
            _extract_file(path, path.relative_to(root).as_posix(), MARKERS, found)
    return found


def extract_argparse() -> dict[str, list[str]]:
    """The messages argparse translates with `_()` (its plural ones, ngettext, are left out).

    Raises:
        CatalogError: a marker without a literal (argparse changed how it words its messages).
    """
    found: dict[str, list[str]] = {}
    _extract_file(argparse_source(), "argparse.py", ("_",), found)
    return found


def read_po(text: str) -> dict[str, Entry]:
    """The entries of a `.po` file by message id (the header's empty id included).

    Raises:
        CatalogError: a line that is neither a comment, a keyword nor a continued string.
    """
    entries: dict[str, Entry] = {}
    current: dict[str, str] = {}
    key: str | None = None
    fuzzy = False

    def finish() -> None:
        nonlocal current, key, fuzzy
        if "msgid" in current:
            entries[current["msgid"]] = Entry(current["msgid"], current.get("msgstr", ""),
                                              fuzzy=fuzzy)
        current, key, fuzzy = {}, None, False

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if key == "msgstr":
                finish()
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            continue
        if line.startswith(("msgid ", "msgstr ")):
            word, _space, rest = line.partition(" ")
            if word == "msgid" and key == "msgstr":
                finish()
            key = word
            current[key] = _unquote(rest, number)
        elif line.startswith('"') and key is not None:
            current[key] += _unquote(line, number)
        else:
            raise CatalogError(f"line {number}: expected msgid, msgstr, a string or a comment")
    finish()
    return entries


def write_po(entries: Iterable[Entry], language: str = "ja") -> str:
    """The `.po` text of `entries`, in the order given, after the header."""
    lines = ["# Translations of tachiai's messages. Regenerate with scripts/catalog; edit only",
             "# the msgstr lines.", 'msgid ""', 'msgstr ""']
    lines += [_quote(line) for line in HEADER.format(language=language).splitlines(True)]
    for entry in entries:
        lines.append("")
        lines += [f"#: {place}" for place in entry.places]
        flags = [f for f, on in (("fuzzy", entry.fuzzy),
                                 ("python-brace-format", "{" in entry.msgid)) if on]
        if flags:
            lines.append(f"#, {', '.join(flags)}")
        lines += _field("msgid", entry.msgid) + _field("msgstr", entry.msgstr)
    return "\n".join(lines) + "\n"


def compile_mo(entries: dict[str, Entry]) -> bytes:
    """The `.mo` file of the translated, not fuzzy entries (and the header): GNU's format,
    little-endian, ids sorted, no hash table (gettext does not need one)."""
    pairs = sorted((e.msgid.encode(), e.msgstr.encode()) for e in entries.values()
                   if e.msgstr and (not e.fuzzy or e.msgid == ""))
    n = len(pairs)
    ids_at = 7 * 4
    strs_at = ids_at + 8 * n
    data_at = strs_at + 8 * n
    ids = b"".join(key + b"\0" for key, _value in pairs)
    index_ids: list[int] = []
    index_strs: list[int] = []
    offset = data_at
    for key, _value in pairs:
        index_ids += [len(key), offset]
        offset += len(key) + 1
    for _key, value in pairs:
        index_strs += [len(value), offset]
        offset += len(value) + 1
    head = struct.pack("<7I", MO_MAGIC, 0, n, ids_at, strs_at, 0, data_at)
    return (head + struct.pack(f"<{2 * n}I", *index_ids) + struct.pack(f"<{2 * n}I", *index_strs)
            + ids + b"".join(value + b"\0" for _key, value in pairs))


def regenerate(language: str = "ja", root: Path = ROOT,
               domain: str = DOMAIN) -> tuple[int, int]:
    """Rewrite the `.po` from the source and compile the `.mo`; (messages, untranslated).

    Raises:
        CatalogError: a marker without a literal, or an unreadable `.po`.
    """
    po = po_path(language, domain)
    old = read_po(po.read_text(encoding="utf-8")) if po.exists() else {}
    entries = []
    marked = extract(root) if domain == DOMAIN else extract_argparse()
    for msgid, places in marked.items():
        kept = old.get(msgid)
        entries.append(Entry(msgid, kept.msgstr if kept else "", places,
                             kept.fuzzy if kept else False))
    po.parent.mkdir(parents=True, exist_ok=True)
    text = write_po(entries, language)
    po.write_text(text, encoding="utf-8")
    po.with_suffix(".mo").write_bytes(compile_mo(read_po(text)))
    return len(entries), sum(1 for e in entries if not e.msgstr)


def main(argv: list[str] | None = None) -> int:
    languages = (argv if argv is not None else sys.argv[1:]) or ["ja"]
    for language in languages:
        for domain in (DOMAIN, ARGPARSE_DOMAIN):
            total, missing = regenerate(language, domain=domain)
            print(f"{po_path(language, domain).relative_to(ROOT)}: {total} message(s), "
                  f"{missing} without a translation")
    return 0


# -- private ------------------------------------------------------------------------------------


def _extract_file(path: Path, relative: str, markers: Iterable[str],
                  found: dict[str, list[str]]) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), relative)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in markers and node.args):
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Name | ast.Subscript | ast.Attribute | ast.Call):
            continue  # a value marked where it was made (`N_`), translated here
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            raise CatalogError(f"{relative}:{node.lineno}: {node.func.id}() needs a "
                               "string literal; use named fields and .format()")
        found.setdefault(arg.value, []).append(f"{relative}:{node.lineno}")


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}


def _unquote(text: str, number: int) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise CatalogError(f"line {number}: a string must be in double quotes")
    out = []
    body = iter(text[1:-1])
    for c in body:
        if c == "\\":
            nxt = next(body, "")
            if nxt not in _ESCAPES:
                raise CatalogError(f"line {number}: unknown escape \\{nxt}")
            out.append(_ESCAPES[nxt])
        else:
            out.append(c)
    return "".join(out)


def _quote(text: str) -> str:
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
               .replace("\r", "\\r").replace("\n", "\\n"))
    return f'"{escaped}"'


def _field(keyword: str, text: str) -> list[str]:
    """A keyword and its string: on one line when short, else split after each line break."""
    if "\n" not in text[:-1] and len(text) < 70:
        return [f"{keyword} {_quote(text)}"]
    return [f'{keyword} ""'] + [_quote(part) for part in text.splitlines(True)]


if __name__ == "__main__":
    sys.exit(main())
