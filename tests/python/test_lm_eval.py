"""lm-evaluation-harness on an exported SUPRA model, and `supra eval` scoring the same requests the same way.

lm-eval (`lm_eval[hf]` 0.4.13 + accelerate) is installed from the package index into a cached venv that sees the
main environment's torch and transformers (${SUPRA_VENV_CACHE:-~/.cache/supra/venvs}/lm-eval-0.4.13); with
SUPRA_LM_EVAL_TRANSFORMERS=5.0.0 (a comma-separated list) also under those transformers versions, each in a venv of
its own. The test writes
a local multiple-choice task and a loglikelihood_rolling task (YAML + JSONL), runs
`lm_eval --model hf --model_args pretrained=EXPORT,trust_remote_code=True,dtype=float32,max_length=16 …
--log_samples`, and asserts that every per-choice / per-document log-likelihood equals `supra eval --json` to 1e-4
and that acc, acc_norm, acc_bytes, word_perplexity, byte_perplexity and bits_per_byte are identical.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


LM_EVAL = "lm_eval==0.4.13"
MAX_LENGTH = 16


# transformers versions to run lm-eval under: the installed one, plus those named in SUPRA_LM_EVAL_TRANSFORMERS
# (e.g. "5.0.0"; each installed into its own cached venv over the main environment's torch).
VERSIONS = ["installed"] + [v for v in os.environ.get("SUPRA_LM_EVAL_TRANSFORMERS", "").split(",") if v]


@pytest.fixture(scope="module", params=VERSIONS)
def lm_eval_python(request) -> Path:
    root = Path(os.environ.get("SUPRA_VENV_CACHE", Path.home() / ".cache" / "supra" / "venvs")).expanduser()
    import importlib.metadata

    # The installed transformers: a venv over the main environment. Another version: a venv of its own (no system
    # site packages, whose newer optional packages an older transformers may not import), with the same torch.
    own = request.param != "installed"
    packages = [LM_EVAL, "accelerate"] + ([f"transformers=={request.param}", "torch==" +
                                          importlib.metadata.version("torch").split("+")[0]] if own else [])
    venv = root / ("lm-eval-0.4.13" + (f"-transformers-{request.param}" if own else ""))
    marker = venv / "supra-venv.json"
    python = venv / "bin" / "python"
    if not marker.exists():
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", *([] if own else ["--system-site-packages"]), str(venv)],
                       check=True)
        proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
                              capture_output=True, text=True, timeout=1200)
        if proc.returncode != 0:  # reported, not skipped: the documented path must work
            pytest.fail(f"cannot install {packages} into {venv}: {proc.stderr[-2000:]}")
        marker.write_text(json.dumps({"packages": packages}) + "\n")
    return python


@pytest.fixture(scope="module")
def export(run_supra, tiny_model, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lm_eval_export")
    base = root / "base"
    shutil.copytree(tiny_model("llama_gqa_untied"), base)
    write_bpe_tokenizer(base, 192)
    assert run_supra("convert", "--model", base, "--out", root / "conv", "--chunk-size", "4").returncode == 0
    proc = run_supra("export", "--checkpoint", root / "conv", "--out", root / "export")
    assert proc.returncode == 0, proc.stderr
    return root / "export"


def write_bpe_tokenizer(folder: Path, vocab_size: int) -> None:
    """A SentencePiece-style BPE tokenizer.json (Metaspace, as Llama's) trained on the test's words, whose default
    encode prepends <s> (TemplateProcessing): the BOS path of lm-eval's requests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    rng = random.Random(1)
    corpus = [words(rng, 12) for _ in range(400)]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"]))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "pad_token": "<unk>", "model_max_length": 256}, indent=1) + "\n")


def words(rng: random.Random, n: int) -> str:
    return " ".join(f"w{rng.randrange(3, 192)}" for _ in range(n))


def write_tasks(folder: Path) -> tuple[Path, Path]:
    rng = random.Random(0)
    mc, ppl = folder / "mc.jsonl", folder / "ppl.jsonl"
    with mc.open("w") as f:
        for i in range(24):
            # choices of different lengths (acc_norm ≠ acc), one empty context (the prefix-token path)
            query = "" if i == 0 else words(rng, rng.randrange(1, 8)) + (" " if i % 5 == 1 else "")
            choices = [words(rng, rng.randrange(1, 5)) for _ in range(rng.randrange(2, 5))]
            f.write(json.dumps({"query": query, "choices": choices, "gold": rng.randrange(len(choices))}) + "\n")
    with ppl.open("w") as f:
        for i in range(6):  # documents of 3 to ~60 tokens: one window, several, and a partial last one
            f.write(json.dumps({"text": words(rng, 3 + 11 * i)}) + "\n")
    (folder / "supra_mc.yaml").write_text(f"""task: supra_mc
dataset_path: json
dataset_kwargs:
  data_files: {mc}
test_split: train
output_type: multiple_choice
doc_to_text: "{{{{query}}}}"
doc_to_choice: choices
doc_to_target: gold
target_delimiter: " "
metric_list:
  - metric: acc
  - metric: acc_norm
  - metric: acc_bytes
""")
    (folder / "supra_ppl.yaml").write_text(f"""task: supra_ppl
dataset_path: json
dataset_kwargs:
  data_files: {ppl}
test_split: train
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""")
    return mc, ppl


def samples(out: Path, task: str) -> list[dict]:
    files = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    assert files, f"lm-eval wrote no samples for {task} under {out}"
    rows = [json.loads(line) for line in files[-1].read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["doc_id"])


def results(out: Path) -> dict:
    files = sorted(out.rglob("results_*.json"))
    assert files, f"lm-eval wrote no results under {out}"
    return json.loads(files[-1].read_text())["results"]


def test_supra_eval_matches_lm_eval(lm_eval_python, export, run_supra, tmp_path):
    mc, ppl = write_tasks(tmp_path)
    out = tmp_path / "lm_eval_out"
    proc = subprocess.run(
        [str(lm_eval_python), "-m", "lm_eval", "--model", "hf", "--model_args",
         f"pretrained={export},trust_remote_code=True,dtype=float32,max_length={MAX_LENGTH}", "--tasks",
         "supra_mc,supra_ppl", "--include_path", str(tmp_path), "--device", "cpu", "--batch_size", "1",
         "--log_samples", "--output_path", str(out)],
        capture_output=True, text=True, timeout=1200, env=dict(os.environ, HF_DATASETS_OFFLINE="1",
                                                                TOKENIZERS_PARALLELISM="false"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    js = tmp_path / "supra.json"
    sup = run_supra("eval", "--model", export, "--task", mc, "--text", ppl, "--seq-len", str(MAX_LENGTH),
                    "--device", "cpu", "--json", js)
    assert sup.returncode == 0, sup.stderr
    ours = json.loads(js.read_text())

    # Multiple choice: every choice's log-likelihood, then the three accuracies.
    theirs = samples(out, "supra_mc")
    task = ours["tasks"][0]
    assert len(theirs) == task["items"] == 24
    for row, lps in zip(theirs, task["logprobs"]):
        ref = [float(r[0]) for r in row["filtered_resps"]]
        assert len(ref) == len(lps)
        assert max(abs(a - b) for a, b in zip(ref, lps)) <= 1e-4, (row["doc_id"], ref, lps)
    res = results(out)
    for metric in ("acc", "acc_norm", "acc_bytes"):
        assert res["supra_mc"][f"{metric},none"] == pytest.approx(task[metric], abs=1e-12), metric

    # Rolling perplexity: per-document log-likelihoods and the corpus metrics.
    theirs = samples(out, "supra_ppl")
    text = ours["text_perplexity"]
    ref = [float(r["filtered_resps"][0]) for r in theirs]
    assert len(ref) == len(text["loglikelihood"]) == 6
    assert max(abs(a - b) for a, b in zip(ref, text["loglikelihood"])) <= 1e-4, (ref, text["loglikelihood"])
    for metric in ("word_perplexity", "byte_perplexity", "bits_per_byte"):
        assert math.isclose(res["supra_ppl"][f"{metric},none"], text[metric], rel_tol=1e-5), metric
