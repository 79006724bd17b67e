"""The SDK's ``redact`` hook against the real service: what it returns is what is stored; when it
raises, the event is dropped, counted and reported, and nothing of it reaches the service."""

import re

import likeloop

from likeloop_server import keys
from tests.support import P, make_key
from tests.workers.erasure.everywhere import redis_text

EMAIL = re.compile(r"\S+@\S+")


def test_redact_runs_on_every_text_before_the_event_is_queued(live_service, conn):
    key = make_key(conn, P)
    ll = likeloop.Client(api_key=key, url=live_service.url, sync=True, redact=lambda t: EMAIL.sub("<email>", t))
    rid = ll.log(
        prompt="from a@b.io",
        response="to c@d.io",
        system="sys e@f.io",
        user_id="u1",
    )
    chat = ll.log(messages=[{"role": "user", "content": "me g@h.io"}], response="ok")
    assert ll.comment(rid, "mail i@j.io") and ll.correct(rid, "write k@l.io")
    assert ll.flush(5) and ll.stats()["sent"] == 4
    pk = keys.ProjectKeys(P)
    stored = conn.hgetall(pk.response(rid))
    assert stored[b"prompt"] == b"from <email>" and stored[b"response"] == b"to <email>"
    assert stored[b"system"] == b"sys <email>" and stored[b"correction"] == b"write <email>"
    assert b"<email>" in conn.hget(pk.response(chat), "messages")
    assert "@" not in redis_text(conn).replace("@example", "")


def test_a_redact_that_raises_drops_the_event_and_says_so(live_service, conn):
    key = make_key(conn, P)
    errors = []

    def fussy(text: str) -> str:
        if "SECRETIVE" in text:
            raise ValueError("cannot redact this")
        return text

    ll = likeloop.Client(api_key=key, url=live_service.url, sync=True, redact=fussy, on_error=errors.append)
    assert ll.log(prompt="a SECRETIVE prompt", response="A") is None
    kept = ll.log(prompt="plain", response="B")
    assert ll.comment(kept, "my SECRETIVE comment") is False
    assert ll.flush(5)
    assert ll.stats()["dropped_redaction"] == 2 and ll.stats()["sent"] == 1
    assert [type(e).__name__ for e in errors] == ["RedactionError", "RedactionError"]
    assert "SECRETIVE" not in redis_text(conn)
    returns_none = likeloop.Client(api_key=key, url=live_service.url, sync=True, redact=lambda t: None)
    assert returns_none.log(prompt="x", response="y") is None and returns_none.stats()["dropped_redaction"] == 1
