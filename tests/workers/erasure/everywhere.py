"""Looking everywhere for a person's traces: every key and value in Redis, every object in S3
(Parquet parts as their rows, gzip members decompressed, JSON as text)."""

import io
import json
import zlib

import pyarrow.parquet as pq

from workers.pairing import digest

USER = "zed-4f1c"  # the user erased: unique enough that any occurrence is theirs
# Quality digests know people by 64-bit keys of their ids: the user's key, as redis_text shows it.
USER_KEY = f"person-key-{digest.key64(USER)}"
MARKERS = ("ZEDPROMPT", "ZEDANSWER", "ZEDMETA", "ZEDSESSION", "ZEDCOMMENT", "ZEDCORRECTION", "ZEDLATE", USER, USER_KEY)


def traces(texts) -> list[tuple[str, str]]:
    """(where, marker) for each marker found in each (where, text)."""
    if isinstance(texts, str):
        texts = [("redis", texts)]
    return [(where, m) for where, text in texts for m in MARKERS if m in text]


def _people(name: bytes, value: dict) -> str:
    """The people a hash of quality digests names, by their keys (see USER_KEY)."""
    if not name.endswith(b":qdigest"):
        return ""
    found = [digest.decode(gid.decode(), raw) for gid, raw in value.items()]
    keys = sorted({k for d in found if d is not None for k in (*d.people, *d.excluded)})
    return " " + " ".join(f"person-key-{k}" for k in keys)


def redis_text(conn) -> str:
    """Every key of the Redis server with its value, as one text (RQ's keys too); the quality
    digests' people by their keys."""
    out = []
    for raw in conn.scan_iter(count=1000):
        kind = conn.type(raw).decode()
        if kind == "string":
            value = conn.get(raw)
        elif kind == "hash":
            value = conn.hgetall(raw)
        elif kind == "set":
            value = conn.smembers(raw)
        elif kind == "zset":
            value = conn.zrange(raw, 0, -1)
        elif kind == "list":
            value = conn.lrange(raw, 0, -1)
        else:
            value = conn.xrange(raw)
        out.append(f"{raw!r} {value!r}" + (_people(raw, value) if kind == "hash" else ""))
    return "\n".join(out)


def _gunzip_all(body: bytes) -> bytes:
    out, view = [], memoryview(body)
    while view:
        d = zlib.decompressobj(31)
        out.append(d.decompress(view))
        view = view[len(view) - len(d.unused_data) :]
    return b"".join(out)


def object_text(key: str, body: bytes) -> str:
    if key.endswith(".parquet"):
        return json.dumps(pq.read_table(io.BytesIO(body)).to_pylist(), default=str)
    if key.endswith(".gz"):
        return _gunzip_all(body).decode("utf-8", "replace")
    return body.decode("utf-8", "replace")


def s3_texts(s3, settings, archive_only: bool = False) -> list[tuple[str, str]]:
    """(key, text) of every object of the test's archive (and datasets, unless ``archive_only``)."""
    roots = [(settings.archive_bucket, settings.archive_prefix)]
    if not archive_only:
        roots.append((settings.s3_bucket, settings.s3_prefix))
    out = []
    for bucket, prefix in roots:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                out.append((obj["Key"], object_text(obj["Key"], body)))
    assert out, "nothing under the test's prefixes"
    return out
