"""Where a project's export objects go in S3 (docs/export-layout.md): the one place that names them."""

from __future__ import annotations

from datetime import UTC, datetime

from likeloop_server.settings import Settings


class Layout:
    """Object keys of one project's export tree under ``s3://bucket/prefix/<project>/``."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.bucket = settings.s3_bucket
        prefix = settings.s3_prefix
        self.root = f"{prefix}/{project}" if prefix else project
        self.project = project

    def dataset_root(self, file_format: str) -> str:
        """JSONL and Parquet are two datasets, each with its own card: Hugging Face ``datasets``
        picks one reader for every config of a card."""
        return f"{self.root}/parquet" if file_format == "parquet" else self.root

    def data(self, fmt: str, split: str, day: str, export_id: str, ext: str) -> str:
        base = self.dataset_root("parquet" if ext == "parquet" else "jsonl")
        return f"{base}/{fmt}/{split}/dt={day}/{export_id}.{ext}"

    def ledger(self, day: str, export_id: str) -> str:
        return f"{self.root}/_ledger/dt={day}/{export_id}.jsonl.gz"

    def retractions(self, day: str, export_id: str) -> str:
        return f"{self.root}/retractions/dt={day}/{export_id}.jsonl.gz"

    def card(self, file_format: str) -> str:
        return f"{self.dataset_root(file_format)}/README.md"

    @property
    def manifests(self) -> str:
        return f"{self.root}/manifests/"

    def manifest(self, name: str) -> str:
        """A manifest's key; its ``name`` is ``manifest_name(...)`` (older versions: the export id)."""
        return f"{self.manifests}{name}.json"


def manifest_name(started: float, export_id: str) -> str:
    """``<run start, UTC, to the microsecond>-<export id>``: manifests list in the order exports
    ran (one at a time, under the lock), whatever order they were requested in."""
    return datetime.fromtimestamp(started, tz=UTC).strftime("%Y%m%dT%H%M%S%fZ") + f"-{export_id}"
