"""Archived rows back into the ingest script's input: exactly what ``prepare`` made, for every
kind of event (pure functions, no servers)."""

import copy

import pytest

from likeloop_server.batch_store import script_input
from likeloop_server.ingest import VIA_FIELD, VIA_TOKEN, prepare
from tests.support import feedback, response
from workers.archive.replay import prepared_event
from workers.archive.rows import entry_rows

EVENTS = [
    response("r1", "Paris.", "Capital of France?", model="m-1", metadata={"plan": "pro", "n": 2.5}, user_id="ann"),
    response("r2", "Lyon.", "Capital?", event_id="e-r2", system="be brief", session_id="s1", prompt_id="p1"),
    {"type": "response", "response": "made id", "messages": [{"role": "user", "content": "hi"}]},
    feedback("like", "r1", "ann", event_id="e-like"),
    feedback("dislike", "r2"),
    feedback("rating", "r1", "cy", value=4, scale=5),
    feedback("comment", "r2", "bob", text="wrong city"),
    feedback("correction", "r2", "bob", text="Paris.", timestamp=1_790_000_000.123456),
    {"type": "comparison", "response_id": "r1", "other_response_id": "r2", "choice": "tie", "user_id": "dee"},
    {"type": "ranking", "response_ids": ["r2", ["r1", "r3"]], "user_id": "eve", "event_id": "e-rank"},
]


def archived_and_back(prepared: list[dict]) -> list[dict]:
    events, _ = script_input(copy.deepcopy(prepared))
    fields = {b"e": events, b"s": ",".join(["accepted"] * len(prepared)).encode(), b"t": b"1790000100.5"}
    return [prepared_event(row) for row in entry_rows("1790000100500-0", fields)]


def comparable(ev: dict) -> dict:
    """A prepared event without what the batch sets (a response's shape index in its array)."""
    out = dict(ev)
    if "wire" in out:
        out["wire"] = out["wire"][:4] + out["wire"][5:]
    return out


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e["type"])
def test_an_archived_event_comes_back_as_prepare_made_it(event):
    original = prepare(event, now=1_790_000_100.5)
    (back,) = archived_and_back([original])
    assert comparable(back) == comparable(original)


def test_token_borne_feedback_keeps_its_credential_and_a_batch_its_order():
    token_like = {**prepare(feedback("like", "r1", "token:abc")), VIA_FIELD: VIA_TOKEN}
    batch = [prepare(e) for e in EVENTS] + [token_like]
    back = archived_and_back(batch)
    assert [comparable(b) for b in back] == [comparable(e) for e in batch]
    assert back[-1][VIA_FIELD] == VIA_TOKEN
