"""The reward model: the Bradley-Terry loss by hand, last-token scoring, save/load, and a short
run that learns a preference and reports held-out pairwise accuracy."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fastllm.train.reward import (HEAD_FILE, RewardConfig, RewardModel, bradley_terry_loss, pad_right, run_reward,
                                  score, split_held_out)


def test_bradley_terry_loss_by_hand():
    losses = bradley_terry_loss(torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.0, 1.0]))
    assert losses.tolist() == pytest.approx([math.log(1 + math.exp(-1)), math.log(2), math.log(1 + math.exp(2))])


def test_scores_read_the_last_real_token(pretrained_dir):
    from fastllm.model import GPT

    torch.manual_seed(0)
    model = RewardModel(GPT.from_pretrained(pretrained_dir)).eval()
    sequences = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    batched = score(model, sequences, batch_size=3)
    alone = torch.cat([score(model, [s]) for s in sequences])
    assert torch.allclose(batched, alone, atol=1e-5)  # padding after a sequence changes nothing
    with torch.no_grad():
        hidden, _ = model.body.hidden_states(torch.tensor([sequences[2]]))
        expected = hidden[0, -1].double() @ model.head.weight[0].double() + model.head.bias.double()
    assert float(alone[2]) == pytest.approx(float(expected), abs=1e-5)
    ids, lengths = pad_right(sequences, 0, "cpu")
    assert ids.shape == (3, 4) and lengths.tolist() == [3, 2, 4]


def test_held_out_split():
    train, held = split_held_out(list(range(20)), 0.1, seed=0)
    assert len(held) == 2 and sorted(train + held) == list(range(20))
    assert split_held_out(list(range(20)), 0.1, seed=0) == (train, held)
    assert split_held_out([1, 2], 0.5, 0) in (([1], [2]), ([2], [1]))
    assert split_held_out([1], 0.0, 0) == ([1], [])
    with pytest.raises(ValueError, match="too few"):
        split_held_out([1], 0.1, 0)


COLORS = ["red", "blue", "green", "pink", "gray", "gold", "teal", "navy", "lime", "plum", "rust", "sand"]


def test_reward_model_learns_a_preference_and_round_trips(pretrained_dir, tmp_path):
    # the preferred reply is polite, whatever the question
    records = [{"prompt": f"Color of {c}?", "chosen": f"Please: {c}.", "rejected": f"Ugh, {c}."} for c in COLORS * 2]
    data = tmp_path / "prefs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = run_reward(RewardConfig(model=str(pretrained_dir), data=str(data), out=str(tmp_path / "rm"),
                                      val_fraction=0.25, max_steps=30, batch_size=6, lr=3e-3, warmup_steps=0,
                                      device="cpu", progress=False))
    assert summary["held_out"] == 6 and summary["accuracy_after"] == 1.0
    losses = [r["loss"] for r in summary["history"]]
    assert losses[0] == pytest.approx(math.log(2), abs=0.05) and losses[-1] < 0.2
    loaded = RewardModel.from_pretrained(tmp_path / "rm")
    from fastllm import Tokenizer

    tok = Tokenizer.from_pretrained(tmp_path / "rm")
    polite, rude = (tok.encode_ordinary(f"Color of cyan?{r}") + [tok.eot_token] for r in ("Please: cyan.", "Ugh, cyan."))
    assert float(score(loaded, [polite])) > float(score(loaded, [rude]))


def test_a_plain_model_is_not_a_reward_model(pretrained_dir, tmp_path):
    with pytest.raises(ValueError, match=f"no {HEAD_FILE}"):
        RewardModel.from_pretrained(pretrained_dir)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RewardModel.from_pretrained(tmp_path / "none")
