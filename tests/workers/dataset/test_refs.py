"""Records that refer to their responses join back to exactly the rows the copying form stored."""

import json

import orjson
import pytest

from workers.dataset import refs
from workers.dataset.formats import stored_kto as copied_kto
from workers.dataset.formats import stored_pair as copied_pair
from workers.pairing.rules import (
    ResponseLabels,
    kto_items,
    kto_record,
    make_pairs,
    pair_record,
    stored_kto,
    stored_pair,
)

CHAT = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "hi"}, {"content": "Q?", "role": "user"}]
PROMPTS = {
    "text": {"prompt": "What is 2+2?", "system": None, "messages": None},
    "text with a system prompt": {"prompt": 'Q \u00e9 "quoted"\n', "system": "Be brief.", "messages": None},
    "chat": {"prompt": None, "system": None, "messages": CHAT},
    "chat with a system prompt": {"prompt": None, "system": "sys", "messages": CHAT},
    "empty system prompt": {"prompt": "Q", "system": "", "messages": None},
}


def labels() -> list[ResponseLabels]:
    return [
        ResponseLabels("good", "Four.", model="m1", votes=(1, 1), comments=("nice",), comment_count=1),
        ResponseLabels("bad", 'Five "or" six', model="m2", votes=(-1,), ratings=((1, 5),)),
        ResponseLabels("meh", "Maybe four", votes=(1, -1), correction="It is 4."),
    ]


def fields(prompt: dict, text: str, correction: str | None = None) -> list:
    """A response hash's fields as the join reads them (refs.RESPONSE_FIELDS, as the ingest
    script stores them)."""
    found = {
        "response": text,
        "correction": correction,
        "prompt": prompt["prompt"],
        "messages": None if prompt["messages"] is None else json.dumps(prompt["messages"]),
        "system": prompt["system"],
    }
    return [None if found[name] is None else found[name].encode() for name in refs.RESPONSE_FIELDS]


@pytest.mark.parametrize("shape", sorted(PROMPTS))
def test_a_joined_pair_or_kto_item_is_the_row_the_copying_form_stored(shape):
    prompt = PROMPTS[shape]
    found = labels()
    responses = {r.response_id.encode(): fields(prompt, r.text, r.correction) for r in found}
    pairs = make_pairs("g", found, 10)
    items = kto_items("g", found)
    # good over bad, the correction over what it corrects and over bad; good, bad, the correction, meh
    assert len(pairs) == 3 and len(items) == 4
    for pair in pairs:
        stored = stored_pair(pair, 1795700000.25)
        assert refs.is_ref(stored) and len(stored) < len(copied_pair(pair_record(pair, prompt, 1795700000.25)))
        assert refs.join(stored, responses) == copied_pair(pair_record(pair, prompt, 1795700000.25))
        assert refs.metadata(stored)["pair_id"] == pair.id and refs.metadata(stored)["messages"] is None
    for item in items:
        assert refs.join(stored_kto(item, 7.0), responses) == copied_kto(kto_record(item, prompt, 7.0))


def test_a_record_of_the_copying_form_is_read_as_it_is():
    pair = make_pairs("g", labels(), 10)[0]
    copied = copied_pair(pair_record(pair, PROMPTS["chat"], 1.0))
    assert not refs.is_ref(copied) and refs.responses_named(copied) == ()
    assert refs.join(copied, {}) == copied
    assert refs.metadata(copied) == orjson.loads(orjson.loads(copied)["metadata"])


def test_a_record_whose_response_is_gone_joins_to_nothing():
    found = labels()
    responses = {r.response_id.encode(): fields(PROMPTS["text"], r.text, r.correction) for r in found}
    pair = next(p for p in make_pairs("g", found, 10) if p.chosen.is_correction)
    stored = stored_pair(pair, 1.0)
    assert refs.responses_named(stored) == ("meh",)  # a correction over the response it corrects
    assert refs.join(stored, {}) is None
    without_correction = {**responses, b"meh": [*responses[b"meh"][:1], None, *responses[b"meh"][2:]]}
    assert refs.join(stored, without_correction) is None
    vote_pair = next(p for p in make_pairs("g", found, 10) if not p.chosen.is_correction)
    assert set(refs.responses_named(stored_pair(vote_pair, 1.0))) == {"good", "bad"}
    assert refs.join(stored_pair(vote_pair, 1.0), {b"good": responses[b"good"]}) is None


def test_a_prompt_text_that_looks_like_a_placeholder_stays_where_it_is():
    tricky = {"prompt": None, "system": ',"system":null}', "messages": [{"role": "user", "content": '"messages":null'}]}
    found = [ResponseLabels("a", ',"messages":null,', votes=(1,)), ResponseLabels("b", '"system":null}', votes=(-1,))]
    responses = {r.response_id.encode(): fields(tricky, r.text) for r in found}
    (pair,) = make_pairs("g", found, 10)
    assert refs.join(stored_pair(pair, 1.0), responses) == copied_pair(pair_record(pair, tricky, 1.0))


def test_a_stored_record_is_deflated_to_little_more_than_its_ids():
    found = [ResponseLabels("a" * 32, "A", "gpt-4o-mini", votes=(1,)), ResponseLabels("b" * 32, "B", votes=(-1,))]
    (pair,) = make_pairs("c" * 32, found, 10)
    stored = stored_pair(pair, 1795700000.5)
    line = refs.unpack(stored)
    assert stored[:1] == refs.PACKED and line.startswith(b"=" + b"a" * 32 + b" " + b"b" * 32 + b" {")
    assert len(line) > 500 and len(stored) < 140, (len(line), len(stored))
    assert refs.split(stored) == refs.split(line) and refs.unpack(line) == line
    (item, _) = kto_items("c" * 32, found)
    assert len(refs.unpack(stored_kto(item, 1.0))) > 300 and len(stored_kto(item, 1.0)) < 120
