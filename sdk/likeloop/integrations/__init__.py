"""Capture from the clients apps already use: ``wrap_openai`` and ``wrap_anthropic`` (exported
as ``likeloop.wrap_openai``, ``likeloop.wrap_anthropic``). They import nothing from the provider's
library: the SDK keeps no required dependency."""
