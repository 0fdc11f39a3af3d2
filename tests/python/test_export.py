"""`supra export`: the Hugging Face folder, loaded by transformers with the shipped remote code, against supra.

- Layout: safetensors (+ index when sharded), config.json (base fields, "supra" block, auto_map),
  generation_config.json, tokenizer files of the base model, the modeling files of scripts/shipped/hf_supra.
- fp32 logits of `AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)` equal `supra logits`
  (relative error <= 1e-4; measured ~1e-6) for GQA/MHA, tied heads, qk-norm, chunk sizes, decays, RoPE scalings.
- Generation: greedy `generate()` with the recurrent cache = without cache = argmax of supra's full-sequence
  logits; prefill + step-by-step decode = full forward; left-padded batches = one by one; the cache's size does not
  depend on the length.
- transformers conventions (the installed version; scripts/tools/hf_version_matrix.py runs the same checks under
  4.57 / 5.0 / the newest 5.x in throwaway venvs): one token fed per decoding step (with and without attention_mask,
  left-padded batches, pipeline("text-generation"), a continued generate), use_cache=False gives the same ids, the
  cache accepted as past_key_values= / cache= / cache_params=, weights loaded exactly (no init after load), the
  tokenizer files load with AutoTokenizer without remote code.
- bf16 export, sharding with a small --max-shard-size, round trip through supra (logits, info, re-export),
  training checkpoints (run folder -> latest, tokenizer of the run's model), refusals (one line, exit 2, nothing
  left behind).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import hf_version_matrix as matrix  # scripts/tools (on sys.path through conftest)
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
HF_SUPRA = REPO / "scripts" / "shipped" / "hf_supra"
TOL = 1e-4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def make_tokens(n: int, vocab: int, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return [1] + torch.randint(3, vocab, (n - 1,), generator=g).tolist()


def assert_one_line_error(proc) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, f"exit code {proc.returncode}, expected 2; stderr: {proc.stderr!r}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got {proc.stderr!r}"
    return lines[0]


def leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def convert(run_supra, tiny_model, tmp_path_factory):
    """convert(variant, *opts) -> folder written by `supra convert` (cached)."""
    cache: dict[tuple, Path] = {}

    def conv(variant: str, *opts: str) -> Path:
        key = (variant, opts)
        if key not in cache:
            out = tmp_path_factory.mktemp("conv") / f"{variant}"
            proc = run_supra("convert", "--model", tiny_model(variant), "--out", out, *opts)
            assert proc.returncode == 0, proc.stderr
            cache[key] = out
        return cache[key]

    return conv


@pytest.fixture(scope="module")
def export(run_supra, tmp_path_factory):
    """export(src, *opts) -> exported folder (cached per (src, opts))."""
    cache: dict[tuple, Path] = {}

    def exp(src: Path, *opts: str) -> Path:
        key = (str(src), opts)
        if key not in cache:
            out = tmp_path_factory.mktemp("export") / f"exp{len(cache)}"
            proc = run_supra("export", "--checkpoint", src, "--out", out, *opts)
            assert proc.returncode == 0, proc.stderr
            cache[key] = out
        return cache[key]

    return exp


@pytest.fixture(scope="module")
def hf_load():
    """hf_load(dir, dtype=torch.float32) -> the exported model through transformers' remote-code path."""
    from transformers import AutoModelForCausalLM

    def load(d: Path, dtype=torch.float32):
        return AutoModelForCausalLM.from_pretrained(str(d), trust_remote_code=True, dtype=dtype).eval()

    return load


def hf_logits(model, tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([tokens]), use_cache=False).logits[0].float()


# --------------------------------------------------------------------------------------------------------------
# Layout


