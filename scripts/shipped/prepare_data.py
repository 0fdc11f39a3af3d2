#!/usr/bin/env python3
"""Tokenize Parquet / JSONL documents into supra token shards (the format is described in docs/data.md).

Usually run through the CLI:
    supra data prepare --input data/*.parquet --tokenizer MODEL_DIR --out DIR [--text-column content] [--seq-len 2048]

Inputs are Parquet files (RefinedWeb: a ``content`` column) and JSON-lines files (``.jsonl``, ``.jsonl.gz``;
records with ``text`` or ``content``), or folders of them. Every document is tokenized with MODEL_DIR's tokenizer
(``tokenizer.json`` through HF ``tokenizers``; a SentencePiece-only folder through ``transformers``), BOS is
prepended when the model's tokenizer does so (tokenizer_config.json ``add_bos_token``, else what the tokenizer's
post-processor does), and the end-of-document token (config.json ``eos_token_id``) is appended.

The inputs are cut into units (groups of Parquet row groups, byte ranges of JSONL files, ~``--shard-mb`` of text
each), and every unit becomes one shard, tokenized by a pool of worker processes. A shard is written under
temporary names, fsynced and renamed, and then a done-record is written to ``DIR/.prepare/``; the manifest is
written last. Re-running the same command after an interruption redoes only the units without a done-record.

Errors are one line on stderr ("error: FILE: problem") with exit code 2; an interruption exits with 130.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import queue as queue_mod
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

FORMAT = "supra-tokens"
VERSION = 1
PLAN_VERSION = 1
IDX_MAGIC = b"SUPRAIDX"
IDX_HEADER_BYTES = 32
PROGRESS_DIR = ".prepare"
ENCODE_BATCH = 512
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model")


class DataError(Exception):
    """Bad input: reported as one line "error: SUBJECT: REASON", exit code 2."""

    def __init__(self, subject: str, reason: str):
        super().__init__(subject, reason)
        self.subject = str(subject)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}" if self.subject else self.reason


# --------------------------------------------------------------------------------------------------------------
# Small helpers


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}.tmp.{os.getpid()}")


def write_atomically(path: Path, data: bytes) -> None:
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(str(path), f"invalid JSON: {e}") from None
    except OSError as e:
        raise DataError(str(path), f"cannot read: {e.strerror or e}") from None


def human(v: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(v) < 1000:
            return f"{v:.0f}{unit}" if unit == "" else f"{v:.2f}{unit}"
        v /= 1000
    return f"{v:.2f}P"


# --------------------------------------------------------------------------------------------------------------
# Tokenizer


@dataclass
class TokenizerSpec:
    model_dir: str
    kind: str  # "tokenizers" (tokenizer.json) | "transformers" (AutoTokenizer, e.g. SentencePiece only)
    files: dict[str, str]  # name -> sha256
    vocab_size: int  # every id < vocab_size
    bos_token_id: int | None
    eos_token_id: int
    add_bos: bool
    model_vocab_size: int | None

    def identity(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "add_bos_token": self.add_bos,
            "model_vocab_size": self.model_vocab_size,
            "source": self.model_dir,
        }


class Encoder:
    """texts -> token id lists, without special tokens (BOS/EOS are added by the writer)."""

    def __init__(self, spec: TokenizerSpec):
        self.spec = spec
        d = Path(spec.model_dir)
        if spec.kind == "tokenizers":
            from tokenizers import Tokenizer

            self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
            self.fast = True
        else:
            tok = _auto_tokenizer(d)
            backend = getattr(tok, "backend_tokenizer", None)
            self.fast = backend is not None
            self.tok = backend if self.fast else tok
        self._batch = getattr(self.tok, "encode_batch_fast", None) if self.fast else None
        if self.fast and self._batch is None:
            self._batch = self.tok.encode_batch

    def encode(self, texts: list[str]) -> list[list[int]]:
        if self.fast:
            return [e.ids for e in self._batch(texts, add_special_tokens=False)]
        return self.tok(texts, add_special_tokens=False)["input_ids"]

    def encode_special(self, text: str) -> list[int]:
        """What the tokenizer does by default (with its post-processor / add_bos_token)."""
        if self.fast:
            return self.tok.encode(text, add_special_tokens=True).ids
        return self.tok(text)["input_ids"]


def _auto_tokenizer(model_dir: Path):
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise DataError(str(model_dir), "has no tokenizer.json; reading tokenizer.model needs `pip install transformers sentencepiece`") from None
    try:
        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here is a bad tokenizer folder
        raise DataError(str(model_dir), f"cannot load the tokenizer with transformers: {e}".splitlines()[0]) from None


def _special_id(value: Any, vocab: dict[str, int]) -> int | None:
    """A tokenizer_config.json special token ("</s>" or {"content": "</s>", ...}) -> its id."""
    if isinstance(value, dict):
        value = value.get("content")
    if isinstance(value, str):
        return vocab.get(value)
    return None


def _int_or_first(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def describe_tokenizer(model_dir: str, bos_mode: str = "auto", eos_id: int | None = None) -> TokenizerSpec:
    """Reads MODEL_DIR's tokenizer, special tokens and identity; raises DataError on anything unusable."""
    d = Path(model_dir)
    if not d.is_dir():
        raise DataError(model_dir, "tokenizer folder not found (expected a model folder with tokenizer.json)")
    files = {name: sha256_file(d / name) for name in TOKENIZER_FILES if (d / name).is_file()}
    if not files:
        raise DataError(model_dir, "no tokenizer.json or tokenizer.model in the folder")
    config = read_json(d / "config.json") if (d / "config.json").is_file() else {}
    tok_config = read_json(d / "tokenizer_config.json") if (d / "tokenizer_config.json").is_file() else {}
    if not isinstance(config, dict) or not isinstance(tok_config, dict):
        raise DataError(model_dir, "config.json / tokenizer_config.json must hold JSON objects")

    kind = "tokenizers" if "tokenizer.json" in files else "transformers"
    spec = TokenizerSpec(str(d.resolve()), kind, files, 0, None, -1, False, None)
    try:
        enc = Encoder(spec)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001
        raise DataError(str(d / "tokenizer.json"), f"cannot load the tokenizer: {e}".splitlines()[0]) from None
    vocab = enc.tok.get_vocab(with_added_tokens=True) if enc.fast else enc.tok.get_vocab()
    if not vocab:
        raise DataError(model_dir, "the tokenizer has an empty vocabulary")
    spec.vocab_size = max(vocab.values()) + 1
    mv = config.get("vocab_size")
    spec.model_vocab_size = mv if isinstance(mv, int) and not isinstance(mv, bool) else None

    spec.bos_token_id = _int_or_first(config.get("bos_token_id"))
    if spec.bos_token_id is None:
        spec.bos_token_id = _special_id(tok_config.get("bos_token"), vocab)
    if eos_id is not None and eos_id >= 0:
        spec.eos_token_id = eos_id
    else:
        e = _int_or_first(config.get("eos_token_id"))
        if e is None:
            e = _special_id(tok_config.get("eos_token"), vocab)
        if e is None:
            raise DataError(model_dir, "cannot tell the end-of-document token: no eos_token_id in config.json and no "
                                       "eos_token in tokenizer_config.json (pass --eos-id)")
        spec.eos_token_id = e

    if bos_mode == "always":
        spec.add_bos = True
    elif bos_mode == "never":
        spec.add_bos = False
    elif isinstance(tok_config.get("add_bos_token"), bool):
        spec.add_bos = tok_config["add_bos_token"]
    else:  # what the tokenizer's post-processor does
        with_special = enc.encode_special("Hello")
        plain = enc.encode(["Hello"])[0]
        spec.add_bos = (spec.bos_token_id is not None and len(with_special) > len(plain)
                        and with_special[0] == spec.bos_token_id)
    if spec.add_bos and spec.bos_token_id is None:
        raise DataError(model_dir, "the model expects a BOS token but config.json has no bos_token_id and "
                                   "tokenizer_config.json no bos_token")
    for name, v in (("bos_token_id", spec.bos_token_id if spec.add_bos else None), ("eos_token_id", spec.eos_token_id)):
        if v is not None and not 0 <= v < spec.vocab_size:
            raise DataError(model_dir, f"{name} {v} is outside the tokenizer's vocabulary of {spec.vocab_size}")
    if spec.vocab_size > 2**32:
        raise DataError(model_dir, f"vocabulary of {spec.vocab_size} ids does not fit uint32")
    return spec


