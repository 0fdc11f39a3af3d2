"""Import of the published reference format: OpenLM folders (model_type "openlm", TRI-ML/mistral-supra layout).

A small synthetic checkpoint in that layout is made from a tiny converted model by renaming (and fusing) its
tensors the way TRI-ML/linear_open_lm names them (HF wrapper prefix "model."):
    tok_embeddings, layers.N.attention_norm / ffn_norm, attention.in_proj = [q; k; v], attention.out_proj,
    attention._totrain_embed (φ_q) / _totrain_embed_kv (φ_k, GQA only), feed_forward.w12 = [gate; up],
    feed_forward.w3 (down), norm, output
with a config of OpenLM `Params` names (dim, n_layers, n_heads, n_heads_kv, norm_type, attn_name, use_decay, …).

Checked: `supra logits` on the OpenLM folder equals the converted model exactly (safetensors and
pytorch_model.bin, single and sharded), and equals an independent float64 forward written in OpenLM's own terms
(fused projections split as OpenLM splits them, chunk(2) of w12, GroupNorm); decays (use_decay,
use_retnet_slopes); `supra info` and `supra export` accept the folder (HF logits match); unsupported options are
refused with one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

F64 = torch.float64


def make_tokens(n: int, vocab: int, seed: int = 0) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return [1] + torch.randint(3, vocab, (n - 1,), generator=g).tolist()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def to_openlm(converted: Path, out: Path, fmt: str = "safetensors", shards: int = 1, **config_overrides) -> Path:
    """Writes `converted` (a `supra convert` folder) in the OpenLM layout."""
    cfg = json.loads((converted / "config.json").read_text())
    t = load_file(str(converted / "model.safetensors"))
    H, Hkv, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    s = cfg["supra"]
    o = {"model.tok_embeddings.weight": t["model.embed_tokens.weight"], "model.norm.weight": t["model.norm.weight"]}
    if not cfg["tie_word_embeddings"]:
        o["model.output.weight"] = t["lm_head.weight"]
    for i in range(L):
        a, b = f"model.layers.{i}.", f"model.layers.{i}."
        o[b + "attention_norm.weight"] = t[a + "input_layernorm.weight"]
        o[b + "ffn_norm.weight"] = t[a + "post_attention_layernorm.weight"]
        o[b + "attention.in_proj.weight"] = torch.cat(
            [t[a + "self_attn.q_proj.weight"], t[a + "self_attn.k_proj.weight"], t[a + "self_attn.v_proj.weight"]])
        o[b + "attention.out_proj.weight"] = t[a + "self_attn.o_proj.weight"]
        o[b + "attention._totrain_embed.weight"] = t[a + "self_attn.feature_map_q.weight"]
        o[b + "attention._totrain_embed.bias"] = t[a + "self_attn.feature_map_q.bias"]
        if H != Hkv:
            o[b + "attention._totrain_embed_kv.weight"] = t[a + "self_attn.feature_map_k.weight"]
            o[b + "attention._totrain_embed_kv.bias"] = t[a + "self_attn.feature_map_k.bias"]
        o[b + "feed_forward.w12.weight"] = torch.cat([t[a + "mlp.gate_proj.weight"], t[a + "mlp.up_proj.weight"]])
        o[b + "feed_forward.w3.weight"] = t[a + "mlp.down_proj.weight"]
    config = {
        "architectures": ["OpenLMForCausalLM"],
        "model_type": "openlm",
        "dim": cfg["hidden_size"],
        "n_layers": L,
        "n_heads": H,
        "n_heads_kv": Hkv,
        "vocab_size": cfg["vocab_size"],
        "norm_eps": cfg["rms_norm_eps"],
        "seq_len": cfg["max_position_embeddings"],
        "post_embed_norm": False,
        "weight_tying": cfg["tie_word_embeddings"],
        "norm_type": "rms_norm",
        "attn_name": "linear_attn",
        "apply_qk_norm": False,
        "ffn_type": "swiglu",
        "positional_embedding_type": "rotary",
        "intermediate_dim_ffn": cfg["intermediate_size"],
        "qk_head_dim": cfg["head_dim"],
        "v_head_dim": cfg["head_dim"],
        "use_decay": s["decay"] != "none",
        "use_retnet_slopes": s["decay"] == "retnet",
        "decay_start": None,
        "rotary_base_frequency": cfg["rope_theta"],
        "bos_token_id": cfg.get("bos_token_id"),
        "eos_token_id": cfg.get("eos_token_id"),
        "torch_dtype": "float32",
    }
    config.update(config_overrides)
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    names = list(o)
    parts = [names[k::shards] for k in range(shards)]
    stem, ext = ("model", "safetensors") if fmt == "safetensors" else ("pytorch_model", "bin")
    files = [f"{stem}.{ext}"] if shards == 1 else [f"{stem}-{k + 1:05d}-of-{shards:05d}.{ext}" for k in range(shards)]
    for f, part in zip(files, parts):
        sub = {n: o[n].contiguous() for n in part}
        if fmt == "safetensors":
            save_file(sub, str(out / f), metadata={"format": "pt"})
        else:
            torch.save(sub, str(out / f))
    if shards > 1:
        index = {"metadata": {}, "weight_map": {n: files[k] for k, part in enumerate(parts) for n in part}}
        (out / f"{stem}.{ext}.index.json").write_text(json.dumps(index))
    return out


def openlm_forward(folder: Path, tokens: list[int]) -> torch.Tensor:
    """float64 forward in OpenLM's terms (open_lm/model.py: Block, LinearAttn, SwiGLU, RmsNorm), naive form."""
    cfg = json.loads((folder / "config.json").read_text())
    t = {k.removeprefix("model."): v.to(F64) for k, v in load_file(str(folder / "model.safetensors")).items()}
    D, H, Hkv, eps = cfg["dim"], cfg["n_heads"], cfg["n_heads_kv"], cfg["norm_eps"]
    d = D // H
    T = len(tokens)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    if cfg["use_decay"]:
        if cfg["use_retnet_slopes"]:
            slopes = [-math.log(1 - 2.0 ** (-5 - h)) for h in range(H)]
        else:  # lightning-attention slopes for a power-of-two H: ratio^(h+1), ratio = 2^(-2^-(log2 H - 3))
            ratio = 2 ** (-(2 ** -(math.log2(H) - 3)))
            slopes = [ratio ** (h + 1) for h in range(H)]
    else:
        slopes = [0.0] * H
    pos = torch.arange(T, dtype=F64)
    rel = pos.view(T, 1) - pos.view(1, T)
    decay = torch.stack([torch.where(rel >= 0, torch.exp(-s * rel.clamp(min=0)), torch.zeros(())) for s in slopes])
    inv_freq = 1.0 / (cfg["rotary_base_frequency"] ** (torch.arange(0, d, 2, dtype=F64) / d))
    freqs = torch.einsum("i,j->ij", pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]  # [T, 1, d] for x [T, H, d]

    def rope(x):
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin

    x = t["tok_embeddings.weight"][torch.tensor(tokens)]
    for i in range(cfg["n_layers"]):
        p = f"layers.{i}."
        h = rms(x, t[p + "attention_norm.weight"])
        q0, k0, v = (h @ t[p + "attention.in_proj.weight"].T).split([H * d, Hkv * d, Hkv * d], dim=-1)
        q = torch.relu(q0 @ t[p + "attention._totrain_embed.weight"].T + t[p + "attention._totrain_embed.bias"])
        key_map = "attention._totrain_embed_kv" if H != Hkv else "attention._totrain_embed"
        k = torch.relu(k0 @ t[p + key_map + ".weight"].T + t[p + key_map + ".bias"])
        q, k, v = q.view(T, H, d), k.view(T, Hkv, d), v.view(T, Hkv, d)
        k, v = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
        q, k = rope(q), rope(k)
        scores = torch.einsum("ihd,jhd->hij", q, k / math.sqrt(d)) * decay
        o = torch.einsum("hij,jhd->ihd", scores, v)
        o = (o - o.mean(-1, keepdim=True)) / torch.sqrt(o.var(-1, unbiased=False, keepdim=True) + 1e-5)
        x = x + o.reshape(T, H * d) @ t[p + "attention.out_proj.weight"].T
        h = rms(x, t[p + "ffn_norm.weight"])
        gate, up = (h @ t[p + "feed_forward.w12.weight"].T).chunk(2, dim=-1)
        x = x + (torch.nn.functional.silu(gate) * up) @ t[p + "feed_forward.w3.weight"].T
    x = rms(x, t["norm.weight"])
    head = t["tok_embeddings.weight"] if cfg["weight_tying"] else t["output.weight"]
    return x @ head.T


# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def convert(run_supra, tiny_model, tmp_path_factory):
    cache: dict[tuple, Path] = {}

    def conv(variant: str, *opts: str) -> Path:
        key = (variant, opts)
        if key not in cache:
            out = tmp_path_factory.mktemp("conv") / variant
            proc = run_supra("convert", "--model", tiny_model(variant), "--out", out, *opts)
            assert proc.returncode == 0, proc.stderr
            cache[key] = out
        return cache[key]

    return conv


CASES = [
    ("llama_gqa_untied", ()),  # GQA: separate key map _totrain_embed_kv
    ("llama_mha_tied", ()),  # one shared map, weight tying
    ("llama_gqa_untied", ("--decay", "retnet")),
    ("llama_mha_tied", ("--decay", "none")),
]


@pytest.mark.parametrize("variant,opts", CASES, ids=[f"{v}{''.join(o)}" for v, o in CASES])
def test_openlm_logits_equal_converted_and_reference(variant, opts, convert, supra_logits, tmp_path):
    conv = convert(variant, *opts)
    folder = to_openlm(conv, tmp_path / "openlm")
    tokens = make_tokens(90, 192, 1)
    ref = supra_logits(conv, tokens)
    got = supra_logits(folder, tokens)
    assert torch.equal(got, ref), "the imported model is the same model"
    assert rel_err(got, openlm_forward(folder, tokens)) <= 1e-5


