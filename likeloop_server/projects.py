"""Per-project settings: how pairs are chosen and what the exports contain."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlparse

import redis

from . import defaults, keys
from .choices import parse_choices
from .errors import InvalidValue
from .export_filters import ExportFilters
from .exports import MODES
from .model_policy import ModelPolicy
from .redaction import RedactConfig
from .settings import Settings

STRATEGIES = ("all", "best_worst", "one_to_one")
# A metadata key the stats may count: a short plain name.
STAT_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FORMATS = ("trl", "trl-chat", "openai", "kto")


# The judge's prompt: the answers in both orders are asked with it (the position-bias guard).
DEFAULT_JUDGE_TEMPLATE = """You are judging two answers to the same prompt. Pick the answer that is more helpful,
correct and honest; prefer the shorter one when both are equally good; answer "tie" only when
neither is better. Reply with JSON only: {{"winner": "A" | "B" | "tie", "reason": "<one sentence>"}}.

Prompt:
{prompt}

Answer A:
{answer_a}

Answer B:
{answer_b}
"""
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")


@dataclass(frozen=True)
class JudgeConfig:
    """An LLM judge on any OpenAI-compatible endpoint: ``api_key_env`` names the environment
    variable the workers read the model key from (the key itself is never stored);
    ``sample_rate`` the share of prompt groups judged; ``daily_budget`` the model calls a day."""

    base_url: str
    model: str
    api_key_env: str
    sample_rate: float = 1.0
    daily_budget: int = 100
    template: str = DEFAULT_JUDGE_TEMPLATE

    @classmethod
    def parse(cls, raw: Any) -> JudgeConfig:
        """A judge config from its JSON form; raises InvalidValue naming the field."""
        _check_endpoint(cls, raw, "judge")
        sample = raw.get("sample_rate", 1.0)
        if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 <= sample <= 1:
            raise InvalidValue("judge.sample_rate: a number from 0 to 1", field="judge.sample_rate")
        budget = _budget(raw, "judge")
        template = raw.get("template", DEFAULT_JUDGE_TEMPLATE)
        if not isinstance(template, str) or any(f"{{{k}}}" not in template for k in ("prompt", "answer_a", "answer_b")):
            raise InvalidValue("judge.template: text with {prompt}, {answer_a} and {answer_b}", field="judge.template")
        if len(template) > 20_000:
            raise InvalidValue("judge.template: at most 20,000 characters", field="judge.template")
        try:  # filled as the judge will fill it: a stray brace or another slot fails here, not in the job
            template.format(prompt="P", answer_a="A", answer_b="B")
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise InvalidValue(
                f"judge.template: cannot be filled ({type(exc).__name__}: {exc}); "
                "write a literal brace as {{ or }}",
                field="judge.template",
            ) from exc
        return cls(raw["base_url"], raw["model"], raw["api_key_env"], float(sample), budget, template)


@dataclass(frozen=True)
class ReferenceConfig:
    """Reference answers from another model: with ``role`` ``rejected`` (a weaker model), groups
    whose answers people only liked get one to pair as rejected; with ``chosen`` (a stronger
    model), groups whose answers people only disliked get one to pair as chosen."""

    base_url: str
    model: str
    api_key_env: str
    role: str = "rejected"
    daily_budget: int = 100

    @classmethod
    def parse(cls, raw: Any) -> ReferenceConfig:
        _check_endpoint(cls, raw, "reference")
        role = raw.get("role", "rejected")
        if role not in ("rejected", "chosen"):
            raise InvalidValue("reference.role: rejected or chosen", field="reference.role")
        return cls(raw["base_url"], raw["model"], raw["api_key_env"], role, _budget(raw, "reference"))


def _check_endpoint(cls: type, raw: Any, section: str) -> None:
    """The settings a model endpoint has in common: known fields only, base_url, model, api_key_env."""
    if not isinstance(raw, dict):
        raise InvalidValue(f"{section}: an object with base_url, model and api_key_env", field=section)
    unknown = sorted(set(raw) - {f.name for f in fields(cls)})
    if unknown:
        raise InvalidValue(f"{section}.{unknown[0]}: not a {section} setting", field=f"{section}.{unknown[0]}")
    for name in ("base_url", "model", "api_key_env"):
        if not isinstance(raw.get(name), str) or not raw[name]:
            raise InvalidValue(f"{section}.{name}: required, a string", field=f"{section}.{name}")
    url = urlparse(raw["base_url"])
    if url.scheme not in ("http", "https") or not url.netloc:
        raise InvalidValue(f"{section}.base_url: an http(s) URL", field=f"{section}.base_url")
    if not ENV_NAME_RE.match(raw["api_key_env"]):
        raise InvalidValue(
            f"{section}.api_key_env: the NAME of an environment variable (A-Z, 0-9, _)", field=f"{section}.api_key_env"
        )
    if len(raw["model"]) > 200:
        raise InvalidValue(f"{section}.model: at most 200 characters", field=f"{section}.model")


def _budget(raw: dict[str, Any], section: str) -> int:
    budget = raw.get("daily_budget", 100)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise InvalidValue(
            f"{section}.daily_budget: model calls a UTC day, an integer >= 0", field=f"{section}.daily_budget"
        )
    return budget


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
    # Days the project's data is kept (0: for ever); older data leaves every store nightly.
    retention_days: int = 0
    # Personal data replaced before anything is stored (likeloop_server/redaction.py).
    redact: RedactConfig = field(default_factory=RedactConfig)
    judge: JudgeConfig | None = field(default=None)
    reference: ReferenceConfig | None = field(default=None)
    # What the project's snapshot exports leave out unless a run says otherwise (export_filters.py).
    exclude_suspect_voters: bool = False
    min_voters: int = 0
    min_margin: float = 0.0
    # Whether exports compute their rows' quality figures (docs/quality.md) unless a run says.
    export_quality: bool = True

    @property
    def filters(self) -> ExportFilters:
        return ExportFilters(self.exclude_suspect_voters, self.min_voters, self.min_margin)

    def validate(self) -> ProjectConfig:
        self.filters.validate()
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
        if not isinstance(self.export_quality, bool):
            raise InvalidValue("export_quality: true or false", field="export_quality")
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
        if isinstance(self.retention_days, bool) or not isinstance(self.retention_days, int):
            raise InvalidValue("retention_days: whole days, 0 to keep everything", field="retention_days")
        if not 0 <= self.retention_days <= defaults.MAX_RETENTION_DAYS:
            raise InvalidValue(
                f"retention_days: 0 (keep everything) to {defaults.MAX_RETENTION_DAYS}, got {self.retention_days}",
                field="retention_days",
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
        out["judge"] = asdict(self.judge) if self.judge else None
        out["reference"] = asdict(self.reference) if self.reference else None
        out["redact"] = self.redact.as_dict()
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
        retention_days=int(raw.get("retention_days", "0") or 0),
        redact=redact_config(raw.get("redact")),
        judge=JudgeConfig(**json.loads(raw["judge"])) if raw.get("judge") else None,
        reference=ReferenceConfig(**json.loads(raw["reference"])) if raw.get("reference") else None,
        **ExportFilters.stored(raw).as_dict(),
        export_quality=raw.get("export_quality", "1") == "1",
    )


def update_config(conn: redis.Redis, project: str, policy: ModelPolicy | None = None, **changes: Any) -> ProjectConfig:
    """Change some settings; returns the new config. Raises InvalidValue for invalid values, and
    for a judge or reference model the operator's ``policy`` does not allow (default: the one
    of this process's environment)."""
    current = get_config(conn, project)
    if changes.get("stats_metadata_keys") is not None:
        changes["stats_metadata_keys"] = tuple(dict.fromkeys(changes["stats_metadata_keys"]))
    judge, reference = changes.pop("judge", None), changes.pop("reference", None)
    if changes.get("redact") is not None:
        changes["redact"] = RedactConfig.parse(changes["redact"])
    new = replace(current, **{k: v for k, v in changes.items() if v is not None}).validate()
    if judge is not None:  # {} turns the judge off
        new = replace(new, judge=JudgeConfig.parse(judge) if judge else None)
    if reference is not None:
        new = replace(new, reference=ReferenceConfig.parse(reference) if reference else None)
    for section, given, model in (("judge", judge, new.judge), ("reference", reference, new.reference)):
        if given and model is not None:
            (policy or ModelPolicy.from_settings(Settings.from_env())).check(section, model)
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
            "retention_days": str(new.retention_days),
            "redact": json.dumps(new.redact.as_dict()) if new.redact else "",
            "judge": json.dumps(asdict(new.judge)) if new.judge else "",
            "reference": json.dumps(asdict(new.reference)) if new.reference else "",
            **new.filters.to_stored(),
            "export_quality": "1" if new.export_quality else "0",
        },
    )
    return new


def redact_config(stored: str | None) -> RedactConfig:
    """A project's redaction as stored (JSON, checked when it was set)."""
    if not stored:
        return RedactConfig()
    raw = json.loads(stored)
    return RedactConfig(tuple(raw.get("builtin", ())), tuple(raw.get("patterns", ())))


def parse_formats(text: str) -> tuple[str, ...]:
    """``"trl,openai"`` -> ("trl", "openai"); raises InvalidValue naming what is wrong."""
    return parse_choices(text, FORMATS, "formats")
