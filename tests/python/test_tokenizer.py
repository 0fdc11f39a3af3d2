"""supra's C++ tokenizers (core/tokenizer/*.cpp, through tests/tools/tokenizer_tool) against the Python libraries.

Tokenizers are made here, offline, on generated English-like text: byte-level BPEs trained with HF `tokenizers`
in the configurations of GPT-2 (ByteLevel pre-tokenizer, with and without prefix space), SmolLM2 (Digits +
ByteLevel) and Llama-3 (Split regex + ByteLevel, ignore_merges), SentencePiece-style BPEs as HF writes Llama-2 /
Mistral tokenizer.json (Prepend/Replace normalizer or Metaspace pre-tokenizer, byte fallback, unk fusing), and
SentencePiece `tokenizer.model`s (BPE with byte fallback, unigram) trained with the `sentencepiece` package.

Checked on each, for many strings (ASCII, punctuation, numbers, whitespace runs, newlines, accents, CJK, emoji,
Unicode spaces, special and added tokens in the text) and random id sequences: encode and decode equal the
library's; decode(encode(s)) == s wherever the library round-trips; TokenStreamer's chunks join to decode(ids);
BOS/EOS come from tokenizer_config.json / config.json / the tokenizer file; a folder whose tokenizer.json is not
supported falls back to tokenizer.model; missing, malformed and unsupported tokenizers are one clear error.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest

# --------------------------------------------------------------------------------------------------------------
# Text


WORDS = ("the of and to in is was for on that with as by at from his her it an were are which this be or has had "
         "not but model data token shard river city music garden window science history engine planet story "
         "I'll we've they're don't it's can't über café naïve résumé Zürich 東京 世界 こんにちは — “quoted” "
         "(parens) [brackets] {braces} e-mail x=y+z 50% $12.50 #tag @user http://example.com/a_b").split()


def sentence(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(3, 14)):
        r = rng.random()
        words.append(str(rng.randint(0, 99999)) if r < 0.08 else rng.choice(WORDS))
    return " ".join(words).capitalize() + rng.choice([".", "!", "?", "...", ",", ";"])


def corpus(seed: int = 0, n: int = 1200) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(sentence(rng) for _ in range(rng.randint(1, 5))) for _ in range(n)]


FIXED = [
    "", " ", "  ", "\n", "\n\n\n", "\t", "a", "Hello", "Hello world", " Hello world", "Hello world ", "Hello  world",
    "The quick brown fox jumps over the lazy dog.", "Hello, world! How's it going? I'll've, they'd.",
    "HOW'S IT GOING? I'LL", "12345 3.14159 1,000,000 -42 +7 0x1F 2024-06-01",
    "a  b   c    d     e", "   leading", "trailing   ", "tab\tseparated\tvalues", "line one\nline two\n\nline four",
    "windows\r\nline\r\nends", "mixed \t \n whitespace \n\t ", "café naïve résumé Zürich façade",
    "e\u0301 (combining acute)", "你好，世界！这是一个测试。", "こんにちは世界", "한국어 텍스트", "مرحبا بالعالم", "नमस्ते दुनिया",
    "Emoji 👍🏽 😀 🇫🇷 👨‍👩‍👧", "non\u00a0breaking\u3000ideographic\u2028line\u0085nel", "x² ½ Ⅻ ١٢٣ １２３ ٣.١٤",
    "abc123def 4567x", "<|endoftext|>", "<|endoftext|>hello<|endoftext|> world", "<s>Hi</s>", "a<s>b</s>c",
    "text with <custom> token and <custom>x", "  <custom>  spaced  ", "word<custom>word", "<|im_start|>user\nhi<|im_end|>",
    "Ġ Ċ ▁ <0x41> <unk>", "\\ backslash \\n not newline", "'s 're 've 'm 'll 'd ''", "end.",
    "The SUPRA method linearizes pretrained transformers into RNNs: constant memory per sequence, whatever the length.",
    "word words sword word. (word) wordy a_word word_b 1word word2 éword wordé", "I love new york and new york city",
    "new  york new\nyork<|sep|>new york", " <|sep|> ",
]


def random_strings(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    pool = (list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789 .,;:!?'\"()-_/\\") + [" ", " ", "  ", "\n", "\t", "\r\n"]
            + list("éèàüößçñ東京世界한글あア") + ["😀", "👍🏽", "🇫🇷", "\u00a0", "\u3000", "\u0301", "²", "Ⅻ", "１"]
            + ["<s>", "</s>", "<|endoftext|>", "<custom>", "'s", "'ll", "<0x41>", "▁", "Ġ", "word", "new york", "<|sep|>"]
            + WORDS[:60])
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 30))) for _ in range(n)]


STRINGS = FIXED + random_strings(1, 400) + corpus(seed=2, n=50)


# --------------------------------------------------------------------------------------------------------------
# Tokenizer folders


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train_byte_level(pre_tokenizer, vocab_size: int = 700):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    # added tokens with the options the matcher implements: normalized/non-special, lstrip/rstrip, single_word
    tok.add_tokens([AddedToken("<custom>", lstrip=True, rstrip=True), AddedToken("word", single_word=True)])
    return tok


def train_sp_style(vocab_size: int = 600):
    """A BPE as HF writes Llama-2's tokenizer.json: ▁ normalizer, no pre-tokenizer, byte fallback, fused unk."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=70,
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    # byte-fallback pieces <0x00>..<0xFF> in the model's vocabulary, as in Llama-2's
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    next_id = max(vocab.values()) + 1
    for b in range(256):
        name = f"<0x{b:02X}>"
        if name not in vocab:
            vocab[name] = next_id
            next_id += 1
    # added tokens matched in the normalized text (their content normalized: "▁new▁york")
    tok = Tokenizer.from_str(json.dumps(j))
    tok.add_tokens([AddedToken("<custom>"), AddedToken("new york"), AddedToken("<|sep|>", normalized=False)])
    return json.loads(tok.to_str())