def test_layout_and_config(convert, export):
    src = convert("llama_gqa_untied")
    out = export(src)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["config.json", "configuration_supra.py", "generation_config.json", "model.safetensors",
                     "modeling_supra.py"]
    for f in ("configuration_supra.py", "modeling_supra.py"):
        assert (out / f).read_text() == (HF_SUPRA / f).read_text(), f"{f} differs from scripts/shipped/hf_supra"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "supra" and cfg["architectures"] == ["SupraForCausalLM"]
    assert cfg["auto_map"] == {"AutoConfig": "configuration_supra.SupraConfig",
                               "AutoModelForCausalLM": "modeling_supra.SupraForCausalLM"}
    s = cfg["supra"]
    assert s["base_architecture"] == "LlamaForCausalLM" and s["decay"] == "reference"
    assert s["log_gamma"] == pytest.approx([-0.25, -0.0625, -0.015625, -0.00390625])
    assert s["feature_map"] == "separate_q_and_k" and s["state_shape"] == [2, 4, 16, 16]
    assert s["layer"]["group_norm"] == {"groups": 4, "eps": 1e-5, "affine": False, "dtype": "float32"}
    assert cfg["torch_dtype"] == "float32" and cfg["hidden_size"] == 64
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["bos_token_id"] == 1 and gen["eos_token_id"] == 2 and "_from_model_config" not in gen
    assert not leftovers(out.parent)


def test_tokenizer_files_are_copied(run_supra, tiny_model, tmp_path):
    src = tmp_path / "base"
    shutil.copytree(tiny_model("llama_mha_tied"), src)
    tok = {"tokenizer.json": '{"version": "1.0"}', "tokenizer_config.json": '{"model_max_length": 256}',
           "special_tokens_map.json": '{"bos_token": "<s>"}'}
    for name, text in tok.items():
        (src / name).write_text(text)
    (src / "tokenizer.model").write_bytes(b"\x00\x01sentencepiece")
    conv = tmp_path / "conv"
    assert run_supra("convert", "--model", src, "--out", conv).returncode == 0
    out = tmp_path / "out"
    proc = run_supra("export", "--checkpoint", conv, "--out", out)
    assert proc.returncode == 0, proc.stderr
    for name, text in tok.items():
        if name != "tokenizer_config.json":
            assert (out / name).read_text() == text
    # tokenizer_config.json: the base's settings, plus the standard class of the copied files (it named none).
    assert json.loads((out / "tokenizer_config.json").read_text()) == {"model_max_length": 256,
                                                                      "tokenizer_class": "PreTrainedTokenizerFast"}
    assert (out / "tokenizer.model").read_bytes() == b"\x00\x01sentencepiece"


# --------------------------------------------------------------------------------------------------------------
# Logits: transformers (remote code) == supra

LOGIT_CASES = [
    ("llama_gqa_untied", ()),  # separate key map
    ("llama_mha_tied", ("--qk-norm", "--chunk-size", "16")),  # shared map, tied head, qk-norm
    ("mistral_sliding", ("--decay", "retnet")),
    ("llama_mha_tied", ("--decay", "none", "--chunk-size", "16")),
    ("llama3_rope", ("--chunk-size", "16")),
    ("llama_linear_rope", ()),
    ("llama_head_dim", ()),  # head_dim != hidden / heads
]


@pytest.mark.parametrize("variant,opts", LOGIT_CASES, ids=[f"{v}{''.join(o)}" for v, o in LOGIT_CASES])
def test_hf_logits_equal_supra(variant, opts, convert, export, hf_load, supra_logits):
    src = convert(variant, *opts)
    out = export(src)
    model = hf_load(out)
    tokens = make_tokens(100, model.config.vocab_size, seed=5)  # crosses the chunk boundaries (16, 64)
    ref = supra_logits(src, tokens)
    got = hf_logits(model, tokens)
    assert rel_err(got, ref) <= TOL
    # and with the recurrent cache, prefill in one call
    with torch.no_grad():
        cached = model(torch.tensor([tokens]), use_cache=True).logits[0]
    assert rel_err(cached, ref) <= TOL


