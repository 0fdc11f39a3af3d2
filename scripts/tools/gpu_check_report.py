#!/usr/bin/env python3
"""The JSON report of scripts/gpu_check.sh: one file, rewritten (atomically) after every stage, so that a run cut
short still reports what it measured; and the numbers of each stage, read from that stage's outputs.

    gpu_check_report.py init REPORT key=value ...                 # the run's header (device, commit, budget, ...)
    gpu_check_report.py stage REPORT NAME STATUS SECONDS [NOTE] [NUMBERS.json]
    gpu_check_report.py gtest GTEST.json                          # numbers: counts, failed tests
    gpu_check_report.py train REF=metrics.jsonl RUN=metrics.jsonl [--info INFO.txt --micro-batch B --seq-len T
                              --zero Z --measured-mib M] [--tolerance 0.05] [--compare no]
                                                                  # numbers: losses, their agreement, memory vs plan
    gpu_check_report.py kbench BENCH.json                         # numbers: gate, the table
    gpu_check_report.py decode BENCH_DECODE.json                  # numbers: one row per batch, context and model
    gpu_check_report.py uptrain metrics.jsonl --params N [--peak-flops F] [--log TRAIN.log]   # numbers: tokens/s, MFU
The numbers subcommands print JSON on stdout (an "error" key when the outputs are missing).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def save(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def cmd_init(report: str, pairs: list[str]) -> None:
    data = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "stages": {}}
    for p in pairs:
        k, _, v = p.partition("=")
        data[k] = value(v)
    save(report, data)


def cmd_stage(report: str, name: str, status: str, seconds: str, note: str = "", numbers: str = "") -> None:
    data = load(report) or {"stages": {}}
    entry = {"status": status, "seconds": value(seconds)}
    if note:
        entry["note"] = note
    if numbers:
        n = load(numbers)
        if n:
            entry["numbers"] = n
    data.setdefault("stages", {})[name] = entry
    data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    save(report, data)


def rows(path: str) -> list[dict]:
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return out


def gtest(path: str) -> dict:
    d = load(path)
    if not d:
        return {"error": f"no gtest JSON at {path}"}
    tests = [t for s in d.get("testsuites", []) for t in s.get("testsuite", [])]
    skipped = [t for t in tests if t.get("result") == "SKIPPED"]
    failed = [f"{t.get('classname')}.{t.get('name')}" for t in tests if t.get("failures")]
    return {"tests": len(tests), "passed": len(tests) - len(skipped) - len(failed), "skipped": len(skipped),
            "failed": len(failed), "failed_tests": failed[:20]}


def plan_bytes(info_path: str, micro_batch: int, seq_len: int, zero: int) -> dict:
    """memory_plan.py's estimate for the model `supra info` described, on one rank."""
    sys.path.insert(0, HERE)
    import memory_plan

    info = {}
    with open(info_path) as f:
        for line in f:
            k, _, v = line.partition(":")
            info[k.strip()] = v.strip()
    heads, kv = (int(x) for x in info["heads / kv heads"].split()[0:3:2])
    cfg = {"hidden_size": int(info["hidden size"]), "intermediate_size": int(info["intermediate size"]),
           "num_hidden_layers": int(info["layers"]), "vocab_size": int(info["vocab size"]),
           "num_attention_heads": heads, "num_key_value_heads": kv,
           "tie_word_embeddings": info.get("tied embeddings", "").startswith("yes")}
    p = memory_plan.plan(cfg, 1, zero, micro_batch, seq_len, checkpointing=False)
    return {k: round(v / 2**20, 2) for k, v in p.items()}


