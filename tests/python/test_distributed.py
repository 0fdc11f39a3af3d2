"""Multi-process `supra train` on localhost (Gloo over loopback, CPU), as users launch it: plain environment
variables, torchrun and Slurm's variables.

- 2 and 4 ranks give the losses, gradient norms and weights of 1 rank, with DDP and with ZeRO-1/2. The ranks sum
  their gradients in another order than one process does (and ZeRO-2 once per micro-batch), so agreement is up to
  fp32 summation rounding. The yardstick is measured in the same test: one process run with micro_batch 4 instead
  of 2 (only the summation order changes). The ranks must stay within 10× that difference, per quantity, over all
  10 steps (seen: loss ~2e-7 relative, gradient norm ≤ 3e-4 relative — the converted model's gradients span a huge
  range —, weights ~1e-7 absolute, against updates of ~1e-4). A gradient that is summed instead of averaged, or a
  missing shard, is off by orders of magnitude. The learning rate is small on purpose: at large rates AdamW
  amplifies rounding differences step after step (micro_batch 2 vs 4 in one process drifts apart just the same).
- A checkpoint written by 4 ranks (ZeRO-2, one optimizer file per rank) resumes at 4 (bit for bit), at 2 (ZeRO-1)
  and at 1 (DDP) with the uninterrupted run's continuation; one written by 1 rank resumes at 4.
- A rank that dies (SIGKILL) or stalls (SIGSTOP) makes every other rank exit non-zero with a one-line error within
  the configured timeout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

STEPS = 10
SAVE_EVERY = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(run_supra, stories_bin: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "teacher"
    proc = run_supra("data", "sample", "--model", stories_bin, "--out", out, "--docs", "96", "--max-tokens", "80",
                     "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def config(stories_bin: Path, data: Path, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "run.toml"
    path.write_text(f"""
[model]
path = "{stories_bin}"
[data]
dir = "{data}"
seq_len = 48
eval_samples = 8
[optim]
lr = 1e-5
min_lr = 1e-6
warmup_steps = 2
[train]
steps = {STEPS}
global_batch = 8
micro_batch = 2
device = "cpu"
num_threads = 1
[run]
log_every = 1
eval_batches = 1
save_every = {SAVE_EVERY}
keep_last = 3
[dist]
bucket_mb = 0.05
timeout_s = 60
""")
    return path


def launch(supra_bin: str, config: Path, out: Path, world: int, *extra: str, timeout=300, check=True) -> list[subprocess.CompletedProcess]:
    """Runs `supra train` as `world` processes with the plain RANK/WORLD_SIZE/MASTER_* variables."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ)
        for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
            env.pop(k, None)
        if world > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        procs.append(subprocess.Popen([supra_bin, "train", "--config", str(config), "--run.out_dir", str(out), *extra],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for p in procs:
        out_s, err_s = p.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out_s, err_s))
    if check:
        for r in results:
            assert r.returncode == 0, r.stderr[-3000:]
    return results


