#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers, in the same format as `supra logits`.

Usage:
    python3 scripts/reference/hf_logits.py --model DIR --tokens 1,2,3 --out F.safetensors [--dtype f32|bf16]

Writes one tensor named ``logits``, shape [T, vocab], float32 (bf16 runs are upcast on output).
The model is loaded with AutoModelForCausalLM, attn_implementation="eager" (so Mistral's sliding window is
honoured exactly), run once over the whole sequence as a batch of one, without a KV cache.

As a module:
    from hf_logits import hf_logits
    logits = hf_logits("/path/to/model", [1, 2, 3], dtype="f32")   # torch.Tensor [T, vocab] float32
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def load_model(model_dir: str, dtype: str = "f32"):
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    # Load in fp32 and cast, i.e. exactly `model.to(torch.bfloat16)` for bf16.
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    return model.to(DTYPES[dtype])


@torch.no_grad()
def logits_for(model, tokens: Sequence[int]) -> torch.Tensor:
    ids = torch.tensor([list(tokens)], dtype=torch.long)
    out = model(input_ids=ids, use_cache=False)
    return out.logits[0].float().contiguous()


def hf_logits(model_dir: str, tokens: Sequence[int], dtype: str = "f32") -> torch.Tensor:
    """Logits [len(tokens), vocab] float32 of the HF model in `model_dir` run in `dtype` ("f32"/"bf16")."""
    return logits_for(load_model(model_dir, dtype), tokens)


def parse_tokens(s: str) -> list[int]:
    try:
        toks = [int(t) for t in s.split(",") if t.strip() != ""]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad token list {s!r}: expected comma-separated integers")
    if not toks:
        raise argparse.ArgumentTypeError("empty token list")
    return toks


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="HF model directory")
    ap.add_argument("--tokens", required=True, type=parse_tokens, help="comma-separated token ids")
    ap.add_argument("--out", required=True, help="output .safetensors file")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    args = ap.parse_args(argv)
    _quiet()
    logits = hf_logits(args.model, args.tokens, args.dtype)
    save_file({"logits": logits}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