def save(d: Path, tokenizer_json: dict | None = None, **files) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    if tokenizer_json is not None:
        (d / "tokenizer.json").write_text(json.dumps(tokenizer_json, ensure_ascii=False), encoding="utf-8")
    for name, content in files.items():
        (d / f"{name}.json").write_text(json.dumps(content))
    return d


def make_hf_variants(root: Path) -> dict[str, Path]:
    from tokenizers import Regex, pre_tokenizers

    out = {}
    gpt2 = json.loads(train_byte_level(pre_tokenizers.ByteLevel(add_prefix_space=False)).to_str())
    out["gpt2"] = save(root / "gpt2", gpt2, tokenizer_config={"bos_token": "<|endoftext|>",
                                                               "eos_token": {"content": "<|endoftext|>", "special": True}})
    prefixed = json.loads(json.dumps(gpt2))
    prefixed["pre_tokenizer"]["add_prefix_space"] = True
    out["gpt2_prefix_space"] = save(root / "gpt2_prefix_space", prefixed, config={"bos_token_id": 1, "eos_token_id": [2, 0]})

    smol = json.loads(train_byte_level(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])).to_str())
    out["smollm2"] = save(root / "smollm2", smol, tokenizer_config={"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"})

    llama3 = json.loads(train_byte_level(pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])).to_str())
    llama3["model"]["ignore_merges"] = True
    out["llama3"] = save(root / "llama3", llama3)

    sp_style = train_sp_style()
    out["llama2_hf"] = save(root / "llama2_hf", sp_style, config={"bos_token_id": 1, "eos_token_id": 2})
    meta = json.loads(json.dumps(sp_style))  # Metaspace pre-tokenizer (legacy=False style), same vocabulary
    meta["normalizer"] = None
    meta["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    out["mistral_metaspace"] = save(root / "mistral_metaspace", meta)
    meta_split = json.loads(json.dumps(meta))
    meta_split["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    meta_split["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}]}
    out["metaspace_split"] = save(root / "metaspace_split", meta_split)
    return out


def train_sentencepiece(d: Path, model_type: str) -> Path:
    import sentencepiece as spm

    d.mkdir(parents=True, exist_ok=True)
    text = d / "corpus.txt"
    text.write_text("\n".join(corpus()), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(d / "tokenizer"), vocab_size=500, model_type=model_type,
        byte_fallback=(model_type == "bpe"), character_coverage=0.995, user_defined_symbols=["<custom>"],
        num_threads=1, minloglevel=2)
    text.unlink()
    (d / "tokenizer.vocab").unlink()
    return d


# --------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def tool() -> str:
    path = os.environ.get("SUPRA_TOKENIZER_TOOL")
    if not path:
        pytest.skip("SUPRA_TOKENIZER_TOOL is not set: point it at the built tokenizer_tool (build/tests/tokenizer_tool)")
    if not os.access(path, os.X_OK):
        pytest.skip(f"SUPRA_TOKENIZER_TOOL={path} is not executable: build it first (cmake --build build)")
    return path


