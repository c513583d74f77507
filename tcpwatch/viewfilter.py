"""The filter language of the flow table (the dashboard's filter box, `--filter`): words and
`field:value` terms over a row (monitor.FlowRow, or a report summary in that shape). Pure:
no psutil, no Textual."""

from __future__ import annotations

import re

_FILTER_FIELDS = ("proc", "pid", "user", "addr", "port", "state", "badge", "id")
_TOKEN = re.compile(r'(\w+):("[^"]*"|\S+)|("[^"]*"|\S+)')


class FilterError(ValueError):
    """A filter expression that cannot mean what its author intended."""


def compile_filter(text: str):
    """A predicate over FlowRow. Terms separated by spaces must all match. `field:value`
    with field in proc, pid, user, addr, port, state, badge, id; a bare word matches any of
    them as a case-insensitive substring; a leading '!' negates a term. An unknown field
    name, or a word where a number is needed, raises FilterError."""
    preds = []
    if text.count('"') % 2:
        raise FilterError("unbalanced double quote")
    for m in _TOKEN.finditer(text.strip()):
        key, val, bare = m.group(1), m.group(2), m.group(3)
        if key is not None and key.lower() not in _FILTER_FIELDS:
            if key.isalpha():
                raise FilterError(f"unknown field '{key[:20]}:' (fields: "
                                  f"{' '.join(_FILTER_FIELDS)})")
            bare, key = m.group(0), None
        word = (val if key else bare).strip('"')
        neg = word.startswith("!") and len(word) > 1
        word = word[1:] if neg else word
        w = word.lower()
        key = key.lower() if key else None
        if key in _INT_TERMS and not w.isdigit():
            raise FilterError(f"'{key}:' needs a number, not '{word[:20]}'")
        preds.append((_term(key, w), neg))
    if not preds:
        return None

    def match(r) -> bool:
        return all(p(r) != neg for p, neg in preds)
    return match


def _int_term(get, w: str):
    n = int(w)
    return lambda r: n in get(r)


_TERMS = {  # field -> (row, lower-case word) -> bool
    "proc": lambda r, w: r.proc is not None and w in r.proc.name.lower(),
    "user": lambda r, w: r.proc is not None and w in (r.proc.user or "").lower(),
    "addr": lambda r, w: w in r.caddr.lower() or w in r.saddr.lower(),
    "state": lambda r, w: r.state.lower() == w or (w == "closed" and r.closed)
    or (w == "open" and not r.closed),
    "badge": lambda r, w: any(w == b.lower() for b in r.badges),
}
_INT_TERMS = {
    "port": lambda r: (r.cport, r.sport),
    "pid": lambda r: (r.proc.pid,) if r.proc is not None else (),
    "id": lambda r: (r.id,),
}


def _term(key: str | None, w: str):
    if key in _INT_TERMS and w.isdigit():
        return _int_term(_INT_TERMS[key], w)
    fn = _TERMS.get(key or "")
    if fn is not None:
        return lambda r: fn(r, w)
    return lambda r: w in _haystack(r)


def _haystack(r) -> str:
    proc = f"{r.proc.name} {r.proc.pid} {r.proc.user or ''}" if r.proc else ""
    return f"{proc} {r.client} {r.server} {r.state} {' '.join(r.badges)}".lower()
