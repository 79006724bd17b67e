"""Opt-in AI feedback: an LLM judge of the pairs people left open, and reference answers from a
stronger or weaker model, each within a daily budget of calls and marked with its source
(docs/ai-feedback.md). ``model`` holds what both share: the endpoint's client and the budget."""
