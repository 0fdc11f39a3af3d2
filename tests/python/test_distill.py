"""Teacher-recovery objectives and recipes (`train.objective` attention / distill, `[stages.*]`), as users run them:

- the attention-transfer loss and its gradients equal an independent float64 computation (HF transformers for the
  softmax teacher, scripts/reference/supra_reference.py for the SUPRA student), read back from a real one-step run;
- kill -9 at random moments of a two-stage recipe, then resume: bitwise the uninterrupted recipe;
- a 2-rank Gloo run of each stage follows the 1-process run;
- bad recipes (no teacher, a teacher of another shape, a changed stage list) fail with one `error:` line, exit 2,
  before any step.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import data_shards
import supra_reference
from test_distributed import launch

F64 = torch.float64
T = 32


@pytest.fixture(scope="module")
def data(run_supra, stories_bin: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "teacher"
    proc = run_supra("data", "sample", "--model", stories_bin, "--out", out, "--docs", "24", "--max-tokens", "60",
                     "--seed", "5")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def converted(run_supra, stories_hf: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("conv") / "supra"
    proc = run_supra("convert", "--model", stories_hf, "--out", out, "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    return out


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("model*.safetensors")):
        out.update(load_file(str(f)))
    return out


def metrics(run_dir: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by SIGKILL
        if "loss" in rec:
            out[rec["step"]] = rec
    return out


def packed_rows(data_dir: Path, seq_len: int, eval_samples: int) -> list[list[list[int]]]:
    """The training samples of data/loader.h (inputs only), each split into its packed documents' pieces."""
    docs = [d.astype(np.int64).tolist() for d in data_shards.documents(data_dir)]
    stream = [t for d in docs for t in d]
    starts, pos = set(), 0
    for d in docs:
        starts.add(pos)
        pos += len(d)
    n = len(stream) // (seq_len + 1)
    rows = []
    for i in range(n - eval_samples):
        base = i * (seq_len + 1)
        cuts = [0] + [p for p in range(1, seq_len) if base + p in starts] + [seq_len]
        rows.append([stream[base + a:base + b] for a, b in zip(cuts, cuts[1:])])
    return rows


