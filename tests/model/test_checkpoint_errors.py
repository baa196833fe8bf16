"""A missing or corrupt checkpoint, or a config that does not fit the weights: a clear error."""

import json
import shutil

import pytest
import torch

from fastllm.model import GPT


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_missing_directory(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):  # offline and without huggingface_hub
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        GPT.from_pretrained(tmp_path / "nope")


def test_hub_name_offline(monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")

    def offline(*args, **kwargs):
        raise OSError("offline: cannot reach huggingface.co")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(FileNotFoundError, match="could not be fetched from the hub: offline"):
        GPT.from_pretrained("someone/no-such-model")


def test_missing_local_path_is_not_tried_on_the_hub(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("hub was asked"))
    for path in [tmp_path / "nope", "./nope", "../a/b", "a/b/c"]:
        with pytest.raises(FileNotFoundError, match="does not exist"):
            GPT.from_pretrained(path)


def test_path_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        GPT.from_pretrained(tmp_path / "f")


def test_missing_config(hf_dir, tmp_path):
    d = copy_checkpoint(hf_dir, tmp_path / "ckpt")
    (d / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPT.from_pretrained(d)


def test_corrupt_config(hf_dir, tmp_path):
    d = copy_checkpoint(hf_dir, tmp_path / "ckpt")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        GPT.from_pretrained(d)


def test_missing_weights(hf_dir, tmp_path):
    d = copy_checkpoint(hf_dir, tmp_path / "ckpt")
    (d / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        GPT.from_pretrained(d)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_corrupt_safetensors(hf_dir, tmp_path, content):
    d = copy_checkpoint(hf_dir, tmp_path / "ckpt")
    (d / "model.safetensors").write_bytes(content)
    with pytest.raises(ValueError, match="model.safetensors"):
        GPT.from_pretrained(d)


def test_truncated_safetensors(hf_dir, tmp_path):
    d = copy_checkpoint(hf_dir, tmp_path / "ckpt")
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="model.safetensors"):
        GPT.from_pretrained(d)


def test_corrupt_pytorch_bin(hf_dir, tmp_path):
    d = copy_checkpoint(hf_dir, tmp_path / "ckpt")
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="pytorch_model.bin"):
        GPT.from_pretrained(d)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_layer": 3}, "missing: transformer.h.2"),
        ({"n_layer": 1}, "unexpected: transformer.h.1"),
        ({"n_embd": 32, "n_head": 4}, "shape mismatch"),
        ({"vocab_size": 999}, "transformer.wte.weight"),
        ({"n_positions": 128}, "transformer.wpe.weight"),
    ],
)
def test_config_does_not_match_weights(hf_dir, tmp_path, change, message):
    d = copy_checkpoint(hf_dir, tmp_path / "ckpt")
    config = json.loads((d / "config.json").read_text())
    config.update(change)
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="does not match the weights") as info:
        GPT.from_pretrained(d)
    assert message in str(info.value)


def test_untied_head_is_refused(hf_model, tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in hf_model.state_dict().items()}
    state["lm_head.weight"] = state["transformer.wte.weight"] + 1
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf_model.config.to_json_file(tmp_path / "config.json")
    with pytest.raises(ValueError, match="untied"):
        GPT.from_pretrained(tmp_path)


def test_forward_bad_input(model):
    vocab = model.config.vocab_size
    with pytest.raises(ValueError, match="longer than the context"):
        model(torch.zeros((1, model.config.block_size + 1), dtype=torch.long))
    for shape in [(1, 0), (0, 3)]:
        with pytest.raises(ValueError, match="empty"):
            model(torch.zeros(shape, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, "):
        model(torch.tensor([[0, vocab]]))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, "):
        model(torch.tensor([[-1]]))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"shape \(batch, seq\)"):
        model(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros((1, 3), dtype=torch.long), torch.zeros((1, 4), dtype=torch.long))
    with pytest.raises(TypeError, match="targets must hold integer"):
        model(torch.zeros((1, 3), dtype=torch.long), torch.zeros((1, 3)))
    with pytest.raises(TypeError, match="GPTConfig"):
        GPT({"n_layer": 1})
