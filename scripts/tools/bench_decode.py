#!/usr/bin/env python3
"""Decode speed and state memory versus context length: a SUPRA model (decode fast path and reference path), the
same transformer with its full K/V cache, the transformer with a TOVA cache of K tokens (equal-state comparisons),
and Hugging Face transformers' `generate` on the exported SUPRA model (the baseline users would otherwise run).
Runs `supra generate --floor` on random prompts of each context length and reads its report: prefill tokens/s,
decode tokens/s, the median decode step, and the weight-read floor measured in the same process before and after
decoding (a GEMV over every matrix of the model, core/model/decode_floor.h) — the `/floor` column is the median
step over the median floor sweep. The model is a randomly initialised Llama of a chosen shape (speed does not depend
on the weights), converted with `supra convert` and exported with `supra export` for transformers.

  python3 scripts/tools/bench_decode.py --supra build/supra --contexts 1024,4096,16384,65536 --device cuda --json out.json
  python3 scripts/tools/bench_decode.py --supra build/supra --shape tiny --contexts 256,1024 --device cpu   # a quick check
  python3 scripts/tools/bench_decode.py --device cpu --contexts 64,512,2048,8192 --models supra,hf   # the CPU table

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


def run(cmd: list[str]) -> tuple[str, str]:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} …: {p.stderr.strip()[-400:]}")
    return p.stdout, p.stderr


def parse(report: str) -> dict:
    m = re.search(r"prefill: (\d+) tokens in ([\d.]+) s .*decode: (\d+) tokens in ([\d.]+) s", report)
    s = re.search(r"state per sequence at the end: (\d+) bytes", report)
    if not m or not s:
        raise RuntimeError("unexpected supra generate report: " + report[-300:])
    pt, ps, nt, ns = int(m[1]), float(m[2]), int(m[3]), float(m[4])
    r = {"prefill_tokens": pt, "prefill_s": ps, "prefill_tok_s": pt / max(ps, 1e-9), "new_tokens": nt,
         "decode_s": ns, "decode_tok_s": nt / max(ns, 1e-9), "state_bytes": int(s[1])}
    step = re.search(r"decode step \(\w+ path\): median ([\d.]+) ms, min ([\d.]+) ms", report)
    if step:
        r["step_ms_median"], r["step_ms_min"] = float(step[1]), float(step[2])
    fl = re.search(r"weight-read floor: min ([\d.]+) ms, median ([\d.]+) ms per step \(GEMV over (\d+) matrices, "
                   r"([\d.]+) MB", report)
    if fl:
        r["floor_ms_min"], r["floor_ms_median"], r["floor_mb"] = float(fl[1]), float(fl[2]), float(fl[4])
        if "step_ms_median" in r:
            r["step_over_floor"] = r["step_ms_median"] / r["floor_ms_median"]
    return r


def hf_generate(model_dir: Path, rows: list[list[int]], new_tokens: int, device: str, dtype: str) -> dict:
    """transformers' greedy `generate` on the exported model: the decode time per token is the time of generating
    new_tokens + 1 tokens minus that of generating 1 (the prefill and first token), over new_tokens; min of 3."""
    import time

    import torch
    from transformers import AutoModelForCausalLM

    dev = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=True,
                                                 dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
    model = model.to(dev).eval()
    ids = torch.tensor(rows, device=dev)

    def timed(n: int):
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                                 pad_token_id=0)
        if dev == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, out

    timed(2)  # warm-up
    first = min(timed(1)[0] for _ in range(3))
    runs = [timed(new_tokens + 1) for _ in range(3)]
    total = min(t for t, _ in runs)
    out = runs[0][1]
    made = out.shape[1] - ids.shape[1]  # may stop early at EOS
    step_s = (total - first) / max(made - 1, 1)
    return {"new_tokens": made * len(rows), "step_ms_median": 1e3 * step_s, "decode_tok_s": len(rows) / step_s,
            "tokens": out[:, ids.shape[1]:].tolist()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supra", default="build/supra")
    ap.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    ap.add_argument("--contexts", default="1024,4096,16384,65536")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--kv-size", type=int, default=1024, help="TOVA's K")
    ap.add_argument("--tova-max-context", type=int, default=4096)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default=None, help="f32 | bf16 (default: bf16 on a GPU, f32 on the CPU)")
    ap.add_argument("--models", default="supra,reference,transformer,tova,hf",
                    help="rows to run: supra (fast path), graph (fast path replayed as a CUDA graph: --cuda-graph, "
                         "CUDA only), reference (supra's reference decode path), transformer (full K/V cache), tova, "
                         "hf (transformers generate on the exported SUPRA model)")
    ap.add_argument("--hf-max-context", type=int, default=2048, help="longest context the hf baseline runs at")
    ap.add_argument("--batches", default="1", help="comma list of batch sizes (prompts decoded together)")
    ap.add_argument("--json")
    args = ap.parse_args()
    contexts = [int(x) for x in args.contexts.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    if args.dtype is None:
        args.dtype = "f32" if args.device == "cpu" else "bf16"
    wanted = set(args.models.split(","))
    if args.device == "cpu":
        wanted.discard("graph")
    results = {"shape": args.shape, "device": args.device, "dtype": args.dtype, "kv_size": args.kv_size, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_model(args.shape, tmp / "hf")
        run([args.supra, "convert", "--model", str(tmp / "hf"), "--out", str(tmp / "supra")])
        if "hf" in wanted:
            run([args.supra, "export", "--checkpoint", str(tmp / "supra"), "--out", str(tmp / "export")])
        vocab = SHAPES[args.shape][5]
        kinds = [("supra", "supra", tmp / "supra", []),
                 ("supra cuda graph", "graph", tmp / "supra", ["--cuda-graph"]),
                 ("supra reference", "reference", tmp / "supra", ["--decode-path", "reference"]),
                 ("transformer", "transformer", tmp / "hf", []),
                 (f"tova K={args.kv_size}", "tova", tmp / "hf",
                  ["--kv-policy", "tova", "--kv-size", str(args.kv_size)])]
        kinds = [k for k in kinds if k[1] in wanted]
        print(f"{'batch':>5s} | {'context':>8s} | {'model':15s} | {'prefill tok/s':>13s} | {'decode tok/s':>12s} | "
              f"{'step ms':>8s} | {'floor ms':>8s} | {'/floor':>6s} | {'state MiB/seq':>13s}", flush=True)
        for B in batches:
            for T in contexts:
                rng = random.Random(T)
                ids = tmp / "ids.txt"
                ids.write_text(";".join(",".join(str(rng.randrange(3, vocab)) for _ in range(T)) for _ in range(B)))
                rows = [[int(x) for x in line.split(",")] for line in ids.read_text().split(";")]
                supra_tokens = None
                for name, key, model, extra in kinds:
                    if key == "tova" and T > args.tova_max_context:
                        continue
                    cmd = [args.supra, "generate", "--model", str(model), "--ids", f"@{ids}", "--no-bos",
                           "--max-new-tokens", str(args.new_tokens), "--temperature", "0", "--device", args.device,
                           "--dtype", args.dtype, "--batch-size", str(B), "--floor", *extra]
                    try:
                        out, err = run(cmd)
                        r = parse(err)
                        if key == "supra" and B == 1:
                            supra_tokens = [int(x) for x in out.split()]
                    except RuntimeError as e:  # e.g. out of memory at long contexts: keep going
                        r = {"error": str(e)[:300]}
                    results["rows"].append({"batch": B, "context": T, "model": name, **r})
                    if "error" in r:
                        print(f"{B:5d} | {T:8d} | {name:15s} | error: {r['error'][:80]}")
                    else:
                        print(f"{B:5d} | {T:8d} | {name:15s} | {r['prefill_tok_s']:13.0f} | {r['decode_tok_s']:12.1f} | "
                              f"{r.get('step_ms_median', float('nan')):8.2f} | {r.get('floor_ms_median', float('nan')):8.2f} | "
                              f"{r.get('step_over_floor', float('nan')):6.3f} | {r['state_bytes'] / 2**20:13.2f}",
                              flush=True)
                if "hf" in wanted and T <= args.hf_max_context:
                    try:
                        r = hf_generate(tmp / "export", rows, args.new_tokens, args.device, args.dtype)
                        if supra_tokens is not None:
                            n = min(len(r["tokens"][0]), len(supra_tokens))  # hf made new_tokens + 1
                            r["same_greedy_tokens_as_supra"] = n > 0 and r["tokens"][0][:n] == supra_tokens[:n]
                        del r["tokens"]
                        fast = next((x for x in results["rows"] if x["batch"] == B and x["context"] == T
                                     and x["model"] == "supra" and "step_ms_median" in x), None)
                        if fast:
                            r["supra_speedup"] = r["step_ms_median"] / fast["step_ms_median"]
                    except Exception as e:  # noqa: BLE001 — a failing baseline must not lose the other rows
                        r = {"error": str(e)[:300]}
                    results["rows"].append({"batch": B, "context": T, "model": "hf transformers", **r})
                    if "error" in r:
                        print(f"{B:5d} | {T:8d} | {'hf transformers':15s} | error: {r['error'][:80]}")
                    else:
                        print(f"{B:5d} | {T:8d} | {'hf transformers':15s} | {'':>13s} | {r['decode_tok_s']:12.1f} | "
                              f"{r['step_ms_median']:8.2f} | supra fast path {r.get('supra_speedup', float('nan')):.2f}x faster"
                              f", same greedy ids: {r.get('same_greedy_tokens_as_supra')}", flush=True)
                    if args.json:  # after every row: a run cut short keeps what it measured
                        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
