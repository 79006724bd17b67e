"""Dataset record formats: a stored pair record in, one dataset row out. Pure functions.

``trl``: TRL's standard preference format, ``prompt``/``chosen``/``rejected`` strings
(https://huggingface.co/docs/trl/dataset_formats). Provenance goes in one ``metadata`` column,
which trainers ignore (TRL's DPOTrainer reads only the columns it knows).
"""

from __future__ import annotations

from typing import Any

FORMATS = ("trl",)


def prompt_text(record: dict[str, Any]) -> str:
    """The prompt as one string: the text prompt, or the chat's final user turn."""
    if record.get("prompt") is not None:
        return record["prompt"]
    for message in reversed(record.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def metadata(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "pair_id": record["id"],
        "group_id": record["group_id"],
        "system": record.get("system"),
        "messages": record.get("messages"),
        "chosen": record["chosen_meta"],
        "rejected": record["rejected_meta"],
        "paired_at": record["paired_at"],
    }


def trl_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt": prompt_text(record),
        "chosen": record["chosen"],
        "rejected": record["rejected"],
        "metadata": metadata(record),
    }


def retraction_row(pair_id: str, group_id: str, retracted_at: float) -> dict[str, Any]:
    return {"pair_id": pair_id, "group_id": group_id, "retracted_at": retracted_at}


ROW_BUILDERS = {"trl": trl_row}
