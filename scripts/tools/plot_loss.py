#!/usr/bin/env python3
"""Plot a supra run's loss curve (train loss per step, held-out loss per evaluation) from metrics.jsonl to PNG.

    python3 scripts/tools/plot_loss.py runs/stories260k/metrics.jsonl --out runs/stories260k/loss.png \
        [--label NAME] [--teacher-loss 1.23] [more metrics.jsonl files, run or recipe folders to overlay …]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def read_metrics(path: Path, offset: int = 0) -> tuple[list[tuple[int, float]], list[tuple[int, float]], int]:
    """(train CE, held-out CE) points by tokens seen, and the last token count. `path`: a metrics.jsonl, a run folder,
    or a recipe folder (its stages <i>-<name>/ in order, tokens counted on from one stage to the next)."""
    if path.is_dir() and not (path / "metrics.jsonl").exists():
        stages = sorted((p for p in path.iterdir() if (p / "metrics.jsonl").exists() and p.name.split("-")[0].isdigit()),
                        key=lambda p: int(p.name.split("-")[0]))
        train, evals = [], []
        for stage in stages:
            t, e, offset = read_metrics(stage, offset)
            train, evals = train + t, evals + e
        return train, evals, offset
    if path.is_dir():
        path = path / "metrics.jsonl"
    train, evals, last = [], [], offset
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        tokens = offset + rec.get("tokens", rec["step"])
        if "eval_loss" in rec:
            evals.append((tokens, rec["eval_loss"]))
        elif "ce" in rec and not rec.get("skipped", False):
            train.append((tokens, rec["ce"]))
        if "loss" in rec:
            last = tokens
    return train, evals, last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics", nargs="+", type=Path, help="metrics.jsonl file(s), run folders or recipe folders")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--label", action="append", help="legend label per metrics file")
    ap.add_argument("--teacher-loss", type=float, help="draw the teacher's held-out loss as a reference line")
    ap.add_argument("--title", default="SUPRA uptraining")
    args = ap.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("error: matplotlib is required (pip install matplotlib)", file=sys.stderr)
        return 2
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for i, path in enumerate(args.metrics):
        if not path.exists():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
        train, evals, _ = read_metrics(path)
        label = (args.label[i] if args.label and i < len(args.label) else path.parent.name)
        if train:
            ax.plot([t for t, _ in train], [l for _, l in train], alpha=0.45, lw=1, label=f"{label} train CE")
        if evals:
            ax.plot([t for t, _ in evals], [l for _, l in evals], "o-", lw=2, label=f"{label} held-out CE")
    if args.teacher_loss is not None and math.isfinite(args.teacher_loss):
        ax.axhline(args.teacher_loss, color="k", ls="--", lw=1, label="teacher (softmax) held-out CE")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
