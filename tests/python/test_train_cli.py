"""`supra train` as a user runs it, in real processes on the real tiny model (stories260K, converted on the fly):

- SIGTERM (cluster preemption) finishes the step, writes a checkpoint and exits 0; a second run with
  `--run.resume auto` continues from it.
- SIGKILL at random moments (also while a checkpoint is being written) always leaves a loadable `latest`, and
  resuming reproduces the uninterrupted run's losses bit for bit.
- Flags override the TOML config, and the resolved config is written to the run folder.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

STEPS = 200  # ~5 s on one CPU thread: long enough to interrupt at random moments
SAVE_EVERY = 7


@pytest.fixture(scope="module")
def teacher_data(run_supra, stories_bin: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "teacher"
    proc = run_supra("data", "sample", "--model", stories_bin, "--out", out, "--docs", "96", "--max-tokens", "80",
                     "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    assert "96 documents" in proc.stdout
    check = run_supra("data", "check", out, "--model", stories_bin)
    assert check.returncode == 0, check.stderr
    return out


def write_config(path: Path, stories_bin: Path, data: Path, out: Path) -> Path:
    path.write_text(f"""
[model]
path = "{stories_bin}"
[data]
dir = "{data}"
seq_len = 48
eval_samples = 8
[optim]
lr = 2e-3
min_lr = 2e-4
warmup_steps = 4
[train]
steps = {STEPS}
global_batch = 4
micro_batch = 2
device = "cpu"
num_threads = 1
[run]
out_dir = "{out}"
log_every = 1
eval_every = 0
eval_batches = 1
save_every = {SAVE_EVERY}
keep_last = 2
""")
    return path


def train_cmd(supra_bin: str, config: Path, *extra: str) -> list[str]:
    return [supra_bin, "train", "--config", str(config), *extra]


def losses(run_dir: Path) -> dict[int, float]:
    """step -> training loss; after a resume the re-run steps overwrite the earlier lines."""
    out: dict[int, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        if not line.strip():
            continue  # a line cut by SIGKILL is at most the last one
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


def latest(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    return run_dir / "checkpoints" / pointer.read_text().strip()


@pytest.fixture(scope="module")
def reference_run(supra_bin, stories_bin, teacher_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ref")
    cfg = write_config(root / "run.toml", stories_bin, teacher_data, root / "run")
    proc = subprocess.run(train_cmd(supra_bin, cfg), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return root / "run"


def test_uninterrupted_run_learns_and_writes_resolved_config(reference_run: Path):
    ls = losses(reference_run)
    assert sorted(ls) == list(range(1, STEPS + 1))
    assert ls[STEPS] < ls[1], "loss falls"
    resolved = (reference_run / "train_config.toml").read_text().replace(" ", "")
    assert "optim.lr=2e-3" in resolved and f"train.steps={STEPS}" in resolved and "optim.beta2=0.95" in resolved
    ck = latest(reference_run)
    assert ck is not None and ck.name == f"step_{STEPS:08d}" and (ck / "COMPLETE").exists()
    # keep_last = 2
    kept = sorted(p.name for p in (reference_run / "checkpoints").iterdir() if p.name.startswith("step_"))
    assert kept == [f"step_{STEPS // SAVE_EVERY * SAVE_EVERY:08d}", f"step_{STEPS:08d}"]


def test_flags_override_the_config(supra_bin, stories_bin, teacher_data, tmp_path):
    cfg = write_config(tmp_path / "run.toml", stories_bin, teacher_data, tmp_path / "run")
    proc = subprocess.run(train_cmd(supra_bin, cfg, "--train.steps", "2", "--optim.lr", "1e-3"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(losses(tmp_path / "run")) == [1, 2]
    resolved = (tmp_path / "run" / "train_config.toml").read_text().replace(" ", "")
    assert "train.steps=2" in resolved and "optim.lr=1e-3" in resolved


def test_sigterm_checkpoints_and_exits_zero_then_resume_matches(supra_bin, stories_bin, teacher_data, reference_run,
                                                                tmp_path):
    run_dir = tmp_path / "run"
    cfg = write_config(tmp_path / "run.toml", stories_bin, teacher_data, run_dir)
    proc = subprocess.Popen(train_cmd(supra_bin, cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(losses(run_dir) if (run_dir / "metrics.jsonl").exists() else {}) < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped by signal" in err
    ck = latest(run_dir)
    assert ck is not None and (ck / "COMPLETE").exists()
    stopped_at = int(ck.name.split("_")[1])
    assert 4 <= stopped_at < STEPS, "the checkpoint is the step the signal interrupted, not a periodic one"
    proc = subprocess.run(train_cmd(supra_bin, cfg, "--run.resume", "auto"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert losses(run_dir) == losses(reference_run), "stop + resume is bitwise the uninterrupted run"


def test_sigkill_at_random_moments_always_leaves_a_loadable_latest(run_supra, supra_bin, stories_bin, teacher_data,
                                                                   reference_run, tmp_path):
    run_dir = tmp_path / "run"
    cfg = write_config(tmp_path / "run.toml", stories_bin, teacher_data, run_dir)
    rng = random.Random(int(os.environ.get("SUPRA_TEST_SEED", "7")))
    kills = 0
    for attempt in range(8):
        proc = subprocess.Popen(train_cmd(supra_bin, cfg, "--run.resume", "auto"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.2, 1.5))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read()
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        ck = latest(run_dir)
        if ck is not None:  # every pointer names a complete, loadable checkpoint
            assert (ck / "COMPLETE").exists(), ck
            info = run_supra("info", "--model", ck)
            assert info.returncode == 0, info.stderr
    # finish the run
    proc = subprocess.run(train_cmd(supra_bin, cfg, "--run.resume", "auto"), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert kills >= 1, "the run finished before the first kill: nothing was tested"
    assert losses(run_dir) == losses(reference_run), "kill + resume is bitwise the uninterrupted run"
    assert not [p for p in (run_dir / "checkpoints").iterdir() if ".tmp" in p.name], "partial folders cleaned up"


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO / "configs").glob("*.toml")))
def test_shipped_configs_resolve(run_supra, config):
    """Every shipped config only uses known settings (a misspelt key is an error) and resolves."""
    proc = run_supra("train", "--config", REPO / "configs" / config, "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert "optim.lr=" in proc.stdout and "train.steps=" in proc.stdout


def test_unknown_config_key_is_an_error(run_supra, tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[optim]\nlearning_rate = 1e-4\n")
    proc = run_supra("train", "--config", cfg, "--print-config")
    assert proc.returncode != 0
    assert "optim.learning_rate" in proc.stderr and str(cfg) in proc.stderr


def test_toml_forms_that_settings_use_are_read_exactly(run_supra, tmp_path):
    """The TOML subset supra reads (cli/toml_settings.h): BOM, CRLF, comments, dotted and quoted keys, basic strings
    with escapes, literal strings, '_' in numbers, signs, exponents, booleans — each value arrives as written."""
    cfg = tmp_path / "forms.toml"
    cfg.write_bytes("\ufeff# a comment\r\n"
                    'optim.lr = 1_0e-4   # dotted key at top level\r\n'
                    "[model]\r\n"
                    "path = 'C:\\models\\é' # literal: no escapes\n"
                    "[ \"train\" ]\n"
                    'objective = "dis\\u0074ill"\n'
                    "steps = +1_000\n"
                    "activation_checkpointing = true\n"
                    "[data]\n"
                    "dir = \"d\"\n".encode())
    proc = run_supra("train", "--config", cfg, "--print-config")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.replace(" ", "")
    for want in ["optim.lr=10e-4", 'model.path="C:\\models\\é"', 'train.objective="distill"', "train.steps=1000",
                 "train.activation_checkpointing=true", "data.dir='d'"]:
        assert want in out, f"{want!r} not in {proc.stdout}"


def test_docs_list_every_config_key(run_supra):
    """docs/training.md's key table is the config table's own rendering (`supra train --print-config-doc`)."""
    proc = run_supra("train", "--print-config-doc")
    assert proc.returncode == 0, proc.stderr
    doc = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    begin, end = "<!-- config-table:begin -->\n", "<!-- config-table:end -->"
    assert begin in doc and end in doc, "docs/training.md has no generated config table"
    table = doc[doc.index(begin) + len(begin):doc.index(end)]
    assert table == proc.stdout, "docs/training.md's key table is stale: paste `supra train --print-config-doc`"


def test_enumerated_keys_are_checked_and_printed_by_name(run_supra, tmp_path):
    """Enumerated keys (device, precision, param dtype, resume) take names and print as names."""
    proc = run_supra("train", "--model.path", "m", "--data.dir", "d", "--train.precision", "bf16", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert 'precision="bf16"' in proc.stdout.replace(" ", "") or "precision=bf16" in proc.stdout.replace(" ", "")
    bad = run_supra("train", "--model.path", "m", "--data.dir", "d", "--train.precision", "fp8")
    assert bad.returncode == 2
    assert "fp8" in bad.stderr
