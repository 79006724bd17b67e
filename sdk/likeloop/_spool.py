"""An on-disk spool of unsent batches, so an outage longer than memory, or a restart, loses nothing.

Each batch is one file, written once: a temporary file, fsync'd (by default), then renamed into
place, so a crash leaves either a whole batch or none (the append-only discipline without partial
records). Names sort by creation time, and batches are replayed oldest first. A sender claims a
file by renaming it (atomic, so processes sharing a spool never send one twice at once); a
claim left by a dead process is released on start. A file that fails its checksum is set aside
as ``.corrupt`` with a warning, never a crash.

File format: one header line ``LLSPOOL1 <crc32 hex> <event count> <origin>`` then the JSON body.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"LLSPOOL1"
SUFFIX = ".batch"
CLAIM = ".claimed-"
FSYNC_POLICIES = ("always", "never")


@dataclass
class SpooledBatch:
    path: Path
    body: bytes
    count: int
    origin: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Spool:
    def __init__(self, directory: str | os.PathLike[str], fsync: str = "always") -> None:
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"spool_fsync must be one of {FSYNC_POLICIES}, got {fsync!r}")
        self.dir = Path(directory)
        # Spooled batches hold prompts, answers and user ids: a folder made here is its owner's
        # only, and each file is (an existing folder keeps its mode: it may be shared).
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.fsync = fsync == "always"
        self._seq = 0
        self.release_dead_claims()

    def release_dead_claims(self) -> None:
        for path in self.dir.glob(f"*{SUFFIX}{CLAIM}*"):
            try:
                pid = int(path.name.rsplit(CLAIM, 1)[1])
            except ValueError:
                continue
            if not _pid_alive(pid):
                try:
                    path.rename(path.with_name(path.name.rsplit(CLAIM, 1)[0]))
                except OSError:
                    pass  # another process released it first

    def write(self, body: bytes, count: int, origin: str) -> Path:
        """Store one batch durably (per the fsync policy). Raises OSError if the disk refuses."""
        self._seq += 1
        name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}{SUFFIX}"
        tmp = self.dir / f".{name}.tmp"
        header = b"%s %08x %d %s\n" % (MAGIC, zlib.crc32(body), count, origin.encode())
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(header + body)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        final = self.dir / name
        os.replace(tmp, final)
        if self.fsync:
            self._fsync_dir()
        return final

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.dir, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def pending(self) -> list[Path]:
        return sorted(self.dir.glob(f"*{SUFFIX}"))

    def claim_oldest(self) -> SpooledBatch | None:
        """Take the oldest batch for sending, or None if the spool is empty."""
        for path in self.pending():
            claimed = path.with_name(f"{path.name}{CLAIM}{os.getpid()}")
            try:
                path.rename(claimed)
            except OSError:
                continue  # claimed by another process in the meantime
            batch = self._read(claimed)
            if batch is not None:
                return batch
        return None

    def _read(self, path: Path) -> SpooledBatch | None:
        try:
            raw = path.read_bytes()
            header, _, body = raw.partition(b"\n")
            magic, crc, count, origin = header.split(b" ", 3)
            if magic != MAGIC or int(crc, 16) != zlib.crc32(body):
                raise ValueError("checksum mismatch")
            return SpooledBatch(path, body, int(count), origin.decode())
        except (OSError, ValueError) as exc:
            log.warning("likeloop: skipping corrupt spool file %s: %s", path.name, exc)
            try:
                path.rename(path.with_name(path.name.split(CLAIM)[0] + ".corrupt"))
            except OSError:
                pass
            return None

    def done(self, batch: SpooledBatch) -> None:
        try:
            batch.path.unlink()
        except FileNotFoundError:
            pass

    def release(self, batch: SpooledBatch) -> None:
        """Give a claimed batch back (its send failed; it will be retried)."""
        try:
            batch.path.rename(batch.path.with_name(batch.path.name.split(CLAIM)[0]))
        except OSError:
            pass
