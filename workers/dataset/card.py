"""The Hugging Face dataset card of a snapshot export: ``README.md`` whose ``configs`` point at the
snapshot's files, so ``datasets.load_dataset`` reads the export as it is."""

from __future__ import annotations

import json
from typing import Any

# What ``load_dataset(tree)`` reads without a config name: the pairs, in TRL's standard format
# (when the export wrote it; else the first config by name).
DEFAULT_CONFIG = "trl"
# What each config holds, for the card's text.
CONFIG_TEXT = {
    "trl": "TRL standard preference: prompt, chosen, rejected",
    "trl-chat": "TRL conversational preference: messages",
    "openai": "OpenAI DPO fine-tuning: input, preferred and non-preferred output",
    "kto": "TRL unpaired (KTO): prompt, completion, label",
}


def dataset_card(manifest: dict[str, Any], file_format: str, root: str) -> str:
    """A Hugging Face dataset card whose ``configs`` point at one snapshot's ``file_format``
    (jsonl or parquet) files, named relative to ``root`` (where the card is written: the
    export layout's ``dataset_root``), so ``datasets.load_dataset`` reads the export as it is."""
    base = root + "/"
    configs: dict[str, dict[str, list[str]]] = {}
    for f in manifest["files"]:
        if f["kind"] == "pairs" and f["file_format"] == file_format:
            configs.setdefault(f["format"], {}).setdefault(f["split"], []).append(f["key"].removeprefix(base))
    lines = ["---", "configs:"]
    default = DEFAULT_CONFIG if DEFAULT_CONFIG in configs else min(configs, default=None)
    for name, splits in sorted(configs.items()):
        lines += [f"- config_name: {name}"]
        if name == default:
            lines += ["  default: true"]
        lines += ["  data_files:"]
        for split, paths in sorted(splits.items()):
            lines += [f"  - split: {split}", "    path:"] + [f"    - {json.dumps(p)}" for p in paths]
    lines += ["tags:", "- dpo", "- preference", "- likeloop", "---", ""]
    counts = manifest["counts"]
    held = [f"{counts['pairs']} pairs"] + ([f"{counts['kto']} KTO items"] if counts.get("kto") else [])
    described = ", ".join(f"`{name}` ({CONFIG_TEXT.get(name, name)})" for name in sorted(configs))
    lines += [
        f"# {manifest['project']}: preference pairs from user feedback",
        "",
        f"{'Snapshot' if manifest['mode'] == 'snapshot' else 'Incremental export'} `{manifest['export_id']}` "
        f"({manifest['created_at']}): {' and '.join(held)}, "
        f"pairing strategy `{manifest['plan']['strategy']}`, test share {manifest['plan']['test_ratio']} "
        "(split by prompt group: no prompt is in both splits).",
        "",
        f"Files: {'Parquet' if file_format == 'parquet' else 'gzipped JSON lines'}. "
        f"Configs: {described or 'none (this export holds no rows)'}. "
        "`metadata` is a JSON string with the row's provenance.",
        "",
        "Incremental exports (new pairs and retractions since the previous one) are listed in "
        "`manifests/`; this card always describes the latest snapshot.",
        "",
    ]
    if manifest.get("quality"):
        lines += quality_lines(manifest["quality"])
    return "\n".join(lines)


# The card's words for each figure (docs/quality.md defines them).
FIGURE_TEXT = {
    "pairs_by_source": "pairs",
    "groups": "prompt groups",
    "voters": "people who voted or rated",
    "vote_agreement": "vote agreement (pairs of voters on a response who voted alike)",
    "judge_human_agreement": "LLM judge agrees with people",
    "judge_order_consistency": "judge verdicts that held with the answers swapped",
    "length_bias": "pairs whose chosen answer is the longer",
    "voter_concentration": "votes cast by the top 1% of voters",
    "duplicate_prompts": "prompt groups with a near-duplicate prompt",
    "suspect_voters": "suspect voters",
}


def quality_lines(quality: dict[str, Any]) -> list[str]:
    """The card's quality section: a table of the figures (each with what it rests on), the
    filters and what they left out."""
    lines = ["## Quality", "", "What these rows are worth (definitions: LikeLoop's docs/quality.md).", ""]
    if "figures" in quality:
        lines += ["| figure | value | rests on |", "| --- | ---: | --- |"]
    else:
        lines += ["Not computed for this export (the project's `export_quality` or the run said so)."]
    for name, figure in quality.get("figures", {}).items():
        rest = ", ".join(f"{k} {_cell(v)}" for k, v in figure.items() if k != "value")
        lines.append(f"| {FIGURE_TEXT.get(name, name)} (`{name}`) | {_cell(figure.get('value'))} | {rest} |")
    filters = {k: v for k, v in quality.get("filters", {}).items() if v}
    left = quality.get("left_out", {})
    named = ", ".join(f"`{k}` {v}" for k, v in filters.items()) if filters else "none"
    why = ", ".join(f"{k} {v}" for k, v in left.get("by_filter", {}).items())
    lines += ["", f"Filters: {named}; pairs left out: {left.get('pairs', 0)}" + (f" ({why})" if why else "") + ".", ""]
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    return str(value)
