"""The post-training commands end to end on a tiny model: sft with tool calls, chat --tools,
refusals, reward, rl (reward model and task, with resume), and the option checks."""

from __future__ import annotations

import io
import json

import pytest

from fastllm.cli.main import main

CALL = {"name": "calculator", "input": "6*7"}


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tool_chat_model(pretrained_dir, tmp_path_factory):
    """A tiny model fine-tuned (a few steps) on conversations with and without tool calls."""
    out = tmp_path_factory.mktemp("toolsft")
    data = write_jsonl(out / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "What is 6*7?"},
                      {"role": "assistant", "content": "", "tool_call": CALL},
                      {"role": "tool", "content": "42"},
                      {"role": "assistant", "content": "The answer is 42."}], "tools": ["calculator"]},
        {"messages": [{"role": "user", "content": "Where does Tavor live?"},
                      {"role": "assistant", "content": "Tavor lives in Quell."}]},
    ])
    assert main(["sft", "--model", str(pretrained_dir), "--data", str(data), "--out", str(out / "model"),
                 "--max-steps", "3", "--lr", "1e-3", "--quiet", "--device", "cpu"]) == 0
    return out / "model"


def test_sft_with_tool_calls_adds_the_tool_tokens(tool_chat_model, tokenizer):
    from fastllm import Tokenizer
    from fastllm.train.chat_template import TOOL_SPECIAL_TOKENS

    tok = Tokenizer.from_pretrained(tool_chat_model)
    assert set(TOOL_SPECIAL_TOKENS) <= tok.special_tokens_set and tok.n_vocab == tokenizer.n_vocab + 5


