import math

import pytest
import torch

from fastllm.model import evaluate_text
from fastllm.model.evaluate import evaluate_ids, windows

TEXT = "the heart of the matter is in the other thing, and the caf\u00e9 is open again. " * 2


def brute_force_nll(hf_model, ids, context):
    """Each token scored from the ``context`` tokens before it, or as windows would do it."""
    total = 0.0
    with torch.no_grad():
        for start, first, end in windows(len(ids), context, context):
            logits = hf_model(torch.tensor([ids[start : end - 1]])).logits[0]
            logp = torch.log_softmax(logits.double(), -1)
            for pos in range(first, end):
                total -= float(logp[pos - 1 - start, ids[pos]])
    return total


@pytest.mark.parametrize("context, stride", [(64, 64), (20, 20), (20, 7), (5, 1)])
def test_windows_score_every_token_once(context, stride):
    n = 101
    scored = []
    for start, first, end in windows(n, context, stride):
        assert 0 < end - 1 - start <= context and start < first <= end
        scored.extend(range(first, end))
    assert scored == list(range(1, n))


def test_loss_perplexity_bits_per_byte_against_transformers(model, hf_model, tokenizer):
    ids = tokenizer.encode(TEXT)
    result = evaluate_text(model, tokenizer, TEXT, context=20, batch_size=3, progress=False)
    nll = brute_force_nll(hf_model, ids, 20)
    assert result.tokens == len(ids) - 1
    assert result.bytes == len(tokenizer.decode_bytes(ids[1:]))
    assert result.loss == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(nll / (len(ids) - 1)), rel=1e-5)
    assert result.bits_per_byte == pytest.approx(nll / math.log(2) / result.bytes, rel=1e-5)


def test_stride_one_equals_per_token_full_context(model, hf_model, tokenizer):
    ids = tokenizer.encode(TEXT)[:40]
    result = evaluate_ids(model, ids, 40, context=8, stride=1, batch_size=16, progress=False)
    total = 0.0
    with torch.no_grad():
        for pos in range(1, len(ids)):
            context_ids = ids[max(0, pos - 8) : pos]
            total -= float(torch.log_softmax(hf_model(torch.tensor([context_ids])).logits[0, -1].double(), -1)[ids[pos]])
    assert result.loss == pytest.approx(total / (len(ids) - 1), rel=1e-5)


@pytest.mark.parametrize(
    "text, options, message",
    [
        ("a", {}, "at least 2"),
        ("", {}, "at least 2"),
        (TEXT, dict(context=65), "context"),
        (TEXT, dict(context=8, stride=9), "stride"),
    ],
)
def test_bad_eval_input(model, tokenizer, text, options, message):
    with pytest.raises(ValueError, match=message):
        evaluate_text(model, tokenizer, text, progress=False, **options)
