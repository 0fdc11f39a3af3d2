#!/usr/bin/env python3
"""Per-GPU memory of a `supra train` run: model states by ZeRO stage (exact arithmetic of supra's design) plus an
activation estimate, for a model shape (an HF config.json or a built-in 7B shape), world size and micro-batch.

    python3 scripts/tools/memory_plan.py                          # the docs table: Mistral-7B and Llama-2-7B on 8 and 16 GPUs
    python3 scripts/tools/memory_plan.py --config /models/Mistral-7B-v0.1/config.json --gpus 8 --micro-batch 1 --zero 2

Model states (bytes per parameter, N parameters, W ranks), as training/sharded_adamw.h lays them out:
    parameters (replicated)         train.param_dtype fp32: 4 + 2 (autocast's cached bf16 copies of the weights)
                                    train.param_dtype bf16: 2 (matrices; norms stay fp32), needs ZeRO ≥ 1
    fp32 gradient buckets                 zero 0: 4   zero 1: 4 + 4/W (+ the reduced slice)   zero 2: 4/W
                                          (zero 2: + the buckets of one micro-batch in flight, freed after it)
    AdamW exp_avg + exp_avg_sq            zero 0: 8         zero 1, 2: 8/W
    fp32 master slice                     zero 0: 0         zero 1, 2: 4/W
The padding of each bucket to a multiple of W is ignored (< W elements per bucket).

Activations (an estimate, not a measurement; bf16 autocast, b rows of T tokens, hidden d, FFN f, L layers, vocab V):
    without checkpointing, saved for backward per token and layer ≈ 2·4d (fp32 residual stream, twice)
        + 2·(8d + 2·d_kv) (bf16 norm outputs, q/k/v/feature maps, attention output) + 2·3f (gate, up, their product)
    with checkpointing: 4d per token and layer (the block inputs) + one block's full set during its recompute
    plus the logits: b·T·V·10 bytes (fp32 logits, their bf16 GEMM output and the fp32 gradient)

With a teacher (train.objective = distill / attention, --teacher): the frozen softmax model in bf16 on every GPU
(2 bytes per teacher parameter, replicated: ZeRO shards only what trains), plus its bf16 logits (b·T·V·2 bytes)
and one chunk of the fused distillation loss's fp32 temporaries (256 MiB). Its forward keeps no activations.
"""

from __future__ import annotations

import argparse
import json

SHAPES = {
    "Mistral-7B": dict(vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    "Llama-2-7B": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False),
}
GiB = 1024**3


def feature_map_count(c: dict) -> int:
    """SUPRA's new parameters per layer (docs/method.md §2.1): the dense query feature map over all heads,
    [H·d, H·d] + bias, and under GQA a separate key map [H_kv·d, H_kv·d] + bias."""
    d, h = c["hidden_size"], c["num_attention_heads"]
    kv = c.get("num_key_value_heads", h)
    q, k = d, d // h * kv
    return q * q + q + (k * k + k if kv != h else 0)


def parameter_count(c: dict) -> int:
    d, f, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    h, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    hd = d // h
    attn = d * h * hd + 2 * d * kv * hd + h * hd * d
    mlp = 3 * d * f
    per_layer = attn + mlp + feature_map_count(c) + 2 * d
    emb = V * d * (1 if c.get("tie_word_embeddings") else 2)
    return L * per_layer + emb + d


def plan(c: dict, gpus: int, zero: int, micro_batch: int, seq: int, checkpointing: bool,
         bf16_params: bool = False, teacher: bool = False) -> dict[str, float]:
    n = parameter_count(c)
    W = gpus
    d, f, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    h, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    d_kv = d // h * kv
    out = {
        "params": 2 * n if bf16_params else 4 * n,
        "autocast bf16 weights": 0 if bf16_params else 2 * n,
        "grads": {0: 4 * n, 1: 4 * n + 4 * n / W, 2: 4 * n / W}[zero],
        "adam": 8 * n if zero == 0 else 8 * n / W,
        "master": 0 if zero == 0 else 4 * n / W,
    }
    tokens = micro_batch * seq
    per_layer = 2 * 4 * d + 2 * (8 * d + 2 * d_kv) + 2 * 3 * f
    acts = tokens * (L * 4 * d + per_layer) if checkpointing else tokens * L * per_layer
    out["activations"] = acts + tokens * V * 10
    if teacher:
        # The teacher's bf16 weights and logits; the fused distillation loss (training/objectives.cpp) adds only
        # one chunk's fp32 temporaries (~8M logits, a few copies: 256 MiB).
        out["teacher"] = 2 * (n - L * feature_map_count(c)) + tokens * V * 2 + 256 * 1024**2
    out["total"] = sum(out.values())
    return out


def table(configs: dict[str, dict], gpu_counts, micro_batch: int, seq: int, teacher: bool = False) -> str:
    rows = ["| model | GPUs | ZeRO | param dtype | act. ckpt | params (+autocast copies) | grads | Adam | master | "
            "activations | " + ("teacher | " if teacher else "") + "**total GiB** |",
            "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if teacher else "")]
    for name, c in configs.items():
        for g in gpu_counts:
            for zero, bf16 in ((0, False), (1, False), (2, False), (1, True), (2, True)):
                for ck in (True, False):
                    if teacher and zero < 2:
                        continue  # the teacher recipes run on ZeRO-2
                    p = plan(c, g, zero, micro_batch, seq, ck, bf16, teacher)
                    rows.append(f"| {name} ({parameter_count(c) / 1e9:.2f}B) | {g} | {zero} | "
                                f"{'bf16' if bf16 else 'fp32'} | {'yes' if ck else 'no'} | "
                                f"{(p['params'] + p['autocast bf16 weights']) / GiB:.1f} | {p['grads'] / GiB:.1f} | "
                                f"{p['adam'] / GiB:.1f} | {p['master'] / GiB:.1f} | {p['activations'] / GiB:.1f} | "
                                + (f"{p['teacher'] / GiB:.1f} | " if teacher else "") +
                                f"**{p['total'] / GiB:.1f}** |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="an HF config.json (default: the built-in Mistral-7B and Llama-2-7B shapes)")
    ap.add_argument("--gpus", type=int, nargs="*", default=[8, 16])
    ap.add_argument("--micro-batch", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--teacher", action="store_true", help="add the frozen bf16 teacher of distill / attention")
    args = ap.parse_args()
    configs = SHAPES
    if args.config:
        with open(args.config) as fh:
            c = json.load(fh)
        configs = {c.get("_name_or_path", args.config): c}
    print(f"micro-batch {args.micro_batch} × seq {args.seq_len}, bf16 autocast\n")
    print(table(configs, args.gpus, args.micro_batch, args.seq_len, args.teacher))


if __name__ == "__main__":
    main()
