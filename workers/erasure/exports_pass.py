"""Erasure in past exports (docs/export-layout.md): every data object holding a row of a prompt
group the erasure touched is written again, each such row as the project's current dataset has
it (its pair or KTO item re-made without the erased data) or left out when its item no longer
exists; the run's manifest then lists the objects' new sizes and SHA-256, so ``likeloop pull``
still verifies them.

A row is known by the item id and group in its ``metadata`` (``trl``, ``trl-chat``, ``kto``).
``openai`` rows carry none: they are joined by position to the same run's ``trl`` or
``trl-chat`` rows of the same split (a run writes every format in the same order), else to the
ids its ledger lists (incremental runs); a row of neither (an ``openai``-only snapshot) is left
out when it holds any text of an erased response or of the erased users' comments and corrections.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from likeloop_server import keys
from likeloop_server.stored import parse_record, record_ids
from workers.dataset.formats import ROW_BUILDERS, SCHEMAS, expand_pair, split_of
from workers.export.layout import Layout
from workers.pairing import texts
from workers.storage.s3io import GZIP_LEVEL, PARQUET_ROW_GROUP, json_objects, put_bytes, put_json, read_jsonl_gz

_WITH_IDS = ("trl", "trl-chat", "kto")

Slot = tuple[str, str] | None  # (item id, group id) of a row, when known


def _read_rows(s3: Any, bucket: str, entry: dict[str, Any]) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=entry["key"])["Body"].read()
    if entry.get("file_format") == "parquet":
        return pq.read_table(io.BytesIO(body)).to_pylist()
    return [orjson.loads(line) for line in gzip.decompress(body).splitlines() if line]


def _encode(rows: list[dict[str, Any]], fmt: str, file_format: str) -> bytes:
    if file_format == "parquet":
        sink = io.BytesIO()
        with pq.ParquetWriter(sink, SCHEMAS[fmt], compression="zstd") as writer:
            for i in range(0, len(rows), PARQUET_ROW_GROUP):
                writer.write_table(pa.Table.from_pylist(rows[i : i + PARQUET_ROW_GROUP], schema=SCHEMAS[fmt]))
        return sink.getvalue()
    lines = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    return gzip.compress(lines, compresslevel=GZIP_LEVEL, mtime=0)


class ExportsPass:
    """One erasure run's work on a project's past exports."""

    def __init__(
        self,
        conn: redis.Redis,
        s3: Any,
        layout: Layout,
        groups: set[str],
        texts: set[str],
        renew: Callable[[], None],
    ) -> None:
        self.conn, self.s3, self.layout, self.groups, self.texts, self.renew = conn, s3, layout, groups, texts, renew
        self.pk = keys.ProjectKeys(layout.project)
        self.counts = {"export_objects": 0, "export_rows_dropped": 0, "export_rows_rewritten": 0, "manifests": 0}
        self._current: dict[tuple[str, bool], bytes | None] = {}
        self._writes: list[tuple[dict[str, Any], bytes]] = []  # the manifest's objects, once it is up

    def run(self) -> dict[str, int]:
        """Each manifest with touched objects goes up first, then the objects: a run cut short
        between the two leaves objects that still hold the rows, which the next run writes
        again (the same rows, the same bytes), so the manifest is never left behind."""
        for key, manifest in list(json_objects(self.s3, self.layout.bucket, self.layout.manifests)):
            self._writes = []
            if self._manifest(manifest):
                put_json(self.s3, self.layout.bucket, key, manifest)
                for entry, body in self._writes:
                    put_bytes(self.s3, self.layout.bucket, entry["key"], body, _content_type(entry))
                self.counts["manifests"] += 1
            self.renew()
        return self.counts

    def _manifest(self, manifest: dict[str, Any]) -> bool:
        """Work out a run's touched objects anew; whether its manifest changed."""
        files = manifest.get("files", [])
        by_slot: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
        for entry in files:
            if entry.get("kind") == "pairs":
                kto = entry.get("format") == "kto"
                by_slot.setdefault((entry.get("split", "train"), entry.get("file_format", "jsonl"), kto), []).append(
                    entry
                )
        ledger = None
        changed = False
        for (split, _, kto), entries in sorted(by_slot.items()):
            tables = {id(e): _read_rows(self.s3, self.layout.bucket, e) for e in entries}
            slots = self._slots(entries, tables, kto)
            if slots is None and not kto:
                ledger = ledger if ledger is not None else self._ledger_ids(manifest)
                slots = self._from_ledger(ledger, split, manifest)
            for entry in entries:
                if self._rewrite(entry, tables[id(entry)], slots, kto):
                    changed = True
        if changed:
            _recount(manifest)
        return changed

    def _slots(self, entries: list[dict[str, Any]], tables: dict[int, list], kto: bool) -> list[Slot] | None:
        """Each row's (item id, group) from a file of the slot whose rows carry them."""
        for entry in entries:
            if entry.get("format") in _WITH_IDS:
                return [record_ids(row) for row in tables[id(entry)]]
        return None

    def _ledger_ids(self, manifest: dict[str, Any]) -> list[tuple[str, str]]:
        """(pair id, group) in the order an incremental run wrote them (its ledger)."""
        out: list[tuple[str, str]] = []
        for entry in manifest.get("files", []):
            if entry.get("kind") == "ledger":
                for line in read_jsonl_gz(self.s3, self.layout.bucket, entry["key"]):
                    if line.get("kind", "pair") == "pair" and line.get("group_ids"):
                        out += list(zip(line["pair_ids"], line["group_ids"], strict=True))
        return out

    def _from_ledger(self, ledger: list[tuple[str, str]], split: str, manifest: dict[str, Any]) -> list[Slot] | None:
        if not ledger:
            return None
        ratio = float(manifest.get("plan", {}).get("test_ratio", 0) or 0)
        return [item for item in ledger if ratio <= 0 and split == "train" or split_of(item[1], ratio) == split]

    def _current_row(self, item: str, kto: bool, fmt: str) -> dict[str, Any] | None:
        """The item's row as the current dataset has it; None when the item is gone."""
        slot = (item, kto)
        if slot not in self._current:
            raw = self.conn.hget(self.pk.kto_records if kto else self.pk.pair_records, item)
            self._current[slot] = texts.one_row(self.conn, self.pk, raw)
        raw = self._current[slot]
        if raw is None:
            return None
        row = parse_record(raw)
        return row if fmt in ("trl", "kto") else ROW_BUILDERS[fmt](expand_pair(row))

    def _holds_erased_text(self, row: dict[str, Any]) -> bool:
        text = json.dumps(row, ensure_ascii=False)
        return any(t in text for t in self.texts)

    def _rewrite(self, entry: dict[str, Any], rows: list[dict[str, Any]], slots: list[Slot] | None, kto: bool) -> bool:
        fmt = entry["format"]
        if slots is not None and len(slots) != len(rows):
            slots = None  # cannot be joined by position: matched by text below
        kept: list[dict[str, Any]] = []
        dropped = rewritten = 0
        for i, row in enumerate(rows):
            slot = slots[i] if slots is not None else None
            if slot is None:
                if self._holds_erased_text(row):
                    dropped += 1
                else:
                    kept.append(row)
                continue
            item, group = slot
            if group not in self.groups:
                kept.append(row)
                continue
            now = self._current_row(item, kto, fmt)
            if now is None:
                dropped += 1
            elif now != row:
                kept.append(now)
                rewritten += 1
            else:
                kept.append(row)
        if not dropped and not rewritten:
            return False
        body = _encode(kept, fmt, entry.get("file_format", "jsonl"))
        self._writes.append((entry, body))
        entry.update(records=len(kept), bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
        self.counts["export_objects"] += 1
        self.counts["export_rows_dropped"] += dropped
        self.counts["export_rows_rewritten"] += rewritten
        return True


def _recount(manifest: dict[str, Any]) -> None:
    """The manifest's pair and KTO counts after a rewrite: the rows of one format, all splits."""
    counts = manifest.setdefault("counts", {})
    data = [
        f for f in manifest.get("files", []) if f.get("kind") == "pairs" and f.get("file_format", "jsonl") == "jsonl"
    ]
    pair_formats = sorted({f["format"] for f in data if f["format"] != "kto"})
    if pair_formats:
        counts["pairs"] = sum(f["records"] for f in data if f["format"] == pair_formats[0])
    if any(f["format"] == "kto" for f in data):
        counts["kto"] = sum(f["records"] for f in data if f["format"] == "kto")


def _content_type(entry: dict[str, Any]) -> str:
    return "application/vnd.apache.parquet" if entry.get("file_format") == "parquet" else "application/gzip"
