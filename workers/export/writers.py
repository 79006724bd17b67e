"""The objects of one export run: a JSONL (and, when asked, a Parquet) object per format and
split, a ledger of the ids written, and the retractions; opened as rows arrive."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, cast

from likeloop_server.defaults import EXPORT_SPLIT_CACHE
from likeloop_server.stored import parse_record
from workers.dataset.formats import ROW_BUILDERS, SCHEMAS, Row, expand_pair, retraction_row, split_of
from workers.storage.s3io import Background, JsonlGzWriter, ParquetWriter

from .layout import Layout
from .logscan import Added

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportPlan:
    formats: tuple[str, ...]
    parquet: bool
    test_ratio: float
    strategy: str
    sources: str = "human"  # human: pairs whose preference came from people; all: models' too

    @functools.cached_property
    def pair_formats(self) -> tuple[str, ...]:
        return tuple(f for f in self.formats if f != "kto")

    @functools.cached_property
    def kto(self) -> bool:
        return "kto" in self.formats


class RunWriters:
    """The writers of one run under ``layout``, following ``plan``; ``close`` completes every
    object and returns the manifest's file entries, ``abort`` drops them."""

    def __init__(self, s3: Any, layout: Layout, export_id: str, day: str, plan: ExportPlan) -> None:
        self.s3, self.layout, self.export_id, self.day, self.plan = s3, layout, export_id, day, plan
        self._open: dict[tuple[str, str, str, str], JsonlGzWriter | ParquetWriter] = {}
        self._background = Background()
        self._split = functools.lru_cache(maxsize=EXPORT_SPLIT_CACHE)(
            functools.partial(split_of, test_ratio=plan.test_ratio)
        )
        self.pairs = 0
        self.kto = 0
        self.retracted = 0
        self.retracted_pairs = 0

    def _writer(self, kind: str, fmt: str, split: str, ext: str) -> JsonlGzWriter | ParquetWriter:
        slot = (kind, fmt, split, ext)
        writer = self._open.get(slot)
        if writer is None:
            bucket, lay = self.layout.bucket, self.layout
            if kind == "ledger":
                writer = JsonlGzWriter(self.s3, bucket, lay.ledger(self.day, self.export_id), self._background)
            elif kind == "retractions":
                writer = JsonlGzWriter(self.s3, bucket, lay.retractions(self.day, self.export_id), self._background)
            elif ext == "parquet":
                key = lay.data(fmt, split, self.day, self.export_id, ext)
                writer = ParquetWriter(self.s3, bucket, key, SCHEMAS[fmt], self._background)
            else:
                key = lay.data(fmt, split, self.day, self.export_id, ext)
                writer = JsonlGzWriter(self.s3, bucket, key, self._background)
            self._open[slot] = writer
        return writer

    def add_stored(self, items: list[Added], kto: bool = False, ledger: bool = False) -> None:
        """Write stored pairs in every pair format of the plan, or stored KTO items as ``kto``
        rows, in order; with ``ledger``, also list their ids in the run's ledger (read back to
        repair a commit cut short by a crash). A chunk at a time: the export's innermost loop.

        Items come as their whole rows, ``trl`` for pairs and ``kto`` for KTO items (stored
        records joined to their responses' texts: workers/pairing/texts.py), so those JSONL files
        get the bytes as they are; other formats parse and rebuild."""
        if not items:
            return
        if self.plan.test_ratio > 0:
            by_split: dict[str, list[Added]] = {}
            for item in items:
                by_split.setdefault(self._split(item[1]), []).append(item)
        else:
            by_split = {"train": items}
        for split, batch in by_split.items():
            stored = [raw for _, _, raw in batch]
            rows: list[Row] | None = None  # the stored rows, parsed, once a format needs them
            records: list[Row] | None = None  # the pair records they expand to
            for fmt in ("kto",) if kto else self.plan.pair_formats:
                jsonl = cast(JsonlGzWriter, self._writer("pairs", fmt, split, "jsonl.gz"))
                if fmt in ("trl", "kto"):
                    jsonl.write_lines(stored)
                    built = None
                else:
                    rows = rows or list(map(parse_record, stored))
                    records = records or list(map(expand_pair, rows))
                    built = list(map(ROW_BUILDERS[fmt], records))
                    jsonl.write_many(built)
                if self.plan.parquet:
                    if built is None:
                        built = rows = rows or list(map(parse_record, stored))
                    self._writer("pairs", fmt, split, "parquet").write_many(built)
        if ledger:
            # Kind and groups too: a rebuild from the archive retracts exported items gone since.
            line = {"pair_ids": [i for i, _, _ in items], "kind": "kto" if kto else "pair"}
            self._writer("ledger", "ledger", "", "jsonl.gz").write({**line, "group_ids": [g for _, g, _ in items]})
        if kto:
            self.kto += len(items)
        else:
            self.pairs += len(items)

    def retract(self, item_id: str, group_id: str, at: float, kind: str) -> None:
        row = retraction_row(item_id, group_id, at, kind)
        self._writer("retractions", "retractions", "", "jsonl.gz").write(row)
        self.retracted += 1
        if kind == "pair":
            self.retracted_pairs += 1

    def close(self) -> list[dict[str, Any]]:
        files = []
        for (kind, fmt, split, ext), writer in sorted(self._open.items()):
            entry = {**writer.close().as_dict(), "kind": kind, "format": fmt}
            if kind == "pairs":
                entry.update(split=split, file_format="parquet" if ext == "parquet" else "jsonl")
            files.append(entry)
        self._open.clear()
        self._background.close()
        return files

    def abort(self) -> None:
        self._background.close()
        for writer in self._open.values():
            try:
                writer.abort()
            except Exception:  # noqa: BLE001 - best effort: an unfinished multipart upload is never visible anyway
                log.warning("could not abort the upload of %s", writer.key)
        self._open.clear()
