#!/usr/bin/env python3
"""Create tiny, randomly initialised Hugging Face Llama/Mistral checkpoints for tests.

Every checkpoint is written with transformers itself (``save_pretrained(..., safe_serialization=True)``),
in float32, from a seeded initialisation, so the same (variant, seed) always gives the same weights.

Usage:
    python3 scripts/tools/make_tiny_hf.py --list
    python3 scripts/tools/make_tiny_hf.py --variant llama_gqa_untied --out /tmp/tiny [--seed 0]

As a module:
    from make_tiny_hf import make_model, VARIANTS
    make_model("mistral_sliding", "/tmp/m", seed=0)

Variants (all: hidden 64, 2 layers, small vocab and MLP, initializer_range 0.1, RMSNorm weights
randomised around 1 so that a loader that ignores them is caught):
    llama_mha_tied       Llama, 4 heads / 4 kv heads, tied embeddings
    llama_gqa_untied     Llama, 4 heads / 2 kv heads, separate lm_head
    mistral_sliding      Mistral, 4 heads / 2 kv heads, sliding_window 8
    llama_head_dim       Llama, head_dim 24 != hidden/heads (16)
    llama3_rope          Llama with llama3 RoPE scaling (factor 8, low 1, high 4, original max pos 64,
                         theta 5e5); with head_dim 16 the 8 frequencies hit all three llama3 regimes (kept,
                         smoothly interpolated, divided by 8); config in the transformers-5 layout
                         ("rope_parameters")
    llama3_rope_legacy   same model as llama3_rope, config.json rewritten in the transformers-4 layout
                         (top-level "rope_theta" + "rope_scaling"), as most Hub checkpoints are
    llama_linear_rope    Llama with linear RoPE scaling (factor 2.5): positions divided by 2.5
    llama_sharded        like llama_gqa_untied, saved in >= 2 shards with model.safetensors.index.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable

import torch

_COMMON: dict[str, Any] = dict(
    hidden_size=64,
    num_hidden_layers=2,
    vocab_size=192,
    intermediate_size=128,
    max_position_embeddings=256,
    initializer_range=0.1,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
)

_LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
    "rope_theta": 500000.0,
}


def _llama(**kw: Any):
    from transformers import LlamaConfig

    args = dict(_COMMON)
    args.update(kw)
    return LlamaConfig(**args)


def _mistral(**kw: Any):
    from transformers import MistralConfig

    args = dict(_COMMON)
    args.update(kw)
    return MistralConfig(**args)


# name -> (config factory, save options)
VARIANTS: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
    "llama_mha_tied": (
        lambda: _llama(num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True),
        {},
    ),
    "llama_gqa_untied": (
        lambda: _llama(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
        {},
    ),
    "mistral_sliding": (
        lambda: _mistral(
            num_attention_heads=4, num_key_value_heads=2, sliding_window=8, tie_word_embeddings=False
        ),
        {},
    ),
    "llama_head_dim": (
        lambda: _llama(num_attention_heads=4, num_key_value_heads=2, head_dim=24, tie_word_embeddings=False),
        {},
    ),
    "llama3_rope": (
        lambda: _llama(
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            rope_parameters=dict(_LLAMA3_ROPE),
        ),
        {},
    ),
    "llama3_rope_legacy": (
        lambda: _llama(
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            rope_parameters=dict(_LLAMA3_ROPE),
        ),
        {"legacy_config": True},
    ),
    "llama_linear_rope": (
        lambda: _llama(
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            rope_parameters={"rope_type": "linear", "factor": 2.5, "rope_theta": 10000.0},
        ),
        {},
    ),
    "llama_sharded": (
        lambda: _llama(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
        {"max_shard_size": "60KB"},
    ),
}


def _legacy_config(path: str) -> None:
    """Rewrite config.json in the transformers-4.x layout: top-level rope_theta, rope_scaling, torch_dtype."""
    cfg_path = os.path.join(path, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    rope = dict(cfg.pop("rope_parameters"))
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = None if rope.get("rope_type", "default") == "default" else rope
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def make_model(variant: str, out: str, seed: int = 0) -> str:
    """Create the tiny checkpoint `variant` in directory `out` (created if needed); returns `out`."""
    from transformers import AutoModelForCausalLM

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    factory, opts = VARIANTS[variant]
    config = factory()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    # transformers initialises RMSNorm weights to exactly 1; randomise them (seeded) so tests notice
    # a loader that drops them.
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
    model.eval()
    os.makedirs(out, exist_ok=True)
    save_kw: dict[str, Any] = {"safe_serialization": True}
    if "max_shard_size" in opts:
        save_kw["max_shard_size"] = opts["max_shard_size"]
    model.save_pretrained(out, **save_kw)
    if opts.get("legacy_config"):
        _legacy_config(out)
    return out


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", help="variant name (see --list)")
    ap.add_argument("--out", help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="list variants and exit")
    args = ap.parse_args(argv)
    _quiet()
    if args.list:
        for name in VARIANTS:
            print(name)
        return 0
    if not args.variant or not args.out:
        ap.error("--variant and --out are required (or use --list)")
    if args.variant not in VARIANTS:
        ap.error(f"unknown variant {args.variant!r}; use --list")
    make_model(args.variant, args.out, args.seed)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
