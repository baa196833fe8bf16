import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.train.optim import WarmupCosine, make_adamw, param_groups


def test_weight_decay_only_on_linear_weight_matrices():
    from fastllm.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=100, block_size=16, n_layer=2, n_head=2, n_embd=16))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = sorted(names[id(p)] for p in decay["params"])
    expected = sorted(n for n, p in model.named_parameters()
                      if n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")))
    assert decayed == expected and len(expected) == 2 * 4
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    every = [id(p) for p in decay["params"] + no_decay["params"]]
    assert len(every) == len(set(every)) == len(list(model.parameters()))  # tied weight once
    assert any(p is model.transformer.wte.weight for p in no_decay["params"])
    optimizer = make_adamw(model, lr=1e-3, weight_decay=0.1)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def test_schedule_values():
    s = WarmupCosine(max_lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    assert s(0) == pytest.approx(0.1)
    assert s(9) == pytest.approx(1.0)
    assert s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.55)  # halfway through the cosine
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    assert WarmupCosine(1.0, 0.0, 0, 10)(0) == pytest.approx(1.0)
    assert s.state_dict() == {"max_lr": 1.0, "min_lr": 0.1, "warmup_steps": 10, "total_steps": 110}


@settings(max_examples=100, deadline=None)
@given(warmup=st.integers(0, 50), total=st.integers(1, 300), max_lr=st.floats(1e-5, 1.0),
       ratio=st.floats(0.0, 1.0))
def test_schedule_rises_then_never_increases(warmup, total, max_lr, ratio):
    warmup = min(warmup, total)
    s = WarmupCosine(max_lr, max_lr * ratio, warmup, total)
    values = [s(step) for step in range(total + 5)]
    peak = min(warmup, total)
    assert all(b >= a - 1e-12 for a, b in zip(values[:peak], values[1:peak]))
    after = values[max(peak - 1, 0):]
    assert all(b <= a + 1e-12 for a, b in zip(after, after[1:]))
    assert all(0 <= v <= max_lr + 1e-12 for v in values)
    assert all(v >= max_lr * ratio - 1e-12 for v in after)
    assert math.isclose(values[-1], max_lr * ratio, rel_tol=1e-9, abs_tol=1e-12)


def test_schedule_rejects_bad_settings():
    with pytest.raises(ValueError):
        WarmupCosine(0.1, 0.2, 0, 10)
    with pytest.raises(ValueError):
        WarmupCosine(0.1, 0.0, -1, 10)
    with pytest.raises(ValueError):
        WarmupCosine(0.1, 0.0, 0, 0)
    with pytest.raises(ValueError):
        WarmupCosine(0.1, 0.0, 11, 10)