def dtype_for_vocab(vocab_size: int) -> str:
    return "uint16" if vocab_size <= 65536 else "uint32"


# --------------------------------------------------------------------------------------------------------------
# Inputs and the plan


@dataclass
class Unit:
    """One shard's worth of input: Parquet row groups [start, end) or JSONL bytes [start, end)."""

    index: int
    path: str
    kind: str  # "parquet" | "jsonl" | "jsonl.gz"
    start: int
    end: int
    column: str | None  # Parquet: the resolved text column
    weight: int  # progress weight (input bytes)
    file_size: int = 0  # the input file's size and mtime when planned: a done-record is valid only for them
    file_mtime_ns: int = 0

    @property
    def name(self) -> str:
        return f"shard_{self.index:05d}"

    def fingerprint(self) -> list:
        return [self.path, self.file_size, self.file_mtime_ns, self.kind, self.start, self.end, self.column]

    def describe(self) -> str:
        what = "row groups" if self.kind == "parquet" else "bytes"
        return f"{self.path} [{what} {self.start}:{self.end}]"


def input_kind(path: Path) -> str | None:
    n = path.name.lower()
    if n.endswith(".parquet"):
        return "parquet"
    if n.endswith(".jsonl") or n.endswith(".ndjson") or n.endswith(".json"):
        return "jsonl"
    if n.endswith(".jsonl.gz") or n.endswith(".json.gz") or n.endswith(".ndjson.gz"):
        return "jsonl.gz"
    return None


