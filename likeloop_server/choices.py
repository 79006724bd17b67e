"""Comma-separated lists of named choices, as the command line and the API take scopes and formats."""

from __future__ import annotations

from .errors import InvalidValue


def parse_choices(text: str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The distinct names in ``text`` (``"trl, openai"``), in order, each one of ``allowed`` and
    at least one; raises InvalidValue naming ``name`` otherwise."""
    names = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not names or any(n not in allowed for n in names):
        raise InvalidValue(f"{name} must be a comma-separated subset of {','.join(allowed)}, got {text!r}", field=name)
    return names
