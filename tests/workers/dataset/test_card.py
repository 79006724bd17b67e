"""The snapshot's dataset card names exactly the configs its files hold."""

import re

from workers.dataset.card import dataset_card

ROOT = "exports/acme/dataset/jsonl"


def manifest(*formats):
    files = [
        {"kind": "pairs", "format": f, "split": "train", "file_format": "jsonl", "key": f"{ROOT}/{f}/train/p.jsonl.gz"}
        for f in formats
    ]
    files.append({"kind": "ledger", "format": "ledger", "key": "exports/acme/ledger/x.jsonl.gz"})
    return {
        "project": "acme",
        "mode": "snapshot",
        "export_id": "e1",
        "created_at": "2026-12-04T00:00:00+00:00",
        "plan": {"strategy": "all", "test_ratio": 0.0},
        "files": files,
        "counts": {"pairs": 3, "kto": 4 if "kto" in formats else 0, "retractions": 0},
    }


def configs_of(card):
    return re.findall(r"^- config_name: (\S+)$", card, re.M)


def text_of(card):
    return card.split("---\n")[-1]


def test_only_the_configs_present_are_listed_and_described():
    card = dataset_card(manifest("trl", "kto"), "jsonl", ROOT)
    assert configs_of(card) == ["kto", "trl"]
    text = text_of(card)
    assert "`kto` (TRL unpaired (KTO)" in text and "`trl` (TRL standard" in text
    assert "trl-chat" not in text and "openai" not in text
    assert "3 pairs and 4 KTO items" in text


def test_a_kto_only_export_makes_kto_its_default():
    card = dataset_card(manifest("kto"), "jsonl", ROOT)
    assert configs_of(card) == ["kto"]
    assert re.search(r"- config_name: kto\n  default: true", card)
    assert '"kto/train/p.jsonl.gz"' in card  # paths relative to the card


def test_an_empty_export_says_it_holds_no_rows():
    card = dataset_card(manifest(), "jsonl", ROOT)
    assert configs_of(card) == [] and "none (this export holds no rows)" in text_of(card)
