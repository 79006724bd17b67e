"""No input produces a 500: generated bodies against the real app and a real Redis."""

import json

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


def test_lone_surrogates_and_deep_nesting_are_handled(client, key):
    body = '{"type": "response", "prompt": "\\ud800 hi", "response": "\\udfff", "user_id": "\\ud83d"}'
    check(client.post("/v1/responses", data=body, headers=auth(key)))
    check(client.post("/v1/events", data="[" * 100_000, headers=auth(key)))
