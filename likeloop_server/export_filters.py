"""What a snapshot export may leave out (docs/quality.md): pairs that would not exist without the
suspect voters' feedback, pairs resting on fewer than ``min_voters`` people, pairs whose margin
is below ``min_margin``. Set per run (``likeloop export``, ``POST /v1/exports``) or as the
project's defaults for its snapshot exports (``PATCH /v1/project``).

Snapshot exports only: an incremental export sends each pair once, so one it left out would
never reach that dataset later. A snapshot that leaves pairs out loses nothing: the next snapshot
without the filter has them all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .errors import InvalidValue

MAX_MIN_VOTERS = 1000
NAMES = ("exclude_suspect_voters", "min_voters", "min_margin")


@dataclass(frozen=True)
class ExportFilters:
    exclude_suspect_voters: bool = False
    min_voters: int = 0
    min_margin: float = 0.0

    @property
    def active(self) -> bool:
        return self.exclude_suspect_voters or self.min_voters > 0 or self.min_margin > 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> ExportFilters:
        if not isinstance(self.exclude_suspect_voters, bool):
            raise InvalidValue("exclude_suspect_voters: true or false", field="exclude_suspect_voters")
        n = self.min_voters
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_MIN_VOTERS:
            raise InvalidValue(f"min_voters: an integer from 0 to {MAX_MIN_VOTERS}", field="min_voters")
        m = self.min_margin
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0 <= m <= 1e6 or m != m:
            raise InvalidValue("min_margin: a number from 0 to 1,000,000", field="min_margin")
        return self

    def overridden(self, changes: dict[str, Any] | None) -> ExportFilters:
        """These filters with the given fields changed (the others kept), checked."""
        given = {k: v for k, v in (changes or {}).items() if k in NAMES and v is not None}
        return replace(self, **given).validate()

    @classmethod
    def stored(cls, raw: dict[str, str]) -> ExportFilters:
        """Filters from their stored text form (a project's config hash)."""
        return cls(
            raw.get("exclude_suspect_voters", "0") == "1",
            int(raw.get("min_voters", "0") or 0),
            float(raw.get("min_margin", "0") or 0),
        )

    def to_stored(self) -> dict[str, str]:
        return {
            "exclude_suspect_voters": "1" if self.exclude_suspect_voters else "0",
            "min_voters": str(self.min_voters),
            "min_margin": repr(float(self.min_margin)),
        }


def check_mode(mode: str, filters: ExportFilters) -> None:
    """Filters given for an incremental run are refused (InvalidValue)."""
    if mode != "snapshot" and filters.active:
        raise InvalidValue(
            "exclude_suspect_voters, min_voters and min_margin apply to snapshot exports only: an incremental "
            "export sends each pair once, so a pair it left out would never reach that dataset later",
            field="mode",
        )
