"""Helpers shared by the kernel tests: tolerances, random inputs, comparison."""

from __future__ import annotations

import torch

# (forward, gradient) tolerances against float64 references, used as both atol and rtol.
# fp32 compares against IEEE-fp32 dot products; on a GPU the same precision holds.
TOL = {
    torch.float32: (1e-4, 2e-4),
    torch.float16: (5e-3, 1e-2),
    torch.bfloat16: (5e-2, 1e-1),
}

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    """``|actual - expected| <= tol + tol * |expected|`` elementwise, with equal infinities."""
    a = actual.detach().double()
    e = expected.detach().double()
    assert a.shape == e.shape, f"{what}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    inf_e = torch.isinf(e)
    assert torch.equal(torch.isinf(a), inf_e), f"{what}: infinities differ"
    assert torch.equal(a[inf_e], e[inf_e]), f"{what}: signs of infinities differ"
    assert not torch.isnan(a).any(), f"{what}: NaN in result"
    a, e = a[~inf_e], e[~inf_e]
    err = (a - e).abs()
    bound = tol + tol * e.abs()
    if a.numel() and not bool((err <= bound).all()):
        worst = int(torch.argmax(err - bound))
        raise AssertionError(
            f"{what}: max abs error {err.max().item():.3e} (tol {tol:.1e}); worst element "
            f"{a[worst].item():.6g} vs {e[worst].item():.6g}"
        )


def randn(shape, dtype, seed: int, device: str = DEVICE, scale: float = 1.0) -> torch.Tensor:
    """Fresh normal samples from a seeded generator, rounded to ``dtype``."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(device=device, dtype=dtype)
