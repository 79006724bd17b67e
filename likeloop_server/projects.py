"""Per-project settings: how pairs are chosen and what the exports contain."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

import redis

from . import defaults, keys
from .choices import parse_choices
from .errors import InvalidValue
from .exports import MODES

STRATEGIES = ("all", "best_worst", "one_to_one")
# A metadata key the stats may count: a short plain name.
STAT_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FORMATS = ("trl", "trl-chat", "openai", "kto")


@dataclass(frozen=True)
class ProjectConfig:
    """``strategy``: all (capped cartesian), best_worst (one pair per group), one_to_one (each
    response in at most one pair). ``formats``/``parquet``: what an export writes (JSONL always,
    Parquet too when set). ``test_ratio``: share of prompt groups in the test split.
    ``nightly_mode``: incremental or snapshot for the cron export. ``stats_metadata_keys``: the
    metadata keys whose values the stats count (``/v1/stats?meta=key=value``); others are not
    counted, so a key with a value per user or per request cannot grow the counters."""

    strategy: str = "all"
    formats: tuple[str, ...] = ("trl",)
    parquet: bool = False
    test_ratio: float = 0.0
    nightly_mode: str = "incremental"
    stats_metadata_keys: tuple[str, ...] = ()

    def validate(self) -> ProjectConfig:
        if self.strategy not in STRATEGIES:
            raise InvalidValue(
                f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}", field="strategy"
            )
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise InvalidValue(
                f"formats must be a non-empty subset of {', '.join(FORMATS)}, got {list(self.formats)}", field="formats"
            )
        if not 0.0 <= self.test_ratio < 1.0:
            raise InvalidValue(f"test_ratio must be at least 0 and below 1, got {self.test_ratio}", field="test_ratio")
        if self.nightly_mode not in MODES:
            raise InvalidValue(
                f"nightly_mode must be one of {', '.join(MODES)}, got {self.nightly_mode!r}", field="nightly_mode"
            )
        bad = [k for k in self.stats_metadata_keys if not isinstance(k, str) or not STAT_KEY_RE.match(k)]
        if bad:
            raise InvalidValue(
                f"stats_metadata_keys: names of 1-64 letters, digits, '_', '.' or '-', got {bad[0]!r}",
                field="stats_metadata_keys",
            )
        if len(self.stats_metadata_keys) > defaults.MAX_STAT_METADATA_KEYS:
            raise InvalidValue(
                f"stats_metadata_keys: at most {defaults.MAX_STAT_METADATA_KEYS} keys, "
                f"got {len(self.stats_metadata_keys)}",
                field="stats_metadata_keys",
            )
        return self

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["formats"] = list(self.formats)
        out["stats_metadata_keys"] = list(self.stats_metadata_keys)
        return out


def get_config(conn: redis.Redis, project: str) -> ProjectConfig:
    raw = {k.decode(): v.decode() for k, v in conn.hgetall(keys.ProjectKeys(project).config).items()}
    base = ProjectConfig()
    return ProjectConfig(
        strategy=raw.get("strategy", base.strategy),
        formats=tuple(f for f in raw.get("formats", ",".join(base.formats)).split(",") if f),
        parquet=raw.get("parquet", "0") == "1",
        test_ratio=float(raw.get("test_ratio", base.test_ratio)),
        nightly_mode=raw.get("nightly_mode", base.nightly_mode),
        stats_metadata_keys=tuple(k for k in raw.get("stats_metadata_keys", "").split(",") if k),
    )


def update_config(conn: redis.Redis, project: str, **changes: Any) -> ProjectConfig:
    """Change some settings; returns the new config. Raises InvalidValue for invalid values."""
    current = get_config(conn, project)
    if changes.get("stats_metadata_keys") is not None:
        changes["stats_metadata_keys"] = tuple(dict.fromkeys(changes["stats_metadata_keys"]))
    new = replace(current, **{k: v for k, v in changes.items() if v is not None}).validate()
    conn.hset(
        keys.ProjectKeys(project).config,
        mapping={
            "strategy": new.strategy,
            "formats": ",".join(new.formats),
            "parquet": "1" if new.parquet else "0",
            "test_ratio": repr(new.test_ratio),
            "nightly_mode": new.nightly_mode,
            # Read by the ingest script as it is: comma-separated names.
            "stats_metadata_keys": ",".join(new.stats_metadata_keys),
        },
    )
    return new


def parse_formats(text: str) -> tuple[str, ...]:
    """``"trl,openai"`` -> ("trl", "openai"); raises InvalidValue naming what is wrong."""
    return parse_choices(text, FORMATS, "formats")
