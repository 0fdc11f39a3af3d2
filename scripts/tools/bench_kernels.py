#!/usr/bin/env python3
"""Benchmark of supra's CUDA linear-attention kernels, following ../shared/docs/kernel-benchmark-protocol.md.

Ours (torch.ops.supra.linear_attention / linear_attention_step_ from libsupra_kernels.so) against fla
(chunk_simple_gla, fused_recurrent_simple_gla; a copy of fla/ in third_party/, never committed) and the softmax
baseline (SDPA with the FlashAttention and cuDNN backends), forward and forward+backward, every protocol shape in
one run. Before any timing counts, a correctness gate compares ours and fla with a float64 naive reference
(RMS(ref - x) / RMS(ref) on o, final state, dq, dk, dv; NaN check; outputs poisoned with NaN first).

Usage:
  python3 scripts/tools/bench_kernels.py --lib build-gpu/libsupra_kernels.so [--json out.json] [--processes 2] [--quick]
  python3 scripts/tools/bench_kernels.py --dry-run        # no GPU: checks the plan, shapes and the reference on CPU
  python3 scripts/tools/bench_kernels.py --shapes "few heads" --segments auto   # + ours in the sequence-parallel mode

--segments V[,V...] adds "ours seg=V" next to "ours" (the op with SUPRA_LINEAR_ATTENTION_SEGMENTS=V; "ours" itself runs
with the variable as the benchmark found it, default off): gated like ours, timed in the same rounds, and its table
row gives the ratio vs fla and vs unsegmented ours (docs/kernels.md, "Sequence-parallel mode").

The table is printed last; --json writes every number (per process, plus medians across processes).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----------------------------------------------------------------------------------------------- the shapes


@dataclass
class Shape:
    name: str
    B: int
    T: int
    H: int
    D: int
    docs: int = 0          # > 0: variable-length packed rows with this many documents per row
    skewed: bool = False   # skewed document lengths
    primary: bool = False  # the target shape


def shapes(quick: bool) -> list[Shape]:
    s = [Shape("7B layer", 8, 2048, 32, 128, primary=True)]
    if quick:
        return s
    s += [
        Shape("7B layer, long", 8, 8192, 32, 128),
        Shape("few heads, long", 2, 16384, 16, 128),
        Shape("ragged D=64", 4, 1000, 16, 64),
        Shape("ragged D=128", 4, 1000, 16, 128),
        Shape("varlen uniform", 8, 2048, 32, 128, docs=8),
        Shape("varlen skewed", 8, 2048, 32, 128, docs=8, skewed=True),
    ]
    return s


DECODE_BATCHES = [1, 8, 64, 256]
# The fused SUPRA decode step (supra_decode_step_: φ, RoPE, state update, readout, GroupNorm in one kernel) is timed
# at these batches, H_kv = H (pre [B, 3·H·D] bf16), next to the plain decode step; same floor (the state stream).
FUSED_DECODE_BATCHES = [1, 8, 64]


def doc_lengths(T: int, docs: int, skewed: bool) -> list[int]:
    if not skewed:
        base = [T // docs] * docs
    else:  # one long document and a tail of short ones
        w = [2.0 ** -i for i in range(docs)]
        base = [max(1, int(T * x / sum(w))) for x in w]
    base[-1] += T - sum(base)
    return base


def log_gamma(H: int, device) -> torch.Tensor:
    """SUPRA's reference slopes: log γ_h = -2^(-8 (h+1) / H) (fp32)."""
    h = torch.arange(H, dtype=torch.float64)
    return (-(2.0 ** (-8.0 * (h + 1) / H))).to(torch.float32).to(device)


# ----------------------------------------------------------------------------------------------- reference


