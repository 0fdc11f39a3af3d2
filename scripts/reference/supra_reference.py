#!/usr/bin/env python3
"""Independent float64 reference of a converted SUPRA model's forward pass (naive O(T^2) form).

Written from docs/method.md (sections 2 and 3) only, not from the C++ implementation, so that the two can
check each other. Reads a folder written by `supra convert` (config.json with a "supra" block,
model.safetensors or a sharded model.safetensors.index.json) and computes, per layer:

    h = x + Attn(RMSNorm(x));  y = h + SwiGLU(RMSNorm(h))

with the SUPRA attention
    q0, k0, v = x W_q, x W_k, x W_v                          (no RoPE yet)
    [qk_norm]  q0, k0 <- LayerNorm(no affine, eps 1e-5) over all H*d (H_kv*d) channels per token
    q = ReLU(q0 W_phi_q^T + b_phi_q);  k = ReLU(k0 W_phi_k^T + b_phi_k)   (phi_k = phi_q without GQA)
    repeat kv heads (kv head j -> query heads j*r .. j*r+r-1), after phi
    RoPE (rotate-half, absolute positions, HF inv_freq incl. linear / llama3 scaling) on q and k
    O_h = ((Q_h K_h^T s) ⊙ M_h) V_h,  s = 1/sqrt(d),  M_ij = gamma_h^(i-j) for i >= j else 0
    GroupNorm(H groups, eps 1e-5, no affine) per token and head, then concat heads and W_o.

The decay is recomputed here from the method document (`decay_log_gamma`) and checked against the config's
"log_gamma" (to 1e-7); it is not read from the config.

Usage:
    python3 scripts/reference/supra_reference.py --model DIR --tokens 1,2,3 --out F.safetensors

Writes one tensor ``logits`` [T, vocab] float32 (computed in float64).

As a module:
    from supra_reference import load_supra, supra_logits, decay_log_gamma, alibi_slopes
    logits = supra_logits("/path/to/converted", [1, 2, 3])    # torch.Tensor [T, vocab] float64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch

F64 = torch.float64

# ----------------------------------------------------------------------------------------------------------------
# Decay (method doc §2, "Decay")


def _pow2_slopes(n: int) -> list[float]:
    """ALiBi slopes for a power-of-two head count n: slope_h = 2^(-8(h+1)/n)."""
    return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi slopes for `num_heads` heads, with the standard extension for a non-power-of-two head count:
    c = 2^floor(log2 H); the c power-of-two slopes, then the first H - c even-indexed slopes for 2c heads."""
    if num_heads < 1:
        raise ValueError(f"num_heads must be >= 1, got {num_heads}")
    c = 1 << (num_heads.bit_length() - 1)  # largest power of two <= H
    slopes = _pow2_slopes(c)
    if c < num_heads:
        slopes += _pow2_slopes(2 * c)[0::2][: num_heads - c]
    return slopes


def decay_log_gamma(kind: str, num_heads: int) -> list[float]:
    """ln(gamma_h) for h = 0..H-1 (per query head). kind: "reference" (ALiBi, gamma = exp(-slope)),
    "retnet" (gamma = 1 - 2^(-5-h)) or "none" (gamma = 1)."""
    if kind == "reference":
        return [-s for s in alibi_slopes(num_heads)]
    if kind == "retnet":
        return [math.log1p(-(2.0 ** (-5 - h))) for h in range(num_heads)]
    if kind == "none":
        return [0.0] * num_heads
    raise ValueError(f"unknown decay kind {kind!r}; expected reference, retnet or none")


# ----------------------------------------------------------------------------------------------------------------
# Loading


@dataclass
class SupraModel:
    path: str
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]  # float64
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    eps: float
    qk_norm: bool
    decay: str
    log_gamma: torch.Tensor  # [H] float64, recomputed from the method doc
    inv_freq: torch.Tensor  # [d/2] float64
    tie: bool


