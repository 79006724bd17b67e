"""What the stored values hold, and the one reader of each: a response hash, its votes, ratings
and comments (written by the ingest script), and the entries of a project's pair log.

``keys.py`` names the keys; this module reads what is under them. docs/redis-keys.md shows both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from . import keys

# Fields of a response hash that hold JSON, decoded when read (``dims``, the response's stats
# dimensions, is JSON too, but only the ingest script reads it).
_JSON_FIELDS = ("messages", "metadata")
# A pair log entry: what changed (an op), the pair or KTO item, and its prompt group.
PAIR_LOG_FIELDS = (b"op", b"pair", b"group")
PAIR_ADD, PAIR_RETRACT, KTO_LABEL, KTO_UNLABEL = "add", "retract", "label", "unlabel"


def votes_by_user(raw: dict[str, str]) -> dict[str, int]:
    """A votes hash (user -> ``"1|<hour>"`` or ``"-1|<hour>"``) as text: user -> +1 / -1."""
    return {user: int(v.split("|", 1)[0]) for user, v in raw.items()}


def ratings_by_user(raw: dict[str, str]) -> dict[str, tuple[int, int]]:
    """A ratings hash (user -> ``"<value>|<scale>|<hour>"``) as text: user -> (value, scale)."""
    out = {}
    for user, v in raw.items():
        value, scale, _hour = v.split("|", 2)
        out[user] = (int(value), int(scale))
    return out


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


def parse_comment(raw: bytes) -> dict[str, Any]:
    """A stored comment: ``{user, text, ts, response_id}``."""
    return json.loads(raw)


def parse_messages(raw: bytes) -> list[dict[str, Any]]:
    """A response's stored ``messages`` field."""
    return json.loads(raw)


def parse_response(raw: dict[bytes, bytes], json_fields: tuple[str, ...] = _JSON_FIELDS) -> dict[str, Any] | None:
    """A response hash as text fields, its JSON fields decoded and ``ts`` a float; None if empty
    (the response expired or never existed). Fields: ``group``, ``response``, ``model``, ``ts``,
    ``hour``, ``kdims`` (JSON text: its counted metadata values, if any; ``dims``, all its stats
    dimensions, and ``id`` before layout 9) and, when given, ``prompt``, ``messages``, ``system``,
    ``prompt_id``, ``user_id``, ``session_id``, ``metadata``, ``correction`` (+ ``correction_user``,
    ``_ts``)."""
    if not raw:
        return None
    out: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for name in json_fields:
        if name in out:
            out[name] = json.loads(out[name])
    out["ts"] = float(out.get("ts", 0))
    return out


@dataclass(frozen=True)
class ResponseWithFeedback:
    """A stored response with its current feedback."""

    response: dict[str, Any]  # parse_response's fields
    votes_by_user: dict[str, int]  # user -> +1 / -1
    ratings_by_user: dict[str, tuple[int, int]]  # user -> (value, scale)
    comments: list[dict[str, Any]]

    @property
    def votes(self) -> tuple[int, ...]:
        """+1 / -1 per user, in user order."""
        return tuple(self.votes_by_user[u] for u in sorted(self.votes_by_user))

    @property
    def ratings(self) -> tuple[tuple[int, int], ...]:
        """(value, scale) per user, in user order."""
        return tuple(self.ratings_by_user[u] for u in sorted(self.ratings_by_user))


VOTE = "v:"  # + user: a field of a response's hash holding that user's vote, "1|<hour>" or "-1|<hour>"
_VOTE = VOTE.encode()


def split_votes(raw: dict[bytes, bytes]) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """A response hash (HGETALL) as (its fields, its votes: user -> value)."""
    fields = {k: v for k, v in raw.items() if not k.startswith(_VOTE)}
    return fields, {k[2:]: v for k, v in raw.items() if k.startswith(_VOTE)}


def read_responses(
    conn: redis.Redis, pk: keys.ProjectKeys, response_ids: list[str], json_fields: tuple[str, ...] = _JSON_FIELDS
) -> list[ResponseWithFeedback | None]:
    """Each response with its feedback, in one round trip; None for one that is gone.
    ``json_fields`` are decoded (pass fewer to leave others as text)."""
    pipe = conn.pipeline(transaction=False)
    for rid in response_ids:
        pipe.hgetall(pk.response(rid))
        pipe.hgetall(pk.ratings(rid))
        pipe.lrange(pk.comments(rid), 0, -1)
    rows = pipe.execute()
    out: list[ResponseWithFeedback | None] = []
    for i in range(len(response_ids)):
        raw, ratings, comments = rows[3 * i : 3 * i + 3]
        resp, votes = split_votes(raw)
        parsed = parse_response(resp, json_fields)
        out.append(
            None
            if parsed is None
            else ResponseWithFeedback(
                parsed,
                votes_by_user(_decoded(votes)),
                ratings_by_user(_decoded(ratings)),
                list(map(parse_comment, comments)),
            )
        )
    return out


# KEYS[1] the prefix of the project's response hashes; ARGV[1] how many fields, then their names,
# then response ids. Returns, for each id in turn, its fields (nil where absent): one command
# however many responses, so a batch costs Redis a hash lookup each and the client one reply.
_READ_RESPONSE_FIELDS = """
local width = tonumber(ARGV[1])
local names = {}
for j = 1, width do names[j] = ARGV[1 + j] end
local out = {}
for i = width + 2, #ARGV do
  local v = redis.call('HMGET', KEYS[1] .. ARGV[i], unpack(names))
  for j = 1, width do out[#out + 1] = v[j] end
end
return out
"""
# Responses read per script call: Redis is busy with one call for a few milliseconds.
RESPONSES_PER_CALL = 1000
ResponseFields = dict[bytes, list[bytes | None]]  # response id -> its fields as stored, in the order asked


