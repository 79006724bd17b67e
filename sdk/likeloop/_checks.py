"""The checks of the feedback methods' arguments that take more than a line, as pure functions:
each returns what the method needs, or a message saying what is wrong (the client reports it as
a :class:`UsageError`). The limits are the service's (a test keeps them equal)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from . import _token

COMPARISON_CHOICES = ("a", "b", "tie", "both_bad")
MAX_RANKED = 20  # the service's limit on the responses one ranking orders
MIN_SCALE, MAX_SCALE = 2, 100  # the rating scales the service accepts


class Refused(str):
    """A message saying why the arguments were refused."""


def rating(value: object, scale: object) -> Refused | None:
    if (
        type(value) is not int
        or type(scale) is not int
        or not MIN_SCALE <= scale <= MAX_SCALE
        or not 1 <= value <= scale
    ):
        return Refused(
            f"rate() needs an integer value from 1 to scale ({MIN_SCALE}-{MAX_SCALE}), got {value!r}/{scale!r}"
        )
    return None


def comparison(a: object, b: object, choice: object) -> Refused | None:
    if choice not in COMPARISON_CHOICES:
        return Refused(f"compare() choice must be one of {', '.join(COMPARISON_CHOICES)}, got {choice!r}")
    if type(b) is not str or not b or b == a:
        return Refused(f"compare() needs two different response ids, got {a!r} and {b!r}")
    return None


def ranking(response_ids: Sequence[str | Sequence[str]]) -> list[list[str]] | Refused:
    """The ranking's levels, best first, each a list of ids ranked equal."""
    levels: list[list[str]] = []
    try:
        for level in response_ids:
            ids = [level] if isinstance(level, str) else list(level)
            if not ids or not all(type(x) is str and x for x in ids):
                raise TypeError
            levels.append(ids)
    except TypeError:
        return Refused("rank() takes response ids best first (an element may be a list of equals)")
    flat = [x for ids in levels for x in ids]
    if not 2 <= len(flat) <= MAX_RANKED or len(set(flat)) != len(flat):
        return Refused(f"rank() orders 2 to {MAX_RANKED} different responses, got {flat!r}")
    return levels


def token_types(response_id: object, allow: Iterable[str] | None, compare_with: object) -> tuple[str, ...] | Refused:
    """The feedback types a token may post: ``allow`` checked, or the default for its kind."""
    if type(response_id) is not str or not response_id:
        return Refused(f"feedback_token() needs a response id, got {response_id!r}")
    if compare_with is not None and (type(compare_with) is not str or not compare_with or compare_with == response_id):
        return Refused(f"feedback_token() compare_with= takes another response id, got {compare_with!r}")
    if allow is None:
        allow = ("comparison",) if compare_with is not None else _token.DEFAULT_TYPES
    try:
        given = allow if isinstance(allow, str) else list(allow)
    except TypeError:
        given = None
    types = _token.check_types(given)
    if types is None or ("comparison" in types) != (compare_with is not None):
        return Refused(
            f"feedback_token() allow= takes some of {', '.join(_token.FEEDBACK_TYPES)} "
            "(comparison exactly when compare_with= names the other response)"
        )
    return types
