"""The SDK tests' fixtures: a local server that speaks the providers' APIs, and a LikeLoop client
of the real service (``likeloop serve``)."""

import likeloop
import pytest

from tests.provider_servers import OpenAIServer
from tests.support import P, make_key


@pytest.fixture
def provider():
    server = OpenAIServer()
    yield server
    server.close()


@pytest.fixture
def ll(live_service, conn):
    client = likeloop.Client(api_key=make_key(conn, P), url=live_service.url, flush_interval=0.05)
    yield client
    client.shutdown(5)
