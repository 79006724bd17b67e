"""Redaction at ingest, through the service: set per project with PATCH /v1/project, applied to
every text field of every event before anything is stored, so no match reaches Redis, the event
archive or an export. Real Redis, real S3."""

from likeloop_server import exports, keys
from tests.support import P, auth, make_key
from tests.workers.erasure.everywhere import redis_text, s3_texts
from tests.workers.history import pair_all
from workers.archive.run import archive_project
from workers.export.run import export_project

SECRETS = {
    "email": "jane.roe@example.org",
    "phone": "+1 (415) 555-0132",
    "card": "4111 1111 1111 1111",
    "iban": "DE89370400440532013000",
    "ip": "203.0.113.77",
    "custom": "Order #98765",
}
SAY = "; ".join(SECRETS.values())


def test_every_text_field_is_redacted_before_it_is_stored(client, conn, s3, settings):
    key = make_key(conn, P)
    setting = {"redact": {"builtin": ["email", "phone", "card", "iban", "ip"], "patterns": ["(?i)order #[0-9]+"]}}
    patched = client.patch("/v1/project", json=setting, headers=auth(key))
    assert patched.status_code == 200 and patched.get_json()["redact"] == setting["redact"], patched.get_json()
    events = [
        {"type": "response", "response_id": "r1", "prompt": f"Q {SAY}", "system": f"S {SAY}", "response": f"A {SAY}",
         "metadata": {"note": SAY, "deep": [SAY]}, "user_id": "ann"},
        {"type": "response", "response_id": "r2", "messages": [{"role": "user", "content": f"Q {SAY}"}],
         "response": f"B {SAY}", "user_id": "bob"},
        {"type": "response", "response_id": "r3", "messages": [{"role": "user", "content": f"Q {SAY}"}],
         "response": "C", "user_id": "bob"},
        {"type": "like", "response_id": "r2", "user_id": "cy"},
        {"type": "dislike", "response_id": "r3", "user_id": "cy"},
        {"type": "comment", "response_id": "r2", "user_id": "cy", "text": f"comment {SAY}"},
        {"type": "correction", "response_id": "r3", "user_id": "cy", "text": f"better {SAY}"},
    ]  # fmt: skip
    answer = client.post("/v1/events", json={"events": events}, headers=auth(key))
    assert answer.status_code == 200, answer.get_json()
    single = client.post("/v1/feedback", json={"type": "comment", "response_id": "r1", "text": SAY}, headers=auth(key))
    assert single.status_code == 201
    pair_all(conn, settings)
    export_project(conn, s3, settings, P, exports.new_export_id(), "incremental", ("trl", "openai", "kto"), True)
    archive_project(conn, s3, settings, P)

    texts = [("redis", redis_text(conn)), *s3_texts(s3, settings)]
    leaks = [(where, kind) for where, text in texts for kind, secret in SECRETS.items() if secret in text]
    assert leaks == []
    stored = conn.hget(keys.ProjectKeys(P).response("r1"), "prompt").decode()
    assert stored == "Q [email]; [phone]; [card]; [iban]; [ip]; [redacted]", stored
    assert any("[email]" in text for where, text in texts if where.endswith(".parquet"))  # the archive has them


def test_a_bad_pattern_is_refused_when_set(client, conn):
    key = make_key(conn, P)
    answer = client.patch("/v1/project", json={"redact": {"patterns": ["(a)\\1"]}}, headers=auth(key))
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error["field"] == "redact.patterns[0]" and "backreferences" in error["message"]
    turned_off = client.patch("/v1/project", json={"redact": {}}, headers=auth(key)).get_json()
    assert turned_off["redact"] == {"builtin": [], "patterns": []}