def test_stories260k_logits(run_supra, stories_bin, tmp_path, hf_load, supra_logits):
    conv = tmp_path / "conv"
    assert run_supra("convert", "--model", stories_bin, "--out", conv).returncode == 0
    out = tmp_path / "out"
    assert run_supra("export", "--checkpoint", conv, "--out", out).returncode == 0
    tokens = make_tokens(80, 512, seed=1)
    assert rel_err(hf_logits(hf_load(out), tokens), supra_logits(conv, tokens)) <= TOL


# --------------------------------------------------------------------------------------------------------------
# Generation with the recurrent cache


def test_greedy_generate_cache_equals_no_cache_and_argmax(convert, export, hf_load, supra_logits):
    src = convert("llama_gqa_untied", "--chunk-size", "16")
    model = hf_load(export(src))
    for seed, plen in ((0, 5), (1, 23)):
        prompt = make_tokens(plen, model.config.vocab_size, seed)
        ids = torch.tensor([prompt])
        with_cache = model.generate(ids, max_new_tokens=30, do_sample=False, use_cache=True)[0].tolist()
        without = model.generate(ids, max_new_tokens=30, do_sample=False, use_cache=False)[0].tolist()
        assert with_cache == without
        # greedy decoding by hand from full-sequence logits, computed by supra itself
        seq = list(prompt)
        for _ in range(30):
            seq.append(int(supra_logits(src, seq)[-1].argmax()))
        assert with_cache == seq