@pytest.fixture(scope="session")
def run_tool(tool, tmp_path_factory):
    req_dir = tmp_path_factory.mktemp("requests")
    counter = [0]

    def run(model_dir: Path, request: dict, expect_ok: bool = True):
        counter[0] += 1
        req = req_dir / f"req_{counter[0]}.json"
        req.write_text(json.dumps(request), encoding="utf-8")
        proc = subprocess.run([tool, str(model_dir), str(req)], capture_output=True, text=True, timeout=300)
        if not expect_ok:
            return proc
        assert proc.returncode == 0, f"tokenizer_tool {model_dir} failed ({proc.returncode}): {proc.stderr}"
        return json.loads(proc.stdout)

    return run


@pytest.fixture(scope="session")
def hf_variants(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("tokenizers")
    return make_hf_variants(tmp_path_factory.mktemp("hf_tokenizers"))


@pytest.fixture(scope="session")
def sp_variants(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("sentencepiece")
    root = tmp_path_factory.mktemp("sp_tokenizers")
    return {t: train_sentencepiece(root / t, t) for t in ("bpe", "unigram")}


# --------------------------------------------------------------------------------------------------------------
# The comparison


def id_sequences(vocab_size: int, seed: int, n: int = 60) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(vocab_size) for _ in range(rng.randint(1, 25))] for _ in range(n)]


def check_against(lib_encode, lib_decode, out: dict, encoded_ids: list[list[int]], random_ids: list[list[int]]):
    for s, ids in zip(STRINGS, out["encode"]):
        assert ids == lib_encode(s), f"encode({s!r})"
    all_ids = encoded_ids + random_ids
    for ids, text in zip(all_ids, out["decode"]):
        assert text == lib_decode(ids), f"decode({ids})"
    for s, ids, text in zip(STRINGS, encoded_ids, out["decode"]):
        if lib_decode(ids) == s:
            assert text == s, f"round trip of {s!r}"
    for ids, chunks, text in zip(all_ids, out["stream"], out["decode"]):
        assert "".join(chunks) == text, f"stream of {ids}: {chunks}"