def response_field_reads(pk: keys.ProjectKeys, response_ids: list[bytes], names: tuple[str, ...]) -> list[tuple]:
    """The commands that read the named fields of each response (for a pipeline or a raw link)."""
    head = ("EVAL", _READ_RESPONSE_FIELDS, 1, pk.response(""), len(names), *names)
    step = RESPONSES_PER_CALL
    return [(*head, *response_ids[i : i + step]) for i in range(0, len(response_ids), step)]


def response_fields(response_ids: list[bytes], replies: list[list[bytes | None]], width: int) -> ResponseFields:
    """Response id -> its ``width`` fields, from the replies of ``response_field_reads`` (a
    response without its first field, one that is gone, is left out)."""
    flat = [value for reply in replies for value in reply] if len(replies) != 1 else replies[0]
    return {
        rid: flat[at : at + width]
        for rid, at in zip(response_ids, range(0, width * len(response_ids), width), strict=True)
        if flat[at] is not None
    }


def read_response_fields(
    conn: redis.Redis, pk: keys.ProjectKeys, response_ids: list[bytes], names: tuple[str, ...]
) -> ResponseFields:
    """The named fields of each response (``response_fields``), in one round trip."""
    if not response_ids:
        return {}
    pipe = conn.pipeline(transaction=False)
    for command in response_field_reads(pk, response_ids, names):
        pipe.execute_command(*command)
    return response_fields(response_ids, pipe.execute(), len(names))


def parse_record(raw: bytes) -> dict[str, Any]:
    """A stored pair or KTO item (``pair_records``, ``kto_records``): its ``trl`` or ``kto`` dataset
    row, as the workers' formats.py builds it, with the provenance as a JSON string in ``metadata``."""
    return orjson.loads(raw)


def record_ids(row: dict[str, Any]) -> tuple[str, str]:
    """(item id, group id) of a stored pair or KTO row, from its provenance."""
    meta = orjson.loads(row["metadata"])
    return meta.get("pair_id") or meta["item_id"], meta["group_id"]


def stream_id(text: str) -> tuple[int, int]:
    """A Redis stream entry id (``"1700000000000-3"``) as (milliseconds, sequence), to compare."""
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def pair_log_entry(op: str, item_id: str, group_id: str) -> dict[str, str]:
    """The fields of one pair log entry (``keys.ProjectKeys.pair_log``)."""
    return {"op": op, "pair": item_id, "group": group_id}


def parse_pair_log(reply: list[Any]) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """(entry id, op, item id, group id) from a raw XRANGE reply of the pair log."""
    names = list(PAIR_LOG_FIELDS)
    if all(f[::2] == names for _, f in reply):  # as pair_log_entry writes them: positions suffice
        return [(entry_id, f[1], f[3], f[5]) for entry_id, f in reply]
    out = []
    for entry_id, fields in reply:
        named = dict(zip(fields[::2], fields[1::2], strict=True))
        out.append((entry_id, named[b"op"], named[b"pair"], named[b"group"]))
    return out


# The source marker of a stored judgement -> its source.
_JUDGEMENT_SOURCES = {"c": "comparison", "r": "ranking", "j": "judge"}
# The user a judge's verdicts are recorded as: this prefix and the judge's model.
JUDGE_USER_PREFIX = "judge:"


def parse_judgement(field: str, value: str) -> tuple[tuple[str, str, str, str, str], str | None]:
    """One judgement (a field and value of ``keys.ProjectKeys.judgements``) as (lower id, higher
    id, user, verdict, source), and an LLM judge's pick in each order when recorded (``AB``...)."""
    lo, hi, user = field.split("|", 2)
    parts = value.split("|")
    source = _JUDGEMENT_SOURCES.get(parts[2] if len(parts) > 2 else "c", "comparison")
    picks = parts[3] if source == "judge" and len(parts) > 3 and parts[3] else None
    return (lo, hi, user, parts[0], source), picks


# An LLM judge's picks in its two calls, first order then second (A the lower id, B the higher, T a tie).
JUDGE_PICKS = frozenset(("AB", "BA", "AA", "BB", "AT", "TA", "BT", "TB", "TT"))


def judgements_with_picks(raw: dict[str, str]) -> tuple[list[tuple[str, str, str, str, str]], list[str]]:
    """A prompt group's judgements (as ``parse_judgements``), and its LLM judge's picks in both
    orders for each call that recorded them."""
    out, picks = [], []
    for name, value in sorted(raw.items()):
        judgement, pick = parse_judgement(name, value)
        out.append(judgement)
        if pick in JUDGE_PICKS:
            picks.append(pick)
    return sorted(out), picks


def parse_judgements(raw: dict[bytes, bytes]) -> list[tuple[str, str, str, str, str]]:
    """A prompt group's judgements (``keys.ProjectKeys.judgements``) as (lower id, higher id,
    user, verdict, source) sorted; verdict ``<`` the lower id better, ``>`` the higher, ``=`` a
    tie, ``x`` both bad; source ``comparison``, ``ranking`` or ``judge`` (an LLM's verdict, its
    user ``judge:<model>``)."""
    return judgements_with_picks(_decoded(raw))[0]