def _load_tensors(path: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single = os.path.join(path, "model.safetensors")
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(single):
        return dict(load_file(single))
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        out: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            out.update(load_file(os.path.join(path, shard)))
        missing = set(weight_map) - set(out)
        if missing:
            raise ValueError(f"{index}: tensors listed but not found in shards: {sorted(missing)[:5]}")
        return out
    raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {path}")


def _rope_params(cfg: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, scaling dict or None) from either config layout (transformers 4 or 5)."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict):
        theta = float(rp.get("rope_theta", cfg.get("rope_theta", 10000.0)))
        kind = rp.get("rope_type", rp.get("type", "default"))
        return theta, (None if kind == "default" else dict(rp))
    theta = float(cfg.get("rope_theta", 10000.0))
    rs = cfg.get("rope_scaling")
    if rs is None:
        return theta, None
    kind = rs.get("rope_type", rs.get("type", "default"))
    return theta, (None if kind == "default" else dict(rs))


def rope_inv_freq(cfg: dict[str, Any], head_dim: int) -> torch.Tensor:
    """HF's inv_freq [d/2] (float64) incl. linear and llama3 scaling; attention_scaling is 1 for these."""
    theta, scaling = _rope_params(cfg)
    # HF computes base ** (arange(0, d, 2) / d) in float32 and inverts it; mimic that rounding, then go float64.
    exponent = torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim
    inv_freq = (1.0 / (theta ** exponent)).to(F64)
    if scaling is None:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind == "linear":
        return inv_freq / float(scaling["factor"])
    if kind == "llama3":
        factor = float(scaling["factor"])
        low = float(scaling["low_freq_factor"])
        high = float(scaling["high_freq_factor"])
        old_ctx = float(scaling["original_max_position_embeddings"])
        low_wavelen = old_ctx / low
        high_wavelen = old_ctx / high
        wavelen = 2 * math.pi / inv_freq
        out = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (old_ctx / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * out / factor + smooth * out
        is_medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        return torch.where(is_medium, smoothed, out)
    raise ValueError(f"unsupported rope scaling type {kind!r}")


def load_supra(path: str) -> SupraModel:
    """Load a `supra convert` output folder; checks the decay in its config against the method document."""
    path = str(path)
    with open(os.path.join(path, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "supra" or "supra" not in cfg:
        raise ValueError(f"{path}: not a supra checkpoint (model_type {cfg.get('model_type')!r})")
    sc = cfg["supra"]
    L = int(cfg["num_hidden_layers"])
    H = int(cfg["num_attention_heads"])
    Hkv = int(cfg.get("num_key_value_heads") or H)
    d = int(cfg.get("head_dim") or cfg["hidden_size"] // H)
    decay = sc["decay"]
    ours = torch.tensor(decay_log_gamma(decay, H), dtype=F64)
    theirs = torch.tensor(sc["log_gamma"], dtype=F64)
    if ours.shape != theirs.shape or (ours - theirs).abs().max().item() > 1e-7:
        raise ValueError(f"{path}: config log_gamma {sc['log_gamma']} != method-doc {decay} decay {ours.tolist()}")
    tensors = {k: v.to(F64) for k, v in _load_tensors(path).items()}
    return SupraModel(
        path=path,
        config=cfg,
        tensors=tensors,
        num_layers=L,
        num_heads=H,
        num_kv_heads=Hkv,
        head_dim=d,
        eps=float(cfg.get("rms_norm_eps", 1e-6)),
        qk_norm=bool(sc.get("qk_norm", False)),
        decay=decay,
        log_gamma=ours,
        inv_freq=rope_inv_freq(cfg, d),
        tie=bool(cfg.get("tie_word_embeddings", False)) or "lm_head.weight" not in tensors,
    )


# ----------------------------------------------------------------------------------------------------------------
# Forward


def _rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _layer_norm_no_affine(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).pow(2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


def _linear(t: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """x W^T (+ b) with the tensors `name`.weight [out, in] and optional `name`.bias."""
    y = x @ t[name + ".weight"].T
    b = t.get(name + ".bias")
    return y + b if b is not None else y


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def decay_mask(log_gamma: torch.Tensor, T: int) -> torch.Tensor:
    """M [H, T, T]: gamma_h^(i-j) for i >= j, else 0 (in log_gamma's dtype)."""
    i = torch.arange(T, dtype=log_gamma.dtype)
    diff = i[:, None] - i[None, :]  # i - j
    causal = diff >= 0
    expo = torch.where(causal, diff, torch.zeros_like(diff))
    m = torch.exp(log_gamma[:, None, None] * expo[None])
    return torch.where(causal[None], m, torch.zeros_like(m))


def supra_attention(m: SupraModel, layer: int, x: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
    """x [T, D] (already RMS-normalised) -> attention output [T, D] in x's dtype, naive O(T^2) form.
    `t`: the model's tensors in x's dtype."""
    p = f"model.layers.{layer}.self_attn."
    H, Hkv, d = m.num_heads, m.num_kv_heads, m.head_dim
    T = x.shape[0]

    def lin(name: str, inp: torch.Tensor) -> torch.Tensor:
        return _linear(t, p + name, inp)

    q0, k0, v = lin("q_proj", x), lin("k_proj", x), lin("v_proj", x)  # [T, H*d], [T, Hkv*d], [T, Hkv*d]
    if m.qk_norm:
        q0, k0 = _layer_norm_no_affine(q0), _layer_norm_no_affine(k0)
    q = torch.relu(lin("feature_map_q", q0))
    k_map = "feature_map_k" if Hkv != H else "feature_map_q"
    k = torch.relu(lin(k_map, k0))

    q = q.view(T, H, d).transpose(0, 1)  # [H, T, d]
    k = k.view(T, Hkv, d).transpose(0, 1)  # [Hkv, T, d]
    v = v.view(T, Hkv, d).transpose(0, 1)
    r = H // Hkv
    k = k.repeat_interleave(r, dim=0)  # kv head j -> query heads j*r .. j*r+r-1
    v = v.repeat_interleave(r, dim=0)

    pos = torch.arange(T, dtype=x.dtype)
    freqs = pos[:, None] * m.inv_freq.to(x.dtype)[None, :]  # [T, d/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin

    s = 1.0 / math.sqrt(d)
    scores = (q @ k.transpose(-1, -2)) * s  # [H, T, T]
    o = (scores * decay_mask(m.log_gamma.to(x.dtype), T)) @ v  # [H, T, d]

    # GroupNorm(H groups over H*d channels, no affine) == per (token, head) normalisation over d (biased var).
    o = _layer_norm_no_affine(o, 1e-5)
    o = o.transpose(0, 1).reshape(T, H * d)
    return lin("o_proj", o)


def _mlp(layer: int, x: torch.Tensor, t: dict[str, torch.Tensor]) -> torch.Tensor:
    p = f"model.layers.{layer}.mlp."

    def lin(name: str, inp: torch.Tensor) -> torch.Tensor:
        return _linear(t, p + name, inp)

    return lin("down_proj", torch.nn.functional.silu(lin("gate_proj", x)) * lin("up_proj", x))


@torch.no_grad()
def forward(m: SupraModel, token_ids: Sequence[int], dtype: torch.dtype = F64) -> torch.Tensor:
    """Logits [T, vocab] in `dtype` (float64 by default; float32 only to measure fp32 rounding effects)."""
    t = m.tensors if dtype == F64 else {k: v.to(dtype) for k, v in m.tensors.items()}
    ids = torch.tensor(list(token_ids), dtype=torch.long)
    x = t["model.embed_tokens.weight"][ids]
    for layer in range(m.num_layers):
        p = f"model.layers.{layer}."
        x = x + supra_attention(m, layer, _rms_norm(x, t[p + "input_layernorm.weight"], m.eps), t)
        x = x + _mlp(layer, _rms_norm(x, t[p + "post_attention_layernorm.weight"], m.eps), t)
    x = _rms_norm(x, t["model.norm.weight"], m.eps)
    head = t["model.embed_tokens.weight"] if m.tie else t["lm_head.weight"]
    return x @ head.T


def supra_logits(model: str | SupraModel, token_ids: Sequence[int], dtype: torch.dtype = F64) -> torch.Tensor:
    """Logits [T, vocab] (float64 by default) of the converted SUPRA model at `model` (a folder or a loaded
    SupraModel)."""
    m = model if isinstance(model, SupraModel) else load_supra(str(model))
    return forward(m, token_ids, dtype)


# ----------------------------------------------------------------------------------------------------------------
# CLI


def _parse_tokens(s: str) -> list[int]:
    try:
        toks = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad token list {s!r}: expected comma-separated integers")
    if not toks:
        raise argparse.ArgumentTypeError("empty token list")
    return toks


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="supra checkpoint folder (output of `supra convert`)")
    ap.add_argument("--tokens", required=True, type=_parse_tokens, help="comma-separated token ids")
    ap.add_argument("--out", required=True, help="output .safetensors file (tensor 'logits', float32)")
    args = ap.parse_args(argv)
    logits = supra_logits(args.model, args.tokens)
    save_file({"logits": logits.to(torch.float32).contiguous()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