@pytest.mark.parametrize("fmt,shards", [("bin", 1), ("bin", 3), ("safetensors", 3)])
def test_weight_file_formats(fmt, shards, convert, supra_logits, tmp_path):
    conv = convert("llama_gqa_untied")
    folder = to_openlm(conv, tmp_path / "openlm", fmt=fmt, shards=shards)
    tokens = make_tokens(20, 192, 2)
    assert torch.equal(supra_logits(folder, tokens), supra_logits(conv, tokens))


def test_info_and_export(convert, run_supra, supra_logits, tmp_path):
    from transformers import AutoModelForCausalLM

    conv = convert("llama_gqa_untied")
    folder = to_openlm(conv, tmp_path / "openlm")
    (folder / "tokenizer.json").write_text("{}")
    info = run_supra("info", "--model", folder)
    assert info.returncode == 0, info.stderr
    assert "(openlm)" in info.stdout and "SUPRA linear attention (decay reference" in info.stdout
    out = tmp_path / "exported"
    proc = run_supra("export", "--checkpoint", folder, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "tokenizer.json").read_text() == "{}"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "supra" and cfg["supra"]["base_architecture"] == "MistralForCausalLM"
    tokens = make_tokens(40, 192, 3)
    model = AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=True, dtype=torch.float32).eval()
    with torch.no_grad():
        hf = model(torch.tensor([tokens]), use_cache=False).logits[0]
    assert rel_err(hf, supra_logits(conv, tokens)) <= 1e-4


REFUSED = [
    ({"apply_qk_norm": True}, "apply_qk_norm"),
    ({"decay_start": 0.5}, "decay_start"),
    ({"attn_name": "torch_attn"}, "attn_name"),
    ({"norm_type": "gain_only_lp_layer_norm"}, "norm_type"),
    ({"positional_embedding_type": "llama_rotary"}, "positional_embedding_type"),
    ({"qk_head_dim": 8}, "qk_head_dim"),
    ({"moe_freq": 2}, "moe"),
]


@pytest.mark.parametrize("override,word", REFUSED, ids=[w for _, w in REFUSED])
def test_unsupported_options_are_refused(override, word, convert, run_supra, tmp_path):
    folder = to_openlm(convert("llama_gqa_untied"), tmp_path / "openlm", **override)
    proc = run_supra("logits", "--model", folder, "--tokens", "1,2,3", "--out", tmp_path / "l.safetensors")
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "OpenLM" in lines[0] and word in lines[0] and "config.json" in lines[0]


def test_unexpected_and_missing_tensors_are_refused(convert, run_supra, tmp_path):
    folder = to_openlm(convert("llama_gqa_untied"), tmp_path / "openlm")
    t = load_file(str(folder / "model.safetensors"))
    t["model.layers.0.attention._totrain_q_norm.weight"] = torch.ones(64)
    save_file(t, str(folder / "model.safetensors"))
    proc = run_supra("info", "--model", folder)
    assert proc.returncode == 2 and "unexpected OpenLM tensor" in proc.stderr and "_totrain_q_norm" in proc.stderr
    del t["model.layers.0.attention._totrain_q_norm.weight"], t["model.layers.1.feed_forward.w12.weight"]
    save_file(t, str(folder / "model.safetensors"))
    proc = run_supra("info", "--model", folder)
    assert proc.returncode == 2 and "no tensor 'layers.1.feed_forward.w12.weight'" in proc.stderr
