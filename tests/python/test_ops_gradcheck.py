"""torch.autograd.gradcheck on supra's registered linear-attention ops, loaded from libsupra_kernels.so."""
import math
import os

import pytest
import torch

LIB = os.environ.get("SUPRA_KERNELS_LIB", "")


@pytest.fixture(scope="module")
def ops():
    if not LIB or not os.path.exists(LIB):
        pytest.skip("SUPRA_KERNELS_LIB is not set to a built libsupra_kernels.so (run through ctest)")
    torch.ops.load_library(LIB)
    return torch.ops.supra


def inputs(B=1, T=11, H=2, Hkv=1, D=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, D, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(B, T, Hkv, D, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(B, T, Hkv, D, dtype=torch.float64, generator=g, requires_grad=True)
    s0 = torch.randn(B, H, D, D, dtype=torch.float64, generator=g, requires_grad=True)
    log_gamma = torch.tensor([-(2.0 ** (-8 * (h + 1) / H)) for h in range(H)], dtype=torch.float32)
    resets = torch.zeros(B, T, dtype=torch.bool)
    resets[0, 6] = True
    return q, k, v, s0, log_gamma, resets


def test_gradcheck_chunked(ops):
    q, k, v, s0, lg, resets = inputs()
    fn = lambda q, k, v, s0: ops.linear_attention(q, k, v, lg, 1 / math.sqrt(3), s0, resets, 4)
    assert torch.autograd.gradcheck(fn, (q, k, v, s0), eps=1e-6, atol=1e-8)


def test_gradcheck_chunked_no_resets_gqa(ops):
    q, k, v, s0, lg, _ = inputs(B=2, T=9, H=4, Hkv=2, D=2, seed=1)
    fn = lambda q, k, v, s0: ops.linear_attention(q, k, v, lg, 0.5, s0, None, 4)
    assert torch.autograd.gradcheck(fn, (q, k, v, s0), eps=1e-6, atol=1e-8)


def test_ops_match_plain_pytorch_formula(ops):
    """o_i = sum_{j<=i} gamma^(i-j) (q_i . k_j) s v_j, written independently with einsum."""
    q, k, v, _, lg, _ = inputs(B=2, T=20, H=2, Hkv=2, D=4, seed=2)
    s = 0.5
    T = q.shape[1]
    i = torch.arange(T, dtype=torch.float64)
    diff = i[:, None] - i[None, :]
    mask = torch.exp(lg.double()[:, None, None] * diff.clamp(min=0)) * (diff >= 0)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * s * mask
    expected = torch.einsum("bhij,bjhd->bihd", scores, v)
    for name in ("linear_attention", "linear_attention_naive", "linear_attention_recurrent"):
        args = (q, k, v, lg, s) + ((None, None, 8) if name == "linear_attention" else ())
        o, state = getattr(ops, name)(*args)
        torch.testing.assert_close(o, expected, rtol=1e-12, atol=1e-12, msg=name)
    # The state convention: S = sum_j gamma^(T-j) s k_j^T v_j.
    w = torch.exp(lg.double()[None, :, None] * (T - i)[None, None, :]) * s
    expected_state = torch.einsum("bjhk,bhj,bjhv->bhkv", k, w.expand(2, -1, -1), v)
    torch.testing.assert_close(state, expected_state, rtol=1e-12, atol=1e-12)