def naive_reference(q, k, v, lg, scale, resets=None):
    """float64 O(T²): o_i = Σ_{j≤i, same doc} γ^{i-j} (q_i·k_j) s v_j; state S_T = Σ_j γ^{T-j} s k_jᵀ v_j (last doc).
    q, k, v [B, T, H, D] float64 (same head count); resets [B, T] bool or None."""
    B, T, H, D = q.shape
    i = torch.arange(T, device=q.device)
    diff = (i[:, None] - i[None, :]).to(torch.float64)
    causal = i[:, None] >= i[None, :]
    g = lg.to(torch.float64).view(H, 1, 1)
    decay = torch.where(causal, torch.exp(g * diff.clamp_min(0)), torch.zeros((), dtype=torch.float64, device=q.device))
    mask = decay.unsqueeze(0).expand(B, H, T, T)
    w_last = torch.exp(g.view(1, H, 1) * (T - i).to(torch.float64).view(1, 1, T)).expand(B, H, T)
    if resets is not None:
        doc = torch.cumsum(resets.to(torch.int64), dim=1)  # [B, T]
        same = (doc[:, :, None] == doc[:, None, :]).unsqueeze(1)
        mask = mask * same
        w_last = w_last * (doc == doc[:, -1:]).unsqueeze(1)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) * scale * mask
    o = torch.einsum("bhij,bjhd->bihd", scores, v)
    state = torch.einsum("bhj,bjhk,bjhv->bhkv", w_last * scale, k, v)
    return o, state


