"""``LikeLoopCallbackHandler(ll)``: a LangChain callback handler that logs each chat model or LLM
run (its prompt messages or prompt, the generated text, the model's name) with ``str(run_id)``
as the response id; a run of several prompts logs each as ``<run_id>:<index>``. Pass the run id
yourself (``config={"run_id": uuid4()}``) to give feedback on the answer by it. Importing this
module imports ``langchain_core``; nothing else of the SDK needs it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from ._capture import Logger, messages_of, text_of

_LANGCHAIN_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}
MAX_OPEN_RUNS = 10_000  # runs started and not ended that are remembered (a leak bound, not a limit)


class LikeLoopCallbackHandler(BaseCallbackHandler):
    """Logs every chat model and LLM run it sees to ``ll`` (default: the module's default
    client); ``user_id``, ``session_id`` and ``metadata`` are added to each. Never raises."""

    def __init__(self, ll: Any | None = None, **options: Any) -> None:
        self._logger = Logger(ll)
        self._options = {k: v for k, v in options.items() if k in ("user_id", "session_id", "metadata") and v}
        self._runs: dict[UUID, tuple[list[dict[str, Any]], str | None]] = {}

    def _start(self, run_id: UUID, prompts: list[dict[str, Any]], model: str | None) -> None:
        if len(self._runs) >= MAX_OPEN_RUNS:
            self._runs.pop(next(iter(self._runs)))
        self._runs[run_id] = (prompts, model)

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[Any]], *, run_id: UUID, **kwargs: Any
    ) -> None:
        try:
            prompts = [{"messages": messages_of(_as_dicts(batch))} for batch in messages]
            self._start(run_id, prompts, _model(serialized, kwargs))
        except Exception:  # noqa: BLE001 - a callback never breaks the app's chain
            pass

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._start(run_id, [{"prompt": p} for p in prompts], _model(serialized, kwargs))
        except Exception:  # noqa: BLE001 - a callback never breaks the app's chain
            pass

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        started = self._runs.pop(run_id, None)
        if started is None:
            return
        prompts, model = started
        try:
            output = getattr(response, "llm_output", None) or {}
            model = output.get("model_name") or output.get("model") or model
            generations = getattr(response, "generations", []) or []
            many = len(generations) > 1
            for i, (prompt, candidates) in enumerate(zip(prompts, generations, strict=False)):
                if not candidates:
                    continue
                first = candidates[0]
                message = getattr(first, "message", None)
                text = text_of(message.content) if message is not None else str(getattr(first, "text", ""))
                rid = f"{run_id}:{i}" if many else str(run_id)
                self._logger.answer(rid, text, model, dict(self._options), **prompt)
        except Exception:  # noqa: BLE001 - a callback never breaks the app's chain
            pass

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._runs.pop(run_id, None)


def _as_dicts(batch: list[Any]) -> list[dict[str, Any]]:
    """LangChain messages as role/content dicts (``human`` is a user, ``ai`` the assistant)."""
    out = []
    for m in batch:
        role = _LANGCHAIN_ROLES.get(str(getattr(m, "type", "human")), "user")
        out.append({"role": role, "content": getattr(m, "content", "")})
    return out


def _model(serialized: dict[str, Any] | None, kwargs: dict[str, Any]) -> str | None:
    metadata = kwargs.get("metadata") or {}
    params = kwargs.get("invocation_params") or {}
    named = metadata.get("ls_model_name") or params.get("model") or params.get("model_name")
    if named:
        return str(named)
    ids = (serialized or {}).get("id") or []
    return str(ids[-1]) if ids else None
