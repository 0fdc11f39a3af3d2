"""The `supra` CLI surface: help, info, and one-line errors with exit code 2 on bad input.

Every error case checks: exit code 2, stderr is exactly one non-empty line, and that line names the offending
file or the problem (a keyword, case-insensitive).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest


def assert_one_line_error(proc, *keywords: str) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, f"exit code {proc.returncode}, expected 2; stderr: {proc.stderr!r}"
    assert len(lines) == 1 and lines[0].strip(), f"stderr must be exactly one non-empty line, got {proc.stderr!r}"
    low = lines[0].lower()
    assert any(k.lower() in low for k in keywords), f"stderr {lines[0]!r} mentions none of {keywords}"
    return lines[0]


@pytest.fixture
def model_copy(tiny_model, tmp_path):
    """copy(variant) -> a private, editable copy of a tiny model folder."""

    def copy(variant: str = "llama_gqa_untied") -> Path:
        dst = tmp_path / f"{variant}_copy"
        shutil.copytree(tiny_model(variant), dst)
        return dst

    return copy


def edit_config(model_dir: Path, **changes) -> None:
    cfg_path = model_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    cfg_path.write_text(json.dumps(cfg, indent=2))


def logits(run_supra, model, tmp_path, tokens="1,2,3"):
    return run_supra("logits", "--model", model, "--tokens", tokens, "--out", tmp_path / "out.safetensors")


# --------------------------------------------------------------------------------------------------------------
# help and info


def test_help(run_supra):
    proc = run_supra("--help")
    assert proc.returncode == 0, proc.stderr
    assert "logits" in proc.stdout and "info" in proc.stdout


def test_logits_help(run_supra):
    proc = run_supra("logits", "--help")
    assert proc.returncode == 0, proc.stderr
    for opt in ("--model", "--tokens", "--out", "--dtype"):
        assert opt in proc.stdout


@pytest.mark.parametrize("variant", ["llama_mha_tied", "mistral_sliding", "llama_sharded", "llama3_rope"])
def test_info(run_supra, tiny_model, variant):
    proc = run_supra("info", "--model", tiny_model(variant))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip(), "info printed nothing on stdout"


def test_info_llama2c(run_supra, stories_bin):
    proc = run_supra("info", "--model", stories_bin)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()


# --------------------------------------------------------------------------------------------------------------
# bad input


def test_missing_model_dir(run_supra, tmp_path):
    missing = tmp_path / "no_such_model"
    proc = logits(run_supra, missing, tmp_path)
    assert_one_line_error(proc, str(missing))


def test_empty_dir_without_config(run_supra, tmp_path):
    empty = tmp_path / "empty_model"
    empty.mkdir()
    proc = logits(run_supra, empty, tmp_path)
    assert_one_line_error(proc, "config.json")


def test_unsupported_architecture(run_supra, model_copy, tmp_path):
    d = model_copy()
    edit_config(d, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    proc = logits(run_supra, d, tmp_path)
    assert_one_line_error(proc, "gpt2")


@pytest.mark.parametrize(
    "changes",
    [
        # transformers-4 layout
        {"rope_scaling": {"type": "dynamic", "factor": 2.0}, "rope_theta": 10000.0, "rope_parameters": None},
        # transformers-5 layout
        {"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}},
    ],
    ids=["rope_scaling", "rope_parameters"],
)
def test_unsupported_rope_scaling(run_supra, model_copy, tmp_path, changes):
    d = model_copy()
    edit_config(d, **changes)
    proc = logits(run_supra, d, tmp_path)
    assert_one_line_error(proc, "dynamic")


@pytest.mark.parametrize("keep", [4, 0.5], ids=["header", "data"])
def test_truncated_safetensors(run_supra, model_copy, tmp_path, keep):
    d = model_copy()
    f = d / "model.safetensors"
    data = f.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    f.write_bytes(data[:n])
    proc = logits(run_supra, d, tmp_path)
    assert_one_line_error(proc, "model.safetensors")


def test_missing_shard(run_supra, model_copy, tmp_path):
    d = model_copy("llama_sharded")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    shard = sorted(set(index["weight_map"].values()))[-1]
    (d / shard).unlink()
    proc = logits(run_supra, d, tmp_path)
    assert_one_line_error(proc, shard)


def test_missing_tensor(run_supra, model_copy, tmp_path):
    from safetensors.torch import load_file, save_file

    d = model_copy()
    f = d / "model.safetensors"
    tensors = load_file(str(f))
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, str(f), metadata={"format": "pt"})
    proc = logits(run_supra, d, tmp_path)
    assert_one_line_error(proc, "model.layers.1.mlp.down_proj.weight")


def test_wrong_tensor_shape(run_supra, model_copy, tmp_path):
    from safetensors.torch import load_file, save_file

    d = model_copy()
    f = d / "model.safetensors"
    tensors = load_file(str(f))
    tensors["model.layers.0.self_attn.k_proj.weight"] = tensors["model.layers.0.self_attn.q_proj.weight"].clone()
    save_file(tensors, str(f), metadata={"format": "pt"})
    proc = logits(run_supra, d, tmp_path)
    assert_one_line_error(proc, "k_proj")


def test_token_out_of_vocab(run_supra, tiny_model, tmp_path):
    d = tiny_model("llama_gqa_untied")
    vocab = json.loads((d / "config.json").read_text())["vocab_size"]
    proc = logits(run_supra, d, tmp_path, tokens=f"1,{vocab},3")
    assert_one_line_error(proc, str(vocab))


@pytest.mark.parametrize("tokens", ["1,x,3", "", "1,-2"], ids=["not_a_number", "empty", "negative"])
def test_bad_token_list(run_supra, tiny_model, tmp_path, tokens):
    proc = logits(run_supra, tiny_model("llama_gqa_untied"), tmp_path, tokens=tokens)
    assert_one_line_error(proc, "token")


def test_bad_dtype(run_supra, tiny_model, tmp_path):
    proc = run_supra(
        "logits", "--model", tiny_model("llama_gqa_untied"), "--tokens", "1,2",
        "--out", tmp_path / "o.safetensors", "--dtype", "f64",
    )
    assert_one_line_error(proc, "dtype")


def test_truncated_llama2c_bin(run_supra, tmp_path):
    # A valid header (dim 8, hidden 16, 1 layer, 2 heads, 2 kv heads, vocab 32, seq_len 16) and too few floats.
    f = tmp_path / "short.bin"
    f.write_bytes(struct.pack("<7i", 8, 16, 1, 2, 2, 32, 16) + b"\0" * 400)
    proc = logits(run_supra, f, tmp_path)
    assert_one_line_error(proc, "short.bin")


# --------------------------------------------------------------------------------------------------------------
# Regressions of issue 18 (crashes and misleading successes found by a hostile-input pass)


def test_absurd_config_size_is_refused_before_allocating(run_supra, model_copy, tmp_path):
    m = model_copy()
    edit_config(m, vocab_size=10**12)
    assert_one_line_error(logits(run_supra, m, tmp_path), "vocab_size", str(m))
    edit_config(m, hidden_size=4096, intermediate_size=16384)  # in range, far beyond what the tensors hold
    assert_one_line_error(logits(run_supra, m, tmp_path), "parameters", str(m))


@pytest.fixture
def tiny_data(run_supra, stories_bin, tmp_path) -> Path:
    out = tmp_path / "data"
    proc = run_supra("data", "sample", "--model", stories_bin, "--out", out, "--docs", "6", "--max-tokens", "40",
                     "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    return out


def test_decreasing_document_ends_in_an_index_are_refused(run_supra, stories_bin, tiny_data, tmp_path):
    idx = next(tiny_data.glob("*.idx"))
    raw = bytearray(idx.read_bytes())
    ends = list(struct.unpack_from(f"<{(len(raw) - 32) // 8}Q", raw, 32))
    assert len(ends) >= 3
    ends[1], ends[0] = ends[0], ends[1]  # decreasing, last end still right
    struct.pack_into(f"<{len(ends)}Q", raw, 32, *ends)
    idx.write_bytes(bytes(raw))
    # The manifest's checksum would catch it in `data check`; every reader must refuse it on open as well.
    proc = run_supra("eval", "--model", stories_bin, "--tokens", tiny_data, "--device", "cpu")
    assert_one_line_error(proc, str(idx), "corrupted index")


def test_eval_past_the_last_document_is_an_error(run_supra, stories_bin, tiny_data, tmp_path):
    js = tmp_path / "out.json"
    proc = run_supra("eval", "--model", stories_bin, "--tokens", tiny_data, "--first-doc", "1000", "--device", "cpu",
                     "--json", js)
    assert_one_line_error(proc, "--first-doc")
    assert not js.exists(), "no result file for an empty selection"


@pytest.mark.parametrize("flags", [["--top-p", "0"], ["--temperature", "1e-45"], ["--repetition-penalty", "1e-300"],
                                   ["--repetition-penalty", "1e300"]],
                         ids=["top_p_0", "tiny_temperature", "tiny_penalty", "huge_penalty"])
def test_degenerate_sampling_options_are_defined(run_supra, stories_bin, flags):
    """top_p 0 keeps the most likely token; an underflowing temperature is greedy; extreme repetition penalties
    stay finite — no NaN probabilities, no crash."""
    proc = run_supra("generate", "--model", stories_bin, "--ids", "1,5,9", "--max-new-tokens", "6", "--seed", "0",
                     "--device", "cpu", *flags)
    assert proc.returncode == 0, proc.stderr
    greedy = run_supra("generate", "--model", stories_bin, "--ids", "1,5,9", "--max-new-tokens", "6",
                       "--temperature", "0", "--device", "cpu")
    if flags[0] in ("--top-p", "--temperature"):
        assert proc.stdout.split()[-6:] == greedy.stdout.split()[-6:]


def test_corrupt_trainer_state_on_resume_is_one_line_error(run_supra, stories_bin, tiny_data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model.path", stories_bin, "--data.dir", tiny_data, "--data.seq_len", "16",
            "--data.eval_samples", "2", "--train.global_batch", "2", "--train.micro_batch", "2",
            "--train.device", "cpu", "--run.out_dir", out]
    assert run_supra(*args, "--train.steps", "2").returncode == 0
    latest = out / "checkpoints" / (out / "checkpoints" / "latest").read_text().strip()
    (latest / "trainer_state.json").write_text("{not json")
    proc = run_supra(*args, "--run.resume", "auto", "--train.steps", "3")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]  # train also logs progress
    assert proc.returncode == 2 and len(errors) == 1 and "trainer_state.json" in errors[0], proc.stderr


def test_fresh_run_owns_its_metrics_file(run_supra, stories_bin, tiny_data, tmp_path):
    """A run killed before its first checkpoint leaves rows; the restart (nothing to resume) does not append to
    them."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "loss": 8.0}\n')
    proc = run_supra("train", "--model.path", stories_bin, "--data.dir", tiny_data, "--data.seq_len", "16",
                     "--data.eval_samples", "2", "--train.steps", "2", "--train.global_batch", "2",
                     "--train.micro_batch", "2", "--train.device", "cpu", "--run.out_dir", out)
    assert proc.returncode == 0, proc.stderr
    steps = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]
    assert steps == [1, 2]
    assert all(json.loads(l).get("loss") != 9.0 for l in (out / "metrics.jsonl").read_text().splitlines())


