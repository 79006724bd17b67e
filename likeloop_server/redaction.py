"""Redaction at ingest: personal data a project never needed, replaced before anything is stored
(docs/privacy.md). A project turns on built-in detectors (``email``, ``phone``, ``card``, ``iban``,
``ip``) and its own patterns; every text field of an event (prompt, system, response, each
message's content, a comment's or correction's text, every string in its metadata) has each
match replaced with ``[email]``, ``[phone]``, ... or ``[redacted]`` for a project's pattern.

Patterns run on RE2 (google-re2): matching takes time linear in the text whatever the pattern,
so no pattern can backtrack catastrophically; constructs that need backtracking (backreferences,
lookaround) are refused when the pattern is set. A card number counts only when it passes the
Luhn check, an IBAN only when it passes its mod-97 check; a number that fails as a card may still
be a phone number (7 to 15 digits).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import re2

from .errors import InvalidValue

BUILTINS = ("email", "phone", "card", "iban", "ip")
CUSTOM_LABEL = "[redacted]"
MAX_PATTERNS = 20
MAX_PATTERN_CHARS = 500
# A pattern must get through each of these within the budget when it is set.
ADVERSARIAL_BUDGET_S = 0.05
_ADVERSARIAL = ("a" * 2000, "0" * 2000, "ab" * 1000, " " * 2000, "x@" * 1000, "1." * 1000, "aaaa!" * 400)

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_IBAN = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"
_CARD = r"\b(?:[0-9][ -]?){12,18}[0-9]\b"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = rf"\b(?:{_H}:){{7}}{_H}\b|\b(?:{_H}:){{1,6}}:(?:{_H}(?::{_H}){{0,5}})?\b|::(?:{_H}(?::{_H}){{0,6}})\b"
_PHONE = r"(?:\+[0-9]{1,3}[ .-]?)?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{2,4}(?:[ .-][0-9]{2,4}){1,4}\b|\+[0-9]{7,15}\b"
# In the order they are tried at a position: the most specific first.
_SOURCES = {"email": _EMAIL, "iban": _IBAN, "card": _CARD, "ip": f"{_IPV4}|{_IPV6}", "phone": _PHONE}


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is reported to the caller, not to stderr
    options.max_mem = 8 << 20
    return options


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def luhn(number: str) -> bool:
    """Whether a digit string passes the Luhn check (card numbers do)."""
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """Whether an IBAN passes its mod-97 check."""
    compact = text.replace(" ", "")
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


# A date written with dashes or dots has a phone number's shape; it is not one.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{2}[.-][0-9]{2}[.-][0-9]{4}")


def _phone(text: str) -> bool:
    return 7 <= len(_digits(text)) <= 15 and not _DATE.fullmatch(text)


@dataclass(frozen=True)
class RedactConfig:
    """A project's redaction: built-in detectors by name and its own patterns (RE2 syntax)."""

    builtin: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.builtin or self.patterns)

    def as_dict(self) -> dict[str, list[str]]:
        return {"builtin": list(self.builtin), "patterns": list(self.patterns)}

    @classmethod
    def parse(cls, raw: Any) -> RedactConfig:
        """A redaction setting from its JSON form, every pattern compiled and tried; raises
        InvalidValue naming the field."""
        if not isinstance(raw, dict) or set(raw) - {"builtin", "patterns"}:
            raise InvalidValue('redact: an object {"builtin": [...], "patterns": [...]}', field="redact")
        builtin = raw.get("builtin", [])
        if not isinstance(builtin, list) or any(b not in BUILTINS for b in builtin):
            raise InvalidValue(f"redact.builtin: some of {', '.join(BUILTINS)}", field="redact.builtin")
        patterns = raw.get("patterns", [])
        if not isinstance(patterns, list) or len(patterns) > MAX_PATTERNS:
            raise InvalidValue(f"redact.patterns: a list of at most {MAX_PATTERNS} patterns", field="redact.patterns")
        for i, pattern in enumerate(patterns):
            check_pattern(pattern, f"redact.patterns[{i}]")
        return cls(tuple(b for b in BUILTINS if b in builtin), tuple(dict.fromkeys(patterns)))


