"""Dataset record formats: a stored pair record in, one dataset row out. Pure functions.

- ``trl``: TRL's standard preference format: ``prompt``, ``chosen``, ``rejected`` strings.
- ``trl-chat``: TRL's conversational preference format: ``prompt`` a message list, ``chosen`` and
  ``rejected`` one-message assistant lists.
- ``openai``: OpenAI's DPO fine-tuning JSONL: ``input.messages``, ``preferred_output``,
  ``non_preferred_output``.
- ``kto``: TRL's unpaired preference format: ``prompt``, ``completion``, ``label`` (bool), for
  every labelled response, paired or not (built from KTO items, not pairs).

TRL rows carry provenance in one ``metadata`` column (a JSON string, so every row has the same
type, built when the pair is made: workers/dataset/provenance.py), which TRL's trainers do not read.
OpenAI rows carry none: its file validation is strict; the same pair in the ``trl`` files has
it (joined by order within a run, or by prompt and texts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

from .provenance import kto_metadata, pair_metadata

Row = dict[str, Any]

_MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMAS: dict[str, pa.Schema] = {
    "trl": pa.schema(
        [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()), ("metadata", pa.string())]
    ),
    "trl-chat": pa.schema(
        [
            ("prompt", pa.list_(_MESSAGE)),
            ("chosen", pa.list_(_MESSAGE)),
            ("rejected", pa.list_(_MESSAGE)),
            ("metadata", pa.string()),
        ]
    ),
    "kto": pa.schema(
        [("prompt", pa.string()), ("completion", pa.string()), ("label", pa.bool_()), ("metadata", pa.string())]
    ),
    "openai": pa.schema(
        [
            ("input", pa.struct([("messages", pa.list_(_MESSAGE))])),
            ("preferred_output", pa.list_(_MESSAGE)),
            ("non_preferred_output", pa.list_(_MESSAGE)),
        ]
    ),
}


def prompt_messages(record: Row) -> list[dict[str, str]]:
    """The conversation a pair's responses answer, as role/content messages."""
    if record.get("messages") is not None:
        messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in record["messages"]]
        if record.get("system") and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": record["system"]})
        return messages
    messages = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    return messages + [{"role": "user", "content": record.get("prompt") or ""}]


def prompt_text(record: Row) -> str:
    """The prompt as one string: the text prompt, or the chat's final user turn."""
    if record.get("prompt") is not None:
        return record["prompt"]
    for message in reversed(record.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def metadata(record: Row) -> str:
    """A pair's provenance string: stored with the pair, or (pairs stored before it was) built."""
    stored = record.get("metadata")
    if stored is not None:
        return stored
    return pair_metadata(
        record["id"], record["group_id"], record, record["chosen_meta"], record["rejected_meta"], record["paired_at"]
    )


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def trl_row(record: Row) -> Row:
    return {
        "prompt": prompt_text(record),
        "chosen": record["chosen"],
        "rejected": record["rejected"],
        "metadata": metadata(record),
    }


def trl_chat_row(record: Row) -> Row:
    return {
        "prompt": prompt_messages(record),
        "chosen": _assistant(record["chosen"]),
        "rejected": _assistant(record["rejected"]),
        "metadata": metadata(record),
    }


def openai_row(record: Row) -> Row:
    return {
        "input": {"messages": prompt_messages(record)},
        "preferred_output": _assistant(record["chosen"]),
        "non_preferred_output": _assistant(record["rejected"]),
    }


def kto_row(record: Row) -> Row:
    """TRL's unpaired preference (KTO) format, from a stored KTO item."""
    meta = record.get("metadata")
    if meta is None:  # stored before provenance was kept with the item
        meta = kto_metadata(record["id"], record["group_id"], record, record["completion_meta"], record["labelled_at"])
    return {
        "prompt": prompt_text(record),
        "completion": record["completion"],
        "label": bool(record["label"]),
        "metadata": meta,
    }


def retraction_row(item_id: str, group_id: str, retracted_at: float, kind: str = "pair") -> Row:
    """``pair_id`` names the retracted pair, or KTO row when ``kind`` is ``kto``."""
    return {"pair_id": item_id, "kind": kind, "group_id": group_id, "retracted_at": retracted_at}


ROW_BUILDERS: dict[str, Callable[[Row], Row]] = {
    "trl": trl_row,
    "trl-chat": trl_chat_row,
    "openai": openai_row,
    "kto": kto_row,
}


# A pair or KTO item as a whole row in TRL's standard (``trl``) and ``kto`` formats, which are
# the default formats: what a stored record joins to (refs.py; before layout 8 records were
# stored so), so those files get these bytes as they are. The other formats are built from the
# record the row expands back to (``expand_pair``).


def stored_pair(record: Row) -> bytes:
    """A pair record's whole row: its ``trl`` row, as JSON."""
    return orjson.dumps(trl_row(record))


def stored_kto(record: Row) -> bytes:
    """A KTO record's whole row: its ``kto`` row, as JSON."""
    return orjson.dumps(kto_row(record))


def expand_pair(row: Row) -> Row:
    """The pair record a stored ``trl`` row was made from (what every format is built from)."""
    meta = orjson.loads(row["metadata"])
    return {
        "id": meta["pair_id"],
        "group_id": meta["group_id"],
        "prompt": row["prompt"] if meta.get("messages") is None else None,
        "system": meta.get("system"),
        "messages": meta.get("messages"),
        "chosen": row["chosen"],
        "rejected": row["rejected"],
        "paired_at": meta.get("paired_at"),
        "metadata": row["metadata"],
    }


def split_of(group_id: str, test_ratio: float) -> str:
    """``train`` or ``test`` for a prompt group: a fixed function of its id, so a group never
    moves between splits from one export to the next, and no prompt is in both."""
    if test_ratio <= 0:
        return "train"
    position = int(hashlib.sha256(group_id.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if position < test_ratio else "train"
