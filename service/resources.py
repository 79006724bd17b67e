"""What a service process shares between requests: settings, the Redis client, the key cache and
the way events are stored; made by ``create_app`` and found with ``resources()``."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from likeloop_server.layout import LayoutCheck
from likeloop_server.settings import Settings

from .auth_cache import KeyCache
from .group_commit import DirectCommit, GroupCommit
from .privacy import ProjectPrivacy
from .ratelimit import CredentialLimiter


@dataclass
class Resources:
    settings: Settings
    redis: redis.Redis
    keys: KeyCache
    commit: DirectCommit | GroupCommit  # stores events through a BatchStore
    privacy: ProjectPrivacy  # what the erasure ledger refuses
    token_limiter: CredentialLimiter | None = None  # counts feedback-token requests (ratelimit.py)
    read_limiter: CredentialLimiter | None = None  # counts each key's requests to the read endpoints
    layout: LayoutCheck | None = None  # whether Redis holds this version's key layout yet


def resources() -> Resources:
    return current_app.extensions["likeloop"]
