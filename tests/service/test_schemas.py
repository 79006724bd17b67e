"""The event schemas: a batch loaded by shape gives each event exactly what loading it alone gives."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from service import schemas
from tests.service.test_fuzz import FIELDS, json_values


def one_by_one(raw):
    try:
        return schemas.load_event(raw)
    except ValidationError as exc:
        return exc


def same(a, b):
    if isinstance(a, ValidationError) or isinstance(b, ValidationError):
        return isinstance(a, ValidationError) and isinstance(b, ValidationError) and a.messages == b.messages
    return a == b


def test_a_batch_of_shapes_with_bad_events_among_good_ones():
    now = time.time()
    raws = [
        {"type": "response", "prompt": "Q1", "response": "A1", "model": "m1"},
        {"type": "response", "prompt": "Q2", "response": "A2", "model": "m" * 500},  # same shape, too long
        {"type": "response", "prompt": "Q3", "response": "A3", "model": "m2"},
        {"type": "response", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"type": "like", "response_id": "r1", "user_id": "u1"},
        {"type": "like", "response_id": "not ok!", "user_id": "u1"},
        {"type": "rating", "response_id": "r1", "value": 9},
        {"type": "response", "prompt": "Q", "response": "A", "colour": "red"},  # undeclared key
        {"type": "comment", "response_id": "r1", "text": "nice", "timestamp": now},
        {"type": "nope"},
        ["not", "an", "object"],
        {"prompt": "no type"},
    ]
    batch = schemas.load_events(raws)
    assert [isinstance(x, dict) for x in batch] == [True, False, True, True, True, False, False, False, True] + [
        False
    ] * 3
    for raw, got in zip(raws, batch, strict=True):
        assert same(got, one_by_one(raw)), raw
    assert batch[3]["response"] == "yo" and batch[3]["messages"] == [{"role": "user", "content": "hi"}]
    assert "colour" in batch[7].messages


def test_metadata_is_bounded_in_keys_and_key_length():
    base = {"type": "response", "prompt": "Q", "response": "A"}
    assert schemas.load_event({**base, "metadata": {f"k{i}": i for i in range(50)}})["metadata"]["k49"] == 49
    with pytest.raises(ValidationError) as exc:
        schemas.load_event({**base, "metadata": {f"k{i}": i for i in range(51)}})
    assert exc.value.messages == {"metadata": ["at most 50 keys"]}
    with pytest.raises(ValidationError) as exc:
        schemas.load_event({**base, "metadata": {"k" * 201: 1}})
    assert "200 characters" in exc.value.messages["metadata"][0]
    with pytest.raises(ValidationError) as exc:
        schemas.load_event({**base, "metadata": ["a"]})
    assert "metadata" in exc.value.messages


events = st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(json_values, st.sampled_from(["response", "like", "rating", "comment", "r1", "Q?"])),
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(raws=st.lists(st.one_of(events, json_values), min_size=1, max_size=12))
def test_any_batch_loads_as_its_events_would_one_by_one(raws):
    batch = schemas.load_events(raws)
    assert len(batch) == len(raws)
    for raw, got in zip(raws, batch, strict=True):
        assert same(got, one_by_one(raw)), raw
