"""The export read back with the tools people train with: Hugging Face `datasets` through the
dataset card's configs (JSONL and Parquet), and pyarrow reading Parquet straight from S3."""

import json
import os
from pathlib import Path

import pytest

from likeloop_server import exports, projects
from service.event_loader import load_event
from tests.support import P, store_and_pair
from workers.export.run import export_project

N_PROMPTS = 12


@pytest.fixture
def snapshot(conn, s3, settings):
    events = []
    for i in range(N_PROMPTS):
        q = f"Question {i}?"
        if i % 2:
            chat = [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": q},
            ]
            events += [
                {
                    "type": "response",
                    "response_id": f"g{i}",
                    "messages": [*chat, {"role": "assistant", "content": f"good {i}"}],
                },
                {"type": "response", "response_id": f"b{i}", "messages": chat, "response": f"bad {i}"},
            ]
        else:
            events += [
                {
                    "type": "response",
                    "response_id": f"g{i}",
                    "prompt": q,
                    "system": "Be brief.",
                    "response": f"good {i}",
                },
                {
                    "type": "response",
                    "response_id": f"b{i}",
                    "prompt": q,
                    "response": f"bad {i}",
                    "system": "Be brief.",
                },
            ]
        events += [{"type": "like", "response_id": f"g{i}"}, {"type": "dislike", "response_id": f"b{i}"}]
    store_and_pair(conn, settings, *map(load_event, events))  # as the service validates them
    projects.update_config(conn, P, formats=("trl", "trl-chat", "openai", "kto"), parquet=True, test_ratio=0.25)
    return export_project(conn, s3, settings, P, exports.new_export_id(), "snapshot")


def download(s3, settings, dest: Path) -> Path:
    root = f"{settings.s3_prefix}/{P}/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.s3_bucket, Prefix=root):
        for obj in page.get("Contents", []):
            target = dest / obj["Key"].removeprefix(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(settings.s3_bucket, obj["Key"], str(target))
    return dest


def test_the_snapshot_splits_by_prompt_group(snapshot):
    assert snapshot["counts"]["pairs"] == N_PROMPTS
    splits = {
        f["split"]: f["records"]
        for f in snapshot["files"]
        if f["kind"] == "pairs" and f["format"] == "trl" and f["file_format"] == "jsonl"
    }
    assert sum(splits.values()) == N_PROMPTS and set(splits) <= {"train", "test"}


@pytest.mark.parametrize(
    "config", ["trl", "trl-chat", "openai", "kto", "trl-parquet", "trl-chat-parquet", "openai-parquet", "kto-parquet"]
)
def test_load_dataset_reads_every_config_of_the_card(snapshot, s3, settings, tmp_path, monkeypatch, config):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    local = download(s3, settings, tmp_path / "export")
    fmt, parquet = config.removesuffix("-parquet"), config.endswith("-parquet")
    root = local / "parquet" if parquet else local  # two datasets, each with its own card
    assert "## Quality" in (root / "README.md").read_text()  # the card's quality section reads as Markdown, not data
    ds = datasets.load_dataset(str(root), fmt, cache_dir=str(tmp_path / "cache"))
    total = sum(ds[split].num_rows for split in ds)
    row = ds["train"][0]
    if config.startswith("kto"):
        assert total == 2 * N_PROMPTS  # every labelled response, liked and disliked
        assert set(ds["train"].column_names) == {"prompt", "completion", "label", "metadata"}
        assert isinstance(row["label"], bool) and isinstance(row["completion"], str)
        labels = {r["completion"]: r["label"] for s in ds for r in ds[s]}
        assert labels == {
            **{f"good {i}": True for i in range(N_PROMPTS)},
            **{f"bad {i}": False for i in range(N_PROMPTS)},
        }
        return
    assert total == N_PROMPTS
    if config.startswith("trl-chat"):
        assert set(ds["train"].column_names) == {"prompt", "chosen", "rejected", "metadata"}
        assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
        assert all(isinstance(m["content"], str) for m in row["prompt"])
    elif config.startswith("trl"):
        assert set(ds["train"].column_names) == {"prompt", "chosen", "rejected", "metadata"}
        assert all(isinstance(row[c], str) for c in ("prompt", "chosen", "rejected"))
        assert json.loads(row["metadata"])["pair_id"]
    else:
        assert set(ds["train"].column_names) == {"input", "preferred_output", "non_preferred_output"}
        assert row["preferred_output"][0]["role"] == "assistant"
        assert row["input"]["messages"][-1]["role"] == "user"
    chosen = [r["chosen"] if "chosen" in r else r["preferred_output"] for s in ds for r in ds[s]]
    texts = sorted(c if isinstance(c, str) else c[0]["content"] for c in chosen)
    assert texts == sorted(f"good {i}" for i in range(N_PROMPTS))


def test_without_a_config_name_load_dataset_reads_the_trl_pairs(snapshot, s3, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    ds = datasets.load_dataset(str(download(s3, settings, tmp_path / "export")), cache_dir=str(tmp_path / "cache"))
    assert set(ds["train"].column_names) == {"prompt", "chosen", "rejected", "metadata"}
    assert all(isinstance(ds["train"][0][c], str) for c in ("prompt", "chosen", "rejected"))


def test_no_prompt_is_in_both_splits(snapshot, s3, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    ds = datasets.load_dataset(
        str(download(s3, settings, tmp_path / "export")), "trl", cache_dir=str(tmp_path / "cache")
    )
    if "test" in ds:
        assert not set(ds["train"]["prompt"]) & set(ds["test"]["prompt"])


def test_pyarrow_reads_parquet_straight_from_s3(snapshot, s3_server, settings):
    import pyarrow.parquet as pq
    from pyarrow import fs

    host = s3_server.url.removeprefix("http://")
    s3fs = fs.S3FileSystem(
        endpoint_override=host,
        scheme="http",
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region="us-east-1",
    )
    files = [
        f for f in snapshot["files"] if f["kind"] == "pairs" and f["file_format"] == "parquet" and f["format"] == "trl"
    ]
    rows = 0
    for f in files:
        table = pq.read_table(f"{settings.s3_bucket}/{f['key']}", filesystem=s3fs)
        assert table.schema.names == ["prompt", "chosen", "rejected", "metadata"]
        assert str(table.schema.field("prompt").type) == "string"
        rows += table.num_rows
    assert rows == N_PROMPTS