def test_prefill_then_decode_equals_full_forward(convert, export, hf_load):
    model = hf_load(export(convert("mistral_sliding", "--chunk-size", "16")))
    tokens = make_tokens(60, model.config.vocab_size, seed=3)
    full = hf_logits(model, tokens)
    with torch.no_grad():
        out = model(torch.tensor([tokens[:37]]), use_cache=True)
        cache, steps = out.past_key_values, [out.logits[0]]
        for t in tokens[37:]:
            out = model(torch.tensor([[t]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(out.logits[0])
    assert cache.get_seq_length() == 60
    assert rel_err(torch.cat(steps), full) <= 1e-5


def test_cache_size_does_not_grow(convert, export, hf_load):
    src = convert("llama_gqa_untied")
    model = hf_load(export(src))
    cfg = json.loads((src / "config.json").read_text())
    layers, heads, d, _ = cfg["supra"]["state_shape"]
    sizes = []
    for n in (4, 300):
        with torch.no_grad():
            cache = model(torch.tensor([make_tokens(n, 192)]), use_cache=True).past_key_values
        sizes.append(cache.nbytes())
        assert all(s.shape == (1, heads, d, d) and s.dtype == torch.float32 for s in cache.states)
    out = model.generate(torch.tensor([[1, 5, 7]]), max_new_tokens=40, do_sample=False,
                         return_dict_in_generate=True)
    sizes.append(out.past_key_values.nbytes())
    assert sizes == [layers * heads * d * d * 4] * 3


def test_left_padded_batch_equals_one_by_one(convert, export, hf_load):
    model = hf_load(export(convert("llama_mha_tied")))
    a, b = make_tokens(4, 192, 7), make_tokens(9, 192, 8)
    ids = torch.tensor([[0] * 5 + a, b])
    mask = torch.tensor([[0] * 5 + [1] * 4, [1] * 9])
    fed = matrix._Fed(model)
    batch = model.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert fed.take() == [9] + [1] * 11
    one_a = model.generate(torch.tensor([a]), max_new_tokens=12, do_sample=False)[0]
    one_b = model.generate(torch.tensor([b]), max_new_tokens=12, do_sample=False)[0]
    fed.close()
    assert batch[0, 5:].tolist() == one_a.tolist()
    assert batch[1].tolist() == one_b.tolist()
    # prefill + step without position_ids (as generate() of 4.x / 5.0 calls it): positions continue per sequence
    with torch.no_grad():
        out = model(ids, attention_mask=mask, use_cache=True)
        step = model(batch[:, 9:10], attention_mask=torch.cat([mask, torch.ones(2, 1, dtype=mask.dtype)], 1),
                     past_key_values=out.past_key_values, use_cache=True)
        alone = model(torch.tensor([a + [int(batch[0, 9])]]), use_cache=False)
    assert rel_err(step.logits[0, -1], alone.logits[0, -1]) <= 1e-5


# --------------------------------------------------------------------------------------------------------------
# transformers conventions, under the installed version (hf_version_matrix.py: the same under each claimed one)


@pytest.fixture(scope="module")
def export_with_tokenizer(run_supra, tiny_model, tmp_path_factory):
    """An export of llama_gqa_untied (chunk 4) whose base model has a standard tokenizer.json."""
    root = tmp_path_factory.mktemp("with_tok")
    base = root / "base"
    shutil.copytree(tiny_model("llama_gqa_untied"), base)
    matrix.write_tokenizer(base, 192)
    assert run_supra("convert", "--model", base, "--out", root / "conv", "--chunk-size", "4").returncode == 0
    proc = run_supra("export", "--checkpoint", root / "conv", "--out", root / "export")
    assert proc.returncode == 0, proc.stderr
    return root / "export"


def test_generate_feeds_one_token_per_decoding_step(convert, export, hf_load):
    """transformers >= 5.24 passes the cache as `cache=`: a model that reads only `past_key_values` re-runs the
    whole sequence each step (fed 10, 11, 12, ...) and still produces the right ids."""
    model = hf_load(export(convert("llama_gqa_untied", "--chunk-size", "4")))
    prompt = torch.tensor([make_tokens(10, 192, 11)])
    fed = matrix._Fed(model)
    ids = model.generate(prompt, max_new_tokens=8, do_sample=False)
    assert fed.take() == [10] + [1] * 7
    masked = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False)
    assert fed.take() == [10] + [1] * 7
    uncached = model.generate(prompt, max_new_tokens=8, do_sample=False, use_cache=False)
    assert fed.take() == list(range(10, 18))  # no state: every step reads the sequence, as for any model
    out = model.generate(prompt, max_new_tokens=4, do_sample=False, return_dict_in_generate=True)
    fed.take()
    name = "cache" if "cache" in out else "past_key_values"  # the installed version's name (no deprecation warning)
    continued = model.generate(out.sequences, **{name: out[name]}, max_new_tokens=4, do_sample=False)
    assert fed.take() == [1] * 4  # continuing from a returned cache reads only the new tokens
    fed.close()
    assert ids.tolist() == masked.tolist() == uncached.tolist() == continued.tolist()


def test_cache_under_every_name(convert, export, hf_load):
    """forward and prepare_inputs_for_generation take the cache as past_key_values=, cache= or cache_params=, and
    count new tokens from next_sequence_length (5.24+), cache_position (4.x, 5.0) or the state itself."""
    model = hf_load(export(convert("mistral_sliding", "--chunk-size", "4")))
    tokens = make_tokens(12, 192, 12)
    ids = torch.tensor([tokens])
    full = hf_logits(model, tokens)
    for name in ("past_key_values", "cache", "cache_params"):
        with torch.no_grad():
            out = model(ids[:, :7], use_cache=True)
            cache, steps = matrix._out_cache(out), [out.logits[0]]
            for t in range(7, 12):
                inputs = model.prepare_inputs_for_generation(ids[:, : t + 1], **{name: cache}, use_cache=True)
                assert inputs["input_ids"].tolist() == [[tokens[t]]], name
                out = model(ids[:, t : t + 1], use_cache=True, **{name: cache})
                assert matrix._out_cache(out) is cache
                steps.append(out.logits[0])
        assert rel_err(torch.cat(steps), full) <= 1e-5, name
        assert cache.get_seq_length() == 12
    seq = ids[:, :10]
    with torch.no_grad():
        cache = matrix._out_cache(model(seq[:, :8], use_cache=True))
    for extra in ({"next_sequence_length": 2}, {"cache_position": torch.arange(8, 10)}, {}):
        inputs = model.prepare_inputs_for_generation(seq, cache=cache, **extra)
        assert inputs["input_ids"].tolist() == [tokens[8:10]], extra
    assert model.prepare_inputs_for_generation(seq, cache=cache, use_cache=False)["input_ids"].shape[1] == 10
    with pytest.raises(ValueError, match="SupraCache"):
        model(ids, past_key_values=((torch.zeros(1), torch.zeros(1)),))


@pytest.mark.parametrize("variant,opts", [("llama_gqa_untied", ()), ("llama_mha_tied", ("--qk-norm",)),
                                          ("llama_gqa_untied", ("--max-shard-size", "100KB"))])
def test_weights_loaded_exactly(variant, opts, convert, export, hf_load):
    """Every tensor equals the safetensors: no `_init_weights` after loading (transformers 5.0 re-ran it on RMSNorm
    weights, which reset them to 1)."""
    from safetensors.torch import load_file

    conv_opts = tuple(o for o in opts if o == "--qk-norm")
    out = export(convert(variant, *conv_opts), *(o for o in opts if o not in conv_opts))
    stored = {}
    for f in out.glob("*.safetensors"):
        stored.update(load_file(str(f)))
    have = hf_load(out).state_dict()
    assert sorted(have) == sorted(stored)
    assert [k for k in have if not torch.equal(have[k], stored[k])] == []
    assert any("norm" in k and not torch.all(stored[k] == 1) for k in stored), "norm weights should differ from 1"


def test_from_config_initialises_every_weight(convert, export):
    """Without a checkpoint (from_config) the nn defaults are used: nothing left uninitialised."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(str(export(convert("llama_gqa_untied"))), trust_remote_code=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, trust_remote_code=True)
    for name, p in model.state_dict().items():
        assert torch.isfinite(p).all(), name
        if "norm" in name:
            assert torch.all(p == 1), name
    assert torch.isfinite(model(torch.tensor([[1, 5, 9]]), use_cache=False).logits).all()


def test_pipeline_text_generation(export_with_tokenizer, hf_load):
    from transformers import AutoTokenizer, pipeline

    model = hf_load(export_with_tokenizer)
    tok = AutoTokenizer.from_pretrained(str(export_with_tokenizer), trust_remote_code=False)
    pipe = pipeline("text-generation", model=model, tokenizer=tok)
    fed = matrix._Fed(model)
    res = pipe("w5 w17 w42 w9", max_new_tokens=6, do_sample=False, return_tensors=True)
    assert fed.take() == [4] + [1] * 5
    text = pipe("w5 w17 w42 w9", max_new_tokens=6, do_sample=False)[0]["generated_text"]
    fed.close()
    enc = tok("w5 w17 w42 w9", return_tensors="pt")
    want = model.generate(**enc, max_new_tokens=6, do_sample=False)[0].tolist()
    assert list(res[0]["generated_token_ids"]) == want
    assert text.startswith("w5 w17 w42 w9") and len(text) > len("w5 w17 w42 w9")


def test_tokenizer_loads_without_remote_code(export_with_tokenizer, monkeypatch):
    """The tokenizer files are the base model's standard ones: AutoTokenizer loads a transformers class without
    remote code and without prompting. (Without any trust_remote_code argument transformers 5 still reads
    config.json first and asks about its auto_map; hf_version_matrix.py reports that per version.)"""
    import builtins

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    prompts = []

    def no_input(text=""):
        prompts.append(text)
        raise EOFError

    monkeypatch.setattr(builtins, "input", no_input)
    tok = AutoTokenizer.from_pretrained(str(export_with_tokenizer), trust_remote_code=False)
    assert prompts == []
    assert type(tok).__module__.startswith("transformers."), type(tok)
    want = Tokenizer.from_file(str(export_with_tokenizer / "tokenizer.json")).encode("w5 w17 w191").ids
    assert tok("w5 w17 w191", add_special_tokens=False)["input_ids"] == want == [5, 17, 191]
    assert json.loads((export_with_tokenizer / "tokenizer_config.json").read_text())["tokenizer_class"]


def test_exported_tokenizer_config_names_a_standard_class(run_supra, tiny_model, tmp_path):
    """A base whose tokenizer_config.json names no tokenizer_class: transformers 4.x then reads config.json to find
    one, prompts about its remote code and fails. The export names the standard class of the files it copies."""
    base = tmp_path / "base"
    shutil.copytree(tiny_model("llama_mha_tied"), base)
    matrix.write_tokenizer(base, 192)
    (base / "tokenizer_config.json").write_text('{"model_max_length": 256}')
    assert run_supra("convert", "--model", base, "--out", tmp_path / "conv").returncode == 0
    assert run_supra("export", "--checkpoint", tmp_path / "conv", "--out", tmp_path / "out").returncode == 0
    cfg = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert cfg.get("tokenizer_class") == "PreTrainedTokenizerFast" and cfg["model_max_length"] == 256


def test_version_matrix_checks_pass_on_installed_version(export_with_tokenizer, supra_bin, tmp_path):
    """The checks scripts/tools/hf_version_matrix.py runs in each venv, here under the installed transformers,
    against `supra logits`."""
    ref, _ = matrix.make_reference(export_with_tokenizer, supra_bin, tmp_path)
    results = matrix.run_checks(export_with_tokenizer, ref)
    assert [r["name"] for r in results] == matrix.CHECKS
    failed = [f"{r['name']}: {r['detail']}" for r in results if not r["ok"]]
    assert failed == []


# --------------------------------------------------------------------------------------------------------------
# dtype, sharding, round trip


def test_bf16_export_loads(convert, export, hf_load, supra_logits):
    from safetensors import safe_open

    src = convert("llama_gqa_untied")
    out = export(src, "--dtype", "bf16")
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    model = hf_load(out, dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    tokens = make_tokens(40, 192, 2)
    got = hf_logits(model, tokens)
    assert torch.isfinite(got).all()
    assert rel_err(got, supra_logits(out, tokens, dtype="bf16")) <= 0.05  # bf16 rounding, different op orders
    assert rel_err(got, supra_logits(src, tokens)) <= 0.1
    gen = model.generate(torch.tensor([tokens[:5]]), max_new_tokens=8, do_sample=False)
    assert gen.shape == (1, 13)


def test_sharded_export_loads(convert, export, hf_load, supra_logits):
    src = convert("llama_gqa_untied")
    out = export(src, "--max-shard-size", "100KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 4 and not (out / "model.safetensors").exists()
    assert sorted(p.name for p in out.glob("model-*.safetensors")) == shards
    assert all((out / s).stat().st_size <= 100_000 + 20_000 for s in shards)  # + header
    tokens = make_tokens(30, 192, 4)
    ref = supra_logits(src, tokens)
    assert rel_err(hf_logits(hf_load(out), tokens), ref) <= TOL
    assert torch.equal(supra_logits(out, tokens), ref)


def test_round_trip_through_supra(convert, export, run_supra, supra_logits, tmp_path):
    src = convert("mistral_sliding", "--qk-norm")
    out = export(src)
    tokens = make_tokens(50, 192, 6)
    assert torch.equal(supra_logits(out, tokens), supra_logits(src, tokens)), "f32 export is lossless"
    info = run_supra("info", "--model", out)
    assert info.returncode == 0, info.stderr
    assert "SUPRA linear attention (decay reference, chunk 64, qk-norm)" in info.stdout
    assert "MistralForCausalLM" in info.stdout
    again = tmp_path / "again"
    proc = run_supra("export", "--checkpoint", out, "--out", again)  # an export is itself exportable
    assert proc.returncode == 0, proc.stderr
    assert (again / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()
    assert json.loads((again / "config.json").read_text()) == json.loads((out / "config.json").read_text())


def test_hf_save_pretrained_is_readable_by_supra(convert, export, hf_load, supra_logits, tmp_path):
    """transformers' own save of the loaded model (v5 rope_parameters spelling etc.) loads back into supra."""
    src = convert("llama3_rope", "--chunk-size", "16")
    model = hf_load(export(src))
    resaved = tmp_path / "resaved"
    model.save_pretrained(resaved)
    tokens = make_tokens(70, 192, 9)
    assert rel_err(supra_logits(resaved, tokens), supra_logits(src, tokens)) <= 1e-6


# --------------------------------------------------------------------------------------------------------------
# Training checkpoints


def test_export_training_checkpoint(run_supra, supra_bin, stories_bin, tmp_path, hf_load, supra_logits):
    conv = tmp_path / "conv"
    assert run_supra("convert", "--model", stories_bin, "--out", conv).returncode == 0
    data = tmp_path / "data"
    proc = run_supra("data", "sample", "--model", stories_bin, "--out", data, "--docs", "16", "--max-tokens", "40",
                     "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    run = tmp_path / "run"
    proc = subprocess.run(
        [supra_bin, "train", "--model.path", str(conv), "--data.dir", str(data), "--data.seq_len", "32",
         "--data.eval_samples", "2", "--train.steps", "3", "--train.global_batch", "2", "--train.micro_batch", "2",
         "--train.device", "cpu", "--train.num_threads", "1", "--run.out_dir", str(run), "--run.save_every", "3",
         "--run.eval_every", "0", "--run.eval_batches", "1", "--optim.warmup_steps", "1"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    step = run / "checkpoints" / "step_00000003"
    assert step.is_dir()
    # The base model's tokenizer, found through the run's recorded model path.
    (conv / "tokenizer.model").write_bytes(b"spm")
    tokens = make_tokens(30, 512, 3)
    ref = supra_logits(step, tokens)
    assert not torch.equal(ref, supra_logits(conv, tokens)), "training changed the model"
    for i, given in enumerate((step, run, run / "checkpoints")):  # the step, the run (latest), checkpoints/
        out = tmp_path / f"out{i}"
        proc = run_supra("export", "--checkpoint", given, "--out", out)
        assert proc.returncode == 0, proc.stderr
        assert (out / "tokenizer.model").read_bytes() == b"spm"
        assert not (out / "optimizer.pt").exists() and not (out / "trainer_state.json").exists()
        assert rel_err(hf_logits(hf_load(out), tokens), ref) <= TOL


# --------------------------------------------------------------------------------------------------------------
# Refusals


def test_refusals(convert, run_supra, tiny_model, tmp_path):
    src = convert("llama_gqa_untied")
    line = assert_one_line_error(run_supra("export", "--checkpoint", tmp_path / "missing", "--out", tmp_path / "o1"))
    assert "missing" in line and "no such file" in line
    assert not (tmp_path / "o1").exists()

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    line = assert_one_line_error(run_supra("export", "--checkpoint", src, "--out", existing))
    assert "not empty" in line and "--force" in line
    assert sorted(p.name for p in existing.iterdir()) == ["keep.txt"]

    line = assert_one_line_error(run_supra("export", "--checkpoint", tiny_model("llama_gqa_untied"),
                                           "--out", tmp_path / "o2"))
    assert "not a SUPRA model" in line and "supra convert" in line
    assert not (tmp_path / "o2").exists()

    for bad in ("5XB", "GB", "-1", "0"):
        line = assert_one_line_error(run_supra("export", "--checkpoint", src, "--out", tmp_path / "o3",
                                               "--max-shard-size", bad))
        assert "--max-shard-size" in line
    assert not (tmp_path / "o3").exists()

    proc = run_supra("export", "--checkpoint", src, "--out", src, "--force")
    line = assert_one_line_error(proc)
    assert "is the checkpoint being exported" in line
    assert leftovers(tmp_path) == [] and leftovers(src.parent) == []


def test_force_replaces_only_when_complete(convert, run_supra, tmp_path):
    src = convert("llama_mha_tied")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    proc = run_supra("export", "--checkpoint", src, "--out", out, "--force")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "old.txt").exists() and (out / "model.safetensors").exists()
    assert leftovers(tmp_path) == []
    # An empty folder is fine without --force.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_supra("export", "--checkpoint", src, "--out", empty).returncode == 0
