"""Dataset record formats: a stored pair record in, one dataset row out. Pure functions.

- ``trl``: TRL's standard preference format: ``prompt``, ``chosen``, ``rejected`` strings.
- ``trl-chat``: TRL's conversational preference format: ``prompt`` a message list, ``chosen`` and
  ``rejected`` one-message assistant lists.
- ``openai``: OpenAI's DPO fine-tuning JSONL: ``input.messages``, ``preferred_output``,
  ``non_preferred_output``.
- ``kto``: TRL's unpaired preference format: ``prompt``, ``completion``, ``label`` (bool), for
  every labelled response, paired or not (built from KTO items, not pairs).

TRL rows carry provenance in one ``metadata`` column (a JSON string, so every row has the same
type), which TRL's trainers do not read. OpenAI rows carry none: its file validation is strict;
the same pair in the ``trl`` files has it (joined by order within a run, or by prompt and texts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

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


def _json(value: Any) -> str:
    # orjson: the export spends much of its time encoding rows; sorted keys keep bytes stable.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def metadata(record: Row) -> str:
    return _json(
        {
            "pair_id": record["id"],
            "group_id": record["group_id"],
            "system": record.get("system"),
            "messages": record.get("messages"),
            "chosen": record["chosen_meta"],
            "rejected": record["rejected_meta"],
            "paired_at": record["paired_at"],
        }
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
    meta = _json(
        {
            "item_id": record["id"],
            "group_id": record["group_id"],
            "system": record.get("system"),
            "messages": record.get("messages"),
            "completion": record["completion_meta"],
            "labelled_at": record["labelled_at"],
        }
    )
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


def split_of(group_id: str, test_ratio: float) -> str:
    """``train`` or ``test`` for a prompt group: a fixed function of its id, so a group never
    moves between splits from one export to the next, and no prompt is in both."""
    if test_ratio <= 0:
        return "train"
    position = int(hashlib.sha256(group_id.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if position < test_ratio else "train"
