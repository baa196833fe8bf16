"""Training and the CLI under faults, concurrent use, crafted files and bad options.

Each test here failed on the code before the fix it covers: code in a crafted checkpoint ran on
resume, two runs shared an output directory, a failed ``prepare`` destroyed the old dataset, an
out-of-vocabulary id trained silently, nonsense options ran or ended in tracebacks, and a
resumed run logged its steps twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fastllm.cli.main import main
from fastllm.files import DirectoryInUseError, atomic_output, hold_directory
from fastllm.train import checkpoint as ckpt
from fastllm.train.data import BatchLoader, read_meta
from fastllm.train.metrics import read_log
from fastllm.train.prepare import prepare_documents, prepare_files
from fastllm.train.pretrain import Trainer
from tests.support.tiny_training import tiny_train_config


# -- 1. a checkpoint cannot run code ---------------------------------------------------------------
class _Payload:
    """Unpickling this object creates a file: the sign that a checkpoint ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_crafted_checkpoint_does_not_run_code(data_dir, tmp_path):
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"format": ckpt.FORMAT, "version": ckpt.VERSION, "step": _Payload(str(marker))},
               out / ckpt.CHECKPOINT_FILE)
    with pytest.raises(ValueError, match="cannot be read"):
        Trainer(tiny_train_config(data_dir, out, resume=True)).run()
    assert not marker.exists()


def test_checkpoints_hold_only_plain_data(data_dir, tmp_path):
    """What a run saves loads with the restricted unpickler, RNG states included."""
    Trainer(tiny_train_config(data_dir, tmp_path, max_steps=2, checkpoint_interval=2)).run()
    state = torch.load(tmp_path / ckpt.CHECKPOINT_FILE, weights_only=True)
    assert state["step"] == 2 and set(state["rng"][0]) >= {"python", "numpy", "torch"}