def discover_inputs(paths: list[str]) -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            inside = []
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for f in sorted(files):
                    k = input_kind(Path(f))
                    if k:
                        inside.append((Path(root) / f, k))
            if not inside:
                raise DataError(p, "no .parquet / .jsonl / .jsonl.gz files in this folder")
            found.extend(inside)
        elif path.exists():
            k = input_kind(path)
            if k is None:
                raise DataError(p, "unsupported input format (expected .parquet, .jsonl or .jsonl.gz)")
            if not os.access(path, os.R_OK):
                raise DataError(p, "cannot read the file (permission denied)")
            found.append((path, k))
        else:
            raise DataError(p, "no such file or folder")
    seen: set[str] = set()
    unique = []
    for path, k in found:
        key = str(path.resolve())
        if key not in seen:
            seen.add(key)
            unique.append((path.resolve(), k))
    if not unique:
        raise DataError("--input", "no input files")
    return unique


def parquet_units(path: Path, text_column: str | None, shard_bytes: int, first_index: int) -> list[Unit]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
    except OSError as e:
        raise DataError(str(path), f"cannot read: {e.strerror or e}") from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid & co. for files that are not Parquet
        raise DataError(str(path), f"not a readable Parquet file ({str(e).splitlines()[0]})") from None
    schema = pf.schema_arrow
    names = schema.names
    if text_column:
        column = text_column
    else:
        column = next((c for c in ("content", "text") if c in names), None)
    if column is None or column not in names:
        wanted = f"'{text_column}'" if text_column else "'content' or 'text'"
        raise DataError(str(path), f"no column {wanted} (columns: {', '.join(names) or 'none'}; use --text-column)")
    typ = schema.field(column).type
    if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
        raise DataError(str(path), f"column '{column}' holds {typ}, not text")
    md = pf.metadata
    col_idx = None
    for i in range(md.num_columns):
        if md.schema.column(i).path == column:
            col_idx = i
    units: list[Unit] = []
    start, acc = 0, 0
    for rg in range(md.num_row_groups):
        size = md.row_group(rg).column(col_idx).total_uncompressed_size if col_idx is not None else md.row_group(rg).total_byte_size
        if rg > start and acc + size > shard_bytes:
            units.append(Unit(first_index + len(units), str(path), "parquet", start, rg, column, acc))
            start, acc = rg, 0
        acc += size
    if md.num_row_groups > start:
        units.append(Unit(first_index + len(units), str(path), "parquet", start, md.num_row_groups, column, max(acc, 1)))
    return units


def jsonl_units(path: Path, kind: str, shard_bytes: int, first_index: int) -> list[Unit]:
    size = path.stat().st_size
    if size == 0:
        return []
    if kind == "jsonl.gz":
        return [Unit(first_index, str(path), kind, 0, size, None, size)]
    return [Unit(first_index + i, str(path), kind, s, min(s + shard_bytes, size), None, min(s + shard_bytes, size) - s)
            for i, s in enumerate(range(0, size, shard_bytes))]


