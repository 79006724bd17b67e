"""The baseline for bench/ingest.py: a bare Flask app that only parses JSON and writes to Redis,
with no authentication and no validation, served by the same gunicorn settings."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from typing import Any

import redis
from flask import Flask, request

app = Flask(__name__)
conn = redis.Redis.from_url(os.environ["LIKELOOP_REDIS_URL"])


@app.post("/bare")
def bare_one() -> Any:
    event = json.loads(request.get_data())
    conn.hset(f"bare:{uuid.uuid4().hex}", mapping={"response": event.get("response", "")})
    return {"status": "accepted"}, 201


@app.post("/bare/batch")
def bare_batch() -> Any:
    data = request.get_data()
    if request.headers.get("Content-Encoding") == "gzip":  # as the SDK sends batches
        data = gzip.decompress(data)
    events = json.loads(data)["events"]
    pipe = conn.pipeline(transaction=True)
    for event in events:
        pipe.hset(f"bare:{uuid.uuid4().hex}", mapping={"response": str(event.get("response", ""))})
    pipe.execute()
    return {"accepted": len(events)}, 200
