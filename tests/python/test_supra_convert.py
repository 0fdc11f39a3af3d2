"""`supra convert`: the converted SUPRA checkpoint, and `supra logits` on it against an independent reference.

The reference is scripts/reference/supra_reference.py: the naive O(T^2) form of docs/method.md (§2, §3) in float64,
written without reading the C++ attention code. fp32 check: relative error max|supra - ref| / max|ref| <= 1e-5.

stories260K with its random feature maps is numerically ill-conditioned at step 0 (GroupNorm over heads whose
outputs come from cancelling sums): perturbing its fp32 weights by one rounding unit, or running the same naive
reference in float32, already moves its logits by ~1e-5 relative. For that model the bound is
max(1e-5, 4 x that measured fp32 noise floor); the tiny random models (noise floor ~1e-7) use 1e-5 as is.

Also checked: every original tensor is kept bit-identical, exactly the feature maps are added (names, shapes,
parameter count, which scripts/tools/memory_plan.py must reproduce), nn.Linear-default initialisation, --seed
determinism, the decay written to config.json (ALiBi slopes incl. the non-power-of-two extension, retnet, none),
refusals (exit 2, one stderr line, nothing written) and `supra info` on a converted folder.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import memory_plan
import supra_reference as ref

F32_TOL = 1e-5
STORIES_FLOOR_FACTOR = 4.0


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def make_tokens(n: int, vocab: int, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return [1] + torch.randint(3, vocab, (n - 1,), generator=g).tolist()


def read_config(d: Path) -> dict:
    return json.loads((Path(d) / "config.json").read_text())


def load_all(d: Path) -> dict[str, torch.Tensor]:
    return ref._load_tensors(str(d))


def file_snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(Path(d).rglob("*")) if p.is_file()}


def assert_one_line_error(proc) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, f"exit code {proc.returncode}, expected 2; stderr: {proc.stderr!r}"
    assert len(lines) == 1 and lines[0].strip(), f"stderr must be exactly one non-empty line, got {proc.stderr!r}"
    return lines[0]


# --------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module", autouse=True)
def _single_thread():
    """The reference's matrices are tiny: with 2 intra-op threads on a loaded 2-core machine, thread hand-offs
    make each forward ~100x slower than with one. Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def convert(run_supra, tmp_path_factory):
    """convert(src, *opts) -> converted folder (cached per (src, opts) for the module)."""
    cache: dict[tuple, Path] = {}

    def conv(src, *opts: str) -> Path:
        key = (str(src), tuple(map(str, opts)))
        if key not in cache:
            out = tmp_path_factory.mktemp("supra_convert") / "out"
            proc = run_supra("convert", "--model", src, "--out", out, *opts)
            assert proc.returncode == 0, f"supra convert {src} {' '.join(key[1])} failed: {proc.stderr.strip()}"
            assert (out / "config.json").is_file(), f"no config.json in {out}"
            cache[key] = out
        return cache[key]

    return conv


