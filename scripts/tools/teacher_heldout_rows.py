#!/usr/bin/env python3
"""The HF teacher's cross-entropy on the rows `supra train` holds out (data.eval_samples), for a loss curve's teacher line.

`supra train` evaluates on the stream's last `eval_samples` rows of seq_len+1 tokens (data/loader.cpp), packed
documents kept apart (a row's tokens attend within their own document; positions 0..T-1 of the row). This reads the
same rows from a supra token folder and scores them with transformers' model of the teacher, block-diagonal mask and
all, so the number is the line the trainer's `eval_loss` is to reach:

    python3 scripts/tools/teacher_heldout_rows.py --model runs/smollm2/smollm2-135m --data runs/smollm2/data/train \
        --seq-len 512 --eval-samples 32
"""
import argparse
import json
import math
import pathlib
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "shipped"))
import data_shards  # noqa: E402  (the project's reader of supra token folders)


def read_stream(data: pathlib.Path):
    """All tokens of the folder, in shard order, and a bool per token: a document starts here."""
    tokens, starts = [], []
    for shard in data_shards.read_manifest(data)["shards"]:
        t, ends = data_shards.read_shard(data, shard["name"])
        t = np.asarray(t, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        s = np.zeros(len(t), dtype=bool)
        if len(t):
            s[0] = True
            s[ends[ends < len(t)]] = True
        tokens.append(t)
        starts.append(s)
    return np.concatenate(tokens), np.concatenate(starts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF teacher folder")
    ap.add_argument("--data", required=True, help="supra token folder the run trains on (data.dir)")
    ap.add_argument("--seq-len", type=int, required=True, help="data.seq_len of the run")
    ap.add_argument("--eval-samples", type=int, required=True, help="data.eval_samples of the run")
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()

    try:
        tokens, starts = read_stream(pathlib.Path(args.data))
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {args.data}: not a readable supra token folder ({e})", file=sys.stderr)
        return 2
    row = args.seq_len + 1
    num_samples = len(tokens) // row
    if not 0 < args.eval_samples < num_samples:
        print(f"error: {args.data}: {num_samples} samples of {row} tokens, cannot hold out {args.eval_samples}",
              file=sys.stderr)
        return 2
    first = num_samples - args.eval_samples
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    T = args.seq_len
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    total, count = 0.0, 0
    with torch.no_grad():
        for b0 in range(first, num_samples, args.batch):
            ids = [tokens[i * row:(i + 1) * row] for i in range(b0, min(b0 + args.batch, num_samples))]
            doc = [np.cumsum(starts[i * row:i * row + T]) for i in range(b0, min(b0 + args.batch, num_samples))]
            x = torch.from_numpy(np.stack(ids))
            d = torch.from_numpy(np.stack(doc))
            allowed = causal & (d[:, :, None] == d[:, None, :])  # [B, T, T]: same document, not in the future
            mask = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)
            logits = model(input_ids=x[:, :T], attention_mask=mask[:, None],
                           position_ids=torch.arange(T).expand(x.size(0), T)).logits
            ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).double(),
                                                   x[:, 1:].reshape(-1), reduction="sum")
            total += ce.item()
            count += x.size(0) * T
    loss = total / count
    print(json.dumps({"rows": args.eval_samples, "tokens": count, "loss": loss, "perplexity": math.exp(loss)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
