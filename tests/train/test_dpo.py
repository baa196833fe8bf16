import json
import math

import pytest
import torch

from fastllm.model import GPTOutput
from fastllm.train.dpo import DPOConfig, dpo_loss, encode_pair, load_preferences, run_dpo, sequence_logprobs


def test_dpo_loss_matches_a_hand_computation():
    pc, pr = torch.tensor([-5.0, -3.0]), torch.tensor([-7.0, -2.0])
    rc, rr = torch.tensor([-6.0, -3.5]), torch.tensor([-6.5, -2.5])
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.1)
    # pair 0: 0.1 * ((-5 + 6) - (-7 + 6.5)) = 0.15; pair 1: 0.1 * ((-3 + 3.5) - (-2 + 2.5)) = 0.0
    expected = [math.log(1 + math.exp(-0.15)), math.log(2.0)]
    assert losses.tolist() == pytest.approx(expected, rel=1e-6)
    assert chosen.tolist() == pytest.approx([0.1, 0.05]) and rejected.tolist() == pytest.approx([-0.05, 0.05])


def test_sequence_logprobs_sum_the_target_tokens():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    model = lambda x: GPTOutput(logits)  # noqa: E731
    y = torch.tensor([[3, -100, 4, 5, -100], [-100, -100, 1, 2, 10]])
    got = sequence_logprobs(model, torch.zeros(2, 5, dtype=torch.long), y)
    expected = [sum(torch.log_softmax(logits[b, t].double(), -1)[int(y[b, t])].item()
                    for t in range(5) if y[b, t] != -100) for b in range(2)]
    assert got.tolist() == pytest.approx(expected, rel=1e-5)


PAIRS = [("Sky color?", "Blue.", "Green."), ("Grass color?", "Green.", "Pink."),
         ("Snow color?", "White.", "Black."), ("Coal color?", "Black.", "White.")]


def test_short_dpo_run_raises_the_margin(pretrained_dir, tmp_path):
    data = tmp_path / "prefs.jsonl"
    records = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]
    records.append({"prompt": [{"role": "user", "content": "Sun color?"}],
                    "chosen": [{"role": "assistant", "content": "Yellow."}], "rejected": "Blue."})
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = run_dpo(DPOConfig(model=str(pretrained_dir), data=str(data), out=str(tmp_path / "dpo"),
                                max_steps=12, batch_size=5, lr=2e-3, warmup_steps=0, beta=0.1, device="cpu",
                                progress=False))
    history = summary["history"]
    assert history[0]["margin"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at the start
    assert history[0]["loss"] == pytest.approx(math.log(2), rel=1e-5)
    assert history[-1]["margin"] > 0.5 and history[-1]["accuracy"] == 1.0
    assert history[-1]["loss"] < history[0]["loss"]
    from fastllm import Tokenizer

    assert "<|im_end|>" in Tokenizer.from_pretrained(tmp_path / "dpo").special_tokens_set


def test_pairs_mask_the_prompt(tokenizer):
    chosen, rejected = encode_pair({"prompt": "Q?", "chosen": "yes", "rejected": "no"}, tokenizer, "x:1")
    prompt = tokenizer.encode_ordinary("Q?")
    assert chosen[0] == prompt + tokenizer.encode_ordinary("yes") + [tokenizer.eot_token]
    assert chosen[1] == [-100] * len(prompt) + tokenizer.encode_ordinary("yes") + [tokenizer.eot_token]
    assert rejected[1][len(prompt):] == tokenizer.encode_ordinary("no") + [tokenizer.eot_token]


@pytest.mark.parametrize("record, match", [
    ({"prompt": "a", "chosen": "b"}, "expected an object with"),
    ({"prompt": 3, "chosen": "b", "rejected": "c"}, "\"prompt\" must be"),
    ({"prompt": "a", "chosen": ["b"], "rejected": "c"}, "\"chosen\" must be text when the prompt is text"),
    ({"prompt": [{"role": "user", "content": "a"}], "chosen": ["b"], "rejected": "c"},
     "\"chosen\" must be text or a list of assistant"),
    ({"prompt": [{"role": "user", "content": "a"}], "chosen": "b", "rejected": [{"role": "tool", "content": "1"}]},
     "\"rejected\" must be text or a list of assistant"),
    ({"prompt": [{"role": "user", "content": "a"}], "tools": "calculator", "chosen": "b", "rejected": "c"},
     "\"tools\" must be a list"),
    ({"prompt": "a", "chosen": "b", "rejected": ""}, None),
])
def test_bad_preference_records(tokenizer, tmp_path, record, match):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps(record) + "\n")
    if match is None:  # an empty reply still has its end token: allowed
        assert len(load_preferences(path, tokenizer, 64)) == 2
        return
    with pytest.raises(ValueError, match=r"p.jsonl:2: " + match.replace("(", r"\(")):
        load_preferences(path, tokenizer, 64)


def test_pairs_longer_than_the_context_are_refused(tokenizer, tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b" * 80}) + "\n")
    with pytest.raises(ValueError, match=r"long.jsonl:1: \d+ tokens, longer than the model's context of 64"):
        load_preferences(path, tokenizer, 64)


def test_dpo_rejects_bad_beta(pretrained_dir, tmp_path):
    with pytest.raises(ValueError, match="beta"):
        run_dpo(DPOConfig(model=str(pretrained_dir), data="x", beta=0.0))


def test_chat_pairs_with_tool_calls_train_the_calls_not_the_results(tokenizer):
    from fastllm.train.chat_template import with_chat_tokens

    tok = with_chat_tokens(tokenizer, tools=True)
    call = [{"role": "assistant", "content": "", "tool_call": {"name": "calculator", "input": "6*7"}},
            {"role": "tool", "content": "42"}]
    record = {"prompt": [{"role": "user", "content": "6*7?"}], "tools": ["calculator"],
              "chosen": call + [{"role": "assistant", "content": "The answer is 42."}],
              "rejected": call + [{"role": "assistant", "content": "42."}]}
    chosen, rejected = encode_pair(record, tok, "x:1")
    trained = lambda example: tok.decode([t for t, label in zip(*example) if label != -100])  # noqa: E731
    assert trained(chosen) == "<|tool_call|>calculator(6*7)<|tool_result|>The answer is 42.<|im_end|>"
    assert trained(rejected) == "<|tool_call|>calculator(6*7)<|tool_result|>42.<|im_end|>"
    assert tok.decode(chosen[0]).startswith("<|im_start|>system\nTools: calculator.<|im_end|>")


def test_chat_replies_end_at_their_end_token(tokenizer):
    """Where generation stops, so a reward model scores a pair's sequence as it scores a rollout."""
    from fastllm.train.chat_template import IM_END, special_id, with_chat_tokens

    tok = with_chat_tokens(tokenizer)
    chosen, _ = encode_pair({"prompt": [{"role": "user", "content": "hi"}], "chosen": "yes", "rejected": "no"}, tok, "x")
    assert chosen[0][-1] == special_id(tok, IM_END) and chosen[1][-1] == special_id(tok, IM_END)
