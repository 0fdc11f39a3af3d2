#!/usr/bin/env python3
"""Drives each supra CUDA kernel a few times on the benchmark's primary shapes, for a profiler (Nsight Compute):

  ncu -k regex:'mma_|simt_|decode_' --launch-skip 4 --launch-count 4 --set detailed \\
      python3 scripts/tools/profile_kernels.py --lib build-gpu/libsupra_kernels.so

Runs: chunked forward and forward+backward at B=8 H=32 T=2048 D=128 bf16 (the issue-4 target shape), then the decode
step at batch 8 and 256 (H=32, D=128, fp32 state). No timing here: scripts/tools/bench_kernels.py measures.
"""
import argparse

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default="build-gpu/libsupra_kernels.so")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--what", default="fwd,bwd,decode", help="comma list of fwd, bwd, decode")
    args = ap.parse_args()
    torch.ops.load_library(args.lib)
    ops = torch.ops.supra
    what = args.what.split(",")
    B, H, T, D = 8, 32, 2048, 128
    lg = torch.tensor([-(2.0 ** (-8.0 * (h + 1) / H)) for h in range(H)], device="cuda")  # reference slopes
    s = D ** -0.5
    torch.manual_seed(0)
    if "fwd" in what or "bwd" in what:
        q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        for x in (q, k, v):
            x.requires_grad_("bwd" in what)
        do = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)
        for _ in range(args.repeat):
            o, _ = ops.linear_attention(q, k, v, lg, s, None, None, 64)
            if "bwd" in what:
                torch.autograd.grad(o, (q, k, v), do)
        torch.cuda.synchronize()
    if "decode" in what:
        for batch in (8, 256):
            q, k, v = (torch.randn(batch, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
            state = torch.randn(batch, H, D, D, device="cuda")
            for _ in range(args.repeat):
                ops.linear_attention_step_(q, k, v, state, lg, s, None)
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
