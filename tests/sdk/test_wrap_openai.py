"""``likeloop.wrap_openai``: the real ``openai`` client (sync and async) against a local server
that speaks its API, the real LikeLoop service behind the SDK. Every answer is logged under the
provider's id, streamed ones once they end (or are closed early), the ``likeloop`` argument
never reaches the provider, and the call returns and raises what it would unwrapped."""

import asyncio
import json

import likeloop
import openai
import pytest

from tests.sdk.wrapping import PK, stored
from tests.support import vote_of


def test_a_chat_completion_is_logged_under_its_id_and_takes_feedback(provider, ll, conn):
    client = likeloop.wrap_openai(openai.OpenAI(base_url=provider.url, api_key="k"), ll)
    options = {"user_id": "u1", "session_id": "s1", "metadata": {"route": "faq"}}
    messages = [{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
    completion = client.chat.completions.create(model="gpt-x", messages=messages, likeloop=options)
    assert isinstance(completion, openai.types.chat.ChatCompletion)
    assert completion.choices[0].message.content == "answer 0 to: Capital of France?"
    assert "likeloop" not in provider.requests[-1]["body"]
    assert ll.like(completion.id, user_id="u2") and ll.flush(5)
    row = stored(conn, completion.id)
    assert row["response"] == "answer 0 to: Capital of France?" and row["model"] == "gpt-x"
    assert row["user_id"] == "u1" and row["session_id"] == "s1" and json.loads(row["metadata"]) == {"route": "faq"}
    assert json.loads(row["messages"])[0] == {"role": "system", "content": "Be brief."}
    assert vote_of(conn, PK, completion.id, "u2") is not None


def test_n_choices_are_answers_to_one_prompt_ready_to_compare(provider, ll, conn):
    client = likeloop.wrap_openai(openai.OpenAI(base_url=provider.url, api_key="k"), ll)
    completion = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi?"}], n=2)
    assert ll.compare(f"{completion.id}:0", f"{completion.id}:1", choice="b", user_id="u") and ll.flush(5)
    first, second = stored(conn, f"{completion.id}:0"), stored(conn, f"{completion.id}:1")
    assert first["group"] == second["group"] and second["response"] == "answer 1 to: Hi?"
    assert conn.hlen(PK.judgements(first["group"])) == 1


def test_a_stream_is_logged_once_when_it_ends_or_with_what_arrived_when_closed(provider, ll, conn):
    client = likeloop.wrap_openai(openai.OpenAI(base_url=provider.url, api_key="k"), ll)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Tell me"}], stream=True)
    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content for c in chunks)
    early = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Stop"}], stream=True)
    with early:
        first = next(iter(early))
    assert ll.flush(5)
    assert stored(conn, chunks[0].id)["response"] == text
    assert stored(conn, first.id)["response"] == first.choices[0].delta.content  # what arrived


def test_the_responses_api_plain_and_streamed(provider, ll, conn):
    client = likeloop.wrap_openai(openai.OpenAI(base_url=provider.url, api_key="k"), ll)
    response = client.responses.create(model="m", input="Why?", instructions="Be kind.", likeloop={"user_id": "u"})
    streamed = client.responses.create(model="m", input=[{"role": "user", "content": "How?"}], stream=True)
    events = list(streamed)
    assert ll.flush(5)
    row = stored(conn, response.id)
    assert row["response"] == response.output_text and row["prompt"] == "Why?" and row["system"] == "Be kind."
    done = [e for e in events if e.type == "response.completed"][0]
    assert stored(conn, done.response.id)["response"] == "answer 0 to: How?"


def test_the_async_client_too(provider, ll, conn):
    async def run():
        client = likeloop.wrap_openai(openai.AsyncOpenAI(base_url=provider.url, api_key="k"), ll)
        completion = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "A?"}])
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "B?"}], stream=True
        )
        chunks = [c async for c in stream]
        return completion, chunks

    completion, chunks = asyncio.run(run())
    assert ll.flush(5)
    assert stored(conn, completion.id)["response"] == "answer 0 to: A?"
    assert stored(conn, chunks[0].id)["response"] == "answer 0 to: B? "  # as the server sent it, word by word


def test_provider_errors_are_raised_unchanged_and_logging_never_raises(provider, ll, conn):
    client = likeloop.wrap_openai(openai.OpenAI(base_url=provider.url, api_key="k", max_retries=0), ll)
    provider.fail_with = 400
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    provider.fail_with = None
    broken = likeloop.Client(api_key="k", url="http://127.0.0.1:9", enabled=False)
    quiet = likeloop.wrap_openai(openai.OpenAI(base_url=provider.url, api_key="k"), broken)
    answer = quiet.chat.completions.create(model="m", messages=[{"role": "user", "content": "still works"}])
    assert answer.choices[0].message.content == "answer 0 to: still works"
    assert likeloop.wrap_openai(quiet, broken) is quiet  # wrapping twice wraps once


def test_what_is_logged_is_what_the_call_was_given(provider, ll, conn):
    """The app appending the answer to its message list, or reusing its options dict for the
    next call, changes nothing already logged."""
    client = likeloop.wrap_openai(openai.OpenAI(base_url=provider.url, api_key="k"), ll)
    messages, options = [{"role": "user", "content": "First?"}], {"user_id": "u1", "metadata": {"turn": 1}}
    completion = client.chat.completions.create(model="m", messages=messages, likeloop=options)
    messages.append({"role": "assistant", "content": completion.choices[0].message.content})
    options["user_id"], options["metadata"]["turn"] = "u2", 2
    assert ll.flush(5)
    row = stored(conn, completion.id)
    assert json.loads(row["messages"]) == [{"role": "user", "content": "First?"}]
    assert row["user_id"] == "u1" and json.loads(row["metadata"]) == {"turn": 1}
