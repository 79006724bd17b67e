"""What the operator lets a project's judge or reference model use: which environment variables
may hold its key (``LIKELOOP_MODEL_KEY_ENVS``), which endpoints it may call
(``LIKELOOP_MODEL_URLS``), and how many calls a day any project may spend
(``LIKELOOP_MODEL_MAX_DAILY_CALLS``). Checked when a project admin sets a model
(``PATCH /v1/project``, ``likeloop project``) and again before every run, since settings may
predate the lists. With no lists set, no project may configure a model: a project admin must not
be able to make the workers send the operator's secrets (``AWS_SECRET_ACCESS_KEY``...) or
requests to internal addresses (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

from .errors import InvalidValue
from .settings import Settings

_NONE_ALLOWED = (
    "the operator allows no model endpoints here: LIKELOOP_MODEL_KEY_ENVS (variables that may hold a model key) "
    "and LIKELOOP_MODEL_URLS (endpoints a model may be called at) are not set on the service and the workers"
)


class ModelEndpoint(Protocol):
    """A judge's or reference model's settings, as far as the policy reads them."""

    @property
    def base_url(self) -> str: ...

    @property
    def api_key_env(self) -> str: ...

    @property
    def daily_budget(self) -> int: ...


@dataclass(frozen=True)
class _Allowed:
    scheme: str
    host: str
    port: int | None
    path: str

    @classmethod
    def parse(cls, text: str) -> _Allowed:
        url = urlparse(text.strip())
        return cls(url.scheme.lower(), (url.hostname or "").lower(), url.port, url.path.rstrip("/"))

    def admits(self, text: str) -> bool:
        """Whether a base URL is this endpoint or below it: same scheme and host, the same port
        when this one names one, and a path at or under this one's (at a ``/`` boundary)."""
        url = urlparse(text)
        try:
            port = url.port
        except ValueError:
            return False
        path = url.path.rstrip("/")
        return (
            url.scheme.lower() == self.scheme
            and (url.hostname or "").lower() == self.host
            and (self.port is None or port == self.port)
            and (path == self.path or path.startswith(self.path + "/"))
        )


@dataclass(frozen=True)
class ModelPolicy:
    key_envs: frozenset[str]
    urls: tuple[_Allowed, ...]
    max_daily_calls: int | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelPolicy:
        return cls(
            frozenset(n.strip() for n in settings.model_key_envs.split(",") if n.strip()),
            tuple(_Allowed.parse(u) for u in settings.model_urls.split(",") if u.strip()),
            settings.model_max_daily_calls or None,
        )

    def check(self, section: str, config: ModelEndpoint) -> None:
        """Raise InvalidValue, naming the field, unless the operator allows this endpoint, key
        variable and budget."""
        if not self.key_envs or not self.urls:
            raise InvalidValue(f"{section}: {_NONE_ALLOWED}", field=section)
        url = urlparse(config.base_url)
        if url.username is not None or url.password is not None:
            raise InvalidValue(f"{section}.base_url: no user or password in the URL", field=f"{section}.base_url")
        if not any(allowed.admits(config.base_url) for allowed in self.urls):
            raise InvalidValue(
                f"{section}.base_url: {config.base_url!r} is not an endpoint the operator allows (LIKELOOP_MODEL_URLS)",
                field=f"{section}.base_url",
            )
        if config.api_key_env not in self.key_envs:
            raise InvalidValue(
                f"{section}.api_key_env: {config.api_key_env!r} is not a variable the operator lets a project "
                f"name; allowed: {', '.join(sorted(self.key_envs))} (LIKELOOP_MODEL_KEY_ENVS)",
                field=f"{section}.api_key_env",
            )
        if self.max_daily_calls is not None and config.daily_budget > self.max_daily_calls:
            raise InvalidValue(
                f"{section}.daily_budget: at most {self.max_daily_calls} calls a day here "
                "(LIKELOOP_MODEL_MAX_DAILY_CALLS)",
                field=f"{section}.daily_budget",
            )

    def budget(self, config: ModelEndpoint) -> int:
        """The calls a day a run may spend: the project's budget, within the operator's cap."""
        cap = self.max_daily_calls
        return config.daily_budget if cap is None else min(config.daily_budget, cap)
