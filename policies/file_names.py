"""The rules a dropped file's name must meet before it may become evidence.

A name is written into the ledger, the witnesses' statement, the ZIP entry and the recipient's
folder, so it is checked first: valid UTF-8, no control or invisible formatting characters, no
My Number (個人番号, 番号法 第20条), and a form Windows can store. Pure: takes the name's bytes,
returns the decoded name or the reasons; a reason never quotes the name.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from policies.checkdigits import contains_my_number
from policies.reasons import Reason
from policies.wording import R_

# Characters and names Windows refuses or treats as paths: the name becomes the ZIP entry name
# that the recipient's extractor writes, so `a\..\..\x` or `CON` must never reach it.
_WINDOWS_FORBIDDEN = frozenset('<>:"/\\|?*')
_WINDOWS_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                               *(f"LPT{i}" for i in range(1, 10))})
MAX_NAME_BYTES = 200  # leaves room for ".<transfer id>.zip.password" within 255 bytes
# Cc: C0/C1 controls (a newline would add a line to the signed statement); Cf: invisible
# formatting such as U+202E, which shows `exe.csv` for `vsc.exe`; Zl/Zp: line breaks; Cs: a lone
# surrogate; Cn: unassigned in this Python's Unicode tables, so not judged (fail closed).
# Ordinary spaces (U+0020, U+3000) and private-use characters (外字) are allowed.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"})


@dataclass(frozen=True)
class NameVerdict:
    """The checked name (None when refused) and why it was refused."""

    name: str | None
    reasons: tuple[Reason, ...]

    @property
    def accepted(self) -> bool:
        return self.name is not None


def check_name(raw: bytes) -> NameVerdict:
    """Check a dropped file's name, given as the bytes the file system holds.

    Every rule that fails is named (the sender fixes them all at once); none quotes the name.
    """
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        return NameVerdict(None, (Reason(
            "intake.name-not-utf8", R_("the file name is not valid UTF-8 (it was probably written "
            "in Shift_JIS); rename the file with a UTF-8 name and drop it again")),))
    reasons: list[Reason] = []
    if any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in name):
        reasons.append(Reason(
            "intake.name-control", R_("the file name has control or invisible formatting "
            "characters (a line break, a tab, a direction override); rename it")))
    if contains_my_number(name):
        reasons.append(Reason(
            "intake.name-my-number", R_("the file name holds what looks like a My Number "
            "(個人番号); a file name is kept in the evidence, so rename it without personal "
            "data")))
    reasons.extend(_windows_reasons(name, len(raw)))
    return NameVerdict(None if reasons else name, tuple(reasons))


def _windows_reasons(name: str, size: int) -> list[Reason]:
    stem = name.split(".")[0].upper()
    if (_WINDOWS_FORBIDDEN & set(name) or name.endswith((".", " "))
            or stem in _WINDOWS_RESERVED):
        return [Reason("intake.file-name", R_("the file name has characters or a form that "
                       'Windows cannot store (\\ / : * ? " < > |, a trailing dot or space, or a '
                       "reserved name such as CON); rename it"))]
    if size > MAX_NAME_BYTES:
        return [Reason("intake.file-name", R_("the file name is longer than {limit} "
                       "bytes and could not be delivered; shorten it", limit=MAX_NAME_BYTES))]
    return []
