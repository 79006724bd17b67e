"""Where a project's event archive lives in S3 (docs/archive.md): the one place that names its
objects, for the archive run, compaction's snapshots, the replay of a rebuild and exports that
read compacted groups."""

from __future__ import annotations

from likeloop_server.settings import Settings
from likeloop_server.stored import stream_id


class ArchiveLayout:
    """Object keys of one project's archive under ``s3://archive bucket/archive prefix/<project>/``."""

    def __init__(self, settings: Settings, project: str) -> None:
        self.project = project
        self.bucket = settings.archive_bucket
        prefix = settings.archive_prefix
        self.root = f"{prefix}/{project}" if prefix else project

    @property
    def events(self) -> str:
        return f"{self.root}/events/"

    def part(self, day: str, first_entry: str) -> str:
        return f"{self.events}dt={day}/part-{first_entry}.parquet"

    @property
    def state(self) -> str:
        """The project's settings and key hashes (workers/archive/state.py)."""
        return f"{self.root}/_state.json"

    @property
    def erasures(self) -> str:
        """The project's erasure ledger: keyed hashes only (workers/erasure/ledger.py)."""
        return f"{self.root}/_erasures.json"

    @property
    def compacted(self) -> str:
        """Snapshots of compacted prompt groups (workers/compaction/compact.py)."""
        return f"{self.root}/compacted/"

    def segment(self, name: str) -> str:
        return f"{self.compacted}{name}.jsonl.gz"

    @property
    def commits(self) -> str:
        return f"{self.root}/_commits/"

    def commit(self, end_entry: str) -> str:
        """A commit record's key: named by the last log entry it covers, so they list in order."""
        ms, seq = stream_id(end_entry)
        return f"{self.commits}{ms:015d}-{seq:06d}.json"
