"""The judge's pick in each order goes into the archive with its verdict and comes back with it
in a rebuild, so the judge's order consistency survives one."""

from workers.archive.model_labels import JUDGEMENT
from workers.archive.replay import _model_labels
from workers.archive.rows import _model_rows


def test_the_picks_ride_in_the_archived_row_and_come_back():
    label = {
        "kind": JUDGEMENT,
        "group": "g",
        "verdicts": {"a|b|judge:m": "<|2026-12-01T10|j|AB", "a|c|judge:m": "=|2026-12-01T10|j"},
    }
    rows = list(_model_rows(label, 1_764_583_200_000_000))
    assert [r["text"] for r in rows] == ["AB", None]  # a verdict from before picks were kept has none
    for row in rows:
        row["received_at"] = row["timestamp"]
    back = _model_labels("1-0", rows).verdicts["g"]
    assert back == {"a|b|judge:m": "<|2025-12-01T10|j|AB", "a|c|judge:m": "=|2025-12-01T10|j"}
