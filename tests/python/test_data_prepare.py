"""`supra data prepare / check / docs / batches` against HF tokenizers, on inputs made here.

A small byte-level BPE tokenizer is trained with the `tokenizers` library (no download) and placed with a minimal
config.json in a tmp "model" folder; Parquet files are written with pyarrow in RefinedWeb's schema (content, url,
timestamp, dump, segment, image_urls), with a null and an empty `content`; JSONL files carry `text` or `content`.

Checked: the round trip text → shards → (C++ reader, Python reader, loader batches) equals HF tokenizers' encoding
([BOS] + ids + [EOS]); the manifest; resuming an interrupted preparation without redoing finished shards; and
every bad-input case (missing column, empty input, unreadable / missing file, bad JSON, truncated or missing shard,
checksum mismatch, token id ≥ vocab, manifest/tokenizer mismatch with a model) as one clear error line, exit 2,
with no manifest left behind.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
tokenizers = pytest.importorskip("tokenizers")

import data_shards  # noqa: E402  (scripts/, on PYTHONPATH via conftest)

WORDS = ("the of and to in is was for on that with as by at from his her it an were are which this be or has had "
         "not but model data token shard river city music garden window science history engine planet story "
         "über café naïve 東京 — “quoted” 42 3.14").split()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))).capitalize() + rng.choice(".!?")


def text(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(rng.randint(1, 9)))


def make_tokenizer_dir(d: Path, bos: bool = True, vocab_size: int = 400, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    rng = random.Random(seed)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text(rng) for _ in range(1500)], trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    # a real (tiny) Llama config: `supra data check --model` reads model folders through the model's config parser
    (d / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": tok.get_vocab_size(),
        "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "bos_token_id": 1,
        "eos_token_id": 2}))
    if bos:
        (d / "tokenizer_config.json").write_text(json.dumps({"add_bos_token": True, "bos_token": "<s>",
                                                             "eos_token": "</s>"}))
    return d


def refinedweb_table(texts: list[str | None]) -> "pa.Table":
    """A table in tiiuae/falcon-refinedweb's schema."""
    n = len(texts)
    return pa.table({
        "content": pa.array(texts, pa.string()),
        "url": pa.array([f"https://example.com/{i}" for i in range(n)], pa.string()),
        "timestamp": pa.array([dt.datetime(2023, 1, 1) + dt.timedelta(minutes=i) for i in range(n)], pa.timestamp("s")),
        "dump": pa.array(["CC-MAIN-2023-06"] * n, pa.string()),
        "segment": pa.array(["1674764494974.10"] * n, pa.string()),
        "image_urls": pa.array([[["https://example.com/a.png", "alt"]] if i % 3 == 0 else [] for i in range(n)],
                               pa.list_(pa.list_(pa.string()))),
    })


def write_parquet(path: Path, texts: list[str | None], row_group_size: int = 40) -> Path:
    pq.write_table(refinedweb_table(texts), str(path), row_group_size=row_group_size)
    return path


def write_jsonl(path: Path, texts: list[str | None], key: str = "text") -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({key: t, "id": i}, ensure_ascii=False) + "\n")
    return path


def assert_error(proc, *needles: str) -> str:
    """Exit code 2, last stderr line is the one 'error:' line, and it names every needle."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2; stderr: {proc.stderr!r}"
    assert lines and lines[-1].startswith("error:"), f"last stderr line is not an error: {proc.stderr!r}"
    assert sum(ln.startswith("error:") for ln in lines) == 1, f"more than one error line: {proc.stderr!r}"
    low = lines[-1].lower()
    for n in needles:
        assert n.lower() in low, f"{n!r} not in {lines[-1]!r}"
    return lines[-1]


# --------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    return make_tokenizer_dir(tmp_path_factory.mktemp("tok") / "model")


@pytest.fixture(scope="module")
def hf_tok(tok_dir):
    return tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four input files (2 Parquet in RefinedWeb schema, JSONL with 'text', JSONL with 'content') and their texts
    in input order (None / "" included: they are skipped)."""
    d = tmp_path_factory.mktemp("corpus")
    rng = random.Random(1)
    p1 = [text(rng) for _ in range(150)]
    p1[7], p1[20] = None, ""
    p2 = [text(rng) for _ in range(90)]
    j1 = [text(rng) for _ in range(120)]
    j2 = [text(rng) for _ in range(60)]
    files = [write_parquet(d / "rw-00000.parquet", p1), write_parquet(d / "rw-00001.parquet", p2),
             write_jsonl(d / "a.jsonl", j1, "text"), write_jsonl(d / "b.jsonl", j2, "content")]
    return files, p1 + p2 + j1 + j2


