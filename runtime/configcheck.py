"""Config diagnostics shared by `dozor gateway check-config` and `dozor hub check-config`.

A ``Problem`` names the file, the key path as the technician wrote it (``device[2].full_scale_db``), the line
where TOML allows (a line scan of the file: tables, arrays of tables, keys, inline tables) and a sentence.
``explain`` turns pydantic's error records into such sentences (no raw regexes, "did you mean" for typos).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------ TOML line scan
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^\s*((?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_\-]+))*)\s*=')
_INLINE_KEY = re.compile(r'(?:\{|,)\s*("[^"]*"|[A-Za-z0-9_\-]+)\s*=')


def _parts(dotted: str) -> list[str]:
    return [p.strip().strip("\"'") for p in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', dotted)]


def _path(parts: list[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def line_index(text: str) -> dict[str, int]:
    """Map each key path (``mqtt.url``, ``device[2].thresholds.candidate_db``) and table to its first line."""
    index: dict[str, int] = {}
    counts: dict[str, int] = {}
    table: list[Any] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        m = _HEADER.match(line)
        if m and "=" not in m.group(2):
            names = _parts(m.group(2))
            if m.group(1) == "[[":  # an array of tables: the next element
                key = ".".join(names)
                counts[key] = counts.get(key, -1) + 1
                table = _resolve_arrays(names[:-1], counts) + [names[-1], counts[key]]
            else:
                table = _resolve_arrays(names, counts)
            index.setdefault(_path(table), n)
            continue
        m = _KEY.match(line)
        if m:
            keyparts = table + _parts(m.group(1))
            index.setdefault(_path(keyparts), n)
            rest = line[m.end():]
            if "{" in rest:
                for inner in _INLINE_KEY.finditer(rest):
                    index.setdefault(_path(keyparts + [inner.group(1).strip('"')]), n)
    return index


def _resolve_arrays(names: list[str], counts: dict[str, int]) -> list[Any]:
    """[device.assets] after the 3rd [[device]] means device[2].assets."""
    out: list[Any] = []
    for i, name in enumerate(names):
        out.append(name)
        key = ".".join(names[: i + 1])
        if key in counts:
            out.append(counts[key])
    return out


def locate(index: dict[str, int], key: str) -> int | None:
    """The line of ``key``, else of its nearest enclosing table or key that is in the file."""
    while key:
        if key in index:
            return index[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return None


def toml_syntax_problem(file: str, exc: Exception) -> Problem:
    m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
    msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc)) or "invalid TOML"
    return Problem(file, "", f"not valid TOML: {msg}" + (f" (column {m.group(2)})" if m else ""),
                   int(m.group(1)) if m else None)


# ------------------------------------------------------------------ pydantic errors -> sentences
def vocabulary(*models: type[BaseModel]) -> set[str]:
    """Every field name reachable from these models (for "did you mean")."""
    seen: set[type] = set()
    words: set[str] = set()

    def walk(m: Any) -> None:
        if not (isinstance(m, type) and issubclass(m, BaseModel)) or m in seen:
            return
        seen.add(m)
        for name, f in m.model_fields.items():
            words.add(f.alias or name)
            for arg in _types(f.annotation):
                walk(arg)

    for m in models:
        walk(m)
    return words


def _types(tp: Any) -> list[Any]:
    out = [tp]
    for a in getattr(tp, "__args__", ()) or ():
        out.extend(_types(a))
    meta = getattr(tp, "__origin__", None)
    if meta is not None:
        out.append(meta)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def sentence(err: dict[str, Any], words: set[str] = frozenset()) -> str:
    t, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    last = str(err["loc"][-1]) if err.get("loc") else ""
    if t == "extra_forbidden":
        close = difflib.get_close_matches(last, sorted(words), n=1, cutoff=0.75)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else " (check the spelling)")
    if t == "missing":
        return "required key is missing"
    if t in ("float_parsing", "float_type", "int_parsing", "int_type", "int_from_float"):
        kind = "a whole number" if t.startswith("int") else "a number"
        return f"must be {kind}, not {_shown(value)}" + (" (remove the quotes)" if isinstance(value, str) else "")
    if t in ("bool_parsing", "bool_type"):
        return f"must be true or false, not {_shown(value)}"
    if t in ("string_type",):
        return f"must be text in quotes, not {_shown(value)}"
    if t in ("list_type", "tuple_type"):
        return f'must be a list like ["a", "b"], not {_shown(value)}'
    if t in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a table (a [section] or {{ key = value }}), not {_shown(value)}"
    if t in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = ctx.get("gt", ctx.get("ge", ctx.get("lt", ctx.get("le"))))
        words_ = {"greater_than": "more than", "greater_than_equal": "at least", "less_than": "less than",
                  "less_than_equal": "at most"}[t]
        return f"must be {words_} {bound} (got {_shown(value)})"
    if t == "literal_error":
        return f"must be one of {ctx.get('expected', '')} (got {_shown(value)})"
    if t == "string_pattern_mismatch":
        if last in ("id", "zone", "bus", "name") or "id" in last:
            return f"{_shown(value)} is not a valid id: use 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)"
        if last == "sha256":
            return "must be 64 lowercase hex digits (the file's sha256; `sha256sum FILE` prints it)"
        return f"{_shown(value)} does not have the expected form"
    if t in ("string_too_short", "too_short"):
        return "must not be empty"
    if t in ("string_too_long", "too_long"):
        return f"is too long ({err['msg'].lower()})"
    if t == "enum":
        return f"must be one of {ctx.get('expected', '')} (got {_shown(value)})"
    if t == "union_tag_invalid":
        return f"kind must be one of: {ctx.get('expected_tags', '')} (got {_shown(ctx.get('tag'))})"
    if t == "union_tag_not_found":
        return "needs a kind"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return msg


def explain(exc: ValidationError, *, file: str, index: dict[str, int], words: set[str] = frozenset(),
            prefix: list[Any] | None = None, skip: tuple[str, ...] = ()) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = [p for p in (prefix or []) + list(err["loc"]) if p not in skip]
        key = _path(loc)
        out.append(Problem(file, key, sentence(err, words), locate(index, key)))
    return out
