#!/usr/bin/env python3
"""A small NumPy reader of supra token shards (docs/data.md), independent of the C++ loader.

    from data_shards import read_manifest, read_shard, documents
    m = read_manifest("data/")
    tokens, doc_ends = read_shard("data/", m["shards"][0]["name"])   # np.uint16/uint32 array, np.uint64 array
    for ids in documents("data/"): ...                                 # every document, manifest order

Command line: python3 scripts/shipped/data_shards.py DIR [--docs N]  (prints the manifest summary and N documents)
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

IDX_MAGIC = b"SUPRAIDX"
IDX_HEADER = struct.Struct("<8sIIQQ")  # magic, version, token bytes, num_docs, num_tokens


def read_manifest(data_dir: str | Path) -> dict:
    return json.loads((Path(data_dir) / "manifest.json").read_text())


def read_shard(data_dir: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, doc_ends) of one shard, memory-mapped; validates the index header against the files."""
    d = Path(data_dir)
    idx = (d / f"{name}.idx").read_bytes()
    magic, version, width, num_docs, num_tokens = IDX_HEADER.unpack_from(idx)
    if magic != IDX_MAGIC or version != 1 or width not in (2, 4):
        raise ValueError(f"{name}.idx: bad header ({magic!r}, version {version}, width {width})")
    if len(idx) != IDX_HEADER.size + 8 * num_docs:
        raise ValueError(f"{name}.idx: {len(idx)} bytes, expected {IDX_HEADER.size + 8 * num_docs}")
    doc_ends = np.frombuffer(idx, dtype="<u8", offset=IDX_HEADER.size)
    dtype = np.dtype("<u2") if width == 2 else np.dtype("<u4")
    bin_path = d / f"{name}.bin"
    if bin_path.stat().st_size != num_tokens * width:
        raise ValueError(f"{name}.bin: {bin_path.stat().st_size} bytes, expected {num_tokens * width}")
    tokens = np.memmap(bin_path, dtype=dtype, mode="r") if num_tokens else np.zeros(0, dtype)
    return tokens, doc_ends


def documents(data_dir: str | Path) -> Iterator[np.ndarray]:
    for s in read_manifest(data_dir)["shards"]:
        tokens, ends = read_shard(data_dir, s["name"])
        begin = 0
        for e in ends:
            yield np.asarray(tokens[begin:int(e)])
            begin = int(e)


# --------------------------------------------------------------------------------------------------------------
# The loader's sample order (a reference of data/loader.cpp, documented in docs/data.md)

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix64(z: int) -> int:
    z &= _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


class SamplePermutation:
    """π(seed, epoch) over [0, n): 6-round Feistel network on 2^(2h) ≥ n values, cycle-walked into [0, n)."""

    def __init__(self, n: int, seed: int, epoch: int):
        if n < 1:
            raise ValueError("empty domain")
        bits = max(2, (n - 1).bit_length() + ((n - 1).bit_length() & 1))
        self.n, self.half = n, bits // 2
        self.mask = (1 << self.half) - 1
        s = _mix64(seed ^ 0x5355505241) ^ _mix64(epoch + _GOLDEN) ^ _mix64(n * _GOLDEN + 1)
        self.keys = []
        for _ in range(6):
            s = (s + _GOLDEN) & _M64
            self.keys.append(_mix64(s))

    def _encrypt(self, x: int) -> int:
        l, r = x >> self.half, x & self.mask
        for k in self.keys:
            l, r = r, l ^ (_mix64(r ^ k) & self.mask)
        return (l << self.half) | r

    def __call__(self, i: int) -> int:
        y = self._encrypt(i)
        while y >= self.n:
            y = self._encrypt(y)
        return y


def training_samples(num_train: int, seed: int, start: int, count: int) -> list[int]:
    """Entries [start, start+count) of the training sequence π(seed,0) ++ π(seed,1) ++ … (global, all ranks)."""
    out = []
    for q in range(start, start + count):
        e, p = divmod(q, num_train)
        out.append(SamplePermutation(num_train, seed, e)(p))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="Summarise a supra data folder")
    p.add_argument("dir")
    p.add_argument("--docs", type=int, default=0, help="print the first N documents' token ids")
    a = p.parse_args()
    m = read_manifest(a.dir)
    print(f"{m['num_shards']} shards, {m['num_docs']} docs, {m['num_tokens']} tokens, {m['dtype']}, "
          f"vocab {m['vocab_size']}")
    for i, ids in enumerate(documents(a.dir)):
        if i >= a.docs:
            break
        print(i, ids.tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
