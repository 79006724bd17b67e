"""/openapi.json describes the API, and the API keeps to it: schemathesis generates requests from
the document and checks every answer (no 500, documented status, body matching its schema)."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import METRICS_TOKEN, auth

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_answer_matches_the_document(app, key):
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers=auth(key), checks=CHECKS)

        conforms()


def test_the_document_covers_every_route(app):
    spec = app.test_client().get("/openapi.json").get_json()
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static", "openapi.openapi_json"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented


def test_docs_page_renders_without_external_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200 and b"/openapi.json" in page.data
    assert b"http://" not in page.data and b"https://" not in page.data


def seeded(client, key):
    """Real ids for the operations that name one: two answers to a prompt, votes, a comment, an export."""
    events = [
        {"type": "response", "response_id": "r1", "prompt": "Q?", "response": "A", "model": "m1"},
        {"type": "response", "response_id": "r2", "prompt": "Q?", "response": "B", "model": "m2"},
        {"type": "like", "response_id": "r1", "user_id": "u1"},
        {"type": "dislike", "response_id": "r2", "user_id": "u1"},
        {"type": "comment", "response_id": "r2", "user_id": "u1", "text": "wrong"},
    ]
    assert client.post("/v1/events", json={"events": events}, headers=auth(key)).status_code == 200
    group_id = client.get("/v1/responses/r1", headers=auth(key)).get_json()["group_id"]
    export_id = client.post("/v1/exports", json={}, headers=auth(key)).get_json()["id"]
    return group_id, export_id


def test_every_operation_answers_its_documented_success(app, key):
    """Each operation once with real ids and a valid body: a 2xx, whose body matches its schema."""
    client = app.test_client()
    group_id, export_id = seeded(client, key)
    erasure_id = client.post("/v1/erasures", json={"user_id": "nobody"}, headers=auth(key)).get_json()["id"]
    calls = {
        ("POST", "/v1/events"): {"body": {"events": [{"type": "like", "response_id": "r1", "user_id": "u2"}]}},
        ("POST", "/v1/responses"): {"body": {"type": "response", "prompt": "Q2?", "response": "C"}},
        ("POST", "/v1/feedback"): {"body": {"type": "dislike", "response_id": "r1", "user_id": "u3"}},
        ("GET", "/v1/responses/{response_id}"): {"path_parameters": {"response_id": "r1"}},
        ("GET", "/v1/prompts/{group_id}"): {"path_parameters": {"group_id": group_id}},
        ("GET", "/v1/exports/{export_id}"): {"path_parameters": {"export_id": export_id}},
        ("POST", "/v1/exports"): {"body": {"mode": "snapshot"}},
        ("PATCH", "/v1/project"): {"body": {"parquet": True}},
        ("POST", "/v1/erasures"): {"body": {"response_ids": ["no-such-response"]}},
        ("GET", "/v1/erasures/{erasure_id}"): {"path_parameters": {"erasure_id": erasure_id}},
        ("GET", "/v1/voters"): {"query": {"suspect": "true"}},
    }
    api = schemathesis.openapi.from_wsgi("/openapi.json", app)
    answered = {}
    for operation in (result.ok() for result in api.get_all_operations()):
        name = (operation.method.upper(), operation.path)
        headers = auth(METRICS_TOKEN) if operation.path == "/metrics" else auth(key)
        response = operation.Case(**calls.get(name, {})).call_and_validate(headers=headers, checks=CHECKS)
        answered[name] = response.status_code
    assert set(calls) <= answered.keys()
    assert answered.pop(("GET", "/")) == 302  # the root sends a person to the dashboard
    assert {name: status for name, status in answered.items() if not 200 <= status < 300} == {}
