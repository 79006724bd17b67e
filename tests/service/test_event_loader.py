"""Loading events: through the schema's fields gives exactly what the schema's own ``load`` gives,
data or errors, event by event and in batches."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from service import event_loader
from service.event_schemas import batch_schema
from tests.service.test_fuzz import FIELDS, json_values


def one_by_one(raw):
    try:
        return event_loader.load_event(raw)
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
    batch = event_loader.load_events(raws)
    assert [isinstance(x, dict) for x in batch] == [True, False, True, True, True, False, False, False, True] + [
        False
    ] * 3
    for raw, got in zip(raws, batch, strict=True):
        assert same(got, by_schema_load(raw)), raw
    assert batch[3]["response"] == "yo" and batch[3]["messages"] == [{"role": "user", "content": "hi"}]
    assert "colour" in batch[7].messages


def test_metadata_is_bounded_in_keys_and_key_length():
    base = {"type": "response", "prompt": "Q", "response": "A"}
    assert event_loader.load_event({**base, "metadata": {f"k{i}": i for i in range(50)}})["metadata"]["k49"] == 49
    with pytest.raises(ValidationError) as exc:
        event_loader.load_event({**base, "metadata": {f"k{i}": i for i in range(51)}})
    assert exc.value.messages == {"metadata": ["at most 50 keys"]}
    with pytest.raises(ValidationError) as exc:
        event_loader.load_event({**base, "metadata": {"k" * 201: 1}})
    assert "200 characters" in exc.value.messages["metadata"][0]
    with pytest.raises(ValidationError) as exc:
        event_loader.load_event({**base, "metadata": ["a"]})
    assert "metadata" in exc.value.messages


events = st.dictionaries(
    st.sampled_from(FIELDS),
    st.one_of(json_values, st.sampled_from(["response", "like", "rating", "comment", "r1", "Q?"])),
    max_size=6,
)


def by_schema_load(raw):
    """The reference: the event's full marshmallow schema, ``Schema.load`` itself."""
    try:
        cls = event_loader._event_class(raw)
        return event_loader._final_turn_is_the_response(event_loader._FULL[cls].load(raw))
    except ValidationError as exc:
        return exc


texts = st.one_of(st.text(max_size=12), st.sampled_from(["", "r1", "Q?", "x" * 201, "not ok!"]))
numbers = st.one_of(
    st.integers(-5, 12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([time.time(), int(time.time()), str(time.time()), "soon", True, False, None, 1e12]),
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "robot"]), "content": texts},
        optional={"name": texts, "extra": texts},
    ),
    max_size=4,
)
values = {
    "type": st.sampled_from(["response", "like", "dislike", "rating", "comment", "correction"]),
    "event_id": texts,
    "timestamp": numbers,
    "response_id": texts,
    "prompt": texts,
    "messages": messages,
    "system": texts,
    "response": texts,
    "model": texts,
    "prompt_id": texts,
    "user_id": texts,
    "session_id": texts,
    "metadata": st.dictionaries(texts, json_values, max_size=3),
    "value": numbers,
    "scale": numbers,
    "text": texts,
}
# Valid events of each kind, then some keys changed to values of their own kind (or dropped):
# many stay valid, so both the accepting and the refusing paths are compared.
valid_events = [
    {"type": "response", "prompt": "Q?", "response": "A", "model": "m1", "metadata": {"route": "chat"}},
    {"type": "response", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    {"type": "response", "messages": [{"role": "user", "content": "hi"}], "response": "yo", "response_id": "r1"},
    {"type": "like", "response_id": "r1", "user_id": "u1"},
    {"type": "dislike", "response_id": "r1", "event_id": "e1", "timestamp": time.time()},
    {"type": "rating", "response_id": "r1", "value": 3, "scale": 5},
    {"type": "comment", "response_id": "r1", "text": "nice"},
    {"type": "correction", "response_id": "r1", "text": "It is 4."},
]
changes = st.lists(st.sampled_from(FIELDS).flatmap(lambda k: st.tuples(st.just(k), values[k])), max_size=2)
likely_events = st.builds(
    lambda base, changed, dropped: {k: v for k, v in {**base, **dict(changed)}.items() if k not in dropped},
    st.sampled_from(valid_events),
    changes,
    st.sets(st.sampled_from(FIELDS), max_size=1),
)


def test_loading_through_the_fields_gives_what_schema_load_gives():
    accepted: list[bool] = []

    @settings(max_examples=1500, deadline=None, database=None)
    @given(raw=st.one_of(likely_events, events, json_values))
    def agree(raw):
        got = one_by_one(raw)
        expected = by_schema_load(raw)
        assert same(got, expected), (raw, got, expected)
        accepted.append(isinstance(got, dict))

    agree()
    # The comparison means something only if both the accepting and the refusing paths ran often
    # (about one event in ten is valid: some 140 of the 1,500).
    assert sum(accepted) >= 50 and accepted.count(False) >= 50, (sum(accepted), len(accepted))


def by_envelope_load(raw):
    try:
        return batch_schema.load(raw)
    except ValidationError as exc:
        return exc


def test_a_batch_envelope_loads_as_its_schema_loads_it():
    accepted: list[bool] = []
    envelopes = st.fixed_dictionaries(
        {"events": st.one_of(st.lists(st.one_of(st.just({}), json_values), max_size=3), json_values)},
        optional={"sent_at": numbers, "extra": texts},
    )

    @settings(max_examples=600, deadline=None, database=None)
    @given(raw=st.one_of(envelopes, st.dictionaries(st.sampled_from(["events", "sent_at"]), json_values)))
    def agree(raw):
        try:
            got = event_loader.load_envelope(batch_schema, raw)
        except ValidationError as exc:
            got = exc
        expected = by_envelope_load(raw)
        assert same(got, expected), (raw, got, expected)
        accepted.append(isinstance(got, dict))

    agree()
    assert sum(accepted) >= 50 and accepted.count(False) >= 50, (sum(accepted), len(accepted))


def test_inline_checks_refuse_what_the_fields_refuse():
    """Values at the edges of the inline checks go to the field, which refuses them."""
    base = {"type": "like", "response_id": "r1"}
    for bad in ({"response_id": "r1\n"}, {"response_id": "x" * 129}, {"user_id": ""}, {"timestamp": float("inf")}):
        raw = {**base, **bad}
        assert isinstance(one_by_one(raw), ValidationError), raw
        assert same(one_by_one(raw), by_schema_load(raw)), raw
    assert one_by_one({**base, "timestamp": 1_000_000_000})["timestamp"] == 1_000_000_000.0  # an int becomes a float
