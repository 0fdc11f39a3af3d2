#!/usr/bin/env python3
"""Decode speed and state memory versus context length: a SUPRA model, the same transformer with its full K/V
cache, and the transformer with a TOVA cache of K tokens (equal-state comparisons). Runs `supra generate` on
random prompts of each context length and reads its report (prefill tokens/s, decode tokens/s, state bytes per
sequence). The model is a randomly initialised Llama of a chosen shape (speed does not depend on the weights),
converted with `supra convert`.

  python3 scripts/tools/bench_decode.py --supra build/supra --contexts 1024,4096,16384,65536 --device cuda --json out.json
  python3 scripts/tools/bench_decode.py --supra build/supra --shape tiny --contexts 256,1024 --device cpu   # a quick check

--batches 1,8 decodes that many prompts of each context together (`supra generate --batch-size`); tokens/s count
the tokens of the whole batch.

TOVA reads the prompt token by token after the first K (so that no query sees more than K tokens); its prefill is
therefore slow, and --tova-max-context bounds the contexts it runs at.
"""
import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SHAPES = {  # hidden, layers, heads, kv heads, intermediate, vocab
    "smollm2-135m": (576, 30, 9, 3, 1536, 49152),
    "llama-1b": (2048, 16, 32, 8, 8192, 32000),
    "tiny": (128, 4, 4, 2, 256, 512),
}


def make_model(shape: str, out: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    h, L, nh, nkv, inter, vocab = SHAPES[shape]
    cfg = LlamaConfig(hidden_size=h, num_hidden_layers=L, num_attention_heads=nh, num_key_value_heads=nkv,
                      intermediate_size=inter, vocab_size=vocab, max_position_embeddings=1 << 20,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)


def run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} …: {p.stderr.strip()[-400:]}")
    return p.stderr


def parse(report: str) -> dict:
    m = re.search(r"prefill: (\d+) tokens in ([\d.]+) s .*decode: (\d+) tokens in ([\d.]+) s", report)
    s = re.search(r"state per sequence at the end: (\d+) bytes", report)
    if not m or not s:
        raise RuntimeError("unexpected supra generate report: " + report[-300:])
    pt, ps, nt, ns = int(m[1]), float(m[2]), int(m[3]), float(m[4])
    return {"prefill_tokens": pt, "prefill_s": ps, "prefill_tok_s": pt / max(ps, 1e-9), "new_tokens": nt,
            "decode_s": ns, "decode_tok_s": nt / max(ns, 1e-9), "state_bytes": int(s[1])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supra", default="build/supra")
    ap.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    ap.add_argument("--contexts", default="1024,4096,16384,65536")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--kv-size", type=int, default=1024, help="TOVA's K")
    ap.add_argument("--tova-max-context", type=int, default=4096)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--batches", default="1", help="comma list of batch sizes (prompts decoded together)")
    ap.add_argument("--json")
    args = ap.parse_args()
    contexts = [int(x) for x in args.contexts.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    results = {"shape": args.shape, "device": args.device, "dtype": args.dtype, "kv_size": args.kv_size, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_model(args.shape, tmp / "hf")
        run([args.supra, "convert", "--model", str(tmp / "hf"), "--out", str(tmp / "supra")])
        vocab = SHAPES[args.shape][5]
        kinds = [("supra", tmp / "supra", []), ("transformer", tmp / "hf", []),
                 (f"tova K={args.kv_size}", tmp / "hf", ["--kv-policy", "tova", "--kv-size", str(args.kv_size)])]
        print(f"{'batch':>5s} | {'context':>8s} | {'model':14s} | {'prefill tok/s':>13s} | {'decode tok/s':>12s} | "
              f"{'state MiB/seq':>13s}")
        for B in batches:
            for T in contexts:
                rng = random.Random(T)
                ids = tmp / "ids.txt"
                ids.write_text(";".join(",".join(str(rng.randrange(3, vocab)) for _ in range(T)) for _ in range(B)))
                for name, model, extra in kinds:
                    if name.startswith("tova") and T > args.tova_max_context:
                        continue
                    cmd = [args.supra, "generate", "--model", str(model), "--ids", f"@{ids}", "--no-bos",
                           "--max-new-tokens", str(args.new_tokens), "--temperature", "0", "--device", args.device,
                           "--dtype", args.dtype, "--batch-size", str(B), *extra]
                    try:
                        r = parse(run(cmd))
                    except RuntimeError as e:  # e.g. out of memory at long contexts: keep going
                        r = {"error": str(e)[:300]}
                    results["rows"].append({"batch": B, "context": T, "model": name, **r})
                    if "error" in r:
                        print(f"{B:5d} | {T:8d} | {name:14s} | error: {r['error'][:80]}")
                    else:
                        print(f"{B:5d} | {T:8d} | {name:14s} | {r['prefill_tok_s']:13.0f} | {r['decode_tok_s']:12.1f} | "
                              f"{r['state_bytes'] / 2**20:13.2f}", flush=True)
                    if args.json:  # after every row: a run cut short keeps what it measured
                        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
