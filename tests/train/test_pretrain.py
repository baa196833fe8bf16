import json

import pytest
import torch

from fastllm.train import checkpoint as ckpt
from fastllm.train.config import build_config, read_config_file
from fastllm.train.metrics import read_log
from fastllm.train.pretrain import Trainer

from tests.support.tiny_training import tiny_train_config


def test_loss_decreases_on_a_tiny_corpus(data_dir, tmp_path):
    cfg = tiny_train_config(data_dir, tmp_path, max_steps=40, eval_interval=20, eval_batches=4)
    summary = Trainer(cfg).run()
    losses = [loss for _, loss in summary["history"]]
    assert losses[0] > 5.0  # about ln(265): the untrained model guesses uniformly
    assert sum(losses[-5:]) / 5 < losses[0] - 1.5
    assert summary["val_history"][-1][1] < summary["val_history"][0][1]
    log = read_log(tmp_path / "log.jsonl")
    assert log[0]["event"] == "start" and log[0]["model"]["n_layer"] == 2
    steps = [r for r in log if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, 41))
    assert all(r["tokens_per_s"] > 0 and r["mfu"] is None and "lr" in r for r in steps)


def test_resume_continues_exactly(data_dir, tmp_path):
    """Six steps straight equal three steps, a checkpoint, a fresh process state, three more."""
    overrides = dict(max_steps=6, checkpoint_interval=3, dropout=0.1, grad_accum=2)
    straight = Trainer(tiny_train_config(data_dir, tmp_path / "a", **overrides)).run()
    first = Trainer(tiny_train_config(data_dir, tmp_path / "b", **overrides)).run(stop_at=3)
    assert first["steps"] == 3 and (tmp_path / "b" / "checkpoint.pt").is_file()
    torch.manual_seed(12345)  # whatever happened in between must not matter
    resumed = Trainer(tiny_train_config(data_dir, tmp_path / "b", resume=True, **overrides)).run()
    assert resumed["resumed"]
    assert first["history"] + resumed["history"] == straight["history"]  # bit-identical losses
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["data"] == b["data"] and a["step"] == b["step"] == 6


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    ckpt.save_checkpoint(path, {"step": 1})
    real_save = torch.save

    def crash(obj, handle, *args, **kwargs):
        real_save({"partial": True}, handle)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(path, {"step": 2})
    monkeypatch.setattr(torch, "save", real_save)
    assert ckpt.load_checkpoint(path)["step"] == 1


def test_checkpoint_errors(data_dir, tmp_path):
    cfg = tiny_train_config(data_dir, tmp_path, max_steps=2, checkpoint_interval=2)
    Trainer(cfg).run()
    bigger = tiny_train_config(data_dir, tmp_path, max_steps=4, n_embd=64, resume=True)
    with pytest.raises(ValueError, match=r"different model size \(n_embd: checkpoint 32 vs configured 64\)"):
        Trainer(bigger).run()
    with pytest.raises(ValueError, match="same batch size"):
        Trainer(tiny_train_config(data_dir, tmp_path, max_steps=4, batch_size=2, resume=True)).run()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a fastllm training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        ckpt.load_checkpoint(tmp_path / "missing.pt")


def test_export_is_loadable_by_the_model_package(data_dir, tmp_path):
    from fastllm import Tokenizer
    from fastllm.model import GPT

    Trainer(tiny_train_config(data_dir, tmp_path, max_steps=2, export=True)).run()
    model = GPT.from_pretrained(tmp_path / "model")
    tokenizer = Tokenizer.from_pretrained(tmp_path / "model")
    assert model.config.n_embd == 32 and tokenizer.n_vocab == model.config.vocab_size


def test_config_file_then_flags(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('data = "d"\nn_layer = 3\nlr = 1\nbatch_size = 8\n')
    cfg = build_config(read_config_file(toml), {"batch_size": 2, "n_head": None})
    assert (cfg.data, cfg.n_layer, cfg.lr, cfg.batch_size, cfg.n_head) == ("d", 3, 1.0, 2, 6)
    assert cfg.seq_len == cfg.block_size
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"data": "d", "max_steps": 5}))
    assert build_config(read_config_file(js)).max_steps == 5
    with pytest.raises(ValueError, match="unknown training setting.*n_layers"):
        build_config({"n_layers": 3})
    with pytest.raises(ValueError, match="n_layer must be int"):
        build_config({"n_layer": "three"})
    with pytest.raises(ValueError, match="seq_len"):
        build_config({"seq_len": 512, "block_size": 256})
    with pytest.raises(ValueError, match="kernels must be one of"):
        build_config({"kernels": "fast"})
    (tmp_path / "bad.toml").write_text("n_layer = = 3")
    with pytest.raises(ValueError, match="cannot parse"):
        read_config_file(tmp_path / "bad.toml")
    preset = build_config({"model": "gpt2"})
    assert preset.gpt_config(50257).n_layer == 12 and preset.seq_len == 1024
    with pytest.raises(ValueError, match="unknown GPT preset"):
        build_config({"model": "gpt5"})


def test_gradient_accumulation_equals_the_larger_batch(data_dir, tmp_path):
    """Two micro-batches of 2 rows give the step of one batch of 4 (same windows, mean loss)."""
    accumulated = Trainer(tiny_train_config(data_dir, tmp_path / "a", max_steps=4, batch_size=2, grad_accum=2)).run()
    whole = Trainer(tiny_train_config(data_dir, tmp_path / "b", max_steps=4, batch_size=4)).run()
    assert [l for _, l in accumulated["history"]] == pytest.approx([l for _, l in whole["history"]], rel=1e-5)
    norms = [[r["grad_norm"] for r in read_log(tmp_path / run / "log.jsonl") if "grad_norm" in r] for run in "ab"]
    assert norms[0] == pytest.approx(norms[1], rel=1e-4)  # Adam hides a gradient scale; the norm does not
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-4)
