"""`supra logits` against Hugging Face transformers on tiny random checkpoints and on stories260K.

fp32: relative error max|supra - hf| / max|hf| <= 1e-5.
bf16: `supra logits --dtype bf16` against the HF fp32 logits, relative error <= max(3e-2, 2 x the error of HF's own
bf16 run) (HF in bf16 lands at about 1.5-2e-2 on the tiny models, more on ill-conditioned ones), argmax equal on
>= 80% of positions and on every position whose fp32 top-2 margin is clearly larger than the bf16 error.
"""

from __future__ import annotations

import hashlib

import pytest
import torch

import make_tiny_hf

F32_TOL = 1e-5
BF16_TOL = 3e-2
SEQ_LEN = 20  # longer than mistral_sliding's window of 8
VARIANTS = list(make_tiny_hf.VARIANTS)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| / max|b|."""
    return ((a - b).abs().max() / b.abs().max()).item()


def bf16_tol(hf_bf16_err: float) -> float:
    return max(BF16_TOL, 2 * hf_bf16_err)


def token_ids(vocab: int, n: int, seed: int = 1234) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return [1] + torch.randint(3, vocab, (n - 1,), generator=g).tolist()


def vocab_of(model_dir) -> int:
    import json

    with open(model_dir / "config.json") as f:
        return json.load(f)["vocab_size"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_fp32_matches_hf(variant, tiny_model, supra_logits, hf_reference):
    d = tiny_model(variant)
    toks = token_ids(vocab_of(d), SEQ_LEN)
    ref = hf_reference(d, toks)
    got = supra_logits(d, toks)
    assert got.shape == ref.shape
    err = rel_err(got, ref)
    assert err <= F32_TOL, f"{variant}: fp32 rel err {err:.3e} > {F32_TOL:.0e} (max|hf| {ref.abs().max():.3f})"


@pytest.mark.parametrize("variant", VARIANTS)
def test_bf16_close_to_hf(variant, tiny_model, supra_logits, hf_reference):
    d = tiny_model(variant)
    toks = token_ids(vocab_of(d), SEQ_LEN)
    ref = hf_reference(d, toks)  # fp32 truth
    hf_bf16 = hf_reference(d, toks, "bf16")
    got = supra_logits(d, toks, "bf16")
    assert got.shape == ref.shape
    err, hf_err = rel_err(got, ref), rel_err(hf_bf16, ref)
    ctx = f"{variant}: supra bf16 rel err {err:.3e} (HF bf16: {hf_err:.3e})"
    assert err <= bf16_tol(hf_err), ctx
    # bf16 must actually have been used: bit-identical to fp32 would mean --dtype was ignored.
    assert err > 0, f"{variant}: --dtype bf16 gave exactly the fp32 logits"
    agree = got.argmax(-1) == ref.argmax(-1)
    assert agree.float().mean().item() >= 0.8, f"{ctx}; argmax agrees on {agree.sum()}/{len(agree)} positions"
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[:, 0] - top2[:, 1]) > 4 * BF16_TOL * ref.abs().max()
    assert bool(agree[clear].all()), f"{ctx}; argmax differs where fp32 margin is large: {(~agree & clear).nonzero()}"


def test_mistral_sliding_window_long(tiny_model, supra_logits, hf_reference):
    """A 64-token batch of one, 8x the window: every position past 8 depends on the window being honoured."""
    d = tiny_model("mistral_sliding")
    toks = token_ids(vocab_of(d), 64, seed=99)
    ref = hf_reference(d, toks)
    got = supra_logits(d, toks)
    err = rel_err(got, ref)
    assert err <= F32_TOL, f"mistral_sliding, 64 tokens: fp32 rel err {err:.3e}"
    # Errors confined to positions >= window would mean the window is wrong rather than the math.
    per_pos = (got - ref).abs().amax(-1) / ref.abs().max()
    assert per_pos[8:].max().item() <= F32_TOL


def test_sliding_window_matters(tiny_model, hf_reference):
    """Guards the test above: the HF reference must change when the window is dropped (no binary needed)."""
    import hf_logits

    d = tiny_model("mistral_sliding")
    toks = token_ids(vocab_of(d), 24, seed=99)
    model = hf_logits.load_model(str(d))
    windowed = hf_logits.logits_for(model, toks)
    model.config.sliding_window = None
    full = hf_logits.logits_for(model, toks)
    assert torch.equal(windowed[:8], full[:8])
    assert rel_err(windowed[8:], full[8:]) > 1e-2


def test_rope_scaling_changes_logits(tiny_model, hf_reference):
    """Guards the RoPE variants: same weights as llama_gqa_untied, so only the RoPE scaling differs; the legacy
    (transformers-4) config layout must mean the same model (no binary needed)."""
    plain = tiny_model("llama_gqa_untied")
    toks = token_ids(vocab_of(plain), SEQ_LEN)
    b = hf_reference(plain, toks)
    a = hf_reference(tiny_model("llama3_rope"), toks)
    lin = hf_reference(tiny_model("llama_linear_rope"), toks)
    legacy = hf_reference(tiny_model("llama3_rope_legacy"), toks)
    assert rel_err(a, b) > 1e-2
    assert rel_err(lin, b) > 1e-2
    assert torch.equal(a, legacy)


# --------------------------------------------------------------------------------------------------------------
# stories260K (a real pretrained llama2.c model)


def stories_tokens(n: int = 32) -> list[int]:
    return token_ids(512, n, seed=260)


def test_llama2c_conversion_matches_reference(stories_bin, stories_hf, hf_reference):
    """scripts/tools/llama2c_to_hf.py vs an independent re-implementation of llama2.c's forward (no binary needed)."""
    import llama2c_to_hf

    toks = stories_tokens()
    ref = llama2c_to_hf.llama2c_reference_logits(str(stories_bin), toks)
    hf = hf_reference(stories_hf, toks)
    err = rel_err(hf, ref)
    assert err <= F32_TOL, f"converted stories260K: HF vs llama2.c reference rel err {err:.3e}"