def make_plan(inputs: list[tuple[Path, str]], text_column: str | None, shard_bytes: int) -> list[Unit]:
    units: list[Unit] = []
    for path, kind in inputs:
        st = path.stat()
        if kind == "parquet":
            new = parquet_units(path, text_column, shard_bytes, len(units))
        else:
            new = jsonl_units(path, kind, shard_bytes, len(units))
        for u in new:
            u.file_size, u.file_mtime_ns = st.st_size, st.st_mtime_ns
        units += new
    return units


def iter_texts(unit: Unit, text_column: str | None) -> Iterator[tuple[list[str | None], float]]:
    """Yields (texts, fraction of the unit done) in batches; None for a missing/null text."""
    if unit.kind == "parquet":
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(unit.path)
            groups = list(range(unit.start, unit.end))
            rows = sum(pf.metadata.row_group(g).num_rows for g in groups) or 1
            done = 0
            for batch in pf.iter_batches(batch_size=ENCODE_BATCH, row_groups=groups, columns=[unit.column]):
                texts = batch.column(0).to_pylist()
                done += len(texts)
                yield texts, done / rows
        except DataError:
            raise
        except OSError as e:
            raise DataError(unit.path, f"cannot read: {e.strerror or e}") from None
        except Exception as e:  # noqa: BLE001
            raise DataError(unit.path, f"cannot read row groups {unit.start}:{unit.end} ({str(e).splitlines()[0]})") from None
        return

    def record_text(line: bytes, where: str) -> str | None:
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(unit.path, f"{where}: invalid JSON ({e})") from None
        if not isinstance(rec, dict):
            raise DataError(unit.path, f"{where}: a record must be a JSON object")
        if text_column:
            if text_column not in rec:
                raise DataError(unit.path, f"{where}: record has no field '{text_column}'")
            value = rec[text_column]
        elif "text" in rec:
            value = rec["text"]
        elif "content" in rec:
            value = rec["content"]
        else:
            raise DataError(unit.path, f"{where}: record has neither 'text' nor 'content' (use --text-column)")
        if value is not None and not isinstance(value, str):
            raise DataError(unit.path, f"{where}: text field holds {type(value).__name__}, not a string")
        return value

    texts: list[str | None] = []
    span = max(1, unit.end - unit.start)
    try:
        if unit.kind == "jsonl.gz":
            with gzip.open(unit.path, "rb") as f:
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        texts.append(record_text(line, f"line {lineno}"))
                    if len(texts) >= ENCODE_BATCH:
                        yield texts, 0.0
                        texts = []
            yield texts, 1.0
            return
        with open(unit.path, "rb") as f:
            # The unit holds the lines that START in [start, end).
            if unit.start > 0:
                f.seek(unit.start - 1)
                if f.read(1) != b"\n":
                    f.readline()
            pos = f.tell()
            while pos < unit.end:
                line = f.readline()
                if not line:
                    break
                if line.strip():
                    texts.append(record_text(line, f"record at byte {pos}"))
                pos += len(line)
                if len(texts) >= ENCODE_BATCH:
                    yield texts, min(1.0, (pos - unit.start) / span)
                    texts = []
        yield texts, 1.0
    except DataError:
        raise
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(unit.path, f"cannot read: {getattr(e, 'strerror', None) or e}") from None


# --------------------------------------------------------------------------------------------------------------
# Writing one shard (runs in a worker process)

_W: dict[str, Any] = {}


def worker_init(spec: dict, out_dir: str, text_column: str | None, progress_queue, threads: int) -> None:
    os.environ["RAYON_NUM_THREADS"] = str(max(1, threads))
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    if progress_queue is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates the pool
    s = TokenizerSpec(**spec)
    _W.update(spec=s, encoder=Encoder(s), out=Path(out_dir), text_column=text_column, queue=progress_queue)


def _report(docs: int, tokens: int, weight: float) -> None:
    q = _W.get("queue")
    if q is not None:
        q.put((docs, tokens, weight))
    elif _W.get("report"):
        _W["report"](docs, tokens, weight)