def train(args: list[str]) -> dict:
    opts, runs = {}, []
    it = iter(args)
    for a in it:
        if a.startswith("--"):
            opts[a[2:]] = next(it)
        else:
            runs.append(a.split("=", 1))
    out: dict = {"runs": {}}
    losses = {}
    for name, path in runs:
        r = rows(path)
        tr = [x for x in r if "loss" in x]
        if not tr:
            out["runs"][name] = {"error": f"no metrics in {path}"}
            continue
        losses[name] = {x["step"]: x["loss"] for x in tr}
        tps = [x["tokens_per_s"] for x in tr if x.get("tokens_per_s")]
        out["runs"][name] = {"steps": tr[-1]["step"], "first_loss": tr[0]["loss"], "last_loss": tr[-1]["loss"],
                             "eval_loss": {str(x["step"]): x["eval_loss"] for x in r if "eval_loss" in x},
                             "tokens_per_s": round(tps[-1], 1) if tps else None}
    names = list(losses)
    if len(names) >= 2 and opts.get("compare", "yes") != "no":  # every run against the first over their common steps
        ref = losses[names[0]]
        for n in names[1:]:
            common = sorted(set(ref) & set(losses[n]))
            if common:
                diffs = [abs(ref[s] - losses[n][s]) for s in common]
                early = diffs[: min(10, len(diffs))]
                out[f"{n}_vs_{names[0]}"] = {"common_steps": len(common), "max_abs_loss_diff_first10": max(early),
                                             "max_abs_loss_diff": max(diffs),
                                             "last_loss_diff": losses[n][common[-1]] - ref[common[-1]],
                                             "agree": max(early) <= float(opts.get("tolerance", 0.05))}
    if "info" in opts:
        try:
            out["memory_plan_mib"] = plan_bytes(opts["info"], int(opts["micro-batch"]), int(opts["seq-len"]),
                                                int(opts.get("zero", 2)))
        except (OSError, KeyError, ValueError) as e:
            out["memory_plan_mib"] = {"error": str(e)}
    if opts.get("measured-mib"):
        out["measured_peak_mib"] = value(opts["measured-mib"])
        out["measured_note"] = "nvidia-smi's peak for the rank's process: includes the CUDA context and the caching allocator's slack"
    return out


def kbench(path: str) -> dict:
    d = load(path)
    if not d:
        return {"error": f"no benchmark JSON at {path}"}
    procs = d.get("processes", [])
    return {"processes": len(procs), "gate_pass": all(p.get("gate_pass") for p in procs),
            "timing": procs[0].get("timing") if procs else None, "table": d.get("table")}


def decode(path: str) -> dict:
    d = load(path)
    if not d:
        return {"error": f"no decode benchmark JSON at {path}"}
    keep = ("batch", "context", "model", "prefill_tok_s", "decode_tok_s", "step_ms_median", "floor_ms_median",
            "step_over_floor", "supra_speedup", "same_greedy_tokens_as_supra", "state_bytes", "error")
    return {"shape": d.get("shape"), "device": d.get("device"), "dtype": d.get("dtype"),
            "rows": [{k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items() if k in keep}
                     for r in d.get("rows", [])]}


def steady_rate(log_path: str, tr: list[dict]) -> float | None:
    """Tokens/s between the first and the last progress line of a (non-tty) train log: the steady rate, without the
    first steps' warm-up that metrics.jsonl's cumulative tokens_per_s includes."""
    import datetime
    import re

    tokens = {x["step"]: x.get("tokens") for x in tr}
    pts = []
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\].* step (\d+)/\d+ \|", line)
                if m and tokens.get(int(m[2])) is not None:
                    t = datetime.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                    pts.append((t, tokens[int(m[2])]))
    except OSError:
        return None
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def uptrain(args: list[str]) -> dict:
    path, opts = args[0], dict(zip(args[1::2], args[2::2]))
    tr = [x for x in rows(path) if "loss" in x]
    if not tr:
        return {"error": f"no metrics in {path}"}
    n = int(opts["--params"])
    peak = float(opts["--peak-flops"]) if opts.get("--peak-flops") else None
    cumulative = tr[-1].get("tokens_per_s") or 0.0
    steady = steady_rate(opts["--log"], tr) if opts.get("--log") else None
    tps = steady or cumulative
    return {"steps": tr[-1]["step"], "tokens": tr[-1].get("tokens"), "parameters": n,
            "tokens_per_s": round(tps, 1), "tokens_per_s_cumulative": round(cumulative, 1),
            "rate": "steady (between the first and last progress lines)" if steady else "cumulative (with warm-up)",
            "mfu": round(6.0 * n * tps / peak, 4) if peak else None, "peak_flops": peak,
            "first_loss": tr[0]["loss"], "last_loss": tr[-1]["loss"]}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[1], argv[2:]
    if cmd == "init":
        cmd_init(rest[0], rest[1:])
        return 0
    if cmd == "stage":
        cmd_stage(*rest)
        return 0
    fn = {"gtest": lambda: gtest(rest[0]), "train": lambda: train(rest), "kbench": lambda: kbench(rest[0]),
          "decode": lambda: decode(rest[0]), "uptrain": lambda: uptrain(rest)}.get(cmd)
    if fn is None:
        print(f"unknown subcommand {cmd}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(fn()))
    except Exception as e:  # noqa: BLE001 - the report must still be written
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
