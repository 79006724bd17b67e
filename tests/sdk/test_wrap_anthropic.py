"""``likeloop.wrap_anthropic``: the real ``anthropic`` client (sync and async, plain and
streamed) against a local server that speaks its Messages API, the real LikeLoop service behind
the SDK: each answer is logged under ``message.id`` and takes feedback by it."""

import asyncio
import json

import anthropic
import likeloop
import pytest

from tests.sdk.wrapping import PK, stored
from tests.support import vote_of


def test_messages_plain_and_streamed_are_logged_under_the_message_id(provider, ll, conn):
    client = likeloop.wrap_anthropic(anthropic.Anthropic(base_url=provider.root, api_key="k"), ll)
    message = client.messages.create(
        model="claude-x", max_tokens=50, system="Be brief.", messages=[{"role": "user", "content": "Why?"}],
        likeloop={"user_id": "u1"},
    )  # fmt: skip
    assert isinstance(message, anthropic.types.Message) and message.content[0].text == "answer 0 to: Why?"
    assert "likeloop" not in provider.requests[-1]["body"]
    stream = client.messages.create(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": [{"type": "text", "text": "How?"}]}],
        stream=True,
    )  # fmt: skip
    events = list(stream)
    assert ll.like(message.id, user_id="u2") and ll.flush(5)
    row = stored(conn, message.id)
    assert row["response"] == "answer 0 to: Why?" and row["system"] == "Be brief." and row["user_id"] == "u1"
    assert row["model"] == "claude-x" and vote_of(conn, PK, message.id, "u2") is not None
    started = events[0].message.id
    assert stored(conn, started)["response"] == "answer 0 to: How?"
    assert json.loads(stored(conn, started)["messages"]) == [{"role": "user", "content": "How?"}]


def test_the_async_client_and_errors_raised_unchanged(provider, ll, conn):
    async def run():
        client = likeloop.wrap_anthropic(anthropic.AsyncAnthropic(base_url=provider.root, api_key="k"), ll)
        message = await client.messages.create(model="m", max_tokens=9, messages=[{"role": "user", "content": "A?"}])
        stream = await client.messages.create(
            model="m", max_tokens=9, messages=[{"role": "user", "content": "B?"}], stream=True
        )
        events = [e async for e in stream]
        return message, events

    message, events = asyncio.run(run())
    assert ll.flush(5)
    assert stored(conn, message.id)["response"] == "answer 0 to: A?"
    assert stored(conn, events[0].message.id)["response"] == "answer 0 to: B?"
    provider.fail_with = 400
    sync = likeloop.wrap_anthropic(anthropic.Anthropic(base_url=provider.root, api_key="k", max_retries=0), ll)
    with pytest.raises(anthropic.BadRequestError):
        sync.messages.create(model="m", max_tokens=9, messages=[{"role": "user", "content": "x"}])


def test_the_stream_helper_sync_and_async_is_logged_as_it_is_read(provider, ll, conn):
    client = likeloop.wrap_anthropic(anthropic.Anthropic(base_url=provider.root, api_key="k"), ll)
    asked = [{"role": "user", "content": "Stream?"}]
    with client.messages.stream(model="m", max_tokens=9, messages=asked, likeloop={"user_id": "u9"}) as stream:
        assert isinstance(stream, anthropic.lib.streaming.MessageStream)
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "likeloop" not in provider.requests[-1]["body"]

    async def run():
        aclient = likeloop.wrap_anthropic(anthropic.AsyncAnthropic(base_url=provider.root, api_key="k"), ll)
        async with aclient.messages.stream(model="m", max_tokens=9, messages=[{"role": "user", "content": "A?"}]) as s:
            return await s.get_final_message()

    afinal = asyncio.run(run())
    assert ll.flush(5)
    row = stored(conn, final.id)
    assert row["response"] == text == "answer 0 to: Stream?" and row["user_id"] == "u9"
    assert stored(conn, afinal.id)["response"] == "answer 0 to: A?"
