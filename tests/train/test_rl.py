"""GRPO: the advantage, KL and loss arithmetic against hand-computed values, the rewards, and
short runs that raise a reward and resume exactly."""

from __future__ import annotations

import json
import math

import pytest
import torch

from fastllm.train.rl import (TASKS, RLConfig, RLTrainer, arithmetic_reward, answer_reward, grpo_loss,
                              group_advantages, kl_estimate, token_logprobs)
from fastllm.model import GPTOutput

L = math.log


def test_group_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 3.0, 1.0])
    got = group_advantages(rewards[:8], 4)
    # group 1: mean 0.5, population std 0.5; group 2: all equal -> no signal
    assert got.tolist() == pytest.approx([1, -1, -1, 1, 0, 0, 0, 0], abs=1e-5)
    assert group_advantages(torch.tensor([3.0, 1.0]), 2).tolist() == pytest.approx([1, -1], abs=1e-5)
    # mean 1, std sqrt((1 + 1 + 4) / 3) = sqrt(2)
    r = math.sqrt(2)
    assert group_advantages(torch.tensor([0.0, 0.0, 3.0]), 3).tolist() == pytest.approx([-1 / r, -1 / r, 2 / r], rel=1e-5)
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(rewards, 4)


def test_kl_estimate_by_hand_and_its_mean_is_the_kl():
    # pi = 0.5, ref = 0.25: 0.25/0.5 - log(0.5) - 1
    assert float(kl_estimate(torch.tensor(L(0.5)), torch.tensor(L(0.25)))) == pytest.approx(0.5 - L(0.5) - 1)
    assert float(kl_estimate(torch.tensor(-1.3), torch.tensor(-1.3))) == 0.0
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(50, dtype=torch.float64), 0)
    q = torch.softmax(torch.randn(50, dtype=torch.float64), 0)
    expected = float((p * (p.log() - q.log())).sum())
    assert float((p * kl_estimate(p.log(), q.log())).sum()) == pytest.approx(expected, rel=1e-10)
    assert bool((kl_estimate(p.log(), q.log()) >= 0).all())


def loss_case():
    logp = torch.tensor([[L(0.5), L(0.4), 0.0], [L(0.3), L(0.6), L(0.1)]], dtype=torch.float64)
    old = torch.tensor([[L(0.5), L(0.2), 0.0], [L(0.6), L(0.6), L(0.05)]], dtype=torch.float64)
    ref = torch.tensor([[L(0.25), L(0.4), 0.0], [L(0.3), L(0.3), L(0.1)]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    return logp, old, ref, torch.tensor([1.0, -1.0], dtype=torch.float64), mask


def test_grpo_loss_by_hand():
    logp, old, ref, adv, mask = loss_case()
    loss, stats = grpo_loss(logp, old, ref, adv, mask, clip=0.2, beta=0.1)
    k = 0.5 - L(0.5) - 1  # the KL term where pi/ref = 2
    # row 0 (A = +1): ratio 1 -> -1 + 0.1 k; ratio 2 clipped to 1.2 -> -1.2
    row0 = ((-1 + 0.1 * k) + (-1.2)) / 2
    # row 1 (A = -1): ratio 0.5 -> min(-0.5, -0.8) = -0.8 -> +0.8; ratio 1 -> 1 + 0.1 k; ratio 2 -> min(-2, -1.2) -> +2
    row1 = (0.8 + (1 + 0.1 * k) + 2) / 3
    assert float(loss) == pytest.approx((row0 + row1) / 2, rel=1e-12)
    assert stats["kl"] == pytest.approx(2 * k / 5) and stats["clipped"] == pytest.approx(3 / 5)


def test_on_policy_gradient_is_the_advantage_per_token():
    """With pi_old = pi (one update per batch) the surrogate's gradient on each written token's
    log-probability is -A_i / (|o_i| * batch); the KL adds beta (1 - ref/pi) / (|o_i| * batch)."""
    logp, _, ref, adv, mask = loss_case()
    logp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(logp, logp.detach(), ref, adv, mask, clip=0.2, beta=0.1)
    loss.backward()
    lengths = mask.sum(1, keepdim=True).double()
    kl_grad = 0.1 * (1 - torch.exp(ref - logp.detach()))
    expected = ((-adv[:, None] + kl_grad) / (lengths * 2)) * mask
    assert torch.allclose(logp.grad, expected, atol=1e-12)


def test_token_logprobs_and_entropy_match_float64():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 9)
    y = torch.randint(0, 9, (2, 4))
    logp, entropy = token_logprobs(lambda x: GPTOutput(logits), torch.zeros(2, 4, dtype=torch.long), y)
    ref = torch.log_softmax(logits.double(), -1)
    assert torch.allclose(logp.double(), ref.gather(-1, y[..., None])[..., 0], atol=1e-6)
    assert torch.allclose(entropy.double(), -(ref.exp() * ref).sum(-1), atol=1e-5)


@pytest.mark.parametrize("reply, answer, reward", [
    ("The answer is 84.", "84", 1.0), ("84 or 85", 84, 0.0), ("no number", "1", 0.0), ("It is -3.50", "-3.5", 1.0),
    ("1,000 apples", 1000, 1.0), ("2.5", "5/2", 1.0),
])
def test_arithmetic_reward(reply, answer, reward):
    assert arithmetic_reward({"answer": answer}, reply) == reward


def test_answer_reward_uses_the_contains_judge():
    assert answer_reward({"answer": "Quell"}, "Tavor lives in quell.") == 1.0
    assert answer_reward({"answer": ["Brask", "Quell"]}, "In Quellton.") == 0.0


# -- short runs ------------------------------------------------------------------------------------
def lowercase_share(record, reply):
    return sum(c.islower() for c in reply) / max(1, len(reply))


@pytest.fixture()
def letter_task(monkeypatch, tmp_path):
    monkeypatch.setitem(TASKS, "lowercase", lowercase_share)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p, "answer": "x"}) + "\n" for p in ("One", "Two", "Three", "Four")))
    return prompts


