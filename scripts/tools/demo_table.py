#!/usr/bin/env python3
"""The demo's final table (scripts/demo.sh): held-out perplexity, bits/token and task accuracy of the teacher, the
converted model at step 0, plain SUPRA uptraining and the distilled RNN, with the training tokens each arm used.
Prints it and writes it to OUT/results.json.

    python3 scripts/tools/demo_table.py OUT      (OUT: the demo folder with eval_*.json, run/ and distill/)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def tokens_seen(run: Path) -> int:
    """Training tokens of a run folder, or of a recipe folder (the sum over its stages)."""
    folders = [run] if (run / "metrics.jsonl").exists() else sorted(
        (p for p in run.iterdir() if (p / "metrics.jsonl").exists()), key=lambda p: int(p.name.split("-")[0]))
    total = 0
    for f in folders:
        last = 0
        for line in (f / "metrics.jsonl").read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "loss" in rec:
                last = rec["tokens"]
        total += last
    return total


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:])[0])
    arms = [("teacher", "teacher (softmax)", None), ("converted", "SUPRA, step 0", None),
            ("uptrained", "SUPRA, plain uptraining (lm)", out / "run"),
            ("distilled", "SUPRA, attention -> distill", out / "distill")]
    rows = []
    print(f"{'held-out (64 docs)':30s} {'tokens':>8s} {'perplexity':>11s} {'bits/token':>11s} {'task acc':>9s} "
          f"{'acc_norm':>9s}")
    for name, label, run in arms:
        r = json.loads((out / f"eval_{name}.json").read_text())
        p, t = r["perplexity"], r["tasks"][0]
        tokens = tokens_seen(run) if run is not None else 0
        rows.append({"model": name, "label": label, "train_tokens": tokens, "ppl": p["ppl"],
                     "bits_per_token": p["bits_per_token"], "acc": t["acc"], "acc_norm": t["acc_norm"]})
        print(f"{label:30s} {tokens / 1e6:7.2f}M {p['ppl']:11.2f} {p['bits_per_token']:11.3f} {t['acc']:9.3f} "
              f"{t['acc_norm']:9.3f}")
    teacher = rows[0]["ppl"]
    print(f"distilled / teacher perplexity: {rows[3]['ppl'] / teacher:.3f}; "
          f"plain uptraining / teacher: {rows[2]['ppl'] / teacher:.3f}")
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