def check_pattern(pattern: Any, field: str) -> None:
    """Refuse a pattern that is not text, too long, not RE2, matches the empty string, or is slow."""
    if not isinstance(pattern, str) or not 1 <= len(pattern) <= MAX_PATTERN_CHARS:
        raise InvalidValue(f"{field}: a pattern of 1-{MAX_PATTERN_CHARS} characters", field=field)
    try:
        compiled = re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        try:
            re.compile(pattern)
        except re.error as syntax:
            detail = str(syntax)
        else:
            detail += " (backreferences and lookaround are not supported: RE2 syntax)"
        raise InvalidValue(f"{field}: not a valid pattern: {detail}", field=field) from exc
    if compiled.fullmatch("") is not None:
        raise InvalidValue(f"{field}: matches the empty text, so it would match everywhere", field=field)
    for text in _ADVERSARIAL:
        started = time.perf_counter()
        compiled.sub(CUSTOM_LABEL, text)
        if time.perf_counter() - started > ADVERSARIAL_BUDGET_S:
            raise InvalidValue(f"{field}: too slow on a 2,000-character text", field=field)


class Redactor:
    """A project's redaction, compiled: ``text`` for one string, ``event`` for a validated event.

    Matching runs on the text's UTF-8 bytes: the RE2 binding's ``str`` path maps every match's
    offsets back to characters in Python, which cost several times the match itself."""

    def __init__(self, config: RedactConfig) -> None:
        self.config = config
        self._names = [name for name in _SOURCES if name in config.builtin]
        self._builtin = None
        if self._names:
            source = "|".join(f"({_SOURCES[name]})" for name in self._names)  # group i: detector i
            self._builtin = re2.compile(source.encode(), _options())
        self._custom = [re2.compile(p.encode(), _options()) for p in config.patterns]
        self._phone_on = "phone" in config.builtin

    def _label(self, kind: str, found: bytes) -> bytes | None:
        """What replaces a detector's match, or None when the match is not what it looks like."""
        if kind in ("card", "phone", "iban"):
            text = found.decode("ascii", "replace")
            if kind == "card" and not luhn(_digits(text)):
                return b"[phone]" if self._phone_on and _phone(text) else None
            if kind == "iban" and not iban_valid(text):
                return None
            if kind == "phone" and not _phone(text):
                return None
        return b"[" + kind.encode() + b"]"

    def _matches(self, data: bytes) -> Iterator[list[tuple[int, int]]]:
        """The spans (whole match, then each group) of each match of the built-in detectors.
        Through the binding's matcher itself where it has one (a C call per match returning
        every span; its ``finditer`` builds a Python object per match around that call)."""
        assert self._builtin is not None
        match = getattr(getattr(self._builtin, "_regexp", None), "Match", None)
        anchor = getattr(getattr(re2, "_Anchor", None), "UNANCHORED", None)
        if match is None or anchor is None:
            for found in self._builtin.finditer(data):
                yield [found.span(i) for i in range(len(self._names) + 1)]
            return
        pos, end = 0, len(data)
        while pos <= end:
            spans = match(anchor, data, pos, end)
            if spans[0][0] < 0:
                return
            yield spans
            pos = spans[0][1] if spans[0][1] > pos else pos + 1

    def _builtins(self, data: bytes) -> bytes:
        pieces: list[bytes] = []
        end = 0
        for spans in self._matches(data):
            start, stop = spans[0]
            kind = next(name for i, name in enumerate(self._names, 1) if spans[i][0] >= 0)
            label = self._label(kind, data[start:stop])
            if label is not None:
                pieces += (data[end:start], label)
                end = stop
        if not pieces:
            return data
        pieces.append(data[end:])
        return b"".join(pieces)

    def text(self, value: str) -> str:
        data = value.encode("utf-8", "surrogatepass")
        out = self._builtins(data) if self._builtin is not None else data
        for pattern in self._custom:
            out = pattern.sub(_CUSTOM, out)
        return value if out is data else out.decode("utf-8", "surrogatepass")

    def event(self, event: dict[str, Any]) -> None:
        """Redact a validated event's text fields in place."""
        for name in ("prompt", "system", "response", "text"):
            if isinstance(event.get(name), str):
                event[name] = self.text(event[name])
        for message in event.get("messages") or ():
            if isinstance(message.get("content"), str):
                message["content"] = self.text(message["content"])
        if event.get("metadata"):
            event["metadata"] = _each_string(event["metadata"], self.text)


def _CUSTOM(match: Any) -> bytes:  # noqa: N802 - a constant replacement, as the binding takes it fastest
    return CUSTOM_LABEL.encode()


def _each_string(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _each_string(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_each_string(v, fn) for v in value]
    return value


def redactor(config: RedactConfig | None) -> Redactor | None:
    return Redactor(config) if config else None