def rl_config(model, prompts, out, **overrides):
    settings = dict(model=str(model), prompts=str(prompts), task="answer", out=str(out), max_steps=4,
                    prompts_per_step=2, group_size=4, max_new_tokens=6, lr=3e-3, checkpoint_interval=2,
                    device="cpu", progress=False, seed=3)
    settings.update(overrides)
    return RLConfig(**settings)


def test_rl_raises_the_reward(pretrained_dir, letter_task, tmp_path):
    summary = RLTrainer(rl_config(pretrained_dir, letter_task, tmp_path / "rl", task="lowercase", max_steps=16, lr=2e-2, beta=0.0,
                                  prompts_per_step=4, group_size=8, updates_per_batch=2)).run()
    rewards = [r["reward"] for r in summary["history"]]
    assert sum(rewards[-4:]) / 4 > 2 * sum(rewards[:4]) / 4 + 0.05, rewards
    first = summary["history"][0]
    assert first["kl"] == pytest.approx(0.0, abs=1e-9) and first["entropy"] > 4  # near uniform over 265 tokens
    assert {"reward", "kl", "entropy", "clipped", "length"} <= set(first)
    from fastllm.model import GPT

    assert GPT.from_pretrained(tmp_path / "rl").config.vocab_size == 265


def test_rl_resumes_exactly(pretrained_dir, letter_task, tmp_path):
    straight = RLTrainer(rl_config(pretrained_dir, letter_task, tmp_path / "a", task="lowercase"))
    straight.run()
    cut = RLTrainer(rl_config(pretrained_dir, letter_task, tmp_path / "b", task="lowercase"))
    assert cut.run(stop_at=2)["steps"] == 2
    resumed = RLTrainer(rl_config(pretrained_dir, letter_task, tmp_path / "b", task="lowercase"))
    summary = resumed.run()
    assert summary["resumed"] and summary["steps"] == 4
    for (name, a), (_, b) in zip(straight.policy.state_dict().items(), resumed.policy.state_dict().items()):
        assert torch.equal(a, b), name
    steps = [json.loads(line).get("step") for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [s for s in steps if s is not None] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="from another run .*group_size"):
        RLTrainer(rl_config(pretrained_dir, letter_task, tmp_path / "b", task="lowercase", group_size=2)).run()


@pytest.mark.parametrize("overrides, match", [
    (dict(task=None), "exactly one reward"),
    (dict(reward="somewhere"), "exactly one reward"),
    (dict(task="chess"), "task must be one of"),
    (dict(group_size=1), "group_size must be >= 2"),
    (dict(clip=1.5), "clip must be in"),
    (dict(temperature=0), "temperature must be a finite number > 0"),
])
def test_bad_rl_settings(overrides, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        rl_config("m", "p", tmp_path, **overrides)


def test_bad_prompt_records(pretrained_dir, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match=r"p.jsonl:1: the task's checker needs an \"answer\""):
        RLTrainer(rl_config(pretrained_dir, path, tmp_path / "o", task="answer"))
    with pytest.raises(ValueError, match=r"p.jsonl:2: a chat prompt, but the model has no chat template tokens"):
        RLTrainer(RLConfig(model=str(pretrained_dir), prompts=str(path), reward=str(pretrained_dir), device="cpu"))
    path.write_text(json.dumps({"prompt": "fine"}) + "\n")
    with pytest.raises(ValueError, match="is not a reward model .*fastllm reward"):
        RLTrainer(RLConfig(model=str(pretrained_dir), prompts=str(path), reward=str(pretrained_dir), device="cpu"))