def test_export_cleans_what_a_killed_export_left(run_supra, model_copy, tmp_path):
    conv = tmp_path / "conv"
    assert run_supra("convert", "--model", model_copy(), "--out", conv).returncode == 0
    out = tmp_path / "out"
    dead = 9999999  # above Linux's largest possible pid (2^22): no such process
    for tag in ("tmp", "old"):
        (tmp_path / f"out.{tag}-{dead}").mkdir()
        (tmp_path / f"out.{tag}-{dead}" / "model.safetensors").write_bytes(b"x" * 1000)
    proc = run_supra("export", "--checkpoint", conv, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out"]


def test_pruned_checkpoints_are_renamed_before_deletion(run_supra, stories_bin, tiny_data, tmp_path):
    """Pruning renames a checkpoint to `….tmp-pruned` before deleting it, and a leftover tombstone (a kill during
    the deletion) is removed on the next start, never taken for a checkpoint."""
    out = tmp_path / "run"
    args = ["train", "--model.path", stories_bin, "--data.dir", tiny_data, "--data.seq_len", "16",
            "--data.eval_samples", "2", "--train.global_batch", "2", "--train.micro_batch", "2",
            "--train.device", "cpu", "--run.out_dir", out, "--run.save_every", "1", "--run.keep_last", "1"]
    assert run_supra(*args, "--train.steps", "3").returncode == 0
    ck = out / "checkpoints"
    assert sorted(p.name for p in ck.iterdir()) == ["latest", "step_00000003"]
    (ck / "step_00000002.tmp-pruned").mkdir()  # as a kill mid-deletion leaves it
    proc = run_supra(*args, "--train.steps", "4", "--run.resume", "auto")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in ck.iterdir()) == ["latest", "step_00000004"]


@pytest.mark.parametrize("value", ["1e20", "2.5", "99999999999999999999", "-1x"])
def test_integer_settings_are_parsed_exactly(run_supra, value, tmp_path):
    proc = run_supra("train", "--model.path", "m", "--data.dir", "d", "--train.steps", value, "--print-config")
    assert_one_line_error(proc, "train.steps", value)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[train]\nsteps = {value if value != '-1x' else repr(value)}\n")
    proc = run_supra("train", "--config", cfg, "--model.path", "m", "--data.dir", "d", "--print-config")
    # The key is named, or (a number TOML itself cannot hold) the line and column of the value.
    assert_one_line_error(proc, "train.steps", "at line 2,")