def test_stories260k_hf_folder(stories_hf, supra_logits, hf_reference):
    toks = stories_tokens()
    ref = hf_reference(stories_hf, toks)
    got = supra_logits(stories_hf, toks)
    err = rel_err(got, ref)
    assert err <= F32_TOL, f"stories260K (HF folder): fp32 rel err {err:.3e}"


def test_stories260k_llama2c_bin(stories_bin, stories_hf, supra_logits, hf_reference):
    toks = stories_tokens()
    ref = hf_reference(stories_hf, toks)
    got = supra_logits(stories_bin, toks)
    err = rel_err(got, ref)
    assert err <= F32_TOL, f"stories260K (llama2.c .bin): fp32 rel err {err:.3e}"


def test_stories260k_bf16(stories_hf, supra_logits, hf_reference):
    toks = stories_tokens()
    ref = hf_reference(stories_hf, toks)
    got = supra_logits(stories_hf, toks, "bf16")
    err, hf_err = rel_err(got, ref), rel_err(hf_reference(stories_hf, toks, "bf16"), ref)
    assert err <= bf16_tol(hf_err), f"stories260K: supra bf16 rel err {err:.3e} (HF bf16: {hf_err:.3e})"


# Greedy continuation of [BOS] published for stories260K (llama2.c doc/stories260K.md, `run -t 0.0`):
# "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day,"
# (token ids of Karpathy's tok512 tokenizer).
STORIES_GREEDY = [
    1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338,
    401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385,
]
# sha256 of a stories260K.bin whose weight matrices are stored permuted (not in llama2.c's [out, in] row-major
# layout): within each layer's wq/wk/wv/wo/w1/w2/w3, element j of the file is element (j*M) mod (N-1) of the
# real matrix (M = 64 for wq/wo, i.e. a transpose; 8 for wk/wv; 4510 for w1/w3; 8974 for w2). Read as documented,
# it is a scrambled, non-pretrained model, so it cannot reproduce the published sample.
SCRAMBLED_STORIES_SHA256 = "9414d5a285453a7eab631713d171753232c978f6f97654211469aff8be93c8d6"


def test_stories260k_greedy_matches_published_sample(stories_bin, stories_hf, hf_reference):
    """Is the shared stories260K the real pretrained model? (HF on the converted folder; no binary needed.)"""
    sha = hashlib.sha256(stories_bin.read_bytes()).hexdigest()
    if sha == SCRAMBLED_STORIES_SHA256:
        pytest.xfail(f"{stories_bin} (sha256 {sha[:8]}…) stores its weight matrices permuted; it is not the "
                     "pretrained stories260K, so its predictions are meaningless")
    ids = [1]
    for _ in range(len(STORIES_GREEDY) - 1):
        ids.append(int(hf_reference(stories_hf, ids)[-1].argmax()))
    assert ids == STORIES_GREEDY, f"greedy continuation of [1] is {ids}, not the published sample"
