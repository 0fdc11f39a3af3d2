#!/usr/bin/env python3
"""Convert a llama2.c legacy `.bin` checkpoint (e.g. stories260K.bin) into a Hugging Face Llama folder.

Usage:
    python3 scripts/tools/llama2c_to_hf.py IN.bin OUT_DIR [--check]

Writes OUT_DIR/config.json (LlamaForCausalLM) and OUT_DIR/model.safetensors (float32) via transformers'
save_pretrained. With --check, also runs an independent re-implementation of llama2.c's forward pass
(interleaved-pair RoPE, as in run.c) on the raw .bin and compares it with HF on the converted folder.

File format (little-endian): 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len);
a negative vocab_size means the classifier is not shared and its weight [vocab, dim] follows the RoPE tables.
Then float32: token embedding [vocab, dim]; rms_att [L, dim]; wq [L, dim, dim]; wk [L, kv_dim, dim];
wv [L, kv_dim, dim]; wo [L, dim, dim]; rms_ffn [L, dim]; w1 [L, hidden, dim]; w2 [L, dim, hidden];
w3 [L, hidden, dim]; rms_final [dim]; freq_cis_real, freq_cis_imag [seq_len, head_size/2] (unused);
[wcls [vocab, dim] if unshared].

llama2.c rotates interleaved pairs (x0,x1),(x2,x3),...; HF rotates halves (x_i, x_{i+d/2}), so the rows of wq and
wk are permuted within each head exactly as HF's convert_llama_weights_to_hf.py does.

As a module:
    from llama2c_to_hf import read_llama2c, convert, llama2c_reference_logits
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass
class Llama2cConfig:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int  # always positive here
    seq_len: int
    shared_classifier: bool

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size


def read_llama2c(path: str) -> tuple[Llama2cConfig, dict[str, torch.Tensor]]:
    """Parse a llama2.c legacy checkpoint; returns its config and its float32 tensors (llama2.c layout)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 28:
        raise ValueError(f"{path}: too short for a llama2.c header ({len(data)} bytes)")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", data[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    if min(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len) <= 0 or dim % n_heads or n_heads % n_kv:
        raise ValueError(f"{path}: implausible llama2.c header {dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len}")
    cfg = Llama2cConfig(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len, shared)
    hs, kv, L = cfg.head_size, cfg.kv_dim, n_layers
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("tok_embeddings", (vocab, dim)),
        ("rms_att", (L, dim)),
        ("wq", (L, dim, dim)),
        ("wk", (L, kv, dim)),
        ("wv", (L, kv, dim)),
        ("wo", (L, dim, dim)),
        ("rms_ffn", (L, dim)),
        ("w1", (L, hidden, dim)),
        ("w2", (L, dim, hidden)),
        ("w3", (L, hidden, dim)),
        ("rms_final", (dim,)),
        ("freq_cis_real", (seq_len, hs // 2)),
        ("freq_cis_imag", (seq_len, hs // 2)),
    ]
    if not shared:
        shapes.append(("wcls", (vocab, dim)))
    n_floats = sum(torch.Size(s).numel() for _, s in shapes)
    expected = 28 + 4 * n_floats
    if len(data) != expected:
        raise ValueError(f"{path}: size {len(data)} bytes, expected {expected} for header {cfg}")
    flat = torch.frombuffer(bytearray(data[28:]), dtype=torch.float32)
    if sys.byteorder != "little":
        flat = flat.byteswap()  # pragma: no cover
    tensors: dict[str, torch.Tensor] = {}
    off = 0
    for name, shape in shapes:
        n = torch.Size(shape).numel()
        tensors[name] = flat[off : off + n].view(shape).clone()
        off += n
    if shared:
        tensors["wcls"] = tensors["tok_embeddings"]
    return cfg, tensors


def permute_rotary(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Interleaved-pair rows -> rotate-half rows, per head (HF convert_llama_weights_to_hf.py permute)."""
    dim1, dim2 = w.shape
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def hf_state_dict(cfg: Llama2cConfig, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {"model.embed_tokens.weight": t["tok_embeddings"]}
    for i in range(cfg.n_layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = t["rms_att"][i]
        sd[p + "self_attn.q_proj.weight"] = permute_rotary(t["wq"][i], cfg.n_heads)
        sd[p + "self_attn.k_proj.weight"] = permute_rotary(t["wk"][i], cfg.n_kv_heads)
        sd[p + "self_attn.v_proj.weight"] = t["wv"][i]
        sd[p + "self_attn.o_proj.weight"] = t["wo"][i]
        sd[p + "post_attention_layernorm.weight"] = t["rms_ffn"][i]
        sd[p + "mlp.gate_proj.weight"] = t["w1"][i]
        sd[p + "mlp.down_proj.weight"] = t["w2"][i]
        sd[p + "mlp.up_proj.weight"] = t["w3"][i]
    sd["model.norm.weight"] = t["rms_final"]
    sd["lm_head.weight"] = t["wcls"]
    return {k: v.contiguous() for k, v in sd.items()}


def hf_config(cfg: Llama2cConfig):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.dim,
        intermediate_size=cfg.hidden_dim,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        hidden_act="silu",
        max_position_embeddings=cfg.seq_len,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=cfg.shared_classifier,
        bos_token_id=1,
        eos_token_id=2,
        architectures=["LlamaForCausalLM"],
    )


def convert(bin_path: str, out_dir: str) -> str:
    """Convert `bin_path` into an HF LlamaForCausalLM folder `out_dir` (fp32 safetensors); returns out_dir."""
    from transformers import LlamaForCausalLM

    cfg, t = read_llama2c(bin_path)
    model = LlamaForCausalLM(hf_config(cfg)).to(torch.float32)
    sd = hf_state_dict(cfg, t)
    if cfg.shared_classifier:
        sd.pop("lm_head.weight")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (cfg.shared_classifier and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    if cfg.shared_classifier:
        model.tie_weights()
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.eval()
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


@torch.no_grad()
def llama2c_reference_logits(bin_path: str, tokens: Sequence[int]) -> torch.Tensor:
    """Independent fp32 re-implementation of llama2.c run.c's forward (interleaved RoPE), whole sequence.

    Returns logits [T, vocab] float32. Used to validate the conversion, not for speed.
    """
    cfg, t = read_llama2c(bin_path)
    T = len(tokens)
    hs, nh, nkv = cfg.head_size, cfg.n_heads, cfg.n_kv_heads
    x = t["tok_embeddings"][torch.tensor(tokens)]  # [T, dim]

    def rmsnorm(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return w * (v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5))

    # run.c: for pair starting at i (even), head_dim = i % head_size, freq = 10000^-(head_dim/head_size)
    pos = torch.arange(T, dtype=torch.float32)[:, None]
    freq = 1.0 / (10000.0 ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))  # [hs/2]
    ang = pos * freq  # [T, hs/2]
    cos, sin = torch.cos(ang), torch.sin(ang)

    def rope(v: torch.Tensor) -> torch.Tensor:  # v [T, H, hs], interleaved pairs
        v0, v1 = v[..., 0::2], v[..., 1::2]
        c, s = cos[:, None, :], sin[:, None, :]
        out = torch.empty_like(v)
        out[..., 0::2] = v0 * c - v1 * s
        out[..., 1::2] = v0 * s + v1 * c
        return out

    mask = torch.full((T, T), float("-inf")).triu(1)
    for layer in range(cfg.n_layers):
        h = rmsnorm(x, t["rms_att"][layer])
        q = rope((h @ t["wq"][layer].T).view(T, nh, hs))
        k = rope((h @ t["wk"][layer].T).view(T, nkv, hs))
        v = (h @ t["wv"][layer].T).view(T, nkv, hs)
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=1)  # head h uses kv head h // rep
        v = v.repeat_interleave(rep, dim=1)
        att = torch.einsum("thd,shd->hts", q, k) / (hs**0.5) + mask
        att = att.softmax(-1)
        o = torch.einsum("hts,shd->thd", att, v).reshape(T, cfg.dim)
        x = x + o @ t["wo"][layer].T
        h = rmsnorm(x, t["rms_ffn"][layer])
        g = h @ t["w1"][layer].T
        x = x + (torch.nn.functional.silu(g) * (h @ t["w3"][layer].T)) @ t["w2"][layer].T
    x = rmsnorm(x, t["rms_final"])
    return (x @ t["wcls"].T).contiguous()


def check(bin_path: str, out_dir: str, tokens: Sequence[int]) -> float:
    """Relative max error between the llama2.c reference on the .bin and HF on the converted folder."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
    from hf_logits import hf_logits

    ref = llama2c_reference_logits(bin_path, tokens)
    hf = hf_logits(out_dir, tokens, "f32")
    return ((ref - hf).abs().max() / ref.abs().max()).item()


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bin", help="llama2.c legacy .bin checkpoint")
    ap.add_argument("out", help="output HF model directory")
    ap.add_argument("--check", action="store_true", help="compare HF on the result with a llama2.c reference")
    args = ap.parse_args(argv)
    _quiet()
    try:
        convert(args.bin, args.out)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.check:
        g = torch.Generator().manual_seed(0)
        cfg, _ = read_llama2c(args.bin)
        toks = [1] + torch.randint(0, cfg.vocab_size, (31,), generator=g).tolist()
        rel = check(args.bin, args.out, toks)
        print(f"llama2.c reference vs HF: rel max err {rel:.3e} over {len(toks)} tokens")
        if rel > 1e-5:
            print("error: conversion check failed", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