def metrics(run_dir: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            out[rec["step"]] = rec
    return out


def weights(run_dir: Path, step: int = STEPS) -> dict[str, torch.Tensor]:
    folder = run_dir / "checkpoints" / f"step_{step:08d}"
    files = sorted(folder.glob("model*.safetensors"))
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def run_difference(a: Path, b: Path, steps) -> dict[str, float]:
    """Largest relative loss / gradient-norm difference over `steps`, and largest absolute weight difference."""
    ma, mb = metrics(a), metrics(b)
    out = {key: max(abs(ma[s][key] - mb[s][key]) / abs(ma[s][key]) for s in steps) for key in ("loss", "grad_norm")}
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    out["weights"] = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    return out


def assert_same_run(a: Path, b: Path, yardstick: dict[str, float], steps=range(1, STEPS + 1)):
    diff = run_difference(a, b, steps)
    floor = {"loss": 1e-7, "grad_norm": 1e-6, "weights": 1e-8}
    for key, d in diff.items():
        assert d <= 10 * max(yardstick[key], floor[key]), f"{key}: {d} vs rounding yardstick {yardstick[key]}"


@pytest.fixture(scope="module")
def single(supra_bin, config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w1") / "run"
    launch(supra_bin, config, out, 1)
    return out


@pytest.fixture(scope="module")
def yardstick(supra_bin, config, single, tmp_path_factory) -> dict[str, float]:
    """How far one process drifts from itself when only the gradient summation order changes."""
    out = tmp_path_factory.mktemp("w1mb4") / "run"
    launch(supra_bin, config, out, 1, "--train.micro_batch", "4")
    return run_difference(single, out, range(1, STEPS + 1))


@pytest.fixture(scope="module")
def zero2_world4(supra_bin, config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("w4z2") / "run"
    launch(supra_bin, config, out, 4, "--dist.zero", "2")
    return out


def test_single_process_learns_something(single: Path):
    m = metrics(single)
    assert sorted(m) == list(range(1, STEPS + 1))
    moved = [(weights(single, STEPS)[k] - weights(single, SAVE_EVERY)[k]).abs().max().item()
             for k in weights(single)]
    assert max(moved) > 1e-5, "the updates are large against the comparison tolerances"


@pytest.mark.parametrize("world,zero", [(2, 0), (4, 0), (2, 1), (4, 1), (2, 2)])
def test_ranks_match_one_process(supra_bin, config, single, yardstick, world, zero, tmp_path):
    out = tmp_path / "run"
    res = launch(supra_bin, config, out, world, "--dist.zero", str(zero))
    assert f"{world} ranks (gloo), ZeRO stage {zero}" in res[0].stderr
    assert_same_run(single, out, yardstick)
    # Only rank 0 writes the run's logs; optimizer state: one file per rank with ZeRO, one in DDP.
    ck = out / "checkpoints" / f"step_{STEPS:08d}"
    files = sorted(p.name for p in ck.glob("optimizer-*.safetensors"))
    n = world if zero else 1
    assert files == [f"optimizer-{r:05d}-of-{n:05d}.safetensors" for r in range(n)]
    index = json.loads((ck / "optimizer.json").read_text())
    assert index["world_size"] == world and index["zero"] == zero and index["files"] == files
    # Rank 0's memory for the optimizer is the arithmetic of docs/distributed.md (bytes per parameter: gradients
    # 4, 4 + 4/W or 4/W; AdamW 8 or 8/W; master 0 or 4/W), up to the padding of each bucket to a multiple of W.
    n = sum(t.numel() for t in weights(single).values())
    expected = {0: 4 + 8, 1: 4 + 4 / world + 8 / world + 4 / world, 2: 4 / world + 8 / world + 4 / world}[zero] * n
    held = int(re.search(r"rank 0 holds (\d+) bytes", res[0].stderr).group(1))
    assert abs(held - expected) <= 0.001 * expected, (held, expected)
    # Overlap: every bucket's collective starts from the autograd hook, while the backward pass is still running.
    overlapped, total = map(int, re.search(r"(\d+) of (\d+) gradient collectives started inside", res[0].stderr).groups())
    assert total > STEPS and overlapped == total, (overlapped, total)


def test_zero2_world4_matches_one_process(single, yardstick, zero2_world4):
    assert_same_run(single, zero2_world4, yardstick)


def truncated_copy(run: Path, dest: Path, step: int) -> Path:
    """A copy of `run` as it was right after the checkpoint of `step` (later checkpoints removed)."""
    shutil.copytree(run, dest)
    for p in (dest / "checkpoints").iterdir():
        if p.name.startswith("step_") and int(p.name.split("_")[1]) > step:
            shutil.rmtree(p)
    (dest / "checkpoints" / "latest").write_text(f"step_{step:08d}\n")
    return dest


@pytest.mark.parametrize("world,zero", [(4, 2), (2, 1), (1, 0)])
def test_resume_world4_checkpoint_at_other_world_sizes(supra_bin, config, zero2_world4, yardstick, world, zero,
                                                      tmp_path):
    run = truncated_copy(zero2_world4, tmp_path / "run", SAVE_EVERY)
    res = launch(supra_bin, config, run, world, "--dist.zero", str(zero), "--run.resume", "auto")
    assert f"resumed from" in res[0].stderr
    if world == 4:  # same world size and stage: bit for bit
        a, b = metrics(zero2_world4), metrics(run)
        for s in range(SAVE_EVERY + 1, STEPS + 1):
            assert a[s]["loss"] == b[s]["loss"], s
        wa, wb = weights(zero2_world4), weights(run)
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
    else:
        assert_same_run(zero2_world4, run, yardstick, steps=range(SAVE_EVERY + 1, STEPS + 1))


def test_resume_single_process_checkpoint_at_world4(supra_bin, config, single, yardstick, tmp_path):
    run = truncated_copy(single, tmp_path / "run", SAVE_EVERY)
    launch(supra_bin, config, run, 4, "--dist.zero", "1", "--run.resume", "auto")
    assert_same_run(single, run, yardstick, steps=range(SAVE_EVERY + 1, STEPS + 1))


@pytest.mark.parametrize("how", ["kill", "stall"])
def test_a_dead_or_stalled_rank_stops_the_others_within_the_timeout(supra_bin, config, how, tmp_path):
    timeout_s = 5
    port = free_port()
    procs = []
    for rank in range(3):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="3", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        procs.append(subprocess.Popen(
            [supra_bin, "train", "--config", str(config), "--run.out_dir", str(tmp_path / "run"), "--train.steps",
             "100000", "--train.global_batch", "6", "--run.save_every", "0", "--dist.timeout_s", str(timeout_s)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    metrics_file = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics_file.exists() or metrics_file.read_text().count("\n") < 3):
        time.sleep(0.05)
    assert metrics_file.exists(), "the ranks never started training"
    victim = procs[1]
    victim.send_signal(signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    t0 = time.time()
    try:
        for rank in (0, 2):
            _, err = procs[rank].communicate(timeout=timeout_s + 30)
            elapsed = time.time() - t0
            assert procs[rank].returncode == 2, (procs[rank].returncode, err)  # not killed by a signal
            assert elapsed < timeout_s + 15, f"rank {rank} took {elapsed:.1f} s"
            last = err.strip().splitlines()[-1]
            assert last.startswith(f"error: rank {rank}: ") and "failed" in last, last
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def test_torchrun_launch_matches_plain_variables(supra_bin, config, tmp_path):
    plain = tmp_path / "plain"
    launch(supra_bin, config, plain, 2, "--dist.zero", "1", "--train.steps", "3")
    out = tmp_path / "torchrun"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--no-python", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(free_port()), supra_bin, "train",
                           "--config", str(config), "--run.out_dir", str(out), "--dist.zero", "1", "--train.steps",
                           "3"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "torchrun" in proc.stderr  # rank 0 names its launcher when it joins
    a, b = metrics(plain), metrics(out)
    assert [a[s]["loss"] for s in (1, 2, 3)] == [b[s]["loss"] for s in (1, 2, 3)]


def test_slurm_variables(supra_bin, config, tmp_path):
    port = free_port()
    slurm = {r: {"SLURM_NTASKS": "2", "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r), "SLURM_JOB_ID": "7",
                 "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(port)} for r in range(2)}
    # Start both ranks with only Slurm's variables (no RANK/WORLD_SIZE).
    procs = []
    for r in range(2):
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
        env.update(slurm[r])
        procs.append(subprocess.Popen([supra_bin, "train", "--config", str(config), "--run.out_dir",
                                       str(tmp_path / "run"), "--train.steps", "2"],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    assert "rank 0/2 (local 0, slurm, master localhost:" in errs[0]


def test_inconsistent_environment_is_one_line_error(supra_bin, config, tmp_path):
    env = dict(os.environ, RANK="3", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    proc = subprocess.run([supra_bin, "train", "--config", str(config), "--run.out_dir", str(tmp_path / "run")],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: environment: rank 3 is outside the world of 2 processes"


def test_ranks_with_different_flags_refuse_to_start(supra_bin, config, tmp_path):
    port = free_port()
    procs = []
    for rank, lr in ((0, "1e-5"), (1, "2e-5")):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        procs.append(subprocess.Popen([supra_bin, "train", "--config", str(config), "--run.out_dir",
                                       str(tmp_path / "run"), "--optim.lr", lr],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    errs = [p.communicate(timeout=120)[1].strip().splitlines()[-1] for p in procs]
    assert [p.returncode for p in procs] == [2, 2], errs
    assert errs[0] == "error: rank 0: another rank was started with a different train config"
    assert errs[1].startswith("error: rank 1: this rank's train config differs from rank 0's")


def test_bf16_parameters_with_sharded_fp32_master(supra_bin, config, tmp_path):
    """train.param_dtype = bf16: the model's matrices are bf16, the fp32 master weights exist only as the ranks'
    ZeRO slices. 2 ranks (ZeRO-2) follow 1 rank (ZeRO-1); the checkpoint keeps the exact fp32 masters; it resumes
    at 1 rank."""
    bf16 = ("--train.precision", "bf16", "--train.param_dtype", "bf16")
    two, one = tmp_path / "two", tmp_path / "one"
    launch(supra_bin, config, two, 2, "--dist.zero", "2", *bf16)
    launch(supra_bin, config, one, 1, "--dist.zero", "1", *bf16)
    m2, m1 = metrics(two), metrics(one)
    for s in range(1, STEPS + 1):
        assert abs(m2[s]["loss"] - m1[s]["loss"]) <= 1e-3 * m1[s]["loss"], (s, m2[s]["loss"], m1[s]["loss"])
    ck = two / "checkpoints" / f"step_{STEPS:08d}"
    model = weights(two)
    assert all((t.dtype == torch.bfloat16) == (t.dim() >= 2) for t in model.values())
    masters: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for f in sorted(ck.glob("optimizer-*.safetensors")):
        for key, t in load_file(str(f)).items():
            if key.startswith("master/"):
                name, start = key[len("master/"):].rsplit("@", 1)
                masters.setdefault(name, []).append((int(start), t))
    checked = 0
    for name, t in model.items():
        if t.dim() < 2:
            continue
        flat = t.reshape(-1).float()
        for start, piece in masters[name]:
            assert piece.dtype == torch.float32
            ref = flat[start:start + piece.numel()]
            assert torch.equal(piece.bfloat16().float(), ref), name  # the parameter is the rounded master
            checked += int((piece != ref).sum())
    assert checked > 0, "the masters carry more precision than the bf16 parameters"
    run = truncated_copy(two, tmp_path / "resumed", SAVE_EVERY)
    launch(supra_bin, config, run, 1, "--dist.zero", "1", "--run.resume", "auto", *bf16)
    mr = metrics(run)
    for s in range(SAVE_EVERY + 1, STEPS + 1):
        assert abs(mr[s]["loss"] - m2[s]["loss"]) <= 1e-3 * m2[s]["loss"], (s, mr[s]["loss"], m2[s]["loss"])
