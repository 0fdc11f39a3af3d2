#!/usr/bin/env python3
"""Writes the fuzz harnesses' seed corpora (tests/fuzz/corpus/<harness>/), checked in; rerun after a format change.

Usage: SUPRA_BIN=build/supra python3 tests/fuzz/make_seeds.py [--shared ../shared]
Needs torch, safetensors, tokenizers and transformers (scripts/test.sh installs them) and the `supra` binary (token
shards are made by `supra data sample` from the stories260K model, so they are exactly what supra writes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "scripts" / "tools"))


def safetensors_seeds(out: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}, out / "f32.safetensors")
    save_file({"a": torch.ones(3, dtype=torch.bfloat16), "b": torch.zeros(2, 2, dtype=torch.float16),
               "i": torch.tensor([1, -2], dtype=torch.int64), "s": torch.tensor(7, dtype=torch.int32),
               "e": torch.zeros(0, 4)}, out / "mixed.safetensors", metadata={"format": "pt"})
    save_file({"x": torch.tensor([True, False]), "u": torch.tensor([1, 2], dtype=torch.uint8),
               "d": torch.tensor([0.5], dtype=torch.float64)}, out / "bool_u8_f64.safetensors")


def model_config_seeds(out: Path, tmp: Path, supra: str) -> None:
    from make_tiny_hf import VARIANTS, make_model

    for v in VARIANTS:
        d = make_model(v, str(tmp / v))
        shutil.copy(Path(d) / "config.json", out / f"{v}.json")
    conv = tmp / "converted"
    subprocess.run([supra, "convert", "--model", str(tmp / "llama_gqa_untied"), "--out", str(conv)], check=True,
                   capture_output=True)
    shutil.copy(conv / "config.json", out / "supra_converted.json")


def shards_seeds(out: Path, tmp: Path, supra: str, stories: Path) -> None:
    for i, (docs, tokens) in enumerate([(3, 12), (6, 40)]):
        d = tmp / f"data{i}"
        subprocess.run([supra, "data", "sample", "--model", str(stories), "--out", str(d), "--docs", str(docs),
                        "--max-tokens", str(tokens), "--seed", str(i + 1)], check=True, capture_output=True)
        manifest = (d / "manifest.json").read_bytes()
        names = json.loads(manifest)["shards"]
        assert len(names) == 1, "the harness reads one shard"
        idx = (d / "shard_00000.idx").read_bytes()
        bin_ = (d / "shard_00000.bin").read_bytes()
        (out / f"sample{i}").write_bytes(struct.pack("<II", len(manifest), len(idx)) + manifest + idx + bin_)


def tokenizer_seeds(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    text = ["Once upon a time there was a little fox.", "It ran, jumped and sang: la la la!", "日本語 üñí 123"] * 4
    bl = Tokenizer(models.BPE())
    bl.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bl.decoder = decoders.ByteLevel()
    bl.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                     initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bl.save(str(out / "byte_level.json"))
    sp = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    sp.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    sp.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    sp.train_from_iterator(text, trainers.BpeTrainer(vocab_size=400, special_tokens=specials))
    sp.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    sp.save(str(out / "metaspace_byte_fallback.json"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = ap.parse_args()
    supra = os.environ.get("SUPRA_BIN", str(ROOT / "build" / "supra"))
    stories = Path(args.shared) / "models" / "stories260K" / "stories260K.bin"
    corpus = HERE / "corpus"
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for name in ["safetensors", "model_config", "shards", "tokenizer", "train_toml"]:
            shutil.rmtree(corpus / name, ignore_errors=True)
            (corpus / name).mkdir(parents=True)
        safetensors_seeds(corpus / "safetensors")
        model_config_seeds(corpus / "model_config", tmp, supra)
        shards_seeds(corpus / "shards", tmp, supra, stories)
        tokenizer_seeds(corpus / "tokenizer")
        for f in sorted((ROOT / "configs").glob("*.toml")):
            shutil.copy(f, corpus / "train_toml" / f.name)
    for d in sorted(corpus.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds, {sum(f.stat().st_size for f in d.iterdir())} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