def supra_step_reference(pre, cos, sin, state, lg, scale):
    """float64 definition of supra_decode_step_ (kernels/linear_attention.h): returns (out [B, H*D], next state)."""
    B, H, D = state.shape[0], state.shape[1], state.shape[2]
    x = pre.double().view(B, -1, D)
    Hkv = (x.shape[1] - H) // 2
    c, s = cos.double().unsqueeze(1), sin.double().unsqueeze(1)

    def rope(t):
        return t * c + torch.cat([-t[..., D // 2:], t[..., : D // 2]], -1) * s

    q = rope(x[:, :H].clamp_min(0))
    k = (rope(x[:, H:H + Hkv].clamp_min(0)) * scale).repeat_interleave(H // Hkv, 1)
    v = x[:, H + Hkv:].repeat_interleave(H // Hkv, 1)
    S = state.double() + k.unsqueeze(-1) * v.unsqueeze(-2)
    o = torch.einsum("bhi,bhij->bhj", q, S)
    o = o - o.mean(-1, keepdim=True)
    out = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + 1e-5)
    return out.reshape(B, H * D), lg.double().exp().view(1, H, 1, 1) * S


def rel_rms(ref, x) -> float:
    ref = ref.detach().to(torch.float64)
    d = x.detach().to(torch.float64) - ref
    den = ref.pow(2).mean().sqrt().item()
    return d.pow(2).mean().sqrt().item() / (den if den > 0 else 1.0)


# ----------------------------------------------------------------------------------------------- implementations


def bound_autotuning(max_configs: int) -> None:
    """Keep only the first max_configs candidates of every @triton.autotune that is declared after this (fla's
    kernels, imported next): a bounded warm-up for time-capped runs; fla may then miss its fastest config."""
    if max_configs <= 0:
        return
    import triton

    original = triton.autotune

    def bounded(*args, **kwargs):
        if "configs" in kwargs:
            kwargs["configs"] = list(kwargs["configs"])[:max_configs]
        elif args:
            args = (list(args[0])[:max_configs],) + args[1:]
        return original(*args, **kwargs)

    triton.autotune = bounded


SEGMENTS_VAR = "SUPRA_LINEAR_ATTENTION_SEGMENTS"


class Impls:
    def __init__(self, lib: str | None, fla_dir: str | None, segments: str = ""):
        self.ours = None
        # the sequence-parallel variants to run next to ours, and ours' own setting (the variable as found)
        self.segments = [x.strip() for x in segments.split(",") if x.strip()]
        self.base_segments = os.environ.get(SEGMENTS_VAR, "off")
        if lib:
            torch.ops.load_library(lib)
            self.ours = torch.ops.supra
        self.fla_chunk = self.fla_rec = None
        self.fla_error = None
        if fla_dir and os.path.isdir(os.path.join(fla_dir, "fla")):
            os.environ.setdefault("FLA_DISABLE_BACKEND_DISPATCH", "1")
            bound_autotuning(int(os.environ.get("SUPRA_BENCH_FLA_MAX_CONFIGS", "0")))
            sys.path.insert(0, fla_dir)
            sys.modules["fla.layers"] = None  # fla's model packages import transformers; not needed here
            sys.modules["fla.models"] = None
            try:
                from fla.ops.simple_gla import chunk_simple_gla, fused_recurrent_simple_gla

                self.fla_chunk, self.fla_rec = chunk_simple_gla, fused_recurrent_simple_gla
            except Exception as e:  # noqa: BLE001 - reported in the output
                self.fla_error = f"{type(e).__name__}: {e}"
        else:
            self.fla_error = f"no fla/ in {fla_dir}"

    def ours_fwd(self, q, k, v, lg, scale, s0=None, resets=None, segments=None):
        # The op reads the variable on every call, the backward included: it stays set until the next ours_fwd.
        os.environ[SEGMENTS_VAR] = segments or self.base_segments
        return self.ours.linear_attention(q, k, v, lg, scale, s0, resets, 64)

    def fla_fwd(self, q, k, v, lg, scale, s0=None, cu_seqlens=None, final_state=True):
        return self.fla_chunk(q, k, v, g_gamma=lg, scale=scale, initial_state=s0, output_final_state=final_state,
                              cu_seqlens=cu_seqlens)


def packed_inputs(shape: Shape, device):
    """resets [B, T] (ours) and cu_seqlens over the flattened B·T tokens (fla) for a varlen shape."""
    lens = doc_lengths(shape.T, shape.docs, shape.skewed)
    resets = torch.zeros(shape.B, shape.T, dtype=torch.bool)
    starts = [0]
    for n in lens[:-1]:
        starts.append(starts[-1] + n)
    resets[:, starts] = True
    cu = [0]
    for _ in range(shape.B):
        for n in lens:
            cu.append(cu[-1] + n)
    return resets.to(device), torch.tensor(cu, dtype=torch.long, device=device)


# ----------------------------------------------------------------------------------------------- correctness gate


def gate(impls: Impls, shape: Shape, positive: bool, seed: int = 0) -> dict:
    """Errors of ours and fla against the float64 naive reference on batch row 0 and two heads (rows and heads are
    independent, so slices of the full-shape outputs are exact)."""
    dev = "cuda"
    torch.manual_seed(seed)
    B, T, H, D = shape.B, shape.T, shape.H, shape.D
    scale = D ** -0.5

    def rnd(pos):
        x = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
        return x.relu() if pos else x

    q, k, v = rnd(positive), rnd(positive), rnd(False)
    do = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    dht = torch.randn(B, H, D, D, device=dev, dtype=torch.float32)
    lg = log_gamma(H, dev)
    resets = cu = None
    if shape.docs:
        resets, cu = packed_inputs(shape, dev)
    heads = [0, H - 1]  # fastest and slowest decay
    sl = (slice(0, 1), slice(None), heads)

    ref_in = [x[sl].to(torch.float64).requires_grad_() for x in (q, k, v)]
    ro, rs = naive_reference(*ref_in, lg[heads], scale, resets[:1] if resets is not None else None)
    torch.autograd.backward([ro, rs], [do[sl].double(), dht[:1, heads].double()])
    ref = {"o": ro, "state": rs, "dq": ref_in[0].grad, "dk": ref_in[1].grad, "dv": ref_in[2].grad}

    def measure(run):
        x = [t.clone().requires_grad_() for t in (q, k, v)]
        torch.empty(512 << 20, dtype=torch.uint8, device=dev).fill_(0xFF)  # NaN (bf16 / fp32) into the allocator
        o, s = run(*x)
        torch.autograd.backward([o, s], [do, dht])
        got = {"o": o[sl], "state": s[:1, heads], "dq": x[0].grad[sl], "dk": x[1].grad[sl], "dv": x[2].grad[sl]}
        res = {name: rel_rms(ref[name], got[name]) for name in ref}
        full = [o, s, x[0].grad, x[1].grad, x[2].grad]
        res["nan"] = any(bool(torch.isnan(t).any()) for t in full)
        return res

    out = {"ours": measure(lambda q_, k_, v_: impls.ours_fwd(q_, k_, v_, lg, scale, None, resets))}
    for seg in impls.segments:
        out[f"ours seg={seg}"] = measure(
            lambda q_, k_, v_, seg=seg: impls.ours_fwd(q_, k_, v_, lg, scale, None, resets, segments=seg))
    if impls.fla_chunk is not None:
        # fla's final state is h_T = Σ_j γ^{T-1-j} k_jᵀ v_j (no scale, no next-step decay); ours (the stored-state
        # convention) is S_T = s·γ·h_T. Map it so that both are compared with the same reference.
        to_ours = (scale * lg.exp()).view(1, H, 1, 1)

        def fla_run(q_, k_, v_):
            if cu is None:
                o, s = impls.fla_fwd(q_, k_, v_, lg, scale)
                return o, s * to_ours
            o, s = impls.fla_fwd(q_.reshape(1, B * T, H, D), k_.reshape(1, B * T, H, D), v_.reshape(1, B * T, H, D),
                                 lg, scale, cu_seqlens=cu)
            # fla returns one final state per document; the last document of each row is the row's state
            per_row = s.view(B, shape.docs, H, D, D)[:, -1]
            return o.view(B, T, H, D), per_row * to_ours
        try:
            out["fla"] = measure(fla_run)
        except Exception as e:  # noqa: BLE001
            out["fla"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    fla_worst = max((v for kk, v in out.get("fla", {}).items() if kk not in ("nan", "error")), default=0.0)
    tol = max(5e-3, 1.5 * fla_worst)
    ours_keys = ["ours"] + [f"ours seg={seg}" for seg in impls.segments]
    worst = max(v for name in ours_keys for kk, v in out[name].items() if kk != "nan")
    out["tolerance"] = tol
    out["pass"] = not any(out[name]["nan"] for name in ours_keys) and worst <= tol
    return out


def state_continuity(impls: Impls) -> float:
    """Chunked prefill of T tokens + 16 recurrent steps vs the chunked op on T + 16 tokens (fp32 inputs)."""
    torch.manual_seed(1)
    B, T, H, D, N = 2, 1000, 8, 128, 16
    q, k, v = (torch.randn(B, T + N, H, D, device="cuda") for _ in range(3))
    lg, s = log_gamma(H, "cuda"), D ** -0.5
    o_full, s_full = impls.ours_fwd(q, k, v, lg, s)
    _, state = impls.ours_fwd(q[:, :T], k[:, :T], v[:, :T], lg, s)
    outs = [impls.ours.linear_attention_step_(q[:, t], k[:, t], v[:, t], state, lg, s, None) for t in range(T, T + N)]
    return max(rel_rms(o_full[:, T:], torch.stack(outs, 1)), rel_rms(s_full, state))


# ----------------------------------------------------------------------------------------------- timing


def bench(fn) -> dict:
    from triton.testing import do_bench

    med, p20, p80 = do_bench(fn, warmup=25, rep=100, quantiles=[0.5, 0.2, 0.8])
    return {"ms": med, "p20": p20, "p80": p80}


def peak_memory(fn) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def time_shape(impls: Impls, shape: Shape) -> dict:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    dev = "cuda"
    torch.manual_seed(0)
    B, T, H, D = shape.B, shape.T, shape.H, shape.D
    scale = D ** -0.5
    q, k, v = (torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    do = torch.randn(B, T, H, D, device=dev, dtype=torch.bfloat16)
    lg = log_gamma(H, dev)
    resets = cu = None
    if shape.docs:
        resets, cu = packed_inputs(shape, dev)

    def ours_f():
        return impls.ours_fwd(q, k, v, lg, scale, None, resets)

    def fla_f():
        if cu is None:
            return impls.fla_fwd(q, k, v, lg, scale, final_state=False)
        return impls.fla_fwd(q.view(1, B * T, H, D), k.view(1, B * T, H, D), v.view(1, B * T, H, D), lg, scale,
                             cu_seqlens=cu, final_state=False)

    def fwd_bwd(f):
        def run():
            o = f()[0]
            torch.autograd.grad(o, (q, k, v), do.view_as(o))
        return run

    def fwd_only(f):
        def run():
            with torch.no_grad():
                f()
        return run

    impl_fns = {"ours": ours_f}
    for seg in impls.segments:
        impl_fns[f"ours seg={seg}"] = lambda seg=seg: impls.ours_fwd(q, k, v, lg, scale, None, resets, segments=seg)
    if impls.fla_chunk is not None:
        impl_fns["fla"] = fla_f
    if not shape.docs:  # SDPA on [B, H, T, D], causal softmax (the transformer we replace)
        qh, kh, vh = (x.detach().transpose(1, 2).contiguous().requires_grad_() for x in (q, k, v))
        doh = do.transpose(1, 2).contiguous()
        for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION), ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION)):
            def sdpa(backend=backend):
                with sdpa_kernel([backend]):
                    return (F.scaled_dot_product_attention(qh, kh, vh, is_causal=True),)

            def sdpa_fb(backend=backend):
                with sdpa_kernel([backend]):
                    o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True)
                torch.autograd.grad(o, (qh, kh, vh), doh)
            impl_fns[name] = sdpa
            impl_fns[name + "/fb"] = sdpa_fb

    res: dict = {}
    # warm up everything first (fla autotunes on first use), then time the implementations alternately
    for name, f in impl_fns.items():
        if name.endswith("/fb"):
            continue
        try:
            fwd_only(f)()
            fb = impl_fns.get(name + "/fb") or fwd_bwd(f)
            fb()
            res[name] = {}
        except Exception as e:  # noqa: BLE001
            res[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    torch.cuda.synchronize()
    for rnd in range(2):
        for name, f in impl_fns.items():
            if name.endswith("/fb") or "error" in res[name]:
                continue
            fb = impl_fns.get(name + "/fb") or fwd_bwd(f)
            fw, fbt = bench(fwd_only(f)), bench(fb)
            if rnd == 0 or fw["ms"] < res[name]["fwd"]["ms"]:
                res[name]["fwd"] = fw
            if rnd == 0 or fbt["ms"] < res[name]["fwd_bwd"]["ms"]:
                res[name]["fwd_bwd"] = fbt
    for name, f in impl_fns.items():
        if name.endswith("/fb") or "error" in res[name]:
            continue
        res[name]["peak_mem_fwd_bwd_MB"] = peak_memory(impl_fns.get(name + "/fb") or fwd_bwd(f)) / 2**20

    # achieved bandwidth against the minimal traffic: 4 tensors forward (q, k, v read, o written), 7 backward
    # (q, k, v, dO read; dq, dk, dv written) + forward again = 11 for forward+backward of a recomputing kernel;
    # the protocol's floor counts 4 and 7 (fwd+bwd of a kernel that saves nothing and recomputes within bwd).
    tensor_bytes = B * T * H * D * 2
    hbm = 3.0e12  # H100 SXM measured on these machines (protocol)
    floors = {"fwd": 4 * tensor_bytes / hbm * 1e3, "fwd_bwd": (4 + 7) * tensor_bytes / hbm * 1e3}
    for name in ["ours", "fla"] + [f"ours seg={seg}" for seg in impls.segments]:
        r = res.get(name, {})
        for mode in ("fwd", "fwd_bwd"):
            if mode in r:
                r[mode]["roofline_fraction"] = floors[mode] / r[mode]["ms"]
                traffic = (4 if mode == "fwd" else 11) * tensor_bytes
                r[mode]["TB_s"] = traffic / (r[mode]["ms"] * 1e-3) / 1e12
                # useful FLOPs of the chunked algorithm (C = 64): per token and head, forward 2·D·C (scores, half
                # causal ~ C/2 ×2) + 2·D·C (P·V) + 4·D² (inter-chunk output and state update); backward ≈ 2×.
                fl_fwd = B * T * H * (2 * D * 64 + 4 * D * D)
                r[mode]["TFLOP_s"] = (fl_fwd if mode == "fwd" else 3 * fl_fwd) / (r[mode]["ms"] * 1e-3) / 1e12
    res["floor_ms"] = floors
    return res


def time_decode(impls: Impls) -> dict:
    H, D = 32, 128
    out = {}
    for B in DECODE_BATCHES:
        torch.manual_seed(0)
        q, k, v = (torch.randn(B, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        state = torch.randn(B, H, D, D, device="cuda", dtype=torch.float32)
        lg, s = log_gamma(H, "cuda"), D ** -0.5
        r = {}
        step = lambda: impls.ours.linear_attention_step_(q, k, v, state, lg, s, None)  # noqa: E731
        r["ours"] = decode_times(step)
        if impls.fla_rec is not None:
            q1, k1, v1 = (x.unsqueeze(1) for x in (q, k, v))

            def fla_step():
                return impls.fla_rec(q1, k1, v1, g_gamma=lg, scale=s, initial_state=state, output_final_state=True)
            try:
                r["fla"] = decode_times(fla_step)
            except Exception as e:  # noqa: BLE001
                r["fla"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        if B in FUSED_DECODE_BATCHES:  # the fused SUPRA step: pre [B, (H + 2·H) D] bf16, cos / sin fp32 [B, D]
            pre = torch.randn(B, 3 * H * D, device="cuda", dtype=torch.bfloat16)
            angle = torch.rand(B, D, device="cuda") * 6.3
            cos, sin = angle.cos(), angle.sin()
            fstate = state.clone()
            fused = lambda: impls.ours.supra_decode_step_(pre, cos, sin, fstate, lg, s)  # noqa: E731
            r["fused"] = decode_times(fused)
            del fstate
        floor_us = 2 * B * H * D * D * 4 / 3.0e12 * 1e6  # fp32 state read + written once
        r["floor_us"] = floor_us
        out[B] = r
    return out


def decode_times(step) -> dict:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    eager = bench(step)
    res = {"eager_us": eager["ms"] * 1e3}
    try:
        g = torch.cuda.CUDAGraph()
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            step()
        torch.cuda.current_stream().wait_stream(s)
        with torch.cuda.graph(g):
            step()
        # 100 steps per replay measured as one graph of 100 launches would hide launch cost differently; one step
        # per replay is what a decoder does per layer, so time the replay.
        graph = bench(g.replay)
        res["graph_us"] = graph["ms"] * 1e3
    except Exception as e:  # noqa: BLE001
        res["graph_error"] = f"{type(e).__name__}: {e}"[:300]
    return res


# ----------------------------------------------------------------------------------------------- driver


def run_worker(args) -> dict:
    impls = Impls(args.lib, args.fla, args.segments)
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "fla_error": impls.fla_error,
              "gate": {}, "timing": {}, "decode": {}}
    sh = shapes(args.quick)
    if args.shapes:
        sh = [x for x in sh if any(w.strip() and w.strip() in x.name for w in args.shapes.split(","))]
    if args.shape_names:
        sh = [x for x in sh if x.name in args.shape_names.split(";")]

    def save():  # after every step, so that a run cut short keeps what it measured
        result["gate_pass"] = all(g["pass"] for g in result["gate"].values()) and \
            result.get("state_continuity", 0.0) <= 1e-5
        with open(args.worker, "w") as f:
            json.dump(result, f)

    result["state_continuity"] = state_continuity(impls)
    result["gate"]["7B layer, positive q/k"] = gate(impls, shapes(True)[0], positive=True, seed=1)
    save()
    if not args.no_decode:
        result["decode"] = time_decode(impls)
        save()
    for shape in sh:
        result["gate"][shape.name] = gate(impls, shape, positive=False)
        torch.cuda.empty_cache()
        result["timing"][shape.name] = {"shape": asdict(shape), **time_shape(impls, shape)}
        torch.cuda.empty_cache()
        save()
        print(f"  {shape.name}: done", file=sys.stderr, flush=True)
    return result


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


def table(results: list[dict]) -> str:
    r0 = results[0]
    lines = [f"device: {r0['device']}  torch {r0['torch']}  processes: {len(results)}"
             + (f"  fla unavailable: {r0['fla_error']}" if r0.get("fla_error") else "")]
    lines.append("correctness gate (rel. RMS vs float64; ours | fla):")
    for name, g in r0["gate"].items():
        o = g["ours"]
        f = g.get("fla", {})
        cols = " ".join(f"{k}={o[k]:.1e}|{f.get(k, float('nan')):.1e}" for k in ("o", "state", "dq", "dk", "dv"))
        lines.append(f"  {'PASS' if g['pass'] else 'FAIL'} {name:26s} {cols} tol={g['tolerance']:.1e}"
                     + (" NaN!" if o["nan"] else ""))
        for variant in (k for k in g if k.startswith("ours seg=")):
            o = g[variant]
            cols = " ".join(f"{k}={o[k]:.1e}" for k in ("o", "state", "dq", "dk", "dv"))
            lines.append(f"       {variant:26s} {cols}" + (" NaN!" if o["nan"] else ""))
    lines.append(f"  state continuity (prefill + 16 steps, fp32): {r0['state_continuity']:.1e}")
    lines.append("")
    hdr = f"{'shape':18s} {'B':>2s} {'T':>6s} {'H':>3s} {'D':>4s} | {'impl':13s} {'fwd ms':>8s} {'fwd+bwd ms':>10s} " \
          f"{'spread':>7s} {'roof%':>6s} {'TB/s':>5s} {'peakMB':>7s} | {'vs fla fwd':>10s} {'fwd+bwd':>8s} | " \
          f"{'vs ours fwd':>11s} {'fwd+bwd':>8s}"
    lines.append(hdr)
    for name in r0["timing"]:
        shp = r0["timing"][name]["shape"]
        impl_names = [k for k in r0["timing"][name] if k not in ("shape", "floor_ms")]
        for impl in impl_names:
            if "error" in r0["timing"][name][impl]:
                lines.append(f"{name:18s} ... {impl}: {r0['timing'][name][impl]['error'][:80]}")
                continue
            fw = [r["timing"][name][impl]["fwd"]["ms"] for r in results]
            fb = [r["timing"][name][impl]["fwd_bwd"]["ms"] for r in results]
            spread = (max(fb) - min(fb)) / median(fb)
            roof = r0["timing"][name][impl]["fwd_bwd"].get("roofline_fraction")
            tbs = r0["timing"][name][impl]["fwd_bwd"].get("TB_s")
            vs = ""
            if impl.startswith("ours") and "fla" in r0["timing"][name] and "error" not in r0["timing"][name]["fla"]:
                ffw = median([r["timing"][name]["fla"]["fwd"]["ms"] for r in results])
                ffb = median([r["timing"][name]["fla"]["fwd_bwd"]["ms"] for r in results])
                vs = f"{ffw / median(fw):9.2f}x {ffb / median(fb):7.2f}x"
            if impl.startswith("ours seg=") and "error" not in r0["timing"][name]["ours"]:  # vs unsegmented ours
                ofw = median([r["timing"][name]["ours"]["fwd"]["ms"] for r in results])
                ofb = median([r["timing"][name]["ours"]["fwd_bwd"]["ms"] for r in results])
                vs = f"{vs or ' ' * 19} | {ofw / median(fw):10.2f}x {ofb / median(fb):7.2f}x"
            lines.append(f"{name:18s} {shp['B']:2d} {shp['T']:6d} {shp['H']:3d} {shp['D']:4d} | {impl:13s} "
                         f"{median(fw):8.3f} {median(fb):10.3f} {spread * 100:6.1f}% "
                         f"{'' if roof is None else f'{roof * 100:5.0f}%':>6s} {'' if tbs is None else f'{tbs:5.2f}':>5s} "
                         f"{r0['timing'][name][impl]['peak_mem_fwd_bwd_MB']:7.0f} | {vs}")
    lines.append("")
    lines.append("decode step (H=32, D=128, fp32 state), µs per step: ours eager / graph | fla eager / graph | "
                 "fused SUPRA step eager / graph | floor")
    for B in r0["decode"]:
        def cell(impl):
            vals = [r["decode"][B].get(impl, {}) for r in results]
            if not vals[0] or "error" in vals[0]:
                return "      n/a       "
            e = median([x["eager_us"] for x in vals])
            g = median([x.get("graph_us", float("nan")) for x in vals])
            return f"{e:7.1f} / {g:6.1f}"
        lines.append(f"  batch {int(B):4d}: {cell('ours')} | {cell('fla')} | {cell('fused')} | "
                     f"{r0['decode'][B]['floor_us']:.1f}")
    return "\n".join(lines)


def dry_run() -> int:
    """No GPU: the shape plan, the document splits and the float64 reference against the op's CPU reference form."""
    for s in shapes(False):
        if s.docs:
            lens = doc_lengths(s.T, s.docs, s.skewed)
            assert sum(lens) == s.T and min(lens) >= 1, (s, lens)
        print(f"shape {s.name}: B={s.B} T={s.T} H={s.H} D={s.D} docs={s.docs}")
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 70, 2, 16, dtype=torch.float64) for _ in range(3))
    resets = torch.zeros(1, 70, dtype=torch.bool)
    resets[0, [0, 20, 41]] = True
    lg = log_gamma(2, "cpu")
    o, s = naive_reference(q, k, v, lg, 0.25, resets)
    # the fused decode step's float64 definition (B 3, H = H_kv = 2, D 16)
    print(f"fused decode step timed at batches {FUSED_DECODE_BATCHES} (H=32, D=128, bf16 pre)")
    pre, angle = torch.randn(3, 3 * 2 * 16, dtype=torch.float64), torch.rand(3, 16, dtype=torch.float64) * 6.3
    st = torch.randn(3, 2, 16, 16)
    ref_out, ref_st = supra_step_reference(pre, angle.cos(), angle.sin(), st, lg, 0.25)
    assert ref_out.shape == (3, 32) and ref_st.shape == (3, 2, 16, 16) and torch.isfinite(ref_out).all()
    lib = os.environ.get("SUPRA_KERNELS_LIB")
    if lib:
        torch.ops.load_library(lib)
        o2, s2 = torch.ops.supra.linear_attention(q, k, v, lg, 0.25, None, resets, 16)
        err = max(rel_rms(o, o2), rel_rms(s, s2))
        print(f"bench reference vs supra CPU op: {err:.1e}")
        assert err < 1e-12, err
        st2 = st.clone()
        out2 = torch.ops.supra.supra_decode_step_(pre.float(), angle.cos().float(), angle.sin().float(), st2, lg, 0.25)
        err = max(rel_rms(ref_out, out2), rel_rms(ref_st, st2))
        print(f"fused decode-step reference vs supra CPU op: {err:.1e}")
        assert err < 1e-5, err
    print("dry run ok (no GPU: nothing timed)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=os.environ.get("SUPRA_KERNELS_LIB", os.path.join(REPO, "build-gpu", "libsupra_kernels.so")))
    ap.add_argument("--fla", default=os.path.join(REPO, "third_party"), help="folder holding fla/")
    ap.add_argument("--json", help="write every number here")
    ap.add_argument("--processes", type=int, default=2, help="repeat in this many processes (noise estimate)")
    ap.add_argument("--quick", action="store_true", help="primary shape only")
    ap.add_argument("--shapes", default="", help="comma list: only shapes whose name contains one of these")
    ap.add_argument("--shape-names", default="", help="semicolon list of exact shape names (names contain commas)")
    ap.add_argument("--no-decode", action="store_true", help="skip the decode-step timing")
    ap.add_argument("--segments", default="",
                    help="comma list of SUPRA_LINEAR_ATTENTION_SEGMENTS values (auto, N): extra 'ours seg=V' rows")
    ap.add_argument("--fla-max-configs", type=int, default=0,
                    help="bound fla's Triton autotuning to its first N configs per kernel (0: all)")
    ap.add_argument("--time-limit", type=float, default=0, help="seconds for all processes (0: none)")
    ap.add_argument("--dry-run", action="store_true", help="no GPU needed: check the plan and the reference")
    ap.add_argument("--table", help="print the table of a JSON file written by --json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.dry_run:
        for seg in (x.strip() for x in args.segments.split(",") if x.strip()):
            print(f"variant: ours seg={seg} ({SEGMENTS_VAR}={seg})")
        return dry_run()
    if args.table:  # re-render the table of a saved --json file
        with open(args.table) as f:
            print(table(json.load(f)["processes"]))
        return 0
    if not torch.cuda.is_available():
        print("error: bench_kernels needs a CUDA GPU (use --dry-run to check the script without one)", file=sys.stderr)
        return 2
    if args.worker:
        run_worker(args)
        return 0
    results = []
    deadline = time.time() + args.time_limit if args.time_limit else None
    for p in range(args.processes):
        path = f"/tmp/supra_bench_{os.getpid()}_{p}.json"
        cmd = [sys.executable, __file__, "--lib", args.lib, "--fla", args.fla, "--worker", path]
        if args.quick:
            cmd.append("--quick")
        if args.shapes:
            cmd += ["--shapes", args.shapes]
        if args.shape_names:
            cmd += ["--shape-names", args.shape_names]
        if args.fla_max_configs:
            os.environ["SUPRA_BENCH_FLA_MAX_CONFIGS"] = str(args.fla_max_configs)
        if args.no_decode:
            cmd.append("--no-decode")
        if args.segments:
            cmd += ["--segments", args.segments]
        t0 = time.time()
        try:
            subprocess.run(cmd, check=True, timeout=None if deadline is None else max(1.0, deadline - t0))
        except subprocess.TimeoutExpired:
            print(f"process {p}: stopped at the time limit; keeping what it measured", file=sys.stderr)
        except subprocess.CalledProcessError as e:
            print(f"process {p}: failed ({e.returncode}); keeping what it measured", file=sys.stderr)
        print(f"process {p}: {time.time() - t0:.0f} s", file=sys.stderr)
        if os.path.exists(path):
            with open(path) as f:
                results.append(json.load(f))
        if deadline is not None and time.time() > deadline:
            break
    if not results:
        print("error: no benchmark process produced results", file=sys.stderr)
        return 1
    # the table needs every process to have the shapes of the first; drop what a cut-short process lacks
    names = [n for n in results[0]["timing"] if all(n in r["timing"] for r in results)]
    for r in results:
        r["timing"] = {n: r["timing"][n] for n in names}
    if args.json:  # first, so that no number is lost if the table fails
        with open(args.json, "w") as f:
            json.dump({"processes": results}, f, indent=1)
    text = table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"processes": results, "table": text}, f, indent=1)
    print(text)
    return 0 if all(r["gate_pass"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
