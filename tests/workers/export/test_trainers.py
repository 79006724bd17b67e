"""TRL's real trainers on a dataset the real stack exported: the SDK logs answers and feedback to
the service, a worker pairs them, an export writes a snapshot, `likeloop pull` downloads it, and
`datasets.load_dataset` reads it through the dataset card by config name. DPOTrainer then trains
a few steps on the `trl` and `trl-chat` rows and KTOTrainer on the `kto` rows, with a tiny
randomly initialised model and a tokenizer trained on the rows (nothing is downloaded)."""

from __future__ import annotations

import json
import math

import likeloop
import pytest

from likeloop_server import projects
from tests.support import P, likeloop_cli, make_key, run_worker_burst

pytest.importorskip("trl", reason="TRL is installed by make test (the test extra)")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


@pytest.fixture
def pulled(live_service, conn, s3, settings, tmp_path):
    """A snapshot of 24 pairs (half of them chat) exported in every trainer's format, pulled."""
    key = make_key(conn, P)
    projects.update_config(conn, P, formats=("trl", "trl-chat", "kto"))
    ll = likeloop.Client(api_key=key, url=live_service.url, flush_interval=0.05)
    for i in range(24):
        question = f"What is {i} plus {i}?"
        if i % 2:
            good = ll.log(prompt=question, response=f"{i} plus {i} is {2 * i}.", model="m1")
            bad = ll.log(prompt=question, response="I do not know.", model="m2")
        else:
            chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]
            good = ll.log(messages=chat, response=f"It is {2 * i}.", model="m1")
            bad = ll.log(messages=chat, response=f"It is {2 * i + 1}.", model="m2")
        ll.like(good, user_id="u1")
        ll.dislike(bad, user_id="u1")
    assert ll.flush(20)
    ll.shutdown()
    run_worker_burst(settings)
    done = likeloop_cli("export", "--project", P, "--mode", "snapshot", settings=settings)
    assert done.returncode == 0, done.stderr
    run_worker_burst(settings)
    folder = tmp_path / "dataset"
    out = likeloop_cli("pull", "--project", P, "--to", str(folder), "--json", settings=settings)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["configs"] == ["kto", "trl", "trl-chat"]
    return folder


def load(folder, config, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    return datasets.load_dataset(str(folder), config, split="train", cache_dir=str(tmp_path / "cache"))


def texts_of(rows) -> list[str]:
    out = []
    for row in rows:
        for value in row.values():
            if isinstance(value, str):
                out.append(value)
            elif isinstance(value, list):
                out += [m["content"] for m in value]
    return out


def tokenizer_for(texts: list[str]):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "<eos>", "<bos>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
    raw = Tokenizer(models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=special))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", unk_token="<unk>"
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model(vocab: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=256,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def losses(trainer) -> list[float]:
    trainer.train()
    found = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert found and all(math.isfinite(x) for x in found), trainer.state.log_history
    return found


TRAINING = {"max_steps": 3, "per_device_train_batch_size": 2, "use_cpu": True, "bf16": False,
            "report_to": [], "logging_steps": 1, "save_strategy": "no", "max_length": 128}  # fmt: skip


@pytest.mark.parametrize("config", ["trl", "trl-chat"])
def test_dpo_trains_on_the_exported_pairs(pulled, tmp_path, monkeypatch, config):
    from trl import DPOConfig, DPOTrainer

    rows = load(pulled, config, tmp_path, monkeypatch)
    assert rows.num_rows == 24
    tok = tokenizer_for(texts_of(rows))
    model, ref = tiny_model(len(tok)), tiny_model(len(tok))
    args = DPOConfig(output_dir=str(tmp_path / "dpo"), **TRAINING)
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=rows, processing_class=tok)
    losses(trainer)


def test_kto_trains_on_the_exported_labels(pulled, tmp_path, monkeypatch):
    from trl import KTOConfig, KTOTrainer

    rows = load(pulled, "kto", tmp_path, monkeypatch)
    assert rows.num_rows == 48 and sorted(set(rows["label"])) == [False, True]
    tok = tokenizer_for(texts_of(rows))
    model, ref = tiny_model(len(tok)), tiny_model(len(tok))
    args = KTOConfig(output_dir=str(tmp_path / "kto"), **TRAINING)
    trainer = KTOTrainer(model=model, ref_model=ref, args=args, train_dataset=rows, processing_class=tok)
    losses(trainer)
