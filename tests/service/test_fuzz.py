"""No input produces a 500: generated bodies against the real app and a real Redis."""

import collections
import gzip
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import auth, make_key

FIELDS = [
    "type",
    "event_id",
    "timestamp",
    "response_id",
    "prompt",
    "messages",
    "system",
    "response",
    "model",
    "prompt_id",
    "user_id",
    "session_id",
    "metadata",
    "value",
    "scale",
    "text",
]
TYPES = ["response", "like", "dislike", "rating", "comment", "correction", "other"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(TYPES),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
events = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)
bodies = st.one_of(
    st.fixed_dictionaries({"events": st.lists(st.one_of(events, json_values), max_size=5)}),
    events,
    json_values,
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def check(resp):
    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.is_json


@FUZZ
@given(body=bodies, path=st.sampled_from(["/v1/events", "/v1/responses", "/v1/feedback", "/v1/exports"]))
def test_generated_json_bodies_never_fail_the_server(client, conn, body, path):
    key = make_key(conn, "fuzz")
    check(client.post(path, data=json.dumps(body, allow_nan=True), headers=auth(key)))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_fail_the_server(client, conn, raw):
    key = make_key(conn, "fuzz")
    check(client.post("/v1/events", data=raw, headers=auth(key)))
    check(client.post("/v1/events", data=raw, headers={**auth(key), "Content-Encoding": "gzip"}))


# A valid batch to mutate: random bytes alone almost never get past the JSON parser, a valid
# body with a few bytes changed reaches validation, the script and the per-event answers.
VALID = json.dumps(
    {
        "events": [
            {"type": "response", "response_id": "r1", "prompt": "Q?", "response": "A", "model": "m"},
            {"type": "like", "response_id": "r1", "user_id": "u1"},
            {"type": "rating", "response_id": "r1", "value": 4, "scale": 5},
            {"type": "comparison", "response_id": "r1", "other_response_id": "r2", "choice": "a"},
        ]
    }
).encode()
edits = st.lists(
    st.tuples(st.sampled_from(["flip", "insert", "delete"]), st.integers(0, len(VALID) - 1), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, changes) -> bytes:
    out = bytearray(data)
    for kind, at, byte in changes:
        at %= max(1, len(out))
        if kind == "flip" and out:
            out[at] = byte
        elif kind == "insert":
            out.insert(at, byte)
        elif out:
            del out[at]
    return bytes(out)


def post_mutated(client, key, changes, gzipped):
    body = mutate(VALID, changes)
    headers = {**auth(key), "Content-Type": "application/json"}
    if gzipped:
        body, headers = gzip.compress(body), {**headers, "Content-Encoding": "gzip"}
    resp = client.post("/v1/events", data=body, headers=headers)
    check(resp)
    return resp


@FUZZ
@given(changes=edits, gzipped=st.booleans())
def test_valid_bodies_with_bytes_changed_never_fail_the_server(client, conn, changes, gzipped):
    post_mutated(client, make_key(conn, "fuzz"), changes, gzipped)


def test_bytes_changed_in_a_valid_body_reach_past_the_parser(client, key):
    """What the property above sends: most mutated bodies still parse, and are answered event by
    event (stored, or refused with a field's code), not only with invalid_json."""
    rng = random.Random(7)
    outcomes = collections.Counter()
    for _ in range(300):
        changes = [(rng.choice(["flip", "insert", "delete"]), rng.randrange(len(VALID)), rng.randrange(256))]
        resp = post_mutated(client, key, changes, gzipped=rng.random() < 0.5)
        data = resp.get_json()
        if "results" in data:
            outcomes.update(r["status"] if r["status"] != "rejected" else r["error"]["code"] for r in data["results"])
        else:
            outcomes[data["error"]["code"]] += 1
    past_the_parser = sum(n for code, n in outcomes.items() if code != "invalid_json")
    assert past_the_parser > 100, outcomes
    assert outcomes["accepted"] + outcomes["duplicate"] > 0 and outcomes["invalid_json"] > 0, outcomes
    assert {"unknown_field", "unknown_event_type", "wrong_type", "invalid_field"} & outcomes.keys(), outcomes


def test_lone_surrogates_and_deep_nesting_are_handled(client, key):
    body = '{"type": "response", "prompt": "\\ud800 hi", "response": "\\udfff", "user_id": "\\ud83d"}'
    check(client.post("/v1/responses", data=body, headers=auth(key)))
    check(client.post("/v1/events", data="[" * 100_000, headers=auth(key)))
