#!/usr/bin/env python3
"""An exported SUPRA model in Hugging Face transformers, as users decode with it: greedy `generate()` ids equal
`supra generate`'s, one token is fed per decoding step, and the per-token decode time does not grow with the
prompt (the recurrent state is constant-size).

    python3 scripts/tools/check_hf_decode.py --export runs/smollm2-supra-hf --supra build/supra \
        [--prompt-lengths 64,2048] [--new-tokens 16] [--threads 2]

Prompts are random token ids (seed 0; no BOS added on either side). Decode time per token = (time of generate with
1 + N new tokens − time with 1) / N, the best of 3 repetitions. Prints one JSON object; exits 1 if a check fails.
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--export", required=True)
    ap.add_argument("--supra", required=True)
    ap.add_argument("--prompt-lengths", default="64,2048")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.export, trust_remote_code=True, dtype=torch.float32).eval()
    fed: list[int] = []
    model.register_forward_pre_hook(lambda m, a, kw: fed.append((kw.get("input_ids") if kw.get("input_ids") is not None
                                                                  else a[0]).shape[1]), with_kwargs=True)
    vocab = model.config.vocab_size
    rng = random.Random(0)
    report = {"export": args.export, "threads": args.threads, "lengths": {}}
    ok = True
    for L in [int(x) for x in args.prompt_lengths.split(",")]:
        prompt = [rng.randrange(3, vocab) for _ in range(L)]
        ids = torch.tensor([prompt])
        gen = dict(do_sample=False, pad_token_id=0)
        fed.clear()
        with torch.no_grad():
            hf = model.generate(ids, max_new_tokens=args.new_tokens, **gen)[0, L:].tolist()
        steps = list(fed)
        proc = subprocess.run([args.supra, "generate", "--model", args.export, "--ids", ",".join(map(str, prompt)),
                               "--no-bos", "--max-new-tokens", str(args.new_tokens), "--temperature", "0",
                               "--device", "cpu"], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        ours = [int(t) for t in proc.stdout.split()][-args.new_tokens:]

        def timed(n: int) -> float:
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                with torch.no_grad():
                    model.generate(ids, max_new_tokens=n, min_new_tokens=n, **gen)
                best = min(best, time.perf_counter() - t0)
            return best

        per_token = (timed(1 + args.new_tokens) - timed(1)) / args.new_tokens
        same = hf == ours
        one_per_step = steps[0] == L and all(s == 1 for s in steps[1:])
        ok = ok and same and one_per_step
        report["lengths"][L] = {"greedy_ids_equal": same, "fed_per_step": steps[:4], "one_token_per_step": one_per_step,
                                "decode_ms_per_token": round(per_token * 1e3, 2)}
    times = [v["decode_ms_per_token"] for v in report["lengths"].values()]
    report["decode_time_ratio_longest_to_shortest"] = round(times[-1] / times[0], 3)
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