def write_unit(unit_dict: dict) -> dict:
    import numpy as np

    unit = Unit(**unit_dict)
    spec: TokenizerSpec = _W["spec"]
    enc: Encoder = _W["encoder"]
    out: Path = _W["out"]
    dtype = np.dtype("<u2") if dtype_for_vocab(spec.vocab_size) == "uint16" else np.dtype("<u4")
    bin_path, idx_path = out / f"{unit.name}.bin", out / f"{unit.name}.idx"
    bin_tmp, idx_tmp = tmp_name(bin_path), tmp_name(idx_path)
    prefix = [spec.bos_token_id] if spec.add_bos else []
    eos = spec.eos_token_id
    doc_ends: list[int] = []
    total = 0
    skipped = 0
    max_id = -1
    bin_hash = hashlib.sha256()
    reported = 0.0
    try:
        with open(bin_tmp, "wb") as f:
            for texts, frac in iter_texts(unit, _W["text_column"]):
                keep = [t for t in texts if t]
                skipped += len(texts) - len(keep)
                docs_before, tokens_before = len(doc_ends), total
                if keep:
                    ids = enc.encode(keep)
                    lengths = [len(x) for x in ids]
                    n = sum(lengths) + len(ids) * (len(prefix) + 1)
                    arr = np.empty(n, dtype=np.int64)
                    pos = 0
                    for x, length in zip(ids, lengths):
                        if length == 0:  # nothing to learn from: only special tokens
                            skipped += 1
                            continue
                        if prefix:
                            arr[pos] = prefix[0]
                            pos += 1
                        arr[pos:pos + length] = x
                        pos += length
                        arr[pos] = eos
                        pos += 1
                        total += length + len(prefix) + 1
                        doc_ends.append(total)
                    arr = arr[:pos]
                    if pos:
                        m = int(arr.max())
                        if m >= spec.vocab_size or int(arr.min()) < 0:
                            raise DataError(unit.path, f"the tokenizer produced id {m} outside its vocabulary of {spec.vocab_size}")
                        max_id = max(max_id, m)
                        data = arr.astype(dtype).tobytes()
                        bin_hash.update(data)
                        f.write(data)
                _report(len(doc_ends) - docs_before, total - tokens_before, (frac - reported) * unit.weight)
                reported = frac
            f.flush()
            os.fsync(f.fileno())
        record = {"name": unit.name, "num_docs": len(doc_ends), "num_tokens": total, "max_token_id": max_id,
                  "skipped_docs": skipped, "source": unit.describe(), "unit": unit.fingerprint()}
        if doc_ends:
            header = (IDX_MAGIC + np.array([VERSION, dtype.itemsize], dtype="<u4").tobytes()
                      + np.array([len(doc_ends), total], dtype="<u8").tobytes())
            idx = header + np.asarray(doc_ends, dtype="<u8").tobytes()
            with open(idx_tmp, "wb") as f:
                f.write(idx)
                f.flush()
                os.fsync(f.fileno())
            os.replace(bin_tmp, bin_path)
            os.replace(idx_tmp, idx_path)
            fsync_dir(out)
            record.update(bin_bytes=total * dtype.itemsize, idx_bytes=len(idx), bin_sha256=bin_hash.hexdigest(),
                          idx_sha256=hashlib.sha256(idx).hexdigest())
        else:  # nothing to write: the unit only had empty documents
            bin_tmp.unlink(missing_ok=True)
        write_atomically(out / PROGRESS_DIR / f"{unit.name}.json", json.dumps(record).encode())
        return record
    finally:
        bin_tmp.unlink(missing_ok=True)
        idx_tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------------------
# Progress


