"""The CLI commands end to end, the demo included (quick settings)."""

import importlib.util
import io
import json
import re

import pytest

from fastllm.cli.main import main
from tests.support.html_pages import page_data

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_quick_demo_beats_the_unigram_baseline(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    baseline = float(re.search(r"unigram baseline .*?: ([\d.]+) nats", out).group(1))
    final = float(re.search(r"final validation loss:\s+([\d.]+) nats", out).group(1))
    assert final < baseline
    for name in ("loss.png", "attention.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC
    if importlib.util.find_spec("plotly"):  # the viz extra
        assert f"interactive report (open it in a browser): {tmp_path / 'report.html'}" in out
        assert page_data(tmp_path / "report.html")["architecture"]["n_layer"] == 4
    assert "sample" in out and (tmp_path / "train" / "model" / "config.json").is_file()


def test_prepare_train_sft_chat_dpo_from_the_command_line(tmp_path, tokenizer, documents, capsys, monkeypatch):
    tok_file = tmp_path / "tok.json"
    tokenizer.save(tok_file)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\f\n".join(documents), encoding="utf-8")
    assert main(["prepare", str(corpus), "--tokenizer", str(tok_file), "--out", str(tmp_path / "data"),
                 "--chunk-bytes", "2000", "--quiet"]) == 0
    assert f"{len(documents)} documents" in capsys.readouterr().out

    config = tmp_path / "run.toml"
    config.write_text(f'data = "{tmp_path / "data"}"\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 64\n'
                      'batch_size = 2\nmax_steps = 3\neval_interval = 3\neval_batches = 1\n')
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--seq-len", "32",
                 "--no-progress", "--device", "cpu", "--kernels", "reference"]) == 0
    assert "model saved to" in capsys.readouterr().out
    model_dir = tmp_path / "run" / "model"
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records[0]["config"]["seq_len"] == 32 and records[0]["config"]["n_layer"] == 2

    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    assert main(["sft", "--model", str(model_dir), "--data", str(chat), "--out", str(tmp_path / "sft"),
                 "--max-steps", "2", "--quiet", "--device", "cpu"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n/exit\n"))
    assert main(["chat", "--model", str(tmp_path / "sft"), "--system", "Be nice.", "--max-new-tokens", "4",
                 "--seed", "0", "--device", "cpu"]) == 0
    assert "assistant> " in capsys.readouterr().out
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(json.dumps({"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello",
                                 "rejected": "go away"}) + "\n")
    assert main(["dpo", "--model", str(tmp_path / "sft"), "--data", str(prefs), "--out", str(tmp_path / "dpo"),
                 "--max-steps", "2", "--quiet", "--device", "cpu"]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "{tmp}/nothing", "--no-progress"], "data directory .* does not exist"),
    (["train", "--data", "{tmp}", "--no-progress"], "not a prepared data directory"),
    (["train", "--no-progress"], "no data directory"),
    (["sft", "--model", "{tmp}/none", "--data", "x.jsonl"], "model directory .* does not exist"),
    (["prepare", "{tmp}/missing.txt", "--tokenizer", "{tmp}", "--out", "{tmp}/o"], ""),
])
def test_cli_errors_are_one_clear_line(tmp_path, capsys, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"fastllm {argv[0]}: error: ") and re.search(message, err)
    assert "Traceback" not in err


def test_demo_reads_the_users_files_as_documents(tmp_path):
    from fastllm.demos.pretraining import DemoSettings, _corpus

    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("first doc\n\f\nsecond doc\n", encoding="utf-8")
    b.write_text("third doc", encoding="utf-8")
    documents, origin = _corpus(DemoSettings(files=[str(a), str(b)]))
    assert documents == ["first doc\n", "second doc\n", "third doc"] and "2 file" in origin
    cut, _ = _corpus(DemoSettings(files=[str(a), str(b)], max_chars=12))
    assert "".join(cut) == "first doc\nse"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="corpus is empty"):
        _corpus(DemoSettings(files=[str(empty)]))


def test_quick_assistant_demo_writes_the_metrics_and_a_plot_per_stage(tmp_path, capsys):
    """The pipeline end to end at toy size (its numbers mean nothing; the full run is in the README)."""
    assert main(["demo", "assistant", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics.keys() == {"sft", "tools", "refusals", "dpo", "rl"}
    assert metrics["sft"].keys() == {"format_ok_before", "format_ok_after"}
    assert metrics["tools"].keys() == {"accuracy_without_tool", "accuracy_with_tool"}
    assert metrics["refusals"].keys() == {"unknown_refused_before", "unknown_refused_after", "known_correct_before",
                                          "known_correct_after"}
    assert metrics["dpo"].keys() == {"preference_accuracy_before", "preference_accuracy_after"}
    assert metrics["rl"].keys() == {"reward_before", "reward_after"}
    for stage, values in metrics.items():
        for name, value in values.items():
            assert isinstance(value, float) and (stage == "rl" or 0.0 <= value <= 1.0), (stage, name, value)
    for name in ("pretrain", "sft", "tools", "refusals", "dpo", "rl"):
        assert (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC, name
    assert "| stage | measure (held-out items) | before | after |" in out
    details = json.loads((tmp_path / "details.json").read_text())
    assert details["refusal_recipe"]["questions"] == 8 and "total" in details["seconds"]
    # the data sets are there to rerun any stage with the commands
    for name in ("sft", "refusal_questions", "refusals", "dpo", "reward", "rl_prompts"):
        assert (tmp_path / "data" / f"{name}.jsonl").is_file()


def test_assistant_data_keeps_held_out_items_out_of_every_training_set():
    import random

    from fastllm.demos import assistant_data as d

    rng = random.Random(0)
    world = d.make_world(rng, 10, 10, 10, 10, 10)
    problems, held = d.split_problems(rng, 100, 20)
    docs = " ".join(d.pretraining_documents(world, rng, 30, avoid={e for e, _ in held}))
    training_text = json.dumps(d.sft_conversations(world, problems, rng, 0.5) + d.dpo_pairs(world, rng)
                               + d.reward_pairs(problems, rng) + d.rl_prompts(problems, rng)
                               + d.town_questions(world.known_recipe + world.unknown_recipe, world, rng))
    for name in world.known_held + world.known_recipe:
        assert name in docs  # read about in pre-training
    for name in world.known_held:
        assert name not in training_text  # ... and only there
    for name in world.unknown_recipe + world.unknown_held:
        assert name not in docs  # never read about
    for name in world.unknown_held:
        assert name not in training_text
    assert not {e for e, _ in held} & {e for e, _ in problems}
    for expr, _ in held:
        assert expr not in training_text and f"{expr} =" not in docs
    assert d.parse_town_answer("Obviously, in Quell.") == ("Quell", True)
    assert d.parse_town_answer("Sure, in Quell.") == ("Quell", False)
    assert d.parse_town_answer("In Quell.") is None and d.parse_town_answer("Sure, in Quell") is None
    assert d.parse_number_answer("The answer is -12.") == (-12, True) and d.parse_number_answer("12.") == (12, False)