VARIANTS = ["gpt2", "gpt2_prefix_space", "smollm2", "llama3", "llama2_hf", "mistral_metaspace", "metaspace_split"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_tokenizer_json_matches_hf_tokenizers(variant, hf_variants, run_tool):
    from tokenizers import Tokenizer

    d = hf_variants[variant]
    hf = Tokenizer.from_file(str(d / "tokenizer.json"))
    encode = lambda s: hf.encode(s, add_special_tokens=False).ids  # noqa: E731
    decode = lambda ids: hf.decode(ids)  # noqa: E731 (skip_special_tokens=True)
    encoded = [encode(s) for s in STRINGS]
    random_ids = id_sequences(hf.get_vocab_size(), seed=VARIANTS.index(variant))
    out = run_tool(d, {"encode": STRINGS, "decode": encoded + random_ids, "stream": encoded + random_ids})
    assert out["name"] == f"tokenizer.json:{d}/tokenizer.json"
    assert out["vocab_size"] == hf.get_vocab_size()
    check_against(encode, decode, out, encoded, random_ids)
    # most strings round-trip through the byte-level tokenizers
    if variant in ("gpt2", "smollm2", "llama3"):
        assert sum(hf.decode(ids) == s for s, ids in zip(STRINGS, encoded)) > 0.8 * len(STRINGS)


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_tokenizer_model_matches_sentencepiece(model_type, sp_variants, run_tool):
    import sentencepiece as spm

    d = sp_variants[model_type]
    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    encode = lambda s: sp.encode(s)  # noqa: E731
    decode = lambda ids: sp.decode(ids)  # noqa: E731
    encoded = [encode(s) for s in STRINGS]
    random_ids = id_sequences(sp.get_piece_size(), seed=7)
    out = run_tool(d, {"encode": STRINGS, "decode": encoded + random_ids, "stream": encoded + random_ids})
    assert out["name"] == f"sentencepiece:{d}/tokenizer.model"
    assert out["vocab_size"] == sp.get_piece_size()
    assert (out["bos_id"], out["eos_id"]) == (sp.bos_id(), sp.eos_id())
    check_against(encode, decode, out, encoded, random_ids)


def test_special_ids_from_configs(hf_variants, run_tool):
    from tokenizers import Tokenizer

    got = {v: run_tool(hf_variants[v], {}) for v in ("gpt2", "gpt2_prefix_space", "smollm2", "llama3", "llama2_hf")}
    tok = Tokenizer.from_file(str(hf_variants["smollm2"] / "tokenizer.json"))
    assert (got["gpt2"]["bos_id"], got["gpt2"]["eos_id"]) == (0, 0)  # tokenizer_config.json (string, AddedToken)
    assert (got["gpt2_prefix_space"]["bos_id"], got["gpt2_prefix_space"]["eos_id"]) == (1, 2)  # config.json (list)
    assert (got["smollm2"]["bos_id"], got["smollm2"]["eos_id"]) == (tok.token_to_id("<|im_start|>"),
                                                                    tok.token_to_id("<|im_end|>"))
    assert (got["llama3"]["bos_id"], got["llama3"]["eos_id"]) == (None, None)  # nothing says
    assert got["llama2_hf"]["bos_id"] == 1 and got["llama2_hf"]["eos_id"] == 2  # template's <s>; config.json


def test_invalid_utf8_input_is_replaced(hf_variants, run_tool):
    from tokenizers import Tokenizer

    d = hf_variants["gpt2"]
    hf = Tokenizer.from_file(str(d / "tokenizer.json"))
    raw = b"ok \xff\xfe caf\xc3 \xe4\xbd end"
    out = run_tool(d, {"encode_bytes": [list(raw)]})
    assert out["encode_bytes"][0] == hf.encode(raw.decode("utf-8", "replace"), add_special_tokens=False).ids


def test_stream_holds_back_incomplete_characters(hf_variants, run_tool):
    from tokenizers import Tokenizer

    d = hf_variants["gpt2"]
    hf = Tokenizer.from_file(str(d / "tokenizer.json"))
    byte_id = {b: hf.token_to_id(c) for b, c in enumerate(bytes_to_unicode())}
    ids = [byte_id[b] for b in "a😀b".encode()]  # one token per byte: the emoji arrives in 4 pieces
    out = run_tool(d, {"stream": [ids, ids[:3]]})
    assert out["stream"][0] == ["a", "", "", "", "😀", "b", ""]
    assert out["stream"][1] == ["a", "", "", "\ufffd"]  # finish() flushes the incomplete tail as U+FFFD


def bytes_to_unicode() -> list[str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = {b: b for b in bs}, 0
    for b in range(256):
        if b not in cs:
            cs[b] = 256 + n
            n += 1
    return [chr(cs[b]) for b in range(256)]


def test_unsupported_tokenizer_json_falls_back_to_tokenizer_model(sp_variants, run_tool, tmp_path):
    import shutil

    d = tmp_path / "both"
    d.mkdir()
    shutil.copy(sp_variants["bpe"] / "tokenizer.model", d / "tokenizer.model")
    wordpiece = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None, "decoder": None,
                 "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "a": 1}}}
    (d / "tokenizer.json").write_text(json.dumps(wordpiece))
    out = run_tool(d, {"encode": ["hello"]})
    assert out["name"].startswith("sentencepiece:")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(d / "tokenizer.json", alone / "tokenizer.json")
    proc = run_tool(alone, {}, expect_ok=False)
    assert proc.returncode == 2 and "tokenizer.json" in proc.stderr and "WordPiece" in proc.stderr, proc.stderr


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid JSON"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}', "'b', which is not in model.vocab"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "normalizer": {"type": "NFKC"}}',
     "unsupported normalizer type 'NFKC'"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Whitespace"}}',
     "unsupported pre_tokenizer type 'Whitespace'"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": '
     '{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false}}', "invalid regex"),
    ('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [], "dropout": 0.1}}', "dropout"),
])
def test_bad_tokenizer_json_is_one_clear_error(content, needle, run_tool, tmp_path):
    (tmp_path / "tokenizer.json").write_text(content)
    proc = run_tool(tmp_path, {}, expect_ok=False)
    assert proc.returncode == 2, proc.stderr
    assert f"{tmp_path}/tokenizer.json" in proc.stderr and needle in proc.stderr, proc.stderr


def test_missing_tokenizer_names_the_folder(run_tool, tmp_path):
    proc = run_tool(tmp_path, {}, expect_ok=False)
    assert proc.returncode == 2
    assert f"no tokenizer.json or tokenizer.model in {tmp_path}" in proc.stderr, proc.stderr
