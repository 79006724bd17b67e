"""Identities: project names, prompt groups and deterministic ids. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Client-chosen ids end up inside Redis keys and S3 records: keep them printable and short.
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}\Z")  # \Z: "$" also matches before a final newline
# Event ids of feedback posted with a token start with this, which CLIENT_ID_RE refuses: no
# client can send one (service/ingest_api.py).
TOKEN_EVENT_PREFIX = "~"
# 128 bits of a sha256: collisions are out of reach, and keys stay short.
_ID_HEX_CHARS = 32


def new_id() -> str:
    """A fresh id: 128 random bits as 32 hex characters. Unique, not secret (ids are scoped to a
    project, and what grants access is a key or a signed token). From Python's generator, which
    every forked process reseeds: ``os.urandom`` costs a system call per id, and system calls
    are slow on virtual machines (3 per single-event request showed as 8% of a worker's time)."""
    return f"{random.getrandbits(128):032x}"


def valid_project_name(name: str) -> bool:
    return bool(PROJECT_NAME_RE.match(name))


def normalise_text(text: str) -> str:
    """Fold the differences that do not change a prompt's meaning: Unicode form and spacing."""
    if not text.isascii():  # ASCII text is in NFC already
        text = unicodedata.normalize("NFC", text)
    # str.split() splits at the same characters as the regex \s (str.isspace), and drops the ends
    return " ".join(text.split())


def short_hash(*parts: str) -> str:
    # surrogatepass: JSON may carry lone surrogates (\ud800); hash them rather than fail.
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:_ID_HEX_CHARS]


def prompt_group_id(
    *,
    prompt: str | None = None,
    messages: Sequence[dict[str, Any]] | None = None,
    system: str | None = None,
    prompt_id: str | None = None,
) -> str:
    """The prompt group of a response: its explicit ``prompt_id``, else its normalised prompt.

    Two responses share a group exactly when they answer the same question, so their feedback can
    be compared. ``messages`` is the chat form of ``prompt`` (the conversation the response
    answers).
    """
    if prompt_id:
        return short_hash("id", prompt_id)
    if messages is not None:
        turns = [[str(m.get("role", "")).lower(), normalise_text(str(m.get("content", "")))] for m in messages]
        body = json.dumps(turns, ensure_ascii=False, separators=(",", ":"))
        return short_hash("chat", normalise_text(system or ""), body)
    return short_hash("text", normalise_text(system or ""), normalise_text(prompt or ""))


def pair_id(group_id: str, chosen_key: str, rejected_key: str) -> str:
    """Deterministic pair id, so re-running pairing never creates a second copy of a pair."""
    return short_hash("pair", group_id, chosen_key, rejected_key)
