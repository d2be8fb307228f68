"""The `[datasets.ID]` tables of an agreement file: data items (情報項目), format and encodings.

Parses each dataset into a `policies.agreement.Dataset`, reporting every problem with its key
and fix into the caller's `Problems`. Pure: tables in, values out; it never reads a file.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from policies.agreement import (
    ENCODINGS,
    FORMATS,
    MY_NUMBER_POLICIES,
    Category,
    Column,
    Dataset,
)
from policies.errors import Problems, known
from policies.values import TYPE_NAMES
from policies.wording import R_

__all__ = ["ID_PATTERN", "parse_datasets"]

# Ids become folder names (outbox/AGREEMENT/FLOW) and term citations: lowercase, digits, hyphens.
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_DATASET_KEYS = frozenset(
    {
        "title",
        "format",
        "encodings",
        "my_number",
        "columns",
        "categories",
        "category_column",
        "event_date_column",
    }
)
_COLUMN_KEYS = frozenset({"name", "type", "required", "max_length", "allowed", "allow_sign"})


def parse_datasets(raw: Any, problems: Problems) -> dict[str, Dataset]:
    """Every dataset of the file, keyed by id; problems are added to `problems`."""
    if not isinstance(raw, dict) or not raw:
        problems.fail("datasets", R_("missing"), R_("add a [datasets.ID] table with its columns"))
        return {}
    out: dict[str, Dataset] = {}
    for did, body in raw.items():
        if not ID_PATTERN.fullmatch(did):
            problems.fail(
                f"datasets.{did}",
                R_("not a valid id"),
                R_("use lowercase letters, digits and hyphens, e.g. [datasets.status-change]"),
            )
        if not isinstance(body, dict):
            problems.fail(
                f"datasets.{did}",
                R_("not a table"),
                R_("write [datasets.{did}]", did=did),
            )
            continue
        dataset = _dataset(did, body, problems)
        if dataset is not None:
            out[did] = dataset
    return out


def _dataset(did: str, body: Mapping[str, Any], problems: Problems) -> Dataset | None:
    where = f"datasets.{did}"
    for key in body:
        if key not in _DATASET_KEYS:
            problems.fail(
                f"{where}.{key}",
                R_("unknown key"),
                R_("remove it or use one of: {choices}", choices=', '.join(sorted(_DATASET_KEYS))),
            )
    fmt = body.get("format", "csv")
    if not known(fmt, FORMATS):
        problems.fail(
            f"{where}.format", R_("unsupported format"), R_("use one of: {choices}",
                                                        choices=', '.join(sorted(FORMATS)))
        )
    encodings: Any = body.get("encodings")
    if fmt == "xlsx":
        if encodings is not None:
            # An .xlsx file carries its own encoding; a list here would suggest a choice exists.
            problems.fail(
                f"{where}.encodings",
                R_("an xlsx dataset has no text encoding"),
                R_("remove encodings (they apply to CSV only)"),
            )
        encodings = []
    else:
        if encodings is None:
            encodings = ["cp932", "utf-8", "utf-8-sig"]
        if (
            not isinstance(encodings, list)
            or not encodings
            or any(not known(e, ENCODINGS) for e in encodings)
        ):
            problems.fail(
                f"{where}.encodings",
                R_("unknown encoding"),
                R_("use some of: {choices}", choices=', '.join(sorted(ENCODINGS))),
            )
            encodings = []
    my_number = body.get("my_number", "forbidden")
    if not known(my_number, MY_NUMBER_POLICIES):
        # Carrying 個人番号 needs a legal basis (番号法 第19条) not modelled here: fail closed.
        problems.fail(
            f"{where}.my_number",
            R_("only 'forbidden' is supported"),
            R_('set my_number = "forbidden"'),
        )
    title = body.get("title", "")
    if not isinstance(title, str):
        problems.fail(f"{where}.title", R_("not a string"), R_('write title = "…"'))
        title = ""
    columns = _columns(body.get("columns"), where, problems)
    categories = _categories(body.get("categories", []), where, problems)
    category_column = _column_ref(body, "category_column", columns, where, problems)
    if category_column is not None and not categories:
        problems.fail(
            f"{where}.category_column",
            R_("names a column but no categories are listed"),
            R_('list them: categories = [{ id = "1", name = "…" }]'),
        )
    event_column = _column_ref(body, "event_date_column", columns, where, problems)
    if event_column is not None:
        found = next((c for c in columns if c.name == event_column), None)
        if found is not None and found.type != "date":
            problems.fail(
                f"{where}.event_date_column",
                R_("is not a date column"),
                R_("name a column of type date, or remove the key"),
            )
    return Dataset(
        id=did,
        format=str(fmt),
        encodings=tuple(encodings),
        columns=columns,
        my_number=str(my_number),
        title=title,
        categories=categories,
        category_column=category_column,
        event_date_column=event_column,
    )


def _columns(raw: Any, where: str, problems: Problems) -> tuple[Column, ...]:
    if not isinstance(raw, list) or not raw:
        problems.fail(
            f"{where}.columns",
            R_("missing or empty"),
            R_('list the columns: columns = [{ name = "…", type = "…" }]'),
        )
        return ()
    out: list[Column] = []
    seen: set[str] = set()
    for i, col in enumerate(raw):
        key = f"{where}.columns[{i}]"
        if not isinstance(col, dict):
            problems.fail(key, R_("not a table"), R_('write { name = "…", type = "…" }'))
            continue
        for k in col:
            if k not in _COLUMN_KEYS:
                problems.fail(
                    f"{key}.{k}", R_("unknown key"), R_("use some of: {choices}",
                                                    choices=', '.join(sorted(_COLUMN_KEYS)))
                )
        name = col.get("name")
        if not isinstance(name, str) or not name.strip():
            problems.fail(
                f"{key}.name",
                R_("missing or not a non-empty string"),
                R_('set name = "…"'),
            )
            name = ""
        ctype = col.get("type")
        if not known(ctype, TYPE_NAMES):
            problems.fail(
                f"{key}.type", R_("unknown column type"), R_("use one of: {choices}",
                                                         choices=', '.join(sorted(TYPE_NAMES)))
            )
        # Headers are compared after NFKC, so two names equal after NFKC are one column.
        folded = unicodedata.normalize("NFKC", name).strip()
        if folded in seen:
            problems.fail(f"{key}.name", R_("duplicate column name"), R_("give each column its own "
                                                                     "name"))
        seen.add(folded)
        max_length = col.get("max_length")
        if max_length is not None and (
            not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1
        ):
            problems.fail(
                f"{key}.max_length",
                R_("not a positive integer"),
                R_("e.g. max_length = 200"),
            )
            max_length = None
        required = col.get("required", True)
        if not isinstance(required, bool):
            problems.fail(f"{key}.required", R_("not true or false"), R_("write required = false"))
            required = True
        allowed = col.get("allowed")
        if allowed is not None and (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(a, str) and a.strip() for a in allowed)
        ):
            problems.fail(
                f"{key}.allowed",
                R_("not a list of values"),
                R_('write allowed = ["…", "…"]'),
            )
            allowed = None
        allow_sign = col.get("allow_sign", False)
        if not isinstance(allow_sign, bool):
            problems.fail(
                f"{key}.allow_sign",
                R_("not true or false"),
                R_("write allow_sign = true where a leading + or - is a signed number"),
            )
            allow_sign = False
        out.append(
            Column(
                name,
                str(ctype),
                required,
                max_length,
                tuple(allowed) if allowed is not None else None,
                allow_sign,
            )
        )
    return tuple(out)


def _categories(raw: Any, where: str, problems: Problems) -> tuple[Category, ...]:
    if not isinstance(raw, list):
        problems.fail(
            f"{where}.categories",
            R_("not a list"),
            R_('write categories = [{ id = "…", name = "…" '
            "}]"),
        )
        return ()
    out: list[Category] = []
    for i, body in enumerate(raw):
        key = f"{where}.categories[{i}]"
        if (
            not isinstance(body, dict)
            or set(body) != {"id", "name"}
            or not all(isinstance(body[k], str) and body[k].strip() for k in ("id", "name"))
        ):
            problems.fail(key, R_("not a category"), R_('write { id = "…", name = "…" }'))
            continue
        if any(c.id == body["id"] for c in out):
            problems.fail(
                f"{key}.id",
                R_("duplicate category id"),
                R_("give each category its own id"),
            )
        out.append(Category(body["id"], body["name"]))
    return tuple(out)


def _column_ref(
    body: Mapping[str, Any], key: str, columns: tuple[Column, ...], where: str, problems: Problems
) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not any(c.name == value for c in columns):
        problems.fail(
            f"{where}.{key}",
            R_("names no column of this dataset"),
            R_("use a column name exactly as listed in columns"),
        )
        return None
    return value