def test_attention_loss_and_gradients_match_float64_reference(supra_bin, stories_hf, converted, data, tmp_path):
    """One `train.objective = attention` step on the whole training set; the loss (metrics.jsonl) and the gradient
    (recovered exactly from AdamW's first update: with lr = eps = 1 it is Δ = −g / (|g| + 1)) against float64."""
    from transformers import AutoModelForCausalLM

    rows = packed_rows(data, T, eval_samples=4)
    cfg = tmp_path / "attn.toml"
    cfg.write_text(f"""
[model]
path = "{converted}"
[teacher]
path = "{stories_hf}"
[data]
dir = "{data}"
seq_len = {T}
eval_samples = 4
[optim]
lr = 1.0
min_lr = 1.0
warmup_steps = 0
eps = 1.0
weight_decay = 0.0
grad_clip = 0.0
[train]
objective = "attention"
steps = 1
global_batch = {len(rows)}
micro_batch = {len(rows)}
device = "cpu"
num_threads = 1
[run]
out_dir = "{tmp_path / 'run'}"
eval_batches = 0
""")
    proc = subprocess.run([supra_bin, "train", "--config", str(cfg)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    got_loss = metrics(tmp_path / "run")[1]["layer_loss"]

    # Float64 reference: the teacher's attention inputs/outputs from HF transformers, one packed document piece at a
    # time (the teacher sees only its own document; RoPE is relative), the student's attention from the reference.
    teacher = AutoModelForCausalLM.from_pretrained(str(stories_hf), dtype=F64, attn_implementation="eager").eval()
    L = teacher.config.num_hidden_layers
    xs, ys = [[] for _ in range(L)], [[] for _ in range(L)]
    hooks = []
    for i, layer in enumerate(teacher.model.layers):
        hooks.append(layer.input_layernorm.register_forward_hook(lambda m, a, out, i=i: xs[i].append(out[0])))
        hooks.append(layer.self_attn.register_forward_hook(lambda m, a, out, i=i: ys[i].append(out[0][0])))
    with torch.no_grad():
        for row in rows:
            for piece in row:
                teacher(torch.tensor([piece]))
    for h in hooks:
        h.remove()
    m = supra_reference.load_supra(str(converted))
    trainable = [k for k in m.tensors if ".self_attn.feature_map" in k or ".self_attn.o_proj" in k]
    t = dict(m.tensors)
    for k in trainable:
        t[k] = t[k].clone().requires_grad_(True)
    layer_losses = []
    for layer in range(L):
        s = torch.cat([supra_reference.supra_attention(m, layer, x, t) for x in xs[layer]])
        y = torch.cat(ys[layer])
        layer_losses.append((s - y).pow(2).mean() / y.pow(2).mean())
    total = torch.stack(layer_losses).mean()
    grads = dict(zip(trainable, torch.autograd.grad(total, [t[k] for k in trainable])))

    ref_loss = [v.item() for v in layer_losses]
    assert np.allclose(got_loss, ref_loss, rtol=1e-4), (got_loss, ref_loss)
    before = weights(converted)
    after = weights(latest_checkpoint(tmp_path / "run"))
    for name, w in before.items():
        delta = after[name].to(F64) - w.to(F64)
        if name not in grads:
            assert torch.equal(after[name], w), f"{name} is frozen but changed"
            continue
        g = -delta / (1 - delta.abs())
        scale = grads[name].abs().max().item()
        err = (g - grads[name]).abs().max().item()
        assert err <= 2e-3 * scale + 1e-6, f"{name}: gradient differs by {err} (largest {scale})"


def latest_checkpoint(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()


def recipe(path: Path, model: Path, data: Path, out: Path, attention_steps: int = 40, distill_steps: int = 80) -> Path:
    path.write_text(f"""
[model]
path = "{model}"
[data]
dir = "{data}"
seq_len = 48
eval_samples = 4
[optim]
lr = 2e-3
min_lr = 2e-4
warmup_steps = 2
[train]
global_batch = 4
micro_batch = 2
device = "cpu"
num_threads = 1
[run]
out_dir = "{out}"
log_every = 1
eval_batches = 1
save_every = 3
keep_last = 2
[stages.attention.train]
objective = "attention"
steps = {attention_steps}
[stages.attention.attention]
o_proj_fit_batches = 2
[stages.attention.optim]
lr = 1e-2
[stages.distill.train]
objective = "distill"
steps = {distill_steps}
[stages.distill.distill]
temperature = 2.0
ce_weight = 0.1
""")
    return path


@pytest.fixture(scope="module")
def reference_recipe(supra_bin, stories_bin, data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipe")
    cfg = recipe(root / "recipe.toml", stories_bin, data, root / "run")
    proc = subprocess.run([supra_bin, "train", "--config", str(cfg)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root / "run"


def test_recipe_runs_its_stages_in_order(reference_recipe: Path):
    attention, distill = metrics(reference_recipe / "1-attention"), metrics(reference_recipe / "2-distill")
    assert sorted(attention) == list(range(1, 41)) and sorted(distill) == list(range(1, 81))
    assert all(len(r["layer_loss"]) == 5 and "ce" not in r for r in attention.values())  # stories260K: 5 layers
    assert attention[40]["loss"] < attention[1]["loss"]
    fit = json.loads((reference_recipe / "1-attention" / "metrics.jsonl").read_text().splitlines()[0])
    assert fit["o_proj_fit_tokens"] == 2 * 4 * 48  # two global batches, before step 1
    assert all(a < b for a, b in zip(fit["layer_loss"], fit["layer_loss_before_fit"]))
    assert attention[1]["loss"] < 1.0  # step 1 starts from the fitted o_proj: better than predicting zero
    assert all("kl" in r and "ce" in r for r in distill.values())
    assert distill[80]["kl"] < distill[1]["kl"]
    resolved = (reference_recipe / "2-distill" / "train_config.toml").read_text().replace(" ", "")
    assert 'objective="distill"' in resolved and str(reference_recipe / "1-attention") in resolved


def test_recipe_killed_anywhere_resumes_bitwise(supra_bin, stories_bin, data, reference_recipe, tmp_path):
    run_dir = tmp_path / "run"
    cfg = recipe(tmp_path / "recipe.toml", stories_bin, data, run_dir)
    cmd = [supra_bin, "train", "--config", str(cfg), "--run.resume", "auto"]
    rng = random.Random(int(os.environ.get("SUPRA_TEST_SEED", "11")))
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.3, 2.5))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert kills >= 1, "the recipe finished before the first kill: nothing was tested"
    for stage in ("1-attention", "2-distill"):
        a = {s: r["loss"] for s, r in metrics(reference_recipe / stage).items()}
        b = {s: r["loss"] for s, r in metrics(run_dir / stage).items()}
        assert a == b, f"{stage}: kill + resume is bitwise the uninterrupted recipe"
    wa, wb = weights(latest_checkpoint(reference_recipe / "2-distill")), weights(latest_checkpoint(run_dir / "2-distill"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("objective,fit", [("attention", 0), ("attention", 2), ("distill", 0)])
def test_two_rank_gloo_stage_follows_one_process(supra_bin, stories_bin, data, tmp_path, objective, fit):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f"""
[model]
path = "{stories_bin}"
[data]
dir = "{data}"
seq_len = 48
eval_samples = 4
[optim]
lr = 1e-5
min_lr = 1e-6
warmup_steps = 1
[train]
objective = "{objective}"
steps = 4
global_batch = 4
micro_batch = 1
device = "cpu"
num_threads = 1
[run]
log_every = 1
eval_batches = 1
[attention]
o_proj_fit_batches = {fit}
[dist]
zero = 2
timeout_s = 60
""")
    launch(supra_bin, cfg, tmp_path / "one", 1)
    launch(supra_bin, cfg, tmp_path / "two", 2)
    a, b = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    if fit:  # the least-squares o_proj from both ranks' statistics equals the one from one process's
        fa, fb = (json.loads((p / "metrics.jsonl").read_text().splitlines()[0]) for p in (tmp_path / "one", tmp_path / "two"))
        assert fa["o_proj_fit_tokens"] == fb["o_proj_fit_tokens"] == fit * 4 * 48
        assert np.allclose(fa["layer_loss"], fb["layer_loss"], rtol=1e-5)
    for s in range(1, 5):
        assert abs(a[s]["loss"] - b[s]["loss"]) <= 1e-5 * abs(a[s]["loss"]), (s, a[s], b[s])
        if objective == "attention":
            assert np.allclose(a[s]["layer_loss"], b[s]["layer_loss"], rtol=1e-5)
        else:
            assert abs(a[s]["kl"] - b[s]["kl"]) <= 1e-5 * abs(a[s]["kl"]) + 1e-9
    wa, wb = weights(latest_checkpoint(tmp_path / "one")), weights(latest_checkpoint(tmp_path / "two"))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < 1e-5


def error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_bad_recipes_fail_before_any_step(run_supra, stories_bin, stories_hf, converted, data, tmp_path):
    # A teacher objective on a converted model with no teacher.
    out = tmp_path / "a"
    proc = run_supra("train", "--model.path", converted, "--data.dir", data, "--data.seq_len", "32",
                     "--train.objective", "attention", "--train.global_batch", "2", "--train.micro_batch", "2",
                     "--train.device", "cpu", "--run.out_dir", out)
    line = error_line(proc)
    assert str(converted) in line and "teacher.path" in line
    assert not (out / "checkpoints").exists()
    # The same in a recipe's second stage: refused before the first stage runs.
    cfg = recipe(tmp_path / "r.toml", converted, data, tmp_path / "b")
    line = error_line(run_supra("train", "--config", cfg))
    assert "teacher" in line and not (tmp_path / "b" / "1-attention" / "checkpoints").exists()
    # A teacher of another vocabulary.
    other = tmp_path / "other"
    small = tmp_path / "small_vocab"
    small.mkdir()
    conf = json.loads((Path(stories_hf) / "config.json").read_text())
    conf["vocab_size"] = 300
    (small / "config.json").write_text(json.dumps(conf))
    tensors = load_file(str(next(Path(stories_hf).glob("*.safetensors"))))
    from safetensors.torch import save_file
    save_file({k: (v[:300].contiguous() if v.shape[0] == 512 else v) for k, v in tensors.items()},
              str(small / "model.safetensors"))
    proc = run_supra("train", "--model.path", converted, "--teacher.path", small, "--data.dir", data,
                     "--data.seq_len", "32", "--train.objective", "distill", "--train.global_batch", "2",
                     "--train.micro_batch", "2", "--train.device", "cpu", "--run.out_dir", other)
    line = error_line(proc)
    assert str(small) in line and "vocab_size" in line
    # A stage list changed under a started recipe.
    run = tmp_path / "c"
    cfg = recipe(tmp_path / "c.toml", stories_bin, data, run, attention_steps=2, distill_steps=2)
    assert run_supra("train", "--config", cfg).returncode == 0
    cfg2 = recipe(tmp_path / "c2.toml", stories_bin, data, run, attention_steps=3, distill_steps=2)
    line = error_line(run_supra("train", "--config", cfg2, "--run.resume", "auto"))
    assert "attention" in line and "train.steps" in line
    # Stage settings the recipe owns, and unknown stages.
    line = error_line(run_supra("train", "--config", cfg, "--stage", "finetune.train.steps=3", "--print-config"))
    assert "finetune" in line
