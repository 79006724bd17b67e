"""Provenance of a dataset row: the JSON string in the ``metadata`` column of TRL and KTO rows.

It is built once, when a pair (or KTO item) is made, and stored with the record, so an export
copies it instead of re-encoding it for every row it writes. Records stored before it was kept
get it built at export time (``formats.metadata``), with the same bytes.
"""

from __future__ import annotations

from typing import Any

import orjson


def _json(value: Any) -> str:
    # Sorted keys: the same provenance is always the same bytes.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def pair_metadata(
    pair_id: str,
    group_id: str,
    prompt: dict[str, Any],
    chosen: dict[str, Any],
    rejected: dict[str, Any],
    paired_at: float,
    source: str = "vote",
    margin: int = 1,
    model: str | None = None,
) -> str:
    """Pair id, prompt group, the system prompt and chat (when there is one), each response's
    id, model and feedback, when the pair was made, where the preference came from (``source``:
    vote, rating, comparison, ranking, correction, judge) and its ``margin`` (the net preference);
    for a judge's pair, the judge's ``source_model``."""
    extra = {"source_model": model} if model else {}
    return _json(
        {
            **extra,
            "pair_id": pair_id,
            "source": source,
            "margin": margin,
            "group_id": group_id,
            "system": prompt.get("system"),
            "messages": prompt.get("messages"),
            "chosen": chosen,
            "rejected": rejected,
            "paired_at": paired_at,
        }
    )


def kto_metadata(
    item_id: str,
    group_id: str,
    prompt: dict[str, Any],
    completion: dict[str, Any],
    labelled_at: float,
    source: str | None = None,
) -> str:
    """The KTO row's counterpart of ``pair_metadata``, with the ``source`` of its label (vote,
    rating, comparison, correction: KTO rows come from people only)."""
    extra = {"source": source} if source else {}
    return _json(
        {
            **extra,
            "item_id": item_id,
            "group_id": group_id,
            "system": prompt.get("system"),
            "messages": prompt.get("messages"),
            "completion": completion,
            "labelled_at": labelled_at,
        }
    )


def without_prompt(meta: dict[str, Any]) -> str:
    """A parsed provenance as the text it is stored as without the prompt (its ``messages`` and
    ``system`` empty): what a record referring to its responses keeps (refs.py)."""
    return _json({**meta, "messages": None, "system": None})
