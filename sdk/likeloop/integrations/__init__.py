"""Capture from the clients apps already use: ``wrap_openai`` (``likeloop.wrap_openai``). Each
module imports its provider's library only when it is used: the SDK has no required dependency."""