# -- 2. one run per output directory ---------------------------------------------------------------
def test_a_second_run_on_a_held_directory_is_refused_at_once(data_dir, tmp_path):
    code = ("import sys, time; from fastllm.files import hold_directory\n"
            "with hold_directory(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        start = time.monotonic()
        with pytest.raises(DirectoryInUseError, match="in use by another fastllm run"):
            Trainer(tiny_train_config(data_dir, tmp_path, max_steps=2)).run()
        with pytest.raises(DirectoryInUseError):
            prepare_documents(["some text"], read_tokenizer(data_dir), tmp_path, val_fraction=0.0, progress=False)
        assert time.monotonic() - start < 5
        assert not (tmp_path / ckpt.CHECKPOINT_FILE).exists()
    finally:
        holder.kill()
        holder.wait()
    # the system released the killed holder's lock
    assert Trainer(tiny_train_config(data_dir, tmp_path, max_steps=2))
    with hold_directory(tmp_path):
        pass


def read_tokenizer(data_dir):
    from fastllm.tokenizer import open_tokenizer

    return open_tokenizer(Path(data_dir))


def test_concurrent_atomic_writers_never_tear_a_file(tmp_path):
    """Unique temporary names: every read sees one writer's whole content."""
    target = tmp_path / "shared.bin"
    contents = [bytes([i]) * 200_000 for i in range(2)]
    target.write_bytes(contents[0])
    stop, errors = threading.Event(), []

    def writer(data: bytes) -> None:
        try:
            while not stop.is_set():
                with atomic_output(target) as handle:
                    handle.write(data)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    try:
        reads = [target.read_bytes() for _ in range(300)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert all(r in contents for r in reads)
    assert [p.name for p in tmp_path.iterdir()] == ["shared.bin"]


# -- 3. a failed prepare keeps the old dataset -----------------------------------------------------
def test_a_failed_prepare_leaves_the_old_dataset_untouched(tmp_path, tokenizer, documents):
    out = tmp_path / "data"
    (out).mkdir()
    (out / "notes.txt").write_text("mine")
    prepare_documents(documents, tokenizer, out, val_fraction=0.1, chunk_bytes=2000, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    bad = tmp_path / "bad.txt"
    good_part = ("a long line of ordinary text\n" * 4000).encode()
    bad.write_bytes(good_part + b"caf\xe9\n")
    with pytest.raises(ValueError, match=rf"bad\.txt .*offset {len(good_part) + 3}\b"):
        prepare_files([bad], tokenizer, out, val_fraction=0.0, chunk_bytes=1000, progress=False)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # same files, same bytes, no partial shard left
    assert [p.name for p in out.iterdir() if p.is_dir()] == []
    assert read_meta(out)["documents"] == len(documents)


def test_a_new_dataset_replaces_the_old_one_whole(tmp_path, tokenizer, documents):
    out = tmp_path / "data"
    (out / "notes.txt").parent.mkdir()
    (out / "notes.txt").write_text("mine")
    prepare_documents(documents, tokenizer, out, val_fraction=0.1, shard_tokens=5000, chunk_bytes=2000,
                      progress=False)
    many = {p.name for p in out.glob("*.bin")}
    meta = prepare_documents(documents[:3], tokenizer, out, val_fraction=0.0, progress=False)
    files = {p.name for p in out.glob("*.bin")}
    assert len(many) > 2 and files == {"train_000000.bin"} and meta["documents"] == 3
    assert (out / "notes.txt").read_text() == "mine"  # not part of a dataset: left alone
    assert read_meta(out) == meta


# -- 4. out-of-vocabulary ids are found when a dataset is opened -----------------------------------
def test_out_of_vocabulary_ids_are_found_when_the_data_is_opened(tmp_path, tokenizer, documents):
    out = tmp_path / "data"
    prepare_documents(documents, tokenizer, out, val_fraction=0.0, chunk_bytes=2000, progress=False)
    meta = read_meta(out)
    shard = out / meta["splits"]["train"]["shards"][0]["file"]
    tokens = np.memmap(shard, dtype=meta["dtype"], mode="r+")
    tokens[1234] = meta["vocab_size"]
    tokens.flush()
    del tokens
    with pytest.raises(ValueError, match=rf"{shard.name} holds token id {meta['vocab_size']} at token offset 1234"):
        BatchLoader(out, "train", 4, 16)


# -- 5. options are checked where they are parsed --------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "d", "--lr", "inf"], "argument --lr: must be a finite number, got inf"),
    (["train", "--data", "d", "--weight-decay", "nan"], "argument --weight-decay: must be a finite number"),
    (["train", "--data", "d", "--min-lr", "nan"], "argument --min-lr: must be a finite number"),
    (["train", "--data", "d", "--device", "tpu"], "argument --device: must be auto, cpu, mps, cuda or cuda:N"),
    (["train", "--data", "d", "--grad-clip", "-1"], "argument --grad-clip: must be a finite number >= 0"),
    (["train", "--data", "d", "--n-layer", "0"], "argument --n-layer: must be an integer >= 1, got 0"),
    (["sft", "--model", "m", "--data", "d", "--batch-size", "0"], "argument --batch-size: must be an integer >= 1"),
    (["sft", "--model", "m", "--data", "d", "--epochs", "0"], "argument --epochs: must be a finite number > 0"),
    (["sft", "--model", "m", "--data", "d", "--epochs", "-1"], "argument --epochs: must be a finite number > 0"),
    (["sft", "--model", "m", "--data", "d", "--max-steps", "0"], "argument --max-steps: must be an integer >= 1"),
    (["dpo", "--model", "m", "--data", "d", "--beta", "nan"], "argument --beta: must be a finite number"),
    (["chat", "--model", "m", "--top-p", "0"], "argument --top-p: must be in (0, 1]"),
    (["prepare", "f", "--tokenizer", "gpt2", "--out", "o", "--val-fraction", "1"], "argument --val-fraction"),
    (["generate", "--model", "m", "--prompt", "x", "--temperature", "-1"], "argument --temperature"),
])
def test_nonsense_options_are_refused_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err


def test_config_files_and_library_configs_use_the_same_checks(tmp_path):
    from fastllm.train.config import build_config, read_config_file
    from fastllm.train.dpo import DPOConfig
    from fastllm.train.sft import SFTConfig

    (tmp_path / "c.json").write_text(json.dumps({"data": "d", "lr": 1e400}))  # JSON's Infinity
    with pytest.raises(ValueError, match="lr must be a finite number"):
        build_config(read_config_file(tmp_path / "c.json"))
    with pytest.raises(ValueError, match="grad_clip must be a finite number >= 0"):
        build_config(overrides={"data": "d", "grad_clip": -1.0})
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        SFTConfig(model="m", data="d", batch_size=0)
    with pytest.raises(ValueError, match="max_steps must be an integer >= 1"):
        SFTConfig(model="m", data="d", max_steps=0)
    with pytest.raises(ValueError, match="beta must be a finite number"):
        DPOConfig(model="m", data="d", beta=float("nan"))
    with pytest.raises(ValueError, match="device must be"):
        SFTConfig(model="m", data="d", device="tpu")


def test_unexpected_errors_are_one_line_unless_debug(capsys, monkeypatch, tmp_path):
    import fastllm.train.pretrain as pretrain

    def broken(cfg):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(pretrain, "train", broken)
    assert main(["train", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["fastllm train: internal error: RuntimeError: something inside broke",
                                "(rerun with --debug for the traceback, and please report it)"]
    with pytest.raises(RuntimeError, match="inside broke"):
        main(["train", "--data", str(tmp_path), "--debug"])
    with pytest.raises(RuntimeError, match="inside broke"):
        main(["--debug", "train", "--data", str(tmp_path)])


def test_a_diverged_run_is_one_line(capsys, monkeypatch, tmp_path):
    import fastllm.train.pretrain as pretrain

    def diverge(cfg):
        raise FloatingPointError("the loss became nan at step 3; lower --lr")

    monkeypatch.setattr(pretrain, "train", diverge)
    assert main(["train", "--data", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "fastllm train: error: the loss became nan at step 3; lower --lr\n"


# -- 6. a chat session survives a bad turn ---------------------------------------------------------
def test_a_chat_turn_too_long_for_the_context_is_reported_and_the_chat_goes_on(pretrained_dir, tokenizer):
    import io

    from fastllm.cli.chat import chat_loop
    from fastllm.model import GPT
    from fastllm.train.chat_template import with_chat_tokens
    from fastllm.train.finetune import fit_vocab

    model, tok = GPT.from_pretrained(pretrained_dir), with_chat_tokens(tokenizer)
    fit_vocab(model, tok)
    lines = iter(["word " * 500, "hi", "/exit"])
    output = io.StringIO()
    messages = chat_loop(model, tok, max_new_tokens=4, input_fn=lambda prompt: next(lines), output=output,
                         temperature=0)
    assert "(not sent: the message needs" in output.getvalue()
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hi"]
    with pytest.raises(ValueError, match="top_p"):
        chat_loop(model, tok, input_fn=lambda prompt: pytest.fail("asked for input"), top_p=1.5)


# -- 7. smaller ones ---------------------------------------------------------------------------------
def test_a_resumed_run_logs_each_step_once(data_dir, tmp_path):
    overrides = dict(max_steps=6, checkpoint_interval=3, log_interval=1)
    Trainer(tiny_train_config(data_dir, tmp_path, **overrides)).run(stop_at=4)  # step 4 logged, not saved
    Trainer(tiny_train_config(data_dir, tmp_path, resume=True, **overrides)).run()
    steps = [r["step"] for r in read_log(tmp_path / "log.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]


def save_tiny_model(directory: Path, tokenizer) -> Path:
    from fastllm.model import GPT, GPTConfig

    torch.manual_seed(0)
    GPT(GPTConfig(vocab_size=tokenizer.n_vocab, block_size=16, n_layer=1, n_head=2, n_embd=32)).save_pretrained(
        directory, tokenizer=tokenizer)
    return directory


def test_meta_json_and_safetensors_index_may_not_leave_their_directory(tmp_path, tokenizer, documents):
    out = tmp_path / "data"
    prepare_documents(documents, tokenizer, out, val_fraction=0.0, chunk_bytes=2000, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    (tmp_path / "outside.bin").write_bytes((out / meta["splits"]["train"]["shards"][0]["file"]).read_bytes())
    meta["splits"]["train"]["shards"][0]["file"] = "../outside.bin"
    (out / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"shard '\.\./outside\.bin' is not a plain file name"):
        read_meta(out)
    from fastllm.model import GPT

    directory = save_tiny_model(tmp_path / "ckpt", tokenizer)
    (directory / "model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"transformer.wte.weight": "../elsewhere.safetensors"}}))
    with pytest.raises(ValueError, match=r"names shard '\.\./elsewhere\.safetensors', which is not a file inside"):
        GPT.from_pretrained(directory)


def test_saved_files_get_the_usual_mode(tmp_path, tokenizer):
    previous = os.umask(0o022)
    try:
        directory = save_tiny_model(tmp_path / "ckpt", tokenizer)
    finally:
        os.umask(previous)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (directory / name).stat().st_mode & 0o777 == 0o644, name


# -- the SIGKILL-resume property --------------------------------------------------------------------
def _train_command(data_dir, out, steps):
    return [sys.executable, "-m", "fastllm", "train", "--data", str(data_dir), "--out", str(out),
            "--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "32", "--batch-size", "4",
            "--max-steps", str(steps), "--lr", "3e-3", "--warmup-steps", "2", "--eval-interval", "1000",
            "--checkpoint-interval", "2", "--log-interval", "1", "--device", "cpu", "--kernels", "reference",
            "--dropout", "0.1", "--no-progress", "--no-export", "--seed", "7"]


def test_a_run_killed_with_sigkill_resumes_exactly(data_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FASTLLM_KERNELS": "reference"}
    steps = 40
    straight = subprocess.run(_train_command(data_dir, tmp_path / "a", steps), env=env, capture_output=True)
    assert straight.returncode == 0, straight.stderr.decode()
    run = subprocess.Popen(_train_command(data_dir, tmp_path / "b", steps), env=env, stderr=subprocess.PIPE)
    log = tmp_path / "b" / "log.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        logged = [r["step"] for r in read_log(log) if "loss" in r] if log.is_file() else []
        if logged and logged[-1] >= 5:
            break
        time.sleep(0.01)
    assert run.poll() is None, "the run ended before it could be killed"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    resumed = subprocess.run(_train_command(data_dir, tmp_path / "b", steps) + ["--resume"], env=env,
                             capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()
    a = torch.load(tmp_path / "a" / ckpt.CHECKPOINT_FILE, weights_only=True)
    b = torch.load(tmp_path / "b" / ckpt.CHECKPOINT_FILE, weights_only=True)
    assert a["step"] == b["step"] == steps
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    losses = lambda path: [(r["step"], r["loss"]) for r in read_log(path / "log.jsonl") if "loss" in r]  # noqa: E731
    assert losses(tmp_path / "b") == losses(tmp_path / "a")  # bit-identical, each step once