@pytest.fixture(scope="module")
def prepared(run_supra, tok_dir, corpus, tmp_path_factory) -> Path:
    files, _ = corpus
    out = tmp_path_factory.mktemp("prepared") / "data"
    proc = run_supra("data", "prepare", "--input", *files, "--tokenizer", tok_dir, "--out", out,
                     "--shard-mb", "0.02", "--workers", "2", "--seq-len", "64")
    assert proc.returncode == 0, proc.stderr
    return out


def expected_docs(hf_tok, texts) -> list[list[int]]:
    return [hf_tok.encode(t).ids + [2] for t in texts if t]


def docs_via_cli(run_supra, d: Path) -> list[list[int]]:
    proc = run_supra("data", "docs", d)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["doc"] for r in rows] == list(range(len(rows)))
    return [r["tokens"] for r in rows]


def copy_dataset(prepared: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(prepared, dst)
    return dst


def manifest(d: Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


# --------------------------------------------------------------------------------------------------------------
# Round trip


def test_round_trip_matches_hf_tokenizers(run_supra, prepared, corpus, hf_tok, tok_dir):
    _, texts = corpus
    want = expected_docs(hf_tok, texts)
    assert all(d[0] == 1 for d in want), "the fixture tokenizer prepends BOS"
    # The C++ reader (supra data docs) and the independent NumPy reader.
    assert docs_via_cli(run_supra, prepared) == want
    assert [d.tolist() for d in data_shards.documents(prepared)] == want

    m = manifest(prepared)
    assert m["format"] == "supra-tokens" and m["version"] == 1
    assert m["dtype"] == "uint16" and m["vocab_size"] == hf_tok.get_vocab_size()
    assert m["num_docs"] == len(want) and m["num_tokens"] == sum(map(len, want))
    assert m["num_shards"] == len(m["shards"]) >= 4, "small --shard-mb: several shards per file"
    t = m["tokenizer"]
    assert t["files"] == {"tokenizer.json": hashlib.sha256((tok_dir / "tokenizer.json").read_bytes()).hexdigest()}
    assert (t["bos_token_id"], t["eos_token_id"], t["add_bos_token"]) == (1, 2, True)
    assert m["prepare"]["skipped_docs"] == 2 and m["seq_len"] == 64
    for s in m["shards"]:
        for ext in ("bin", "idx"):
            data = (prepared / f"{s['name']}.{ext}").read_bytes()
            assert len(data) == s[f"{ext}_bytes"] and hashlib.sha256(data).hexdigest() == s[f"{ext}_sha256"]
    assert not list(prepared.glob("*.tmp.*"))

    proc = run_supra("data", "check", prepared, "--model", tok_dir)
    assert proc.returncode == 0, proc.stderr
    assert str(len(want)) in proc.stdout and "OK" in proc.stdout


def test_loader_batches_are_packed_hf_tokens(run_supra, prepared, corpus, hf_tok, tmp_path):
    from safetensors.numpy import load_file

    _, texts = corpus
    stream = np.array([i for d in expected_docs(hf_tok, texts) for i in d], dtype=np.int64)
    starts = np.zeros(len(stream), dtype=bool)
    pos = 0
    for d in expected_docs(hf_tok, texts):
        starts[pos] = True
        pos += len(d)
    t, g, steps, seed, ev = 31, 8, 12, 5, 6
    out = tmp_path / "b.safetensors"
    proc = run_supra("data", "batches", prepared, "--seq-len", t, "--global-batch", g, "--steps", steps, "--seed",
                     seed, "--eval-samples", ev, "--out", out)
    assert proc.returncode == 0, proc.stderr
    b = load_file(str(out))
    n = len(stream) // (t + 1)
    ntrain = n - ev
    assert b["tokens"].shape == (steps * g, t + 1) and b["doc_start"].shape == (steps * g, t)
    # The order is the documented permutation (Python reference in scripts/shipped/data_shards.py).
    assert b["samples"].tolist() == data_shards.training_samples(ntrain, seed, 0, steps * g)
    for row, s in enumerate(b["samples"]):
        np.testing.assert_array_equal(b["tokens"][row], stream[s * (t + 1):(s + 1) * (t + 1)])
        np.testing.assert_array_equal(b["doc_start"][row], starts[s * (t + 1):s * (t + 1) + t])
    state = json.loads(proc.stdout.strip().splitlines()[-1])
    assert state["position"] == (steps * g) % ntrain and state["num_train_samples"] == ntrain

    # Resume from the state in two halves = one run; rank 1 of 2 gets the second half of each global batch.
    st = tmp_path / "state.json"
    first, second = tmp_path / "1.safetensors", tmp_path / "2.safetensors"
    common = ["--seq-len", t, "--global-batch", g, "--seed", seed, "--eval-samples", ev]
    assert run_supra("data", "batches", prepared, *common, "--steps", 5, "--out", first, "--state-out", st).returncode == 0
    proc = run_supra("data", "batches", prepared, *common, "--steps", steps - 5, "--out", second, "--state-in", st,
                     "--world-size", 2, "--rank", 1)
    assert proc.returncode == 0, proc.stderr
    r1 = load_file(str(second))["samples"].reshape(steps - 5, g // 2)
    np.testing.assert_array_equal(r1, b["samples"].reshape(steps, g)[5:, g // 2:])
    np.testing.assert_array_equal(load_file(str(first))["samples"], b["samples"][:5 * g])

    # The held-out split: the last `ev` samples, in order.
    proc = run_supra("data", "batches", prepared, *common, "--eval", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert load_file(str(out))["samples"].tolist() == list(range(ntrain, n))


def test_bos_follows_the_tokenizer(run_supra, tmp_path, corpus):
    """No post-processor and no add_bos_token: documents are ids + [EOS], no BOS; --bos always forces it."""
    files, texts = corpus
    tok = make_tokenizer_dir(tmp_path / "nobos", bos=False)
    hf = tokenizers.Tokenizer.from_file(str(tok / "tokenizer.json"))
    out = tmp_path / "d"
    proc = run_supra("data", "prepare", "--input", files[2], "--tokenizer", tok, "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    j1 = [t for t in texts[240:360]]
    assert docs_via_cli(run_supra, out) == [hf.encode(t).ids + [2] for t in j1]
    assert manifest(out)["tokenizer"]["add_bos_token"] is False
    out2 = tmp_path / "d2"
    proc = run_supra("data", "prepare", "--input", files[2], "--tokenizer", tok, "--out", out2, "--bos", "always",
                     "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert docs_via_cli(run_supra, out2)[:3] == [[1] + hf.encode(t).ids + [2] for t in j1[:3]]


def test_uint32_for_large_vocabularies(run_supra, tmp_path):
    from tokenizers import AddedToken

    tok_dir = make_tokenizer_dir(tmp_path / "big")
    hf = tokenizers.Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    hf.add_tokens([AddedToken(f"qq{i}zz", single_word=True) for i in range(66000)])
    hf.save(str(tok_dir / "tokenizer.json"))
    cfg = json.loads((tok_dir / "config.json").read_text())
    cfg["vocab_size"] = hf.get_vocab_size()
    (tok_dir / "config.json").write_text(json.dumps(cfg))
    texts = ["The river qq65999zz and qq3zz.", "Café qq65500zz"]
    src = write_jsonl(tmp_path / "x.jsonl", texts)
    out = tmp_path / "d"
    proc = run_supra("data", "prepare", "--input", src, "--tokenizer", tok_dir, "--out", out, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    m = manifest(out)
    assert m["dtype"] == "uint32" and m["vocab_size"] > 65536
    docs = docs_via_cli(run_supra, out)
    assert docs == [hf.encode(t).ids + [2] for t in texts]
    assert max(max(d) for d in docs) > 65535
    assert run_supra("data", "check", out).returncode == 0


# --------------------------------------------------------------------------------------------------------------
# Restart


def stats(d: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in sorted(d.glob("shard_*"))}


def test_restart_redoes_only_unfinished_shards(run_supra, tok_dir, corpus, tmp_path):
    files, _ = corpus
    out = tmp_path / "data"
    args = ["data", "prepare", "--input", *files, "--tokenizer", tok_dir, "--out", out, "--shard-mb", "0.02",
            "--workers", "1", "--seq-len", "64"]
    assert run_supra(*args).returncode == 0
    before = stats(out)
    m0 = manifest(out)
    assert len(before) >= 8

    # "Interrupted": the manifest never written, one shard lost, one shard written but not recorded as done, and
    # a stale temporary file of a killed worker.
    (out / "manifest.json").unlink()
    (out / "shard_00001.bin").unlink()
    (out / ".prepare" / "shard_00003.json").unlink()
    (out / "shard_00004.bin.tmp.99999").write_bytes(b"partial")
    proc = run_supra(*args)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr
    after = stats(out)
    redone = {"shard_00001.bin", "shard_00001.idx", "shard_00003.bin", "shard_00003.idx"}
    assert set(after) == set(before)
    for name in before:
        if name not in redone:
            assert after[name] == before[name], f"{name} was rewritten"
    assert after["shard_00001.bin"] != before["shard_00001.bin"] and after["shard_00003.bin"] != before["shard_00003.bin"]
    assert manifest(out) == m0, "the resumed preparation gives the same manifest (same shards, same checksums)"
    assert not list(out.glob("*.tmp.*"))

    # Complete: nothing is redone.
    proc = run_supra(*args)
    assert proc.returncode == 0 and "already complete" in proc.stderr
    assert stats(out) == after

    # Other inputs into the same folder are refused, the folder is left as it is.
    proc = run_supra("data", "prepare", "--input", files[0], "--tokenizer", tok_dir, "--out", out)
    assert_error(proc, str(out), "other inputs")
    assert stats(out) == after and (out / "manifest.json").is_file()


# --------------------------------------------------------------------------------------------------------------
# Bad input: preparation


def prepare(run_supra, tok_dir, out, *inputs, extra=()):
    return run_supra("data", "prepare", "--input", *inputs, "--tokenizer", tok_dir, "--out", out, "--no-progress",
                     *extra)


def test_parquet_without_the_column(run_supra, tok_dir, tmp_path):
    src = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"url": ["a", "b"], "body": ["x", "y"]}), str(src))
    out = tmp_path / "out"
    assert_error(prepare(run_supra, tok_dir, out, src), str(src), "no column 'content' or 'text'", "url, body")
    assert not (out / "manifest.json").exists()
    rw = write_parquet(tmp_path / "rw.parquet", ["hello world"])
    assert_error(prepare(run_supra, tok_dir, out, rw, extra=("--text-column", "body")), str(rw), "no column 'body'")
    assert not (out / "manifest.json").exists()


def test_empty_input(run_supra, tok_dir, tmp_path):
    src = write_parquet(tmp_path / "empty.parquet", [None, "", None])
    empty_jsonl = tmp_path / "empty.jsonl"
    empty_jsonl.write_text("")
    out = tmp_path / "out"
    assert_error(prepare(run_supra, tok_dir, out, src, empty_jsonl), "empty input", "3 empty or null")
    assert not out.exists(), "a failed preparation must not leave a data folder behind"
    (tmp_path / "nothing").mkdir()
    assert_error(prepare(run_supra, tok_dir, out, tmp_path / "nothing"), "nothing", "no .parquet")


def test_unreadable_and_missing_files(run_supra, tok_dir, tmp_path):
    bad = tmp_path / "garbage.parquet"
    bad.write_bytes(b"this is not parquet at all" * 10)
    out = tmp_path / "out"
    assert_error(prepare(run_supra, tok_dir, out, bad), str(bad), "not a readable parquet file")
    assert_error(prepare(run_supra, tok_dir, out, tmp_path / "absent.jsonl"), "absent.jsonl", "no such file")
    assert_error(prepare(run_supra, tok_dir, out, tmp_path / "notes.txt"), "notes.txt", "no such file")
    (tmp_path / "notes.txt").write_text("hi")
    assert_error(prepare(run_supra, tok_dir, out, tmp_path / "notes.txt"), "notes.txt", "unsupported input format")
    if os.geteuid() != 0:  # root reads anything
        locked = write_jsonl(tmp_path / "locked.jsonl", ["x"])
        locked.chmod(0)
        assert_error(prepare(run_supra, tok_dir, out, locked), str(locked), "permission denied")
    assert not (out / "manifest.json").exists()


def test_bad_jsonl_records(run_supra, tok_dir, tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "fine"}\n{"text": "broken\n')
    out = tmp_path / "out"
    assert_error(prepare(run_supra, tok_dir, out, src), str(src), "invalid json", "byte 17")
    src.write_text('{"text": "fine"}\n{"body": "no text field"}\n')
    assert_error(prepare(run_supra, tok_dir, out, src), str(src), "neither 'text' nor 'content'")
    src.write_text('{"text": 12}\n')
    assert_error(prepare(run_supra, tok_dir, out, src), str(src), "not a string")
    assert not (out / "manifest.json").exists() and not list(out.glob("shard_*"))


def test_bad_tokenizer_folder(run_supra, tmp_path, corpus):
    files, _ = corpus
    (tmp_path / "empty_model").mkdir()
    assert_error(prepare(run_supra, tmp_path / "empty_model", tmp_path / "out", files[2]), "empty_model",
                 "no tokenizer.json")
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "tokenizer.json").write_text("{}")
    assert_error(prepare(run_supra, broken, tmp_path / "out", files[2]), "tokenizer.json", "cannot load")


def test_prepare_help(run_supra):
    proc = run_supra("data", "prepare", "--help")
    assert proc.returncode == 0
    for opt in ("--input", "--tokenizer", "--out", "--text-column", "--seq-len", "--workers"):
        assert opt in proc.stdout


# --------------------------------------------------------------------------------------------------------------
# Bad input: checking a data folder


def test_check_truncated_shard(run_supra, prepared, tmp_path):
    d = copy_dataset(prepared, tmp_path)
    f = d / "shard_00002.bin"
    f.write_bytes(f.read_bytes()[:-3])
    assert_error(run_supra("data", "check", d), "shard_00002.bin", "truncated")
    assert_error(run_supra("data", "batches", d, "--out", tmp_path / "x.safetensors"), "shard_00002.bin", "truncated")


def test_check_missing_shard_and_manifest(run_supra, prepared, tmp_path):
    d = copy_dataset(prepared, tmp_path)
    (d / "shard_00001.idx").unlink()
    assert_error(run_supra("data", "check", d), "shard_00001.idx", "missing")
    (d / "manifest.json").unlink()
    assert_error(run_supra("data", "check", d), "manifest.json", "missing")


def test_check_checksum_mismatch(run_supra, prepared, tmp_path):
    d = copy_dataset(prepared, tmp_path)
    f = d / "shard_00000.bin"
    data = bytearray(f.read_bytes())
    data[10], data[11] = data[12], data[13]  # another valid token, same size
    assert bytes(data) != f.read_bytes()
    f.write_bytes(bytes(data))
    assert_error(run_supra("data", "check", d), "shard_00000.bin", "checksum mismatch")
    assert run_supra("data", "check", d, "--quick").returncode == 0, "--quick skips checksums"


def test_check_token_id_out_of_vocabulary(run_supra, prepared, tmp_path):
    """A crafted shard: consistent manifest (sizes, sha256) but an id ≥ vocab_size."""
    d = copy_dataset(prepared, tmp_path)
    f = d / "shard_00001.bin"
    data = bytearray(f.read_bytes())
    struct.pack_into("<H", data, 8, 65000)
    f.write_bytes(bytes(data))
    m = manifest(d)
    m["shards"][1]["bin_sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))
    assert_error(run_supra("data", "check", d), "shard_00001.bin", "token id 65000", f"vocab_size {m['vocab_size']}")


def test_manifest_tokenizer_mismatch_with_model(run_supra, prepared, tmp_path, tiny_model):
    d = prepared
    # A real (tiny) Llama folder whose vocabulary (192) is smaller than the data's (400).
    small = tiny_model("llama_gqa_untied")
    assert_error(run_supra("data", "check", d, "--model", small), "manifest.json", "vocab_size 192")
    assert_error(run_supra("data", "batches", d, "--model", small, "--out", tmp_path / "x.safetensors"),
                 "vocab_size 192")
    assert not (tmp_path / "x.safetensors").exists()
    # Same vocabulary size and special tokens, another tokenizer.json.
    other = tmp_path / "other_model"
    shutil.copytree(small, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["vocab_size"] = manifest(d)["vocab_size"]
    (other / "config.json").write_text(json.dumps(cfg))
    make_tokenizer_dir(tmp_path / "tok2", seed=7)
    shutil.copy(tmp_path / "tok2" / "tokenizer.json", other / "tokenizer.json")
    assert_error(run_supra("data", "check", d, "--model", other), "other_model/tokenizer.json", "tokenizer differs")
    # The model's EOS differs from the documents' end token.
    shutil.copy(json.loads((d / "manifest.json").read_text())["tokenizer"]["source"] + "/tokenizer.json",
                other / "tokenizer.json")
    cfg["eos_token_id"] = 3
    (other / "config.json").write_text(json.dumps(cfg))
    assert_error(run_supra("data", "check", d, "--model", other), "EOS id 2", "eos_token_id 3")
    cfg["eos_token_id"] = 2
    (other / "config.json").write_text(json.dumps(cfg))
    assert run_supra("data", "check", d, "--model", other).returncode == 0


def test_loader_option_errors(run_supra, prepared, tmp_path):
    out = tmp_path / "x.safetensors"
    assert_error(run_supra("data", "batches", prepared, "--global-batch", 6, "--world-size", 4, "--out", out),
                 "global batch 6", "world size 4")
    assert_error(run_supra("data", "batches", prepared, "--seq-len", 10 ** 7, "--out", out), str(prepared),
                 "not a single sample")
    st = tmp_path / "s.json"
    st.write_text(json.dumps({"seed": 0, "epoch": 0, "position": 0, "num_train_samples": 3, "seq_len": 16}))
    assert_error(run_supra("data", "batches", prepared, "--seq-len", 16, "--state-in", st, "--out", out),
                 "3 training samples")


def test_full_disk_is_a_one_line_error(run_supra, tok_dir, corpus, tmp_path):
    """ENOSPC while writing shards (a 64 KiB tmpfs): exit 2, one `error:` line naming the folder, no manifest."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        files, _ = corpus
        out = mnt / "out"
        assert_error(prepare(run_supra, tok_dir, out, *files), str(mnt), "cannot write")
        assert not (out / "manifest.json").exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
