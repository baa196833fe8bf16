"""fastllm generate / eval / viz attention on a checkpoint directory."""

import json

import pytest

from fastllm.cli.main import main
from fastllm.model import GPT, stream_generate


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_streams_the_continuation(hf_dir, tokenizer, capsys):
    code, out, _ = run(capsys, "generate", "--model", hf_dir, "--prompt", "the cat", "--max-new-tokens", 12,
                       "--temperature", 0.9, "--top-k", 40, "--top-p", 0.95, "--seed", 4, "--device", "cpu")
    assert code == 0
    expected = "".join(stream_generate(GPT.from_pretrained(hf_dir), tokenizer, "the cat", 12, 0.9, 40, 0.95, seed=4))
    assert out == "the cat" + expected + "\n"


def test_generate_bad_arguments(hf_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # refused by the parser (fastllm.options)
        run(capsys, "generate", "--model", hf_dir, "--prompt", "hi", "--top-p", 1.5)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and "argument --top-p: must be in (0, 1], got 1.5" in err and out == ""
    code, _, err = run(capsys, "generate", "--model", hf_dir, "--prompt", "")
    assert code == 1 and "empty" in err
    code, _, err = run(capsys, "generate", "--model", hf_dir, "--prompt", "x" * 100)
    assert code == 1 and "context" in err
    code, _, err = run(capsys, "generate", "--model", tmp_path, "--prompt", "hi")
    assert code == 1 and "config.json" in err
    code, _, err = run(capsys, "generate", "--model", tmp_path / "missing", "--prompt", "hi")
    assert code == 1 and "missing does not exist" in err and "hub" not in err


def test_eval_prints_json(hf_dir, tmp_path, capsys):
    text = "the other thing in a heart of the matter\n" * 4
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    code, out, _ = run(capsys, "eval", "--model", hf_dir, tmp_path / "t.txt", "--json", "--quiet", "--context", 32)
    assert code == 0
    result = json.loads(out)
    assert set(result) == {"loss", "perplexity", "bits_per_byte", "tokens", "bytes"}
    assert result["perplexity"] == pytest.approx(2.718281828 ** result["loss"], rel=1e-6)
    code, out, _ = run(capsys, "eval", "--model", hf_dir, tmp_path / "t.txt", "--quiet")
    assert code == 0 and "bits per byte" in out


def test_eval_missing_file(hf_dir, tmp_path, capsys):
    code, _, err = run(capsys, "eval", "--model", hf_dir, tmp_path / "missing.txt")
    assert code == 1 and "missing.txt" in err


def test_eval_binary_file_names_the_file(hf_dir, tmp_path, capsys):
    (tmp_path / "data.bin").write_bytes("caf\u00e9 ".encode() * 3 + b"\x00\xff\xfe")
    code, out, err = run(capsys, "eval", "--model", hf_dir, tmp_path / "data.bin", "--quiet")
    assert code == 1 and out == ""
    assert err == f"fastllm eval: error: {tmp_path / 'data.bin'}: not UTF-8 text (invalid byte at offset 19)\n"


def test_viz_attention_writes_png(hf_dir, tmp_path, capsys):
    out_path = tmp_path / "attn.png"
    code, out, _ = run(capsys, "viz", "attention", "--model", hf_dir, "--prompt", "the cat sat", "--layer", 1,
                       "--out", out_path)
    assert code == 0 and str(out_path) in out
    assert out_path.read_bytes()[:4] == b"\x89PNG"
    code, _, err = run(capsys, "viz", "attention", "--model", hf_dir, "--prompt", "hi", "--layer", 5, "--out", out_path)
    assert code == 1 and "layer" in err


def test_cli_module_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, fastllm.cli.model_cmd; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
