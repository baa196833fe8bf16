"""model(idx, targets): torch cross-entropy, or fastllm.kernels.linear_cross_entropy (fused) on request / on CUDA."""

import pytest
import torch

from fastllm.kernels import force_backend, interpreting
from fastllm.model import GPT


def loss_and_grads(model, idx, targets):
    model.zero_grad()
    logits, loss, _ = model(idx, targets)
    loss.backward()
    return logits, loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_fused_loss_equals_torch_loss(hf_dir, backend):
    if backend == "triton" and not (interpreting() or torch.cuda.is_available()):
        pytest.skip("needs TRITON_INTERPRET=1 or a GPU")
    model = GPT.from_pretrained(hf_dir)  # eval mode: no dropout, gradients still flow
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, model.config.vocab_size, (2, 12), generator=g)
    targets = torch.randint(0, model.config.vocab_size, (2, 12), generator=g)
    targets[1, :5] = -100
    model.fused_loss = False
    logits, expected, expected_grads = loss_and_grads(model, idx, targets)
    assert logits is not None
    model.fused_loss = True
    with force_backend(backend):
        logits, loss, grads = loss_and_grads(model, idx, targets)
    assert logits is None
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    for name, grad in expected_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_auto_uses_torch_loss_on_cpu(model):
    idx = torch.zeros((1, 4), dtype=torch.long)
    assert model.fused_loss is None
    logits, _, _ = model(idx, idx)
    assert logits is not None


@pytest.mark.gpu
def test_auto_uses_fused_loss_on_cuda(hf_dir):
    model = GPT.from_pretrained(hf_dir, device="cuda")
    idx = torch.randint(0, model.config.vocab_size, (2, 16), device="cuda")
    logits, loss, _ = model(idx, idx)
    assert logits is None
    model.fused_loss = False
    torch.testing.assert_close(loss, model(idx, idx).loss, atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_cuda_generation_equals_cpu(hf_dir):
    """Triton prefill + decode kernels on the GPU against the CPU reference (greedy)."""
    prompt = [5, 6, 7, 8, 9, 10]
    cpu = GPT.from_pretrained(hf_dir).generate(prompt, 20, temperature=0)
    with force_backend("auto"):
        cuda = GPT.from_pretrained(hf_dir, device="cuda").generate(prompt, 20, temperature=0)
    assert cuda == cpu
