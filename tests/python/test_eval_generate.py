"""`supra eval` and `supra generate` against Hugging Face transformers: the multiple-choice log-likelihoods, acc and
acc_norm of a small hand-made task file, and the perplexity of a shard folder, equal a Python computation with
transformers; greedy `supra generate` equals transformers' greedy generate; TOVA with K >= length equals the full
cache; and bad task files fail with one line naming the file."""
import json
import math
import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "shipped"))
import data_shards  # noqa: E402


def _bos(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text()).get("bos_token_id", 1)


def _logprobs(hf_reference, model_dir, seq):
    logits = hf_reference(model_dir, seq).double()
    return torch.log_softmax(logits, -1)


def test_choice_task_matches_transformers(run_supra, tiny_model, hf_reference, tmp_path):
    m = tiny_model("llama_gqa_untied")
    bos = _bos(m)
    rng = random.Random(0)
    items = []
    for i in range(8):
        q = [rng.randrange(3, 100) for _ in range(rng.randrange(1, 7))]
        choices = [[rng.randrange(3, 100) for _ in range(rng.randrange(1, 5))] for _ in range(rng.randrange(2, 5))]
        items.append({"query_ids": q, "choices_ids": choices, "gold": rng.randrange(len(choices))})
    for i in range(4):  # WinoGrande form: the options differ in the context
        ctxs = [[rng.randrange(3, 100) for _ in range(rng.randrange(1, 6))] for _ in range(2)]
        items.append({"context_options_ids": ctxs, "continuation_ids": [rng.randrange(3, 100) for _ in range(3)],
                      "gold": rng.randrange(2)})
    task = tmp_path / "task.jsonl"
    task.write_text("".join(json.dumps(x) + "\n" for x in items))
    out = tmp_path / "res.json"
    proc = run_supra("eval", "--model", m, "--task", task, "--json", out, "--device", "cpu", "--batch-size", "3")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())["tasks"][0]

    correct = correct_norm = 0
    for it, got in zip(items, res["logprobs"]):
        if "query_ids" in it:
            pairs = [(it["query_ids"], c) for c in it["choices_ids"]]
        else:
            pairs = [(c, it["continuation_ids"]) for c in it["context_options_ids"]]
        want = []
        for ctx, cont in pairs:
            seq = [bos] + ctx + cont
            lp = _logprobs(hf_reference, m, seq)
            want.append(sum(lp[len(ctx) + j, seq[len(ctx) + 1 + j]].item() for j in range(len(cont))))
        assert got == pytest.approx(want, abs=1e-4)
        correct += max(range(len(want)), key=lambda c: (want[c], -c)) == it["gold"]
        correct_norm += max(range(len(want)), key=lambda c: (want[c] / len(pairs[c][1]), -c)) == it["gold"]
    assert res["items"] == len(items)
    assert res["acc"] == pytest.approx(correct / len(items))
    assert res["acc_norm"] == pytest.approx(correct_norm / len(items))


def test_perplexity_matches_transformers(run_supra, tiny_model, hf_reference, tmp_path):
    m = tiny_model("llama_mha_tied")
    data = tmp_path / "data"
    proc = run_supra("data", "sample", "--model", m, "--out", data, "--docs", "5", "--max-tokens", "30", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    seq_len = 8  # documents longer than this are scored in windows of 8 predictions
    out = tmp_path / "ppl.json"
    proc = run_supra("eval", "--model", m, "--tokens", data, "--seq-len", seq_len, "--json", out, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "ppl" in proc.stdout
    res = json.loads(out.read_text())["perplexity"]
    nll, n = 0.0, 0
    for doc in data_shards.documents(data):
        doc = [int(x) for x in doc]
        for s in range(0, len(doc) - 1, seq_len):
            w = doc[s:s + seq_len + 1]
            lp = _logprobs(hf_reference, m, w)
            nll -= sum(lp[j, w[j + 1]].item() for j in range(len(w) - 1))
            n += len(w) - 1
    assert res["tokens"] == n and res["docs"] == 5
    assert res["nll"] == pytest.approx(nll / n, abs=1e-5)
    assert res["bits_per_token"] == pytest.approx(nll / n / math.log(2), abs=1e-5)
    # A bounded cache with K >= the window length changes nothing.
    proc = run_supra("eval", "--model", m, "--tokens", data, "--seq-len", seq_len, "--json", out, "--device", "cpu",
                     "--kv-policy", "tova", "--kv-size", "64")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["perplexity"]["nll"] == pytest.approx(nll / n, abs=1e-5)


def test_greedy_generate_matches_transformers(run_supra, tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM

    m = tiny_model("mistral_sliding")  # sliding window 8 < prompt + new tokens
    prompts = [[1, 5, 9, 2, 7], [1, 3]]
    proc = run_supra("generate", "--model", m, "--ids", ";".join(",".join(map(str, p)) for p in prompts), "--no-bos",
                     "--max-new-tokens", "12", "--temperature", "0", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    got = [[int(t) for t in line.split()] for line in proc.stdout.splitlines() if line and not line.startswith("#")]
    hf = AutoModelForCausalLM.from_pretrained(m, torch_dtype=torch.float32).eval()
    eos = hf.config.eos_token_id
    for p, g in zip(prompts, got):
        out = hf.generate(torch.tensor([p]), max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=eos)
        assert g == out[0, len(p):].tolist()
    assert "state per sequence" in proc.stderr and "tokens/s" in proc.stderr


@pytest.mark.parametrize("line,msg", [
    ("{not json", "not valid JSON"),
    ('{"query_ids": [1], "choices_ids": [[2], [3]], "gold": 5}', "gold 5 is not a choice index"),
    ('{"query_ids": [1], "choices_ids": [[2]], "gold": 0}', "needs at least 2 choices"),
    ('{"question": "x"}', "expected {query, choices, gold}"),
])
def test_bad_task_file_is_one_line_error(run_supra, tiny_model, tmp_path, line, msg):
    task = tmp_path / "bad.jsonl"
    task.write_text('{"query_ids": [1], "choices_ids": [[2], [3]], "gold": 0}\n' + line + "\n")
    proc = run_supra("eval", "--model", tiny_model("llama_mha_tied"), "--task", task, "--device", "cpu")
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and f"{task}:2" in err[0] and msg in err[0], proc.stderr
