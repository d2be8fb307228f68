"""The words a person reads, in their language (日本語 or English), through gettext.

`_()` translates a message of the command line in the `tachiai` domain; the language comes from
the standard environment (LANGUAGE, LC_ALL, LC_MESSAGES, LANG), English when none names a
language with a catalogue. `N_()` only marks a message for the catalogue: the text stays English
where it is made (an error raised by domain code, a default hint) and the command line
translates it where it prints it, with `wording()`. The daemon (`tachiai run`) calls
`english()`: its log is read with journald and grep, and stays English always. JSON output is
never translated. This module imports nothing of the gateway, policies or audit.
"""

from __future__ import annotations

import gettext
import re
import string
from functools import cache
from pathlib import Path

#: The gettext domain and where its catalogues are (gateway/locale/LANG/LC_MESSAGES/).
DOMAIN = "tachiai"
#: The catalogue of argparse's own words ("usage:", "options", "error:"), beside ours.
ARGPARSE_DOMAIN = "argparse"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"

_forced_english = False

#: Fields that hold a name, never words: a key of a file, a path, an id. `wording` leaves their
#: values as they are (a key `id` must not become the label 「ID」).
VERBATIM = frozenset({"key", "where", "path", "file", "id", "rule", "config", "url", "host",
                      "port", "user", "pid", "party", "agreement", "flow", "name"})


def _(message: str) -> str:
    """`message` in the reader's language, or unchanged when it has no translation."""
    return _translations().gettext(message)


def N_(message: str) -> str:
    """Mark `message` for the catalogue without translating it (it is translated where printed)."""
    return message


def english() -> None:
    """Speak English in this process from now on, whatever the environment says (the daemon)."""
    global _forced_english
    _forced_english = True
    _translations.cache_clear()
    _templates.cache_clear()


def argparse_words() -> None:
    """Have argparse word its usage, headings and errors in the reader's language too.

    argparse translates with the module-level `gettext.gettext`, that is in the process's
    global text domain: this points that domain at our `argparse` catalogue (a small file,
    read only when a message is looked up). Call it before the parser is built.
    """
    gettext.bindtextdomain(ARGPARSE_DOMAIN, str(LOCALE_DIR))
    gettext.textdomain(ARGPARSE_DOMAIN)


def reload() -> None:
    """Read the language from the environment again (a test, or a process that changed it)."""
    global _forced_english
    _forced_english = False
    _translations.cache_clear()
    _templates.cache_clear()


def language() -> str:
    """The language messages are printed in: "ja", or "en" when there is no catalogue for it."""
    info = _translations().info()
    return info.get("language", "en") or "en"


def wording(text: str, language: str | None = None) -> str:
    """Translate English text that marked code made: a message itself, or a marked template
    filled in (a refusal reason from `policies`, an error from domain code).

    The filled-in values are found by matching the text against each template of the catalogue,
    the most specific first; each value is translated the same way (a reason inside "refused:
    {message}"), so the translation may put them in any order. Text that matches nothing is
    returned unchanged, so an untranslated message is never lost. Several lines are translated
    one by one, each keeping its indentation; a line "PLACE: message" that matches nothing (a
    path before a message made elsewhere) keeps its place and has its message translated.
    `language` ("ja", "en") overrides the reader's (a file the daemon writes for people, whose
    own log stays English).
    """
    if not text:
        return text
    catalogue = _translations() if language is None else _catalogue(language)
    translated = catalogue.gettext(text)
    if translated != text:
        return translated
    for template, pieces in _templates(language):
        if not all(piece in text for piece in pieces):
            continue  # cheap: most templates share no text with this one
        pattern, fields = _compiled(template)
        found = pattern.fullmatch(text)
        if found is None:
            continue
        values = {name: found.group(name) if name in VERBATIM
                  else wording(found.group(name), language) for name in fields}
        return _fill(catalogue.gettext(template), values)
    if "\n" in text:  # several messages, one a line (a configuration's problems)
        return "\n".join(_indented(line, language) for line in text.split("\n"))
    place, colon, rest = text.partition(": ")
    if colon and rest and " " not in place:
        translated = wording(rest, language)
        if translated != rest:
            return place + colon + translated
    return text


# -- private ------------------------------------------------------------------------------------


def _indented(line: str, language: str | None) -> str:
    body = line.lstrip(" ")
    return line[: len(line) - len(body)] + wording(body, language)


@cache
def _translations() -> gettext.NullTranslations:
    if _forced_english:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, fallback=True)


@cache
def _catalogue(language: str) -> gettext.NullTranslations:
    """The catalogue of one language, whatever the reader's (English: none)."""
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


@cache
def _templates(language: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """Every message id of the current catalogue that has named fields and enough text of its
    own to be told apart, with its literal pieces, the longest literal text first. Empty in
    English. Their patterns are compiled only when a text contains every piece (`_compiled`):
    compiling a thousand of them would cost every command that prints a message."""
    catalogue = _translations() if language is None else _catalogue(language)
    catalog = getattr(catalogue, "_catalog", None)  # GNUTranslations keeps its ids there
    if not catalog:
        return []
    out = []
    for msgid in catalog:
        if not isinstance(msgid, str) or "{" not in msgid:
            continue
        pieces = _pieces(msgid)
        if pieces is not None:
            out.append((sum(len(p) for p in pieces), msgid, pieces))
    out.sort(key=lambda t: -t[0])
    return [(msgid, pieces) for _n, msgid, pieces in out]


def _pieces(template: str) -> tuple[str, ...] | None:
    """The literal text between the fields of `template`, or None when it cannot be a pattern:
    a field that is not a name, or too little text of its own to be told apart from any other
    text."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    if any(name is not None and not name.isidentifier() for _lit, name, _s, _c in parsed):
        return None
    if len(re.findall(r"[A-Za-z]{3,}", "".join(lit for lit, *_rest in parsed))) < 1:
        return None
    return tuple(lit for lit, *_rest in parsed if lit)


@cache
def _compiled(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regular expression that matches `template` filled in, and the names of its fields."""
    parts: list[str] = []
    fields: list[str] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if name in fields:
            parts.append(f"(?P={name})")
        else:
            fields.append(name)
            parts.append(f"(?P<{name}>.+?)")
    # A field spans lines only where the template itself has several (a list of problems); a
    # one-line template must not swallow the lines after it.
    flags = re.DOTALL if "\n" in template else 0
    return re.compile("".join(parts), flags), tuple(fields)


def _fill(template: str, values: dict[str, str]) -> str:
    """`template` with each field replaced by its value, already formatted (specs ignored)."""
    out = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(values.get(name, "{" + name + "}"))
    return "".join(out)
