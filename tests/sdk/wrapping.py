"""A response as the service stored it, for the wrappers' tests (their fixtures: conftest.py)."""

from likeloop_server import keys
from tests.support import P

PK = keys.ProjectKeys(P)


def stored(conn, rid: str) -> dict[str, str]:
    """A response hash as text fields (empty when the service has none)."""
    return {k.decode(): v.decode() for k, v in conn.hgetall(PK.response(rid)).items()}