@pytest.fixture(scope="module")
def llama_h3(tmp_path_factory) -> Path:
    """A tiny random Llama with a non-power-of-two head count: H = 3 query heads sharing one kv head (r = 3)."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(
        hidden_size=48,
        num_attention_heads=3,
        num_key_value_heads=1,
        head_dim=16,
        num_hidden_layers=2,
        vocab_size=128,
        intermediate_size=96,
        max_position_embeddings=256,
        initializer_range=0.1,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(3)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).eval()
    out = tmp_path_factory.mktemp("llama_h3")
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def source(tiny_model, stories_bin_opt, stories_hf_opt, llama_h3):
    """source(name) -> the input of `supra convert` for a named test model."""

    def get(name: str):
        if name == "stories260K":
            if stories_bin_opt is None:
                pytest.skip("stories260K not found (set SUPRA_SHARED_DIR to the shared folder)")
            return stories_bin_opt
        if name == "stories260K_hf":
            if stories_hf_opt is None:
                pytest.skip("stories260K not found (set SUPRA_SHARED_DIR to the shared folder)")
            return stories_hf_opt
        if name == "llama_h3":
            return llama_h3
        return tiny_model(name)

    return get


@pytest.fixture(scope="module")
def stories_bin_opt(shared_dir):
    p = shared_dir / "models" / "stories260K" / "stories260K.bin"
    return p if p.is_file() else None


@pytest.fixture(scope="module")
def stories_hf_opt(stories_bin_opt, tmp_path_factory):
    if stories_bin_opt is None:
        return None
    import llama2c_to_hf

    out = tmp_path_factory.mktemp("stories260K_hf_conv")
    llama2c_to_hf.convert(str(stories_bin_opt), str(out))
    return out


def hf_dir_of(name: str, source) -> Path:
    """The HF checkpoint whose tensors the converted model must keep (stories: its HF conversion)."""
    return Path(source("stories260K_hf" if name == "stories260K" else name))


def fp32_noise_floor(m: ref.SupraModel, tokens: list[int], exact: torch.Tensor) -> float:
    """How far fp32 rounding alone moves this model's logits: the max of (a) the same naive reference run in
    float32 and (b) float64 runs with every weight perturbed by ~1 fp32 rounding unit (two draws)."""
    errs = [rel_err(ref.forward(m, tokens, torch.float32), exact)]
    saved = m.tensors
    try:
        for seed in (101, 102):
            g = torch.Generator().manual_seed(seed)
            m.tensors = {
                k: v * (1 + 2.0**-24 * torch.randn(v.shape, generator=g, dtype=torch.float64))
                for k, v in saved.items()
            }
            errs.append(rel_err(ref.forward(m, tokens), exact))
    finally:
        m.tensors = saved
    return max(errs)


# --------------------------------------------------------------------------------------------------------------
# Logits against the reference

LOGIT_CASES = [
    # (model, convert options, number of tokens)
    ("stories260K", (), 100),  # GQA 8/4, tied head; 100 tokens cross the default chunk boundary (64)
    ("mistral_sliding", (), 100),  # GQA, separate key map; window 8 must no longer apply
    ("mistral_sliding", ("--chunk-size", "16"), 40),
    ("llama_mha_tied", (), 40),  # shared feature map, tied head
    ("llama_mha_tied", ("--chunk-size", "16"), 100),
    ("mistral_sliding", ("--decay", "retnet"), 100),
    ("llama_mha_tied", ("--decay", "retnet"), 40),
    ("mistral_sliding", ("--decay", "none"), 40),
    ("llama_mha_tied", ("--decay", "none"), 100),
    ("mistral_sliding", ("--qk-norm",), 100),
    ("llama_mha_tied", ("--qk-norm",), 40),
    ("llama_h3", (), 100),  # H = 3: ALiBi extension, kv head repeated 3 times
    ("llama3_rope", ("--chunk-size", "16"), 100),  # llama3 RoPE scaling, positions past original 64
]


@pytest.mark.parametrize(
    "name,opts,n", LOGIT_CASES, ids=[f"{m}{''.join(o).replace('--', '-')}-T{n}" for m, o, n in LOGIT_CASES]
)
def test_logits_match_reference(name, opts, n, source, convert, supra_logits):
    out = convert(source(name), *opts)
    m = ref.load_supra(str(out))  # also checks config log_gamma against the method document
    tokens = make_tokens(n, int(m.config["vocab_size"]), seed=n)
    got = supra_logits(out, tokens)
    exact = ref.forward(m, tokens)
    assert torch.isfinite(got).all()
    err = rel_err(got, exact)
    tol = F32_TOL
    ctx = f"{name} {' '.join(opts)} T={n}: supra vs float64 reference rel err {err:.3e}"
    if name == "stories260K":
        floor = fp32_noise_floor(m, tokens, exact)
        tol = max(F32_TOL, STORIES_FLOOR_FACTOR * floor)
        ctx += f" (fp32 noise floor of this model {floor:.3e})"
    assert err <= tol, f"{ctx} > {tol:.1e}"


def test_reference_sensitivity(source, convert):
    """Guard the reference itself: decay, RoPE and the feature maps all change its logits."""
    m = ref.load_supra(str(convert(source("mistral_sliding"))))
    tokens = make_tokens(40, int(m.config["vocab_size"]))
    base = ref.forward(m, tokens)
    lg = m.log_gamma
    m.log_gamma = torch.zeros_like(lg)
    assert rel_err(ref.forward(m, tokens), base) > 1e-3
    m.log_gamma = lg
    inv = m.inv_freq
    m.inv_freq = torch.zeros_like(inv)
    assert rel_err(ref.forward(m, tokens), base) > 1e-3
    m.inv_freq = inv
    assert rel_err(ref.forward(m, tokens), base) == 0.0


# --------------------------------------------------------------------------------------------------------------
# The converted checkpoint

CKPT_MODELS = ["stories260K", "mistral_sliding", "llama_mha_tied", "llama_h3"]


@pytest.mark.parametrize("name", CKPT_MODELS)
def test_original_tensors_kept_and_only_feature_maps_added(name, source, convert):
    out = convert(source(name))
    orig = load_all(hf_dir_of(name, source))
    conv = load_all(out)
    cfg = read_config(hf_dir_of(name, source))
    L = cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    Hkv = cfg.get("num_key_value_heads") or H
    d = cfg.get("head_dim") or cfg["hidden_size"] // H
    gqa = H != Hkv

    added = {}
    for i in range(L):
        p = f"model.layers.{i}.self_attn."
        added[p + "feature_map_q.weight"] = (H * d, H * d)
        added[p + "feature_map_q.bias"] = (H * d,)
        if gqa:
            added[p + "feature_map_k.weight"] = (Hkv * d, Hkv * d)
            added[p + "feature_map_k.bias"] = (Hkv * d,)
    assert set(conv) == set(orig) | set(added), (
        f"extra: {sorted(set(conv) - set(orig) - set(added))}, missing: {sorted((set(orig) | set(added)) - set(conv))}"
    )
    for k, t in orig.items():
        assert conv[k].dtype == t.dtype and torch.equal(conv[k], t), f"{k} changed by the conversion"
    for k, shape in added.items():
        assert tuple(conv[k].shape) == shape, f"{k}: shape {tuple(conv[k].shape)}, expected {shape}"
        assert conv[k].dtype == torch.float32

    n_orig = sum(t.numel() for t in orig.values())
    n_conv = sum(t.numel() for t in conv.values())
    extra = L * ((H * d) ** 2 + H * d) + (L * ((Hkv * d) ** 2 + Hkv * d) if gqa else 0)
    assert n_conv == n_orig + extra
    assert memory_plan.parameter_count(cfg) == n_conv, "scripts/tools/memory_plan.py counts another model"


@pytest.mark.parametrize("name", CKPT_MODELS)
def test_converted_config(name, source, convert):
    out = convert(source(name))
    base = read_config(hf_dir_of(name, source))
    cfg = read_config(out)
    assert cfg["model_type"] == "supra"
    assert cfg["architectures"] == ["SupraForCausalLM"]
    for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size",
              "rms_norm_eps"):
        assert cfg[k] == base[k], f"{k}: {cfg[k]!r} != base {base[k]!r}"
    H = base["num_attention_heads"]
    Hkv = base.get("num_key_value_heads") or H
    d = base.get("head_dim") or base["hidden_size"] // H
    assert (cfg.get("num_key_value_heads") or H) == Hkv
    assert (cfg.get("head_dim") or cfg["hidden_size"] // H) == d
    assert bool(cfg.get("tie_word_embeddings", False)) == bool(base.get("tie_word_embeddings", False))
    s = cfg["supra"]
    assert s["format_version"] == 1
    assert s["base_architecture"] == base["architectures"][0]
    assert s["base_model_type"] == base["model_type"]
    assert s["decay"] == "reference" and s["qk_norm"] is False and s["chunk_size"] == 64
    assert s["feature_map"] == ("separate_q_and_k" if H != Hkv else "shared_q_k")
    assert s["state_shape"] == [base["num_hidden_layers"], H, d, d]
    assert len(s["log_gamma"]) == H


@pytest.mark.parametrize("opts,key,value", [
    (("--qk-norm",), "qk_norm", True),
    (("--chunk-size", "16"), "chunk_size", 16),
    (("--decay", "retnet"), "decay", "retnet"),
    (("--decay", "none"), "decay", "none"),
])
def test_config_options(opts, key, value, source, convert):
    cfg = read_config(convert(source("llama_mha_tied"), *opts))
    assert cfg["supra"][key] == value


def _feature_maps(d: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_all(d).items() if ".feature_map_" in k}


@pytest.mark.parametrize("name", ["mistral_sliding", "llama_mha_tied", "stories260K"])
def test_feature_map_init_is_nn_linear_default(name, source, convert):
    maps = _feature_maps(convert(source(name)))
    assert maps
    bias_u = []
    for k, w in maps.items():
        if not k.endswith(".weight"):
            continue
        fan_in = w.shape[1]
        bound = 1.0 / math.sqrt(fan_in)
        b = maps[k[: -len("weight")] + "bias"]
        assert b.shape == (w.shape[0],)
        u = w.double().flatten() / bound  # should be U(-1, 1)
        assert u.abs().max().item() <= 1.0, f"{k}: max |w| {w.abs().max():.4g} > 1/sqrt({fan_in})"
        assert b.abs().max().item() <= bound, f"{k[:-7]}.bias exceeds 1/sqrt({fan_in})"
        std = u.std().item()
        assert abs(std - 1 / math.sqrt(3)) <= 0.1 / math.sqrt(3), f"{k}: std {std * bound:.4g}, expected ~{bound / math.sqrt(3):.4g}"
        assert u.numel() >= 1024 and abs(u.mean().item()) <= 0.06, f"{k}: mean {u.mean().item():.3f} (in units of the bound) not ~0"
        hist = torch.histc(u, bins=4, min=-1, max=1) / u.numel()  # each quarter ~25%
        assert (hist - 0.25).abs().max().item() <= 0.05, f"{k}: not uniform, quartile fractions {hist.tolist()}"
        bias_u.append(b.double() / bound)
    ub = torch.cat(bias_u)
    std = ub.std().item()
    assert abs(std - 1 / math.sqrt(3)) <= 0.1 / math.sqrt(3), f"biases: normalised std {std:.3f}, expected 0.577"
    # independent draws per layer
    layer_q = [w for k, w in sorted(maps.items()) if k.endswith("feature_map_q.weight")]
    assert all(not torch.equal(layer_q[0], w) for w in layer_q[1:])


def test_seed_determinism(source, convert):
    src = source("mistral_sliding")
    a = convert(src)
    a2 = convert(src, "--seed", "0")  # explicit default: a separate run
    b = convert(src, "--seed", "7")
    assert a != a2
    for f in ("model.safetensors", "config.json"):
        assert (a / f).read_bytes() == (a2 / f).read_bytes(), f"same seed, different {f}"
    ma, mb = _feature_maps(a), _feature_maps(b)
    assert set(ma) == set(mb)
    for k in ma:
        assert not torch.equal(ma[k], mb[k]), f"--seed 7 gives the same {k} as seed 0"
    ta, tb = load_all(a), load_all(b)
    for k in ta:
        if k not in ma:
            assert torch.equal(ta[k], tb[k])


# --------------------------------------------------------------------------------------------------------------
# Decay


def test_stories_log_gamma_is_alibi(source, convert):
    cfg = read_config(convert(source("stories260K")))
    H = cfg["num_attention_heads"]
    assert H == 8
    expected = [-(2.0 ** (-8.0 * (h + 1) / H)) for h in range(H)]
    got = cfg["supra"]["log_gamma"]
    assert len(got) == H and max(abs(a - b) for a, b in zip(got, expected)) <= 1e-7, got


def test_converted_log_gamma_non_power_of_two(source, convert):
    got = read_config(convert(source("llama_h3")))["supra"]["log_gamma"]
    expected = [-(2.0**-4), -(2.0**-8), -(2.0**-2)]
    assert max(abs(a - b) for a, b in zip(got, expected)) <= 1e-7 and len(got) == 3, got


@pytest.mark.parametrize("kind", ["retnet", "none"])
def test_converted_log_gamma_options(kind, source, convert):
    got = read_config(convert(source("mistral_sliding"), "--decay", kind))["supra"]["log_gamma"]
    H = 4
    expected = [math.log(1 - 2.0 ** (-5 - h)) for h in range(H)] if kind == "retnet" else [0.0] * H
    assert len(got) == H and max(abs(a - b) for a, b in zip(got, expected)) <= 1e-7, got


def test_alibi_slopes_method_doc_examples():
    assert ref.alibi_slopes(3) == [2.0**-4, 2.0**-8, 2.0**-2]
    assert ref.alibi_slopes(8) == [2.0 ** -(h + 1) for h in range(8)]
    assert ref.alibi_slopes(1) == [2.0**-8]
    # H = 9 (SmolLM2-135M): the 8 power-of-two slopes, then slope 0 of the 16-head list (2^-0.5)
    assert ref.alibi_slopes(9) == [2.0 ** -(h + 1) for h in range(8)] + [2.0**-0.5]
    gamma = [math.exp(-s) for s in ref.alibi_slopes(32)]
    assert round(gamma[0], 4) == 0.4313 and round(gamma[31], 5) == 0.99610
    assert all(a < b for a, b in zip(gamma, gamma[1:]))
    assert ref.decay_log_gamma("reference", 32) == [-s for s in ref.alibi_slopes(32)]
    assert ref.decay_log_gamma("none", 4) == [0.0] * 4
    assert ref.decay_log_gamma("retnet", 2) == pytest.approx([math.log(1 - 2**-5), math.log(1 - 2**-6)], rel=1e-15)


# --------------------------------------------------------------------------------------------------------------
# Refusals and info


def test_refuses_already_converted(source, convert, run_supra, tmp_path):
    out = tmp_path / "again"
    proc = run_supra("convert", "--model", convert(source("llama_mha_tied")), "--out", out)
    assert_one_line_error(proc)
    assert not out.exists()


def test_refuses_non_empty_out(source, run_supra, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    (out / "config.json").write_text('{"model_type": "llama"}\n')
    before = file_snapshot(out)
    proc = run_supra("convert", "--model", source("llama_mha_tied"), "--out", out)
    assert_one_line_error(proc)
    assert file_snapshot(out) == before, "the existing --out folder was modified"


def test_empty_out_is_accepted(source, run_supra, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    proc = run_supra("convert", "--model", source("llama_mha_tied"), "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert read_config(out)["model_type"] == "supra"


def test_refuses_unknown_architecture(source, run_supra, tmp_path):
    src = tmp_path / "gpt2"
    shutil.copytree(source("llama_mha_tied"), src)
    cfg = read_config(src)
    cfg["model_type"] = "gpt2"
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (src / "config.json").write_text(json.dumps(cfg, indent=2))
    out = tmp_path / "out"
    proc = run_supra("convert", "--model", src, "--out", out)
    assert_one_line_error(proc)
    assert not out.exists()


@pytest.mark.parametrize("name", ["mistral_sliding", "stories260K"])
def test_info_on_converted(name, source, convert, run_supra):
    out = convert(source(name))
    proc = run_supra("info", "--model", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    n = sum(t.numel() for t in load_all(out).values())
    assert str(n) in proc.stdout, f"info does not report the converted parameter count {n}:\n{proc.stdout}"
