"""The bad-input catalogue: every command, fed what a hostile or careless user feeds it.

Each case asserts the contract of docs/robustness.md: exit code 2, exactly one `error:` line on stderr (the last;
log lines such as warnings may precede it) naming the offending file or option, and nothing partial left behind (an
output that did not exist still does not; one that existed is byte-for-byte unchanged).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest


@dataclass
class Case:
    argv: list
    names: list  # the error line must contain one of these (a path or an option)
    guarded: list = field(default_factory=list)  # outputs that must be untouched (absent stays absent)


class World:
    """Shared, read-only inputs, built on first use: a tiny HF model, its SUPRA conversion, a short training run of
    the converted model, token shards sampled from it, a task file. Cases copy what they corrupt."""

    def __init__(self, run, tiny_model, root: Path):
        self.run, self.root = run, root
        self.teacher = tiny_model("llama_gqa_untied")
        self._cache: dict[str, Path] = {}

    def _once(self, name: str, make: Callable[[Path], None]) -> Path:
        if name not in self._cache:
            p = self.root / name
            make(p)
            self._cache[name] = p
        return self._cache[name]

    def _ok(self, *args):
        proc = self.run(*args)
        assert proc.returncode == 0, proc.stderr

    @property
    def tokenizer(self) -> Path:
        """A folder with a small byte-level tokenizer.json (the fuzz seed)."""
        seed = Path(__file__).resolve().parents[1] / "fuzz" / "corpus" / "tokenizer" / "byte_level.json"
        def make(p: Path):
            p.mkdir()
            shutil.copy(seed, p / "tokenizer.json")
            (p / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
        return self._once("tok", make)

    @property
    def converted(self) -> Path:
        return self._once("converted", lambda p: self._ok("convert", "--model", self.teacher, "--out", p))

    @property
    def data(self) -> Path:
        return self._once("data", lambda p: self._ok("data", "sample", "--model", self.teacher, "--out", p,
                                                     "--docs", "8", "--max-tokens", "24", "--seed", "1"))

    @property
    def run_folder(self) -> Path:
        def make(p: Path):
            self._ok("train", "--model.path", self.converted, "--data.dir", self.data, "--run.out_dir", p,
                     "--train.steps", "2", "--run.save_every", "2", *TRAIN)
        return self._once("run", make)

    @property
    def checkpoint(self) -> Path:
        return sorted(self.run_folder.glob("checkpoints/step_*"))[-1]

    def copy(self, src: Path, tmp: Path, name: str | None = None) -> Path:
        dst = tmp / (name or src.name)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
        return dst


@pytest.fixture(scope="module")
def world(run_supra, tiny_model, tmp_path_factory) -> World:
    return World(run_supra, tiny_model, tmp_path_factory.mktemp("catalogue"))


def edit_json(path: Path, **changes):
    j = json.loads(path.read_text())
    j.update(changes)
    path.write_text(json.dumps(j))


def flip_byte(path: Path, offset: int = -1):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def model_with_config(w: World, tmp: Path, **changes) -> Path:
    m = w.copy(w.teacher, tmp, "model")
    edit_json(m / "config.json", **changes)
    return m


def config_folder(w: World, tmp: Path) -> Path:
    m = tmp / "model"
    (m / "config.json").mkdir(parents=True)
    return m


def write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def write_bytes(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def unwritable_out(tmp: Path) -> Path:
    """An output path that cannot be created, even by root: its parent is a file."""
    (tmp / "file").write_text("x")
    return tmp / "file" / "out"


def data_with(w: World, tmp: Path, corrupt: Callable[[Path], None]) -> Path:
    d = w.copy(w.data, tmp, "data")
    corrupt(d)
    return d


def decreasing_index(d: Path):
    idx = d / "shard_00000.idx"
    raw = bytearray(idx.read_bytes())
    ends = list(struct.unpack_from(f"<{(len(raw) - 32) // 8}Q", raw, 32))
    ends[0], ends[1] = ends[1], ends[0]
    struct.pack_into(f"<{len(ends)}Q", raw, 32, *ends)
    idx.write_bytes(bytes(raw))


def truncated(w: World, tmp: Path, model: Path, keep: int) -> Path:
    """A copy of `model` whose model.safetensors lost its tail (keep > 0: that many bytes; keep < 0: all but -keep)."""
    m = w.copy(model, tmp, "m")
    raw = (m / "model.safetensors").read_bytes()
    (m / "model.safetensors").write_bytes(raw[:keep])
    return m


def bad_json_config(w: World, tmp: Path) -> Path:
    m = w.copy(w.teacher, tmp, "m")
    (m / "config.json").write_text("{ nope")
    return m


def empty_folder(tmp: Path) -> Path:
    d = tmp / "empty"
    d.mkdir()
    return d


def recipe(w: World, tmp: Path, body: str) -> Path:
    return write(tmp, "recipe.toml", f'[model]\npath = "{w.converted}"\n[data]\ndir = "{w.data}"\nseq_len = 16\n'
                                     f'[run]\nout_dir = "{tmp / "runs"}"\n[train]\ndevice = "cpu"\n' + body)


def run_with_corrupt_state(w: World, tmp: Path) -> Path:
    r = w.copy(w.run_folder, tmp, "run")
    for state in r.glob("checkpoints/step_*/trainer_state.json"):
        state.write_text("{ not json")
    return r


TRAIN = ["--train.device", "cpu", "--data.seq_len", "16", "--train.global_batch", "2", "--train.micro_batch", "2",
         "--run.eval_every", "0"]

# id -> (w, tmp) -> Case
CASES: dict[str, Callable[[World, Path], Case]] = {
    # ---------------------------------------------------------------- info / logits
    "info_missing_model": lambda w, t: Case(["info", "--model", t / "nope"], [str(t / "nope")]),
    "info_config_is_a_folder": lambda w, t: Case(["info", "--model", config_folder(w, t)], ["config.json"]),
    "info_config_not_json": lambda w, t: Case(["info", "--model", bad_json_config(w, t)], ["config.json"]),
    "info_not_a_model_file": lambda w, t: Case(["info", "--model", write(t, "x.txt", "hello")], ["x.txt"]),
    "logits_absurd_vocab": lambda w, t: Case(
        ["logits", "--model", model_with_config(w, t, vocab_size=10**12), "--tokens", "1,2", "--out", t / "o.st"],
        ["vocab_size", "config.json"], [t / "o.st"]),
    "logits_truncated_weights": lambda w, t: Case(
        ["logits", "--model", truncated(w, t, w.teacher, 200), "--tokens", "1", "--out", t / "o.st"],
        ["model.safetensors"], [t / "o.st"]),
    "logits_token_out_of_vocab": lambda w, t: Case(
        ["logits", "--model", w.teacher, "--tokens", "1,99999", "--out", t / "o.st"], ["99999", "vocab"],
        [t / "o.st"]),
    "logits_negative_dims": lambda w, t: Case(
        ["logits", "--model", model_with_config(w, t, num_hidden_layers=-3), "--tokens", "1", "--out", t / "o.st"],
        ["num_hidden_layers"], [t / "o.st"]),
    # ---------------------------------------------------------------- convert
    "convert_out_exists": lambda w, t: Case(
        ["convert", "--model", w.teacher, "--out", w.copy(w.converted, t, "out")], [str(t / "out")], [t / "out"]),
    "convert_bad_decay": lambda w, t: Case(["convert", "--model", w.teacher, "--out", t / "o", "--decay", "fast"],
                                           ["--decay"], [t / "o"]),
    "convert_zero_chunk": lambda w, t: Case(
        ["convert", "--model", w.teacher, "--out", t / "o", "--chunk-size", "0"], ["--chunk-size"], [t / "o"]),
    "convert_missing_model": lambda w, t: Case(["convert", "--model", t / "nope", "--out", t / "o"],
                                               [str(t / "nope")], [t / "o"]),
    "convert_heads_do_not_divide": lambda w, t: Case(
        ["convert", "--model", model_with_config(w, t, num_key_value_heads=3), "--out", t / "o"],
        ["num_key_value_heads", "config.json"], [t / "o"]),
    # ---------------------------------------------------------------- data
    "data_prepare_missing_input": lambda w, t: Case(
        ["data", "prepare", "--input", t / "none.jsonl", "--tokenizer", w.tokenizer, "--out", t / "o"],
        ["none.jsonl"], [t / "o"]),
    "data_prepare_unwritable_out": lambda w, t: Case(
        ["data", "prepare", "--input", write(t, "d.jsonl", '{"text": "hello there"}\n'), "--tokenizer", w.tokenizer,
         "--out", unwritable_out(t)], [str(t / "file")], [t / "file"]),
    "data_prepare_bad_jsonl": lambda w, t: Case(
        ["data", "prepare", "--input", write(t, "d.jsonl", '{"text": "ok"}\n{"text": \n'), "--tokenizer",
         w.tokenizer, "--out", t / "o"], ["d.jsonl"], [t / "o"]),
    "data_prepare_no_tokenizer": lambda w, t: Case(
        ["data", "prepare", "--input", write(t, "d.jsonl", '{"text": "x"}\n'), "--tokenizer", t, "--out", t / "o"],
        [str(t)], [t / "o"]),
    "data_check_no_manifest": lambda w, t: Case(["data", "check", empty_folder(t)], ["manifest.json"]),
    "data_check_flipped_token": lambda w, t: Case(
        ["data", "check", data_with(w, t, lambda d: flip_byte(d / "shard_00000.bin"))], ["shard_00000.bin"]),
    "data_check_manifest_not_json": lambda w, t: Case(
        ["data", "check", data_with(w, t, lambda d: (d / "manifest.json").write_text("[1,"))], ["manifest.json"]),
    "data_check_vocab_mismatch": lambda w, t: Case(
        ["data", "check", w.data, "--model", model_with_config(w, t, vocab_size=8)], ["vocab"]),
    "data_docs_bad_range": lambda w, t: Case(["data", "docs", w.data, "--range", "5:2"], ["--range"]),
    "data_docs_decreasing_index": lambda w, t: Case(["data", "docs", data_with(w, t, decreasing_index)],
                                                    ["shard_00000.idx"]),
    "data_batches_rank_past_world": lambda w, t: Case(
        ["data", "batches", w.data, "--out", t / "b.st", "--world-size", "2", "--rank", "2", "--seq-len", "8"],
        ["--rank"], [t / "b.st"]),
    "data_batches_zero_seq_len": lambda w, t: Case(
        ["data", "batches", w.data, "--out", t / "b.st", "--seq-len", "0"], ["--seq-len"], [t / "b.st"]),
    "data_sample_out_exists": lambda w, t: Case(
        ["data", "sample", "--model", w.teacher, "--out", w.copy(w.data, t, "o"), "--docs", "2"], [str(t / "o")],
        [t / "o"]),
    "data_sample_missing_model": lambda w, t: Case(["data", "sample", "--model", t / "nope", "--out", t / "o"],
                                                   [str(t / "nope")], [t / "o"]),
    # ---------------------------------------------------------------- train
    "train_missing_config": lambda w, t: Case(["train", "--config", t / "none.toml"], ["none.toml"]),
    "train_toml_syntax": lambda w, t: Case(["train", "--config", write(t, "r.toml", "[optim]\nlr = = 3\n")],
                                           ["line 2"]),
    "train_toml_key_twice": lambda w, t: Case(
        ["train", "--config", write(t, "r.toml", "[train]\nsteps = 1\nsteps = 2\n")], ["line 3", "twice"]),
    "train_toml_array_value": lambda w, t: Case(
        ["train", "--config", write(t, "r.toml", "[train]\nsteps = [1, 2]\n")], ["line 2, column 9"]),
    "train_toml_not_utf8": lambda w, t: Case(
        ["train", "--config", write_bytes(t, "r.toml", b"[train]\nsteps = 1 # \xff\n")], ["not UTF-8"]),
    # Inputs that sent toml++ 3.3.0 (the parser first tried) into undefined behaviour (fuzz finding).
    "train_toml_multiline_backslash": lambda w, t: Case(
        ["train", "--config", write_bytes(t, "r.toml", b's = """\\\n\xc2\xa7"""\n')], ["line 1, column 6", "multi-line"]),
    "train_toml_nbsp": lambda w, t: Case(
        ["train", "--config", write_bytes(t, "r.toml", b"[train]\nsteps =\xc2\xa01\n")], ["line 2, column 8"]),
    "train_toml_bracket_amp": lambda w, t: Case(["train", "--config", write_bytes(t, "r.toml", b"[&")],
                                                ["line 1, column 2"]),
    "train_toml_unknown_key": lambda w, t: Case(["train", "--config", write(t, "r.toml", "[optim]\nlrr = 3\n")],
                                                ["optim.lrr"]),
    "train_config_is_a_folder": lambda w, t: Case(["train", "--config", t], [str(t)]),
    "train_steps_not_an_integer": lambda w, t: Case(
        ["train", "--model.path", w.converted, "--data.dir", w.data, "--run.out_dir", t / "r", "--train.steps",
         "1e20"], ["--train.steps"], [t / "r"]),
    "train_missing_model": lambda w, t: Case(
        ["train", "--model.path", t / "nope", "--data.dir", w.data, "--run.out_dir", t / "r", *TRAIN],
        [str(t / "nope")], [t / "r"]),
    "train_missing_data": lambda w, t: Case(
        ["train", "--model.path", w.converted, "--data.dir", t / "nodata", "--run.out_dir", t / "r", *TRAIN],
        [str(t / "nodata")], [t / "r"]),
    "train_resume_corrupt_state": lambda w, t: Case(
        ["train", "--model.path", w.converted, "--data.dir", w.data, "--run.out_dir", run_with_corrupt_state(w, t),
         "--run.resume", "auto", "--train.steps", "4", "--run.save_every", "2", *TRAIN], ["trainer_state.json"],
        [t / "run"]),
    "train_attention_without_teacher": lambda w, t: Case(
        ["train", "--model.path", w.checkpoint, "--data.dir", w.data, "--run.out_dir", t / "r", "--train.objective",
         "attention", *TRAIN], ["teacher"], [t / "r"]),
    "train_stage_flag_unknown_stage": lambda w, t: Case(
        ["train", "--config", recipe(w, t, "[stages.a.train]\nsteps = 1\n"), "--stage", "b.train.steps=2"],
        ["--stage"], [t / "runs"]),
    "train_stage_sets_model_path": lambda w, t: Case(
        ["train", "--config", recipe(w, t, '[stages.a.model]\npath = "x"\n')], ["recipe.toml"], [t / "runs"]),
    # ---------------------------------------------------------------- export
    "export_missing_checkpoint": lambda w, t: Case(["export", "--checkpoint", t / "nope", "--out", t / "o"],
                                                   [str(t / "nope")], [t / "o"]),
    "export_out_exists": lambda w, t: Case(
        ["export", "--checkpoint", w.checkpoint, "--out", w.copy(w.converted, t, "o")], [str(t / "o")], [t / "o"]),
    "export_bad_shard_size": lambda w, t: Case(
        ["export", "--checkpoint", w.checkpoint, "--out", t / "o", "--max-shard-size", "5XB"], ["--max-shard-size"],
        [t / "o"]),
    "export_truncated_weights": lambda w, t: Case(
        ["export", "--checkpoint", truncated(w, t, w.converted, -9), "--out", t / "o"], ["model.safetensors"],
        [t / "o"]),
    # ---------------------------------------------------------------- generate
    "generate_id_out_of_vocab": lambda w, t: Case(["generate", "--model", w.converted, "--ids", "1,77777"],
                                                  ["77777", "vocab"]),
    "generate_prompt_without_tokenizer": lambda w, t: Case(["generate", "--model", w.converted, "--prompt", "hi"],
                                                           ["tokenizer"]),
    "generate_missing_prompts_file": lambda w, t: Case(
        ["generate", "--model", w.converted, "--prompts-file", t / "p.txt", "--tokenizer", w.tokenizer], ["p.txt"]),
    "generate_window_without_size": lambda w, t: Case(
        ["generate", "--model", w.teacher, "--ids", "1", "--kv-policy", "window"], ["--kv-size"]),
    "generate_top_p_above_one": lambda w, t: Case(["generate", "--model", w.converted, "--ids", "1", "--top-p", "1.5"],
                                                  ["--top-p"]),
    # ---------------------------------------------------------------- eval
    "eval_missing_task": lambda w, t: Case(
        ["eval", "--model", w.converted, "--task", t / "task.jsonl", "--json", t / "r.json"], ["task.jsonl"],
        [t / "r.json"]),
    "eval_malformed_task": lambda w, t: Case(
        ["eval", "--model", w.converted, "--task", write(t, "task.jsonl", '{"context": [1], "choices": [[2]], '
                                                                             '"label": 0}\n{"context": \n'),
         "--json", t / "r.json"], ["task.jsonl"], [t / "r.json"]),
    "eval_data_for_another_vocab": lambda w, t: Case(
        ["eval", "--model", w.converted, "--tokens", data_with(w, t, lambda d: edit_json(d / "manifest.json",
                                                                                      vocab_size=1000)),
         "--json", t / "r.json"], ["vocab"], [t / "r.json"]),
    "eval_past_last_document": lambda w, t: Case(
        ["eval", "--model", w.converted, "--tokens", w.data, "--first-doc", "1000", "--json", t / "r.json"],
        ["--first-doc"], [t / "r.json"]),
    "eval_nothing_to_evaluate": lambda w, t: Case(["eval", "--model", w.converted, "--json", t / "r.json"],
                                                  ["--tokens", "--task", "--text"], [t / "r.json"]),
    "eval_decreasing_index": lambda w, t: Case(
        ["eval", "--model", w.converted, "--tokens", data_with(w, t, decreasing_index), "--json", t / "r.json"],
        ["shard_00000.idx"], [t / "r.json"]),
}


def fingerprint(path: Path):
    """None for an absent path; else the sorted (relative path, sha256) of every file below it."""
    if not path.exists():
        return None
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return sorted((str(p.relative_to(path)), hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "")
                  for p in path.rglob("*"))


def test_the_catalogue_covers_every_command():
    assert len(CASES) >= 40
    commands = {name.split("_")[0] for name in CASES}
    assert commands == {"info", "logits", "convert", "data", "train", "export", "generate", "eval"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(world, run_supra, tmp_path, name):
    case = CASES[name](world, tmp_path)
    before = {p: fingerprint(Path(p)) for p in case.guarded}
    proc = run_supra(*case.argv)
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2; stderr: {proc.stderr!r}"
    errors = [ln for ln in lines if "error" in ln.lower() and "[warning]" not in ln or "Traceback" in ln]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("error: "), \
        f"expected one 'error:' line, last on stderr (log lines may precede it), got {proc.stderr!r}"
    assert any(n in errors[0] for n in map(str, case.names)), f"{errors[0]!r} names none of {case.names}"
    for p, fp in before.items():
        assert fingerprint(Path(p)) == fp, f"{p} was {'created' if fp is None else 'changed'} by a failed command"
