"""The ingest script builds no key name of its own: it gets them from keys.py, and counts only
the metrics counters.py names."""

import re
from pathlib import Path

import likeloop_server
from likeloop_server import counters, keys
from likeloop_server.batch_store import SCRIPT_SOURCE

LUA = (Path(likeloop_server.__file__).parent / "ingest.lua").read_text()


def test_the_script_spells_no_key_prefix():
    # A key fragment would be a quoted string ending in ':' (as 'resp:' was).
    assert re.findall(r"'[a-z_:]*:'", LUA) == []


def test_every_key_the_script_uses_is_one_keys_py_hands_it():
    used = set(re.findall(r"\bK\.([a-z_]+)", LUA))
    assert used == set(keys.INGEST_SCRIPT_KEYS)
    pk = keys.ProjectKeys("acme")
    assert len(pk.ingest_script_keys()) == len(keys.INGEST_SCRIPT_KEYS)
    assert all(k.startswith(pk.base) for k in pk.ingest_script_keys())
    assert SCRIPT_SOURCE.startswith("local K = {resp = KEYS[1], ")  # declared: Redis Cluster routes by them


def test_the_script_counts_only_the_metrics_counters_py_names():
    bumped = set(re.findall(r"bump\([a-z_.]+, '([a-z_]+)'", LUA))
    bumped |= {m for pair in re.findall(r"and '([a-z_]+)' or '([a-z_]+)'", LUA) for m in pair}
    assert bumped == set(counters.INGEST_METRICS)
