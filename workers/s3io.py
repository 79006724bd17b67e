"""Streaming gzipped JSONL objects to S3: records go up in multipart chunks as they are written,
so memory stays bounded by one part whatever the dataset's size."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

# S3's minimum part size is 5 MiB (except the last); 8 MiB keeps part count low for big exports.
PART_BYTES = 8 * 1024 * 1024
GZIP_TYPE = "application/gzip"


@dataclass
class WrittenObject:
    key: str
    records: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "records": self.records, "bytes": self.bytes, "sha256": self.sha256}


class JsonlGzWriter:
    """Write JSON records to one gzipped JSONL object; ``close()`` completes the upload.

    Nothing is visible under the key until ``close()``: a multipart upload that is never
    completed leaves no object (call ``abort()`` on failure to free its parts).
    """

    def __init__(self, s3: Any, bucket: str, key: str) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self._buf = io.BytesIO()
        # mtime=0 makes the bytes a function of the records alone, so a rerun writes the same object.
        self._gz = gzip.GzipFile(fileobj=self._buf, mode="wb", mtime=0)
        self._sha = hashlib.sha256()
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.records = 0

    def write(self, record: dict[str, Any]) -> None:
        self._gz.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self.records += 1
        if self._buf.tell() >= PART_BYTES:
            self._upload_part(self._take())

    def _take(self) -> bytes:
        data = self._buf.getvalue()
        self._buf.seek(0)
        self._buf.truncate()
        self._sha.update(data)
        self._size += len(data)
        return data

    def _upload_part(self, data: bytes) -> None:
        if self._upload_id is None:
            resp = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key, ContentType=GZIP_TYPE)
            self._upload_id = resp["UploadId"]
        number = len(self._parts) + 1
        resp = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
        )
        self._parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    def close(self) -> WrittenObject:
        self._gz.close()
        data = self._take()
        if self._upload_id is None:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=data, ContentType=GZIP_TYPE)
        else:
            if data:
                self._upload_part(data)
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        return WrittenObject(self.key, self.records, self._size, self._sha.hexdigest())

    def abort(self) -> None:
        if self._upload_id is not None:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            self._upload_id = None


def put_json(s3: Any, bucket: str, key: str, body: dict[str, Any]) -> None:
    data = json.dumps(body, indent=2, sort_keys=True).encode("utf-8")
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/json")


def read_jsonl_gz(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines() if line]
