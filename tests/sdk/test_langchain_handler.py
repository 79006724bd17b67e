"""``LikeLoopCallbackHandler`` with real ``langchain-core`` models (its own fake chat model and
LLM, which run LangChain's whole callback machinery), the real LikeLoop service behind the SDK."""

import json
import uuid

from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from likeloop.integrations.langchain import LikeLoopCallbackHandler

from tests.sdk.wrapping import PK, stored
from tests.support import vote_of


def test_chat_model_and_llm_runs_are_logged_under_their_run_ids(ll, conn):
    handler = LikeLoopCallbackHandler(ll, user_id="u1")
    chat = FakeListChatModel(responses=["Paris."], callbacks=[handler])
    run_id = uuid.uuid4()
    answer = chat.invoke([SystemMessage("Be brief."), HumanMessage("Capital of France?")], config={"run_id": run_id})
    assert answer.content == "Paris."
    llm = FakeListLLM(responses=["Lyon."], callbacks=[handler])
    llm_run = uuid.uuid4()
    assert llm.invoke("Second city?", config={"run_id": llm_run}) == "Lyon."
    streamed_run = uuid.uuid4()
    streamed = FakeListChatModel(responses=["Nice."], callbacks=[handler])
    assert "".join(c.content for c in streamed.stream("Third?", config={"run_id": streamed_run})) == "Nice."
    assert ll.like(str(run_id), user_id="u2") and ll.flush(5)
    row = stored(conn, str(run_id))
    assert row["response"] == "Paris." and row["user_id"] == "u1" and row["model"]
    assert json.loads(row["messages"]) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert stored(conn, str(llm_run))["prompt"] == "Second city?" and stored(conn, str(llm_run))["response"] == "Lyon."
    assert stored(conn, str(streamed_run))["response"] == "Nice."
    assert vote_of(conn, PK, str(run_id), "u2") is not None