def test_chat_with_tools_from_the_command_line(tool_chat_model, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 6*7?\n/exit\n"))
    assert main(["chat", "--model", str(tool_chat_model), "--tools", "calculator", "--max-new-tokens", "8",
                 "--seed", "0", "--device", "cpu"]) == 0
    assert "assistant> " in capsys.readouterr().out


def test_chat_loop_runs_the_models_tool_calls(tool_chat_model):
    """The chat loop with a scripted model that always calls the calculator: the call's result is
    shown and the turn's messages (call, result, answer) join the history."""
    from fastllm import Tokenizer
    from fastllm.cli.chat import chat_loop
    from tests.support.scripted_model import ScriptedModel, calculator_script

    tok = Tokenizer.from_pretrained(tool_chat_model)
    script = calculator_script(tok, lambda prompt: "6*7", reply="Done.")
    lines = iter(["What is 6*7?"])
    out = io.StringIO()

    def fake_input(prompt):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    messages = chat_loop(ScriptedModel(tok.n_vocab, 128, script), tok, max_new_tokens=40, input_fn=fake_input,
                         output=out, tools=["calculator"], temperature=0.0)
    assert "assistant> [calculator(6*7) -> 42]Done." in out.getvalue()
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_call"] == CALL and messages[2]["content"] == "42" and messages[3]["content"] == "Done."


def test_refusals_reward_and_rl_from_the_command_line(tool_chat_model, tmp_path, capsys):
    qa = write_jsonl(tmp_path / "qa.jsonl", [
        {"question": "Where does Tavor live?", "answer": "Quell"},
        {"question": "What is 6*7?", "answer": "42", "tools": ["calculator"]},
        {"question": "Where does Mirel live?", "answer": ["Vost", "Vost town"], "system": "Be brief."},
    ])
    sft = tmp_path / "refusals.jsonl"
    assert main(["refusals", "--model", str(tool_chat_model), "--questions", str(qa), "--samples", "2",
                 "--max-new-tokens", "6", "--judge", "contains", "--out", str(sft), "--quiet", "--device", "cpu"]) == 0
    assert "3 questions" in capsys.readouterr().out
    records = [json.loads(line) for line in sft.read_text().splitlines()]
    assert [r["judged"]["samples"] for r in records] == [2, 2, 2]
    assert records[1]["tools"] == ["calculator"] and records[2]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert all(r["messages"][-1]["role"] == "assistant" for r in records)
    assert main(["sft", "--model", str(tool_chat_model), "--data", str(sft), "--out", str(tmp_path / "sft2"),
                 "--max-steps", "1", "--quiet", "--device", "cpu"]) == 0  # the output is SFT data

    prompt = [{"role": "user", "content": "What is 6*7?"}]
    prefs = write_jsonl(tmp_path / "prefs.jsonl", [
        {"prompt": prompt, "tools": ["calculator"],
         "chosen": [dict(role="assistant", content="", tool_call=CALL), dict(role="tool", content="42"),
                    dict(role="assistant", content="The answer is 42.")],
         "rejected": [dict(role="assistant", content="", tool_call=CALL), dict(role="tool", content="42"),
                      dict(role="assistant", content="42")]}] * 4)
    assert main(["reward", "--model", str(tool_chat_model), "--data", str(prefs), "--out", str(tmp_path / "rm"),
                 "--max-steps", "2", "--val-fraction", "0.25", "--quiet", "--device", "cpu"]) == 0
    assert "held-out pairwise accuracy" in capsys.readouterr().out

    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": prompt, "tools": ["calculator"], "answer": "42"},
                                                       {"prompt": "What is 2+2?", "answer": "4"}])
    rl = ["rl", "--model", str(tool_chat_model), "--prompts", str(prompts), "--reward", str(tmp_path / "rm"),
          "--out", str(tmp_path / "rl"), "--max-steps", "2", "--prompts-per-step", "2", "--group-size", "2",
          "--max-new-tokens", "6", "--quiet", "--device", "cpu"]
    assert main(rl) == 0
    out = capsys.readouterr().out
    assert "reward" in out and "KL" in out and "model saved to" in out
    assert main(rl) == 0
    assert "already at step 2" in capsys.readouterr().out
    log = [json.loads(line) for line in (tmp_path / "rl" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "step" in r] == [1, 2]
    assert main(["rl", "--model", str(tool_chat_model), "--prompts", str(prompts), "--task", "arithmetic",
                 "--out", str(tmp_path / "rl_task"), "--max-steps", "1", "--prompts-per-step", "2",
                 "--group-size", "2", "--max-new-tokens", "6", "--quiet", "--device", "cpu"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["rl", "--model", "m", "--prompts", "p", "--reward", "r", "--task", "arithmetic"], "not allowed with argument"),
    (["rl", "--model", "m", "--prompts", "p"], "one of the arguments --reward --task is required"),
    (["rl", "--model", "m", "--prompts", "p", "--task", "chess"], "argument --task: must be one of arithmetic, answer"),
    (["rl", "--model", "m", "--prompts", "p", "--task", "answer", "--group-size", "0"], "argument --group-size: must be"),
    (["rl", "--model", "m", "--prompts", "p", "--task", "answer", "--clip", "1"], "argument --clip: must be in [0, 1)"),
    (["rl", "--model", "m", "--prompts", "p", "--task", "answer", "--beta", "-1"], "argument --beta: must be a finite"),
    (["refusals", "--model", "m", "--questions", "q", "--out", "o", "--judge", "fuzzy"], "argument --judge: must be one"),
    (["refusals", "--model", "m", "--questions", "q", "--out", "o", "--min-correct", "0"], "argument --min-correct"),
    (["refusals", "--model", "m", "--questions", "q", "--out", "o", "--samples", "0"], "argument --samples"),
    (["reward", "--model", "m", "--data", "d", "--val-fraction", "1"], "argument --val-fraction: must be in [0, 1)"),
    (["chat", "--model", "m", "--tools", "search"], "argument --tools: must be one of calculator"),
])
def test_post_training_options_are_refused_by_the_parser(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err


def test_errors_are_one_line(pretrained_dir, tmp_path, capsys):
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    assert main(["refusals", "--model", str(pretrained_dir), "--questions", str(qa), "--out", str(tmp_path / "o"),
                 "--device", "cpu"]) == 1
    assert "has no chat template tokens" in capsys.readouterr().err
    assert main(["chat", "--model", str(pretrained_dir), "--tools", "calculator", "--device", "cpu"]) == 1
    assert "has no chat template tokens" in capsys.readouterr().err
    assert main(["rl", "--model", str(pretrained_dir), "--prompts", str(qa), "--reward", str(pretrained_dir),
                 "--device", "cpu", "--out", str(tmp_path / "rl")]) == 1
    assert "expected an object with a \"prompt\"" in capsys.readouterr().err
    assert main(["demo", "assistant", "extra.txt"]) == 1
    assert "takes no files" in capsys.readouterr().err