class Progress:
    """docs/s and tokens/s: a tqdm bar on a terminal, a log line every ~15 s otherwise."""

    def __init__(self, total_weight: int, enabled: bool):
        self.t0 = time.time()
        self.docs = self.tokens = 0
        self.weight = 0.0
        self.total = max(1, total_weight)
        self.last_log = self.t0
        self.enabled = enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, unit="B", unit_scale=True, desc="tokenizing", file=sys.stderr,
                                smoothing=0.1, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, docs: int, tokens: int, weight: float) -> None:
        self.docs += docs
        self.tokens += tokens
        self.weight += weight
        dt = max(1e-9, time.time() - self.t0)
        rates = f"{human(self.docs / dt)} docs/s, {human(self.tokens / dt)} tokens/s"
        if self.bar is not None:
            self.bar.update(weight)
            self.bar.set_postfix_str(f"{human(self.docs)} docs, {human(self.tokens)} tokens, {rates}", refresh=False)
        elif self.enabled and time.time() - self.last_log > 15:
            self.last_log = time.time()
            print(f"[prepare] {100 * self.weight / self.total:5.1f}%  {human(self.docs)} docs, "
                  f"{human(self.tokens)} tokens, {rates}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------------------------
# The preparation


def clean_tmp(out: Path) -> None:
    for d in (out, out / PROGRESS_DIR):
        if d.is_dir():
            for p in d.iterdir():
                if ".tmp." in p.name:
                    p.unlink(missing_ok=True)


def unit_done(out: Path, unit: Unit) -> dict | None:
    """The unit's done-record when it is complete on disk: a record of this very unit (same input range, same
    input file size and mtime) and shard files of the recorded sizes."""
    rec_path = out / PROGRESS_DIR / f"{unit.name}.json"
    if not rec_path.is_file():
        return None
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(rec, dict) or rec.get("unit") != unit.fingerprint():
        return None
    if rec.get("num_docs", 0) == 0:
        return rec
    for ext, key in ((".bin", "bin_bytes"), (".idx", "idx_bytes")):
        p = out / f"{unit.name}{ext}"
        if not p.is_file() or p.stat().st_size != rec.get(key):
            return None
    return rec


def prepare(args: argparse.Namespace) -> dict:
    if args.seq_len < 1:
        raise DataError("--seq-len", f"must be at least 1, got {args.seq_len}")
    if args.workers < 0:
        raise DataError("--workers", f"must be ≥ 0, got {args.workers}")
    if not args.shard_mb > 0:
        raise DataError("--shard-mb", f"must be positive, got {args.shard_mb}")
    spec = describe_tokenizer(args.tokenizer, args.bos, args.eos_id)
    inputs = discover_inputs(args.input)
    shard_bytes = max(1, int(args.shard_mb * 1e6))
    units = make_plan(inputs, args.text_column, shard_bytes)
    out = Path(args.out)

    # What the folder is: these inputs, tokenized this way. Input files may change between runs (their units are
    # then redone: done-records carry each unit's file size and mtime); anything else needs a new folder.
    plan = {
        "plan_version": PLAN_VERSION,
        "inputs": [str(p) for p, _ in inputs],
        "text_column": args.text_column,
        "shard_bytes": shard_bytes,
        "tokenizer": spec.identity() | {"vocab_size": spec.vocab_size},
    }
    created = False
    if out.exists() and not out.is_dir():
        raise DataError(str(out), "exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        plan_path = out / PROGRESS_DIR / "plan.json"
        if not plan_path.is_file():
            raise DataError(str(out), "folder is not empty and holds no preparation to resume (choose a new --out)")
        old = read_json(plan_path)
        if old != plan:
            changed = [k for k in plan if old.get(k) != plan[k]] if isinstance(old, dict) else ["all"]
            raise DataError(str(out), f"holds a preparation of other inputs or settings ({', '.join(changed)} "
                                      "changed); choose a new --out or delete the folder")
    else:
        created = not out.exists()
        (out / PROGRESS_DIR).mkdir(parents=True, exist_ok=True)
        write_atomically(out / PROGRESS_DIR / "plan.json", json.dumps(plan, indent=1).encode())
    clean_tmp(out)
    names = {u.name for u in units}
    for p in list(out.glob("shard_*")) + list((out / PROGRESS_DIR).glob("shard_*.json")):
        if p.name.split(".")[0] not in names:  # left by an earlier plan with more units
            p.unlink(missing_ok=True)

    records: dict[int, dict] = {}
    for u in units:
        rec = unit_done(out, u)
        if rec is not None:
            records[u.index] = rec
    pending = [u for u in units if u.index not in records]
    manifest_path = out / "manifest.json"
    if not pending and manifest_path.is_file():
        log(args, f"{out}: already complete ({len(units)} units), nothing to do")
        return read_json(manifest_path)
    manifest_path.unlink(missing_ok=True)  # the folder is not complete while shards are (re)written
    if records:
        log(args, f"resuming: {len(records)} of {len(units)} shards already done")

    cpus = os.cpu_count() or 1
    workers = min(args.workers or cpus, max(1, len(pending)))
    threads = max(1, cpus // workers)
    log(args, f"{len(inputs)} input files, {len(units)} shards, tokenizer {spec.model_dir} "
              f"(vocab {spec.vocab_size}, bos {'%d' % spec.bos_token_id if spec.add_bos else 'none'}, "
              f"eos {spec.eos_token_id}), {workers} workers")
    progress = Progress(sum(u.weight for u in pending), not args.no_progress)
    try:
        if pending and workers == 1:
            worker_init(asdict(spec), str(out), args.text_column, None, threads)
            _W["report"] = progress.update
            for u in pending:
                records[u.index] = write_unit(asdict(u))
        elif pending:
            import multiprocessing as mp

            ctx = mp.get_context("spawn")
            q = ctx.Queue()
            stop = threading.Event()

            def drain() -> None:
                while not stop.is_set() or not q.empty():
                    try:
                        progress.update(*q.get(timeout=0.2))
                    except queue_mod.Empty:
                        pass

            t = threading.Thread(target=drain, daemon=True)
            t.start()
            pool = ctx.Pool(workers, initializer=worker_init,
                            initargs=(asdict(spec), str(out), args.text_column, q, threads))
            try:
                for rec in pool.imap_unordered(write_unit, [asdict(u) for u in pending]):
                    records[int(rec["name"].split("_")[-1])] = rec
                pool.close()
                pool.join()
            except BaseException:
                pool.terminate()
                pool.join()
                raise
            finally:
                stop.set()
                t.join()
    except (DataError, OSError):
        if created and not records:  # a new folder with nothing finished: leave nothing behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        progress.close()
        if out.is_dir():
            clean_tmp(out)

    shards = [records[u.index] for u in units if records[u.index]["num_docs"] > 0]
    num_docs = sum(s["num_docs"] for s in shards)
    num_tokens = sum(s["num_tokens"] for s in shards)
    skipped = sum(r.get("skipped_docs", 0) for r in records.values())
    if num_docs == 0:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise DataError(", ".join(args.input), f"empty input: no document with text ({skipped} empty or null "
                                               "documents skipped); nothing written")
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": dtype_for_vocab(spec.vocab_size),
        "vocab_size": spec.vocab_size,
        "seq_len": args.seq_len,
        "num_docs": num_docs,
        "num_tokens": num_tokens,
        "num_shards": len(shards),
        "tokenizer": spec.identity(),
        "shards": [{k: s[k] for k in ("name", "num_docs", "num_tokens", "max_token_id", "bin_bytes", "idx_bytes",
                                      "bin_sha256", "idx_sha256", "source")} for s in shards],
        "prepare": {
            "created_by": "scripts/shipped/prepare_data.py",
            "inputs": [str(p) for p, _ in inputs],
            "text_column": args.text_column or "auto",
            "skipped_docs": skipped,
        },
    }
    write_atomically(manifest_path, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def log(args: argparse.Namespace, msg: str) -> None:
    if not args.no_progress:
        print(f"[prepare] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", nargs="+", required=True, help="Parquet / JSONL files or folders")
    p.add_argument("--tokenizer", required=True, help="model folder with tokenizer.json (or tokenizer.model)")
    p.add_argument("--out", required=True, help="output data folder (a re-run resumes it)")
    p.add_argument("--text-column", default=None, help="text field (default: 'content' or 'text')")
    p.add_argument("--seq-len", type=int, default=2048, help="training sequence length (recorded)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: all cores)")
    p.add_argument("--shard-mb", type=float, default=256.0, help="input megabytes per shard")
    p.add_argument("--bos", choices=("auto", "always", "never"), default="auto", help="prepend BOS")
    p.add_argument("--eos-id", type=int, default=None, help="end-of-document token id (default: the model's EOS)")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def on_term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    t0 = time.time()
    try:
        m = prepare(args)
    except DataError as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr, flush=True)
        return 2
    except OSError as e:  # the output side: read-only or full disk, a path through a file, … (inputs: DataError)
        where = e.filename or args.out
        print(f"error: {where}: cannot write: {e.strerror or e}; finished shards are kept, re-run the same command "
              "to resume", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print(f"error: {args.out}: interrupted; finished shards are kept, re-run the same command to resume",
              file=sys.stderr, flush=True)
        return 130
    dt = time.time() - t0
    print(f"{args.out}: {m['num_docs']} documents, {m['num_tokens']} tokens in {m['num_shards']} shards "
          f"({m['dtype']}, vocab {m['vocab_size']}) in {dt:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
